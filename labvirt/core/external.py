"""Networks labvirt does not own: an existing libvirt network (`existing = "default"`) or a host bridge
(`mode = "host-bridge"`, `bridge = "br0"`). Pure.

labvirt attaches NICs to them and does nothing else: it never defines, changes, starts, stops or
removes them, and adds no DHCP reservation to them. A static address on one reaches the guest only
through its seed (cloud-init network config) or its virt-customize identity.

What the lab assumes is checked against what the host has (`external_check`, by `check`, `plan`,
`up` and `class up`): refused when the network or bridge is missing, the network is inactive, its
subnet is unknown or disagrees with the lab file, an address lies outside it, or an address is
leased to a MAC that is not the node's; warned when an address lies inside the network's DHCP range
(libvirt's `default` hands out .2-.254, and the course's own 192.168.122.100 is in it) or a bridge is
reported down (a bridge with nothing plugged in has no carrier yet).

Class mode: students cannot share one address on one network. `[class.external]` in lab.toml gives,
per external network, a range from which every student's static NICs on it get distinct addresses
(`allocate_addresses`); without one, `class up` refuses (`missing_ranges`).
"""

from __future__ import annotations

import os
from ipaddress import IPv4Address, IPv4Network, ip_interface, ip_network
from typing import TYPE_CHECKING

from labvirt.core.errors import LabvirtError, SpecError
from labvirt.core.fields import Table
from labvirt.core.record import Record

if TYPE_CHECKING:
    from labvirt.core.desired import DesiredLab
    from labvirt.core.observed import ObservedNetwork
    from labvirt.core.spec import LabSpec, NetworkSpec

EXTERNAL_WORD = "external (not labvirt's: attached to, never changed)"


class HostNetworkFacts(Record):
    """What the host says about one existing libvirt network."""

    name: str
    exists: bool = False
    active: bool = False
    subnet: IPv4Network | None = None      # from its first IPv4 <ip>; None: it has none
    gateway: IPv4Address | None = None
    dhcp: tuple[tuple[IPv4Address, IPv4Address], ...] = ()
    bridge: str | None = None


def facts_of(name: str, obs: ObservedNetwork | None) -> HostNetworkFacts:
    if obs is None:
        return HostNetworkFacts(name)
    subnet = gateway = None
    for text in obs.addresses:
        iface = ip_interface(text)
        if iface.version == 4:
            subnet, gateway = iface.network, iface.ip
            break
    dhcp = tuple((IPv4Address(a), IPv4Address(b)) for a, b in obs.dhcp_ranges)
    return HostNetworkFacts(name, True, obs.active, subnet, gateway, dhcp, obs.bridge)


class ExternalNetwork(Record):
    """An external network as this lab copy sees it: the lab file's view filled in from the host's."""

    subnet: IPv4Network | None
    gateway: IPv4Address | None
    dhcp: tuple[tuple[IPv4Address, IPv4Address], ...]
    bridge: str | None


def resolve(net: NetworkSpec, facts: tuple[HostNetworkFacts, ...] = ()) -> ExternalNetwork:
    """Subnet, gateway and DHCP range: a host bridge's from its file; an existing network's from
    libvirt where the host was asked, else what the file states (gateway: the subnet's first address)."""
    if net.mode == "host-bridge":
        dhcp = ((net.dhcp_start, net.dhcp_end),) if net.dhcp_start is not None else ()
        return ExternalNetwork(net.subnet, net.gateway, dhcp, net.bridge)
    f = next((f for f in facts if f.name == net.existing), None)
    if f is not None and f.subnet is not None and (net.subnet is None or net.subnet == f.subnet):
        return ExternalNetwork(f.subnet, f.gateway, f.dhcp, f.bridge)
    if net.subnet is None:
        where = "the host has no such network" if f is None or not f.exists else "libvirt's definition has no IPv4 address"
        raise SpecError(net.file or f"networks/{net.name}.toml", "subnet",
                        f"unknown for existing network {net.existing!r} ({where if f else 'no libvirt host asked'}); "
                        f"allowed: state it, such as subnet = \"192.168.122.0/24\", or run against a libvirt host "
                        f"that has {net.existing!r}")
    return ExternalNetwork(net.subnet, f.gateway if f and f.subnet == net.subnet else net.subnet.network_address + 1,
                           f.dhcp if f and f.subnet == net.subnet else (), f.bridge if f else None)


# -- checks against the host -----------------------------------------------------------------------
class ExternalVerdict(Record):
    refusals: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def external_check(spec: LabSpec, desired: DesiredLab, facts: tuple[HostNetworkFacts, ...],
                   bridges: dict[str, bool] | None, leases: dict[str, tuple[tuple[str, str], ...]] = {}) -> ExternalVerdict:
    """`facts`: the host's view of each existing network the lab names; `bridges`: the host's bridges
    (name -> up), None when the host cannot list them; `leases`: libvirt network -> ((mac, ip), ...)."""
    refuse, warn = [], []
    by_name = {f.name: f for f in facts}
    for net in spec.networks:
        if not net.external:
            continue
        file = net.file or f"networks/{net.name}.toml"
        if net.mode == "existing":
            f = by_name.get(net.existing, HostNetworkFacts(net.existing))
            if not f.exists:
                refuse.append(f"{file}: existing: the host has no libvirt network {net.existing!r}; allowed: a "
                              "network 'virsh net-list --all' shows (labvirt never creates it)")
                continue
            if not f.active:
                refuse.append(f"{file}: existing: libvirt network {net.existing!r} is not active; start it yourself "
                              f"('virsh net-start {net.existing}'; labvirt never starts it)")
            if f.subnet is None and net.subnet is None:
                refuse.append(f"{file}: subnet: unknown (libvirt network {net.existing!r} has no IPv4 address); "
                              "allowed: state the subnet the lab assumes, such as '192.168.122.0/24'")
                continue
            if f.subnet is not None and net.subnet is not None and f.subnet != net.subnet:
                refuse.append(f"{file}: subnet: {net.subnet} disagrees with libvirt network {net.existing!r} "
                              f"({f.subnet}); allowed: '{f.subnet}', or leave subnet out to take libvirt's")
                continue
        elif bridges is None:
            warn.append(f"{file}: bridge: this libvirt host cannot list its interfaces; {net.bridge!r} is not checked")
        elif net.bridge not in bridges:
            refuse.append(f"{file}: bridge: the host has no bridge {net.bridge!r}; allowed: a bridge that exists "
                          "on the libvirt host ('ip link show type bridge'; labvirt never creates it)"
                          + (f"; it has {', '.join(sorted(bridges))}" if bridges else ""))
            continue
        elif not bridges[net.bridge]:
            warn.append(f"{file}: bridge: {net.bridge!r} is reported down or without carrier (nothing plugged "
                        "into it yet?); guests on it reach nothing until it is up")
        _check_addresses(spec, desired, net, resolve(net, facts), leases.get(net.source, ()), refuse, warn)
    return ExternalVerdict(tuple(refuse), tuple(warn))


def _check_addresses(spec, desired, net, ext: ExternalNetwork, leased, refuse, warn) -> None:
    doms = {d.key: d for d in desired.domains}
    leased_by = {ip: mac.lower() for mac, ip in leased}
    for node in spec.nodes:
        for i, nic in enumerate(node.nics):
            if nic.network != net.name or nic.address is None:
                continue
            mine = doms[node.name].nics[i]
            a = mine.address
            where = f"{node.file}: nic[{i}].address: {a}" + (f" (the lab file's {nic.address})" if a != nic.address else "")
            if a not in ext.subnet or a in (ext.subnet.network_address, ext.subnet.broadcast_address):
                refuse.append(f"{where} is not a host address of {net.name}'s subnet {ext.subnet}; allowed: an "
                              f"address inside {ext.subnet}")
                continue
            if a == ext.gateway:
                refuse.append(f"{where} is the gateway of {net.name}; allowed: any other address of {ext.subnet}")
                continue
            for start, end in ext.dhcp:
                if start <= a <= end:
                    warn.append(f"{where} is inside {net.name}'s DHCP range {start}-{end}: the network's DHCP "
                                "server may lease it to another machine; an address outside the range avoids that")
            other = leased_by.get(str(a))
            if other is not None and other != mine.mac.lower():
                refuse.append(f"{where} is already leased on {net.source!r} to {other}, not this node's "
                              f"{mine.mac}; allowed: a free address of {ext.subnet}")


# -- class mode: per-student addresses on shared external networks --------------------------------------
def static_nics(spec: LabSpec, net: NetworkSpec) -> list[tuple[str, IPv4Address]]:
    """(node, lab file's address) of every static NIC on `net`, in node order."""
    return [(node.name, nic.address) for node in spec.nodes for nic in node.nics
            if nic.network == net.name and nic.address is not None]


def load_ranges(spec: LabSpec, t: Table | None) -> dict[str, IPv4Network]:
    """[class.external]: network name -> the range its students' static addresses come from."""
    if t is None:
        return {}
    nets = {n.name: n for n in spec.networks if n.external}
    out = {}
    for key, value in t.data.items():
        t.known.add(key)
        if key not in nets:
            t.fail(key, f"no external network {key!r} in the lab; allowed: {', '.join(sorted(nets)) or 'none'}")
        try:
            rng = ip_network(value, strict=True) if isinstance(value, str) else None
        except ValueError:
            rng = None
        if not isinstance(rng, IPv4Network):
            t.fail(key, f"got {value!r}; allowed: an IPv4 range in CIDR form without host bits, such as "
                        "'192.168.122.128/25'")
        subnet = nets[key].subnet
        if subnet is not None and not rng.subnet_of(subnet):
            t.fail(key, f"{rng} is not inside {key}'s subnet {subnet}; allowed: a range inside {subnet}")
        out[key] = rng
    return out


def missing_ranges(spec: LabSpec, ranges: dict[str, IPv4Network]) -> str | None:
    """Why `class up` cannot give students addresses (None: it can)."""
    for net in spec.networks:
        nics = static_nics(spec, net)
        if net.external and nics and net.name not in ranges:
            lab_file = os.path.join(spec.directory, "lab.toml")
            where = f"libvirt network {net.existing!r}" if net.mode == "existing" else f"bridge {net.bridge!r}"
            return (f"{lab_file}: class.external.{net.name}: missing; students share {where}, so they cannot all "
                    f"hold {', '.join(str(a) for _, a in nics)}; allowed: a range from which each student's static "
                    f"addresses on {net.name} are given, set in lab.toml as [class.external] {net.name} = "
                    f"\"A.B.C.D/NN\" (inside {net.subnet or 'its subnet'}, outside its DHCP range where possible)")
    return None


def allocate_addresses(spec: LabSpec, students: list[str], ranges: dict[str, IPv4Network],
                       existing: dict[str, dict[str, dict[str, str]]]) -> dict[str, dict[str, dict[str, str]]]:
    """student -> network -> {lab file's address: the student's}. Recorded students keep theirs; new ones
    get the next free addresses of the range in (student, node) order, never the network's gateway or
    the lab file's own addresses (the lab itself may be up beside its class)."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for net in spec.networks:
        if not net.external or net.name not in ranges:
            continue
        nics = static_nics(spec, net)
        rng = ranges[net.name]
        used = {IPv4Address(a) for rec in existing.values() for a in rec.get(net.name, {}).values()}
        used |= {a for _, a in nics} | ({net.gateway} if net.gateway else set())
        free = (a for a in rng.hosts() if a not in used)
        need = sum(1 for s in students if net.name not in existing.get(s, {})) * len(nics)
        for student in students:
            mine = existing.get(student, {}).get(net.name)
            if mine is None:
                mine = {}
                for _, addr in nics:
                    a = next(free, None)
                    if a is None:
                        raise LabvirtError(
                            f"{os.path.join(spec.directory, 'lab.toml')}: class.external.{net.name}: {rng} has too "
                            f"few free addresses for {need} new static NICs ({len(nics)} per student); allowed: "
                            f"a larger range inside {net.subnet or 'the subnet'}")
                    mine[str(addr)] = str(a)
            out.setdefault(student, {})[net.name] = dict(mine)
    return out
