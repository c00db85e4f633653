"""Child processes: the one place labvirt starts them. Argv lists, never a shell.

`stream` passes each output line on as it comes and stops the child on any interruption (Ctrl-C,
an error in the caller's callback, a timeout): SIGTERM, then SIGKILL after a grace period, and waits
for it, so no child outlives the command. `capture` is the same for short commands whose output is
read at the end.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Callable, Mapping
from typing import IO

GRACE = 5.0      # seconds between SIGTERM and SIGKILL


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(GRACE)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()


def stream(argv: list[str], on_line: Callable[[str], None], *, env: Mapping[str, str] | None = None,
           stdin_text: str | None = None, log: IO[str] | None = None) -> int:
    """Run argv; every line of stdout and stderr (merged; '\\r' progress updates count as lines) goes to
    `on_line` (and to `log` when given). Returns the exit code. FileNotFoundError when argv[0] is missing."""
    proc = subprocess.Popen(argv, env=dict(env) if env is not None else None,
                            stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            encoding="utf-8", errors="replace", bufsize=1)
    try:
        if stdin_text is not None:
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(stdin_text)
                proc.stdin.close()
        assert proc.stdout is not None
        for raw in proc.stdout:
            if log is not None:
                log.write(raw)
                log.flush()
            on_line(raw.rstrip("\n"))
        return proc.wait()
    finally:
        _stop(proc)          # a no-op when it has exited; otherwise we were interrupted
        if proc.stdout is not None:
            proc.stdout.close()


def capture(argv: list[str], *, env: Mapping[str, str] | None = None, input: str | None = None,
            timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run argv to the end and return its output (text). The child is stopped when interrupted or
    when `timeout` passes (then subprocess.TimeoutExpired is raised)."""
    proc = subprocess.Popen(argv, env=dict(env) if env is not None else None,
                            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            encoding="utf-8", errors="replace")
    try:
        out, err = proc.communicate(input, timeout=timeout)
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)
    finally:
        _stop(proc)
