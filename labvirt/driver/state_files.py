"""Where labvirt keeps its own state on the machine it runs on (XDG conventions), and how it writes it.

Every state file is replaced atomically (`write_atomic`, `write_private`): readers see the old file
or the new one, never a mix, and a write that fails or is interrupted (an exception, Ctrl-C) removes
its temporary file. A process killed outright cannot clean up after itself; its temporary file is
removed by the next write of the same file. `pid_lock` is the one file lock: it records its
holder's PID so a second process can say who is busy.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator

from labvirt.core.errors import LockedError


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
    """Replace `path` with `data` (mode 0644) so that readers see the old or the new file, never a mix."""
    _replace(path, data, 0o644)


def write_private(path: str, data: bytes | str) -> None:
    """Write a file readable by its owner only (0600 from the start: never world-readable, not even briefly)."""
    if isinstance(data, str):
        data = data.encode()
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    _replace(path, data, 0o600)


def _replace(path: str, data: bytes, mode: int) -> None:
    """Write a temporary file beside `path` (`.NAME.PID.RANDOM.tmp`), sync it, rename it over `path`.
    On any exception, KeyboardInterrupt included, the temporary file is removed and `path` is untouched."""
    directory, name = os.path.split(path)
    directory = directory or "."
    _remove_stale_temporaries(directory, name)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            os.fchmod(fd, mode)          # exactly `mode`, whatever the umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _remove_stale_temporaries(directory: str, name: str) -> None:
    """Temporary files of `name` left by processes that no longer exist (killed while writing)."""
    pattern = re.compile(rf"^\.{re.escape(name)}\.(\d+)\.[0-9a-f]{{8}}\.tmp$")
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for entry in entries:
        m = pattern.match(entry)
        if m and not _alive(int(m.group(1))):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, entry))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True          # another thread of this process may be writing it right now
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True          # exists, belongs to another user
    return True


@contextlib.contextmanager
def pid_lock(path: str, busy: Callable[[str], str], wait: float = 0.0) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (flock), with this process's PID written in it.

    When another process holds it, wait up to `wait` seconds, then raise LockedError(busy(PID)) with
    the holder's PID ("?" when it has not written it yet). The kernel releases the lock when the holder
    exits, however it exits; the PID is cleared on release, so a stale PID is never reported.
    """
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                    raise LockedError(busy(holder)) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)      # closing releases the flock
