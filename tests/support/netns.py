"""The private network namespace the test libvirtd runs in (scripts/libvirtd-up).

The namespace has only a loopback: the daemon's bridges, dnsmasq and the guests' taps live in it,
with no uplink. libvirt's unix socket is a file, so qemu:///system works from any namespace, but
anything that talks IP to a guest (ssh, ping, ansible) must run inside:

    run_in_netns(["ssh", ...])           # = ip netns exec labvirt-test ssh ...
"""

from __future__ import annotations

import json
import os
import subprocess

NETNS = os.environ.get("LABVIRT_NETNS", "labvirt-test")
LIBVIRTD_PID = "/var/run/libvirtd.pid"


def _ns_inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def daemon_pid() -> int | None:
    try:
        with open(LIBVIRTD_PID) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def daemon_netns() -> str | None:
    """NETNS when the running libvirtd is inside it, else None (not running, or outside)."""
    pid = daemon_pid()
    want = _ns_inode(f"/run/netns/{NETNS}")
    if pid is None or want is None:
        return None
    return NETNS if _ns_inode(f"/proc/{pid}/ns/net") == want else None


def in_netns(argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", NETNS, *argv]


def run_in_netns(argv: list[str], timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(in_netns(argv), timeout=timeout, **kw)


def links(kind: str | None = None) -> list[str]:
    """Link names inside the namespace (`kind`: e.g. "bridge", "tun")."""
    argv = ["ip", "-n", NETNS, "-j", "link", "show"] + (["type", kind] if kind else [])
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        return []
    return [link["ifname"] for link in json.loads(r.stdout or "[]")]


def pids() -> set[int]:
    """Processes in the namespace (libvirtd, virtlogd, dnsmasq, QEMU, ...)."""
    r = subprocess.run(["ip", "netns", "pids", NETNS], capture_output=True, text=True)
    return {int(p) for p in r.stdout.split()} if r.returncode == 0 else set()


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def socket_in_netns(family: int, kind: int, proto: int = 0, netns: str = NETNS):
    """A socket created inside the namespace (e.g. AF_PACKET on a bridge that only exists there).

    setns(2) changes only the calling thread's namespace, so a short-lived thread enters the
    namespace, creates the socket and ends; the socket stays in the namespace it was made in.
    """
    import ctypes
    import socket
    import threading

    libc = ctypes.CDLL(None, use_errno=True)
    result: dict = {}

    def make() -> None:
        try:
            with open(f"/run/netns/{netns}") as f:
                if libc.setns(f.fileno(), 0x40000000) != 0:        # CLONE_NEWNET
                    raise OSError(ctypes.get_errno(), f"setns into {netns} failed")
            result["sock"] = socket.socket(family, kind, proto)
        except BaseException as e:                              # re-raised in the caller
            result["error"] = e

    t = threading.Thread(target=make, name=f"setns-{netns}")
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result["sock"]
