"""A rebuild as one plan: each node's domain and disks dropped and made again in one chain. Pure.

`removal` says what goes (the copy's domains, with their snapshots, and the volumes labvirt made for
them: overlays and seeds; networks and the pool stay) and what the host will look like afterwards.
The caller plans `up` against that prediction (labvirt.ops.session.plan_up_for) and `pipeline` puts
both in one plan: per node, destroy, delete its volumes, create them, define, start, one after another,
while the other nodes do the same. No node waits for another node's removal, and the host is observed
once.
"""

from __future__ import annotations

from labvirt.core.actions import (REMOVE_STORAGE_AND_NETWORKS, STOP_DOMAINS, Action, CreateSeed, CreateVolume,
                                  CustomizeDisk, DeleteVolume, DestroyDomain)
from labvirt.core.desired import DesiredLab
from labvirt.core.observed import Observed
from labvirt.core.plan import Plan, plan_destroy
from labvirt.core.record import Record, replace

VOLUME_WORK = (CreateVolume, CreateSeed, CustomizeDisk)


class Removal(Record):
    actions: tuple[Action, ...]
    blockers: tuple[str, ...]       # objects with this copy's names that labvirt did not make: nothing runs
    after: Observed                 # the host once the actions ran


def removal(desired: DesiredLab, observed: Observed) -> Removal:
    """Drop every node of the copy that exists and the volumes of those nodes (in the node's chain)."""
    pool = observed.pools.get(desired.pool.name)
    domain_of = {d.key: d.name for d in desired.domains}
    gone_domains = {d.name for d in desired.domains if d.name in observed.domains}
    actions: list[Action] = [DestroyDomain(STOP_DOMAINS, name) for name in sorted(gone_domains)]
    gone_volumes = set()
    for v in desired.volumes:
        if pool is not None and pool.volume(v.name) is not None:
            gone_volumes.add(v.name)
            actions.append(DeleteVolume(REMOVE_STORAGE_AND_NETWORKS, f"{v.pool}/{v.name}", chain=domain_of[v.node],
                                        pool=v.pool, name=v.name))
    pools = dict(observed.pools)
    if pool is not None:
        pools[pool.name] = replace(pool, volumes=tuple(v for v in pool.volumes if v.name not in gone_volumes))
    after = replace(observed, pools=pools,
                    domains={n: d for n, d in observed.domains.items() if n not in gone_domains})
    return Removal(tuple(actions), plan_destroy(desired, observed).blockers, after)


def pipeline(desired: DesiredLab, gone: Removal, up: Plan) -> Plan:
    """`gone` then `up` as one plan: a node's new volumes join its chain, after its old domain and disks."""
    domain_of = {d.key: d.name for d in desired.domains}
    chain_of = {f"{v.pool}/{v.name}": domain_of[v.node] for v in desired.volumes}
    made = tuple(replace(a, chain=chain_of[a.target]) if isinstance(a, VOLUME_WORK) and a.target in chain_of else a
                 for a in up.actions)
    return Plan(gone.actions + made, blockers=tuple(dict.fromkeys(gone.blockers + up.blockers)), notes=up.notes,
                missing_images=up.missing_images)
