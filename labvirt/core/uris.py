"""What a libvirt URI says about where the host is. Pure."""

from __future__ import annotations

from urllib.parse import urlparse

from labvirt.core.errors import LabvirtError


def parse_sim_uri(uri: str) -> str | None:
    """'sim' -> 'default', 'sim:///NAME' -> 'NAME' (the built-in simulator's host); None when `uri`
    is not a simulator URI. Here, not in the simulator, so that a libvirt URI never imports it."""
    if uri == "sim":
        return "default"
    if uri.startswith("sim:"):
        name = uri[4:].lstrip("/") or "default"
        if not name.replace("-", "").replace("_", "").isalnum():
            raise LabvirtError(f"simulator name {name!r} is not allowed: letters, digits, '-' and '_'")
        return name
    return None


def is_local(uri: str) -> bool:
    """qemu:///system and friends: the libvirt host is this machine (its files are ours to read)."""
    u = urlparse(uri)
    return not u.hostname and "+" not in (u.scheme or "")


def jump_host(uri: str) -> str | None:
    """For qemu+ssh://user@host/system: nodes sit on that host's bridges, so ssh jumps through it."""
    u = urlparse(uri)
    if not u.hostname or not (u.scheme or "").endswith("+ssh"):
        return None
    return f"{u.username}@{u.hostname}" if u.username else u.hostname
