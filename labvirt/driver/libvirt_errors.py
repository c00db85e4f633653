"""libvirt's errors as labvirt's: "not found" codes -> NotFoundError, unsupported -> UnsupportedError,
everything else -> DriverError carrying libvirt's own message, in one line."""

from __future__ import annotations

import contextlib
import re

import libvirt

from labvirt.core.errors import DriverError, NotFoundError, UnsupportedError

libvirt.registerErrorHandler(lambda *_: None, None)

_NOT_FOUND = {libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_NO_NETWORK, libvirt.VIR_ERR_NO_STORAGE_POOL,
              libvirt.VIR_ERR_NO_STORAGE_VOL, libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT}
_UNSUPPORTED = {libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED}


@contextlib.contextmanager
def libvirt_errors(what: str):
    """Map libvirt errors raised inside the block to labvirt's, naming what was being done."""
    try:
        yield
    except libvirt.libvirtError as e:
        code = e.get_error_code()
        msg = one_line(e.get_error_message() or str(e))
        if code in _NOT_FOUND:
            raise NotFoundError(f"{what}: {msg}") from None
        if code in _UNSUPPORTED:
            raise UnsupportedError(f"{what}: not supported by this libvirt host ({msg})") from None
        raise DriverError(f"{what}: {msg}") from None


@contextlib.contextmanager
def vanishing():
    """Skip an object that another process removed while we were looking at it."""
    try:
        yield
    except libvirt.libvirtError as e:
        if e.get_error_code() not in _NOT_FOUND:
            raise


def one_line(msg: str) -> str:
    """libvirt passes QEMU's multi-line logs through: keep the first line and the last error line."""
    lines = [_TIMESTAMP.sub("", line).strip() for line in msg.strip().splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else ""
    head = lines[0].split(": ")[0:2]
    errors = [line for line in lines if "error" in line.lower()]
    return f"{': '.join(head)} ... {(errors or lines)[-1]}"


_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+Z\s*")
