"""Plain-data views of a desired lab and its plan (what `plan --json` prints). Pure."""

from __future__ import annotations

from labvirt.core.desired import DesiredLab
from labvirt.core.plan import Plan
from labvirt.core.units import format_size


def describe(desired: DesiredLab, plan: Plan | None = None) -> dict:
    d = {
        "lab": desired.copy.lab,
        "student": desired.copy.student,
        "networks": [{
            "name": n.name, "mode": n.mode, "external": n.external, "bridge": n.bridge, "subnet": str(n.subnet),
            "gateway": str(n.gateway) if n.gateway else None,
            "dhcp_range": [str(n.dhcp_start), str(n.dhcp_end)] if n.dhcp_start else None,
            "reservations": [{"mac": h.mac, "ip": str(h.ip), "host": h.hostname} for h in n.hosts],
        } for n in desired.networks],
        "pool": {"name": desired.pool.name, "path": desired.pool.path},
        "nodes": [{
            "name": dom.key, "domain": dom.name, "role": dom.role, "domain_type": dom.domain_type,
            "vcpus": dom.vcpus, "memory": format_size(dom.memory), "memory_bytes": dom.memory,
            "cpu_mode": dom.cpu_mode,
            "disks": [p for p in (dom.disk, dom.seed) if p],
            "nics": [{"name": n.name, "network": n.network, "mac": n.mac, "model": n.model,
                      "address": str(n.address) if n.address else None} for n in dom.nics],
        } for dom in desired.domains],
        # kind "seed": the cloud-init ISO; its capacity is the ISO's size (core.seed_size)
        "volumes": [{"pool": v.pool, "name": v.name, "capacity": format_size(v.capacity),
                     "capacity_bytes": v.capacity, "format": v.format, "backing": v.backing, "node": v.node,
                     "kind": v.kind}
                    for v in desired.volumes],
        "images": [{"name": i.name, "volume": i.volume, "recipe_hash": i.recipe_hash} for i in desired.images],
        "warnings": list(desired.warnings),
    }
    if plan is not None:
        d["actions"] = [{"action": a.verb, "target": a.target, "phase": a.phase, "needs": list(a.needs), "describe": a.describe()}
                        for a in plan.actions]
        d["blockers"] = list(plan.blockers)
        d["notes"] = list(plan.notes)
    return d
