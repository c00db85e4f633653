"""Class mode on a real guest: one student's copy of a one-node Debian lab, up, rebuilt, destroyed.

`class up --wait` and `class rebuild --wait` run the single-lab wait (lease or agent at the reserved
address, ssh with the host key labvirt gave the node, cloud-init done) on the student's copy; ssh
afterwards is `labvirt ssh --student s01` with labvirt's strict host-key checking, so a rebuilt guest
that came up with a new host key would be refused. One node and the cloud kernel keep the CPU time
down (software emulation, 2 cores): two boots in all.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from .support import netns as ns
from .support.debian_lab import DebianNode, guest_ssh, lab_objects, labvirt_in_netns, require_kit, write_debian_lab

pytestmark = [pytest.mark.daemon, pytest.mark.slow]

LAB_SUBNET = "10.232.70.0/24"           # the lab file's; the student's copy gets one from SUBNET_POOL
SUBNET_POOL = "10.232.128.0/20"
BOOT = 420                              # seconds: the bound for one boot to ready (software emulation)
STUDENT = "s01"


def test_class_up_rebuild_and_destroy_of_a_real_student_copy(tmp_path, netns, daemon):
    import libvirt

    kit = require_kit()
    state, pool_dir = str(tmp_path / "state"), str(tmp_path / "pool")
    name = "lvgcls" + os.urandom(3).hex()
    lab = write_debian_lab(tmp_path / "lab", name, kit, {"alpha": DebianNode("10.232.70.11", kernel="cloud")},
                           subnet=LAB_SUBNET, pool_dir=pool_dir, lab_extra=f'[class]\nsubnet_pool = "{SUBNET_POOL}"\n')
    prefix = f"{name}-{STUDENT}"
    timings, bridge = {}, None
    try:
        started = time.monotonic()
        r = labvirt_in_netns(lab, state, "class", "up", "--students", "1", "--wait", "--timeout", str(BOOT),
                             timeout=BOOT + 120)
        timings["class up --wait"] = time.monotonic() - started
        assert r.returncode == 0, r.stderr[-3000:]
        assert f"{STUDENT}: " in r.stderr and "1 nodes ready after" in r.stderr, r.stderr
        conn = libvirt.open("qemu:///system")
        try:
            bridge = conn.networkLookupByName(f"{prefix}-lan").bridgeName()
        finally:
            conn.close()

        r = labvirt_in_netns(lab, state, "ip", "alpha", "--student", STUDENT, "--json")
        assert r.returncode == 0, r.stderr
        planned = json.loads(r.stdout)["nodes"][0]["nics"][0]["planned"]
        assert planned.startswith("10.232.") and planned.endswith(".11") and not planned.startswith("10.232.70."), \
            planned                                             # the student's own subnet, the node's host part
        r = guest_ssh(lab, state, "alpha", ["hostname; ip -4 -o addr show dev eth0; touch /root/before-rebuild"],
                      student=STUDENT)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split("\n")[0] == "alpha" and f" {planned}/24 " in r.stdout, r.stdout

        started = time.monotonic()
        r = labvirt_in_netns(lab, state, "class", "rebuild", "--student", STUDENT, "--wait", "--timeout", str(BOOT),
                             timeout=BOOT + 120)
        timings["class rebuild --wait"] = time.monotonic() - started
        assert r.returncode == 0, r.stderr[-3000:]
        assert "rebuilt: " in r.stderr and "1 nodes ready after" in r.stderr, r.stderr
        # a new disk (the file is gone), the same host key (strict checking against labvirt's known_hosts)
        r = guest_ssh(lab, state, "alpha", ["hostname; test -e /root/before-rebuild && echo still-there || echo gone"],
                      student=STUDENT)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["alpha", "gone"], r.stdout
        assert "IDENTIFICATION HAS CHANGED" not in r.stderr and "Permanently added" not in r.stderr, r.stderr
    finally:
        r = labvirt_in_netns(lab, state, "class", "destroy", timeout=300)
        print(f"\nreal class: {', '.join(f'{k} {v:.0f} s' for k, v in timings.items())}")
    assert r.returncode == 0, r.stderr
    conn = libvirt.open("qemu:///system")
    try:
        left = lab_objects(conn, prefix)
    finally:
        conn.close()
    assert left == ([], [], []), f"class destroy left {left}"
    procs = [ns.cmdline(p) for p in ns.pids()]
    assert [c for c in procs if f"guest={prefix}-" in c] == []                # QEMU
    assert [c for c in procs if "dnsmasq" in c and f"/{prefix}-" in c] == []  # the network's dnsmasq
    assert not os.path.exists(os.path.join(pool_dir, prefix)) or os.listdir(os.path.join(pool_dir, prefix)) == []
    assert bridge is not None and bridge not in ns.links("bridge")
