"""What the user asked for: frozen, validated values. Built by `labvirt.core.loader` from a lab directory.

Pure: no libvirt, no subprocess, no I/O beyond nothing at all.
"""

from __future__ import annotations

import hashlib
import json
from ipaddress import IPv4Address, IPv4Network
from typing import ClassVar

from labvirt.core.record import Record, compared_without, field_defaults, field_names, is_record

ROLES = ("controller", "compute", "network", "storage", "generic")
NETWORK_MODES = ("nat", "isolated")            # networks labvirt creates (and removes)
EXTERNAL_MODES = ("existing", "host-bridge")     # networks labvirt only attaches to: never defines, changes,
                                                 # starts, stops or removes (labvirt.core.external)
CPU_MODES = ("auto", "host-passthrough", "host-model", "maximum", "default")
DOMAIN_TYPES = ("auto", "kvm", "qemu")
DEFAULT_POOL_DIR = "/var/lib/libvirt/images/labvirt"   # [storage] pool_dir when lab.toml gives none


# A field added after a record's hash was first stored leaves earlier hashes alone: a record type names such
# fields in `unhashed`, and spec_hash leaves a field out while it holds its default.


class NetworkSpec(Record):
    name: str
    mode: str                      # "nat" (eth0 to the outside through the host), "isolated" (host-only);
                                   # not labvirt's: "existing" (a libvirt network), "host-bridge"
    subnet: IPv4Network | None     # None only for an "existing" network whose file states none (read from libvirt)
    gateway: IPv4Address | None    # the host's address on the bridge; a host bridge's router (None: no route)
    dhcp_start: IPv4Address | None
    dhcp_end: IPv4Address | None   # None: no DHCP range known (external networks)
    bridge: str | None = None      # explicit bridge name; derived when None; "host-bridge": the host's bridge
    domain: str | None = None      # DNS domain served by the network's dnsmasq
    file: str = ""
    existing: str | None = None    # "existing": the libvirt network's name on the host

    @property
    def external(self) -> bool:
        """Not labvirt's: it attaches NICs to it and nothing else."""
        return self.mode in EXTERNAL_MODES

    @property
    def source(self) -> str:
        """What NICs name as their source: the libvirt network or host bridge (external networks)."""
        return (self.existing if self.mode == "existing" else self.bridge) or self.name


class NicSpec(Record):
    network: str
    address: IPv4Address | None = None   # static: becomes a DHCP reservation
    model: str = "virtio"


class BootSpec(Record):
    """Direct kernel boot (test and appliance images)."""

    kernel: str
    initrd: str | None = None
    cmdline: str = "console=ttyS0"


class NodeSpec(Record):
    name: str
    role: str
    vcpus: int
    memory: int                    # bytes
    disk: int                      # bytes (virtual size of the system disk)
    nics: tuple[NicSpec, ...]
    image: str | None = None       # recipe name in images/
    base_image: str | None = None  # a local qcow2/raw file used as backing store
    boot: BootSpec | None = None
    cpu: str = "auto"
    nested: bool = False           # needs vmx/svm inside (nova compute)
    seed: bool | None = None       # cloud-init seed ISO; None: when the node's image uses cloud-init
    file: str = ""

    def nic_name(self, index: int) -> str:
        return f"eth{index}"


class PackageRepositorySpec(Record):
    """A package repository used while an image is built (see labvirt.core.repositories)."""

    name: str                         # file name inside the guest: labvirt-NAME.repo / labvirt-NAME.list
    kind: str = "yum"                 # "yum" (yum and dnf: RHEL, CentOS, Fedora) | "apt" (Debian, Ubuntu)
    url: str = ""                     # yum: baseurl; apt: the archive's URI
    gpgcheck: bool = True             # yum
    gpgkey: str | None = None         # yum: URL of the signing key (file:///etc/pki/rpm-gpg/... inside the guest)
    suite: str = ""                   # apt: e.g. "bookworm"
    components: tuple[str, ...] = ()  # apt: e.g. ("main",)
    trusted: bool = False             # apt: [trusted=yes] (no signature check)


class ImageSpec(Record):
    """A golden-image recipe (see labvirt.ops.images for how it is built)."""

    name: str
    size: int
    template: str | None = None       # virt-builder template, e.g. "centos-7.5"
    source_file: str | None = None    # or a local cloud image
    repository: str | None = None     # local virt-builder repository (offline use)
    root_password: str | None = None  # "file:PATH" or "random"; never the password itself
    ssh_keys: tuple[str, ...] = ()
    kernel_args: tuple[str, ...] = ()
    disable_services: tuple[str, ...] = ()
    selinux: str | None = None        # "permissive" | "disabled" | "enforcing"
    packages: tuple[str, ...] = ()
    run: tuple[str, ...] = ()
    write: tuple[tuple[str, str], ...] = ()   # (path, content)
    identity: str = "cloud-init"      # how per-node identity is delivered: cloud-init | virt-customize
    # Package repositories while building ([[package_repository]]); see labvirt.core.repositories
    package_repositories: tuple[PackageRepositorySpec, ...] = ()
    disable_template_repositories: bool = False
    keep_package_repositories: bool = True
    file: str = ""

    unhashed: ClassVar[tuple[str, ...]] = ("package_repositories", "disable_template_repositories",
                                           "keep_package_repositories")


class LabSpec(Record):
    name: str
    directory: str
    networks: tuple[NetworkSpec, ...]
    nodes: tuple[NodeSpec, ...]
    images: tuple[ImageSpec, ...] = ()
    description: str = ""
    domain_type: str = "auto"
    pool_dir: str = DEFAULT_POOL_DIR
    ssh_user: str = "root"
    services: dict = {}
    class_table: dict = {}   # [class], see classroom
    packstack: dict = {}     # management/provider_network

    __eq__, __hash__ = compared_without("services", "class_table", "packstack")   # tables: not in == and hash

    def network(self, name: str) -> NetworkSpec:
        for net in self.networks:
            if net.name == name:
                return net
        raise KeyError(name)

    def node(self, name: str) -> NodeSpec:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)


def _plain(value):
    if is_record(value):
        unhashed = getattr(value, "unhashed", ())
        defaults = field_defaults(type(value)) if unhashed else {}
        return {name: _plain(getattr(value, name)) for name in field_names(value)
                if name not in ("file", "origin")
                and not (name in unhashed and getattr(value, name) == defaults[name])}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, (IPv4Address, IPv4Network)):
        return str(value)
    return value


def spec_hash(value) -> str:
    """Stable short hash of a spec value (ignores where it came from: its file, the lab directory)."""
    text = json.dumps(_plain(value), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]

