"""packstack answers and run through the CLI; the run's snapshots on the simulator and a real daemon.

The remote command is substituted (--command) by one that succeeds or fails: no packstack, no ssh.
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from .conftest import EXAMPLES, ROOT, run_cli, small_lab

ROLES = {"alpha": "controller", "beta": "compute"}


def snaps(lab, uri):
    r = run_cli("snapshot", "list", "--json", "-C", lab, "-c", uri)
    return [s["name"] for s in json.loads(r.stdout)["snapshots"] if s["complete"]]


@pytest.mark.parametrize("example,ctl,computes,iface", [
    ("standard", "192.168.90.100", "192.168.90.110", "br-ex:eth0"),
    ("three-node", "192.168.1.100", "192.168.1.101,192.168.1.102", "br-ex:eth1")])
def test_answers_for_both_example_labs(example, ctl, computes, iface):
    r = run_cli("packstack", "answers", "--json", "-C", EXAMPLES[example], "-c", "sim")
    assert r.returncode == 0, r.stderr
    a = json.loads(r.stdout)
    assert a["CONFIG_CONTROLLER_HOST"] == ctl and a["CONFIG_COMPUTE_HOSTS"] == computes
    assert a["CONFIG_MARIADB_HOST"] == a["CONFIG_AMQP_HOST"] == ctl
    assert a["CONFIG_NEUTRON_OVS_BRIDGE_MAPPINGS"] == "extnet:br-ex" and a["CONFIG_NEUTRON_OVS_BRIDGE_IFACES"] == iface
    assert a["CONFIG_HEAT_INSTALL"] == "y" and a["CONFIG_KEYSTONE_ADMIN_PW"] == "********"


def test_virt_type_follows_the_nested_verdict():
    from labvirt.driver import simulator as sim

    sim.create_host("pvm", profile="pvm")
    sim.create_host("nonest", profile="intel-no-nested")
    for uri, want in (("sim", "kvm"), ("sim:///pvm", "qemu"), ("sim:///nonest", "qemu")):
        r = run_cli("packstack", "answers", "--json", "-C", EXAMPLES["three-node"], "-c", uri)
        assert json.loads(r.stdout)["CONFIG_NOVA_LIBVIRT_VIRT_TYPE"] == want, uri


def test_apply_keeps_the_file_and_writes_0600(tmp_path):
    out = tmp_path / "answers.txt"
    sample = os.path.join(ROOT, "tests", "data", "packstack", "epoxy-26.0.0.txt")   # as packstack wrote it
    r = run_cli("packstack", "answers", "--apply", sample, "-o", str(out), "-C", EXAMPLES["three-node"], "-c", "sim")
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    text = out.read_text()
    assert "CONFIG_CONTROLLER_HOST=192.168.1.100\n" in text and "********" not in text
    original = open(sample).read().splitlines()
    changed = [a for a, b in zip(original, text.splitlines()) if a != b]
    assert all(line.startswith("CONFIG_") for line in changed)          # comments and sections untouched


def packstack_lab(tmp_path, **kw):
    lab = small_lab(tmp_path, roles=ROLES, **kw)
    with open(os.path.join(lab, "lab.toml"), "a") as f:      # isolated test networks: name them
        f.write('[packstack]\nmanagement_network = "a"\nprovider_network = "b"\n')
    return lab


def run_cycle(lab, uri):
    ok = run_cli("packstack", "run", "--command", "sh -c 'echo installing from $LABVIRT_ANSWERS; exit 0'",
                 "-C", lab, "-c", uri)
    assert ok.returncode == 0, ok.stderr
    assert "installing from" in ok.stderr and snaps(lab, uri) == ["pre-packstack", "post-packstack"]
    bad = run_cli("packstack", "run", "--command", "sh -c 'echo ERROR : boom; exit 3'", "-C", lab, "-c", uri)
    assert bad.returncode == 1
    assert "packstack failed (exit 3)" in bad.stderr and "labvirt snapshot revert pre-packstack" in bad.stderr
    log = bad.stderr.split("log: ")[1].split(";")[0]
    assert "ERROR : boom" in open(log).read() and stat.S_IMODE(os.stat(log).st_mode) == 0o600
    assert snaps(lab, uri) == ["pre-packstack", "post-packstack"]       # pre kept, post from the good run
    r = run_cli("packstack", "run", "--revert-on-failure", "--command", "false", "-C", lab, "-c", uri)
    assert r.returncode == 1 and "reverted to pre-packstack" in r.stderr
    status = json.loads(run_cli("status", "--json", "-C", lab, "-c", uri).stdout)
    assert {n["current_snapshot"] for n in status["nodes"]} == {"pre-packstack"}
    assert {n["state"] for n in status["nodes"]} == {"running"}


def test_run_on_the_simulator(tmp_path):
    lab = packstack_lab(tmp_path)
    assert run_cli("up", "-C", lab, "-c", "sim").returncode == 0
    r = run_cli("packstack", "run", "-C", lab, "-c", "sim")
    assert r.returncode == 1 and "no controller to run packstack on" in r.stderr and snaps(lab, "sim") == []
    run_cycle(lab, "sim")


@pytest.mark.daemon
def test_run_on_a_real_daemon(tmp_path, daemon):
    lab = packstack_lab(tmp_path, subnet_a="10.251.230.0/24", subnet_b="10.252.230.0/24")
    try:
        assert run_cli("up", "-C", lab, "-c", daemon).returncode == 0
        run_cycle(lab, daemon)
    finally:
        run_cli("destroy", "-C", lab, "-c", daemon)
