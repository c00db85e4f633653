"""Real virt-builder on a real OS: the Debian kit published as a local template repository.

Offline: VIRT_BUILDER_DIRS and XDG_CONFIG_HOME point at this test's own directories (so the
repositories under /etc/virt-builder are never read) and --no-network. libguestfs runs its
appliance in software emulation (LIBGUESTFS_BACKEND_SETTINGS=force_tcg), as KVM fails here.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from .support.debian_guest import LABEL
from .support.debian_lab import require_repo

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def repo():
    if shutil.which("virt-builder") is None:
        pytest.skip("virt-builder is not installed (apt-get install libguestfs-tools)")
    return require_repo()


def test_the_repository_index_is_valid(repo):
    r = subprocess.run(["virt-index-validate", repo.index], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_virt_builder_resizes_and_customises_the_real_os(repo, tmp_path):
    env = dict(os.environ, **repo.env(str(tmp_path)))
    r = subprocess.run(["virt-builder", "--list", "--no-network", "--no-check-signature"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert [line.split()[0] for line in r.stdout.splitlines() if line.strip()] == [repo.template]

    password = tmp_path / "pw"
    password.write_text("not-a-real-secret\n")
    password.chmod(0o600)
    out = tmp_path / "node.qcow2"
    r = subprocess.run(["virt-builder", repo.template, "--no-network", "--no-check-signature", "--format", "qcow2",
                        "--size", "4G", "--hostname", "vbnode", "--root-password", f"file:{password}",
                        "-o", str(out)], capture_output=True, text=True, env=env, timeout=1200)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]

    r = subprocess.run(["virt-filesystems", "-a", str(out), "-l", "--no-title"], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    fs = r.stdout.split()
    assert fs[0] == "/dev/sda1" and fs[2] == "ext4" and fs[3] == LABEL, r.stdout
    assert int(fs[4]) > 3.5 * 1024**3, f"the partition was not grown to --size 4G: {r.stdout}"

    r = subprocess.run(["virt-cat", "-a", str(out), "/etc/hostname"], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "vbnode"
    r = subprocess.run(["virt-cat", "-a", str(out), "/etc/shadow"], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    root = next(line for line in r.stdout.splitlines() if line.startswith("root:"))
    assert root.split(":")[1].startswith("$"), "root has no password hash"     # the kit's root is locked ("!")
