"""What libvirt at a URI offers: versions, domain types, existing networks, host CPUs and memory.

`libvirt_info(conn)` takes a raw libvirt-python connection (capabilities are read by
labvirt.core.capabilities). libvirt's
errors become labvirt's own (ConnectionFailed, DriverError) with libvirt's message.
"""

from __future__ import annotations

from labvirt.core.capabilities import parse_capabilities
from labvirt.core.errors import ConnectionFailed, DriverError
from labvirt.core.observed import ObservedNetwork, parse_network
from labvirt.core.record import Record


class LibvirtInfo(Record):
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


def open_connection(uri: str, read_only: bool = True):
    """A raw libvirt connection, or ConnectionFailed naming the URI and libvirt's reason."""
    import libvirt

    import labvirt.driver.libvirt_driver  # noqa: F401  (installs the one no-op libvirt error handler)

    try:
        return libvirt.openReadOnly(uri) if read_only else libvirt.open(uri)
    except libvirt.libvirtError as e:
        raise ConnectionFailed(f"cannot reach libvirt at {uri}: {e.get_error_message() or e}") from None


def libvirt_info(conn) -> LibvirtInfo:
    import libvirt

    try:
        caps = parse_capabilities(conn.getCapabilities())
        hv_version = conn.getVersion()
        info = conn.getInfo()
        networks = tuple(parse_network(n.XMLDesc(0), active=bool(n.isActive()), autostart=bool(n.autostart()))
                         for n in conn.listAllNetworks())
        running = len(conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE))
        return LibvirtInfo(
            uri=conn.getURI(), hypervisor=conn.getType(), version=version_string(conn.getLibVersion()),
            hypervisor_version=version_string(hv_version) if hv_version else "",
            host_arch=caps.host_arch, domain_types=caps.types_for_host(),
            networks=networks, cpus=int(info[2]), memory=int(info[1]) * 1024 * 1024, running_domains=running)
    except libvirt.libvirtError as e:
        raise DriverError(f"libvirt: {e.get_error_message() or e}") from None


def running_domains(uri: str) -> int | None:
    """Running domains at `uri` (None when libvirt cannot tell, and on the simulator)."""
    if uri == "sim" or uri.startswith("sim:"):
        return None
    import libvirt

    try:
        conn = open_connection(uri)
    except (ConnectionFailed, DriverError):
        return None
    try:
        return len(conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE))
    except libvirt.libvirtError:
        return None
    finally:
        conn.close()
