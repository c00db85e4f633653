"""The engine on a real libvirtd with QEMU (software emulation): up, no-op, status, down, destroy,
foreign objects, interruption at any point, two processes at once. Networks are isolated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zlib

import libvirt
import pytest

from .conftest import run_cli, small_lab

pytestmark = pytest.mark.daemon


def inventory(uri, prefix):
    """Everything on the daemon whose name starts with `prefix`, read with libvirt directly."""
    conn = libvirt.open(uri)
    try:
        doms = {d.name(): d.state()[0] for d in conn.listAllDomains() if d.name().startswith(prefix)}
        nets = {n.name(): bool(n.isActive()) for n in conn.listAllNetworks() if n.name().startswith(prefix)}
        pools = {p.name() for p in conn.listAllStoragePools() if p.name().startswith(f"labvirt-{prefix}")}
        return doms, nets, pools
    finally:
        conn.close()


@pytest.fixture
def lab(tmp_path, daemon, request):
    """A small lab on unique isolated subnets; removed afterwards whatever the test did."""
    n = 10 + zlib.crc32(request.node.name.encode()) % 180     # stable across runs (hash() is salted)
    directory = small_lab(tmp_path, subnet_a=f"10.251.{n}.0/24", subnet_b=f"10.252.{n}.0/24")
    name = os.path.basename(os.path.dirname(directory))
    with open(os.path.join(directory, "lab.toml")) as f:
        name = f.read().split('"')[1]
    yield directory, name
    run_cli("destroy", "-C", directory, "-c", daemon)
    assert inventory(daemon, name) == ({}, {}, set())


def test_up_noop_status_down_up_destroy(lab, daemon):
    directory, name = lab
    r = run_cli("up", "-C", directory, "-c", daemon)
    assert r.returncode == 0, r.stderr
    doms, nets, pools = inventory(daemon, name)
    assert set(doms.values()) == {libvirt.VIR_DOMAIN_RUNNING} and len(doms) == 2
    assert set(nets.values()) == {True} and pools == {f"labvirt-{name}"}
    r = run_cli("up", "-C", directory, "-c", daemon)
    assert r.returncode == 0 and "nothing to do" in r.stderr
    r = run_cli("status", "-C", directory, "-c", daemon, "--json")
    data = json.loads(r.stdout)
    assert data["drift"] == [] and {n["state"] for n in data["nodes"]} == {"running"}
    assert not data["simulated"]
    r = run_cli("down", "-C", directory, "-c", daemon, "--timeout", "1")
    assert r.returncode == 0, r.stderr
    assert set(inventory(daemon, name)[0].values()) == {libvirt.VIR_DOMAIN_SHUTOFF}
    assert run_cli("up", "-C", directory, "-c", daemon).returncode == 0
    assert set(inventory(daemon, name)[0].values()) == {libvirt.VIR_DOMAIN_RUNNING}
    # disks are real qcow2 files in the lab's pool directory
    pool_dir = os.path.join(os.path.dirname(directory), "pool", name)
    assert sorted(os.listdir(pool_dir)) == ["alpha.qcow2", "beta.qcow2"]
    r = run_cli("destroy", "-C", directory, "-c", daemon)
    assert r.returncode == 0, r.stderr
    assert inventory(daemon, name) == ({}, {}, set())
    assert not os.path.exists(pool_dir)


def test_nic_added_to_a_running_node_is_attached_live(lab, daemon):
    directory, name = lab
    node = os.path.join(directory, "domains", "alpha.toml")
    with open(node) as f:
        text = f.read()
    with open(node, "w") as f:     # start with eth0 only
        f.write(text[: text.index("[[nic]]", text.index("[[nic]]") + 1)])
    assert run_cli("up", "-C", directory, "-c", daemon).returncode == 0
    with open(node, "w") as f:     # the course's "add eth1 on the internal network"
        f.write(text)
    r = run_cli("up", "-C", directory, "-c", daemon)
    assert r.returncode == 0, r.stderr
    conn = libvirt.open(daemon)
    try:
        dom = conn.lookupByName(f"{name}-alpha")
        live = dom.XMLDesc(0).count("<interface ")
        persistent = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).count("<interface ")
        assert (live, persistent) == (2, 2) and dom.isActive()
        # eth1's static address: a DHCP reservation and a DNS name, in the running dnsmasq too
        net = conn.networkLookupByName(f"{name}-b")
        for xml in (net.XMLDesc(0), net.XMLDesc(libvirt.VIR_NETWORK_XML_INACTIVE)):
            assert "<hostname>alpha</hostname>" in xml and 'name="alpha"' in xml.replace("'", '"')
    finally:
        conn.close()
    r = run_cli("up", "-C", directory, "-c", daemon)
    assert "nothing to do" in r.stderr


def test_foreign_domain_is_refused_and_left_alone(lab, daemon):
    directory, name = lab
    conn = libvirt.open(daemon)
    try:
        conn.defineXML(f"<domain type='qemu'><name>{name}-alpha</name><memory unit='MiB'>64</memory>"
                       "<os><type arch='x86_64'>hvm</type></os></domain>")
        r = run_cli("up", "-C", directory, "-c", daemon)
        assert r.returncode == 1 and "no labvirt metadata" in r.stderr
        assert inventory(daemon, name) == ({f"{name}-alpha": libvirt.VIR_DOMAIN_SHUTOFF}, {}, set())
        run_cli("destroy", "-C", directory, "-c", daemon)
        assert f"{name}-alpha" in inventory(daemon, name)[0]
    finally:
        conn.lookupByName(f"{name}-alpha").undefine()
        conn.close()


@pytest.mark.parametrize("kill_after", [0.35, 0.6, 0.9])
def test_killed_up_is_finished_by_a_rerun_and_removed_by_destroy(lab, daemon, kill_after):
    """SIGKILL `up` part-way (the moment varies); whatever it left, a re-run completes it."""
    directory, name = lab
    env = dict(os.environ)
    p = subprocess.Popen([sys.executable, "-m", "labvirt", "up", "-C", directory, "-c", daemon, "--workers", "1"],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    time.sleep(kill_after)
    p.send_signal(signal.SIGKILL)
    p.wait()
    r = run_cli("up", "-C", directory, "-c", daemon)
    assert r.returncode == 0, r.stderr
    doms, nets, pools = inventory(daemon, name)
    assert set(doms.values()) == {libvirt.VIR_DOMAIN_RUNNING} and len(doms) == 2 and all(nets.values())
    assert "nothing to do" in run_cli("up", "-C", directory, "-c", daemon).stderr


def test_interrupted_up_is_removed_by_destroy(lab, daemon):
    directory, name = lab
    p = subprocess.Popen([sys.executable, "-m", "labvirt", "up", "-C", directory, "-c", daemon, "--workers", "1"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    p.wait()
    r = run_cli("destroy", "-C", directory, "-c", daemon)
    assert r.returncode == 0, r.stderr
    assert inventory(daemon, name) == ({}, {}, set())


def test_two_processes_on_one_lab_do_not_race(lab, daemon):
    directory, name = lab
    from labvirt.ops.session import lab_lock

    with lab_lock(name, "", daemon):
        r = run_cli("up", "-C", directory, "-c", daemon)
    assert r.returncode == 1 and "busy" in r.stderr and str(os.getpid()) in r.stderr
    assert inventory(daemon, name) == ({}, {}, set())
