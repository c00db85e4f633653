"""Whole-lab snapshots on the simulator and a real daemon; addresses and console behaviour."""

from __future__ import annotations

import json
import os
import subprocess

import libvirt
import pytest

from labvirt.ops import snapshots
from labvirt.core.observed import ObservedDisk, ObservedDomain

from .conftest import run_cli, small_lab


def states(uri, prefix):
    conn = libvirt.open(uri) if not uri.startswith("sim") else None
    if conn is None:
        from labvirt.driver import simulator as sim

        path = os.path.join(sim.sim_dir(uri.split("///")[-1] if "///" in uri else "default"), "node.xml")
        conn = libvirt.open(f"test://{path}")
    try:
        return {d.name(): (d.state()[0], sorted(d.snapshotListNames())) for d in conn.listAllDomains()
                if d.name().startswith(prefix)}
    finally:
        conn.close()


def test_description_round_trip():
    text = snapshots.encode_description("before packstack", "running")
    assert snapshots.decode_description(text) == ("before packstack", "running")
    assert snapshots.decode_description("hand made") == ("hand made", None)


def test_raw_disk_is_refused_before_anything_happens():
    node = ObservedDomain(name="x-a", uuid="u", owner=None, state="running",
                          disk_devices=(ObservedDisk("vda", "disk", "raw", "/a.img"),))
    with pytest.raises(snapshots.SnapshotError, match="disk vda is raw; internal snapshots need qcow2"):
        snapshots._snapshot_xml(node, "s", "")


def test_seed_cdrom_is_excluded_from_the_snapshot():
    node = ObservedDomain(name="x-a", uuid="u", owner=None, state="running",
                          disk_devices=(ObservedDisk("vda", "disk", "qcow2", "/a.qcow2"),
                                        ObservedDisk("sda", "cdrom", "raw", "/a-seed.iso")))
    xml = snapshots._snapshot_xml(node, "s", "d")
    assert '<disk name="vda" snapshot="internal"/>' in xml and '<disk name="sda" snapshot="no"/>' in xml


def test_snapshot_cycle_on_the_simulator(tmp_path):
    lab = small_lab(tmp_path, name="snaplab")
    assert run_cli("up", "-C", lab, "-c", "sim").returncode == 0
    r = run_cli("snapshot", "pre-packstack", "-C", lab, "-c", "sim", "-d", "before the install")
    assert r.returncode == 0, r.stderr
    assert run_cli("down", "-C", lab, "-c", "sim").returncode == 0
    assert {s for s, _ in states("sim", "snaplab").values()} == {libvirt.VIR_DOMAIN_SHUTOFF}
    r = run_cli("snapshot", "pre-packstack", "-C", lab, "-c", "sim")
    assert r.returncode == 1 and "already exists" in r.stderr
    assert run_cli("snapshot", "off", "-C", lab, "-c", "sim").returncode == 0
    r = run_cli("snapshot", "list", "-C", lab, "-c", "sim", "--json")
    data = json.loads(r.stdout)["snapshots"]
    assert [s["name"] for s in data] == ["pre-packstack", "off"]
    pre = data[0]
    assert pre["description"] == "before the install" and pre["complete"]
    assert {n["state"] for n in pre["nodes"].values()} == {"running"}      # not "paused"
    assert {n["state"] for n in data[1]["nodes"].values()} == {"shutoff"}
    # revert brings back running nodes from a shut-off lab, and back
    r = run_cli("snapshot", "revert", "pre-packstack", "-C", lab, "-c", "sim")
    assert r.returncode == 0, r.stderr
    assert {s for s, _ in states("sim", "snaplab").values()} == {libvirt.VIR_DOMAIN_RUNNING}
    assert run_cli("snapshot", "revert", "off", "-C", lab, "-c", "sim").returncode == 0
    assert {s for s, _ in states("sim", "snaplab").values()} == {libvirt.VIR_DOMAIN_SHUTOFF}
    status = json.loads(run_cli("status", "-C", lab, "-c", "sim", "--json").stdout)
    assert {n["current_snapshot"] for n in status["nodes"]} == {"off"}
    assert run_cli("snapshot", "delete", "pre-packstack", "-C", lab, "-c", "sim").returncode == 0
    assert {tuple(s) for _, s in states("sim", "snaplab").values()} == {("off",)}
    r = run_cli("snapshot", "revert", "pre-packstack", "-C", lab, "-c", "sim")
    assert r.returncode == 1 and "missing" in r.stderr
    assert run_cli("destroy", "-C", lab, "-c", "sim").returncode == 0
    assert states("sim", "snaplab") == {}


def test_snapshot_before_up_says_so(tmp_path):
    r = run_cli("snapshot", "s1", "-C", small_lab(tmp_path), "-c", "sim")
    assert r.returncode == 1 and "run 'labvirt up' first" in r.stderr


def test_ip_and_console_on_the_simulator(tmp_path):
    lab = small_lab(tmp_path, name="iplab")
    run_cli("up", "-C", lab, "-c", "sim")
    r = run_cli("ip", "alpha", "--wait", "--json", "-C", lab, "-c", "sim")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["simulated"] and data["nodes"][0]["nics"][0]["observed"] == [
        {"ip": data["nodes"][0]["nics"][0]["planned"], "source": "plan (simulated)"}]
    r = run_cli("console", "alpha", "-C", lab, "-c", "sim")
    assert r.returncode == 1 and "simulated nodes have no console" in r.stderr
    r = run_cli("ip", "gamma", "-C", lab, "-c", "sim")
    assert r.returncode == 1 and "no node 'gamma'" in r.stderr


@pytest.mark.daemon
def test_all_or_nothing_when_one_node_fails(tmp_path, daemon):
    """alpha runs; beta is shut off and its qcow2 was replaced by a raw file: its snapshot fails,
    so alpha's (already taken) snapshot must be removed and alpha must be running again."""
    lab = small_lab(tmp_path, subnet_a="10.251.201.0/24", subnet_b="10.252.201.0/24")
    name = open(os.path.join(lab, "lab.toml")).read().split('"')[1]
    try:
        assert run_cli("up", "-C", lab, "-c", daemon).returncode == 0
        conn = libvirt.open(daemon)
        conn.lookupByName(f"{name}-beta").destroy()
        disk = os.path.join(os.path.dirname(lab), "pool", name, "beta.qcow2")
        os.unlink(disk)
        subprocess.run(["truncate", "-s", "64M", disk], check=True)
        conn.close()
        r = run_cli("snapshot", "pre-packstack", "-C", lab, "-c", daemon)
        assert r.returncode == 1
        assert f"failed on {name}-beta" in r.stderr and "removed it from the 1 nodes" in r.stderr
        got = states(daemon, name)
        assert got == {f"{name}-alpha": (libvirt.VIR_DOMAIN_RUNNING, []), f"{name}-beta": (libvirt.VIR_DOMAIN_SHUTOFF, [])}
    finally:
        run_cli("destroy", "-C", lab, "-c", daemon)
    assert states(daemon, name) == {}


@pytest.mark.daemon
def test_snapshot_with_memory_and_revert_on_a_real_daemon(tmp_path, daemon):
    lab = small_lab(tmp_path, subnet_a="10.251.202.0/24", subnet_b="10.252.202.0/24", boot="seed = true")
    name = open(os.path.join(lab, "lab.toml")).read().split('"')[1]
    try:
        assert run_cli("up", "-C", lab, "-c", daemon).returncode == 0
        r = run_cli("snapshot", "pre-packstack", "-C", lab, "-c", daemon)       # seed CD-ROM attached
        assert r.returncode == 0, r.stderr
        assert run_cli("down", "-C", lab, "-c", daemon, "--timeout", "0").returncode == 0
        r = run_cli("snapshot", "revert", "pre-packstack", "-C", lab, "-c", daemon)
        assert r.returncode == 0, r.stderr
        assert {s for s, _ in states(daemon, name).values()} == {libvirt.VIR_DOMAIN_RUNNING}
        conn = libvirt.open(daemon)
        snap = conn.lookupByName(f"{name}-alpha").snapshotLookupByName("pre-packstack")
        assert "<memory snapshot='internal'/>" in snap.getXMLDesc(0)
        conn.close()
    finally:
        run_cli("destroy", "-C", lab, "-c", daemon)
    assert states(daemon, name) == {}


@pytest.mark.daemon
def test_ip_wait_times_out_naming_the_sources(tmp_path, daemon):
    """Nodes run with no OS: no lease ever comes. The message says what each source answered."""
    lab = small_lab(tmp_path, subnet_a="10.251.203.0/24", subnet_b="10.252.203.0/24")
    try:
        assert run_cli("up", "-C", lab, "-c", daemon).returncode == 0
        r = run_cli("ip", "alpha", "--wait", "--timeout", "1.5", "-C", lab, "-c", daemon)
        assert r.returncode == 1
        assert "no address observed for alpha within 1.5s" in r.stderr
        assert "lease:" in r.stderr and "agent:" in r.stderr and "arp:" in r.stderr
    finally:
        run_cli("destroy", "-C", lab, "-c", daemon)
