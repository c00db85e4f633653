"""labvirt's network config as cloud-init itself renders it: sysconfig (CentOS/RHEL), ENI (Debian) and
netplan (Ubuntu), with Debian 12's cloud-init 22.4 (`cloud-init devel net-convert`). The form is the
one cloud-init 0.7.9 also reads (see labvirt.core.cloudinit.network_config)."""

import os
import re
from ipaddress import ip_interface

import pytest
import yaml

from labvirt.core.cloudinit import network_config, to_yaml
from labvirt.core.desired import HostParams, desire
from labvirt.core.identity import LabCopy
from labvirt.core.loader import load_lab

from .conftest import EXAMPLES
from .support import cloudinit_tool


@pytest.fixture(scope="module")
def render():
    try:
        cloudinit_tool.cloudinit_path()
    except cloudinit_tool.Unavailable as e:
        if os.environ.get("CI"):
            pytest.fail(f"CI must render with cloud-init: {e}")
        pytest.skip(str(e))
    return cloudinit_tool.net_convert


def _lab(which):
    spec = load_lab(EXAMPLES[which])
    return desire(spec, LabCopy(spec.name), HostParams())


CASES = [("standard", "controller"), ("standard", "compute"), ("three-node", "compute2")]


def _expect(desired, node):
    """(nic name, mac, address/prefix, gateway or None) per NIC, and the name servers."""
    dom = next(d for d in desired.domains if d.key == node)
    nets = {n.name: n for n in desired.networks}
    rows = []
    routed = next((nic for nic in dom.nics if nets[nic.network].routed), None)   # the first NAT or external one
    for nic in dom.nics:
        net = nets[nic.network]
        rows.append((nic.name, nic.mac, f"{nic.address}/{net.subnet.prefixlen}",
                     str(net.gateway) if nic is routed else None))
    servers = [g for *_, g in rows if g]
    return rows, servers


@pytest.mark.parametrize("which, node", CASES)
def test_sysconfig_for_centos(render, which, node):
    desired = _lab(which)
    files = render(to_yaml(network_config(desired, node)), "centos", "sysconfig")
    rows, servers = _expect(desired, node)
    for name, mac, cidr, gateway in rows:
        ifcfg = dict(line.split("=", 1) for line in files[f"/etc/sysconfig/network-scripts/ifcfg-{name}"].splitlines()
                     if "=" in line and not line.startswith("#"))
        addr, prefix = cidr.split("/")
        assert ifcfg["HWADDR"].lower() == mac and ifcfg["IPADDR"] == addr and ifcfg["BOOTPROTO"] in ("none", "static")
        assert ifcfg.get("NETMASK") == str(ip_interface(cidr).netmask) or ifcfg.get("PREFIX") == prefix
        assert ifcfg.get("GATEWAY") == gateway
        assert (ifcfg.get("DEFROUTE") == "yes") == (gateway is not None)
    resolv = files["/etc/resolv.conf"]
    assert re.findall(r"^nameserver (\S+)", resolv, re.M) == servers


@pytest.mark.parametrize("which, node", CASES)
def test_eni_for_debian(render, which, node):
    desired = _lab(which)
    files = render(to_yaml(network_config(desired, node)), "debian", "eni")
    eni = files["/etc/network/interfaces.d/50-cloud-init"]
    rows, servers = _expect(desired, node)
    stanzas = {m.group(1): m.group(2) for m in re.finditer(r"^iface (\S+) inet \S+\n((?:    .*\n?)*)", eni, re.M)}
    for name, mac, cidr, gateway in rows:
        body = stanzas[name]
        assert f"address {cidr}" in body
        assert (f"route add default gw {gateway}" in body) == (gateway is not None)
        rule = files["/etc/udev/rules.d/70-persistent-net.rules"]
        assert f'ATTR{{address}}=="{mac}", NAME="{name}"' in rule
    assert re.findall(r"dns-nameservers (\S+)", eni) == servers


@pytest.mark.parametrize("which, node", CASES)
def test_netplan_for_ubuntu(render, which, node):
    desired = _lab(which)
    files = render(to_yaml(network_config(desired, node)), "ubuntu", "netplan")
    plan = yaml.safe_load(files["/etc/netplan/50-cloud-init.yaml"])["network"]["ethernets"]
    rows, servers = _expect(desired, node)
    for name, mac, cidr, gateway in rows:
        eth = plan[name]
        assert eth["match"]["macaddress"] == mac and eth["set-name"] == name and eth["addresses"] == [cidr]
        assert [r["via"] for r in eth.get("routes", []) if r["to"] in ("0.0.0.0/0", "default")] == ([gateway] if gateway else [])
        assert eth.get("nameservers", {}).get("addresses", []) == servers   # cloud-init gives every NIC the global servers
