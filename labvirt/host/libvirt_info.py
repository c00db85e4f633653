"""What libvirt at a URI offers: versions, domain types, existing networks, host CPUs and memory.

`libvirt_info(conn)` takes a raw libvirt-python connection; `parse_capabilities` is pure. libvirt's
errors become labvirt's own (ConnectionFailed, DriverError) with libvirt's message.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from labvirt.core.errors import ConnectionFailed, DriverError
from labvirt.core.observed import ObservedNetwork, parse_network

_quiet = False


@dataclass(frozen=True)
class LibvirtInfo:
    uri: str
    hypervisor: str                    # conn.getType(): "QEMU", "TEST", ...
    version: str                       # libvirt (the daemon's library) "9.0.0"
    hypervisor_version: str            # e.g. QEMU "7.2.22"
    host_arch: str                     # "x86_64"
    domain_types: tuple[str, ...]      # for guests of the host's architecture: ("kvm", "qemu")
    networks: tuple[ObservedNetwork, ...] = ()
    cpus: int = 0
    memory: int = 0                    # bytes
    running_domains: int = 0

    def as_dict(self) -> dict:
        return {"uri": self.uri, "hypervisor": self.hypervisor, "version": self.version,
                "hypervisor_version": self.hypervisor_version, "host_arch": self.host_arch,
                "domain_types": list(self.domain_types), "networks": [n.name for n in self.networks],
                "cpus": self.cpus, "memory": self.memory, "running_domains": self.running_domains}


def version_string(number: int) -> str:
    """libvirt's packed version (major * 1,000,000 + minor * 1,000 + release) as text."""
    return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"


def parse_capabilities(xml: str) -> tuple[str, dict[str, tuple[str, ...]]]:
    """(host arch, {guest arch: domain types}) from libvirt's capabilities XML."""
    root = etree.fromstring(xml.encode() if isinstance(xml, str) else xml)
    host_arch = root.findtext("host/cpu/arch") or ""
    types: dict[str, list[str]] = {}
    for arch in root.findall("guest/arch"):
        found = types.setdefault(arch.get("name", ""), [])
        for d in arch.findall("domain"):
            if d.get("type") and d.get("type") not in found:
                found.append(d.get("type"))
    return host_arch, {a: tuple(sorted(t)) for a, t in types.items()}


def quiet_libvirt() -> None:
    """Stop libvirt printing its own errors on stderr (once per process)."""
    global _quiet
    if not _quiet:
        import libvirt

        libvirt.registerErrorHandler(lambda *args: None, None)
        _quiet = True


def open_connection(uri: str, read_only: bool = True):
    """A raw libvirt connection, or ConnectionFailed naming the URI and libvirt's reason."""
    import libvirt

    quiet_libvirt()
    try:
        return libvirt.openReadOnly(uri) if read_only else libvirt.open(uri)
    except libvirt.libvirtError as e:
        raise ConnectionFailed(f"cannot reach libvirt at {uri}: {e.get_error_message() or e}") from None


def libvirt_info(conn) -> LibvirtInfo:
    import libvirt

    quiet_libvirt()
    try:
        host_arch, by_arch = parse_capabilities(conn.getCapabilities())
        hv_version = conn.getVersion()
        info = conn.getInfo()
        networks = tuple(parse_network(n.XMLDesc(0), active=bool(n.isActive()), autostart=bool(n.autostart()))
                         for n in conn.listAllNetworks())
        running = len(conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE))
        return LibvirtInfo(
            uri=conn.getURI(), hypervisor=conn.getType(), version=version_string(conn.getLibVersion()),
            hypervisor_version=version_string(hv_version) if hv_version else "",
            host_arch=host_arch, domain_types=by_arch.get(host_arch) or tuple(sorted({t for ts in by_arch.values() for t in ts})),
            networks=networks, cpus=int(info[2]), memory=int(info[1]) * 1024 * 1024, running_domains=running)
    except libvirt.libvirtError as e:
        raise DriverError(f"libvirt: {e.get_error_message() or e}") from None
