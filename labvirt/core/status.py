"""`labvirt status` as plain data: nodes, networks and drift between the lab file and libvirt. Pure."""

from __future__ import annotations

from labvirt.core import plan as p
from labvirt.core.addresses import node_addresses
from labvirt.core.desired import DesiredLab
from labvirt.core.observed import Observed
from labvirt.core.units import format_size

_CREATE = (p.DefineNetwork, p.DefinePool, p.CreateVolume, p.DefineDomain)


def drift(the_plan: p.Plan) -> list[str]:
    """What 'up' would still do, in words (run state aside: a node that is down is not drift)."""
    out = []
    for a in the_plan.actions:
        if isinstance(a, (p.StartDomain, p.ShutdownDomain)):
            continue
        if isinstance(a, p.UpdateDomain):
            out.append(f"{a.target}: {', '.join(a.changes)}")
        elif isinstance(a, _CREATE):
            out.append(f"missing: {a.target}")
        else:
            out.append(a.describe())
    out += list(the_plan.notes) + list(the_plan.blockers)
    return list(dict.fromkeys(out))


def lab_status(desired: DesiredLab, observed: Observed, the_plan: p.Plan,
               addresses: dict[str, dict[str, list[dict]]] | None = None, simulated: bool = False) -> dict:
    """`addresses`: domain name -> mac -> [{"ip", "source"}] as observed (may be empty)."""
    addresses = addresses or {}
    # per NIC: planned and observed, as `labvirt ip` shows them (observed only what libvirt said)
    nics_of = {e["domain"]: e["nics"] for e in node_addresses(
        desired, [d.key for d in desired.domains], {name: (found, {}) for name, found in addresses.items()})}
    nodes = []
    for dom in desired.domains:
        obs = observed.domains.get(dom.name)
        nics = nics_of[dom.name]
        nodes.append({
            "name": dom.key, "domain": dom.name, "role": dom.role,
            "state": obs.state if obs else "missing",
            "vcpus": obs.vcpus if obs else dom.vcpus,
            "memory": format_size(obs.memory if obs else dom.memory),
            "current_snapshot": obs.current_snapshot if obs else None,
            "snapshots": list(obs.snapshots) if obs else [],
            "nics": nics,
        })
    networks = []
    host_nets = {n.name: n for n in observed.host_networks}
    for net in desired.networks:
        if net.external:     # the host's, not labvirt's: an existing network's state as libvirt reports it
            obs = host_nets.get(net.name) if net.mode == "existing" else None
            known = net.mode == "existing"
            networks.append({"name": net.name, "mode": net.mode, "external": True,
                             "bridge": (obs.bridge if obs else None) or net.bridge, "subnet": str(net.subnet),
                             "active": bool(obs and obs.active) if known else None,
                             "exists": obs is not None if known else None})
            continue
        obs = observed.networks.get(net.name)
        networks.append({"name": net.name, "mode": net.mode, "external": False,
                         "bridge": obs.bridge if obs else net.bridge,
                         "subnet": str(net.subnet), "active": bool(obs and obs.active),
                         "exists": obs is not None})
    return {"lab": desired.copy.lab, "student": desired.copy.student, "simulated": simulated,
            "nodes": nodes, "networks": networks, "drift": drift(the_plan)}
