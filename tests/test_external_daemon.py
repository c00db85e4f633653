"""Networks labvirt does not own, on a real libvirtd: `up` attaches nodes to an existing libvirt network
and to a host bridge, and `destroy` leaves both exactly as they were.

The stand-ins are made by this test, not by labvirt: a libvirt network (libvirt-python directly, name
prefix lvtx-, subnet 10.231.1.0/24) and a Linux bridge inside the daemon's network namespace (no
uplink: nothing the guests send leaves it). The test removes both itself, whatever happens. Nothing is
attached to a network or bridge this test did not create.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import libvirt
import pytest

from .conftest import run_cli, write_lab

pytestmark = pytest.mark.daemon

BRIDGE = "lvtxbr0"
BRIDGE_MAC = "02:00:0a:e7:02:01"       # fixed: a bridge's own MAC otherwise follows its ports


def _ip(netns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "-n", netns, *args], capture_output=True, text=True, check=check)


def bridge_state(netns: str) -> tuple[dict, list[str]]:
    """The bridge's own state (flags, operstate, MTU, MAC) and the names of its ports."""
    link = json.loads(_ip(netns, "-j", "link", "show", "dev", BRIDGE).stdout)[0]
    own = {k: link.get(k) for k in ("ifname", "flags", "operstate", "mtu", "address", "link_type")}
    ports = [p["ifname"] for p in json.loads(_ip(netns, "-j", "link", "show", "master", BRIDGE).stdout or "[]")]
    return own, ports


def network_state(net) -> tuple:
    return (net.XMLDesc(0), net.XMLDesc(libvirt.VIR_NETWORK_XML_INACTIVE), bool(net.isActive()),
            bool(net.autostart()), bool(net.isPersistent()))


@pytest.fixture
def stand_ins(daemon, netns):
    """A test-made existing network (10.231.1.0/24) and host bridge; removed by the test afterwards."""
    if _ip(netns, "link", "show", "dev", BRIDGE, check=False).returncode == 0:
        pytest.fail(f"bridge {BRIDGE} already exists in {netns}: a leftover of an earlier run? "
                    f"(remove it: ip -n {netns} link del {BRIDGE})")
    name = "lvtx-" + uuid.uuid4().hex[:8]
    conn = libvirt.open(daemon)
    net = None
    try:
        xml = (f"<network><name>{name}</name><bridge name='lvtx{name[5:11]}' stp='on' delay='0'/>"
               "<ip address='10.231.1.1' netmask='255.255.255.0'><dhcp>"
               "<range start='10.231.1.2' end='10.231.1.99'/></dhcp></ip></network>")
        net = conn.networkDefineXML(xml)
        net.create()
        _ip(netns, "link", "add", BRIDGE, "address", BRIDGE_MAC, "type", "bridge")
        _ip(netns, "link", "set", BRIDGE, "up")
        yield name, net
    finally:
        _ip(netns, "link", "del", BRIDGE, check=False)
        if net is not None:
            try:
                if net.isActive():
                    net.destroy()
                net.undefine()
            except libvirt.libvirtError:
                pass
        conn.close()


def _lab(tmp_path, network: str) -> tuple[str, str]:
    lab = "lvtx" + uuid.uuid4().hex[:6]
    node = '''
        role = "generic"
        vcpus = 1
        memory = "128MiB"
        disk = "64MiB"
        [[nic]]
        network = "public"
        address = "10.231.1.150"
        [[nic]]
        network = "provider"
        address = "10.231.2.150"
        [[nic]]
        network = "internal"
        address = "10.231.3.150"
        '''
    directory = write_lab(
        tmp_path / "lab", lab,
        networks={"public": f'existing = "{network}"\nsubnet = "10.231.1.0/24"\n',
                  "provider": f'mode = "host-bridge"\nbridge = "{BRIDGE}"\nsubnet = "10.231.2.0/24"\n',
                  "internal": 'mode = "isolated"\nsubnet = "10.231.3.0/24"\n'},
        nodes={"alpha": node},
        lab_extra=f'domain_type = "qemu"\n[storage]\npool_dir = "{tmp_path / "pool"}"\n')
    return directory, lab


def test_up_and_destroy_leave_an_existing_network_and_a_host_bridge_as_they_were(tmp_path, daemon, netns, stand_ins):
    name, net = stand_ins
    directory, lab = _lab(tmp_path, name)
    net_before, bridge_before = network_state(net), bridge_state(netns)
    assert bridge_before[1] == []
    try:
        r = run_cli("up", "-C", directory, "-c", daemon)
        assert r.returncode == 0, r.stderr
        conn = libvirt.open(daemon)
        try:
            dom = conn.lookupByName(f"{lab}-alpha")
            assert dom.isActive()
            xml = dom.XMLDesc(0)
            assert f"<source network='{name}'" in xml and f"<source bridge='{BRIDGE}'/>" in xml
            # no DHCP reservation on the network labvirt does not own; nothing redefined
            assert network_state(net)[1] == net_before[1]
            assert "10.231.1.150" not in net.XMLDesc(0)
        finally:
            conn.close()
        assert len(bridge_state(netns)[1]) == 1          # the node's tap, while it runs
        r = run_cli("status", "-C", directory, "-c", daemon, "--json")
        nets = {n["name"]: n for n in json.loads(r.stdout)["networks"]}
        assert nets[name]["external"] and nets[BRIDGE]["external"] and not nets[f"{lab}-internal"]["external"]
    finally:
        r = run_cli("destroy", "-C", directory, "-c", daemon)
    assert r.returncode == 0, r.stderr
    assert network_state(net) == net_before
    assert bridge_state(netns) == bridge_before
    conn = libvirt.open(daemon)
    try:
        assert not [d for d in conn.listAllDomains() if d.name().startswith(lab)]
        assert not [n for n in conn.listAllNetworks() if n.name().startswith(lab)]
    finally:
        conn.close()


def test_up_refuses_a_missing_network_and_a_missing_bridge(tmp_path, daemon, netns, stand_ins):
    name, net = stand_ins
    directory, lab = _lab(tmp_path, "lvtx-missing")
    with open(os.path.join(directory, "networks", "provider.toml"), "w") as f:
        f.write('mode = "host-bridge"\nbridge = "lvtxnone0"\nsubnet = "10.231.2.0/24"\n')
    before = network_state(net)
    r = run_cli("up", "-C", directory, "-c", daemon)
    assert r.returncode == 1
    assert "the host has no" in r.stderr and "(and 1 more problems)" in r.stderr
    r = run_cli("plan", "-C", directory, "-c", daemon, "--json")
    assert r.returncode == 1
    blockers = json.loads(r.stdout)["blockers"]
    assert any("public.toml: existing: the host has no libvirt network 'lvtx-missing'" in b for b in blockers)
    assert any("provider.toml: bridge: the host has no bridge 'lvtxnone0'" in b for b in blockers)
    r = run_cli("check", "-C", directory, "-c", daemon, "--json")
    found = {f["id"]: f for f in json.loads(r.stdout)["findings"]}
    assert found["external-public"]["status"] == "fail" and found["external-provider"]["status"] == "fail"
    conn = libvirt.open(daemon)
    try:
        assert not [d for d in conn.listAllDomains() if d.name().startswith(lab)]
    finally:
        conn.close()
    assert network_state(net) == before
