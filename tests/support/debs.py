"""Debian packages for the test kits: fetched from the package registry with `apt-get download` and
unpacked with `dpkg -x` (never installed), and the cache directory the kits are kept in.

    tree, version = fetch_deb("cloud-init", workdir)        # WORKDIR/cloud-init, the package's files
    tree, _ = fetch_deb(package, workdir, version, unavailable=GuestKitUnavailable)
    root = writable_dir([explicit, os.environ.get(VAR), DEFAULT, fallback], unavailable=KitUnavailable)
"""

from __future__ import annotations

import os
import subprocess
from typing import NamedTuple


class DebUnavailable(RuntimeError):
    """apt-get or dpkg could not fetch or unpack a package."""


class Unpacked(NamedTuple):
    path: str         # the package's files, as dpkg -x left them
    version: str      # from the .deb's name (PACKAGE_VERSION_ARCH.deb)


def fetch_deb(package: str, workdir: str, version: str | None = None, unavailable: type[Exception] = DebUnavailable,
              timeout: float = 600) -> Unpacked:
    """apt-get download PACKAGE[=VERSION] into `workdir`, dpkg -x it to WORKDIR/PACKAGE; the .deb is
    removed. `unavailable`: the exception raised when apt or dpkg fails."""
    spec = f"{package}={version}" if version and version != "unknown" else package
    r = _run(["apt-get", "download", "-q", spec], workdir, unavailable, timeout)
    debs = [f for f in os.listdir(workdir) if f.startswith(package + "_") and f.endswith(".deb")]
    if r.returncode != 0 or not debs:
        raise unavailable(f"apt-get download {spec} failed: {(r.stderr or r.stdout).strip()[-300:]}")
    unpacked = os.path.join(workdir, package)
    r = _run(["dpkg", "-x", os.path.join(workdir, debs[0]), unpacked], workdir, unavailable, timeout)
    if r.returncode != 0:
        raise unavailable(f"dpkg -x {debs[0]} failed: {r.stderr.strip()[-300:]}")
    os.unlink(os.path.join(workdir, debs[0]))
    return Unpacked(unpacked, debs[0][len(package) + 1:].split("_")[0])


def writable_dir(candidates: list[str | None], unavailable: type[Exception] = DebUnavailable) -> str:
    """The first of `candidates` (None and "" skipped) that exists or can be made, and is writable."""
    for c in candidates:
        if not c:
            continue
        try:
            os.makedirs(c, mode=0o755, exist_ok=True)
        except OSError:
            continue
        if os.access(c, os.W_OK | os.X_OK):
            return os.path.abspath(c)
    raise unavailable(f"no writable cache directory among {[c for c in candidates if c]}")


def _run(argv: list[str], cwd: str, unavailable: type[Exception], timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise unavailable(f"{argv[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise unavailable(f"{' '.join(argv)} took more than {timeout:.0f} s") from None
