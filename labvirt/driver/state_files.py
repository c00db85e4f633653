"""Where labvirt keeps its own state on the machine it runs on (XDG conventions)."""

from __future__ import annotations

import os


def state_home() -> str:
    """$LABVIRT_STATE_DIR, else $XDG_STATE_HOME/labvirt, else ~/.local/state/labvirt."""
    if os.environ.get("LABVIRT_STATE_DIR"):
        return os.environ["LABVIRT_STATE_DIR"]
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "labvirt")


def lab_state_dir(lab: str, student: str = "", create: bool = True) -> str:
    """Per lab copy: secrets (0600), logs, generated keys. Created 0700."""
    path = os.path.join(state_home(), "labs", lab, student or "_lab")
    if create:
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)
    return path


def sim_dir(name: str) -> str:
    """One simulated libvirt host."""
    return os.path.join(state_home(), "sim", name)


def write_atomic(path: str, data: bytes) -> None:
    """Replace `path` with `data` so that readers see the old or the new file, never a mix."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_private(path: str, data: bytes | str) -> None:
    """Write a file readable by its owner only (0600 from the start: never world-readable, not even briefly)."""
    if isinstance(data, str):
        data = data.encode()
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
