"""plan(desired, observed) -> actions. Pure: compares fields labvirt owns, never XML text.

An empty Observed plans everything; an Observed that matches plans nothing. The actions of one chain
(one object, or a pool with its volumes) run in order; an action also waits for every action on the
targets it `needs` (a node's start for its networks, disks and seed; a network's removal for the nodes
on it); all else runs at once (labvirt.core.schedule). The phase is the stage an action belongs to:
how plans are shown, and which ready actions go first.
Objects with a name this copy wants that it does not claim (labvirt.core.observed.claim: no labvirt
metadata, another lab or student, or another lab directory of the same lab name) are blockers: never
touched. Another lab directory's objects block the whole copy, also those this lab file does not name.
"""

from __future__ import annotations

from labvirt.core.actions import (  # noqa: F401 (the plan's vocabulary: callers use plan.DefineNetwork, ...)
    Action, DefineNetwork, StartNetwork, AutostartNetwork, AddDhcpHost, RemoveDhcpHost, AddDnsHost,
    RemoveDnsHost, DefinePool, StartPool, CreateVolume, CreateSeed, CustomizeDisk, DefineDomain,
    UpdateDomain, AttachNic, DetachNic, StartDomain, ShutdownDomain, DestroyDomain, DeleteVolume,
    DeletePool, DeleteNetwork, NETWORKS_AND_POOL, VOLUMES, DOMAINS, STOP_DOMAINS,
    REMOVE_STORAGE_AND_NETWORKS,
)
from labvirt.core.desired import DesiredDomain, DesiredLab, DesiredNetwork
from labvirt.core.identity import LabCopy
from labvirt.core.observed import Claim, Observed, ObservedDomain, ObservedNetwork, claim
from labvirt.core.record import MutableRecord, Record, field, repr_without
from labvirt.core.render import dns_names, render_dhcp_host, render_dns_host, render_domain, render_network, render_nic, render_pool, render_volume, tostring


class Plan(Record):
    actions: tuple[Action, ...]
    blockers: tuple[str, ...] = ()     # why nothing may be applied (foreign objects, missing images)
    notes: tuple[str, ...] = ()        # what the user should know (restart needed, recreate needed, ...)
    missing_images: tuple[str, ...] = ()   # recipes whose golden image is not built on this host

    @property
    def empty(self) -> bool:
        return not self.actions

    @property
    def refused(self) -> bool:
        """`up` would refuse it: a blocker other than missing golden images (which `up` builds first)."""
        return len(self.blockers) > len(self.missing_images)


class _Builder(MutableRecord):
    copy: LabCopy
    adopt: bool = False      # take over objects of this lab name made from another lab directory
    actions: list = field(default_factory=list)
    blockers: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    missing_images: list = field(default_factory=list)
    elsewhere: dict = field(default_factory=dict)    # other lab directory -> its objects met here

    def claim(self, obj, kind: str, block: bool = True) -> Claim:
        """The ownership check for `obj` (observed, with a name this copy wants); a blocker when not ours."""
        c = claim(obj.owner, kind, self.copy, self.adopt)
        if not c.ours and block:
            if c.origin:
                self.elsewhere.setdefault(c.origin, []).append(f"{kind} {obj.name}")
            else:
                self.blockers.append(f"{kind} {obj.name!r} exists but {c.why}; labvirt will not touch it "
                                     f"(rename or remove it yourself, or rename the lab)")
        return c

    def done(self) -> Plan:
        blockers = [other_directory(self.copy, origin, objects) for origin, objects in self.elsewhere.items()]
        return Plan(tuple(self.actions), tuple(blockers + self.blockers), tuple(self.notes), tuple(self.missing_images))


def other_directory(copy: LabCopy, origin: str, objects: list[str]) -> str:
    """One line for every object another lab directory of the same lab name made on this host."""
    who = f"lab {copy.lab!r}" + (f" (student {copy.student!r})" if copy.student else "")
    shown = ", ".join(objects[:4]) + (f" and {len(objects) - 4} more" if len(objects) > 4 else "")
    here = f" ({copy.origin}/lab.toml)" if copy.origin else ""
    return (f"{who} on this host was made from another lab directory, {origin} ({shown}); labvirt will not "
            f"touch it: give this lab another [lab] name{here}, or remove the other one with "
            f"'labvirt destroy -C {origin}'; if you moved that directory here, 'labvirt up --adopt' takes it over")


class SeedIdentity(Record):
    """What goes into every seed besides the plan: login keys and root password hashes per image."""

    ssh_keys: tuple[str, ...] = ()
    password_hashes: tuple[tuple[str, str], ...] = ()   # (image name, crypt hash)
    user: str = "root"
    host_keys: tuple[tuple[str, str, str], ...] = ()   # (node, private, public)

    __repr__ = repr_without("host_keys")


def plan_up(desired: DesiredLab, observed: Observed, recreate: bool = False, start: bool = True,
            images_present: frozenset[str] | None = None, identity: SeedIdentity = SeedIdentity(),
            images_of: dict[str, str] | None = None, customize: dict[str, tuple[str, ...]] | None = None,
            adopt: bool = False) -> Plan:
    """Bring the copy to the desired state. `images_present`: golden image paths that exist;
    `images_of`: node -> image recipe name (to pick the node's root password hash); `customize`:
    node -> virt-customize argv for nodes whose identity is written into a new overlay; `adopt`: take
    over this copy's objects that another lab directory (this one, before it moved) made."""
    b = _Builder(desired.copy, adopt)
    ours_bridges = {n.bridge for n in observed.networks.values() if b.claim(n, "network", block=False).ours}
    for net in desired.networks:
        if not net.external:        # not labvirt's: attached to, never defined, started or changed
            _plan_network(net, observed.networks.get(net.name), observed, ours_bridges, b)
    _plan_pool(desired, observed, b)
    for img in desired.images:
        if images_present is not None and img.path not in images_present:
            b.missing_images.append(img.name)
            b.blockers.append(f"golden image {img.name!r} is not built yet: run 'labvirt image build {img.name}'")
    pool = observed.pools.get(desired.pool.name)
    for vol in desired.volumes:     # each volume its own chain, once its pool exists: they are made at once
        if vol.kind == "seed":
            if pool is None or pool.volume(vol.name) is None:
                b.actions.append(_create_seed(desired, vol, identity, images_of or {}, needs=(vol.pool,)))
            continue
        if pool is None or pool.volume(vol.name) is None:
            b.actions.append(CreateVolume(VOLUMES, f"{vol.pool}/{vol.name}", needs=(vol.pool,), pool=vol.pool,
                                          xml=tostring(render_volume(vol))))
            if customize and vol.node in customize:     # the volume's chain: runs right after the overlay exists
                b.actions.append(CustomizeDisk(VOLUMES, f"{vol.pool}/{vol.name}", argv=customize[vol.node]))
    disks_of: dict[str, list[str]] = {}
    for vol in desired.volumes:
        disks_of.setdefault(vol.node, []).append(f"{vol.pool}/{vol.name}")
    for dom in desired.domains:
        needs = (desired.pool.name, *sorted({n.network for n in dom.nics}), *disks_of.get(dom.key, ()))
        _plan_domain(dom, observed.domains.get(dom.name), b, recreate, start, needs)
    _other_directory_objects(desired, observed, b)
    owned_names = {d.name for d in desired.domains}
    for name, obs in sorted(observed.domains.items()):
        if name not in owned_names and b.claim(obs, "node", block=False).ours:
            b.notes.append(f"domain {name!r} is no longer in the lab file; 'labvirt destroy' removes it")
    return b.done()


def _other_directory_objects(desired: DesiredLab, observed: Observed, b: _Builder) -> None:
    """Objects of this copy's names that another lab directory of the same lab name made, also ones this
    lab file does not name: one lab name on a host belongs to one lab directory (they share a pool)."""
    wanted = {d.name for d in desired.domains} | {n.name for n in desired.networks if not n.external}
    prefix = desired.copy.prefix + "-"
    for kind, objects in (("node", observed.domains), ("network", observed.networks)):
        for name, obs in sorted(objects.items()):
            if name.startswith(prefix) and name not in wanted:
                c = claim(obs.owner, kind, desired.copy, b.adopt)
                if c.origin:
                    b.elsewhere.setdefault(c.origin, []).append(f"{kind} {name}")


def _create_seed(desired: DesiredLab, vol, identity: SeedIdentity, images_of: dict[str, str],
                 needs: tuple[str, ...] = ()) -> CreateSeed:
    from labvirt.core.cloudinit import seed_documents

    hashes = dict(identity.password_hashes)
    host_keys = {node: (private, public) for node, private, public in identity.host_keys}
    docs = seed_documents(desired, vol.node, ssh_keys=identity.ssh_keys,
                          password_hash=hashes.get(images_of.get(vol.node, ""), hashes.get("")),
                          user=identity.user, host_key=host_keys.get(vol.node))
    return CreateSeed(VOLUMES, f"{vol.pool}/{vol.name}", needs=needs, pool=vol.pool, name=vol.name,
                      documents=tuple(sorted(docs.items())))


def _plan_network(net: DesiredNetwork, obs: ObservedNetwork | None, observed: Observed,
                  ours_bridges: set, b: _Builder) -> None:
    if obs is None:
        taken = net.bridge in observed.bridges and net.bridge not in ours_bridges
        if taken:
            b.blockers.append(f"bridge {net.bridge!r} for network {net.name!r} is already used by another "
                              "libvirt network; set another 'bridge' in the network file")
            return
        b.actions.append(DefineNetwork(NETWORKS_AND_POOL, net.name, xml=tostring(render_network(net))))
        b.actions.append(StartNetwork(NETWORKS_AND_POOL, net.name))
        b.actions.append(AutostartNetwork(NETWORKS_AND_POOL, net.name))
        return
    owned = b.claim(obs, "network")
    if not owned.ours:
        return
    if obs.owner.spec != net.spec or owned.adopt:
        want = {(h.mac, str(h.ip), h.hostname) for h in net.hosts}
        have = {(h.mac, h.ip, h.hostname) for h in obs.hosts}
        shape_same = (obs.bridge == net.bridge and f"{net.gateway}/{net.subnet.prefixlen}" in obs.addresses
                      and (obs.forward or "isolated") == ("nat" if net.mode == "nat" else "isolated"))
        if not shape_same:
            b.notes.append(f"network {net.name!r}: subnet, bridge or mode changed; "
                           "'labvirt destroy' then 'labvirt up' recreates it")
        else:
            for mac, ip, host in sorted(have - want):
                b.actions.append(RemoveDhcpHost(NETWORKS_AND_POOL, net.name,
                                                xml=tostring(render_dhcp_host(mac, host or "", ip)), live=obs.active))
            for mac, ip, host in sorted(want - have):
                b.actions.append(AddDhcpHost(NETWORKS_AND_POOL, net.name,
                                             xml=tostring(render_dhcp_host(mac, host, ip)), live=obs.active))
            want_dns, have_dns = set(dns_names(net).items()), set(obs.dns_hosts)
            for ip, names in sorted(have_dns - want_dns):      # the running dnsmasq too, not only the file
                b.actions.append(RemoveDnsHost(NETWORKS_AND_POOL, net.name,
                                               xml=tostring(render_dns_host(ip, names)), live=obs.active))
            for ip, names in sorted(want_dns - have_dns):
                b.actions.append(AddDnsHost(NETWORKS_AND_POOL, net.name,
                                            xml=tostring(render_dns_host(ip, names)), live=obs.active))
            # record the new spec hash in the network's metadata by redefining it
            b.actions.append(DefineNetwork(NETWORKS_AND_POOL, net.name, xml=tostring(render_network(net))))
    if not obs.active:
        b.actions.append(StartNetwork(NETWORKS_AND_POOL, net.name))
    if not obs.autostart:
        b.actions.append(AutostartNetwork(NETWORKS_AND_POOL, net.name))


def _plan_pool(desired: DesiredLab, observed: Observed, b: _Builder) -> None:
    pool = desired.pool
    obs = observed.pools.get(pool.name)
    if obs is None:
        b.actions.append(DefinePool(NETWORKS_AND_POOL, pool.name, xml=tostring(render_pool(pool))))
        b.actions.append(StartPool(NETWORKS_AND_POOL, pool.name))
        return
    if obs.uuid != pool.uuid:
        b.blockers.append(f"storage pool {pool.name!r} exists but was not created by labvirt for this lab "
                          f"(its UUID is not {pool.uuid}); labvirt will not touch it")
        return
    if not obs.active or not obs.autostart:
        b.actions.append(StartPool(NETWORKS_AND_POOL, pool.name))


def _plan_domain(dom: DesiredDomain, obs: ObservedDomain | None, b: _Builder, recreate: bool,
                 start: bool, needs: tuple[str, ...] = ()) -> None:
    """`needs`: what the node's start waits for (its pool, networks, disks and seed); defining it waits
    for nothing, so definitions overlap the network starts."""
    xml = tostring(render_domain(dom))
    if obs is None:
        b.actions.append(DefineDomain(DOMAINS, dom.name, xml=xml))
        if start:
            b.actions.append(StartDomain(DOMAINS, dom.name, needs=needs))
        return
    owned = b.claim(obs, "node")
    if not owned.ours:
        return
    running = obs.state in ("running", "paused", "starting")
    if obs.owner.spec != dom.spec or owned.adopt:
        if obs.owner.shape != dom.shape or dom.disk not in obs.disks:
            if recreate:
                b.actions.append(DestroyDomain(DOMAINS, dom.name))
                b.actions.append(DefineDomain(DOMAINS, dom.name, xml=xml))
                if start:
                    b.actions.append(StartDomain(DOMAINS, dom.name, needs=needs))
                return
            b.notes.append(f"node {dom.key!r} changed in a way that needs it recreated (disk, boot, CPU or "
                           "domain type); run 'labvirt up --recreate' (its disk is kept)")
        else:
            changes = []
            want_macs = {n.mac for n in dom.nics}
            have_macs = {n.mac for n in obs.nics}
            if dom.memory != obs.memory:
                changes.append(f"memory {obs.memory // 2**20} MiB -> {dom.memory // 2**20} MiB")
            if dom.vcpus != obs.vcpus:
                changes.append(f"vcpus {obs.vcpus} -> {dom.vcpus}")
            added = [n for n in dom.nics if n.mac not in have_macs]
            removed = [n for n in obs.nics if n.mac not in want_macs]
            changes += [f"add {n.name} on {n.network}" for n in added]
            changes += [f"remove NIC {n.mac}" for n in removed]
            if owned.adopt:
                changes.append(f"record lab directory {dom.origin}")
            b.actions.append(UpdateDomain(DOMAINS, dom.name, xml=xml, changes=tuple(changes) or ("metadata",)))
            if running:
                for n in added:
                    b.actions.append(AttachNic(DOMAINS, dom.name, xml=tostring(render_nic(n)), needs=(n.network,)))
                for n in removed:
                    b.actions.append(DetachNic(DOMAINS, dom.name, xml=tostring(render_nic(n))))
                if dom.memory != obs.memory or dom.vcpus != obs.vcpus:
                    b.notes.append(f"node {dom.key!r}: memory/vCPU change applies at its next restart "
                                   "('labvirt down' then 'labvirt up')")
    # "starting": libvirtd is still starting it for a client that went away (an `up` killed mid-start);
    # StartDomain waits for that start to end rather than report the node up while it is paused
    if start and obs.state in ("shutoff", "starting"):
        b.actions.append(StartDomain(DOMAINS, dom.name, needs=needs))


def plan_down(desired: DesiredLab, observed: Observed) -> Plan:
    b = _Builder(desired.copy)
    for dom in desired.domains:
        obs = observed.domains.get(dom.name)
        if obs is not None and b.claim(obs, "node").ours and obs.state != "shutoff":
            b.actions.append(ShutdownDomain(DOMAINS, dom.name))
    return b.done()


def plan_destroy(desired: DesiredLab, observed: Observed) -> Plan:
    """Remove every object of this copy that carries its metadata (also ones no longer in the lab file).
    Objects another lab directory of the same lab name made stay, and so does the pool they share."""
    b = _Builder(desired.copy)
    wanted_domains = {d.name for d in desired.domains}
    destroyed: list[ObservedDomain] = []
    for name, obs in sorted(observed.domains.items()):
        c = b.claim(obs, "node", block=False)
        if c.ours:
            b.actions.append(DestroyDomain(STOP_DOMAINS, name))
            destroyed.append(obs)
        elif c.origin or name in wanted_domains:
            b.claim(obs, "node")
    wanted_networks = {n.name for n in desired.networks if not n.external}   # external ones are never removed
    networks = []
    for name, obs in sorted(observed.networks.items()):
        c = b.claim(obs, "network", block=False)
        if c.ours:       # removed as soon as the nodes on it are gone
            on_it = tuple(d.name for d in destroyed if any(n.network == name for n in d.nics))
            networks.append(DeleteNetwork(REMOVE_STORAGE_AND_NETWORKS, name, needs=on_it))
        elif c.origin or name in wanted_networks:
            b.claim(obs, "network")
    pool = observed.pools.get(desired.pool.name)
    if pool is not None and not b.elsewhere:
        if pool.uuid != desired.pool.uuid:
            b.blockers.append(f"storage pool {pool.name!r} was not created by labvirt for this lab; not removed")
        else:
            every_node = tuple(d.name for d in destroyed)
            volumes = tuple(f"{pool.name}/{vol.name}" for vol in pool.volumes)
            for target, vol in zip(volumes, pool.volumes):     # at once, once the nodes are gone; then the pool
                b.actions.append(DeleteVolume(REMOVE_STORAGE_AND_NETWORKS, target, needs=every_node,
                                              pool=pool.name, name=vol.name))
            b.actions.append(DeletePool(REMOVE_STORAGE_AND_NETWORKS, pool.name, needs=every_node + volumes))
    b.actions += networks
    return b.done()
