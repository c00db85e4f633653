"""plan(desired, observed) -> actions. Pure: compares fields labvirt owns, never XML text.

An empty Observed plans everything; an Observed that matches plans nothing. Actions carry a phase:
the engine runs phases in order and the actions of one phase concurrently, one chain per object.
Objects with a lab name but without this lab's metadata are blockers: never touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from labvirt.core.desired import DesiredDomain, DesiredLab, DesiredNetwork
from labvirt.core.identity import LabCopy
from labvirt.core.observed import Observed, ObservedDomain, ObservedNetwork
from labvirt.core.render import render_dhcp_host, render_domain, render_network, render_nic, render_pool, render_volume, tostring

# phases: volumes share the first phase with networks (in their pool's chain), so they do not wait
# for the network starts that libvirtd performs one at a time
NETWORKS_AND_POOL, VOLUMES, DOMAINS = 0, 0, 2


@dataclass(frozen=True)
class Action:
    phase: int
    target: str        # the object this action works on
    chain: str = ""    # actions of one chain run in order (default: the target's own chain)

    @property
    def chain_key(self) -> str:
        return self.chain or self.target

    @property
    def verb(self) -> str:
        return type(self).__name__

    def describe(self) -> str:
        return f"{self.verb} {self.target}"


@dataclass(frozen=True)
class DefineNetwork(Action):
    xml: str = ""


@dataclass(frozen=True)
class StartNetwork(Action):
    pass


@dataclass(frozen=True)
class AutostartNetwork(Action):
    pass


@dataclass(frozen=True)
class AddDhcpHost(Action):
    xml: str = ""
    live: bool = True

    def describe(self) -> str:
        return f"{self.verb} {self.target}: {self.xml.strip()}"


@dataclass(frozen=True)
class RemoveDhcpHost(AddDhcpHost):
    pass


@dataclass(frozen=True)
class DefinePool(Action):
    xml: str = ""


@dataclass(frozen=True)
class StartPool(Action):
    pass


@dataclass(frozen=True)
class CreateVolume(Action):
    pool: str = ""
    xml: str = ""


@dataclass(frozen=True)
class CreateSeed(Action):
    """Build the cloud-init seed ISO (pycdlib) and store it as a 0600 raw volume (uploaded by stream)."""

    pool: str = ""
    name: str = ""
    documents: tuple[tuple[str, str], ...] = field(default=(), repr=False)   # holds the host's private key

    def describe(self) -> str:
        return f"{self.verb} {self.target} ({', '.join(n for n, _ in self.documents)})"


@dataclass(frozen=True)
class CustomizeDisk(Action):
    """Write the node's identity into its new overlay with virt-customize (local hosts, before first boot)."""

    argv: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"{self.verb} {self.target} (hostname, /etc/hosts, ifcfg-eth*)"


@dataclass(frozen=True)
class DefineDomain(Action):
    xml: str = ""


@dataclass(frozen=True)
class UpdateDomain(DefineDomain):
    """Redefine the persistent definition in place (same UUID); a running domain applies it at restart."""

    changes: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"{self.verb} {self.target}: {', '.join(self.changes)}"


@dataclass(frozen=True)
class AttachNic(Action):
    xml: str = ""

    def describe(self) -> str:
        return f"{self.verb} {self.target} (live)"


@dataclass(frozen=True)
class DetachNic(AttachNic):
    pass


@dataclass(frozen=True)
class StartDomain(Action):
    pass


@dataclass(frozen=True)
class ShutdownDomain(Action):
    pass


@dataclass(frozen=True)
class DestroyDomain(Action):
    """Stop (if running) and undefine, with snapshot metadata."""


@dataclass(frozen=True)
class DeleteVolume(Action):
    pool: str = ""
    name: str = ""


@dataclass(frozen=True)
class DeletePool(Action):
    pass


@dataclass(frozen=True)
class DeleteNetwork(Action):
    pass


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    blockers: tuple[str, ...] = ()     # why nothing may be applied (foreign objects, missing images)
    notes: tuple[str, ...] = ()        # what the user should know (restart needed, recreate needed, ...)
    missing_images: tuple[str, ...] = ()   # recipes whose golden image is not built on this host

    @property
    def empty(self) -> bool:
        return not self.actions

    def phases(self) -> list[list[Action]]:
        """Actions by phase, in plan order within each."""
        out: dict[int, list[Action]] = {}
        for a in self.actions:
            out.setdefault(a.phase, []).append(a)
        return [out[k] for k in sorted(out)]


@dataclass
class _Builder:
    actions: list = field(default_factory=list)
    blockers: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    missing_images: list = field(default_factory=list)

    def done(self) -> Plan:
        return Plan(tuple(self.actions), tuple(self.blockers), tuple(self.notes), tuple(self.missing_images))


def _owned(obj, kind: str, copy: LabCopy, b: _Builder) -> bool:
    """True when `obj` (observed, with the name we want) carries this lab copy's metadata."""
    if obj.owner is not None and obj.owner.kind == kind and obj.owner.matches(copy.lab, copy.student):
        return True
    who = "has no labvirt metadata" if obj.owner is None else (
        f"belongs to lab {obj.owner.lab!r}" + (f" student {obj.owner.student!r}" if obj.owner.student else ""))
    b.blockers.append(f"{kind} {obj.name!r} exists but {who}; labvirt will not touch it "
                      f"(rename or remove it yourself, or rename the lab)")
    return False


@dataclass(frozen=True)
class SeedIdentity:
    """What goes into every seed besides the plan: login keys and root password hashes per image."""

    ssh_keys: tuple[str, ...] = ()
    password_hashes: tuple[tuple[str, str], ...] = ()   # (image name, crypt hash)
    user: str = "root"
    host_keys: tuple[tuple[str, str, str], ...] = field(default=(), repr=False)   # (node, private, public)


def plan_up(desired: DesiredLab, observed: Observed, recreate: bool = False, start: bool = True,
            images_present: frozenset[str] | None = None, identity: SeedIdentity = SeedIdentity(),
            images_of: dict[str, str] | None = None, customize: dict[str, tuple[str, ...]] | None = None) -> Plan:
    """Bring the copy to the desired state. `images_present`: golden image paths that exist;
    `images_of`: node -> image recipe name (to pick the node's root password hash); `customize`:
    node -> virt-customize argv for nodes whose identity is written into a new overlay."""
    b = _Builder()
    ours_bridges = {n.bridge for n in observed.networks.values()
                    if n.owner and n.owner.matches(desired.copy.lab, desired.copy.student)}
    for net in desired.networks:
        _plan_network(net, observed.networks.get(net.name), observed, ours_bridges, desired.copy, b)
    _plan_pool(desired, observed, b)
    for img in desired.images:
        if images_present is not None and img.path not in images_present:
            b.missing_images.append(img.name)
            b.blockers.append(f"golden image {img.name!r} is not built yet: run 'labvirt image build {img.name}'")
    pool = observed.pools.get(desired.pool.name)
    for vol in desired.volumes:
        if vol.kind == "seed":
            if pool is None or pool.volume(vol.name) is None:
                b.actions.append(_create_seed(desired, vol, identity, images_of or {}, chain=vol.pool))
            continue
        if pool is None or pool.volume(vol.name) is None:
            b.actions.append(CreateVolume(VOLUMES, f"{vol.pool}/{vol.name}", vol.pool, pool=vol.pool,
                                          xml=tostring(render_volume(vol))))
            if customize and vol.node in customize:     # same chain: runs right after the overlay exists
                b.actions.append(CustomizeDisk(VOLUMES, f"{vol.pool}/{vol.name}", vol.pool, argv=customize[vol.node]))
    for dom in desired.domains:
        _plan_domain(dom, observed.domains.get(dom.name), desired.copy, b, recreate, start)
    owned_names = {d.name for d in desired.domains}
    for name, obs in sorted(observed.domains.items()):
        if name not in owned_names and obs.owner and obs.owner.matches(desired.copy.lab, desired.copy.student):
            b.notes.append(f"domain {name!r} is no longer in the lab file; 'labvirt destroy' removes it")
    return b.done()


def _create_seed(desired: DesiredLab, vol, identity: SeedIdentity, images_of: dict[str, str],
                 chain: str = "") -> CreateSeed:
    from labvirt.core.cloudinit import seed_documents

    hashes = dict(identity.password_hashes)
    host_keys = {node: (private, public) for node, private, public in identity.host_keys}
    docs = seed_documents(desired, vol.node, ssh_keys=identity.ssh_keys,
                          password_hash=hashes.get(images_of.get(vol.node, ""), hashes.get("")),
                          user=identity.user, host_key=host_keys.get(vol.node))
    return CreateSeed(VOLUMES, f"{vol.pool}/{vol.name}", chain, pool=vol.pool, name=vol.name,
                      documents=tuple(sorted(docs.items())))


def _plan_network(net: DesiredNetwork, obs: ObservedNetwork | None, observed: Observed,
                  ours_bridges: set, copy: LabCopy, b: _Builder) -> None:
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
    if not _owned(obs, "network", copy, b):
        return
    if obs.owner.spec != net.spec:
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


def _plan_domain(dom: DesiredDomain, obs: ObservedDomain | None, copy: LabCopy, b: _Builder, recreate: bool,
                 start: bool) -> None:
    xml = tostring(render_domain(dom))
    if obs is None:
        b.actions.append(DefineDomain(DOMAINS, dom.name, xml=xml))
        if start:
            b.actions.append(StartDomain(DOMAINS, dom.name))
        return
    if not _owned(obs, "node", copy, b):
        return
    running = obs.state in ("running", "paused")
    if obs.owner.spec != dom.spec:
        if obs.owner.shape != dom.shape or dom.disk not in obs.disks:
            if recreate:
                b.actions.append(DestroyDomain(DOMAINS, dom.name))
                b.actions.append(DefineDomain(DOMAINS, dom.name, xml=xml))
                if start:
                    b.actions.append(StartDomain(DOMAINS, dom.name))
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
            b.actions.append(UpdateDomain(DOMAINS, dom.name, xml=xml, changes=tuple(changes) or ("metadata",)))
            if running:
                for n in added:
                    b.actions.append(AttachNic(DOMAINS, dom.name, xml=tostring(render_nic(n))))
                for n in removed:
                    b.actions.append(DetachNic(DOMAINS, dom.name, xml=tostring(render_nic(n))))
                if dom.memory != obs.memory or dom.vcpus != obs.vcpus:
                    b.notes.append(f"node {dom.key!r}: memory/vCPU change applies at its next restart "
                                   "('labvirt down' then 'labvirt up')")
    if start and obs.state == "shutoff":
        b.actions.append(StartDomain(DOMAINS, dom.name))


def plan_down(desired: DesiredLab, observed: Observed) -> Plan:
    b = _Builder()
    for dom in desired.domains:
        obs = observed.domains.get(dom.name)
        if obs is not None and _owned(obs, "node", desired.copy, b) and obs.state != "shutoff":
            b.actions.append(ShutdownDomain(DOMAINS, dom.name))
    return b.done()


def plan_destroy(desired: DesiredLab, observed: Observed) -> Plan:
    """Remove every object of this copy that carries its metadata (also ones no longer in the lab file)."""
    b = _Builder()
    copy = desired.copy
    wanted_domains = {d.name for d in desired.domains}
    for name, obs in sorted(observed.domains.items()):
        mine = obs.owner is not None and obs.owner.kind == "node" and obs.owner.matches(copy.lab, copy.student)
        if mine:
            b.actions.append(DestroyDomain(0, name))
        elif name in wanted_domains:
            _owned(obs, "node", copy, b)
    pool = observed.pools.get(desired.pool.name)
    if pool is not None:
        if pool.uuid != desired.pool.uuid:
            b.blockers.append(f"storage pool {pool.name!r} was not created by labvirt for this lab; not removed")
        else:
            for vol in pool.volumes:     # the pool's chain: its volumes, then the pool, beside the networks
                b.actions.append(DeleteVolume(1, f"{pool.name}/{vol.name}", pool.name, pool=pool.name, name=vol.name))
            b.actions.append(DeletePool(1, pool.name))
    wanted_networks = {n.name for n in desired.networks}
    for name, obs in sorted(observed.networks.items()):
        mine = obs.owner is not None and obs.owner.kind == "network" and obs.owner.matches(copy.lab, copy.student)
        if mine:
            b.actions.append(DeleteNetwork(1, name))
        elif name in wanted_networks:
            _owned(obs, "network", copy, b)
    return b.done()
