"""Subnet and bridge collisions between a lab's networks and what the host already has. Pure.

The host has libvirt networks (libvirt's `default` is 192.168.122.0/24 on virbr0), interfaces and
routes. Networks this lab copy claims (labvirt.core.observed.claim: its metadata, from this lab
directory) are the lab's own, not collisions, and so are their bridges and the routes through them.
"""

from __future__ import annotations

from ipaddress import IPv4Network, ip_interface

from labvirt.core.identity import LabCopy
from labvirt.core.observed import claim
from labvirt.core.record import Record

_POOLS = (IPv4Network("192.168.0.0/16"), IPv4Network("172.16.0.0/12"), IPv4Network("10.0.0.0/8"))


class LabNetwork(Record):
    name: str             # the network's name in the lab file
    libvirt_name: str
    subnet: IPv4Network
    bridge: str
    file: str = ""
    copy: LabCopy | None = None     # the lab copy it belongs to (who owns what on the host)


class Collision(Record):
    network: str          # the lab network's name
    kind: str             # "subnet" | "bridge" | "name"
    what: str             # what it collides with, in words


def lab_networks(spec, copy: LabCopy | None = None) -> tuple[LabNetwork, ...]:
    copy = copy or LabCopy(spec.name)
    if not copy.origin:
        copy = LabCopy(copy.lab, copy.student, copy.subnets, spec.directory)
    return tuple(LabNetwork(n.name, copy.network_name(n.name), copy.subnet(n), copy.bridge_name(n), n.file, copy)
                 for n in spec.networks if not n.external)    # the host's own: checked by core/external


def _own(libvirt_networks, lab) -> list:
    """The networks the lab copy claims; `lab`: a LabCopy, or a lab name (the lab itself, any directory)."""
    copy = lab if isinstance(lab, LabCopy) else LabCopy(lab)
    return [n for n in libvirt_networks if claim(n.owner, "network", copy).ours]


def _subnets(net) -> list[IPv4Network]:
    out = []
    for a in net.addresses:
        try:
            iface = ip_interface(a)
        except ValueError:
            continue
        if iface.version == 4:
            out.append(iface.network)
    return out


def collisions(lab_nets, lab: str, libvirt_networks=(), interfaces=(), routes=()) -> list[Collision]:
    """`lab`: the LabCopy (or the lab's name); `libvirt_networks`: ObservedNetwork values; `routes`:
    labvirt.host.facts.Route values."""
    own = _own(libvirt_networks, lab)
    others = [n for n in libvirt_networks if n not in own]
    own_bridges = {n.bridge for n in own if n.bridge}
    other_bridges = {n.bridge for n in others if n.bridge}
    found = []
    for net in lab_nets:
        for other in others:
            where = f"libvirt network {other.name!r}"
            if other.name == net.libvirt_name:
                found.append(Collision(net.name, "name", f"{where} has the same name and is not this lab's"))
            for sub in _subnets(other):
                if sub.overlaps(net.subnet):
                    found.append(Collision(net.name, "subnet", f"{where} ({sub}, bridge {other.bridge or '?'})"))
            if other.bridge and other.bridge == net.bridge:
                found.append(Collision(net.name, "bridge", f"{where} uses bridge {other.bridge}"))
        if net.bridge in interfaces and net.bridge not in own_bridges | other_bridges:
            found.append(Collision(net.name, "bridge", f"the host already has an interface named {net.bridge}"))
        for route in routes:
            if route.iface in own_bridges or route.iface in other_bridges:
                continue
            if route.network.overlaps(net.subnet):
                found.append(Collision(net.name, "subnet", f"the host's route to {route.network} via {route.iface}"))
    return found


def taken_subnets(lab_nets, lab: str, libvirt_networks=(), routes=()) -> list[IPv4Network]:
    """Every subnet a new lab network must avoid (the lab's own count: they must not overlap each other)."""
    taken = [n.subnet for n in lab_nets]
    own = _own(libvirt_networks, lab)
    for other in libvirt_networks:
        if other not in own:
            taken += _subnets(other)
    own_bridges = {n.bridge for n in own}
    taken += [r.network for r in routes if r.iface not in own_bridges]
    return taken


def free_subnet(prefixlen: int, taken) -> IPv4Network | None:
    """The first private subnet of this size that overlaps nothing in `taken` (192.168/16 first)."""
    for pool in _POOLS:
        if prefixlen < pool.prefixlen:
            continue
        for candidate in pool.subnets(new_prefix=prefixlen):
            if not any(candidate.overlaps(t) for t in taken):
                return candidate
    return None


class NetworkVerdict(Record):
    network: LabNetwork
    collides: str = ""    # what it collides with, in words ("" when nothing)
    fix: str = ""


def network_verdicts(lab_nets, lab, libvirt_networks=(), interfaces=(), routes=()) -> list[NetworkVerdict]:
    """Per lab network: what it collides with and the fix (a free subnet of the same size where one is
    needed). Used by `labvirt check` (a finding each) and `labvirt up` (a refusal each collision)."""
    hits = collisions(lab_nets, lab, libvirt_networks, interfaces, routes)
    taken = taken_subnets(lab_nets, lab, libvirt_networks, routes)
    out = []
    for net in lab_nets:
        mine = [c for c in hits if c.network == net.name]
        if not mine:
            out.append(NetworkVerdict(net))
            continue
        kinds = {c.kind for c in mine}
        where = net.file or f"networks/{net.name}.toml"
        fixes = []
        if "subnet" in kinds:
            free = free_subnet(net.subnet.prefixlen, taken)
            fixes.append((f"set subnet = \"{free}\" in {where}" if free else f"choose another subnet in {where}")
                         + " (move its gateway, dhcp_range and the nodes' addresses with it)")
            if free:
                taken.append(free)
        if "bridge" in kinds:
            fixes.append(f"set another bridge name in {where} (or remove 'bridge' to derive one)")
        if "name" in kinds:
            fixes.append("rename the lab or remove the other network")
        out.append(NetworkVerdict(net, "; ".join(dict.fromkeys(c.what for c in mine)), "; ".join(fixes)))
    return out
