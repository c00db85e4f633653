"""Subnet and bridge collisions between a lab's networks and what the host already has. Pure.

The host has libvirt networks (libvirt's `default` is 192.168.122.0/24 on virbr0), interfaces and
routes. Networks that carry this lab's labvirt metadata are the lab's own, not collisions, and so are
their bridges and the routes through them.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network, ip_interface

from labvirt.core.identity import LabCopy

_POOLS = (IPv4Network("192.168.0.0/16"), IPv4Network("172.16.0.0/12"), IPv4Network("10.0.0.0/8"))


@dataclass(frozen=True)
class LabNetwork:
    name: str             # the network's name in the lab file
    libvirt_name: str
    subnet: IPv4Network
    bridge: str
    file: str = ""


@dataclass(frozen=True)
class Collision:
    network: str          # the lab network's name
    kind: str             # "subnet" | "bridge" | "name"
    what: str             # what it collides with, in words


def lab_networks(spec, copy: LabCopy | None = None) -> tuple[LabNetwork, ...]:
    copy = copy or LabCopy(spec.name)
    return tuple(LabNetwork(n.name, copy.network_name(n.name), copy.subnet(n), copy.bridge_name(n), n.file)
                 for n in spec.networks)


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
    """`libvirt_networks`: ObservedNetwork values; `routes`: labvirt.host.facts.Route values."""
    own = [n for n in libvirt_networks if n.owner is not None and n.owner.lab == lab]
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
    for other in libvirt_networks:
        if other.owner is None or other.owner.lab != lab:
            taken += _subnets(other)
    own_bridges = {n.bridge for n in libvirt_networks if n.owner is not None and n.owner.lab == lab}
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
