"""labvirt.core.capacity: what a lab or a class needs, what a host has, and whether it fits."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from labvirt.core.capacity import (OVERLAY_ALLOWANCE, QEMU_OVERHEAD, Capacity, Needs, Overcommit, copies_that_fit, fits,
                              host_capacity, needs_of, shortfalls, usage)
from labvirt.core.spec import ImageSpec, LabSpec, NetworkSpec, NicSpec, NodeSpec

GiB = 1024**3
NET = NetworkSpec("public", "nat", IPv4Network("192.168.100.0/24"), IPv4Address("192.168.100.1"),
                  IPv4Address("192.168.100.128"), IPv4Address("192.168.100.254"))


def node(name, vcpus, memory, disk, image="centos7"):
    return NodeSpec(name=name, role="generic", vcpus=vcpus, memory=memory * GiB, disk=disk * GiB,
                    nics=(NicSpec("public"),), image=image)


LAB = LabSpec(name="lab", directory="/lab", networks=(NET,),
              nodes=(node("controller", 4, 8, 40), node("compute", 2, 4, 2), node("extra", 1, 1, 10, image=None)),
              images=(ImageSpec("centos7", 20 * GiB, template="centos-7.5"), ImageSpec("unused", 99 * GiB, template="x")))


def test_needs_of_one_copy():
    n = needs_of(LAB, 1, "kvm")
    assert (n.vcpus, n.nodes, n.disk) == (7, 3, 52 * GiB)
    assert n.memory == 13 * GiB + 3 * QEMU_OVERHEAD["kvm"]
    # overlays: min(disk, allowance) per node; the used golden image once; unused recipes not at all
    assert n.disk_estimate == OVERLAY_ALLOWANCE + 2 * GiB + OVERLAY_ALLOWANCE + 20 * GiB


def test_copies_share_the_golden_image():
    one, five = needs_of(LAB, 1), needs_of(LAB, 5)
    assert (five.vcpus, five.memory, five.disk, five.nodes) == (5 * one.vcpus, 5 * one.memory, 5 * one.disk, 15)
    assert five.disk_estimate - 20 * GiB == 5 * (one.disk_estimate - 20 * GiB)


def test_emulation_costs_more_memory_than_kvm():
    assert needs_of(LAB, 1, "qemu").memory > needs_of(LAB, 1, "kvm").memory


def test_needs_add_and_multiply():
    a = Needs(1, 2, 3, 4, 1)
    assert a + a == 2 * a == a * 2 == Needs(2, 4, 6, 8, 2)


def test_host_capacity_keeps_a_reserve():
    assert host_capacity(8, 32 * GiB, 100 * GiB) == Capacity(8, 31 * GiB, 100 * GiB)
    assert host_capacity(1, GiB // 2).memory == 0


HOST = Capacity(cpus=4, memory=16 * GiB, disk=100 * GiB)


@pytest.mark.parametrize("needs, short", [
    (Needs(16, 16 * GiB, 100 * GiB), []),                               # exactly at every limit
    (Needs(17, 1, 1), ["cpu"]),
    (Needs(1, 16 * GiB + 1, 1), ["memory"]),
    (Needs(1, 1, 100 * GiB + 1), ["disk"]),
    (Needs(100, 100 * GiB, 1000 * GiB), ["cpu", "memory", "disk"]),
])
def test_shortfalls(needs, short):
    lines = shortfalls(needs, HOST)
    assert [line.split(":")[0] for line in lines] == short
    assert fits(needs, HOST) is (not short)


def test_shortfall_lines_say_need_have_and_overcommit():
    (line,) = shortfalls(Needs(1, 20 * GiB, 1), HOST)
    assert line == "memory: needs 20GiB, the host has 16GiB (up to 16GiB at overcommit 1)"


def test_overcommit_changes_the_limits():
    assert not fits(Needs(1, 24 * GiB, 1), HOST)
    assert fits(Needs(1, 24 * GiB, 1), HOST, Overcommit(memory=1.5))
    assert fits(Needs(32, 1, 1), HOST, Overcommit(cpu=8.0))


def test_unknown_disk_is_not_a_shortfall():
    assert shortfalls(Needs(1, 1, 10**15), Capacity(4, 16 * GiB, None)) == []
    (disk,) = [u for u in usage(Needs(1, 1, 5), Capacity(4, 16 * GiB, None)) if u.resource == "disk"]
    assert (disk.ok, disk.limit, disk.overcommit) == (True, None, None)


def test_usage_reports_the_ratio():
    cpu = usage(Needs(6, 1, 1), Capacity(2, GiB, GiB))[0]
    assert (cpu.resource, cpu.need, cpu.have, cpu.limit, cpu.overcommit) == ("cpu", 6, 2, 8, 3.0)


@pytest.mark.parametrize("one, shared, capacity, copies", [
    (Needs(2, 4 * GiB, 10 * GiB), Needs(), HOST, 4),                   # memory limits: 16 / 4
    (Needs(8, 1 * GiB, 10 * GiB), Needs(), HOST, 2),                   # cpu limits: 16 / 8
    (Needs(1, 1 * GiB, 30 * GiB), Needs(disk=20 * GiB), HOST, 2),      # disk after the shared image: 80 / 30
    (Needs(2, 32 * GiB, 1), Needs(), HOST, 0),
    (Needs(), Needs(), HOST, None),                                    # nothing needed: no limit
])
def test_copies_that_fit(one, shared, capacity, copies):
    assert copies_that_fit(one, capacity, shared=shared) == copies
    if copies:
        assert fits(one * copies + shared, capacity)
        assert not fits(one * (copies + 1) + shared, capacity)
