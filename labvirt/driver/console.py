"""Serial consoles through libvirt's stream API (works on remote URIs too).

libvirt delivers console data through its event loop: `prepare()` must run before the connection
is opened (it registers the default event implementation and runs it on a daemon thread).
"""

from __future__ import annotations

import os
import sys
import threading
import time

import libvirt

from labvirt.driver.libvirt_errors import libvirt_errors
from labvirt.core.errors import LabvirtError

ESCAPE = b"\x1d"          # Ctrl+]
_started = False


def prepare() -> None:
    global _started
    if _started:
        return
    libvirt.virEventRegisterDefaultImpl()

    def loop():
        while True:
            libvirt.virEventRunDefaultImpl()

    threading.Thread(target=loop, name="libvirt-events", daemon=True).start()
    _started = True


class Console:
    """One open console stream; received bytes go to `on_data`."""

    def __init__(self, conn, domain: str, on_data, force: bool = False):
        if not _started:
            raise LabvirtError("internal: console.prepare() must run before the libvirt connection is opened")
        self.closed = threading.Event()
        self.error: str | None = None
        with libvirt_errors(f"console of {domain}"):
            dom = conn.lookupByName(domain)
            if not dom.isActive():
                raise LabvirtError(f"{domain} is not running: no console to attach to")
            self.stream = conn.newStream(libvirt.VIR_STREAM_NONBLOCK)
            dom.openConsole(None, self.stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE if force else 0)
        self.on_data = on_data
        self.stream.eventAddCallback(libvirt.VIR_STREAM_EVENT_READABLE | libvirt.VIR_STREAM_EVENT_ERROR
                                     | libvirt.VIR_STREAM_EVENT_HANGUP, self._readable, None)

    def _readable(self, stream, events, _opaque):
        if events & (libvirt.VIR_STREAM_EVENT_ERROR | libvirt.VIR_STREAM_EVENT_HANGUP):
            self.closed.set()
            return
        try:
            data = stream.recv(65536)
        except libvirt.libvirtError as e:
            self.error = str(e)
            self.closed.set()
            return
        if data == -2:          # would block
            return
        if not data:
            self.closed.set()
            return
        self.on_data(data)

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + 5
        while view:
            sent = self.stream.send(bytes(view))
            if sent == -2:
                if time.monotonic() > deadline:
                    raise LabvirtError("console is not accepting input")
                time.sleep(0.01)
                continue
            view = view[sent:]

    def close(self) -> None:
        try:
            self.stream.eventRemoveCallback()
            self.stream.finish()
        except libvirt.libvirtError:
            pass


def capture(conn, domain: str, seconds: float, send: list[str] = (), until: str | None = None) -> bytes:
    """Console output for `seconds` (or until `until` appears), after typing the `send` lines."""
    buf = bytearray()
    lock = threading.Lock()

    def on_data(data):
        with lock:
            buf.extend(data)

    con = Console(conn, domain, on_data, force=True)
    try:
        for line in send:
            con.send(line.encode() + b"\r")
            time.sleep(0.3)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not con.closed.is_set():
            with lock:
                if until is not None and until.encode() in buf:
                    break
            time.sleep(0.05)
    finally:
        con.close()
    return bytes(buf)


def interactive(conn, domain: str) -> None:
    """Attach stdin/stdout to the console; Ctrl+] leaves, as in virsh console."""
    import termios
    import tty

    if not sys.stdin.isatty():
        raise LabvirtError("the interactive console needs a terminal; use --tail N or --capture SECONDS")
    out = sys.stdout.buffer
    con = Console(conn, domain, lambda d: (out.write(d), out.flush()), force=False)
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    sys.stderr.write(f"Connected to {domain}. Escape character is ^] (Ctrl+])\r\n")
    try:
        tty.setraw(fd)
        while not con.closed.is_set():
            data = os.read(fd, 1024)
            if not data or ESCAPE in data:
                break
            con.send(data)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        con.close()
        sys.stderr.write("\n")


def tail(path: str, lines: int) -> str:
    """The last `lines` lines of a serial log on this machine."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            text = f.read().decode(errors="replace")
    except FileNotFoundError:
        raise LabvirtError(f"no console log at {path} yet (the node has printed nothing since it was defined)") from None
    except PermissionError:
        raise LabvirtError(f"cannot read {path}: run as root or use --capture SECONDS") from None
    return "\n".join(text.replace("\r", "").splitlines()[-lines:])
