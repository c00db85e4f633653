"""The actions a plan is made of: one libvirt change each, with the chain it runs in and what it waits
for (labvirt.core.plan makes them, labvirt.core.schedule orders them, labvirt.ops.engine runs them). Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

# stages (display order and the order ready actions go to workers; what waits for what is `needs`)
NETWORKS_AND_POOL, VOLUMES, DOMAINS = 0, 0, 2
# destroy: domains first (they hold the disks and the networks' ports), then storage and networks
STOP_DOMAINS, REMOVE_STORAGE_AND_NETWORKS = 0, 1


@dataclass(frozen=True)
class Action:
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
class AddDnsHost(AddDhcpHost):
    """A <dns><host> of a node with a static address (it never leases, so dnsmasq names it only so)."""


@dataclass(frozen=True)
class RemoveDnsHost(AddDhcpHost):
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
        return f"{self.verb} {self.target} (hostname, /etc/hosts, network, keys)"


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
