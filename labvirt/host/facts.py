"""Read the host: CPU, memory, /dev/kvm, KVM modules, modprobe.d, bridges and routes.

The only module of labvirt.host that reads files. Everything is read under a host root ("/" for
this machine, or a directory tree such as a profile from labvirt.host.profiles), so the same
checks run against fake hosts in tests and in the simulator. Missing files mean "absent", never
an error: a container or an old kernel simply has less to say.
"""

from __future__ import annotations

import os
import socket
import struct
from ipaddress import IPv4Network

from labvirt.core.record import Record

# Where modprobe (kmod) reads its configuration, highest priority first (see modprobe.d(5)).
MODPROBE_DIRS = ("/etc/modprobe.d", "/run/modprobe.d", "/usr/local/lib/modprobe.d", "/usr/lib/modprobe.d",
                 "/lib/modprobe.d")
NESTED_MODULES = ("kvm_intel", "kvm_amd")
_MAX_CONF = 256 * 1024          # a modprobe.d file larger than this is not configuration


class Route(Record):
    iface: str
    network: IPv4Network


class HostFacts(Record):
    root: str = "/"
    real: bool = True                       # root is this machine's "/" (not a host tree)
    cpu_vendor: str = "other"               # "intel" | "amd" | "other"
    cpu_model: str = ""
    cpu_virt: str = "none"                  # "vmx" | "svm" | "none"
    cpu_hypervisor: bool = False            # the "hypervisor" flag: this host is itself a VM
    cpus: int = 0
    memory: int = 0                         # bytes (MemTotal)
    dev_kvm: str = "missing"                # "usable" | "denied" | "missing" | "error: ..."
    modules: tuple[str, ...] = ()           # loaded (or built-in) KVM modules: kvm, kvm_intel, kvm_pvm, ...
    modules_source: str = ""                # "/proc/modules" or "/sys/module"
    nested_params: tuple[tuple[str, str], ...] = ()    # (kvm_intel|kvm_amd, raw value such as "Y" or "1")
    module_users: tuple[tuple[str, int], ...] = ()     # (module, reference count) where the kernel says
    modprobe_files: tuple[tuple[str, str], ...] = ()   # (path on the host, text), every file in MODPROBE_DIRS
    cmdline: str = ""                       # /proc/cmdline (kvm_intel.nested=... there wins over files)
    interfaces: tuple[str, ...] = ()        # every network interface
    bridges: tuple[str, ...] = ()           # the interfaces that are bridges
    routes: tuple[Route, ...] = ()          # IPv4 routes except the default route
    disk_path: str = ""                     # where free disk space was measured ("" when unknown)
    disk_free: int | None = None            # bytes

    def nested_param(self, module: str) -> str | None:
        return dict(self.nested_params).get(module)

    def users(self, module: str) -> int | None:
        return dict(self.module_users).get(module)


def read_host(root: str = "/", disk_path: str | None = None) -> HostFacts:
    """Gather HostFacts under `root`. `disk_path` (e.g. the lab's pool_dir) is measured for free space
    on the real root only: a host tree has no disks of its own."""
    real = os.path.realpath(root) == "/"
    vendor, model, flags, cpus = _cpuinfo(_read(root, "/proc/cpuinfo") or "")
    modules, source = _modules(root)
    nested, users = [], []
    for name in modules:
        value = _read(root, f"/sys/module/{name}/parameters/nested")
        if name in NESTED_MODULES and value is not None:
            nested.append((name, value.strip()))
        refcnt = _read(root, f"/sys/module/{name}/refcnt")
        if refcnt is not None and refcnt.strip().isdigit():
            users.append((name, int(refcnt)))
    interfaces = tuple(sorted(_listdir(root, "/sys/class/net")))
    bridges = tuple(i for i in interfaces if os.path.isdir(_under(root, f"/sys/class/net/{i}/bridge")))
    disk_free = None
    measured = ""
    if real and disk_path:
        measured, disk_free = _free_space(disk_path)
    return HostFacts(
        root=root, real=real, cpu_vendor=vendor, cpu_model=model,
        cpu_virt="vmx" if "vmx" in flags else "svm" if "svm" in flags else "none",
        cpu_hypervisor="hypervisor" in flags, cpus=cpus, memory=_memtotal(_read(root, "/proc/meminfo") or ""),
        dev_kvm=_dev_kvm(root, real), modules=modules, modules_source=source, nested_params=tuple(nested),
        module_users=tuple(users), modprobe_files=_modprobe_files(root), cmdline=(_read(root, "/proc/cmdline") or "").strip(),
        interfaces=interfaces, bridges=bridges, routes=_routes(_read(root, "/proc/net/route") or ""),
        disk_path=measured, disk_free=disk_free)


def _under(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def _read(root: str, path: str, limit: int = 1024 * 1024) -> str | None:
    try:
        with open(_under(root, path), encoding="utf-8", errors="replace") as f:
            return f.read(limit)
    except OSError:
        return None


def _listdir(root: str, path: str) -> list[str]:
    try:
        return os.listdir(_under(root, path))
    except OSError:
        return []


def _cpuinfo(text: str) -> tuple[str, str, set[str], int]:
    vendor, model, flags, cpus = "other", "", set(), 0
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "processor":
            cpus += 1
        elif key == "vendor_id" and vendor == "other":
            vendor = {"GenuineIntel": "intel", "AuthenticAMD": "amd"}.get(value, "other")
        elif key == "model name" and not model:
            model = value
        elif key == "flags" and not flags:
            flags = set(value.split())
    return vendor, model, flags, cpus


def _memtotal(text: str) -> int:
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1]) * 1024
    return 0


def _dev_kvm(root: str, real: bool) -> str:
    path = _under(root, "/dev/kvm")
    if not real:        # a host tree holds a plain file: present means usable
        return "usable" if os.path.exists(path) else "missing"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return "missing"
    except PermissionError:
        return "denied"
    except OSError as e:
        return f"error: {os.strerror(e.errno) if e.errno else e}"
    os.close(fd)
    return "usable"


def _modules(root: str) -> tuple[tuple[str, ...], str]:
    """KVM modules from /proc/modules when the kernel offers it, else the /sys/module directories
    (which also list built-in modules: built-in kvm_intel is as good as loaded)."""
    text = _read(root, "/proc/modules")
    if text is not None:
        names = {line.split()[0] for line in text.splitlines() if line.strip()}
        source = "/proc/modules"
    else:
        names = set(_listdir(root, "/sys/module"))
        source = "/sys/module"
    return tuple(sorted(n.replace("-", "_") for n in names if n.startswith("kvm"))), source


def _modprobe_files(root: str) -> tuple[tuple[str, str], ...]:
    files = []
    for d in MODPROBE_DIRS:
        for name in sorted(_listdir(root, d)):
            path = f"{d}/{name}"
            full = _under(root, path)
            if not os.path.isfile(full) or os.path.getsize(full) > _MAX_CONF:
                continue
            text = _read(root, path)
            if text is not None:
                files.append((path, text))
    return tuple(files)


def _hex_ip(text: str) -> str:
    return socket.inet_ntoa(struct.pack("<I", int(text, 16)))


def _routes(text: str) -> tuple[Route, ...]:
    routes = []
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 8:
            continue
        try:
            net = IPv4Network(f"{_hex_ip(parts[1])}/{_hex_ip(parts[7])}", strict=False)
        except ValueError:
            continue
        if net.prefixlen:
            routes.append(Route(iface=parts[0], network=net))
    return tuple(dict.fromkeys(routes))


def _free_space(path: str) -> tuple[str, int | None]:
    probe = os.path.abspath(path)
    while not os.path.exists(probe) and probe != os.path.dirname(probe):
        probe = os.path.dirname(probe)
    try:
        st = os.statvfs(probe)
    except OSError:
        return probe, None
    return probe, st.f_bavail * st.f_frsize
