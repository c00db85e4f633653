"""Lab directory (lab.toml, networks/, domains/, images/) -> validated LabSpec.

Every problem is one SpecError naming the file, the field and what is allowed; nothing is planned
from a lab that fails here. Pure apart from reading the lab's own files.

Which files are lab files: lab.toml, and in networks/, domains/ and images/ every file whose name
ends in ".toml" and starts with neither "." nor "#" (`is_lab_file`). Everything else there is left
alone, so editors' leftovers do not count: emacs lock files (.#controller.toml) and autosaves
(#controller.toml#), backups (controller.toml~, .bak, .orig) and vim swap files (.controller.toml.swp).
Lab files are UTF-8 text (TOML requires it; a leading byte-order mark is accepted).
"""

from __future__ import annotations

import os
import re
import tomllib
from ipaddress import IPv4Address, IPv4Network, ip_address, ip_network

from labvirt.core.errors import SpecError
from labvirt.core.fields import NAME_RE, NAME_RULE, Table
from labvirt.core.spec import (CPU_MODES, DEFAULT_POOL_DIR, DOMAIN_TYPES, EXTERNAL_MODES, NETWORK_MODES, ROLES, BootSpec,
                               ImageSpec, LabSpec, NetworkSpec, NicSpec, NodeSpec)
from labvirt.core.repositories import load_repositories
from labvirt.core.subnets import default_range, host_bits_hint, range_problem
from labvirt.core.units import MiB, TiB

LAB_FILE = "lab.toml"
BRIDGE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
BRIDGE_RULE = "1-15 characters (Linux's limit) of letters, digits, '_', '.', '-'"
LIBVIRT_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+:-]{0,63}$")
LIBVIRT_NAME_RULE = "the name of a libvirt network on the host (virsh net-list --all), such as 'default'"


def load_lab(directory: str) -> LabSpec:
    """Read and validate the lab in `directory`."""
    lab_path = os.path.join(directory, LAB_FILE)
    if not os.path.isfile(lab_path):
        raise SpecError(lab_path, "", f"no lab here: {LAB_FILE} not found (run 'labvirt init DIR' or use -C DIR)")
    top = Table(_read_toml(lab_path), lab_path)
    lab = top.table("lab", required=True)
    name = lab.str("name", required=True, pattern=NAME_RE, rule=NAME_RULE)
    description = lab.str("description", default="")
    domain_type = lab.str("domain_type", default="auto", choices=DOMAIN_TYPES)
    ssh_user = lab.str("ssh_user", default="root", pattern=re.compile(r"^[a-z_][a-z0-9_-]{0,31}$"),
                       rule="a Linux user name")
    lab.done()
    storage = top.table("storage")
    pool_dir = DEFAULT_POOL_DIR
    if storage is not None:
        pool_dir = storage.str("pool_dir", default=pool_dir)
        if not os.path.isabs(pool_dir):
            storage.fail("pool_dir", f"got {pool_dir!r}; allowed: an absolute path on the libvirt host")
        storage.done()
    services = {}
    svc = top.table("services")
    if svc is not None:
        for key, value in svc.data.items():
            if not isinstance(value, (bool, str)):
                svc.fail(key, f"must be true, false or a string, got {value!r}")
            svc.known.add(key)
        services = dict(svc.data)
    packstack = {}
    pt = top.table("packstack")
    if pt is not None:
        for key in ("management_network", "provider_network"):
            value = pt.str(key, pattern=NAME_RE, rule=NAME_RULE)
            if value is not None:
                packstack[key] = value
        pt.done()
    klass = top.table("class")   # validated by labvirt.core.class_layout.load_class
    top.done()

    networks = tuple(_load_network(t, f) for t, f in _dir_tables(directory, "networks"))
    images = tuple(_load_image(t, f) for t, f in _dir_tables(directory, "images"))
    nodes = tuple(_load_node(t, f) for t, f in _dir_tables(directory, "domains"))
    if not nodes:
        raise SpecError(os.path.join(directory, "domains"), "", "no node definitions (*.toml) found")
    _check_unique("network", networks)
    _check_unique("node", nodes)
    _check_unique("image", images)
    _check_sources(networks)
    _check_overlaps(networks)
    _check_bridges(networks)
    _check_nodes_against_networks(nodes, networks, images)
    spec = LabSpec(name=name, directory=os.path.abspath(directory), networks=networks, nodes=nodes,
                   images=images, description=description, domain_type=domain_type, pool_dir=pool_dir,
                   ssh_user=ssh_user, services=services, class_table=dict(klass.data) if klass else {},
                   packstack=packstack)
    if spec.class_table:                    # (an empty one is valid: no import for the usual lab)
        from labvirt.core.class_layout import load_class

        load_class(spec, spec.class_table)  # refuse a bad [class] table with the rest of the lab
    return spec


def read_text(path: str) -> str:
    """A file the user wrote (lab file, roster), as text; one SpecError line when it cannot be read or is
    not UTF-8."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise SpecError(path, "", f"cannot read: {e.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise SpecError(path, "", f"not UTF-8 text (byte 0x{data[e.start]:02x} at line {line}, column {column}); "
                                  "save it again as UTF-8, or move it out of the lab directory if it is not "
                                  "a lab file") from None
    return text.removeprefix("\ufeff")


def _read_toml(path: str) -> dict:
    text = read_text(path)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(path, "", f"not valid TOML: {e}") from None


def is_lab_file(name: str) -> bool:
    """In networks/, domains/, images/: "*.toml", not hidden ('.') and not an editor's '#' file."""
    return name.endswith(".toml") and not name.startswith((".", "#"))


def _dir_tables(directory: str, sub: str):
    folder = os.path.join(directory, sub)
    if not os.path.isdir(folder):
        return
    for entry in sorted(os.listdir(folder)):
        if is_lab_file(entry):
            path = os.path.join(folder, entry)
            yield Table(_read_toml(path), path), entry[: -len(".toml")]


def _name(t: Table, stem: str) -> str:
    name = t.str("name", default=stem)
    if not NAME_RE.match(name):
        t.fail("name", f"got {name!r}; allowed: {NAME_RULE} (the file name is used when 'name' is absent)")
    return name


def _ipv4(t: Table, key: str, text, what: str = "an IPv4 address") -> IPv4Address:
    try:
        addr = ip_address(text) if isinstance(text, str) else None
    except ValueError:
        addr = None
    if not isinstance(addr, IPv4Address):
        t.fail(key, f"got {text!r}; allowed: {what} such as '192.168.1.100'")
    return addr


def _subnet(t: Table, required: bool = True) -> IPv4Network | None:
    text = t.str("subnet", required=required)
    if text is None:
        return None
    try:
        subnet = ip_network(text, strict=True)
    except ValueError:
        try:
            loose = ip_network(text, strict=False)
            hint = host_bits_hint(ip_address(text.split("/")[0]), loose.prefixlen) if loose.version == 4 \
                else f"did you mean '{loose}'?"
            t.fail("subnet", f"{text!r} has host bits set; {hint}")
        except ValueError:
            t.fail("subnet", f"got {text!r}; allowed: an IPv4 network in CIDR form such as '192.168.1.0/24'")
    if not isinstance(subnet, IPv4Network):
        t.fail("subnet", f"got {text!r}; allowed: an IPv4 network (IPv6 is not supported yet)")
    if not 8 <= subnet.prefixlen <= 29:
        t.fail("subnet", f"prefix /{subnet.prefixlen} in {text!r}; allowed: /8 to /29")
    return subnet


def _load_network(t: Table, stem: str) -> NetworkSpec:
    name = _name(t, stem)
    if "existing" in t.data or t.data.get("mode") in EXTERNAL_MODES:
        return _load_external(t, name)
    mode = t.str("mode", required=True, choices=NETWORK_MODES + EXTERNAL_MODES)
    subnet = _subnet(t)
    gw = _gateway(t, subnet, default=subnet.network_address + 1)
    start, end = _dhcp_range(t, subnet, gw) or default_range(subnet, gw)
    bridge = t.str("bridge", pattern=BRIDGE_RE, rule=BRIDGE_RULE)
    domain = t.str("domain", pattern=re.compile(r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$"), rule="a DNS domain")
    t.done()
    return NetworkSpec(name=name, mode=mode, subnet=subnet, gateway=gw, dhcp_start=start, dhcp_end=end,
                       bridge=bridge, domain=domain, file=t.file)


def _gateway(t: Table, subnet: IPv4Network, default: IPv4Address | None) -> IPv4Address | None:
    """`gateway`, a host address of `subnet`; `default` when absent."""
    text = t.str("gateway")
    gw = _ipv4(t, "gateway", text) if text is not None else default
    if gw is not None and (gw not in subnet or gw in (subnet.network_address, subnet.broadcast_address)):
        t.fail("gateway", f"{gw} is not a host address of {subnet}")
    return gw


def _dhcp_range(t: Table, subnet: IPv4Network, gw: IPv4Address | None):
    """`dhcp_range = [first, last]` checked against the subnet (and libvirt's one-/16 rule); None when absent."""
    first, last = subnet.network_address + 1, subnet.broadcast_address - 1
    rng = t.str_list("dhcp_range")
    if not rng:
        return None
    if len(rng) != 2:
        t.fail("dhcp_range", f"got {list(rng)!r}; allowed: [first, last] such as ['{first + 1}', '{last}']")
    start, end = _ipv4(t, "dhcp_range", rng[0]), _ipv4(t, "dhcp_range", rng[1])
    for a in (start, end):
        if not first <= a <= last:
            t.fail("dhcp_range", f"{a} is not a host address of {subnet}")
    if start > end:
        t.fail("dhcp_range", f"{start} comes after {end}")
    if gw is not None and start <= gw <= end:
        t.fail("dhcp_range", f"range {start}-{end} includes the gateway {gw}")
    if range_problem(start, end):
        t.fail("dhcp_range", range_problem(start, end))
    return start, end


def _load_external(t: Table, name: str) -> NetworkSpec:
    """A network labvirt does not own (labvirt.core.external): an existing libvirt network
    (`existing = "default"`, subnet optional: read from libvirt) or a host bridge (`mode = "host-bridge"`,
    `bridge`, `subnet` required, `gateway` and the LAN's `dhcp_range` optional)."""
    if "existing" in t.data or t.data.get("mode") == "existing":
        t.str("mode", choices=("existing",))
        existing = t.str("existing", required=True, pattern=LIBVIRT_NAME_RE, rule=LIBVIRT_NAME_RULE)
        subnet = _subnet(t, required=False)
        t.done()
        return NetworkSpec(name=name, mode="existing", subnet=subnet, gateway=None, dhcp_start=None, dhcp_end=None,
                           existing=existing, file=t.file)
    t.str("mode", required=True, choices=EXTERNAL_MODES)
    bridge = t.str("bridge", required=True, pattern=BRIDGE_RE, rule=BRIDGE_RULE + " (the host's bridge, e.g. 'br0')")
    if "subnet" not in t.data:
        t.fail("subnet", "missing required field; a host bridge's subnet cannot be read from libvirt: state the "
                         "subnet the lab assumes on it, such as '10.5.116.0/24'")
    subnet = _subnet(t)
    gw = _gateway(t, subnet, default=None)
    start, end = _dhcp_range(t, subnet, gw) or (None, None)
    t.done()
    return NetworkSpec(name=name, mode="host-bridge", subnet=subnet, gateway=gw, dhcp_start=start, dhcp_end=end,
                       bridge=bridge, file=t.file)


def _load_node(t: Table, stem: str) -> NodeSpec:
    name = _name(t, stem)
    default_role = next((r for r in ROLES if name.startswith(r)), "generic")
    role = t.str("role", default=default_role, choices=ROLES)
    vcpus = t.int("vcpus", default=1, low=1, high=256)
    memory = t.size("memory", required=True, low=64 * MiB, high=4 * TiB)
    disk = t.size("disk", default="10GiB", low=1 * MiB, high=64 * TiB)
    image = t.str("image", pattern=NAME_RE, rule=NAME_RULE)
    base_image = t.str("base_image")
    if base_image is not None and not os.path.isabs(base_image):
        t.fail("base_image", f"got {base_image!r}; allowed: an absolute path to a qcow2 or raw file")
    if image and base_image:
        t.fail("base_image", "give either 'image' (a recipe) or 'base_image' (a file), not both")
    cpu = t.str("cpu", default="auto", choices=CPU_MODES)
    nested = t.bool("nested", default=(role == "compute"))
    seed = t.bool("seed", default=None)
    boot = None
    bt = t.table("boot")
    if bt is not None:
        kernel = bt.str("kernel", required=True)
        initrd = bt.str("initrd")
        for key, value in (("kernel", kernel), ("initrd", initrd)):
            if value is not None and not os.path.isabs(value):
                bt.fail(key, f"got {value!r}; allowed: an absolute path on the libvirt host")
        boot = BootSpec(kernel=kernel, initrd=initrd, cmdline=bt.str("cmdline", default="console=ttyS0"))
        bt.done()
    nics = []
    for nt in t.tables("nic"):
        network = nt.str("network", required=True, pattern=NAME_RE, rule=NAME_RULE)
        address = nt.str("address")
        addr = _ipv4(nt, "address", address) if address is not None else None
        model = nt.str("model", default="virtio", choices=("virtio", "e1000", "rtl8139"))
        nt.done()
        nics.append(NicSpec(network=network, address=addr, model=model))
    t.done()
    return NodeSpec(name=name, role=role, vcpus=vcpus, memory=memory, disk=disk, nics=tuple(nics), image=image,
                    base_image=base_image, boot=boot, cpu=cpu, nested=nested, seed=seed, file=t.file)


def _load_image(t: Table, stem: str) -> ImageSpec:
    name = _name(t, stem)
    template = t.str("template")
    source_file = t.str("source_file")
    if (template is None) == (source_file is None):
        t.fail("template", "give exactly one of 'template' (a virt-builder template) or 'source_file' (a local image)")
    if source_file is not None and not os.path.isabs(source_file):
        t.fail("source_file", f"got {source_file!r}; allowed: an absolute path")
    size = t.size("size", default="20GiB", low=64 * MiB, high=64 * TiB)
    repository = t.str("repository")
    password = t.str("root_password")
    if password is not None and not (password == "random" or password.startswith("file:")):
        t.fail("root_password", "allowed: 'random' or 'file:PATH' to a 0600 file; never the password itself")
    selinux = t.str("selinux", choices=("enforcing", "permissive", "disabled"))
    write = []
    for wt in t.tables("write"):
        write.append((wt.str("path", required=True), wt.str("content", required=True)))
        wt.done()
    image = ImageSpec(
        name=name, size=size, template=template, source_file=source_file, repository=repository,
        root_password=password, ssh_keys=t.str_list("ssh_keys"), kernel_args=t.str_list("kernel_args"),
        disable_services=t.str_list("disable_services"), selinux=selinux, packages=t.str_list("packages"),
        run=t.str_list("run"), write=tuple(write),
        identity=t.str("identity", default="cloud-init", choices=("cloud-init", "virt-customize")),
        **load_repositories(t), file=t.file)
    t.done()
    return image


def _check_unique(kind: str, items) -> None:
    seen = {}
    for item in items:
        if item.name in seen:
            raise SpecError(item.file, "name", f"{kind} name {item.name!r} is already used by {seen[item.name]}")
        seen[item.name] = item.file


def _check_sources(networks) -> None:
    """Two lab networks on one existing libvirt network (or one host bridge) would be one network."""
    seen = {}
    for net in networks:
        if net.external:
            key = (net.mode, net.source)
            if key in seen:
                field = "existing" if net.mode == "existing" else "bridge"
                raise SpecError(net.file, field, f"{net.source!r} is also used by network {seen[key].name!r} "
                                f"({seen[key].file}); allowed: one lab network per existing network or bridge")
            seen[key] = net


def _check_overlaps(networks) -> None:
    for i, a in enumerate(networks):
        for b in networks[:i]:
            if a.subnet is not None and b.subnet is not None and a.subnet.overlaps(b.subnet):
                raise SpecError(a.file, "subnet", f"{a.subnet} overlaps {b.subnet} of network {b.name!r} ({b.file})")


def _check_bridges(networks) -> None:
    seen = {}
    for net in networks:
        if net.bridge and net.bridge in seen:
            other = seen[net.bridge]
            raise SpecError(net.file, "bridge", f"{net.bridge!r} is also the bridge of network {other.name!r} "
                            f"({other.file}); each network needs its own bridge")
        seen.setdefault(net.bridge, net)


def _check_nodes_against_networks(nodes, networks, images) -> None:
    by_name = {n.name: n for n in networks}
    image_names = {i.name for i in images}
    taken: dict[IPv4Address, str] = {}
    for node in nodes:
        if not node.nics:
            raise SpecError(node.file, "nic", "a node needs at least one [[nic]]")
        if node.image is not None and node.image not in image_names:
            known = ", ".join(sorted(image_names)) or "none defined in images/"
            raise SpecError(node.file, "image", f"no image recipe {node.image!r}; known: {known}")
        for i, nic in enumerate(node.nics):
            field = f"nic[{i}]"
            net = by_name.get(nic.network)
            if net is None:
                known = ", ".join(sorted(by_name)) or "none defined in networks/"
                raise SpecError(node.file, f"{field}.network", f"no network {nic.network!r}; known: {known}")
            if nic.address is None or net.subnet is None:   # no subnet yet: checked against libvirt's (core/external)
                continue
            a = nic.address
            if a not in net.subnet:
                raise SpecError(node.file, f"{field}.address", f"{a} is outside {net.name}'s subnet {net.subnet}")
            if a in (net.subnet.network_address, net.subnet.broadcast_address):
                raise SpecError(node.file, f"{field}.address", f"{a} is the network or broadcast address of {net.subnet}")
            if a == net.gateway:
                raise SpecError(node.file, f"{field}.address", f"{a} is the gateway (the host's address) of {net.name}")
            if a in taken:
                raise SpecError(node.file, f"{field}.address", f"{a} is already given to {taken[a]}")
            taken[a] = f"{node.name} {node.nic_name(i)}"
        nets = [nic.network for nic in node.nics]
        dup = {n for n in nets if nets.count(n) > 1}
        if dup:
            raise SpecError(node.file, "nic", f"two NICs on network {sorted(dup)[0]!r}; one NIC per network")
