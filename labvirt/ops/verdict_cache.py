"""The host verdict, remembered per host until something that decides it changes.

Deciding the verdict reads /proc/cpuinfo, the KVM modules, modprobe.d, the kernel command line and
/dev/kvm, and imports labvirt.host's checks: a fixed cost of every command that rarely changes its
answer. The answer is kept in labvirt's state directory (`host-verdict.json`) with the key it was
decided under, and decided again whenever the key differs:

- the boot (/proc/sys/kernel/random/boot_id: a reboot changes the CPU flags, the command line, ...),
- the libvirt version the command talks to,
- the loaded KVM modules and their `nested` parameter (/sys/module/kvm*/parameters/nested),
- /dev/kvm (present, its mode and owner, and whether this user may open it),
- the modprobe.d directories (their files' names, sizes and modification times),
- the user the command runs as.

A key that cannot be read (no boot_id: not Linux, a host tree without it) means no caching.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable

BOOT_ID = "/proc/sys/kernel/random/boot_id"
CACHE_FILE = "host-verdict.json"
VERSION = 1     # of the cached record: a different labvirt layout decides again


def _under(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(64 * 1024)
    except OSError:
        return None


def verdict_key(root: str = "/", libvirt_version: object = None) -> str | None:
    """What the verdict depends on, as one digest; None when this host has no boot id."""
    from labvirt.host.facts import MODPROBE_DIRS

    boot = _read(_under(root, BOOT_ID))
    if not boot:
        return None
    parts: list[str] = [f"v{VERSION}", boot.strip(), f"libvirt {libvirt_version}", f"uid {os.geteuid()}"]
    modules_dir = _under(root, "/sys/module")
    try:
        modules = sorted(m for m in os.listdir(modules_dir) if m.startswith("kvm"))
    except OSError:
        modules = []
    for module in modules:      # of their parameters the verdict reads `nested` (kvm_intel, kvm_amd)
        nested = _read(os.path.join(modules_dir, module, "parameters", "nested"))
        parts.append(f"module {module} nested={(nested or '-').strip()}")
    dev = _under(root, "/dev/kvm")
    try:
        st = os.stat(dev)
        parts.append(f"/dev/kvm {st.st_mode:o} {st.st_uid}:{st.st_gid} {st.st_rdev} "
                     f"{os.access(dev, os.R_OK | os.W_OK)}")
    except OSError:
        parts.append("/dev/kvm missing")
    for d in MODPROBE_DIRS:
        full = _under(root, d)
        try:
            names = sorted(os.listdir(full))
        except OSError:
            continue
        for name in names:
            try:
                st = os.stat(os.path.join(full, name))
            except OSError:
                continue
            parts.append(f"{d}/{name} {st.st_size} {st.st_mtime_ns}")
    parts.append(f"cmdline {(_read(_under(root, '/proc/cmdline')) or '').strip()}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def cached_verdict(decide: Callable[[], dict], key: str | None, path: str | None = None) -> dict:
    """decide()'s answer, from `path` when it was recorded under `key`; decided and recorded otherwise."""
    if key is None:
        return decide()
    if path is None:
        from labvirt.driver.state_files import state_home

        path = os.path.join(state_home(), CACHE_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        if isinstance(record, dict) and record.get("key") == key and isinstance(record.get("verdict"), dict):
            return record["verdict"]
    except (OSError, ValueError):
        pass            # missing or damaged: decide again and rewrite it
    verdict = decide()
    try:
        from labvirt.driver.state_files import write_atomic

        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        write_atomic(path, json.dumps({"key": key, "verdict": verdict}, indent=1).encode())
    except OSError:
        pass            # a read-only state directory only costs the next command the same work
    return verdict
