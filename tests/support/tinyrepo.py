"""A tiny local virt-builder template repository, made offline for tests.

The template is a partitioned raw disk (one ext4 partition, so virt-builder's --size can grow it)
holding a busybox root tree that libguestfs inspects as Debian: enough for --hostname,
--root-password, --write and --run-command. virt-builder grows the filesystem (virt-resize
--expand) only when --size is at least 256 MiB above the template's size; a smaller increase only
grows the disk container. Built without loop devices: sfdisk on a raw file, then
`mke2fs -d ROOT -E offset=1MiB`. xz-compressed, listed in an `index` checked with
virt-index-validate. Cached under /tmp between runs (the key covers this file and busybox).

    repo = make_tiny_repo()
    virt-builder tiny --source file://{repo.index} --no-network --no-check-signature ...
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

MiB = 1024**2
TEMPLATE = "tiny"
TOOLS = ("busybox", "sfdisk", "mke2fs", "xz", "virt-index-validate")
ETC = {
    "os-release": 'NAME="labvirt tiny"\nID=debian\nVERSION_ID="12"\nPRETTY_NAME="labvirt tiny test template"\n',
    "debian_version": "12.0\n",
    "fstab": "/dev/sda1 / ext4 defaults 0 1\n",
    "hostname": "tiny\n",
    "hosts": "127.0.0.1 localhost\n127.0.1.1 tiny\n",
    "passwd": "root:x:0:0:root:/root:/bin/sh\n",
    "shadow": "root:*:19000:0:99999:7:::\n",
    "group": "root:x:0:\nshadow:x:42:\n",
}


@dataclass(frozen=True)
class TinyRepo:
    directory: str     # holds `index` and the compressed template
    template: str      # the name to give virt-builder
    size: int          # virtual size of the template disk, bytes

    @property
    def index(self) -> str:
        return os.path.join(self.directory, "index")

    @property
    def uri(self) -> str:
        return "file://" + self.index


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


def _run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    kw.setdefault("stdout", subprocess.PIPE)
    result = subprocess.run(argv, stderr=subprocess.PIPE, **kw)
    if result.returncode != 0:
        err = result.stderr.decode(errors="replace") if isinstance(result.stderr, bytes) else result.stderr
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {err.strip()}")
    return result


def _root_tree(root: str) -> None:
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "run", "root",
              "var/lib", "var/log", "var/tmp", "home"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    os.chmod(os.path.join(root, "root"), 0o700)
    shutil.copy2(shutil.which("busybox"), os.path.join(root, "bin", "busybox"))
    applets = _run([os.path.join(root, "bin", "busybox"), "--list"], text=True).stdout.split()
    for applet in applets:
        link = os.path.join(root, "bin", applet)
        if applet != "busybox" and not os.path.lexists(link):
            os.symlink("busybox", link)
    for name, text in ETC.items():
        path = os.path.join(root, "etc", name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o640 if name == "shadow" else 0o644)


def _build(directory: str, size: int) -> None:
    root = os.path.join(directory, "root")
    raw = os.path.join(directory, f"{TEMPLATE}.raw")
    _root_tree(root)
    with open(raw, "wb") as f:
        f.truncate(size)
    _run(["sfdisk", "--quiet", raw], input=b"label: dos\nstart=2048, type=83\n")
    _run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "root", "-d", root, "-E", f"offset={MiB}",
          raw, f"{(size - MiB) // 1024}k"])
    xz = os.path.join(directory, f"{TEMPLATE}.xz")
    with open(xz, "wb") as out:
        _run(["xz", "-c", "-6", raw], stdout=out)
    with open(xz, "rb") as f:
        checksum = hashlib.sha512(f.read()).hexdigest()
    os.unlink(raw)
    shutil.rmtree(root)
    index = os.path.join(directory, "index")
    with open(index, "w") as f:
        f.write(f"[{TEMPLATE}]\n"
                "name=labvirt tiny test template (busybox)\n"
                f"arch={platform.machine()}\n"
                f"file={TEMPLATE}.xz\n"
                f"checksum[sha512]={checksum}\n"
                "format=raw\n"
                f"size={size}\n"
                f"compressed_size={os.path.getsize(xz)}\n"
                "expand=/dev/sda1\n"
                "revision=1\n"
                "notes=A busybox root tree that libguestfs inspects as Debian. For tests only.\n")
    _run(["virt-index-validate", index])


def _cache_key(size: int) -> str:
    h = hashlib.sha256()
    with open(__file__, "rb") as f:
        h.update(f.read())
    st = os.stat(shutil.which("busybox") or "/")
    h.update(f"{size}/{st.st_size}/{st.st_mtime_ns}".encode())
    return h.hexdigest()[:12]


def make_tiny_repo(directory: str | None = None, size: int = 64 * MiB) -> TinyRepo:
    """Build (or reuse from the /tmp cache) the tiny repository; `directory` forces a fresh build there."""
    missing = missing_tools()
    if missing:
        raise RuntimeError(f"tiny template repository needs {', '.join(missing)} "
                           "(apt-get install busybox-static fdisk e2fsprogs xz-utils libguestfs-tools)")
    if directory is not None:
        os.makedirs(directory, exist_ok=True)
        _build(directory, size)
        return TinyRepo(os.path.abspath(directory), TEMPLATE, size)
    cached = os.path.join(tempfile.gettempdir(), f"labvirt-tinyrepo-{_cache_key(size)}")
    if not os.path.exists(os.path.join(cached, "index")):
        work = tempfile.mkdtemp(prefix="labvirt-tinyrepo-build-", dir=tempfile.gettempdir())
        try:
            _build(work, size)
            os.chmod(work, 0o755)
            try:
                os.rename(work, cached)          # atomic: a parallel build that won keeps its copy
            except OSError:
                pass
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return TinyRepo(cached, TEMPLATE, size)
