"""A real Debian 12 guest WITHOUT cloud-init gets its identity from virt-customize, driven only through labvirt.

The recipe takes the Debian kit's disk (tests/support/debian_guest.py) as its `source_file`, purges
cloud-init while the golden image is built (`run`, offline: dpkg), and says `identity =
"virt-customize"`: the node has no seed, and labvirt writes hostname, /etc/hosts, the NIC (the
guest's own stack: ifupdown here), root's key, the root password and the node's host key into its
new overlay before the first boot. The node boots Debian's cloud kernel directly (its [boot] table),
on a NAT network labvirt owns, with a static address. `up --wait` (inside the daemon's namespace)
must not wait for cloud-init on a node without a seed. Then, over `labvirt ssh` (strict host keys,
labvirt's own known_hosts): the identity; and destroy leaves nothing. One node: software emulation on
two shared cores.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time

import pytest

from .conftest import run_cli
from .support import netns as ns
from .support.debian_lab import (DebianNode, cli, destroy_and_look, guest_ssh, lab_objects, labvirt_in_netns,
                                 require_kit, write_debian_lab)

pytestmark = [pytest.mark.daemon, pytest.mark.slow]

SUBNET = "10.233.41"
NODE = "gamma"
ADDRESS = f"{SUBNET}.21"
BOOT_TO_SSH = 480          # seconds: up --wait's bound once the overlay exists (software emulation)


@pytest.fixture(scope="module")
def nocloud(tmp_path_factory, netns, daemon):
    """The lab, up and reachable: {lab, state, name, recipe, pool_dir, bridge, mac, up_seconds}."""
    if shutil.which("virt-customize") is None:
        pytest.skip("virt-customize is not installed (apt-get install libguestfs-tools)")
    kit = require_kit()
    base = tmp_path_factory.mktemp("nocloud-lab")
    state, pool_dir = str(base / "state"), str(base / "pool")
    name = "lvc" + os.urandom(3).hex()
    recipe = f"{name}-nocloud"                   # golden images are shared by labs: a name of its own
    image = f'''
        source_file = "{kit.disk}"
        size = "4GiB"
        identity = "virt-customize"
        run = ["dpkg --purge cloud-init"]
        '''
    lab = write_debian_lab(base / "lab", name, kit, {NODE: DebianNode(ADDRESS, image=recipe)}, f"{SUBNET}.0/24",
                           pool_dir, images={recipe: image})
    import libvirt

    info = {"lab": lab, "state": state, "name": name, "recipe": recipe, "pool_dir": pool_dir}
    try:
        started = time.monotonic()
        # builds the golden image, creates and customizes the overlay, starts the node, waits for ssh
        r = labvirt_in_netns(lab, state, "up", "--wait", "--timeout", str(BOOT_TO_SSH), timeout=BOOT_TO_SSH + 600)
        info["up_seconds"] = time.monotonic() - started
        if r.returncode != 0:
            tail = cli(lab, state, "console", NODE, "--tail", "60").stdout[-3000:]
            pytest.fail(f"up --wait failed ({r.returncode}): {r.stderr[-3000:]}\nconsole: {tail}")
        assert f"{NODE} ready after" in r.stderr, r.stderr
        info["ready"] = r.stderr.split(f"{NODE} ready after ")[1].split("s")[0]
        conn = libvirt.open("qemu:///system")
        try:
            info["bridge"] = conn.networkLookupByName(f"{name}-lan").bridgeName()
        finally:
            conn.close()
        r = cli(lab, state, "ip", NODE, "--json")
        assert r.returncode == 0, r.stderr
        info["mac"] = json.loads(r.stdout)["nodes"][0]["nics"][0]["mac"]
        print(f"\nno-cloud-init guest: up --wait {info['up_seconds']:.1f} s (image build, customize, boot), "
              f"ssh after {info['ready']} s", file=sys.stderr)
        yield info
    finally:
        r, left = destroy_and_look(lab, state, name)
        removed = cli(lab, state, "image", "remove", recipe)      # done already when the last test ran
        assert r.returncode == 0, r.stderr
        assert removed.returncode == 0 or "no golden image" in removed.stderr, removed.stderr
        assert left == ([], [], []), f"destroy left {left}"


def _ssh(info, *command, timeout=60):
    r = guest_ssh(info["lab"], info["state"], NODE, list(command), timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_the_node_has_neither_cloud_init_nor_a_seed(nocloud):
    out = _ssh(nocloud, "dpkg-query -W -f='${Status}' cloud-init 2>/dev/null || echo absent; "
                        "test -e /run/cloud-init && echo ran || echo never-ran")
    assert "install ok installed" not in out and "never-ran" in out, out
    assert not [f for f in os.listdir(os.path.join(nocloud["pool_dir"], nocloud["name"])) if "seed" in f]


def test_hostname_address_route_hosts_and_resolver(nocloud):
    assert _ssh(nocloud, "hostname").strip() == NODE
    assert f" {ADDRESS}/24 " in _ssh(nocloud, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
    assert _ssh(nocloud, "cat", "/sys/class/net/eth0/address").strip() == nocloud["mac"]
    assert f"default via {SUBNET}.1 dev eth0" in _ssh(nocloud, "ip", "-4", "route", "show", "default")
    hosts = _ssh(nocloud, "cat", "/etc/hosts")
    assert re.search(rf"^{re.escape(ADDRESS)}\s+{NODE}$", hosts, re.M), hosts
    assert f"nameserver {SUBNET}.1" in _ssh(nocloud, "cat", "/etc/resolv.conf")
    # the stack the guest has (ifupdown), written by labvirt, and nothing else configures eth0
    assert f"address {ADDRESS}" in _ssh(nocloud, "cat", "/etc/network/interfaces.d/labvirt")


def test_ssh_with_strict_host_keys_and_the_nodes_own_key(nocloud):
    """labvirt ssh checks strictly against the lab's known_hosts (no prompt: no terminal, batch mode):
    the guest presents the host key labvirt made for it, owned by root, 0600."""
    r = guest_ssh(nocloud["lab"], nocloud["state"], NODE, ["stat", "-c", "%a:%U", "/etc/ssh/ssh_host_ed25519_key"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "600:root"
    assert "Permanently added" not in r.stderr and "authenticity" not in r.stderr, r.stderr
    with open(os.path.join(nocloud["state"], "labs", nocloud["name"], "_lab", "host-keys", f"{NODE}_ed25519.pub")) as f:
        mine = f.read().split()[:2]
    assert _ssh(nocloud, "cat", "/etc/ssh/ssh_host_ed25519_key.pub").split()[:2] == mine


def test_the_root_password_is_the_labs(nocloud):
    """The lab copy's root password (virt-customize read it from its 0600 file), as a SHA-512 hash."""
    from labvirt.core.crypt import sha512_crypt

    r = run_cli("password", "-C", nocloud["lab"], env={"LABVIRT_STATE_DIR": nocloud["state"]})
    assert r.returncode == 0, r.stderr
    shadow = _ssh(nocloud, "grep", "^root:", "/etc/shadow")
    hashed = shadow.split(":")[1]
    assert hashed.startswith("$6$"), shadow[:12]
    salt = hashed.split("$")[2]
    assert sha512_crypt(r.stdout.strip(), salt) == hashed


def test_destroy_leaves_nothing(nocloud):
    """Runs last: destroy and `image remove` through the CLI, then look for every kind of leftover. (The
    golden-image pool is shared by every lab on the host: only this recipe's image must be gone.)"""
    import libvirt

    r = cli(nocloud["lab"], nocloud["state"], "destroy")
    assert r.returncode == 0, r.stderr
    r = cli(nocloud["lab"], nocloud["state"], "image", "remove", nocloud["recipe"])
    assert r.returncode == 0, r.stderr
    conn = libvirt.open("qemu:///system")
    try:
        doms, nets, pools = lab_objects(conn, nocloud["name"])
        vols = [v.name() for p in conn.listAllStoragePools() for v in (p.listAllVolumes() if p.isActive() else [])
                if v.name().startswith(nocloud["recipe"]) or
                (p.name() != "labvirt-images" and v.path().startswith(nocloud["pool_dir"]))]
    finally:
        conn.close()
    assert (doms, nets, pools, vols) == ([], [], [], [])
    assert nocloud["bridge"] not in ns.links("bridge")
    procs = [ns.cmdline(p) for p in ns.pids()]
    assert [c for c in procs if f"guest={nocloud['name']}-" in c] == []
    assert [c for c in procs if "dnsmasq" in c and f"/{nocloud['name']}-" in c] == []
    leftover = os.listdir(nocloud["pool_dir"]) if os.path.exists(nocloud["pool_dir"]) else []
    assert leftover in ([], ["_images"]), leftover        # _images: the shared image pool, if it was made here
