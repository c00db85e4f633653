"""What `up` refuses on a host before it changes anything, beyond what the plan itself blocks. Pure.

The same judgements `labvirt check` makes (labvirt.host.networks, labvirt.core.capacity), applied to
what this `up` would do:
- a lab network it would start whose subnet, bridge or name collides with a libvirt network on the host
  (libvirt's `default`, another lab's), or, on this machine, with a route or an interface;
- nodes it would start that do not fit in the host's memory (unless forced).
The session reads the host (labvirt.ops.session.Session.refusals).
"""

from __future__ import annotations

from labvirt.core.capacity import Capacity, needs_of, usage
from labvirt.core.plan import Plan, StartDomain, StartNetwork
from labvirt.core.units import format_size
from labvirt.host.networks import lab_networks, network_verdicts


def refusals(spec, desired, plan: Plan, host_networks=(), interfaces=(), routes=(),
             capacity: Capacity | None = None, force: bool = False) -> list[str]:
    """One line per refusal, naming both sides and the fix. `host_networks`: every libvirt network on
    the host (ObservedNetwork); `interfaces`, `routes`: this machine's (labvirt.host.facts), or empty
    for a remote or simulated host; `capacity`: None when unknown."""
    found = []
    starting = {a.target for a in plan.actions if isinstance(a, StartNetwork)}
    nets = [n for n in lab_networks(spec, desired.copy) if n.libvirt_name in starting]
    for v in network_verdicts(nets, desired.copy, host_networks, interfaces, routes):
        if v.collides:
            net = v.network
            found.append(f"network {net.name!r} {net.subnet} ({net.file or 'networks/' + net.name + '.toml'}) "
                         f"collides with {v.collides}: {v.fix}")
    if capacity is not None and not force and any(isinstance(a, StartDomain) for a in plan.actions):
        domain_type = desired.domains[0].domain_type if desired.domains else "qemu"
        needs = needs_of(spec, 1, domain_type)
        memory = next(u for u in usage(needs, capacity) if u.resource == "memory")
        if not memory.ok:
            big = max(spec.nodes, key=lambda n: n.memory)
            nodes = f"its {needs.nodes} nodes need" if needs.nodes != 1 else "its node needs"
            found.append(f"the lab does not fit in the host's memory: {nodes} "
                         f"{format_size(memory.need)} (QEMU's overhead included; the largest, {big.name}, has "
                         f"{format_size(big.memory)}), the host has {format_size(memory.have)} for guests; "
                         "give nodes less memory or use a bigger host, or 'labvirt up --force' to start them anyway")
    return found
