"""Reading what a libvirt host has of the networks labs attach to but do not own (labvirt.core.external):
existing libvirt networks, host bridges, DHCP leases. Read only: nothing here changes the host."""

from __future__ import annotations

import libvirt
from lxml import etree

from labvirt.core.observed import parse_network
from labvirt.driver.libvirt_errors import vanishing


def networks_named(driver, names) -> dict:
    """name -> ObservedNetwork for each of `names` the host has (its persistent definition)."""
    found = {}
    for name in names:
        with driver.rpc(f"reading network {name}"), vanishing():      # a missing one is left out
            net = driver.conn.networkLookupByName(name)
            found[name] = parse_network(driver._network_xml(net), bool(net.isActive()), bool(net.autostart()))
    return found


def host_bridges(conn) -> dict[str, bool] | None:
    """The host's bridges (name -> reported up) from libvirt's interface driver; None when the host
    cannot list its interfaces. libvirt reports a bridge with nothing plugged in as not active."""
    try:
        ifaces = conn.listAllInterfaces(0)
    except libvirt.libvirtError:
        return None
    out = {}
    for iface in ifaces:
        try:
            if etree.fromstring(iface.XMLDesc(0).encode()).get("type") == "bridge":
                out[iface.name()] = bool(iface.isActive())
        except libvirt.libvirtError:      # gone while we looked
            continue
    return out


def leases(conn, network: str) -> tuple[tuple[str, str], ...]:
    """(mac, ip) of the IPv4 DHCP leases libvirt's dnsmasq holds on `network`; () where it cannot say
    (the test driver, a network without DHCP)."""
    try:
        found = conn.networkLookupByName(network).DHCPLeases()
    except libvirt.libvirtError:
        return ()
    return tuple((lease.get("mac") or "", lease.get("ipaddr") or "") for lease in found or ()
                 if lease.get("type", libvirt.VIR_IP_ADDR_TYPE_IPV4) == libvirt.VIR_IP_ADDR_TYPE_IPV4)
