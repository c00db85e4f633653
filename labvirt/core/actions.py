"""The actions a plan is made of: one libvirt change each, with the chain it runs in and what it waits
for (labvirt.core.plan makes them, labvirt.core.schedule orders them, labvirt.ops.engine runs them). Pure."""

from __future__ import annotations

from labvirt.core.record import Record, repr_without

# stages (display order and the order ready actions go to workers; what waits for what is `needs`)
NETWORKS_AND_POOL, VOLUMES, DOMAINS = 0, 0, 2
# destroy: domains first (they hold the disks and the networks' ports), then storage and networks
STOP_DOMAINS, REMOVE_STORAGE_AND_NETWORKS = 0, 1


class Action(Record):
    phase: int
    target: str        # the object this action works on
    chain: str = ""    # actions of one chain run in order (default: the target's own chain)
    needs: tuple[str, ...] = ()   # targets whose actions in this plan must finish first

    @property
    def chain_key(self) -> str:
        return self.chain or self.target

    @property
    def verb(self) -> str:
        return type(self).__name__

    def describe(self) -> str:
        return f"{self.verb} {self.target}"


class DefineNetwork(Action):
    xml: str = ""


class StartNetwork(Action):
    pass


class AutostartNetwork(Action):
    pass


class AddDhcpHost(Action):
    xml: str = ""
    live: bool = True

    def describe(self) -> str:
        return f"{self.verb} {self.target}: {self.xml.strip()}"


class RemoveDhcpHost(AddDhcpHost):
    pass


class AddDnsHost(AddDhcpHost):
    """A <dns><host> of a node with a static address (it never leases, so dnsmasq names it only so)."""


class RemoveDnsHost(AddDhcpHost):
    pass


class DefinePool(Action):
    xml: str = ""


class StartPool(Action):
    pass


class CreateVolume(Action):
    pool: str = ""
    xml: str = ""


class CreateSeed(Action):
    """Build the cloud-init seed ISO (pycdlib) and store it as a 0600 raw volume (uploaded by stream)."""

    pool: str = ""
    name: str = ""
    documents: tuple[tuple[str, str], ...] = ()   # holds the host's private key

    __repr__ = repr_without("documents")

    def describe(self) -> str:
        return f"{self.verb} {self.target} ({', '.join(n for n, _ in self.documents)})"


class CustomizeDisk(Action):
    """Write the node's identity into its new overlay with virt-customize (local hosts, before first boot)."""

    argv: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"{self.verb} {self.target} (hostname, /etc/hosts, network, keys)"


class DefineDomain(Action):
    xml: str = ""


class UpdateDomain(DefineDomain):
    """Redefine the persistent definition in place (same UUID); a running domain applies it at restart."""

    changes: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"{self.verb} {self.target}: {', '.join(self.changes)}"


class AttachNic(Action):
    xml: str = ""

    def describe(self) -> str:
        return f"{self.verb} {self.target} (live)"


class DetachNic(AttachNic):
    pass


class StartDomain(Action):
    pass


class ShutdownDomain(Action):
    pass


class DestroyDomain(Action):
    """Stop (if running) and undefine, with snapshot metadata."""


class DeleteVolume(Action):
    pool: str = ""
    name: str = ""


class DeletePool(Action):
    pass


class DeleteNetwork(Action):
    pass
