"""Class mode, the pure part: rosters, per-student subnets, placement on hosts, the class record.

Every student gets a copy of the lab (LabCopy with the student's name) whose networks are allocated
from the class's subnet pool with the lab file's prefix lengths; a node keeps the host part of its
address (`.100` stays `.100`). Allocation and placement are deterministic, take what already exists
into account (other students, the hosts' libvirt networks, libvirt's default 192.168.122.0/24) and
are recorded, so later commands find each copy where it was put.
"""

from __future__ import annotations

import os
from ipaddress import IPv4Network, ip_address, ip_network

from labvirt.core.capacity import Capacity, Needs, Overcommit, shortfalls
from labvirt.core.errors import LabvirtError, SpecError
from labvirt.core.external import load_ranges
from labvirt.core.fields import NAME_RE, NAME_RULE, Table
from labvirt.core.identity import LabCopy
from labvirt.core.record import MutableRecord, Record, field
from labvirt.core.spec import LabSpec

DEFAULT_POOL = "10.100.0.0/16"
LIBVIRT_DEFAULT = ip_network("192.168.122.0/24")


class ClassHost(Record):
    uri: str
    overcommit: Overcommit = Overcommit()


class ClassSpec(Record):
    subnet_pool: IPv4Network = ip_network(DEFAULT_POOL)
    hosts: tuple[ClassHost, ...] = ()
    roster: tuple[str, ...] = ()
    workers: int = 8
    external: dict = field(default_factory=dict)   # [class.external]: network -> address range (core/external)


def load_class(spec: LabSpec, data: dict | None) -> ClassSpec:
    """Validate lab.toml's [class] table (the loader keeps it raw)."""
    if not data:
        return ClassSpec()
    lab_file = os.path.join(spec.directory, "lab.toml")
    t = Table(data, lab_file, "class.")
    text = t.str("subnet_pool", default=DEFAULT_POOL)
    try:
        pool = ip_network(text, strict=True)
    except ValueError:
        t.fail("subnet_pool", f"got {text!r}; allowed: an IPv4 network in CIDR form without host bits, "
                              f"such as '{DEFAULT_POOL}'")
    hosts = []
    for ht in t.tables("host"):
        uri = ht.str("uri", required=True)
        oc = Overcommit(cpu=_ratio(ht, "cpu_overcommit", 4.0), memory=_ratio(ht, "memory_overcommit", 1.0),
                        disk=_ratio(ht, "disk_overcommit", 1.0))
        ht.done()
        hosts.append(ClassHost(uri=uri, overcommit=oc))
    roster = t.str_list("roster")
    for i, name in enumerate(roster):
        if not NAME_RE.match(name):
            raise SpecError(lab_file, f"class.roster[{i}]", f"got {name!r}; allowed: {NAME_RULE}")
    workers = t.int("workers", default=8, low=1, high=64)
    external = load_ranges(spec, t.table("external"))
    t.done()
    return ClassSpec(subnet_pool=pool, hosts=tuple(hosts), roster=tuple(roster), workers=workers, external=external)


def _ratio(t: Table, key: str, default: float) -> float:
    value = t.data.get(key, default)
    t.known.add(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.1 <= value <= 64:
        t.fail(key, f"got {value!r}; allowed: a number from 0.1 to 64")
    return float(value)


def student_names(count: int) -> list[str]:
    width = max(2, len(str(count)))
    return [f"s{i:0{width}d}" for i in range(1, count + 1)]


def parse_roster(text: str, source: str) -> list[str]:
    """One student a line; blank lines and '#' comments ignored; names must be valid and unique."""
    names = []
    for n, line in enumerate(text.splitlines(), 1):
        name = line.split("#", 1)[0].strip()
        if not name:
            continue
        if not NAME_RE.match(name):
            raise SpecError(source, f"line {n}", f"student {name!r} is not allowed: {NAME_RULE}")
        if name in names:
            raise SpecError(source, f"line {n}", f"student {name!r} is listed twice")
        names.append(name)
    if not names:
        raise SpecError(source, "", "no student names in the roster")
    return names


def allocate_subnets(spec: LabSpec, students: list[str], pool: IPv4Network, taken: list[IPv4Network],
                     existing: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Each student's subnet per lab network: kept where recorded, else the next free block of the
    network's prefix length in `pool` that overlaps nothing taken. Deterministic."""
    used = [LIBVIRT_DEFAULT, *taken, *(n.subnet for n in spec.networks if n.subnet is not None)]
    used += [ip_network(s) for rec in existing.values() for s in rec.values()]
    out: dict[str, dict[str, str]] = {}
    for student in students:
        if student in existing:
            out[student] = dict(existing[student])
            continue
        mine = {}
        for net in spec.networks:
            if net.external:         # shared by every student: addresses from [class.external] instead
                continue
            block = _next_free(pool, net.subnet.prefixlen, used)
            if block is None:
                raise LabvirtError(f"subnet pool {pool} is full: no free /{net.subnet.prefixlen} for student "
                                   f"{student!r} network {net.name!r}; set a bigger [class] subnet_pool in lab.toml")
            used.append(block)
            mine[net.name] = str(block)
        out[student] = mine
    return out


def _next_free(pool: IPv4Network, prefix: int, used: list[IPv4Network]) -> IPv4Network | None:
    if prefix < pool.prefixlen:
        return None
    for block in pool.subnets(new_prefix=prefix):
        if not any(block.overlaps(u) for u in used):
            return block
    return None


class ClassDoesNotFit(LabvirtError):
    def __init__(self, rows: list[dict]):
        self.rows = rows
        lacking = "; ".join(f"{r['uri']}: {', '.join(r['lacks']) or 'full'}" for r in rows)
        super().__init__(f"the class does not fit on its hosts; nothing was created ({lacking})")


def place(students: list[str], one: Needs, hosts: list[tuple[str, Capacity, Overcommit]],
          existing: dict[str, str]) -> dict[str, str]:
    """student -> host URI. Recorded students stay; each new one goes to the host with the most
    memory left after it (ties: the host listed first). Refuses the whole class when one does not fit."""
    load = {uri: Needs() for uri, _, _ in hosts}
    known = {uri for uri, _, _ in hosts}
    out = {}
    for student in students:
        if student in existing and existing[student] in known:
            out[student] = existing[student]
            load[existing[student]] = load[existing[student]] + one
    pending = [s for s in students if s not in out]
    recorded = dict(load)            # what the hosts carry before this placement
    for student in pending:
        best, best_left = None, None
        for uri, cap, oc in hosts:
            after = load[uri] + one
            if shortfalls(after, cap, oc):
                continue
            left = cap.memory * oc.memory - after.memory
            if best is None or left > best_left:
                best, best_left = uri, left
        if best is None:
            rows = []
            for uri, cap, oc in hosts:    # what each host lacks to take every new student alone
                rows.append({"uri": uri, "cpus": cap.cpus, "memory": cap.memory, "disk": cap.disk,
                             "fits": _how_many(recorded[uri], one, cap, oc),
                             "lacks": shortfalls(recorded[uri] + one * len(pending), cap, oc)})
            raise ClassDoesNotFit(rows)
        out[student] = best
        load[best] = load[best] + one
    return out


def _how_many(base: Needs, one: Needs, cap: Capacity, oc: Overcommit) -> int:
    n = 0
    while n < 10000 and not shortfalls(base + one * (n + 1), cap, oc):
        n += 1
    return n


class ClassRecord(MutableRecord):
    """Where each student's copy is and which subnets it has (read and written by labvirt.ops.class_record)."""

    lab: str
    students: dict[str, dict] = field(default_factory=dict)   # name -> {"host": uri, "subnets": {net: cidr}}

    def copy(self, student: str) -> LabCopy:
        rec = self.students[student]
        external = tuple((net, ip_address(lab), ip_address(mine)) for net, pairs in sorted(rec.get("addresses", {}).items())
                         for lab, mine in sorted(pairs.items()))
        return LabCopy(self.lab, student, tuple((k, ip_network(v)) for k, v in sorted(rec["subnets"].items())),
                       external=external)

    def host(self, student: str) -> str:
        return self.students[student]["host"]
