"""A real Debian 12 lab, brought up and torn down only through labvirt's CLI, checked over ssh.

The guests (tests/support/debian_lab.py) boot Debian's kernels directly (the node's [boot] table:
alpha the cloud kernel, beta the generic one) from qcow2 overlays of the kit's disk, read labvirt's
NoCloud seed with real cloud-init, and sit on one NAT network with static addresses. The libvirtd runs in a private network namespace
(scripts/libvirtd-up); ssh, and so `labvirt ssh`, runs inside it. The lab is brought up once per
module (both guests boot concurrently: labvirt starts them together) and destroyed at the end, also
when a check fails.

Both kernels: labvirt attaches the seed as a CD-ROM on virtio-scsi, which Debian's cloud kernel (no
AHCI driver) reads as well as the generic one; see bench/README.md, "Real guest kit".
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
import time

import pytest

from .conftest import run_cli
from .support import netns as ns
from .support.debian_lab import DebianNode, cli, destroy_and_look, guest_ssh, lab_objects, labvirt_in_netns, require_kit, write_debian_lab

pytestmark = [pytest.mark.daemon, pytest.mark.slow]

SUBNET = "10.232.61"
# one lab boots both of Debian's kernels; packstack run needs a controller
NODES_SPEC = {"alpha": DebianNode(f"{SUBNET}.11", kernel="cloud", role="controller"),
              "beta": DebianNode(f"{SUBNET}.12", kernel="generic", role="compute")}
NODES = {node: n.address for node, n in NODES_SPEC.items()}
DOMAIN = "lvg.test"                                 # the lab network's DNS domain
BOOT_TO_SSH = 600          # seconds: the bound for both guests together (software emulation, 2 cores)


@pytest.fixture(scope="module")
def debian_lab(tmp_path_factory, netns, daemon):
    """The lab, up and reachable over ssh: {lab, state, name, kit, bridge, pool_dir, ready}."""
    kit = require_kit()
    base = tmp_path_factory.mktemp("debian-lab")
    state = str(base / "state")
    name = "lvgdeb" + os.urandom(3).hex()
    # NAT: the default route and DNS go through the gateway (libvirt's dnsmasq). The namespace has no
    # uplink, so nothing the guests send can leave it.
    lab = write_debian_lab(base / "lab", name, kit, NODES_SPEC, subnet=f"{SUBNET}.0/24", pool_dir=str(base / "pool"),
                           domain=DOMAIN)
    import libvirt

    info = {"lab": lab, "state": state, "name": name, "kit": kit, "pool_dir": str(base / "pool"), "ready": {}}
    try:
        started = time.monotonic()
        # labvirt's own wait: lease at the reserved address, ssh with the host key it gave the guest
        # (strict), cloud-init done. Inside the namespace, where ssh reaches the guests.
        r = labvirt_in_netns(lab, state, "up", "--wait", "--timeout", str(BOOT_TO_SSH), timeout=BOOT_TO_SSH + 120)
        info["up_seconds"] = time.monotonic() - started
        if r.returncode != 0:
            tails = {n: cli(lab, state, "console", n, "--tail", "40").stdout[-1500:] for n in NODES}
            pytest.fail(f"up --wait failed: {r.stderr[-2000:]}; consoles: {tails}")
        for node in NODES:
            assert f"{node} ready after" in r.stderr, r.stderr
            info["ready"][node] = r.stderr.split(f"{node} ready after ")[1].split("s")[0]
        conn = libvirt.open("qemu:///system")
        try:
            info["bridge"] = conn.networkLookupByName(f"{name}-lan").bridgeName()
        finally:
            conn.close()
        assert info["bridge"] in ns.links("bridge"), "the lab's bridge is not in the daemon's namespace"
        print(f"\nreal guests: up {info['up_seconds']:.1f} s, ssh after {info['ready']} s", file=sys.stderr)
        yield info
    finally:
        r, left = destroy_and_look(lab, state, name)
        info["destroy"] = r
        assert r.returncode == 0, r.stderr
        assert left == ([], [], []), f"destroy left {left}"


def test_guests_have_the_seeds_identity(debian_lab):
    lab, state = debian_lab["lab"], debian_lab["state"]
    for node, address in NODES.items():
        r = guest_ssh(lab, state, node, ["hostname"])
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == node
        r = guest_ssh(lab, state, node, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
        assert r.returncode == 0, r.stderr
        assert f" {address}/24 " in r.stdout, r.stdout


def test_cloud_init_read_the_nocloud_seed(debian_lab):
    lab, state = debian_lab["lab"], debian_lab["state"]
    for node in NODES:
        r = guest_ssh(lab, state, node, ["cloud-init", "status", "--wait", "--long"], timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "status: done" in r.stdout
        r = guest_ssh(lab, state, node, ["cat", "/run/cloud-init/status.json"])
        assert r.returncode == 0, r.stderr
        status = json.loads(r.stdout)["v1"]
        assert status["datasource"].startswith("DataSourceNoCloud"), status["datasource"]
        assert "seed=/dev/sr0" in status["datasource"], status["datasource"]      # the virtio-scsi CD-ROM
        assert status["init"]["errors"] == [] and status["modules-final"]["errors"] == [], status


def test_guests_reach_each_other_by_name(debian_lab):
    lab, state = debian_lab["lab"], debian_lab["state"]
    r = guest_ssh(lab, state, "alpha", ["getent", "hosts", "beta"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == NODES["beta"]
    r = guest_ssh(lab, state, "alpha", ["ping", "-c", "1", "-W", "5", "beta"])
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_disk_grew_to_the_nodes_size(debian_lab):
    lab, state = debian_lab["lab"], debian_lab["state"]
    r = guest_ssh(lab, state, "alpha", ["df", "-B1", "--output=size", "/"])
    assert r.returncode == 0, r.stderr
    size = int(r.stdout.split()[-1])
    assert size > 3.5 * 1024**3, f"root filesystem {size} bytes; the node's disk is 4 GiB, the kit's 3 GiB"


def test_default_route_and_dns_through_the_networks_gateway(debian_lab):
    """The default route and the name server: the NAT network's gateway (libvirt's dnsmasq)."""
    lab, state = debian_lab["lab"], debian_lab["state"]
    for node in NODES:
        r = guest_ssh(lab, state, node, ["ip", "-4", "route", "show", "default"])
        assert r.returncode == 0 and f"via {SUBNET}.1 dev eth0" in r.stdout, r.stdout + r.stderr
        r = guest_ssh(lab, state, node, ["cat", "/etc/resolv.conf"])
        assert r.returncode == 0 and f"nameserver {SUBNET}.1" in r.stdout, r.stdout + r.stderr


# A raw DNS query (A record) to the first nameserver in /etc/resolv.conf: /etc/hosts, which names
# every node already, is never read. Prints "NAMESERVER RCODE ANSWERS ADDRESS".
DNS_QUERY = r"""
import socket, struct, sys
ns = next(l.split()[1] for l in open("/etc/resolv.conf") if l.startswith("nameserver"))
q = struct.pack(">6H", 0x4c56, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in sys.argv[1].split(".")) + b"\0" + struct.pack(">2H", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(q, (ns, 53))
r = s.recv(512)
answers = struct.unpack(">H", r[6:8])[0]
print(ns, r[3] & 15, answers, ".".join(map(str, r[-4:])) if answers else "-")
"""


def test_the_lab_networks_dnsmasq_answers_the_nodes_names(debian_lab):
    """Static guests never lease: the names come from the network's <dns><host> entries. Asked
    directly of the gateway's dnsmasq, bypassing /etc/hosts; and the name with the network's domain."""
    lab, state = debian_lab["lab"], debian_lab["state"]
    for name, want in (("beta", NODES["beta"]), (f"alpha.{DOMAIN}", NODES["alpha"])):
        r = guest_ssh(lab, state, "alpha", ["python3", "-c", shlex.quote(DNS_QUERY), name])
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.split() == [f"{SUBNET}.1", "0", "1", want], (name, r.stdout)


def test_a_second_up_changes_nothing(debian_lab):
    """What labvirt wrote (the DNS hosts among it) reads back from the real daemon without a diff."""
    lab, state = debian_lab["lab"], debian_lab["state"]
    r = cli(lab, state, "up")
    assert r.returncode == 0, r.stderr
    assert "nothing to do" in r.stderr, r.stderr


def test_ansible_reaches_every_node_with_labvirts_inventory(debian_lab, tmp_path):
    lab, state = debian_lab["lab"], debian_lab["state"]
    r = cli(lab, state, "inventory")
    assert r.returncode == 0, r.stderr
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(r.stdout)
    ansible = os.path.join(os.path.dirname(sys.executable), "ansible")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "ANSIBLE_HOME": str(tmp_path / "ansible"),
           "ANSIBLE_CONFIG": "", "ANSIBLE_HOST_KEY_CHECKING": "True", "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3"}
    r = subprocess.run(ns.in_netns([ansible, "all", "-i", str(inventory), "-m", "ping", "-o"]), capture_output=True,
                       text=True, env=env, stdin=subprocess.DEVNULL, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert all(f"{node} | SUCCESS" in r.stdout for node in NODES), r.stdout


def test_revert_gives_back_the_files_a_working_ssh_and_the_hosts_clock(debian_lab):
    lab, state = debian_lab["lab"], debian_lab["state"]
    r = cli(lab, state, "snapshot", "pre-packstack")
    assert r.returncode == 0, r.stderr
    assert guest_ssh(lab, state, "alpha", ["touch", "/root/after-the-snapshot"]).returncode == 0
    time.sleep(15)                      # the guest's clock would lag by this much after the revert
    r = labvirt_in_netns(lab, state, "snapshot", "revert", "pre-packstack", "--wait", timeout=400)
    assert r.returncode == 0, r.stderr
    assert "clock not set" not in r.stderr, r.stderr
    r = guest_ssh(lab, state, "alpha", ["date +%s; test -e /root/after-the-snapshot && echo still; true"],
                  timeout=30)              # ssh as soon as revert returns: no STP listening delay
    host_now = time.time()
    assert r.returncode == 0, r.stderr
    guest_now, *rest = r.stdout.split()
    assert rest == [], "the file made after the snapshot is still there"
    assert abs(int(guest_now) - host_now) <= 2, f"guest clock {guest_now}, host {host_now:.0f}"
    assert cli(lab, state, "snapshot", "delete", "pre-packstack").returncode == 0


RUN_OK = """set -e
test "$LABVIRT_CONTROLLER" = "{controller}"
# LABVIRT_SSH is an argv prefix in shell quoting: eval it with the remote command as one word
sha256sum < "$LABVIRT_ANSWERS" | eval "$LABVIRT_SSH 'cat > /root/answers.sha256'"
"""
RUN_FAIL = """set -e
eval "$LABVIRT_SSH 'touch /root/made-by-the-failing-run'"
echo "the installer fails here" >&2
exit 3
"""


def _snapshots(lab, state):
    r = cli(lab, state, "snapshot", "list", "--json")
    assert r.returncode == 0, r.stderr
    return {s["name"]: s["complete"] for s in json.loads(r.stdout)["snapshots"]}


def test_packstack_run_command_works_on_the_controller_and_reverts_on_failure(debian_lab, tmp_path):
    """`packstack run --command`: the command reaches the controller through LABVIRT_SSH (the answer
    file's hash lands there), snapshots pre/post-packstack are taken; a failing command with
    --revert-on-failure brings the guests back to pre-packstack, with ssh working at once."""
    lab, state = debian_lab["lab"], debian_lab["state"]
    ok_script, fail_script = tmp_path / "ok.sh", tmp_path / "fail.sh"
    ok_script.write_text(RUN_OK.format(controller=NODES["alpha"]))
    fail_script.write_text(RUN_FAIL)

    r = labvirt_in_netns(lab, state, "packstack", "run", "--command", f"sh {ok_script}", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    # the answer file labvirt handed the command (LABVIRT_ANSWERS): kept in the lab copy's state
    with open(os.path.join(state, "labs", debian_lab["name"], "_lab", "packstack", "answers.txt"), "rb") as f:
        text = f.read()
    assert f"CONFIG_CONTROLLER_HOST={NODES['alpha']}\n".encode() in text
    assert f"CONFIG_COMPUTE_HOSTS={NODES['beta']}\n".encode() in text
    r = guest_ssh(lab, state, "alpha", ["cat", "/root/answers.sha256"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == hashlib.sha256(text).hexdigest()
    assert _snapshots(lab, state) == {"pre-packstack": True, "post-packstack": True}

    # pre-packstack (kept from the run above) is older than these files: a revert to it removes them
    assert guest_ssh(lab, state, "beta", ["touch", "/root/made-before-the-failing-run"]).returncode == 0
    r = labvirt_in_netns(lab, state, "packstack", "run", "--command", f"sh {fail_script}", "--revert-on-failure",
                         timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "the installer fails here" in r.stderr and "reverted to pre-packstack" in r.stderr, r.stderr
    for node, path in (("alpha", "/root/made-by-the-failing-run"), ("beta", "/root/made-before-the-failing-run"),
                       ("alpha", "/root/answers.sha256")):
        r = guest_ssh(lab, state, node, [f"test -e {path} && echo still-there || echo gone"], timeout=30)
        assert r.returncode == 0, r.stderr                  # ssh works right after the revert
        assert r.stdout.strip() == "gone", (node, path)
    for name in ("post-packstack", "pre-packstack"):
        assert cli(lab, state, "snapshot", "delete", name).returncode == 0


def test_root_password_works_on_the_serial_console(debian_lab):
    lab, state = debian_lab["lab"], debian_lab["state"]
    r = run_cli("password", "-C", lab, env={"LABVIRT_STATE_DIR": state})
    assert r.returncode == 0, r.stderr
    password = r.stdout.strip()
    # two steps, each waiting for its prompt: typed-ahead input could be lost while login starts PAM
    r = cli(lab, state, "console", "beta", "--capture", "90", "--send", "", "--send", "root", "--until", "assword:")
    assert "assword:" in r.stdout, r.stdout[-2000:]
    r = cli(lab, state, "console", "beta", "--capture", "90", "--send", password, "--send", "", "--send", "", "--send", "echo LOGIN-$((6*7))",
            "--until", "root@beta:~#")
    assert "root@beta:~#" in r.stdout, r.stdout[-2000:]     # root's shell prompt: the password was accepted


def test_rebuilt_nodes_keep_their_host_keys(debian_lab):
    """destroy and up again: new guests, same host keys, so ssh (strict, labvirt's known_hosts) just works."""
    lab, state = debian_lab["lab"], debian_lab["state"]
    assert cli(lab, state, "destroy").returncode == 0
    r = labvirt_in_netns(lab, state, "up", "--wait", "--timeout", str(BOOT_TO_SSH), timeout=BOOT_TO_SSH + 120)
    assert r.returncode == 0, r.stderr[-2000:]        # --wait fails at once on a changed host key
    last = guest_ssh(lab, state, "alpha", ["hostname"], timeout=30)
    assert last.returncode == 0 and last.stdout.strip() == "alpha", last.stderr


STAGE = """
[stage]
description = "the network and hostname checks of the course's pre-packstack stage"
snapshot = "pre-packstack"
timeout = 30

[[check]]
name = "hostname"
run = "hostname -s"
output = "^{node}$"

[[check]]
name = "/etc/hosts"
resolves = true

[[check]]
name = "addresses"
addresses = true

[[check]]
name = "reaches the others (lan)"
ping = "lan"

[[check]]
name = "sshd active"
service = "ssh"
state = "active"

[[check]]
name = "a check that must fail"
run = "hostname -s"
output = "^not-{node}$"
nodes = ["beta"]
"""


def test_verify_runs_the_stage_checks_on_the_guests(debian_lab):
    """`labvirt verify` over real ssh: passes where the guest is as the stage expects, fails (with the
    output) where it is not, and the exit code says the stage does not hold."""
    lab, state = debian_lab["lab"], debian_lab["state"]
    os.makedirs(os.path.join(lab, "checks"), exist_ok=True)
    with open(os.path.join(lab, "checks", "network.toml"), "w") as f:
        f.write(STAGE)
    r = labvirt_in_netns(lab, state, "verify", "network", "--json", timeout=300)
    assert r.returncode == 1, r.stderr           # the deliberate failure: the stage does not hold
    report = json.loads(r.stdout)
    outcome = {(x["node"], x["check"]): x["status"] for x in report["results"]}
    for node in NODES:
        for check in ("hostname", "/etc/hosts", "addresses", "reaches the others (lan)", "sshd active"):
            assert outcome[(node, check)] == "passed", (node, check, report)
    assert outcome[("beta", "a check that must fail")] == "failed"
    os.remove(os.path.join(lab, "checks", "network.toml"))


def test_destroy_leaves_nothing(debian_lab, request):
    """Runs last in this module: destroy through the CLI, then look for every kind of leftover."""
    import libvirt

    lab, state, name = debian_lab["lab"], debian_lab["state"], debian_lab["name"]
    r = cli(lab, state, "destroy")
    assert r.returncode == 0, r.stderr
    conn = libvirt.open("qemu:///system")
    try:
        doms, nets, pools = lab_objects(conn, name)
        vols = [v.name() for p in conn.listAllStoragePools() for v in (p.listAllVolumes() if p.isActive() else [])
                if v.path().startswith(debian_lab["pool_dir"])]
    finally:
        conn.close()
    assert (doms, nets, pools, vols) == ([], [], [], [])
    assert debian_lab["bridge"] not in ns.links("bridge")          # other tests' bridges may come and go
    procs = [ns.cmdline(p) for p in ns.pids()]
    assert [c for c in procs if f"guest={name}-" in c] == []                       # QEMU
    assert [c for c in procs if "dnsmasq" in c and f"/{name}-" in c] == []        # the network's dnsmasq
    assert not os.path.exists(debian_lab["pool_dir"]) or os.listdir(debian_lab["pool_dir"]) == []
