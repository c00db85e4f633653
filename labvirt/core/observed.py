"""What libvirt reports, as plain values, and `parse_*` functions reading libvirt XML into them. Pure.

The driver fetches XML and run states; everything that interprets XML lives here, so the plan can be
tested with plain values and libvirt's own output alike.
"""

from __future__ import annotations

from lxml import etree

from labvirt.core.identity import LabCopy
from labvirt.core.record import Record, field
from labvirt.core.render import NS
from labvirt.core.units import to_bytes


class Owner(Record):
    """labvirt's metadata on an object; None on objects labvirt did not create."""

    kind: str
    lab: str
    student: str
    name: str
    spec: str
    shape: str = ""
    origin: str = ""     # the lab directory whose `up` made it ("": made before labvirt recorded it)


class Claim(Record):
    """The ownership check's answer for one object (labvirt.core.observed.claim)."""

    ours: bool
    why: str = ""            # not ours: whose it is, in words
    origin: str = ""         # not ours only because another lab directory of the same lab name made it
    adopt: bool = False      # ours, but its metadata does not record this lab directory (yet)


def claim(owner: Owner | None, kind: str, copy: LabCopy, adopt: bool = False) -> Claim:
    """Is an object with `owner` metadata this lab copy's `kind` ("node" or "network")? The one ownership
    check: labvirt changes or removes nothing it does not claim.

    Lab name and student must match. The lab directory must match too, where both sides know it: an
    object without one (made by an older labvirt) is claimed and its metadata brought up to date; an
    object from another directory is claimed only with `adopt` (the lab directory was moved)."""
    if owner is None:
        return Claim(False, "has no labvirt metadata")
    if not (owner.lab == copy.lab and owner.student == copy.student) or owner.kind != kind:
        who = f"lab {owner.lab!r}" + (f" student {owner.student!r}" if owner.student else "")
        return Claim(False, f"belongs to {who}" + (f" (a {owner.kind})" if owner.kind != kind else ""))
    if not copy.origin or owner.origin == copy.origin:
        return Claim(True)
    if not owner.origin or adopt:
        return Claim(True, adopt=True)
    return Claim(False, f"belongs to another lab named {copy.lab!r}, in {owner.origin}", origin=owner.origin)


class ObservedNic(Record):
    mac: str
    network: str | None          # the libvirt network, or the host bridge when `bridge`
    model: str | None
    bridge: bool = False         # <interface type='bridge'>


class ObservedDisk(Record):
    dev: str            # vda, sda, ...
    device: str         # disk | cdrom
    format: str | None  # qcow2 | raw | ...
    source: str | None


class ObservedDomain(Record):
    name: str
    uuid: str
    owner: Owner | None
    state: str = "shutoff"        # running | paused | shutoff | crashed | ...
    vcpus: int = 0
    memory: int = 0               # bytes
    nics: tuple[ObservedNic, ...] = ()
    disks: tuple[str, ...] = ()   # source files
    disk_devices: tuple[ObservedDisk, ...] = ()
    current_snapshot: str | None = None
    snapshots: tuple[str, ...] = ()
    serial_log: str | None = None


class ObservedHost(Record):
    mac: str
    ip: str
    hostname: str | None


class ObservedNetwork(Record):
    name: str
    uuid: str
    owner: Owner | None
    active: bool = False
    autostart: bool = False
    bridge: str | None = None
    addresses: tuple[str, ...] = ()        # "192.168.1.1/24"
    hosts: tuple[ObservedHost, ...] = ()
    forward: str | None = None
    dhcp_ranges: tuple[tuple[str, str], ...] = ()   # IPv4 (start, end)
    dns_hosts: tuple[tuple[str, tuple[str, ...]], ...] = ()   # <dns><host>: (ip, hostnames)


class ObservedVolume(Record):
    name: str
    path: str
    capacity: int = 0
    allocation: int = 0
    format: str | None = None
    backing: str | None = None
    modified: float | None = None      # the file's mtime, where the pool reports it


class ObservedPool(Record):
    name: str
    uuid: str
    active: bool = False
    autostart: bool = False
    path: str | None = None
    volumes: tuple[ObservedVolume, ...] = ()

    def volume(self, name: str) -> ObservedVolume | None:
        return next((v for v in self.volumes if v.name == name), None)


class Observed(Record):
    """Everything relevant on one host. Empty means nothing exists."""

    domains: dict[str, ObservedDomain] = field(default_factory=dict)
    networks: dict[str, ObservedNetwork] = field(default_factory=dict)
    pools: dict[str, ObservedPool] = field(default_factory=dict)
    bridges: frozenset[str] = frozenset()   # bridge names in use by any libvirt network
    host_networks: tuple[ObservedNetwork, ...] = ()   # every libvirt network on the host (collisions)


def _xml(text: str) -> etree._Element:
    return etree.fromstring(text.encode() if isinstance(text, str) else text)


def parse_owner(root: etree._Element) -> Owner | None:
    """labvirt's <owner> inside an object's <metadata>, or the element itself."""
    el = root if root.tag == f"{{{NS}}}owner" else root.find(f"metadata/{{{NS}}}owner")
    if el is None:
        return None
    return Owner(kind=el.get("kind", ""), lab=el.get("lab", ""), student=el.get("student", ""),
                 name=el.get("name", ""), spec=el.get("spec", ""), shape=el.get("shape", ""),
                 origin=el.get("origin", ""))


def _bytes(el, default_unit: str = "bytes") -> int:
    if el is None or el.text is None:
        return 0
    return to_bytes(int(el.text), el.get("unit") or default_unit)


def parse_domain(text: str, state: str = "shutoff", current_snapshot: str | None = None,
                 snapshots: tuple[str, ...] = ()) -> ObservedDomain:
    root = _xml(text)
    nics = tuple(ObservedNic(mac=i.find("mac").get("address") if i.find("mac") is not None else "",
                             network=i.find("source").get("bridge" if i.get("type") == "bridge" else "network")
                             if i.find("source") is not None else None,
                             model=i.find("model").get("type") if i.find("model") is not None else None,
                             bridge=i.get("type") == "bridge")
                 for i in root.findall("devices/interface"))
    devices = []
    for d in root.findall("devices/disk"):
        src, drv, tgt = d.find("source"), d.find("driver"), d.find("target")
        devices.append(ObservedDisk(dev=tgt.get("dev") if tgt is not None else "", device=d.get("device", "disk"),
                                    format=drv.get("type") if drv is not None else None,
                                    source=src.get("file") if src is not None else None))
    disks = tuple(d.source for d in devices if d.source)
    return ObservedDomain(name=root.findtext("name"), uuid=root.findtext("uuid"), owner=parse_owner(root),
                          state=state, vcpus=int(root.findtext("vcpu") or 0),
                          memory=_bytes(root.find("memory"), "KiB"), nics=nics, disks=disks,
                          disk_devices=tuple(devices), serial_log=root.xpath("string(devices/serial/log/@file)") or None,
                          current_snapshot=current_snapshot, snapshots=snapshots)


def parse_network(text: str, active: bool = False, autostart: bool = False) -> ObservedNetwork:
    root = _xml(text)
    addresses, hosts, ranges = [], [], []
    for ip in root.findall("ip"):
        if ip.get("family", "ipv4") == "ipv4":
            ranges += [(r.get("start", ""), r.get("end", "")) for r in ip.findall("dhcp/range")]
        if ip.get("address") and ip.get("family", "ipv4") == "ipv4":
            prefix = ip.get("prefix")
            if prefix is None and ip.get("netmask"):
                prefix = sum(bin(int(x)).count("1") for x in ip.get("netmask").split("."))
            addresses.append(f"{ip.get('address')}/{prefix or 24}")
        for h in ip.findall("dhcp/host"):
            hosts.append(ObservedHost(mac=h.get("mac", ""), ip=h.get("ip", ""), hostname=h.get("name")))
    bridge = root.find("bridge")
    fwd = root.find("forward")
    return ObservedNetwork(name=root.findtext("name"), uuid=root.findtext("uuid"), owner=parse_owner(root),
                           active=active, autostart=autostart, bridge=bridge.get("name") if bridge is not None else None,
                           addresses=tuple(addresses), hosts=tuple(hosts),
                           forward=fwd.get("mode", "nat") if fwd is not None else None, dhcp_ranges=tuple(ranges),
                           dns_hosts=_dns_hosts(root))


def parse_volume(text: str) -> ObservedVolume:
    root = _xml(text)
    backing = root.find("backingStore/path")
    fmt = root.find("target/format")
    return ObservedVolume(name=root.findtext("name"), path=root.findtext("target/path") or "",
                          capacity=_bytes(root.find("capacity")), allocation=_bytes(root.find("allocation")),
                          format=fmt.get("type") if fmt is not None else None,
                          backing=backing.text if backing is not None else None,
                          modified=float(root.findtext("target/timestamps/mtime") or 0) or None)


def parse_pool(text: str, active: bool = False, autostart: bool = False,
               volumes: tuple[ObservedVolume, ...] = ()) -> ObservedPool:
    root = _xml(text)
    return ObservedPool(name=root.findtext("name"), uuid=root.findtext("uuid"), active=active, autostart=autostart,
                        path=root.findtext("target/path"), volumes=volumes)


def parse_dns_hosts(text: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """A network's <dns><host> entries, (ip, hostnames) each: the pair of render.render_dns_hosts."""
    return _dns_hosts(_xml(text))


def _dns_hosts(root) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((h.get("ip", ""), tuple(n.text or "" for n in h.findall("hostname"))) for h in root.findall("dns/host"))
