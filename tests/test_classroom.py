"""Class mode: allocation, placement and the class commands on simulated hosts (and a real daemon)."""

from __future__ import annotations

import json
import os
from ipaddress import ip_network

import libvirt
import pytest

from labvirt.core import class_layout as cr
from labvirt.driver import simulator as sim
from labvirt.ops import class_record
from labvirt.core.capacity import Capacity, Needs, Overcommit
from labvirt.core.loader import load_lab

from .conftest import EXAMPLES, run_cli, small_lab

GiB = 2**30


def test_student_names_and_roster():
    assert cr.student_names(3) == ["s01", "s02", "s03"] and cr.student_names(120)[0] == "s001"
    assert cr.parse_roster("alice\n# absent\n\nbob  # late\n", "r.txt") == ["alice", "bob"]
    with pytest.raises(Exception, match="r.txt: line 2: student 'Bob Smith'"):
        cr.parse_roster("alice\nBob Smith\n", "r.txt")
    with pytest.raises(Exception, match="listed twice"):
        cr.parse_roster("a\na\n", "r.txt")


def test_subnets_are_disjoint_deterministic_and_avoid_what_exists():
    spec = load_lab(EXAMPLES["three-node-nat"])
    taken = [ip_network("10.100.0.0/24"), ip_network("10.100.3.0/24")]
    got = cr.allocate_subnets(spec, cr.student_names(40), ip_network("10.100.0.0/16"), taken, {})
    assert got == cr.allocate_subnets(spec, cr.student_names(40), ip_network("10.100.0.0/16"), taken, {})
    nets = [ip_network(s) for rec in got.values() for s in rec.values()]
    assert len(nets) == 80 and all(not a.overlaps(b) for i, a in enumerate(nets) for b in nets[:i])
    assert not any(n.overlaps(t) for n in nets for t in taken)
    assert all(n.prefixlen == 24 for n in nets)
    # recorded students keep theirs; a new one does not take them
    more = cr.allocate_subnets(spec, ["s01", "zed"], ip_network("10.100.0.0/16"), taken, got)
    assert more["s01"] == got["s01"] and ip_network(more["zed"]["mgmt"]) not in nets


def test_pool_default_network_is_never_used():
    spec = load_lab(EXAMPLES["three-node"])
    got = cr.allocate_subnets(spec, ["a"], ip_network("192.168.120.0/22"), [], {})
    assert "192.168.122.0/24" not in got["a"].values()


def test_full_pool_is_refused():
    spec = load_lab(EXAMPLES["three-node-nat"])
    with pytest.raises(Exception, match="subnet pool 10.9.0.0/23 is full"):
        cr.allocate_subnets(spec, ["a", "b"], ip_network("10.9.0.0/23"), [], {})


def test_placement_by_capacity_is_deterministic_and_refuses_what_does_not_fit():
    one = Needs(vcpus=4, memory=4 * GiB, disk=10 * GiB)
    hosts = [("big", Capacity(64, 64 * GiB, 1000 * GiB), Overcommit()),
             ("small", Capacity(8, 16 * GiB, 1000 * GiB), Overcommit())]
    got = cr.place(cr.student_names(20), one, hosts, {})
    assert got == cr.place(cr.student_names(20), one, hosts, {})
    counts = {h: list(got.values()).count(h) for h in ("big", "small")}
    assert counts == {"big": 16, "small": 4}                     # each host up to its memory
    kept = cr.place(["s01", "s02"], one, hosts, {"s01": "small"})
    assert kept["s01"] == "small"
    with pytest.raises(cr.ClassDoesNotFit) as e:
        cr.place(cr.student_names(21), one, hosts, {})
    rows = {r["uri"]: r for r in e.value.rows}
    assert rows["big"]["fits"] == 16 and rows["small"]["fits"] == 4
    assert any("memory" in x for x in rows["small"]["lacks"])


def host_view(name):
    path = os.path.join(sim.sim_dir(name), "node.xml")
    conn = libvirt.open(f"test://{path}")
    try:
        doms = {d.name(): d.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) for d in conn.listAllDomains()}
        nets = {n.name(): n.XMLDesc(0) for n in conn.listAllNetworks()}
        vols = {f"{p.name()}/{v.name()}" for p in conn.listAllStoragePools() for v in p.listAllVolumes()}
        snaps = {d.name(): d.snapshotListNames() for d in conn.listAllDomains()}
        return doms, nets, vols, snaps
    finally:
        conn.close()


def test_thirty_copies_without_collision_rebuild_one_destroy_all():
    sim.create_host("big", cpus=512, memory=1024 * GiB, disk=20 * 1024 * GiB)
    lab = EXAMPLES["three-node"]
    r = run_cli("class", "up", "--students", "30", "-C", lab, "-c", "sim:///big")
    assert r.returncode == 0, r.stderr
    doms, nets, vols, _ = host_view("big")
    from lxml import etree

    macs, bridges, subnets = [], [], []
    for xml in doms.values():
        macs += etree.fromstring(xml.encode()).xpath("//interface/mac/@address")
    for name, xml in nets.items():
        if name == "default":
            continue
        root = etree.fromstring(xml.encode())
        bridges.append(root.find("bridge").get("name"))
        subnets.append(ip_network(f"{root.find('ip').get('address')}/{root.find('ip').get('netmask')}", strict=False))
    assert len(doms) == 90 and len(set(doms)) == 90
    assert len(macs) == 180 and len(set(macs)) == 180
    # mgmt is labvirt's (one per student); provider is the host's bridge br0, shared by all
    assert len(bridges) == 30 and len(set(bridges)) == 30 and all(len(b) <= 15 for b in bridges)
    assert len(subnets) == 30 and all(not a.overlaps(b) for i, a in enumerate(subnets) for b in subnets[:i])
    assert not any(s.overlaps(ip_network("192.168.122.0/24")) for s in subnets)
    assert sum(xml.count("<source bridge=\"br0\"/>") + xml.count("<source bridge='br0'/>") for xml in doms.values()) == 90
    from labvirt.ops.class_record import load_record

    given = [a for rec in load_record("openstack3").students.values() for a in rec["addresses"]["provider"].values()]
    assert len(given) == 90 and len(set(given)) == 90          # [class.external] provider = "10.5.116.128/25"
    assert all(ip_network(f"{a}/32").subnet_of(ip_network("10.5.116.128/25")) for a in given)

    # a single-lab command on one student's copy
    r = run_cli("status", "--student", "s07", "--json", "-C", lab)
    data = json.loads(r.stdout)
    assert data["student"] == "s07" and {n["state"] for n in data["nodes"]} == {"running"}
    ctl = next(n for n in data["nodes"] if n["name"] == "controller")
    assert ctl["nics"][0]["planned"].endswith(".100")              # host part kept in the student's subnet

    # snapshot everyone, rebuild one: the others are untouched, the rebuilt one lost its snapshot
    assert run_cli("class", "snapshot", "pre-packstack", "-C", lab, "-c", "sim:///big").returncode == 0
    before = host_view("big")
    r = run_cli("class", "rebuild", "--student", "s07", "-C", lab, "-c", "sim:///big")
    assert r.returncode == 0, r.stderr
    after = host_view("big")
    others = [d for d in before[0] if "-s07-" not in d]
    assert {d: before[0][d] for d in others} == {d: after[0][d] for d in others}
    assert {d: before[3][d] for d in others} == {d: after[3][d] for d in others}
    assert all(after[3][d] == [] for d in after[0] if "-s07-" in d)
    assert before[2] == after[2] and set(before[1]) == set(after[1])

    r = run_cli("class", "status", "--json", "-C", lab, "-c", "sim:///big")
    assert len(json.loads(r.stdout)["students"]) == 30
    assert run_cli("class", "destroy", "-C", lab, "-c", "sim:///big").returncode == 0
    doms, nets, vols, _ = host_view("big")
    assert doms == {} and set(nets) == {"default"}
    assert [v.split("/")[0] for v in vols] == ["labvirt-images"]      # the shared golden image stays


def test_one_students_failure_is_isolated(tmp_path):
    lab = small_lab(tmp_path, name="cls")
    sim.create_host("h", cpus=64, memory=256 * GiB, disk=4096 * GiB)
    with sim.SimDriver(sim.load_host("h")) as d:      # someone else's domain with s02's node name
        d.conn.defineXML("<domain type='test'><name>cls-s02-alpha</name><memory>1024</memory>"
                         "<os><type>hvm</type></os></domain>")
    r = run_cli("class", "up", "-n", "3", "-C", lab, "-c", "sim:///h")
    assert r.returncode == 1
    assert "failed: s02" in r.stderr and "no labvirt metadata" in r.stderr
    doms = host_view("h")[0]
    assert {"cls-s01-alpha", "cls-s01-beta", "cls-s03-alpha", "cls-s03-beta", "cls-s02-alpha"} == set(doms)


def test_class_up_and_rebuild_wait_for_each_students_nodes(tmp_path):
    """--wait runs the single-lab wait on each student's copy (the real guests: test_real_guest_class)."""
    lab = small_lab(tmp_path, name="cw")
    sim.create_host("w", cpus=64, memory=256 * GiB, disk=4096 * GiB)
    r = run_cli("class", "up", "-n", "2", "--wait", "--timeout", "30", "-C", lab, "-c", "sim:///w")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("2 nodes ready after") == 2, r.stderr
    r = run_cli("class", "rebuild", "-s", "s02", "--wait", "-C", lab, "-c", "sim:///w")
    assert r.returncode == 0, r.stderr
    assert "s02: rebuilt: " in r.stderr and "2 nodes ready after" in r.stderr, r.stderr
    r = run_cli("class", "up", "-n", "2", "--no-start", "--wait", "-C", lab, "-c", "sim:///w")
    assert r.returncode == 0 and "ready after" not in r.stderr, r.stderr     # nothing started, nothing to wait for


def class_on_hosts_a_and_b(lab, pool):
    """Give the lab a [class] table: subnet pool `pool`, simulated hosts a and b."""
    with open(os.path.join(lab, "lab.toml"), "a") as f:
        f.write(f'[class]\nsubnet_pool = "{pool}"\n[[class.host]]\nuri = "sim:///a"\n'
                '[[class.host]]\nuri = "sim:///b"\n')
    return lab


def test_placement_across_simulated_hosts_and_refusal(tmp_path):
    sim.create_host("a", cpus=8, memory=4 * GiB, disk=100 * GiB)
    sim.create_host("b", cpus=8, memory=2 * GiB, disk=100 * GiB)
    lab = class_on_hosts_a_and_b(small_lab(tmp_path, name="pl", memory="256MiB"), "10.77.0.0/16")
    r = run_cli("class", "up", "-n", "30", "-C", lab)
    assert r.returncode == 1 and "does not fit" in r.stderr and "sim:///b" in r.stderr
    assert host_view("a")[0] == {} and host_view("b")[0] == {}      # nothing created
    r = run_cli("class", "up", "-n", "4", "-C", lab)
    assert r.returncode == 0, r.stderr
    on_a, on_b = len(host_view("a")[0]), len(host_view("b")[0])
    assert on_a + on_b == 8 and on_a >= on_b > 0
    record = json.load(open(class_record.record_path("pl")))
    assert {s["host"] for s in record["students"].values()} == {"sim:///a", "sim:///b"}
    assert run_cli("class", "destroy", "-C", lab).returncode == 0
    assert host_view("a")[0] == {} and host_view("b")[0] == {}


def test_bad_class_table_is_refused(tmp_path):
    lab = small_lab(tmp_path)
    with open(os.path.join(lab, "lab.toml"), "a") as f:
        f.write('[class]\nsubnet_pool = "10.77.0.1/16"\n')
    r = run_cli("plan", "--offline", "-C", lab)
    assert r.returncode == 2 and "lab.toml: class.subnet_pool" in r.stderr


@pytest.mark.daemon
def test_class_on_a_real_daemon(tmp_path, daemon):
    lab = small_lab(tmp_path, memory="64MiB", subnet_a="10.251.220.0/24", subnet_b="10.252.220.0/24")
    name = open(os.path.join(lab, "lab.toml")).read().split('"')[1]
    with open(os.path.join(lab, "lab.toml"), "a") as f:
        f.write('[class]\nsubnet_pool = "10.253.0.0/20"\n')
    try:
        r = run_cli("class", "up", "-n", "2", "-C", lab, "-c", daemon)
        assert r.returncode == 0, r.stderr
        r = run_cli("class", "rebuild", "-s", "s01", "-C", lab, "-c", daemon)
        assert r.returncode == 0, r.stderr
        data = json.loads(run_cli("class", "status", "--json", "-C", lab, "-c", daemon).stdout)
        assert [[n["state"] for n in s["nodes"]] for s in data["students"]] == [["running"] * 2] * 2
    finally:
        run_cli("class", "destroy", "-C", lab, "-c", daemon)
    conn = libvirt.open(daemon)
    try:
        assert not [d for d in conn.listAllDomains() if d.name().startswith(name)]
        assert not [n for n in conn.listAllNetworks() if n.name().startswith(name)]
    finally:
        conn.close()


def test_check_students_answers_per_host_without_creating_anything(tmp_path):
    sim.create_host("a", cpus=8, memory=16 * GiB, disk=500 * GiB)
    sim.create_host("b", cpus=4, memory=8 * GiB, disk=500 * GiB)
    lab = class_on_hosts_a_and_b(small_lab(tmp_path, name="fit", memory="1GiB"), "10.78.0.0/16")
    r = run_cli("check", "--students", "6", "--json", "-C", lab)    # 2 x (1 GiB + QEMU overhead) a copy
    fit = json.loads(r.stdout)["class"]
    assert fit["fits"] and [h["students"] for h in fit["hosts"]] == [4, 2]    # most memory left first
    a = next(h for h in fit["hosts"] if h["uri"] == "sim:///a")
    memory = next(u for u in a["use"] if u["resource"] == "memory")
    assert memory["ok"] and memory["have"] == 16 * GiB and 0 < memory["without_overcommit"] <= 1
    r = run_cli("check", "--students", "40", "--json", "-C", lab)
    assert r.returncode == 1
    fit = json.loads(r.stdout)["class"]
    assert not fit["fits"] and all(h["lacks"] for h in fit["hosts"])
    assert host_view("a")[0] == {} and host_view("b")[0] == {}
    assert not os.path.exists(class_record.record_path("fit"))


def test_roster_by_names_and_by_file(tmp_path):
    sim.create_host("r", cpus=64, memory=64 * GiB, disk=1024 * GiB)
    lab = small_lab(tmp_path, name="ros", memory="256MiB")
    roster = tmp_path / "roster.txt"
    roster.write_text("carol\n# dave is away\n\nerin\n")
    assert run_cli("class", "up", "--roster", "alice,bob", "-C", lab, "-c", "sim:///r").returncode == 0
    r = run_cli("class", "up", "--roster", str(roster), "-C", lab, "-c", "sim:///r")
    assert r.returncode == 0, r.stderr
    data = json.loads(run_cli("class", "status", "--json", "-C", lab, "-c", "sim:///r").stdout)
    assert [s["student"] for s in data["students"]] == ["alice", "bob", "carol", "erin"]
    assert "ros-erin-alpha" in host_view("r")[0]
    r = run_cli("class", "up", "--roster", "Bad Name", "-C", lab, "-c", "sim:///r")
    assert r.returncode == 2 and "--roster: line 1" in r.stderr
