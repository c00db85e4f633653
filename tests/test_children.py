"""labvirt.driver.children: every child labvirt starts is stopped when labvirt is interrupted."""

import os
import signal
import subprocess
import sys
import time

import pytest

from labvirt.driver import children


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): look at its state
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1][0] != "Z"


def test_lines_reach_the_callback_and_the_log_and_the_exit_code_is_returned(tmp_path):
    seen = []
    with open(tmp_path / "log", "w") as log:
        rc = children.stream(["sh", "-c", "echo one; echo two >&2; printf 'a\\rb\\n'; exit 3"], seen.append, log=log)
    assert rc == 3
    assert seen == ["one", "two", "a", "b"]
    assert (tmp_path / "log").read_text() == "one\ntwo\na\nb\n"


def test_stdin_text_is_fed_and_closed():
    seen = []
    assert children.stream(["cat"], seen.append, stdin_text="hello\nworld\n") == 0
    assert seen == ["hello", "world"]


def test_an_error_in_the_callback_stops_the_child():
    pids = []

    def on_line(line):
        pids.append(int(line))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        children.stream(["sh", "-c", "echo $$; exec sleep 60"], on_line)
    assert pids and not _alive(pids[0])


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace(monkeypatch):
    monkeypatch.setattr(children, "GRACE", 0.5)
    pids = []

    def on_line(line):
        pids.append(int(line))
        raise RuntimeError("caller gave up")

    with pytest.raises(RuntimeError):
        children.stream(["sh", "-c", "trap '' TERM; echo $$; while :; do sleep 0.1; done"], on_line)
    assert pids and not _alive(pids[0])


def test_capture_stops_the_child_on_timeout():
    with pytest.raises(subprocess.TimeoutExpired):
        children.capture(["sleep", "60"], timeout=0.3)
    r = children.capture(["sh", "-c", "cat; echo err >&2"], input="in")
    assert (r.returncode, r.stdout, r.stderr) == (0, "in", "err\n")


def test_sigint_to_labvirt_alone_stops_its_child():
    """Ctrl-C as a terminal sends it: here SIGINT goes to the parent only, the harder case. The parent
    takes SIGINT as a foreground process does: a run started in the background by a non-interactive
    shell inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler."""
    code = ("import signal, sys\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
            "from labvirt.driver.children import stream\n"
            "stream(['sh', '-c', 'echo $$; exec sleep 60'], lambda l: (print(l, flush=True)))\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.send_signal(signal.SIGINT)
    parent.wait(timeout=30)
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)
