"""`labvirt verify` and `class verify`: stage files, the per-node commands and how they are judged
(table-driven), the simulator end to end through the CLI, and the ssh runner.

No guest is available to these tests (the real-guest kit is built elsewhere; a real-guest verify test
comes with it). The ssh runner is therefore tested with a fake `ssh` on PATH that stands in for the
guests: it reads the destination labvirt gives it, and runs the remote command the way sshd would (the
words joined, run by `sh -c`) in a directory per node, with stand-ins for hostname, systemctl, getent,
ip, ping, getenforce and /proc/cmdline that answer from files there. Everything up to the ssh argv and
everything after the command returns is labvirt's real code.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from labvirt.core import check_outcome as co
from labvirt.core import checks as ck
from labvirt.core.cloudinit import hosts_block
from labvirt.core.desired import HostParams, desire
from labvirt.core.errors import SpecError
from labvirt.core.identity import LabCopy
from labvirt.core.loader import load_lab

from .conftest import EXAMPLES, ROOT, run_cli, write_lab


def stage(text: str, name: str = "s", file: str = "checks/s.toml") -> ck.StageSpec:
    import tomllib

    return ck.parse_stage(tomllib.loads(textwrap.dedent(text)), name, file)


def desired_of(example="standard", student=""):
    spec = load_lab(EXAMPLES[example])
    return desire(spec, LabCopy(spec.name, student), HostParams())


# -- stage files ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_the_shipped_stages_parse_and_name_their_snapshots(example):
    from labvirt.ops.verify import load_stages, stage_for_snapshot

    stages = {s.name: s for s in load_stages(EXAMPLES[example])}
    assert set(stages) == {"pre-packstack", "post-packstack"}
    assert stages["pre-packstack"].snapshot == "pre-packstack"
    assert stage_for_snapshot(EXAMPLES[example], "post-packstack").name == "post-packstack"
    names = [c.name for c in stages["pre-packstack"].checks]
    for wanted in ("hostname", "/etc/hosts", "addresses", "NetworkManager disabled", "firewalld disabled",
                   "SELinux permissive", "kernel line", "nested virtualisation"):
        assert wanted in names
    assert any(c.kind == "ping" for c in stages["pre-packstack"].checks)


def test_checks_chosen_by_image_recipe():
    """The shipped stages turn NetworkManager off only where the course's CentOS 7 recipe is used."""
    from labvirt.core.record import replace

    d = desired_of("standard")
    check = stage("[[check]]\nname = 'nm'\nnodes = ['image:centos7']\nservice = 'NetworkManager'\n").checks[0]
    assert ck.select_nodes(check, d, "f") == []                       # the default recipe: centos-stream9
    seven = next(g for g in desired_of("standard").images if g.name == "centos-stream9")
    d7 = replace(d, images=(replace(seven, name="centos7"),))
    assert ck.select_nodes(check, d7, "f") == [x.key for x in d.domains]


BAD_STAGES = [
    ("[[check]]\nname = 'x'\n", "check[0].name", "exactly one of run, service"),
    ("[[check]]\nname = 'x'\nrun = 'true'\nservice = 'sshd'\n", "check[0].service", "exactly one of"),
    ("[[check]]\nname = 'x'\nrun = 'true'\nexpect = 0\n", "check[0].expect", "unknown key"),
    ("[[check]]\nname = 'x'\nrun = 'true'\noutput = '(unclosed'\n", "check[0].output", "not a regular expression"),
    ("[[check]]\nname = 'x'\nservice = 'sshd'\nstate = 'running'\n", "check[0].state", "allowed: active, inactive"),
    ("[[check]]\nname = 'x'\nfile = '/etc/hosts'\n", "check[0].line", "exactly one of line, matches"),
    ("[[check]]\nname = 'x'\nport = 70000\n", "check[0].port", "allowed: 1 to 65535"),
    ("[[check]]\nname = 'x'\nresolves = false\n", "check[0].resolves", "must be true"),
    ("[[check]]\nname = 'x'\nrun = 'true'\nnodes = ['Bad Name']\n", "check[0].nodes", "'role:ROLE'"),
    ("[[check]]\nname = 'x'\nrun = 'true'\ntimeout = 0\n", "check[0].timeout", "seconds between"),
    ("[[check]]\nname = 'x'\nrun = 'true'\nwhen = 'always'\n", "check[0].when", "allowed: nested"),
    ("[[check]]\nname = 'x'\nrun = 'true'\n[[check]]\nname = 'x'\nrun = 'false'\n", "check[1].name", "used by another"),
    ("[stage]\nsnapshots = 'x'\n[[check]]\nname = 'x'\nrun = 'true'\n", "stage.snapshots", "did you mean 'snapshot'"),
    ("[stage]\ndescription = 'nothing'\n", "check", "missing required field"),
]


@pytest.mark.parametrize("text, field, problem", BAD_STAGES)
def test_a_wrong_stage_file_names_the_field_and_what_is_allowed(text, field, problem):
    with pytest.raises(SpecError) as e:
        stage(text)
    assert e.value.field == field and problem in e.value.problem, str(e.value)


def test_a_wrong_stage_file_exits_2_through_the_cli(tmp_path):
    lab = write_lab(tmp_path / "lab", networks={"n": 'mode = "isolated"\nsubnet = "10.9.0.0/24"\n'},
                    nodes={"a": 'role = "generic"\nvcpus = 1\nmemory = "128MiB"\ndisk = "1GiB"\n'
                                '[[nic]]\nnetwork = "n"\naddress = "10.9.0.10"\n'})
    os.makedirs(os.path.join(lab, "checks"))
    with open(os.path.join(lab, "checks", "boot.toml"), "w") as f:
        f.write("[[check]]\nname = 'x'\nservice = 'sshd'\nstate = 'up'\n")
    r = run_cli("verify", "boot", "-C", lab, "-c", "sim")
    assert r.returncode == 2
    assert "checks/boot.toml: check[0].state: got 'up'; allowed: active, inactive, enabled, disabled" in r.stderr


def test_stage_names_are_read_again_only_when_a_stage_file_changes(tmp_path, monkeypatch):
    from labvirt.ops import verify

    checks = tmp_path / "checks"
    checks.mkdir()
    (checks / "boot.toml").write_text("[[check]]\nname = 'x'\nservice = 'sshd'\nstate = 'active'\n")
    reads = []
    real = verify.stage_names
    monkeypatch.setattr(verify, "stage_names", lambda d: reads.append(d) or real(d))
    names = verify.StageNames(str(tmp_path))
    assert names() == names() == ["boot"] and len(reads) == 1
    (checks / "deploy.toml").write_text("[[check]]\nname = 'y'\nservice = 'sshd'\nstate = 'active'\n")
    assert names() == ["boot", "deploy"] and len(reads) == 2
    (checks / "deploy.toml").write_text("[[check]]\nname = 'y'\nservice = 'sshd'\nstate = 'up'\n")
    assert names() == [] and len(reads) == 3          # a stage file that cannot be read: no stages, as before
    (checks / "deploy.toml").unlink()
    assert names() == ["boot"]


# -- expanding over a lab copy -------------------------------------------------------------------------
def test_checks_expand_per_selected_node_with_placeholders_filled():
    s = stage('''
        [stage]
        timeout = 7
        [[check]]
        name = "where"
        nodes = ["role:compute", "controller", "compute"]
        run = "echo {node} {role} {ip} {ip:internal} {ip:controller:public} {nodes:compute} {nodes} {virt_type} {lab}"
        output = "^{ip:internal}$"
        [[check]]
        name = "api"
        nodes = ["controller"]
        port = 5000
        host = "{ip:internal}"
        timeout = 3
        ''')
    runs = ck.expand(s, desired_of(), {"l2_virt_type": "kvm", "domain_type": "kvm"})
    assert [(r.check.name, r.node) for r in runs] == [("where", "compute"), ("where", "controller"), ("api", "controller")]
    assert runs[0].script == ("echo compute compute 192.168.122.110 192.168.90.110 192.168.122.100 compute "
                              "compute controller kvm openstack")
    assert runs[0].expect["output"] == (r"^192\.168\.90\.110$",)       # literal in patterns
    assert runs[0].timeout == 7 and runs[2].timeout == 3
    assert "192.168.90.100 5000" in runs[2].script and "timeout 2 bash" in runs[2].script


def test_an_unknown_placeholder_is_a_spec_error_naming_the_check():
    s = stage('[[check]]\nname = "x"\nrun = "echo {ip:nowhere}"\n')
    with pytest.raises(SpecError) as e:
        ck.expand(s, desired_of(), {})
    assert "check 'x': run" in str(e.value) and "{ip:nowhere}" in str(e.value)


def test_nested_checks_are_skipped_unless_the_verdict_promises_nested_kvm():
    s = stage('[[check]]\nname = "vmx"\nnodes = ["role:compute"]\nwhen = "nested"\nrun = "grep -c vmx /proc/cpuinfo"\n')
    (run,) = ck.expand(s, desired_of(), {"l2_virt_type": "qemu"})
    assert run.skip and "L2 virt type qemu" in run.skip
    (run,) = ck.expand(s, desired_of(), {"l2_virt_type": "kvm"})
    assert run.skip is None


def test_ping_resolves_and_addresses_cover_the_other_nodes():
    s = stage('[[check]]\nname = "p"\nping = "internal"\n[[check]]\nname = "r"\nresolves = true\n'
              '[[check]]\nname = "a"\naddresses = true\n')
    runs = {(r.check.name, r.node): r for r in ck.expand(s, desired_of("three-node"), {})}
    s2 = stage('[[check]]\nname = "p"\nping = "mgmt"\n')
    ping = {r.node: r for r in ck.expand(s2, desired_of("three-node"), {})}
    assert "192.168.1.101" in ping["controller"].script and "192.168.1.102" in ping["controller"].script
    assert "192.168.1.100 " not in ping["controller"].script
    assert runs[("p", "controller")].skip == "controller has no static address on network 'internal'"
    assert runs[("r", "compute1")].script.count("getent hosts") == 3
    assert "dev eth0" in runs[("a", "compute2")].script and "' 192.168.1.102/'" in runs[("a", "compute2")].script


# -- judging ---------------------------------------------------------------------------------------------
def one_run(text: str):
    (run,) = ck.expand(stage(text), desired_of(), {})[:1]
    return run


RUN = '[[check]]\nname = "c"\nnodes = ["controller"]\nrun = "x"\nexit = 0\noutput = ["^a$", "b"]\nno_output = "bad"\n'
SERVICE_ON = '[[check]]\nname = "c"\nnodes = ["controller"]\nservice = "sshd"\n'
SERVICE_OFF = '[[check]]\nname = "c"\nnodes = ["controller"]\nservice = "firewalld"\nstate = "disabled"\n'
FILE = '[[check]]\nname = "c"\nnodes = ["controller"]\nfile = "/etc/x"\nline = "k=v"\n'
PORT = '[[check]]\nname = "c"\nnodes = ["controller"]\nport = 22\n'


@pytest.mark.parametrize("text, code, stdout, stderr, status, detail", [
    (RUN, 0, "a\nb\n", "", "passed", ""),
    (RUN, 1, "a\nb\n", "", "failed", "exit code 1, expected 0"),
    (RUN, 0, "xa\nb\n", "", "failed", "output does not match '^a$'"),
    (RUN, 0, "a\nb bad\n", "", "failed", "output matches 'bad'"),
    (RUN, 255, "", "ssh: connect to host 1.2.3.4 port 22: No route to host\n", "error",
     "ssh could not run it: ssh: connect to host 1.2.3.4 port 22: No route to host"),
    (RUN, 127, "", "sh: 1: x: not found\n", "error", "a command the check needs is not installed on the node: sh: 1: x: not found"),
    (SERVICE_ON, 0, "active\n", "", "passed", ""),
    (SERVICE_ON, 3, "inactive\n", "", "failed", "sshd is inactive, expected active"),
    (SERVICE_OFF, 1, "disabled\n", "", "passed", ""),
    (SERVICE_OFF, 1, "", "Failed to get unit file state for firewalld.service: No such file\n", "passed", ""),
    (SERVICE_OFF, 0, "enabled\n", "", "failed", "firewalld is enabled, expected disabled"),
    (FILE, 0, "3:k=v\n", "", "passed", ""),
    (FILE, 1, "", "", "failed", "no line 'k=v' in /etc/x"),
    (FILE, 2, "", "grep: /etc/x: No such file or directory\n", "failed",
     "cannot read /etc/x: grep: /etc/x: No such file or directory"),
    (PORT, 0, "", "", "passed", ""),
    (PORT, 1, "nothing answers on 127.0.0.1 port 22\n", "", "failed", "nothing answers on 127.0.0.1 port 22"),
])
def test_judge(text, code, stdout, stderr, status, detail):
    assert co.judge(one_run(text), code, stdout, stderr) == (status, detail)


R = co.CheckResult


@pytest.mark.parametrize("statuses, outcome", [
    (["passed", "passed"], "holds"),
    (["passed", "skipped"], "holds"),
    (["passed", "failed"], "fails"),
    (["passed", "error"], "fails"),
    (["simulated", "skipped"], "not verified"),
    (["passed", "simulated"], "not verified"),
    (["skipped"], "not verified"),
    ([], "not verified"),
])
def test_a_stage_holds_only_when_what_ran_passed_and_something_ran(statuses, outcome):
    assert co.outcome([R("n", f"c{i}", s) for i, s in enumerate(statuses)]) == outcome


def test_the_class_matrix_takes_the_worst_status_per_cell_and_says_who_is_behind():
    s = stage('[[check]]\nname = "a"\nrun = "true"\n[[check]]\nname = "b"\nrun = "true"\n')
    ok = co.stage_report(s, [R("x", "a", "passed"), R("y", "a", "passed"), R("x", "b", "skipped")], "lab", "s01", False)
    bad = co.stage_report(s, [R("x", "a", "passed"), R("y", "a", "failed", detail="exit code 1, expected 0"),
                              R("x", "b", "error", detail="ssh could not run it")], "lab", "s02", False)
    gone = {"lab": "lab", "student": "s03", "outcome": "fails", "error": "nodes not created yet: x", "results": []}
    m = co.class_matrix(s, [ok, bad, gone])
    assert [r["cells"] for r in m["students"]] == [{"a": "passed", "b": "skipped"}, {"a": "failed", "b": "error"},
                                                  {"a": None, "b": None}]
    assert m["students"][1]["behind"] == ["y: a: exit code 1, expected 0", "x: b: ssh could not run it"]
    assert m["students"][2]["behind"] == ["nodes not created yet: x"]
    assert (m["holding"], m["total"]) == (1, 3)


# -- the simulator, end to end through the CLI -------------------------------------------------------------
def test_verify_on_the_simulator_runs_nothing_and_says_what_would_have_run():
    lab = EXAMPLES["standard"]
    r = run_cli("verify", "-C", lab)
    assert r.returncode == 0 and "pre-packstack" in r.stdout and "post-packstack" in r.stdout
    assert run_cli("up", "-C", lab, "-c", "sim").returncode == 0
    r = run_cli("verify", "pre-packstack", "-C", lab, "-c", "sim", "--json")
    assert r.returncode == 1, r.stderr
    report = json.loads(r.stdout)
    assert report["outcome"] == "not verified" and report["holds"] is False and report["simulated"]
    assert report["snapshot"] == "pre-packstack"
    assert {x["status"] for x in report["results"]} <= {"simulated", "skipped"}
    assert report["counts"]["passed"] == 0 and report["counts"]["simulated"] >= 16
    hostname = next(x for x in report["results"] if x["check"] == "hostname" and x["node"] == "controller")
    assert hostname["command"] == "ssh root@192.168.122.100 -- sh -c 'hostname -s'"
    assert "simulator" in hostname["detail"]
    r = run_cli("verify", "pre-packstack", "-C", lab, "-c", "sim", "--node", "compute", "--json")
    assert r.returncode == 1 and {x["node"] for x in json.loads(r.stdout)["results"]} == {"compute"}
    r = run_cli("verify", "pre-packstack", "-C", lab, "-c", "sim", "--node", "nova")
    assert r.returncode == 1 and "no node 'nova' in lab openstack; nodes: compute, controller" in r.stderr
    r = run_cli("verify", "pre-packstack", "-C", lab, "-c", "sim")
    assert "stage pre-packstack is not verified" in r.stdout and "not run on the simulator" in r.stdout
    r = run_cli("verify", "install", "-C", lab, "-c", "sim")
    assert r.returncode == 1 and "no stage 'install'; stages: post-packstack, pre-packstack" in r.stderr


def test_class_verify_on_the_simulator_gives_a_student_by_check_matrix():
    lab = EXAMPLES["three-node"]
    assert run_cli("class", "up", "-C", lab, "-c", "sim", "--students", "2").returncode == 0
    r = run_cli("class", "verify", "pre-packstack", "-C", lab, "-c", "sim", "--json")
    assert r.returncode == 1, r.stderr
    m = json.loads(r.stdout)
    assert [s["student"] for s in m["students"]] == ["s01", "s02"]
    assert m["holding"] == 0 and m["checks"][0] == "hostname"
    assert all(s["outcome"] == "not verified" for s in m["students"])
    assert {c for s in m["students"] for c in s["cells"].values()} <= {"simulated", "skipped"}
    s01 = next(x for x in m["reports"][0]["results"] if x["check"] == "hostname" and x["node"] == "controller")
    assert s01["command"].startswith("ssh root@10.100.")          # the student's own addresses
    r = run_cli("class", "verify", "pre-packstack", "-C", lab, "-c", "sim", "--student", "s02")
    assert r.returncode == 1 and "0 of 1 students where stage pre-packstack expects" in r.stdout


def test_snapshot_verify_refuses_on_the_simulator(state_dir):
    from labvirt.ops.session import Session
    from labvirt.ops.verify import StageDoesNotHold, verify_for_snapshot

    assert run_cli("up", "-C", ROOT, "-c", "sim").returncode == 0
    with Session.open(ROOT, "sim") as s:
        with pytest.raises(StageDoesNotHold) as e:
            verify_for_snapshot(s, "pre-packstack")
    assert str(e.value) == ("stage 'pre-packstack' does not hold (its checks cannot run on the simulator); "
                            "snapshot 'pre-packstack' not taken")
    assert e.value.report["counts"]["simulated"] > 0


# -- the ssh runner, with a fake ssh standing in for the guests ---------------------------------------------
FAKE_SSH = r'''#!{python}
"""Stands in for ssh and the guest behind it (no guest is available to the test)."""
import json, os, signal, subprocess, sys
args, dest, rest, i = sys.argv[1:], None, [], 0
while i < len(args):
    if args[i] in ("-i", "-o", "-J"):
        i += 2
    elif args[i] == "--":
        rest = args[i + 1:]
        break
    elif dest is None:
        dest, i = args[i], i + 1
    else:
        rest = args[i:]
        break
with open(os.environ["FAKE_GUESTS"]) as f:
    guests = json.load(f)
address = dest.split("@", 1)[1]
guest = guests.get(address)
if guest is None or guest.get("down"):
    sys.stderr.write(f"ssh: connect to host {{address}} port 22: No route to host\n")
    sys.exit(255)
env = dict(os.environ, PATH=os.environ["FAKE_GUEST_BIN"] + ":" + os.environ["PATH"], FAKE_NODE=guest["node"])
# like sshd: the words joined, run by the login shell; the session ends when the connection does
child = subprocess.Popen(["sh", "-c", " ".join(rest)], cwd=guest["dir"], env=env, start_new_session=True)
def hang_up(*_):
    os.killpg(child.pid, signal.SIGKILL)
    sys.exit(255)
signal.signal(signal.SIGTERM, hang_up)
sys.exit(child.wait())
'''

GUEST_TOOLS = {
    "hostname": 'echo "$FAKE_NODE"\n',
    "getenforce": "/bin/cat selinux\n",
    "systemctl": 'f="units/$3.$1"; if [ -f "$f" ]; then /bin/cat "$f"; else echo unknown; fi\n',
    "getent": 'grep -w -- "$2" etc/hosts | head -n 1 | grep . || exit 2\n',
    "ip": 'if [ -f "ip-$6" ]; then /bin/cat "ip-$6"; else echo "Device \\"$6\\" does not exist." >&2; exit 1; fi\n',
    "ping": 'grep -qxF -- "$5" reachable\n',
    "cat": 'if [ "$1" = /proc/cmdline ]; then exec /bin/cat cmdline; fi; exec /bin/cat "$@"\n',
}


def fake_guests(tmp_path, desired, spoil=None) -> dict:
    """A directory per node holding what the node would answer; PATH, FAKE_GUESTS and FAKE_GUEST_BIN."""
    bin_dir = tmp_path / "bin"
    guest_bin = tmp_path / "guest-bin"
    bin_dir.mkdir()
    guest_bin.mkdir()
    (bin_dir / "ssh").write_text(FAKE_SSH.format(python=sys.executable))
    (bin_dir / "ssh").chmod(0o755)
    for name, body in GUEST_TOOLS.items():
        (guest_bin / name).write_text("#!/bin/sh\n" + body)
        (guest_bin / name).chmod(0o755)
    guests = {}
    every_address = [str(n.address) for d in desired.domains for n in d.nics if n.address]
    for dom in desired.domains:
        d = tmp_path / "guests" / dom.key
        (d / "etc").mkdir(parents=True)
        (d / "units").mkdir()
        (d / "etc" / "hosts").write_text("127.0.0.1 localhost\n" + hosts_block(desired))
        for nic in dom.nics:
            (d / f"ip-{nic.name}").write_text(f"2: {nic.name}    inet {nic.address}/24 brd x scope global {nic.name}\n")
        (d / "reachable").write_text("\n".join(every_address) + "\n")
        for unit in ("NetworkManager", "firewalld"):
            (d / "units" / f"{unit}.is-active").write_text("inactive\n")
            (d / "units" / f"{unit}.is-enabled").write_text("disabled\n")
        (d / "selinux").write_text("Permissive\n")
        (d / "cmdline").write_text("BOOT_IMAGE=/vmlinuz ro net.ifnames=0 biosdevname=0 console=ttyS0\n")
        guests[str(next(n.address for n in dom.nics if n.address))] = {"node": dom.key, "dir": str(d)}
    if spoil:
        spoil(tmp_path / "guests", guests)
    (tmp_path / "guests.json").write_text(json.dumps(guests))
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_GUESTS": str(tmp_path / "guests.json"),
            "FAKE_GUEST_BIN": str(guest_bin)}


def session_on_test_driver(lab_dir: str, l2: str = "qemu"):
    """A session on libvirt's test driver (not the simulator: ssh is used), with a chosen verdict."""
    from labvirt.driver.libvirt_driver import Driver, open_libvirt
    from labvirt.ops.session import Session

    spec = load_lab(lab_dir)
    return Session(spec=spec, copy=LabCopy(spec.name), uri="test:///default",
                   driver=Driver(open_libvirt("test:///default"), "test:///default"),
                   verdict={"domain_type": "qemu", "l2_virt_type": l2}, host=HostParams(domain_type="qemu"))


def statuses(report) -> dict:
    return {(r["node"], r["check"]): (r["status"], r["detail"]) for r in report["results"]}


def test_the_shipped_pre_packstack_stage_holds_on_guests_that_are_as_expected(tmp_path, monkeypatch):
    from labvirt.ops.verify import load_stage, run_stage

    s = session_on_test_driver(ROOT)
    for k, v in fake_guests(tmp_path, s.desired()).items():
        monkeypatch.setenv(k, v)
    seen = []
    report = run_stage(s, load_stage(ROOT, "pre-packstack"), workers=4, on_result=seen.append)
    assert report["outcome"] == "holds", json.dumps(report["results"], indent=1)
    assert report["counts"] == {"passed": 16, "failed": 0, "error": 0, "skipped": 1, "simulated": 0}   # NetworkManager: centos7 nodes only
    assert statuses(report)[("compute", "nested virtualisation")][0] == "skipped"
    assert len(seen) == 17 and not report["simulated"]


def test_what_is_wrong_on_a_guest_is_reported_per_node_and_check(tmp_path, monkeypatch):
    from labvirt.ops.verify import load_stage, run_stage

    def spoil(root, guests):
        (root / "compute" / "units" / "firewalld.is-active").write_text("active\n")
        (root / "controller" / "etc" / "hosts").write_text("192.168.122.9 compute\n192.168.122.100 controller\n")
        (root / "controller" / "ip-eth1").unlink()
        (root / "compute" / "reachable").write_text("")
        (root / "controller" / "selinux").write_text("Enforcing\n")

    s = session_on_test_driver(ROOT)
    for k, v in fake_guests(tmp_path, s.desired(), spoil).items():
        monkeypatch.setenv(k, v)
    report = run_stage(s, load_stage(ROOT, "pre-packstack"))
    got = statuses(report)
    assert report["outcome"] == "fails" and report["holds"] is False
    assert got[("compute", "firewalld stopped")] == ("failed", "firewalld is active, expected inactive")
    assert got[("compute", "firewalld disabled")][0] == "passed"
    assert got[("controller", "/etc/hosts")] == ("failed", "compute resolves to 192.168.122.9, expected 192.168.122.110")
    assert got[("compute", "/etc/hosts")][0] == "passed"
    assert got[("controller", "addresses")] == ("failed", "eth1 does not have 192.168.90.100:")
    assert got[("compute", "reaches the others (internal)")] == ("failed", "no reply from controller (192.168.90.100)")
    assert got[("controller", "SELinux permissive")] == ("failed", "output does not match '^Permissive$'")
    failed = {(r["node"], r["check"]): r for r in report["results"]}
    assert 'Device "eth1" does not exist.' in failed[("controller", "addresses")]["output"]
    assert failed[("controller", "SELinux permissive")]["output"] == "Enforcing"
    assert report["counts"]["failed"] == 5


def test_a_node_ssh_cannot_reach_could_not_run_and_a_slow_check_is_stopped(tmp_path, monkeypatch):
    from labvirt.ops.verify import run_stage

    def spoil(root, guests):
        for g in guests.values():
            if g["node"] == "compute":
                g["down"] = True

    s = session_on_test_driver(ROOT)
    for k, v in fake_guests(tmp_path, s.desired(), spoil).items():
        monkeypatch.setenv(k, v)
    slow = stage('''
        [[check]]
        name = "hostname"
        run = "hostname"
        output = "^{node}$"
        [[check]]
        name = "slow"
        nodes = ["controller"]
        run = "echo started; sleep 60; echo never"
        timeout = 1
        ''')
    report = run_stage(s, slow)
    got = statuses(report)
    assert got[("controller", "hostname")] == ("passed", "")
    assert got[("compute", "hostname")] == (
        "error", "ssh could not run it: ssh: connect to host 192.168.122.110 port 22: No route to host")
    assert got[("controller", "slow")] == ("failed", "did not finish within 1s")
    assert report["outcome"] == "fails"
    # the stand-in's session ended with the connection: no sleep of ours is left behind
    left = subprocess.run(["pgrep", "-f", "sleep 60; echo never"], capture_output=True, text=True).stdout.split()
    assert [p for p in left if int(p) != os.getpid()] == []


def test_verify_through_the_cli_with_the_ssh_stand_in(tmp_path):
    """`labvirt verify` end to end: the real session on libvirt's test driver, ssh the stand-in."""
    from labvirt.driver.libvirt_driver import Driver, open_libvirt  # noqa: F401 (libvirt must be importable)

    env = fake_guests(tmp_path, desired_of())
    r = run_cli("verify", "pre-packstack", "-C", ROOT, "-c", "test:///default", "--json", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["outcome"] == "holds" and report["uri"] == "test:///default"
    assert report["counts"]["passed"] >= 16 and report["counts"]["failed"] == 0
    r = run_cli("verify", "pre-packstack", "-C", ROOT, "-c", "test:///default", "--node", "controller", env=env)
    assert r.returncode == 0 and "stage pre-packstack holds" in r.stdout


def test_snapshot_verify_passes_when_the_stage_holds(tmp_path, monkeypatch):
    from labvirt.ops.verify import verify_for_snapshot

    s = session_on_test_driver(ROOT)
    for k, v in fake_guests(tmp_path, s.desired()).items():
        monkeypatch.setenv(k, v)
    assert verify_for_snapshot(s, "pre-packstack")["holds"] is True



def test_snapshot_verify_on_the_simulator_is_refused_and_takes_nothing(tmp_path):
    """The CLI wiring: the stage cannot be verified on the simulator, so no snapshot is taken."""
    import json

    from .conftest import EXAMPLES, run_cli

    env = {"LABVIRT_STATE_DIR": str(tmp_path / "state")}
    lab = EXAMPLES["standard"]
    assert run_cli("up", "-c", "sim", "-C", lab, env=env).returncode == 0
    r = run_cli("snapshot", "pre-packstack", "--verify", "-c", "sim", "-C", lab, env=env)
    assert r.returncode == 1 and "not taken" in r.stderr
    listed = run_cli("snapshot", "list", "--json", "-c", "sim", "-C", lab, env=env)
    assert json.loads(listed.stdout)["snapshots"] == []
