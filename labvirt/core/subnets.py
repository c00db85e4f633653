"""Subnet facts the loader needs: libvirt's rule for DHCP ranges, the default range, the host-bits hint. Pure.

libvirt (9.0 here, checked on qemu:///system) refuses a DHCP range whose two ends differ in their first
two octets, with `range A - B is too large (> 65535)`: a range must lie inside one /16. So a /8 or a
/14 network gets, by default, the upper half of its addresses cut to the first /16 of that half.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

RANGE_BLOCK = 16        # libvirt: both ends of a DHCP range in one /16


def range_block(addr: IPv4Address) -> IPv4Network:
    return IPv4Network(f"{addr}/{RANGE_BLOCK}", strict=False)


def range_problem(start: IPv4Address, end: IPv4Address) -> str | None:
    """Why libvirt would refuse this DHCP range (None: it accepts it)."""
    if end in range_block(start):
        return None
    block = range_block(start)
    last = min(block.broadcast_address, end)
    return (f"{start}-{end} spans more than one /16, which libvirt refuses ('range is too large'); "
            f"a range must stay inside one /16, such as ['{start}', '{last}']")


def default_range(subnet: IPv4Network, gateway: IPv4Address) -> tuple[IPv4Address, IPv4Address]:
    """The upper half of the subnet's host addresses (without the gateway), inside one /16."""
    last = subnet.broadcast_address - 1
    start = subnet.network_address + subnet.num_addresses // 2
    if start == gateway:
        start += 1
    end = min(last, range_block(start).broadcast_address)
    if end == gateway:
        end -= 1
    return start, end


def host_bits_hint(address: IPv4Address, prefixlen: int) -> str:
    """What a subnet written with host bits set ('10.5.116.0/8') most likely meant: the nearest octet
    boundary that makes it a network ('10.5.116.0/24'), else the network that holds it."""
    holder = IPv4Network(f"{address}/{prefixlen}", strict=False)
    for p in (16, 24):
        if p > prefixlen and int(address) % (1 << (32 - p)) == 0:
            return f"did you mean '{address}/{p}'? ('{holder}' is the /{prefixlen} that holds it)"
    return f"did you mean '{holder}'?"
