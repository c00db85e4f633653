"""The external tools labvirt drives, found on PATH with their versions (argv lists, never a shell)."""

from __future__ import annotations

import re
import shutil
import subprocess

from labvirt.core.record import Record

# (tool, argv to print its version, Debian package, what labvirt uses it for)
TOOLS = (
    ("qemu-img", ("--version",), "qemu-utils", "creates the nodes' disk overlays"),
    ("virt-builder", ("--version",), "libguestfs-tools", "builds golden images from templates"),
)
_VERSION = re.compile(r"(\d+\.\d+(?:\.\d+)?)")


class Tool(Record):
    name: str
    package: str
    purpose: str
    path: str | None = None       # None: not on PATH
    version: str | None = None
    error: str | None = None      # it is there but did not answer


def probe_tools(which=shutil.which, run=subprocess.run, timeout: float = 20.0) -> tuple[Tool, ...]:
    found = []
    for name, args, package, purpose in TOOLS:
        path = which(name)
        if path is None:
            found.append(Tool(name, package, purpose))
            continue
        try:
            done = run([path, *args], capture_output=True, text=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            found.append(Tool(name, package, purpose, path, error=str(e)))
            continue
        first = (done.stdout or done.stderr).strip().splitlines()[:1]
        m = _VERSION.search(first[0]) if first else None
        if done.returncode != 0 or m is None:
            found.append(Tool(name, package, purpose, path, error=(first[0] if first else f"exit {done.returncode}")))
        else:
            found.append(Tool(name, package, purpose, path, m.group(1)))
    return tuple(found)
