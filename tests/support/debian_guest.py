"""A real Debian 12 guest for end-to-end tests, built from Debian's packages only (no other download).

    kit = debian_kit()            # built once (minutes), then taken from the cache (milliseconds)
    kit.disk                      # qcow2, one ext4 filesystem (no partition table) labelled LABEL
    kit.boot("cloud")             # {"kernel", "initrd", "cmdline"}: direct kernel boot, "cloud" or "generic"
    repo = debian_repo(kit)       # the same OS as a local virt-builder repository (built on first use)

The root tree comes from `mmdebstrap` (bookworm, the host's apt mirror): systemd, cloud-init,
openssh-server, qemu-guest-agent, ifupdown, and both Debian kernels, linux-image-cloud-amd64 (no
AHCI, the one Debian's genericcloud images use) and linux-image-amd64 (generic), each with its own
initramfs (initramfs-tools' default MODULES=most). The filesystem is made without loop devices
(`mkfs.ext4 -d`) and converted to qcow2; each kernel's vmlinuz and initrd are copied out for direct
kernel boot with `root=LABEL=labvirt-root`.

Made for tests on an isolated network:
- cloud-init reads only NoCloud (then None): no metadata-service probing, no waiting for it.
- no SSH host keys, no machine-id, root locked: every guest gets its own from cloud-init / systemd.
- DHCP (dhclient) gives up after 20 s; apt's timers and e2scrub are masked; no time sync daemon;
  nothing waits for the network to be "online"; an empty /etc/resolv.conf (not the build host's).
- cloud-init's locale is C.UTF-8 (built into glibc), so `cloud-init status` ends "done", not "error".
- serial console on ttyS0 (getty from systemd, the kernel's console=ttyS0).

Cache: $LABVIRT_TEST_DEBIAN_CACHE, else /var/cache/labvirt-tests, else a directory in /tmp; one
directory per recipe (`debian12-<hash of RECIPE>`), built in a temporary directory beside it and
renamed into place, so an interrupted build leaves no half kit. A file lock lets parallel test
processes share one build. `KitUnavailable` means a needed tool or the apt mirror is missing.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass

from .debs import writable_dir

MiB = 1024**2
GiB = 1024**3
DEFAULT_CACHE = "/var/cache/labvirt-tests"
LABEL = "labvirt-root"
CMDLINE = f"root=LABEL={LABEL} rw console=ttyS0 net.ifnames=0 biosdevname=0"
KERNELS = {"cloud": "linux-image-cloud-amd64", "generic": "linux-image-amd64"}
TEMPLATE = "debian-12-labvirt"

# Everything that decides what the image contains. Its hash names the cache entry: change anything
# here and the next call builds a new kit (and removes older ones).
RECIPE = {
    "suite": "bookworm",
    "variant": "minbase",
    "packages": sorted([
        "systemd", "systemd-sysv", "udev", "dbus", "cloud-init", "cloud-guest-utils", "openssh-server",
        "qemu-guest-agent", "ifupdown", "isc-dhcp-client", "iproute2", "iputils-ping", "netbase",
        "procps", "sudo", "initramfs-tools", "e2fsprogs",
        *KERNELS.values(),
    ]),
    "dpkg_exclude": ["/usr/share/man/*", "/usr/share/doc/*", "/usr/share/info/*", "/usr/share/locale/*",
                     "/usr/share/lintian/*"],
    "dpkg_include": ["/usr/share/doc/*/copyright"],
    "files": {
        "/etc/fstab": f"LABEL={LABEL} / ext4 rw,errors=remount-ro 0 1\n",
        "/etc/hostname": "debian-kit\n",
        "/etc/hosts": "127.0.0.1 localhost\n127.0.1.1 debian-kit\n",
        "/etc/network/interfaces": "# cloud-init writes the NICs into interfaces.d\n"
                                   "auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n",
        # NoCloud (a seed volume labelled cidata), then None: nothing probes a metadata service.
        # C.UTF-8 is built into glibc; the default en_US.UTF-8 is not generated (no locales package),
        # so cloud-init's locale module would fail and `cloud-init status` say "error".
        "/etc/cloud/cloud.cfg.d/90_labvirt_kit.cfg": "datasource_list: [ NoCloud, None ]\nlocale: C.UTF-8\n",
        # mmdebstrap copies the build host's resolver; a guest must not inherit it
        "/etc/resolv.conf": "",
        # An isolated test network answers DHCP at once or never: do not block boot for minutes.
        "/etc/dhcp/dhclient.conf": "timeout 20;\nretry 10;\n"
                                   "request subnet-mask, broadcast-address, routers, domain-name,\n"
                                   "        domain-name-servers, domain-search, host-name, interface-mtu;\n",
    },
    "mask": ["apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "e2scrub_reap.service",
             "fstrim.timer", "systemd-binfmt.service", "systemd-networkd-wait-online.service"],
    "disk_size": 3 * GiB,
    "revision": 1,
}


class KitUnavailable(RuntimeError):
    """A tool or the package mirror this kit needs is missing (tests skip on it, outside CI)."""


@dataclass(frozen=True)
class DebianKit:
    directory: str
    disk: str                 # qcow2, the filesystem labelled LABEL directly on the disk (no partitions)
    kernels: dict             # flavour -> {"kernel": path, "initrd": path, "release": uname -r}
    packages: dict            # package -> version, for the record
    build_seconds: float
    cached: bool

    def boot(self, flavour: str = "generic", extra: str = "") -> dict:
        k = self.kernels[flavour]
        return {"kernel": k["kernel"], "initrd": k["initrd"], "cmdline": f"{CMDLINE} {extra}".strip()}


@dataclass(frozen=True)
class VirtBuilderRepo:
    directory: str            # holds `index` and TEMPLATE.xz
    template: str
    size: int                 # virtual size of the template disk, bytes
    build_seconds: float
    cached: bool

    @property
    def index(self) -> str:
        return os.path.join(self.directory, "index")

    @property
    def uri(self) -> str:
        return "file://" + self.index

    def env(self, base: str) -> dict:
        """Environment for virt-builder that reads only this repository (base: a scratch directory)."""
        dirs = os.path.join(base, "vb-dirs")           # virt-builder reads DIR/virt-builder/repos.d
        conf = os.path.join(base, "xdg-config")        # and $XDG_CONFIG_HOME/virt-builder/repos.d
        os.makedirs(os.path.join(conf, "virt-builder", "repos.d"), exist_ok=True)
        os.makedirs(os.path.join(dirs, "virt-builder", "repos.d"), exist_ok=True)
        with open(os.path.join(dirs, "virt-builder", "repos.d", "labvirt-kit.conf"), "w") as f:
            f.write(f"[labvirt-kit]\nuri={self.uri}\n")
        return {"VIRT_BUILDER_DIRS": dirs, "XDG_CONFIG_HOME": conf, "LIBGUESTFS_BACKEND": "direct",
                "LIBGUESTFS_BACKEND_SETTINGS": "force_tcg"}


def recipe_hash() -> str:
    return hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode()).hexdigest()[:12]


def cache_root(cache_dir: str | None = None) -> str:
    return writable_dir([cache_dir, os.environ.get("LABVIRT_TEST_DEBIAN_CACHE"), DEFAULT_CACHE,
                         os.path.join(tempfile.gettempdir(), f"labvirt-tests-{os.getuid()}")], KitUnavailable)


def missing_tools() -> list[str]:
    return [t for t in ("mmdebstrap", "mkfs.ext4", "qemu-img") if shutil.which(t) is None]


# --- the kit ----------------------------------------------------------------------------------

def debian_kit(cache_dir: str | None = None, log=None) -> DebianKit:
    """The kit for the current RECIPE: from the cache, else built now (several minutes)."""
    root = cache_root(cache_dir)
    entry = os.path.join(root, f"debian12-{recipe_hash()}")
    kit = _load(entry)
    if kit is not None:
        return kit
    if missing := missing_tools():
        raise KitUnavailable(f"the Debian kit needs {', '.join(missing)} (apt-get install mmdebstrap "
                             "e2fsprogs qemu-utils)")
    with open(os.path.join(root, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        kit = _load(entry)
        if kit is not None:
            return kit
        work = tempfile.mkdtemp(prefix=".build-debian12-", dir=root)
        try:
            _build(work, log)
            os.chmod(work, 0o755)
            os.rename(work, entry)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        for other in os.listdir(root):      # kits of older recipes
            if other.startswith("debian12-") and os.path.join(root, other) != entry:
                shutil.rmtree(os.path.join(root, other), ignore_errors=True)
    kit = _load(entry)
    assert kit is not None, f"built {entry} but cannot load it"
    return DebianKit(**{**kit.__dict__, "cached": False})


def _load(entry: str) -> DebianKit | None:
    try:
        with open(os.path.join(entry, "kit.json")) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    kernels = {fl: {"kernel": os.path.join(entry, f"vmlinuz-{fl}"), "initrd": os.path.join(entry, f"initrd-{fl}"),
                    "release": meta["releases"][fl]} for fl in KERNELS}
    disk = os.path.join(entry, "disk.qcow2")
    if not all(os.path.isfile(p) for p in [disk, *(k[x] for k in kernels.values() for x in ("kernel", "initrd"))]):
        return None
    return DebianKit(entry, disk, kernels, meta["packages"], meta["build_seconds"], cached=True)


def _run(argv: list[str], timeout: float = 3600, **kw) -> subprocess.CompletedProcess:
    try:
        r = subprocess.run(argv, stdin=kw.pop("stdin", subprocess.DEVNULL), capture_output=True, text=True,
                           timeout=timeout, **kw)
    except FileNotFoundError:
        raise KitUnavailable(f"{argv[0]} is not installed") from None
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])}... failed ({r.returncode}):\n{(r.stderr or r.stdout)[-3000:]}")
    return r


def _hooks(tree_var: str = '"$1"') -> list[str]:
    """mmdebstrap --customize-hook shell lines (run by mmdebstrap with the tree as $1)."""
    hooks = []
    for path, text in RECIPE["files"].items():
        d = os.path.dirname(path)
        # printf %s with the text as one argument: no shell expansion of its content
        hooks.append(f"mkdir -p {tree_var}{d} && printf %s {_sh(text)} > {tree_var}{path}")
    hooks += [
        f"rm -f {tree_var}/etc/ssh/ssh_host_*",                 # cloud-init makes each guest's own
        f": > {tree_var}/etc/machine-id",
        f"rm -f {tree_var}/var/lib/dbus/machine-id",
        f"chroot {tree_var} passwd -l root",
        *(f"chroot {tree_var} systemctl mask {u}" for u in RECIPE["mask"]),
    ]
    return hooks


def _sh(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _build(work: str, log=None) -> None:
    started = time.monotonic()
    say = log or (lambda msg: None)
    tree = os.path.join(work, "tree")
    os.makedirs(tree)
    argv = ["mmdebstrap", f"--variant={RECIPE['variant']}", "--include=" + ",".join(RECIPE["packages"]),
            "--aptopt=Acquire::Retries \"3\""]
    argv += [f"--dpkgopt=path-exclude={p}" for p in RECIPE["dpkg_exclude"]]
    argv += [f"--dpkgopt=path-include={p}" for p in RECIPE["dpkg_include"]]
    argv += [f"--customize-hook={h}" for h in _hooks()]
    argv += [RECIPE["suite"], tree]
    argv += _mirrors()
    say("mmdebstrap ...")
    _run(argv, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    say(f"mmdebstrap done after {time.monotonic() - started:.0f} s")
    releases = {}
    boot = os.path.join(tree, "boot")
    for flavour in KERNELS:
        suffix = "-cloud-amd64" if flavour == "cloud" else "-amd64"
        names = [n for n in os.listdir(boot) if n.startswith("vmlinuz-") and n.endswith(suffix)
                 and (flavour == "cloud" or not n.endswith("-cloud-amd64"))]
        if len(names) != 1:
            raise RuntimeError(f"{flavour}: expected one vmlinuz-*{suffix} in /boot, found {names}")
        release = names[0].removeprefix("vmlinuz-")
        releases[flavour] = release
        shutil.copyfile(os.path.join(boot, names[0]), os.path.join(work, f"vmlinuz-{flavour}"))
        shutil.copyfile(os.path.join(boot, f"initrd.img-{release}"), os.path.join(work, f"initrd-{flavour}"))
    packages = dict(line.split("\t", 1) for line in _run(
        ["dpkg-query", f"--admindir={tree}/var/lib/dpkg", "-W", "-f=${Package}\t${Version}\n"]).stdout.splitlines())
    raw = os.path.join(work, "disk.raw")
    with open(raw, "wb") as f:
        f.truncate(RECIPE["disk_size"])
    _run(["mkfs.ext4", "-q", "-F", "-L", LABEL, "-d", tree, raw])
    _run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, os.path.join(work, "disk.qcow2")])
    os.unlink(raw)
    # the tree stays for the virt-builder repository (built on demand), as a tarball-free copy
    os.rename(tree, os.path.join(work, "rootfs"))
    meta = {"releases": releases, "packages": {p: packages[p] for p in sorted(packages)},
            "recipe": recipe_hash(), "build_seconds": round(time.monotonic() - started, 1)}
    with open(os.path.join(work, "kit.json"), "w") as f:
        json.dump(meta, f, indent=1)
    for name in os.listdir(work):
        if name != "rootfs":
            os.chmod(os.path.join(work, name), 0o644)
    say(f"kit built in {meta['build_seconds']} s")


def _mirrors() -> list[str]:
    """The host's Debian mirror (deb822 or one-line sources), so the build uses what apt uses."""
    uris = []
    for path in ("/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"):
        try:
            text = open(path).read()
        except OSError:
            continue
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("URIs:") and "security" not in line:
                uris.append(line.split(None, 1)[1].split()[0])
            elif line.startswith("deb ") and "security" not in line:
                uris.append(next(w for w in line.split()[1:] if "://" in w))
    uri = uris[0] if uris else "http://deb.debian.org/debian"
    sec = uri.rstrip("/").rsplit("/", 1)[0] + "/debian-security"
    return [f"deb {uri} bookworm main", f"deb {uri} bookworm-updates main",
            f"deb {sec} bookworm-security main"]


# --- the virt-builder repository --------------------------------------------------------------

def debian_repo(kit: DebianKit, log=None) -> VirtBuilderRepo:
    """The kit's OS as a local virt-builder repository (`index` + TEMPLATE.xz), built on first use.

    The template is a partitioned raw disk (dos label, one ext4 partition from 1 MiB, the same
    filesystem label, so `root=LABEL=...` boots it too), xz-compressed; `expand=/dev/sda1` lets
    virt-builder's --size grow it. The index passes virt-index-validate.
    """
    final = os.path.join(kit.directory, "repo")
    if os.path.isfile(os.path.join(final, "index")):
        return _repo_meta(final, cached=True)
    for tool in ("sfdisk", "mke2fs", "xz", "virt-index-validate"):
        if shutil.which(tool) is None:
            raise KitUnavailable(f"the virt-builder repository needs {tool}")
    started = time.monotonic()
    with open(os.path.join(kit.directory, ".repo-lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.isfile(os.path.join(final, "index")):
            return _repo_meta(final, cached=True)
        work = tempfile.mkdtemp(prefix=".build-repo-", dir=kit.directory)
        try:
            size = RECIPE["disk_size"]
            raw = os.path.join(work, f"{TEMPLATE}.raw")
            with open(raw, "wb") as f:
                f.truncate(size)
            _run(["sfdisk", "--quiet", raw], input="label: dos\nstart=2048, type=83\n", stdin=None)
            _run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", LABEL, "-d", os.path.join(kit.directory, "rootfs"),
                  "-E", f"offset={MiB}", raw, f"{(size - MiB) // 1024}k"])
            xz = os.path.join(work, f"{TEMPLATE}.xz")
            with open(xz, "wb") as out:
                # -1 with threads: minutes less than -6 on two cores, for a 10-20% larger file
                subprocess.run(["xz", "-c", "-1", "-T0", raw], stdout=out, check=True)
            os.unlink(raw)
            h = hashlib.sha512()
            with open(xz, "rb") as f:
                for chunk in iter(lambda: f.read(MiB), b""):
                    h.update(chunk)
            seconds = round(time.monotonic() - started, 1)
            with open(os.path.join(work, "index"), "w") as f:
                f.write(f"[{TEMPLATE}]\n"
                        "name=Debian 12 (labvirt test kit, cloud-init)\n"
                        "osinfo=debian12\n"
                        f"arch={platform.machine()}\n"
                        f"file={TEMPLATE}.xz\n"
                        f"checksum[sha512]={h.hexdigest()}\n"
                        "format=raw\n"
                        f"size={size}\n"
                        f"compressed_size={os.path.getsize(xz)}\n"
                        "expand=/dev/sda1\n"
                        "revision=1\n"
                        f"notes=Built from Debian packages by tests/support/debian_guest.py in {seconds} s.\n"
                        f" Boot with root=LABEL={LABEL}.\n")
            _run(["virt-index-validate", os.path.join(work, "index")])
            for name in os.listdir(work):
                os.chmod(os.path.join(work, name), 0o644)
            os.chmod(work, 0o755)
            os.rename(work, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if log:
        log(f"virt-builder repository built in {time.monotonic() - started:.0f} s")
    return _repo_meta(final, cached=False, seconds=round(time.monotonic() - started, 1))


def _repo_meta(directory: str, cached: bool, seconds: float = 0.0) -> VirtBuilderRepo:
    size = 0
    with open(os.path.join(directory, "index")) as f:
        for line in f:
            if line.startswith("size="):
                size = int(line.split("=", 1)[1])
    return VirtBuilderRepo(directory, TEMPLATE, size, seconds, cached)


if __name__ == "__main__":     # build (or find) the kit and the repository; print where they are
    import sys

    t0 = time.monotonic()
    k = debian_kit(log=lambda m: print(m, file=sys.stderr, flush=True))
    t1 = time.monotonic()
    print(json.dumps({"directory": k.directory, "cached": k.cached, "seconds": round(t1 - t0, 2),
                      "kernels": k.kernels}, indent=1))
    if "--repo" in sys.argv:
        r = debian_repo(k, log=lambda m: print(m, file=sys.stderr, flush=True))
        print(json.dumps({"repo": r.index, "cached": r.cached, "seconds": round(time.monotonic() - t1, 2)}))
