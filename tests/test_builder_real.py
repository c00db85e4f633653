"""A real virt-builder build from a tiny local template repository (offline), read back with virt-cat.

While the build runs, every process's command line (what `ps` shows) and environment is checked for
the root password, and the password file for mode 0600.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import threading
import time

import pytest

from labvirt.driver.virt_builder import builder_argv, builder_env, read_password, root_password_file, run_builder
from labvirt.core.crypt import sha512_crypt
from labvirt.core.spec import ImageSpec
from .support.tinyrepo import make_tiny_repo

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("virt-builder") is None,
                       reason="virt-builder not installed (apt-get install libguestfs-tools)"),
]


def processes_showing(secret: bytes) -> tuple[int, list[str], list[str]]:
    """(processes looked at, command lines with the secret, pids whose environment has it)."""
    seen, in_cmdline, in_environ = 0, [], []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read()
        except OSError:          # gone, or a kernel thread
            continue
        seen += 1
        if secret in cmdline:
            in_cmdline.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
        if secret in environ:
            in_environ.append(pid)
    return seen, in_cmdline, in_environ


def builder_cmdlines() -> list[str]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if args and os.path.basename(args[0]) == b"virt-builder":
            out.append(b" ".join(args).decode(errors="replace"))
    return out


def test_offline_build_keeps_the_password_secret(tmp_path):
    repo = make_tiny_repo()
    recipe = ImageSpec(name="tiny", size=repo.size, template=repo.template, repository=repo.directory,
                       root_password="random", write=(("/etc/labvirt-marker", "built by labvirt\n"),),
                       run=("echo ran > /etc/labvirt-ran",))
    password_file = root_password_file(recipe, "tinylab")
    password = read_password(password_file)
    output = str(tmp_path / "tiny.qcow2")
    argv = builder_argv(recipe, output, password_file, hostname="tiny-golden")
    env = builder_env(recipe, str(tmp_path / "work"))
    assert not any(password in a for a in argv) and f"file:{password_file}" in argv

    lines: list[str] = []
    failure: list[BaseException] = []

    def build():
        try:
            run_builder(argv, env, lines.append)
        except BaseException as e:       # reported by the main thread
            failure.append(e)

    started = time.monotonic()
    worker = threading.Thread(target=build)
    worker.start()
    polls, looked_at, leaks, env_leaks, builder_seen, modes = 0, 0, [], [], [], set()
    while worker.is_alive():
        seen, in_cmdline, in_environ = processes_showing(password.encode())
        polls, looked_at = polls + 1, max(looked_at, seen)
        leaks += in_cmdline
        env_leaks += in_environ
        builder_seen += builder_cmdlines()
        modes.add(stat.S_IMODE(os.stat(password_file).st_mode))
        time.sleep(0.1)
    worker.join()
    took = time.monotonic() - started
    print(f"virt-builder took {took:.1f} s; {polls} polls of /proc")
    if failure:
        raise failure[0]

    assert looked_at > 3 and leaks == [] and env_leaks == []
    assert modes == {0o600}
    assert any(f"--root-password file:{password_file}" in c for c in builder_seen), "never saw virt-builder run"
    assert all(password not in line for line in lines)
    assert any("Setting passwords" in line for line in lines)
    downloads = [line for line in lines if "Downloading" in line]
    assert downloads and all("file://" + repo.directory in line for line in downloads)   # local repository only

    # Read back inside the image: one appliance launch for all files.
    shown = subprocess.run(["virt-cat", "-a", output, "/etc/hostname", "/etc/shadow", "/etc/labvirt-marker",
                            "/etc/labvirt-ran"], env=env, capture_output=True, text=True, timeout=600)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert text.startswith("tiny-golden\n")
    root_hash = re.search(r"^root:([^:]*):", text, re.M).group(1)
    assert root_hash.startswith("$6$") and password not in text
    assert sha512_crypt(password, root_hash.split("$")[2]) == root_hash
    assert "built by labvirt\nran\n" in text
