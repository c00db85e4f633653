"""labvirt's own state files: writes that fail or are interrupted half-way leave the old file and no
temporary file; the one PID-recording lock."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from labvirt.core.errors import LockedError
from labvirt.driver.state_files import pid_lock, write_atomic, write_private

from .conftest import ROOT

WRITERS = {"write_atomic": write_atomic, "write_private": write_private}


def _only(directory, name):
    assert os.listdir(directory) == [name], os.listdir(directory)


@pytest.mark.parametrize("writer", WRITERS)
def test_a_write_that_runs_out_of_room_half_way_leaves_the_old_file_and_no_temporary(tmp_path, writer):
    """A real failure half-way through: the file size limit (RLIMIT_FSIZE) stops the write after 4 KiB."""
    path = tmp_path / "node.xml"
    path.write_bytes(b"old")
    probe = textwrap.dedent(f"""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        from labvirt.driver.state_files import {writer}
        {writer}({str(path)!r}, b"x" * 100000)
        """)
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode != 0 and "File too large" in r.stderr, r.stderr
    assert path.read_bytes() == b"old"
    _only(tmp_path, "node.xml")


@pytest.mark.parametrize("writer", WRITERS)
def test_ctrl_c_during_a_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch, writer):
    """Mocked: Ctrl-C cannot be delivered at a chosen point of a write; KeyboardInterrupt raised from
    fsync (after the data is written, before the rename) is what the signal does at that point."""
    path = tmp_path / "class.json"
    path.write_bytes(b"old")

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        WRITERS[writer](str(path), b"new" * 1000)
    assert path.read_bytes() == b"old"
    _only(tmp_path, "class.json")


def test_a_killed_writers_temporary_is_removed_by_the_next_write(tmp_path):
    """A process killed outright (SIGKILL) cannot clean up; the next write of the same file does. A live
    writer's temporary file and other files' temporaries are left alone."""
    path = tmp_path / "host.json"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    child.kill()
    child.wait()
    (tmp_path / f".host.json.{child.pid}.89abcdef.tmp").write_bytes(b"half")     # its writer is gone
    live = f".host.json.{os.getppid()}.0123abcd.tmp"                             # its writer still runs
    other = f".other.json.{child.pid}.0123abcd.tmp"
    for name in (live, other):
        (tmp_path / name).write_bytes(b"half")
    write_atomic(str(path), b"{}")
    assert sorted(os.listdir(tmp_path)) == sorted([live, other, "host.json"])
    assert path.read_bytes() == b"{}"


def test_private_files_are_0600_and_replaced_whole(tmp_path):
    path = tmp_path / "secret"
    write_private(str(path), "one")
    write_private(str(path), "two")
    assert path.read_text() == "two" and (os.stat(path).st_mode & 0o777) == 0o600
    _only(tmp_path, "secret")


HOLD = """
import sys
from labvirt.driver.state_files import pid_lock
with pid_lock(sys.argv[1], busy=str):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_the_lock_names_its_holder_and_forgets_it_on_release(tmp_path):
    path = str(tmp_path / "lock")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(LockedError, match=rf"^busy: pid {holder.pid}$"):
            with pid_lock(path, busy=lambda pid: f"busy: pid {pid}"):
                pass
    finally:
        holder.communicate("")
    assert holder.returncode == 0
    assert open(path).read() == ""          # released: no stale PID to report later
    with pid_lock(path, busy=str):
        assert open(path).read() == str(os.getpid())


def test_nested_enable_interrupted_leaves_modprobe_d_as_it_was(tmp_path, monkeypatch):
    """`labvirt nested enable` edits /etc/modprobe.d with the same atomic write (mocked Ctrl-C as above)."""
    import shutil

    from labvirt.host.facts import read_host
    from labvirt.host.nested import apply_nested, plan_nested
    from labvirt.host.profiles import profile_root

    root = str(tmp_path / "root")
    shutil.copytree(profile_root("intel-no-nested"), root)
    conf = os.path.join(root, "etc", "modprobe.d")
    before = {name: open(os.path.join(conf, name), "rb").read() for name in os.listdir(conf)}
    plan = plan_nested(read_host(root), "enable")
    assert plan.edits

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)     # Ctrl-C just before the rename
    with pytest.raises(KeyboardInterrupt):
        apply_nested(plan, root)
    assert {name: open(os.path.join(conf, name), "rb").read() for name in os.listdir(conf)} == before
