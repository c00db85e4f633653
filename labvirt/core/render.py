"""Desired objects -> libvirt XML, built as lxml element trees (never string formatting). Pure."""

from __future__ import annotations

from lxml import etree
from lxml.builder import E

from labvirt.core.desired import DesiredDomain, DesiredNetwork, DesiredPool, DesiredVolume

NS = "http://labvirt.org/xmlns/labvirt/1"
PREFIX = "labvirt"
_SEED_DEV = "sda"


def tostring(tree: etree._Element) -> str:
    return etree.tostring(tree, pretty_print=True, encoding="unicode")


def render_metadata(kind: str, lab: str, student: str, obj: str, spec: str, **extra: str) -> etree._Element:
    """<labvirt:owner kind= lab= student= name= spec= .../> in labvirt's namespace (empty extras left out)."""
    el = etree.Element(f"{{{NS}}}owner", nsmap={PREFIX: NS})
    for key, value in (("kind", kind), ("lab", lab), ("student", student), ("name", obj), ("spec", spec)):
        el.set(key, value)
    for key, value in extra.items():
        if value:
            el.set(key, value)
    return el


def render_network(net: DesiredNetwork) -> etree._Element:
    root = E.network(E.name(net.name), E.uuid(net.uuid))
    md = E.metadata()
    md.append(render_metadata("network", net.lab, net.student, net.key, net.spec, mode=net.mode, origin=net.origin))
    root.append(md)
    if net.mode == "nat":
        root.append(E.forward(mode="nat"))
    # STP off: with STP on, the kernel holds every new port (a started or reverted guest's tap) in
    # "listening" for at least 2 s whatever the delay, and the guest is unreachable meanwhile. labvirt's
    # bridges carry only guest taps, no uplink, so there is no loop for STP to break.
    root.append(E.bridge(name=net.bridge, stp="off", delay="0"))
    if net.domain:
        root.append(E.domain(name=net.domain, localOnly="yes"))
    if (dns := render_dns_hosts(net)) is not None:
        root.append(dns)
    dhcp = E.dhcp(E.range(start=str(net.dhcp_start), end=str(net.dhcp_end)))
    for host in net.hosts:
        dhcp.append(E.host(mac=host.mac, name=host.hostname, ip=str(host.ip)))
    root.append(E.ip(dhcp, address=str(net.gateway), netmask=str(net.subnet.netmask)))
    return root


def render_dns_hosts(net: DesiredNetwork) -> etree._Element | None:
    """<dns> naming every node with a static address on `net` (and its FQDN with the network's
    domain): such guests never ask for a lease, so without it the network's dnsmasq has no name for
    them. None when no node has a static address there."""
    names = dns_names(net)
    if not names:
        return None
    return E.dns(*(render_dns_host(ip, hostnames) for ip, hostnames in names.items()))


def dns_names(net: DesiredNetwork) -> dict[str, tuple[str, ...]]:
    """ip -> the names the network's DNS gives it (the node, and NODE.DOMAIN where it has a domain)."""
    names: dict[str, list[str]] = {}
    for host in net.hosts:
        wanted = names.setdefault(str(host.ip), [])
        for name in (host.hostname, f"{host.hostname}.{net.domain}" if net.domain else None):
            if name and name not in wanted:
                wanted.append(name)
    return {ip: tuple(n) for ip, n in names.items()}


def render_dns_host(ip: str, hostnames) -> etree._Element:
    return E.host(*(E.hostname(n) for n in hostnames), ip=ip)


def render_dhcp_host(mac: str, hostname: str, ip: str) -> etree._Element:
    return E.host(mac=mac, name=hostname, ip=ip)


def render_pool(pool: DesiredPool) -> etree._Element:
    return E.pool(E.name(pool.name), E.uuid(pool.uuid), E.target(E.path(pool.path)), type="dir")


def render_volume(vol: DesiredVolume) -> etree._Element:
    # allocation 0: thin (overlays grow as the guest writes)
    target = E.target(E.format(type=vol.format))
    if vol.kind == "seed":      # holds the root password hash: owner-only
        target.append(E.permissions(E.mode("0600")))
    root = E.volume(E.name(vol.name), E.capacity(str(vol.capacity), unit="bytes"),
                    E.allocation("0", unit="bytes"), target)
    if vol.backing:
        root.append(E.backingStore(E.path(vol.backing), E.format(type=vol.backing_format or "qcow2")))
    return root


def render_nic(nic) -> etree._Element:
    """A virtio (or other model) NIC on a libvirt network, or on a host bridge (`nic.bridge`); `nic` is a
    DesiredNic or an ObservedNic."""
    bridged = getattr(nic, "bridge", False)
    el = E.interface(E.mac(address=nic.mac), type="bridge" if bridged else "network")
    if nic.network:
        el.append(E.source(bridge=nic.network) if bridged else E.source(network=nic.network))
    if nic.model:
        el.append(E.model(type=nic.model))
    return el


def render_seed_cdrom(path: str) -> etree._Element:
    """The seed as a CD-ROM on virtio-scsi: Debian's and Ubuntu's cloud kernels have no AHCI (a SATA
    CD-ROM is invisible to them), every common guest kernel drives virtio-scsi. Controller and address
    are explicit: otherwise libvirt picks the controller from the target name and adds LSI controllers
    the cloud kernels cannot drive either."""
    return E.disk(E.driver(name="qemu", type="raw"), E.source(file=path), E.target(dev=_SEED_DEV, bus="scsi"),
                  E.readonly(), E.address(type="drive", controller="0", bus="0", target="0", unit="0"),
                  type="file", device="cdrom")


def render_seed_controller() -> etree._Element:
    return E.controller(type="scsi", index="0", model="virtio-scsi")


def render_snapshot(name: str, description: str, internal_disks: tuple[str, ...] = (),
                    excluded_disks: tuple[str, ...] = ()) -> etree._Element:
    """An internal snapshot (memory too when the domain runs); CD-ROMs and the like excluded."""
    root = E.domainsnapshot(E.name(name), E.description(description))
    if internal_disks or excluded_disks:
        disks = E.disks()
        for dev in internal_disks:
            disks.append(E.disk(name=dev, snapshot="internal"))
        for dev in excluded_disks:
            disks.append(E.disk(name=dev, snapshot="no"))
        root.append(disks)
    return root


def serial_log(domain: str) -> str:
    """Where the host keeps a domain's serial console output (beside QEMU's own log)."""
    return f"/var/log/libvirt/qemu/{domain}-serial.log"


def render_domain(dom: DesiredDomain) -> etree._Element:
    root = E.domain(E.name(dom.name), E.uuid(dom.uuid), type=dom.domain_type)
    md = E.metadata()
    md.append(render_metadata("node", dom.lab, dom.student, dom.key, dom.spec, role=dom.role, shape=dom.shape,
                                 origin=dom.origin))
    root.append(md)
    root.append(E.memory(str(dom.memory // 1024), unit="KiB"))
    root.append(E.vcpu(str(dom.vcpus)))
    os_el = E.os(E.type("hvm", arch="x86_64", machine="q35"))
    if dom.boot is not None:
        os_el.append(E.kernel(dom.boot.kernel))
        if dom.boot.initrd:
            os_el.append(E.initrd(dom.boot.initrd))
        os_el.append(E.cmdline(dom.boot.cmdline))
    else:
        os_el.append(E.boot(dev="hd"))
    root.append(os_el)
    root.append(E.features(E.acpi(), E.apic()))
    if dom.cpu_mode in ("host-passthrough", "host-model", "maximum"):
        root.append(E.cpu(mode=dom.cpu_mode))
    root.append(E.on_poweroff("destroy"))
    root.append(E.on_reboot("restart"))
    root.append(E.on_crash("destroy"))
    devices = E.devices(
        E.disk(E.driver(name="qemu", type="qcow2", discard="unmap"), E.source(file=dom.disk),
               E.target(dev="vda", bus="virtio"), type="file", device="disk"))
    if dom.seed:
        devices.append(render_seed_cdrom(dom.seed))
        devices.append(render_seed_controller())
    for nic in dom.nics:
        devices.append(render_nic(nic))
    # the serial log lets `labvirt console --tail` show what the console has printed (needs virtlogd)
    # append off: each start begins a new log, so `console --tail` never shows an earlier guest's lines
    devices.append(E.serial(E.log(file=serial_log(dom.name), append="off"), E.target(port="0"), type="pty"))
    devices.append(E.console(E.target(type="serial", port="0"), type="pty"))
    devices.append(E.channel(E.target(type="virtio", name="org.qemu.guest_agent.0"), type="unix"))
    devices.append(E.graphics(E.listen(type="address", address="127.0.0.1"), type="vnc", autoport="yes",
                              listen="127.0.0.1"))
    devices.append(E.rng(E.backend("/dev/urandom", model="random"), model="virtio"))
    root.append(devices)
    return root
