"""Golden images on a real daemon: built once by virt-builder from a tiny local repository, reused,
the nodes' disks are thin qcow2 overlays backed by it, and it cannot be removed while in use."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import libvirt
import pytest

from .conftest import run_cli, small_lab
from .support.tinyrepo import make_tiny_repo

pytestmark = [pytest.mark.daemon, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("virt-builder") is None,
                                 reason="virt-builder not installed (apt-get install libguestfs-tools)")]


def image_pool_volumes(uri):
    """The image pool's volumes; None without the pool; [] while it is stopped (a run whose pytest
    directory was since removed leaves it so after a daemon restart: labvirt starts it again)."""
    conn = libvirt.open(uri)
    try:
        try:
            pool = conn.storagePoolLookupByName("labvirt-images")
        except libvirt.libvirtError:
            return None
        if not pool.isActive():
            return []
        return sorted(v.name() for v in pool.listAllVolumes())
    finally:
        conn.close()


def test_golden_image_built_once_and_reused_by_overlays(tmp_path, daemon):
    if image_pool_volumes(daemon):
        pytest.skip("this daemon already holds golden images of someone else's; not touching them")
    repo = make_tiny_repo()
    lab = small_lab(tmp_path, subnet_a="10.251.240.0/24", subnet_b="10.252.240.0/24",
                    boot='image = "tiny"\n')
    os.makedirs(os.path.join(lab, "images"))
    with open(os.path.join(lab, "images", "tiny.toml"), "w") as f:
        f.write(f'template = "{repo.template}"\nrepository = "{repo.directory}"\nsize = "{repo.size // 2**20}MiB"\n'
                'root_password = "random"\n')
    try:
        r = run_cli("image", "build", "-C", lab, "-c", daemon)
        assert r.returncode == 0, r.stderr
        assert "image tiny: built" in r.stderr
        r = run_cli("image", "build", "-C", lab, "-c", daemon)
        assert "image tiny: up to date" in r.stderr             # an unchanged recipe is not rebuilt
        (golden,) = image_pool_volumes(daemon)

        r = run_cli("up", "--no-build", "-C", lab, "-c", daemon)
        assert r.returncode == 0, r.stderr
        name = open(os.path.join(lab, "lab.toml")).read().split('"')[1]
        disk = os.path.join(os.path.dirname(lab), "pool", name, "alpha.qcow2")
        info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", disk], check=True,
                                         capture_output=True, text=True).stdout)
        assert info["format"] == "qcow2" and info["backing-filename"].endswith("/" + golden)
        assert info["backing-filename-format"] == "qcow2"
        assert info["actual-size"] < 2 * 2**20                 # an overlay: megabytes at most

        listing = json.loads(run_cli("image", "list", "--json", "-C", lab, "-c", daemon).stdout)
        assert listing[0]["volume"] == golden and f"labvirt-{name}/alpha.qcow2" in listing[0]["used_by"]
        assert listing[0]["built"] and listing[0]["current"] and 0 < listing[0]["size_on_disk"] < listing[0]["virtual_size"] * 2
        r = run_cli("image", "remove", "tiny", "-C", lab, "-c", daemon)
        assert r.returncode == 1 and "backing store" in r.stderr
        assert image_pool_volumes(daemon) == [golden]
    finally:
        run_cli("destroy", "-C", lab, "-c", daemon)
        r = run_cli("image", "remove", "tiny", "-C", lab, "-c", daemon)
    assert r.returncode == 0, r.stderr
    assert image_pool_volumes(daemon) is None                  # the last image took its pool with it


def test_virt_customize_identity_on_the_overlay_before_first_boot(tmp_path, daemon):
    """A recipe without cloud-init: hostname and, as the image has network-scripts (made by the
    recipe's run line: the busybox template has no network stack), ifcfg-eth* written into the new overlay."""
    repo = make_tiny_repo()
    lab = small_lab(tmp_path, subnet_a="10.251.241.0/24", subnet_b="10.252.241.0/24", nodes=("alpha",),
                    boot='image = "plain"\n')
    os.makedirs(os.path.join(lab, "images"))
    with open(os.path.join(lab, "images", "plain.toml"), "w") as f:
        f.write(f'template = "{repo.template}"\nrepository = "{repo.directory}"\nsize = "{repo.size // 2**20}MiB"\n'
                'identity = "virt-customize"\n'
                'run = ["mkdir -p /etc/sysconfig/network-scripts && touch /etc/sysconfig/network-scripts/ifup-eth"]\n')
    name = open(os.path.join(lab, "lab.toml")).read().split('"')[1]
    try:
        r = run_cli("up", "--no-start", "-C", lab, "-c", daemon)       # builds the image, then the overlay
        assert r.returncode == 0, r.stderr
        disk = os.path.join(os.path.dirname(lab), "pool", name, "alpha.qcow2")
        assert not os.path.exists(disk.replace(".qcow2", "-seed.iso"))  # no seed for this recipe
        env = dict(os.environ, LIBGUESTFS_BACKEND="direct", LIBGUESTFS_BACKEND_SETTINGS="force_tcg")
        out = subprocess.run(["virt-cat", "-a", disk, "/etc/hostname", "/etc/sysconfig/network-scripts/ifcfg-eth0"],
                             capture_output=True, text=True, env=env, check=True).stdout
        assert out.startswith("alpha\n") and "IPADDR=10.251.241.100" in out
    finally:
        run_cli("destroy", "-C", lab, "-c", daemon)
        run_cli("image", "remove", "plain", "-C", lab, "-c", daemon)
