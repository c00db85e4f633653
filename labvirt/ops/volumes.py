"""Volumes that are made in more than one step (create, then upload or customize): all or nothing."""

from __future__ import annotations

import contextlib

from labvirt.core.errors import LabvirtError


@contextlib.contextmanager
def removed_on_failure(driver, pool: str, name: str):
    """Run the block that fills a new volume; if it fails (Ctrl-C included), delete the half-made
    volume so a re-run makes it anew. The block's own error is the one raised."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(LabvirtError):
            driver.delete_volume(pool, name)
        raise
