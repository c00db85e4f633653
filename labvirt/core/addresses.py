"""Addresses of a lab's nodes: planned (DHCP reservations) beside what libvirt observes. Pure."""

from __future__ import annotations

from labvirt.core.desired import DesiredLab


def node_addresses(desired: DesiredLab, node_keys: list[str], observed: dict[str, tuple[dict, dict]],
                   simulated: bool = False) -> list[dict]:
    """`observed`: domain name -> (mac -> [{"ip", "source"}], source -> what it said)."""
    out = []
    for dom in desired.domains:
        if dom.key not in node_keys:
            continue
        found, said = observed.get(dom.name, ({}, {}))
        nics = []
        for nic in dom.nics:
            seen = found.get(nic.mac, [])
            if simulated and nic.address is not None:
                seen = [{"ip": str(nic.address), "source": "plan (simulated)"}]
            nics.append({"name": nic.name, "network": nic.network, "mac": nic.mac,
                         "planned": str(nic.address) if nic.address else None, "observed": seen})
        out.append({"node": dom.key, "domain": dom.name, "nics": nics, "sources": said})
    return out


def has_observed(entry: dict) -> bool:
    return any(n["observed"] for n in entry["nics"])
