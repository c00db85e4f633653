"""What a lab (or a class of N copies) needs from a host, what a host has, and whether it fits. Pure.

Used by `labvirt check` and by class placement (which copies go on which host): Needs add up
(`a + b`, `n * needs`), `fits` and `copies_that_fit` answer placement questions.

Overcommit defaults (the most labvirt accepts without being told otherwise):
- cpu 4.0: lab nodes are idle most of the time (a packstack controller averages well under one core
  once installed); OpenStack itself allows 16 vCPUs per core for cloud tenants, but in software
  emulation every guest instruction costs host CPU, so 4 keeps a class usable.
- memory 1.0: no overcommit. Guest RAM that does not fit is swapped (every guest crawls) or the OOM
  killer ends the largest QEMU process (a node dies mid-exercise).
- disk 1.0, against the disks' virtual sizes: qcow2 overlays are thin, but a guest that fills its disk
  on a full host filesystem pauses every guest there (QEMU stops on ENOSPC). Raise it when the course's
  real disk use is known; `Needs.disk_estimate` is a likelier figure for a fresh lab.
"""

from __future__ import annotations

import math

from labvirt.core.record import Record

MiB, GiB = 1024**2, 1024**3
# Memory QEMU itself uses per guest beyond the guest's RAM (device emulation, page tables; with TCG also
# the translated-code cache). Rough allowances, on the safe side.
QEMU_OVERHEAD = {"kvm": 192 * MiB, "qemu": 384 * MiB}
HOST_RESERVE = 1 * GiB          # memory the host keeps for its kernel, libvirtd, dnsmasq and page cache
OVERLAY_ALLOWANCE = 4 * GiB     # what one node writes into its overlay at first (boot, packages, packstack)


class Needs(Record):
    vcpus: int = 0
    memory: int = 0           # bytes: guests' RAM plus QEMU's own overhead
    disk: int = 0             # bytes: virtual size of every disk (the worst case: each guest fills its disk)
    disk_estimate: int = 0    # bytes: shared golden images once + a first-use allowance per node
    nodes: int = 0

    def __add__(self, other: "Needs") -> "Needs":
        return Needs(self.vcpus + other.vcpus, self.memory + other.memory, self.disk + other.disk,
                     self.disk_estimate + other.disk_estimate, self.nodes + other.nodes)

    def __mul__(self, copies: int) -> "Needs":
        return Needs(self.vcpus * copies, self.memory * copies, self.disk * copies, self.disk_estimate * copies,
                     self.nodes * copies)

    __rmul__ = __mul__


class Capacity(Record):
    cpus: int
    memory: int               # bytes available to guests (total minus the host's reserve)
    disk: int | None = None   # bytes free where the disks go; None when unknown


class Overcommit(Record):
    cpu: float = 4.0
    memory: float = 1.0
    disk: float = 1.0


class Usage(Record):
    resource: str             # "cpu" | "memory" | "disk"
    need: int
    have: int | None          # None: unknown
    ratio: float              # the overcommit allowed
    limit: int | None         # have * ratio

    @property
    def ok(self) -> bool:
        return self.limit is None or self.need <= self.limit

    @property
    def overcommit(self) -> float | None:
        """need / have: what the lab asks relative to what the host has (1.0 = all of it)."""
        return None if not self.have else self.need / self.have


def needs_of(spec, copies: int = 1, domain_type: str = "kvm") -> Needs:
    """What `copies` copies of the lab need. Golden images (the lab's image recipes) are shared by all
    copies and counted once in the estimate; base_image files already exist and are not counted."""
    overhead = QEMU_OVERHEAD.get(domain_type, QEMU_OVERHEAD["qemu"])
    one = Needs(vcpus=sum(n.vcpus for n in spec.nodes), memory=sum(n.memory + overhead for n in spec.nodes),
                disk=sum(n.disk for n in spec.nodes),
                disk_estimate=sum(min(n.disk, OVERLAY_ALLOWANCE) for n in spec.nodes), nodes=len(spec.nodes))
    used = {n.image for n in spec.nodes if n.image}
    shared = sum(i.size for i in spec.images if i.name in used)
    return one * copies + Needs(disk_estimate=shared)


def host_capacity(cpus: int, memory_total: int, disk_free: int | None = None,
                  reserve: int = HOST_RESERVE) -> Capacity:
    return Capacity(cpus=cpus, memory=max(memory_total - reserve, 0), disk=disk_free)


def usage(needs: Needs, capacity: Capacity, overcommit: Overcommit = Overcommit()) -> tuple[Usage, ...]:
    def one(resource, need, have, ratio):
        return Usage(resource, need, have, ratio, None if have is None else math.floor(have * ratio))

    return (one("cpu", needs.vcpus, capacity.cpus, overcommit.cpu),
            one("memory", needs.memory, capacity.memory, overcommit.memory),
            one("disk", needs.disk, capacity.disk, overcommit.disk))


def shortfalls(needs: Needs, capacity: Capacity, overcommit: Overcommit = Overcommit()) -> list[str]:
    """One line per resource the needs exceed (empty: it fits). Unknown capacity is not a shortfall."""
    from labvirt.core.units import format_size

    lines = []
    for u in usage(needs, capacity, overcommit):
        if u.ok:
            continue
        if u.resource == "cpu":
            lines.append(f"cpu: needs {u.need} vCPUs, the host has {u.have} CPUs "
                         f"(up to {u.limit} vCPUs at overcommit {u.ratio:g})")
        else:
            lines.append(f"{u.resource}: needs {format_size(u.need)}, the host has {format_size(u.have)} "
                         f"(up to {format_size(u.limit)} at overcommit {u.ratio:g})")
    return lines


def fits(needs: Needs, capacity: Capacity, overcommit: Overcommit = Overcommit()) -> bool:
    return all(u.ok for u in usage(needs, capacity, overcommit))


def copies_that_fit(one: Needs, capacity: Capacity, overcommit: Overcommit = Overcommit(),
                    shared: Needs = Needs()) -> int | None:
    """How many copies needing `one` each (plus `shared` once) fit on the host; None when nothing known
    limits it (unknown capacity, or copies that need nothing)."""
    limits = []
    for u, per in zip(usage(shared, capacity, overcommit), (one.vcpus, one.memory, one.disk)):
        if u.limit is None or per <= 0:
            continue
        limits.append(max((u.limit - u.need) // per, 0))
    return min(limits) if limits else None
