"""A tiny real Linux guest for end-to-end tests, built offline from Debian packages.

    boot = tiny_guest()      # {"kernel": path, "initrd": path, "cmdline": "console=ttyS0 ..."}

Direct kernel boot (<kernel>/<initrd>/<cmdline>, or a node's [boot] table: see `boot_toml`): no disk
image is read, the guest lives in a busybox initramfs. Its /init loads the virtio modules (and, when
the kernel has an AHCI driver, the SATA CD-ROM ones), asks DHCP for an address on every ethN with
`udhcpc -q` (nothing else leaves the guest: IPv6 is disabled on the command line, no DNS, no NTP, no
default route), prints

    LABVIRT-SEED meta-data: instance-id=<id> local-hostname=<name>     (only when a seed CD-ROM is readable)
    LABVIRT-NIC eth0 mac=<mac> ip=<ip or none>                         (one per NIC)
    LABVIRT-GUEST-READY hostname=<name> ip=<ip of eth0>[,<ip of eth1>...]

to /dev/ttyS0, then keeps an interactive shell (prompt `PROMPT`) on the serial console.
`SerialConsole` reads and types on that console through libvirt's stream API.

Kernel flavours (Debian's `linux-image-<abi>-<flavour>` of the current point release):
- "cloud" (default, 27 MB download): small and quick, but built without AHCI, so it cannot read a
  SATA CD-ROM (labvirt's cloud-init seed): no LABVIRT-SEED line, hostname from DHCP.
- "generic" (`linux-image-<abi>-amd64`, 70 MB download): reads the seed CD-ROM; hostname from the
  seed's local-hostname, else from DHCP.

The kit is cached per flavour, kernel package and recipe (a hash of this file) under `cache_dir`
(default $LABVIRT_TEST_GUEST_CACHE, else /var/cache/labvirt-test-guest, else a directory in /tmp).
A cached kit is returned without asking apt (milliseconds); `refresh=True` asks apt for the current
kernel again. `GuestKitUnavailable` means apt/dpkg could not fetch the packages (tests skip on it).
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import stat
import struct
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, replace

from .debs import fetch_deb, writable_dir

DEFAULT_CACHE = "/var/cache/labvirt-test-guest"
CMDLINE = "console=ttyS0 ipv6.disable=1 quiet"
PROMPT = "labvirt-guest# "
READY = "LABVIRT-GUEST-READY"
READY_RE = re.compile(r"LABVIRT-GUEST-READY hostname=(\S+) ip=(\S+)")
SEED_RE = re.compile(r"LABVIRT-SEED meta-data: instance-id=(\S*) local-hostname=(\S*)")
FLAVOURS = {"cloud": ("linux-image-cloud-amd64", "-cloud-amd64"), "generic": ("linux-image-amd64", "-amd64")}
NET_MODULES = ("virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci",
               "failover", "net_failover", "virtio_net", "virtio_blk")
# the seed CD-ROM on virtio-scsi (labvirt's), or on SATA/AHCI (the generic kernel only): whichever exist
SEED_MODULES = ("scsi_common", "scsi_mod", "libata", "libahci", "ahci", "virtio_scsi", "cdrom", "sr_mod", "isofs")

INIT = r"""#!/bin/sh
# PID 1 of the labvirt test guest (written by tests/support/guest.py).
/bin/busybox --install -s /bin
export PATH=/bin HOME=/root PS1='%(prompt)s'
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /run /tmp /root /mnt/seed
mount -t devpts devpts /dev/pts
say() { echo "$*" > /dev/ttyS0; }
load() {
  while read -r mod; do
    [ -n "$mod" ] && { insmod "/lib/modules/$mod.ko" || say "LABVIRT-WARN insmod $mod failed"; }
  done < "$1"
}
ip link set lo up
load /etc/labvirt/modules.net
nics=
for path in /sys/class/net/eth*; do
  [ -e "$path" ] || continue
  nic=${path##*/}
  nics="$nics $nic"
  ip link set "$nic" up
  udhcpc -i "$nic" -f -q -n -t 60 -T 1 -s /etc/udhcpc/default.script > "/run/udhcpc.$nic.log" 2>&1 &
done
seed_host=
if [ -s /etc/labvirt/modules.seed ]; then
  load /etc/labvirt/modules.seed
  i=0
  # insmod returns after the ATA/SCSI scan, so no sr0 after a short grace means no CD-ROM
  while [ $i -lt 40 ]; do
    if [ -b /dev/sr0 ] && mount -t iso9660 -o ro /dev/sr0 /mnt/seed 2>/dev/null; then
      md=/mnt/seed/meta-data
      [ -f "$md" ] || md=/mnt/seed/meta_dat.
      iid=$(sed -n "s/^instance-id: *//p" "$md" 2>/dev/null | tr -d "\"'")
      seed_host=$(sed -n "s/^local-hostname: *//p" "$md" 2>/dev/null | tr -d "\"'")
      say "LABVIRT-SEED meta-data: instance-id=$iid local-hostname=$seed_host"
      break
    fi
    [ -b /dev/sr0 ] || [ $i -lt 5 ] || break
    i=$((i + 1))
    sleep 0.1
  done
fi
wait
ips=
dhcp_host=
for nic in $nics; do
  env=/run/udhcpc.$nic.env
  addr=$(sed -n "s/^ip=//p" "$env" 2>/dev/null)
  [ -n "$dhcp_host" ] || dhcp_host=$(sed -n "s/^hostname=//p" "$env" 2>/dev/null)
  say "LABVIRT-NIC $nic mac=$(cat /sys/class/net/$nic/address) ip=${addr:-none}"
  ips="${ips:+$ips,}${addr:-none}"
done
host=${seed_host:-${dhcp_host:-none}}
[ "$host" = none ] || hostname "$host"
say "LABVIRT-GUEST-READY hostname=$host ip=${ips:-none}"
while :; do
  setsid cttyhack sh
  sleep 1
done
""" % {"prompt": PROMPT}

# Debian's busybox udhcpc runs /etc/udhcpc/default.script (passed with -s as well).
DHCP_SCRIPT = r"""#!/bin/sh
# udhcpc hook: set the leased address, record the lease; no routes, no DNS, no NTP.
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip -4 addr add "$ip/${mask:-24}" dev "$interface"
    printf 'ip=%s\nmask=%s\nrouter=%s\nhostname=%s\n' "$ip" "$mask" "$router" "$hostname" \
      > "/run/udhcpc.$interface.env"
    ;;
esac
exit 0
"""


class GuestKitUnavailable(RuntimeError):
    """apt/dpkg could not fetch or unpack the Debian packages the guest is built from."""


@dataclass(frozen=True)
class GuestKit:
    kernel: str
    initrd: str
    cmdline: str
    flavour: str
    package: str          # e.g. linux-image-6.1.0-56-cloud-amd64
    version: str          # the package version, e.g. 6.1.192-2
    release: str          # uname -r of the guest, e.g. 6.1.0-56-cloud-amd64
    modules: tuple        # what /init insmods, in order
    seed_capable: bool    # the kernel can read labvirt's SATA CD-ROM seed
    initrd_bytes: int
    build_seconds: float  # how long the first build took (download + unpack + initramfs)
    cached: bool = False  # this call found it in the cache

    def boot(self) -> dict:
        return {"kernel": self.kernel, "initrd": self.initrd, "cmdline": self.cmdline}


def tiny_guest(cache_dir: str | None = None, *, flavour: str = "cloud", refresh: bool = False) -> dict:
    """{"kernel", "initrd", "cmdline"} of the tiny guest, built (first time) or taken from the cache."""
    return tiny_guest_kit(cache_dir, flavour=flavour, refresh=refresh).boot()


def boot_toml(boot: dict) -> str:
    """A node's [boot] table for `boot` (what tests/conftest.small_lab(boot=...) takes)."""
    return "[boot]\n" + "".join(f"{k} = {json.dumps(boot[k])}\n" for k in ("kernel", "initrd", "cmdline"))


def tiny_guest_kit(cache_dir: str | None = None, *, flavour: str = "cloud", refresh: bool = False) -> GuestKit:
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour {flavour!r}; allowed: {', '.join(FLAVOURS)}")
    root = _cache_root(cache_dir)
    pointer = os.path.join(root, f"current-{flavour}.json")
    if not refresh and (kit := _load_pointer(root, pointer)) is not None:
        return kit
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not refresh and (kit := _load_pointer(root, pointer)) is not None:
            return kit
        started = time.monotonic()
        meta_pkg, suffix = FLAVOURS[flavour]
        package, version = _resolve_kernel(meta_pkg, suffix)
        entry = f"{flavour}-{package.removeprefix('linux-image-')}-{version}-{_recipe()}".replace(":", "_")
        path = os.path.join(root, entry)
        if not os.path.isfile(os.path.join(path, "kit.json")):
            _build(path, package, version, flavour, started)
        _write_atomic(pointer, json.dumps({"entry": entry, "recipe": _recipe()}))
        for other in os.listdir(root):   # older kernels or recipes of this flavour
            if other.startswith(f"{flavour}-") and other != entry:
                shutil.rmtree(os.path.join(root, other), ignore_errors=True)
        kit = _load_pointer(root, pointer)
        assert kit is not None, f"built {path} but cannot load it"
        return replace(kit, cached=False)


# --- cache ------------------------------------------------------------------------------------

def _cache_root(cache_dir: str | None) -> str:
    if cache_dir:
        return os.path.abspath(cache_dir)
    return writable_dir([os.environ.get("LABVIRT_TEST_GUEST_CACHE"), DEFAULT_CACHE,
                         os.path.join(tempfile.gettempdir(), f"labvirt-test-guest-{os.getuid()}")], GuestKitUnavailable)


_RECIPE: str | None = None


def _recipe() -> str:
    """Changes whenever this file does, so an edited /init never comes from a stale cache."""
    global _RECIPE
    if _RECIPE is None:
        with open(__file__, "rb") as f:
            _RECIPE = hashlib.sha256(f.read()).hexdigest()[:10]
    return _RECIPE


def _load_pointer(root: str, pointer: str) -> GuestKit | None:
    try:
        with open(pointer) as f:
            ptr = json.load(f)
        if ptr.get("recipe") != _recipe():
            return None
        path = os.path.join(root, ptr["entry"])
        with open(os.path.join(path, "kit.json")) as f:
            data = json.load(f)
        kit = GuestKit(**{**data, "modules": tuple(data["modules"]), "cached": True,
                          "kernel": os.path.join(path, "vmlinuz"), "initrd": os.path.join(path, "initrd.img")})
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not (os.path.isfile(kit.kernel) and os.path.isfile(kit.initrd)):
        return None
    return kit


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


# --- apt / dpkg -------------------------------------------------------------------------------

def _run(argv: list[str], cwd: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)
    except FileNotFoundError:
        raise GuestKitUnavailable(f"{argv[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise GuestKitUnavailable(f"{' '.join(argv)} took more than {timeout:.0f} s") from None


def _resolve_kernel(meta_pkg: str, suffix: str) -> tuple[str, str]:
    """The versioned kernel package the meta package depends on: (name, version)."""
    pattern = re.compile(r"^Depends:.*?\b(linux-image-[0-9][^\s,()]*" + re.escape(suffix) + r")\b(?:\s*\(=\s*([^)\s]+)\))?",
                         re.M)
    for attempt in range(2):
        r = _run(["apt-cache", "show", "--no-all-versions", meta_pkg])
        m = pattern.search(r.stdout) if r.returncode == 0 else None
        if m:
            package, version = m.group(1), m.group(2)
            if version is None:
                pol = _run(["apt-cache", "policy", package]).stdout
                vm = re.search(r"Candidate:\s*(\S+)", pol)
                version = vm.group(1) if vm and vm.group(1) != "(none)" else "unknown"
            return package, version
        if attempt == 0:
            _run(["apt-get", "update", "-qq"], timeout=300)
    raise GuestKitUnavailable(f"apt-cache cannot find {meta_pkg} or what it depends on: "
                              f"{(r.stderr or r.stdout).strip()[-300:]}")


def _busybox(workdir: str) -> tuple[bytes, str]:
    """A static busybox: the installed busybox-static, else one downloaded (the system is left alone)."""
    r = _run(["dpkg-query", "-W", "-f=${Status} ${Version}", "busybox-static"])
    if r.returncode == 0 and "ok installed" in r.stdout and os.path.isfile("/bin/busybox"):
        with open("/bin/busybox", "rb") as f:
            return f.read(), r.stdout.split()[-1]
    unpacked, _ = fetch_deb("busybox-static", workdir, unavailable=GuestKitUnavailable)
    with open(os.path.join(unpacked, "bin", "busybox"), "rb") as f:
        return f.read(), "downloaded"


# --- kernel modules ---------------------------------------------------------------------------

def _modinfo(data: bytes) -> dict[str, list[str]]:
    """The .modinfo section of an ELF64 little-endian kernel module: key -> values."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not an ELF64 little-endian file")
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    str_off, str_size = sections[shstrndx][4], sections[shstrndx][5]
    names = data[str_off:str_off + str_size]
    info: dict[str, list[str]] = {}
    for name_off, _type, _flags, _addr, off, size in sections:
        if names[name_off:names.index(b"\0", name_off)] == b".modinfo":
            for item in data[off:off + size].split(b"\0"):
                key, sep, value = item.decode("utf-8", "replace").partition("=")
                if sep:
                    info.setdefault(key, []).append(value)
    return info


def _read_module(path: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        return lzma.decompress(data)
    if path.endswith(".gz"):
        return gzip.decompress(data)
    if path.endswith(".zst"):
        r = subprocess.run(["zstd", "-dc", path], capture_output=True, check=True)
        return r.stdout
    return data


def _module_plan(moddir: str, wanted: tuple[str, ...]) -> tuple[list[tuple[str, bytes]], set[str], set[str]]:
    """Modules to insmod for `wanted` (dependencies first), and which of `wanted` are built in or absent."""
    files: dict[str, str] = {}
    for dirpath, _dirs, names in os.walk(os.path.join(moddir, "kernel")):
        for n in names:
            m = re.match(r"^(.+)\.ko(\.xz|\.gz|\.zst)?$", n)
            if m:
                files[m.group(1).replace("-", "_")] = os.path.join(dirpath, n)
    builtin: set[str] = set()
    try:
        with open(os.path.join(moddir, "modules.builtin")) as f:
            for line in f:
                builtin.add(os.path.basename(line.strip()).removesuffix(".ko").replace("-", "_"))
    except OSError:
        pass
    order: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    absent: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        if name in builtin:
            return
        if name not in files:
            absent.add(name)
            return
        data = _read_module(files[name])
        for deps in _modinfo(data).get("depends", []):
            for dep in filter(None, deps.split(",")):
                visit(dep.replace("-", "_"))
        order.append((name, data))

    for name in wanted:
        visit(name)
    return order, builtin & set(wanted), absent


# --- initramfs --------------------------------------------------------------------------------

def _cpio(entries: list[tuple[str, int, bytes, tuple[int, int]]]) -> bytes:
    """cpio 'newc' archive of (name, mode, data, (rdev major, minor)); owner root, mtime 0."""
    out = bytearray()

    def pad() -> None:
        out.extend(b"\0" * (-len(out) % 4))

    for ino, (name, mode, data, (rmaj, rmin)) in enumerate([*entries, ("TRAILER!!!", 0, b"", (0, 0))], 1):
        nlink = 2 if stat.S_ISDIR(mode) else 1
        fields = (ino if name != "TRAILER!!!" else 0, mode, 0, 0, nlink, 0, len(data), 0, 0, rmaj, rmin,
                  len(name) + 1, 0)
        out.extend(b"070701" + "".join(f"{v:08X}" for v in fields).encode())
        out.extend(name.encode() + b"\0")
        pad()
        out.extend(data)
        pad()
    return bytes(out)


def _initramfs(busybox: bytes, net: list[tuple[str, bytes]], seed: list[tuple[str, bytes]]) -> bytes:
    d, f, x, ln = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o644, stat.S_IFREG | 0o755, stat.S_IFLNK | 0o777
    entries = [(p, d, b"", (0, 0)) for p in ("bin", "dev", "etc", "etc/udhcpc", "etc/labvirt", "lib",
                                              "lib/modules", "mnt", "proc", "root", "run", "sys", "tmp")]
    entries += [
        ("dev/console", stat.S_IFCHR | 0o600, b"", (5, 1)),
        ("bin/busybox", x, busybox, (0, 0)),
        ("bin/sh", ln, b"busybox", (0, 0)),
        ("init", x, INIT.encode(), (0, 0)),
        ("etc/udhcpc/default.script", x, DHCP_SCRIPT.encode(), (0, 0)),
        ("etc/labvirt/modules.net", f, "".join(n + "\n" for n, _ in net).encode(), (0, 0)),
        ("etc/labvirt/modules.seed", f, "".join(n + "\n" for n, _ in seed).encode(), (0, 0)),
    ]
    entries += [(f"lib/modules/{n}.ko", f, data, (0, 0)) for n, data in [*net, *seed]]
    return gzip.compress(_cpio(entries), compresslevel=9, mtime=0)


def _build(path: str, package: str, version: str, flavour: str, started: float) -> None:
    root = os.path.dirname(path)
    work = tempfile.mkdtemp(prefix=".build-", dir=root)
    try:
        unpacked, _ = fetch_deb(package, work, version, unavailable=GuestKitUnavailable)
        kernels = [n for n in os.listdir(os.path.join(unpacked, "boot")) if n.startswith("vmlinuz-")]
        if len(kernels) != 1:
            raise RuntimeError(f"{package}: expected one boot/vmlinuz-*, found {kernels}")
        release = kernels[0].removeprefix("vmlinuz-")
        moddir = None
        for base in ("lib/modules", "usr/lib/modules"):
            if os.path.isdir(os.path.join(unpacked, base, release)):
                moddir = os.path.join(unpacked, base, release)
        if moddir is None:
            raise RuntimeError(f"{package}: no modules directory for {release}")
        net, _net_builtin, net_absent = _module_plan(moddir, NET_MODULES)
        missing = {"virtio_net", "virtio_pci"} & net_absent
        if missing:
            raise RuntimeError(f"{package}: no {', '.join(sorted(missing))} module (nor built in)")
        seed_all, seed_builtin, _ = _module_plan(moddir, SEED_MODULES)
        have = {n for n, _ in seed_all} | seed_builtin
        seed_capable = {"virtio_scsi", "sr_mod", "isofs"} <= have
        net_names = {n for n, _ in net}
        seed = [(n, b) for n, b in seed_all if n not in net_names] if seed_capable else []
        busybox, _bb_version = _busybox(work)
        image = _initramfs(busybox, net, seed)
        out = os.path.join(work, "kit")
        os.makedirs(out)
        shutil.copyfile(os.path.join(unpacked, "boot", kernels[0]), os.path.join(out, "vmlinuz"))
        with open(os.path.join(out, "initrd.img"), "wb") as fh:
            fh.write(image)
        meta = GuestKit(kernel="", initrd="", cmdline=CMDLINE, flavour=flavour, package=package, version=version,
                        release=release, modules=tuple(n for n, _ in [*net, *seed]), seed_capable=seed_capable,
                        initrd_bytes=len(image), build_seconds=round(time.monotonic() - started, 2))
        data = asdict(meta)
        for k in ("kernel", "initrd", "cached"):
            data.pop(k)
        with open(os.path.join(out, "kit.json"), "w") as fh:
            json.dump(data, fh, indent=1)
        for name in os.listdir(out):
            os.chmod(os.path.join(out, name), 0o644)
        os.chmod(out, 0o755)
        if os.path.isdir(path):
            shutil.rmtree(path)
        os.rename(out, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- the serial console through libvirt -------------------------------------------------------

_loop_lock = threading.Lock()
_loop_thread: threading.Thread | None = None


def start_event_loop() -> None:
    """Register libvirt's default event loop and run it in a daemon thread (once per process).

    Call it BEFORE opening the connection whose consoles you read. It stays for the process's life:
    libvirt cannot unregister it, and connections opened later rely on it being run.
    """
    global _loop_thread
    import libvirt

    with _loop_lock:
        if _loop_thread is not None:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        _loop_thread = threading.Thread(target=run, name="libvirt-event-loop", daemon=True)
        _loop_thread.start()


class SerialConsole:
    """The domain's serial console (virDomain.openConsole on a non-blocking virStream).

    Output is collected by the event-loop thread into `text` (CR LF turned into LF). Open it before
    the guest prints what you wait for: QEMU drops pty output nobody reads, so start the domain
    paused (VIR_DOMAIN_START_PAUSED), open the console, then resume.

    Typing: end a line with "\r" (what a terminal sends) or "\n"; both work, also typed ahead while
    an earlier command still runs. The shell is busybox ash with line editing: it echoes what is
    typed (wrapped at 80 columns with a CR), and prints ESC[6n after each prompt. `run` avoids
    parsing any of that.
    """

    def __init__(self, conn, dom):
        import libvirt

        self._libvirt = libvirt
        self._cond = threading.Condition()
        self._buf = bytearray()
        self.closed = False
        self.stream = conn.newStream(libvirt.VIR_STREAM_NONBLOCK)
        dom.openConsole(None, self.stream, 0)
        self.stream.eventAddCallback(libvirt.VIR_STREAM_EVENT_READABLE | libvirt.VIR_STREAM_EVENT_ERROR
                                     | libvirt.VIR_STREAM_EVENT_HANGUP, self._on_event, None)

    def _on_event(self, stream, events, _opaque) -> None:
        lv = self._libvirt
        if events & lv.VIR_STREAM_EVENT_READABLE:
            while True:
                try:
                    data = stream.recv(65536)
                except lv.libvirtError:
                    data = b""
                if data == -2:
                    break
                if not data:
                    self._close_locked_notify()
                    return
                with self._cond:
                    self._buf.extend(data)
                    self._cond.notify_all()
        if events & (lv.VIR_STREAM_EVENT_ERROR | lv.VIR_STREAM_EVENT_HANGUP):
            self._close_locked_notify()

    def _close_locked_notify(self) -> None:
        with self._cond:
            if not self.closed:
                self.closed = True
                try:
                    self.stream.eventRemoveCallback()
                except self._libvirt.libvirtError:
                    pass
            self._cond.notify_all()

    @property
    def text(self) -> str:
        with self._cond:
            return self._buf.decode("utf-8", "replace").replace("\r\n", "\n")

    def wait_for(self, pattern: str | re.Pattern, timeout: float, start: int = 0) -> re.Match:
        """The first match of `pattern` in `text[start:]`; TimeoutError (with the tail) after `timeout` s."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                m = rx.search(self._buf.decode("utf-8", "replace").replace("\r\n", "\n"), start)
                if m:
                    return m
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    why = "console closed" if self.closed else f"not seen in {timeout:.0f} s"
                    raise TimeoutError(f"{rx.pattern!r} {why}; console tail:\n{self.text[-1500:]}")
                self._cond.wait(min(left, 0.5))

    def send(self, text: str, timeout: float = 10) -> None:
        data = text.encode()
        deadline = time.monotonic() + timeout
        while data:
            n = self.stream.send(data)
            if n == -2:
                if time.monotonic() > deadline:
                    raise TimeoutError("console does not take input")
                time.sleep(0.02)
                continue
            data = data[n:]

    def run(self, command: str, timeout: float = 30) -> tuple[int, str]:
        """Type `command` at the guest's shell; (exit status, output). Needs the shell prompt up.

        Output is cut out between two markers that only the shell's expansion produces (the echoed
        command line shows `$((0))` and `$?`, not the digits), so the echo does not confuse it.
        """
        tag = "LV" + uuid.uuid4().hex[:8]
        start = len(self.text)
        self.send(f"echo {tag}-B$((0)); {command}; echo {tag}-E$?\r")
        m = self.wait_for(re.compile(rf"{tag}-B0\n(.*?){tag}-E(\d+)\n", re.S), timeout, start)
        return int(m.group(2)), m.group(1)

    def close(self) -> None:
        self._close_locked_notify()
        try:
            self.stream.abort()
        except self._libvirt.libvirtError:
            pass
