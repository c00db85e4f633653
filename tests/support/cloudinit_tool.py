"""Debian's own cloud-init (22.4, bookworm), to render labvirt's network config with cloud-init's
renderers (`cloud-init devel net-convert`). Not installed as a package: the .deb is fetched with
`apt-get download` (the package registry) and unpacked into a cache, and run with Debian's python3,
whose python3-* dependencies scripts/setup --test installs."""

from __future__ import annotations

import glob
import os
import subprocess
import tempfile

from .debs import fetch_deb, writable_dir

SYSTEM_PYTHON = "/usr/bin/python3"


class Unavailable(Exception):
    pass


def _cache_root() -> str:
    return writable_dir([os.environ.get("LABVIRT_TEST_CACHE"), "/var/cache/labvirt-tests"], Unavailable)


def cloudinit_path() -> str:
    """The directory to put on PYTHONPATH so `import cloudinit` finds Debian's cloud-init."""
    installed = "/usr/lib/python3/dist-packages"
    if os.path.isdir(os.path.join(installed, "cloudinit")):
        return installed
    root = os.path.join(_cache_root(), "cloud-init-deb")
    found = glob.glob(os.path.join(root, "*", "usr", "lib", "python3", "dist-packages"))
    if found:
        return found[0]
    os.makedirs(root, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as work:
        tree, version = fetch_deb("cloud-init", work, unavailable=Unavailable)
        final = os.path.join(root, version)
        os.rename(tree, final)        # atomic: a half-unpacked tree is never found
    return os.path.join(final, "usr", "lib", "python3", "dist-packages")


def net_convert(network_config: str, distro: str, output_kind: str) -> dict[str, str]:
    """Render `network_config` (YAML) as cloud-init does on `distro` with renderer `output_kind`
    (sysconfig, eni, netplan, ...). Returns {path inside the guest: content}."""
    path = cloudinit_path()
    with tempfile.TemporaryDirectory() as work:
        src = os.path.join(work, "network-config")
        with open(src, "w") as f:
            f.write(network_config)
        out = os.path.join(work, "out")
        env = dict(os.environ, PYTHONPATH=path)
        r = subprocess.run([SYSTEM_PYTHON, "-m", "cloudinit.cmd.main", "devel", "net-convert", "-p", src, "-k", "yaml",
                            "-d", out, "-D", distro, "-O", output_kind], capture_output=True, text=True, env=env,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise Unavailable(f"net-convert failed: {(r.stderr or r.stdout).strip()[-500:]}")
        files = {}
        for dirpath, _, names in os.walk(out):
            for name in names:
                full = os.path.join(dirpath, name)
                with open(full) as f:
                    files["/" + os.path.relpath(full, out)] = f.read()
        return files
