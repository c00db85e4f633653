"""Shared fixtures: isolated state dirs, small labs written on the fly, and a real libvirtd."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = {"standard": ROOT, "three-node": os.path.join(ROOT, "examples", "three-node"),
            "three-node-nat": os.path.join(ROOT, "examples", "three-node-nat")}


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    """Every test gets its own labvirt state (simulated hosts, locks, secrets)."""
    d = tmp_path / "state"
    monkeypatch.setenv("LABVIRT_STATE_DIR", str(d))
    monkeypatch.delenv("LIBVIRT_DEFAULT_URI", raising=False)
    return d


def write_lab(directory, name="t", networks=None, nodes=None, lab_extra="", images=None):
    """Write a lab directory. networks/nodes/images: {name: toml text}."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "lab.toml"), "w") as f:
        f.write(f'[lab]\nname = "{name}"\n' + textwrap.dedent(lab_extra))
    for sub, items in (("networks", networks), ("domains", nodes), ("images", images)):
        if items is None:
            continue
        os.makedirs(os.path.join(directory, sub), exist_ok=True)
        for key, text in items.items():
            with open(os.path.join(directory, sub, f"{key}.toml"), "w") as f:
                f.write(textwrap.dedent(text))
    return str(directory)


def small_lab(directory, name=None, subnet_a="10.250.1.0/24", subnet_b="10.250.2.0/24", pool_dir=None,
              memory="128MiB", boot=None, nodes=("alpha", "beta"), roles=None):
    """A lab that a real daemon starts in well under a second: isolated networks, tiny empty disks."""
    name = name or "lvt" + uuid.uuid4().hex[:6]
    pool = pool_dir or os.path.join(str(directory), "pool")
    a_net = subnet_a.rsplit(".", 1)[0]
    b_net = subnet_b.rsplit(".", 1)[0]
    node_files = {}
    for i, node in enumerate(nodes):
        role = (roles or {}).get(node, "generic")
        node_files[node] = f'''
            role = "{role}"
            vcpus = 1
            memory = "{memory}"
            disk = "64MiB"
            {boot or ""}
            [[nic]]
            network = "a"
            address = "{a_net}.{100 + i}"

            [[nic]]
            network = "b"
            address = "{b_net}.{100 + i}"
            '''
    return write_lab(
        os.path.join(str(directory), "lab"), name,
        networks={"a": f'mode = "isolated"\nsubnet = "{subnet_a}"\n', "b": f'mode = "isolated"\nsubnet = "{subnet_b}"\n'},
        nodes=node_files,
        lab_extra=f'domain_type = "qemu"\n[storage]\npool_dir = "{pool}"\n')


def _daemon_up() -> str | None:
    """Start libvirtd with scripts/libvirtd-up when we can; return why not, or None when it runs.

    As root, libvirtd-up always runs (idempotent): it starts the daemon inside the private network
    namespace (tests/support/netns.py), or moves an idle one there that runs outside.
    """
    if shutil.which("virsh") is None and os.geteuid() != 0:
        return "no libvirt client installed and not root"
    if os.geteuid() == 0:
        r = subprocess.run([os.path.join(ROOT, "scripts", "libvirtd-up")], capture_output=True, text=True)
        if r.returncode != 0:
            return f"scripts/libvirtd-up failed: {r.stderr.strip()[-300:]}"
    try:
        import libvirt

        libvirt.registerErrorHandler(lambda *a: None, None)
        libvirt.open("qemu:///system").close()
        return None
    except Exception as e:
        return f"libvirtd is not running and starting it needs root ({e})"


def _skip_or_fail(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the real-daemon tests: {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
def daemon():
    """qemu:///system on a real libvirtd. Skips with the reason, except in CI where it must work."""
    why = _daemon_up()
    if why is not None:
        _skip_or_fail(why)
    return "qemu:///system"


@pytest.fixture(scope="session")
def netns(daemon):
    """The network namespace the real libvirtd runs in (guests reachable only from inside it).

    Tests that talk IP to a guest (ssh) need it; they skip when the daemon runs outside one.
    """
    from .support.netns import NETNS, daemon_netns

    ns = daemon_netns()
    if ns is None:
        _skip_or_fail(f"libvirtd does not run in network namespace {NETNS} (scripts/libvirtd-up puts it there)")
    return ns


def run_cli(*args, env=None):
    """Run the labvirt CLI in a new process (state passes through the environment)."""
    import sys

    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "labvirt", *args], capture_output=True, text=True, env=e,
                          stdin=subprocess.DEVNULL, timeout=300)
