"""A real Linux guest under a real libvirtd, driven only through labvirt commands and a lab file.

The guest (tests/support/guest.py) is a Debian kernel with a busybox initramfs, booted directly
(a node's [boot] table), on isolated networks: it sends DHCP to the bridge's dnsmasq and nothing else.
It prints its own marker lines on the serial console and then runs a shell there.
"""

from __future__ import annotations

import json
import os
import re
import time

import libvirt
import pytest

from .conftest import run_cli, small_lab
from .support.guest import GuestKitUnavailable, boot_toml, tiny_guest

pytestmark = [pytest.mark.daemon, pytest.mark.slow]


def console_run(lab, uri, command, seconds=15):
    """Type `command` on the console and return its output (between markers only the shell prints)."""
    line = f"echo TAG-B$((0)); {command}; echo TAG-E$?"
    r = run_cli("console", "guest", "--capture", str(seconds), "--send", line, "--until", "TAG-E0",
                "-C", lab, "-c", uri)
    assert r.returncode == 0, r.stderr
    m = re.search(r"TAG-B0\n(.*?)TAG-E(\d+)", r.stdout, re.S)
    assert m, f"no command output on the console: {r.stdout[-500:]!r}"
    return m.group(1)


def interactive_console(lab, uri):
    import shlex
    import shutil
    import subprocess
    import sys

    assert shutil.which("tmux"), "tmux is needed for the interactive console test (scripts/setup --test)"
    session = f"labvirt-{os.getpid()}"
    cmd = shlex.join([sys.executable, "-m", "labvirt", "console", "guest", "-C", lab, "-c", uri])
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "30",
                    f"{cmd}; echo CONSOLE-EXIT-$?; sleep 60"], check=True, env=dict(os.environ))

    def screen():
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout

    def wait_for(text, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in screen():
                return True
            time.sleep(0.2)
        return False

    try:
        assert wait_for("Escape character is ^]"), screen()
        subprocess.run(["tmux", "send-keys", "-t", session, "echo typed-$((6*7))", "Enter"], check=True)
        assert wait_for("typed-42"), screen()
        subprocess.run(["tmux", "send-keys", "-t", session, "C-]"], check=True)
        assert wait_for("CONSOLE-EXIT-0"), screen()
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_real_guest_end_to_end(tmp_path, daemon):
    try:
        boot = tiny_guest(flavour="generic")         # generic: has AHCI, so the guest reads its seed CD-ROM
    except GuestKitUnavailable as e:
        pytest.skip(f"cannot build the tiny guest here: {e}")
    lab = small_lab(tmp_path, subnet_a="10.251.210.0/24", subnet_b="10.252.210.0/24", memory="256MiB",
                    nodes=("guest",), boot="seed = true\n" + boot_toml(boot))
    name = open(os.path.join(lab, "lab.toml")).read().split('"')[1]
    try:
        r = run_cli("up", "-C", lab, "-c", daemon)
        assert r.returncode == 0, r.stderr

        # ip --wait: the reserved address, from a real DHCP lease
        r = run_cli("ip", "guest", "--wait", "--timeout", "120", "--json", "-C", lab, "-c", daemon)
        assert r.returncode == 0, r.stderr
        eth0 = json.loads(r.stdout)["nodes"][0]["nics"][0]
        assert eth0["planned"] == "10.251.210.100"
        assert {"ip": "10.251.210.100", "prefix": 24, "source": "lease"} in eth0["observed"]

        # console --tail: the guest's own lines, including what it read from its cloud-init seed. The
        # guest prints its ready line after DHCP on every NIC, a moment after the first lease: poll.
        deadline = time.monotonic() + 60
        while True:
            r = run_cli("console", "guest", "--tail", "50", "-C", lab, "-c", daemon)
            assert r.returncode == 0, r.stderr
            if "LABVIRT-GUEST-READY" in r.stdout or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert "LABVIRT-GUEST-READY" in r.stdout
        assert "LABVIRT-SEED meta-data:" in r.stdout and "local-hostname=guest" in r.stdout

        # snapshot while running, change the guest through its console, revert, the change is gone
        r = run_cli("snapshot", "pre-packstack", "-C", lab, "-c", daemon)
        assert r.returncode == 0, r.stderr
        assert console_run(lab, daemon, "echo changed > /tmp/state; cat /tmp/state") == "changed\n"
        r = run_cli("snapshot", "revert", "pre-packstack", "-C", lab, "-c", daemon)
        assert r.returncode == 0, r.stderr
        assert console_run(lab, daemon, "cat /tmp/state 2>/dev/null || echo absent") == "absent\n"

        # the interactive console, in a real terminal (tmux): type a command, read it, leave with Ctrl+]
        interactive_console(lab, daemon)
    finally:
        r = run_cli("destroy", "-C", lab, "-c", daemon)
    assert r.returncode == 0, r.stderr
    conn = libvirt.open(daemon)
    try:
        assert [d.name() for d in conn.listAllDomains() if d.name().startswith(name)] == []
        assert [n.name() for n in conn.listAllNetworks() if n.name().startswith(name)] == []
        assert [p.name() for p in conn.listAllStoragePools() if name in p.name()] == []
    finally:
        conn.close()
