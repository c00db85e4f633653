"""What one copy of a lab should look like on one host: networks, pool, volumes, domains.

`desire(spec, copy, host)` is pure. The plan compares its result with what libvirt reports.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import ClassVar

from labvirt.core.external import HostNetworkFacts, resolve
from labvirt.core.identity import IMAGE_POOL, LabCopy, image_pool_uuid
from labvirt.core.record import Record, field, replace
from labvirt.core.spec import BootSpec, ImageSpec, LabSpec, NodeSpec, spec_hash


class HostParams(Record):
    """What the host check decided (L0 verdict) and where disks go."""

    domain_type: str = "kvm"              # "kvm" where KVM works for guests, "qemu" otherwise
    nested_cpu: str = "host-passthrough"  # CPU mode for nodes that run nested guests
    pool_dir: str | None = None           # overrides the lab's storage.pool_dir
    image_dir: str | None = None          # where the host's labvirt-images pool already is
    base_image_formats: tuple[tuple[str, str], ...] = ()   # base_image path -> format read from its header
    networks: tuple[HostNetworkFacts, ...] = ()            # the existing libvirt networks the lab names


class DesiredNic(Record):
    name: str                  # eth0, eth1, ... inside the guest
    network: str               # libvirt network name
    mac: str
    address: IPv4Address | None
    model: str = "virtio"
    bridge: bool = False       # `network` is a host bridge (<interface type='bridge'>), not a libvirt network

    unhashed: ClassVar[tuple[str, ...]] = ("bridge",)   # see labvirt.core.spec


class DhcpHost(Record):
    mac: str
    ip: IPv4Address
    hostname: str


class DesiredNetwork(Record):
    key: str                   # network name in the lab file
    name: str
    uuid: str
    mode: str
    bridge: str
    subnet: IPv4Network
    gateway: IPv4Address | None
    dhcp_start: IPv4Address | None
    dhcp_end: IPv4Address | None
    hosts: tuple[DhcpHost, ...]
    domain: str | None
    lab: str
    student: str
    spec: str = ""
    origin: str = ""           # the lab directory (metadata only: not part of the spec hash)
    external: bool = False     # not labvirt's: `name` is the host's

    unhashed: ClassVar[tuple[str, ...]] = ("external",)   # see labvirt.core.spec

    @property
    def routed(self) -> bool:
        """Carries the guests' default route and DNS: NAT, an existing network or a host bridge with a gateway."""
        return self.mode == "nat" or (self.external and self.gateway is not None)


class DesiredPool(Record):
    name: str
    uuid: str
    path: str


class DesiredVolume(Record):
    pool: str
    name: str
    path: str
    capacity: int
    format: str = "qcow2"
    backing: str | None = None
    backing_format: str | None = None
    node: str = ""
    kind: str = "disk"         # "disk" or "seed"


class DesiredDomain(Record):
    key: str                   # node name in the lab file
    name: str
    uuid: str
    role: str
    domain_type: str
    vcpus: int
    memory: int
    cpu_mode: str              # "host-passthrough", "host-model", "maximum" or "default"
    nics: tuple[DesiredNic, ...]
    disk: str                  # path of the system disk volume
    seed: str | None = None    # path of the cloud-init seed ISO, attached as CD-ROM
    boot: BootSpec | None = None
    lab: str = ""
    student: str = ""
    spec: str = ""             # hash of everything above
    shape: str = ""            # hash of what cannot change in place (needs the node recreated)
    origin: str = ""           # the lab directory (metadata only: not part of the spec hash)


class GoldenImage(Record):
    name: str                  # recipe name
    volume: str                # volume name in the image pool
    path: str
    recipe_hash: str


class DesiredLab(Record):
    copy: LabCopy
    networks: tuple[DesiredNetwork, ...]
    pool: DesiredPool
    volumes: tuple[DesiredVolume, ...]
    domains: tuple[DesiredDomain, ...]
    images: tuple[GoldenImage, ...] = ()
    warnings: tuple[str, ...] = field(default=())


def golden_image(image: ImageSpec, images_dir: str) -> GoldenImage:
    """The golden image of a recipe in the host's image pool (directory `images_dir`)."""
    h = spec_hash(image)[:12]
    volume = f"{image.name}-{h}.qcow2"
    return GoldenImage(name=image.name, volume=volume, path=f"{images_dir.rstrip('/')}/{volume}", recipe_hash=h)


def image_pool_path(pool_dir: str) -> str:
    return f"{pool_dir.rstrip('/')}/_images"


def image_pool(images_dir: str) -> DesiredPool:
    return DesiredPool(name=IMAGE_POOL, uuid=image_pool_uuid(), path=images_dir)


def wants_seed(node: NodeSpec, recipes: dict[str, ImageSpec]) -> bool:
    """A cloud-init seed when asked for, or by default when the node's image uses cloud-init."""
    if node.seed is not None:
        return node.seed
    return node.image is not None and recipes[node.image].identity == "cloud-init"


def cpu_mode(node: NodeSpec, host: HostParams, warnings: list[str]) -> str:
    """The node's CPU mode on this host: nested nodes get vmx/svm passed through where KVM works."""
    mode = node.cpu
    if mode == "auto":
        if host.domain_type == "kvm":
            return host.nested_cpu if node.nested else "host-model"
        return "default"
    if host.domain_type == "qemu" and mode in ("host-passthrough", "host-model"):
        warnings.append(f"{node.name}: cpu {mode!r} needs KVM; this host runs guests in software emulation, "
                        "using 'maximum' (QEMU's -cpu max) instead")
        return "maximum"
    return mode


def desire(spec: LabSpec, copy: LabCopy, host: HostParams) -> DesiredLab:
    """`copy.origin` defaults to the lab's directory: what tells two lab directories of one name apart."""
    if not copy.origin:
        copy = replace(copy, origin=spec.directory)
    pool_dir = host.pool_dir or spec.pool_dir
    warnings: list[str] = []
    pool = DesiredPool(name=copy.pool_name, uuid=copy.pool_uuid(), path=copy.pool_path(pool_dir))
    images_dir = host.image_dir or image_pool_path(pool_dir)   # one image pool per host, wherever it is
    images = {i.name: golden_image(i, images_dir) for i in spec.images}

    nics_by_node: dict[str, tuple[DesiredNic, ...]] = {}
    for node in spec.nodes:
        nics = []
        for i, nic in enumerate(node.nics):
            net = spec.network(nic.network)
            addr = copy.address(net, nic.address) if nic.address is not None else None
            nics.append(DesiredNic(name=node.nic_name(i), network=net.source if net.external else copy.network_name(net.name),
                                   mac=copy.mac(node.name, i), address=addr, model=nic.model,
                                   bridge=net.mode == "host-bridge"))
        nics_by_node[node.name] = tuple(nics)

    networks = []
    for net in spec.networks:
        if net.external:            # attached to, never made: no DHCP hosts, no metadata
            ext = resolve(net, host.networks)
            dhcp = ext.dhcp[0] if ext.dhcp else (None, None)
            networks.append(DesiredNetwork(
                key=net.name, name=net.source, uuid="", mode=net.mode, bridge=ext.bridge or "", subnet=ext.subnet,
                gateway=ext.gateway, dhcp_start=dhcp[0], dhcp_end=dhcp[1], hosts=(), domain=None, lab=copy.lab,
                student=copy.student, external=True))
            continue
        name = copy.network_name(net.name)
        hosts = tuple(DhcpHost(mac=n.mac, ip=n.address, hostname=node.name)
                      for node in spec.nodes for n in nics_by_node[node.name]
                      if n.network == name and n.address is not None)
        d = DesiredNetwork(
            key=net.name, name=name, uuid=copy.network_uuid(net.name), mode=net.mode,
            bridge=copy.bridge_name(net), subnet=copy.subnet(net), gateway=copy.address(net, net.gateway),
            dhcp_start=copy.address(net, net.dhcp_start), dhcp_end=copy.address(net, net.dhcp_end),
            hosts=hosts, domain=net.domain, lab=copy.lab, student=copy.student)
        networks.append(replace(d, spec=spec_hash(d), origin=copy.origin))

    recipes = {i.name: i for i in spec.images}
    volumes, domains = [], []
    for node in spec.nodes:
        disk_name = copy.disk_volume(node.name)
        backing = backing_format = None
        if node.image is not None:
            backing, backing_format = images[node.image].path, "qcow2"
        elif node.base_image is not None:
            backing = node.base_image
            # read from the file's header by ops (ops/session.base_image_formats); a file this machine
            # cannot read (a remote host's) is taken as qcow2, what cloud images are
            backing_format = dict(host.base_image_formats).get(node.base_image, "qcow2")
        disk = DesiredVolume(pool=pool.name, name=disk_name, path=f"{pool.path}/{disk_name}", capacity=node.disk,
                             backing=backing, backing_format=backing_format, node=node.name)
        volumes.append(disk)
        seed = None
        if wants_seed(node, recipes):
            seed_name = copy.seed_volume(node.name)
            seed = DesiredVolume(pool=pool.name, name=seed_name, path=f"{pool.path}/{seed_name}", capacity=0,
                                 format="raw", node=node.name, kind="seed")
            volumes.append(seed)
        d = DesiredDomain(
            key=node.name, name=copy.domain_name(node.name), uuid=copy.domain_uuid(node.name), role=node.role,
            domain_type=host.domain_type, vcpus=node.vcpus, memory=node.memory,
            cpu_mode=cpu_mode(node, host, warnings), nics=nics_by_node[node.name], disk=disk.path,
            seed=seed.path if seed else None, boot=node.boot, lab=copy.lab, student=copy.student)
        domains.append(replace(d, spec=spec_hash(d), origin=copy.origin,
                               shape=spec_hash((d.domain_type, d.cpu_mode, d.disk, d.seed, d.boot))))
    used_images = tuple(images[n.image] for n in spec.nodes if n.image is not None)
    from labvirt.core.seed_size import with_seed_sizes     # needs the whole lab: documents name every node

    return with_seed_sizes(DesiredLab(copy=copy, networks=tuple(networks), pool=pool, volumes=tuple(volumes),
                                      domains=tuple(domains), images=tuple(dict.fromkeys(used_images)),
                                      warnings=tuple(warnings)), user=spec.ssh_user)
