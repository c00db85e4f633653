"""Deterministic identity of every object of one copy of a lab.

A lab can be instantiated many times: the lab itself (student "") and one copy per student. A copy
has its own name prefix and may have its own subnets (same prefix length, allocated by the class
commands); every address keeps its host part, so `.100` in the lab file is `.100` in every copy.
Names, MACs, UUIDs and bridges derive from (lab, student, object), so a re-run finds the same objects.
The lab directory (`origin`) is recorded in every object's metadata but derives nothing: two lab
directories with one lab name want the same names, and the origin tells their objects apart.
Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import uuid
from ipaddress import IPv4Address, IPv4Network

from labvirt.core.record import Record
from labvirt.core.spec import NetworkSpec

NAMESPACE = uuid.UUID("6f1c7e0a-3d55-4f3b-9a84-1b7c2a9d5e10")   # labvirt's uuid5 namespace
IMAGE_POOL = "labvirt-images"


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("/".join(parts).encode()).digest()


class LabCopy(Record):
    """One instance of a lab: the lab itself (student "") or a student's copy."""

    lab: str
    student: str = ""
    subnets: tuple[tuple[str, IPv4Network], ...] = ()   # network name -> this copy's subnet
    origin: str = ""     # the lab directory it comes from (recorded in metadata; "" where unknown)
    # external networks (shared by every copy): (network, lab file's address, this copy's address), given
    # from the class's [class.external] ranges (labvirt.core.external.allocate_addresses)
    external: tuple[tuple[str, IPv4Address, IPv4Address], ...] = ()

    @property
    def prefix(self) -> str:
        return f"{self.lab}-{self.student}" if self.student else self.lab

    # -- names --------------------------------------------------------------------------------
    def domain_name(self, node: str) -> str:
        return f"{self.prefix}-{node}"

    def network_name(self, network: str) -> str:
        return f"{self.prefix}-{network}"

    @property
    def pool_name(self) -> str:
        return f"labvirt-{self.prefix}"

    def pool_path(self, pool_dir: str) -> str:
        return f"{pool_dir.rstrip('/')}/{self.prefix}"

    @staticmethod
    def disk_volume(node: str) -> str:
        return f"{node}.qcow2"

    @staticmethod
    def seed_volume(node: str) -> str:
        return f"{node}-seed.iso"

    def bridge_name(self, net: NetworkSpec) -> str:
        """Explicit bridge for the lab itself; derived (<= 15 chars, Linux's limit) otherwise. A host
        bridge is the host's for every copy."""
        if net.mode == "host-bridge":
            return net.bridge
        if net.bridge and not self.student:
            return net.bridge
        h = _digest("bridge", self.lab, self.student, net.name).hex()[:7]
        return f"lv{h}-{net.name[:5]}"

    # -- identity -----------------------------------------------------------------------------
    def mac(self, node: str, index: int, salt: int = 0) -> str:
        d = _digest("mac", self.lab, self.student, node, str(index), str(salt))
        return "52:54:00:" + ":".join(f"{b:02x}" for b in d[:3])

    def domain_uuid(self, node: str) -> str:
        return str(uuid.uuid5(NAMESPACE, f"domain/{self.lab}/{self.student}/{node}"))

    def network_uuid(self, network: str) -> str:
        return str(uuid.uuid5(NAMESPACE, f"network/{self.lab}/{self.student}/{network}"))

    def pool_uuid(self) -> str:
        return str(uuid.uuid5(NAMESPACE, f"pool/{self.lab}/{self.student}"))

    # -- addressing ---------------------------------------------------------------------------
    def subnet(self, net: NetworkSpec) -> IPv4Network:
        if net.external:                 # shared by every copy: never moved
            return net.subnet
        for name, subnet in self.subnets:
            if name == net.name:
                if subnet.prefixlen != net.subnet.prefixlen:
                    raise ValueError(f"copy subnet {subnet} for {net.name} must be /{net.subnet.prefixlen}")
                return subnet
        return net.subnet

    def address(self, net: NetworkSpec, addr: IPv4Address) -> IPv4Address:
        """The lab file's address moved into this copy's subnet, keeping its host part. On an external
        network: the address the class gave this copy (the lab file's own for the lab itself)."""
        if net.external:
            return next((mine for name, theirs, mine in self.external if name == net.name and theirs == addr), addr)
        offset = int(addr) - int(net.subnet.network_address)
        return self.subnet(net).network_address + offset


def image_pool_uuid() -> str:
    return str(uuid.uuid5(NAMESPACE, "pool/images"))

