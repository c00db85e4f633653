"""A lab of real Debian guests (tests/support/debian_guest.py's kit), driven only through labvirt's CLI.

    kit = require_kit()                                    # skips (fails in CI) when it cannot be built
    lab = write_debian_lab(directory, name, kit, {"alpha": DebianNode("10.232.61.11", "cloud", "controller")},
                           subnet="10.232.61.0/24", domain="lvg.test")
    r = labvirt_in_netns(lab, state, "up", "--wait")       # inside the daemon's namespace: its ssh reaches the guests
    r = guest_ssh(lab, state, "alpha", ["hostname"])       # `labvirt ssh alpha -- hostname`

Each node boots one of Debian's kernels directly (its [boot] table) from a qcow2 overlay of the kit's
disk, reads labvirt's NoCloud seed with real cloud-init, and sits on one NAT network ("lan") with a
static address. The libvirtd runs in a private network namespace (scripts/libvirtd-up); the default
route and DNS go through the network's gateway, and nothing can leave the namespace.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import pytest

from ..conftest import ROOT, run_cli, write_lab
from . import netns as ns
from .debian_guest import DebianKit, KitUnavailable, VirtBuilderRepo, debian_kit, debian_repo

URI = "qemu:///system"


@dataclass(frozen=True)
class DebianNode:
    address: str               # static, on the lab's network "lan"
    kernel: str = "cloud"      # "cloud" or "generic"
    role: str = "generic"
    memory: str = "768MiB"
    disk: str = "4GiB"
    image: str | None = None   # an image recipe of the lab (no seed); default: the kit's disk with a seed


def require_kit() -> DebianKit:
    """The Debian kit; the test skips when it cannot be built here (and fails in CI, which must build it)."""
    try:
        return debian_kit()
    except KitUnavailable as e:
        _unavailable(e)


def require_repo() -> VirtBuilderRepo:
    """The kit as a local virt-builder repository; skips (fails in CI) as require_kit."""
    kit = require_kit()
    try:
        return debian_repo(kit)
    except KitUnavailable as e:
        _unavailable(e)


def _unavailable(e: Exception):
    if os.environ.get("CI"):
        pytest.fail(f"CI must build the Debian guest kit: {e}")
    pytest.skip(f"cannot build the Debian guest kit here: {e}")


def write_debian_lab(directory, name: str, kit: DebianKit, nodes: dict[str, DebianNode], subnet: str,
                     pool_dir: str, domain: str | None = None, lab_extra: str = "",
                     images: dict[str, str] | None = None) -> str:
    """The lab directory: one NAT network "lan" (`subnet`, optional DNS `domain`), the nodes on it,
    image recipes `images` (name -> TOML) for nodes that name one."""
    files = {}
    for node, n in nodes.items():
        boot = kit.boot(n.kernel)
        disk = f'image = "{n.image}"' if n.image else f'base_image = "{kit.disk}"\n            seed = true'
        files[node] = f'''
            role = "{n.role}"
            vcpus = 1
            memory = "{n.memory}"
            disk = "{n.disk}"
            {disk}
            [boot]
            kernel = "{boot['kernel']}"
            initrd = "{boot['initrd']}"
            cmdline = "{boot['cmdline']}"
            [[nic]]
            network = "lan"
            address = "{n.address}"
            '''
    lan = f'mode = "nat"\nsubnet = "{subnet}"\n' + (f'domain = "{domain}"\n' if domain else "")
    return write_lab(directory, name, networks={"lan": lan}, nodes=files, images=images,
                     lab_extra=f'domain_type = "qemu"\n[storage]\npool_dir = "{pool_dir}"\n{lab_extra}')


def labvirt_in_netns(lab, state, *args, command=(), timeout=120) -> subprocess.CompletedProcess:
    """`python -m labvirt ARGS` inside the daemon's network namespace, so its ssh reaches the guests.

    start_new_session: no controlling terminal, so an ssh that would prompt fails at once instead of
    waiting on a terminal. A timeout gives exit 124 (with what was printed), not an exception.
    """
    env = dict(os.environ, LABVIRT_STATE_DIR=state, PYTHONPATH=ROOT)
    argv = ns.in_netns([sys.executable, "-m", "labvirt", *args, "-C", lab, "-c", URI,
                        *(["--", *command] if command else [])])
    try:
        return subprocess.run(argv, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
                              timeout=timeout, start_new_session=True)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(argv, 124, e.stdout or "", f"timed out after {timeout} s")


def guest_ssh(lab, state, node, command, timeout=60, student=None) -> subprocess.CompletedProcess:
    """`labvirt ssh NODE [--student S] -- CMD`: everything after `--` is the remote command."""
    who = ("--student", student) if student else ()
    return labvirt_in_netns(lab, state, "ssh", node, *who, command=command, timeout=timeout)


def cli(lab, state, *args) -> subprocess.CompletedProcess:
    """labvirt outside the namespace (libvirt's socket is a file: reachable from anywhere)."""
    return run_cli(*args, "-C", lab, "-c", URI, env={"LABVIRT_STATE_DIR": state})


def destroy_and_look(lab, state, prefix: str):
    """`labvirt destroy`, then what the daemon still holds of PREFIX: (result, (domains, networks, pool))."""
    import libvirt

    r = cli(lab, state, "destroy")
    conn = libvirt.open(URI)
    try:
        return r, lab_objects(conn, prefix)
    finally:
        conn.close()


def lab_objects(conn, prefix: str) -> tuple[list, list, list]:
    """Domains and networks named PREFIX-..., and the pool labvirt-PREFIX (a lab's, or a student's copy's)."""
    doms = [d.name() for d in conn.listAllDomains() if d.name().startswith(f"{prefix}-")]
    nets = [n.name() for n in conn.listAllNetworks() if n.name().startswith(f"{prefix}-")]
    pools = [p.name() for p in conn.listAllStoragePools() if p.name() == f"labvirt-{prefix}"]
    return doms, nets, pools
