"""`labvirt packstack run`: snapshot pre-packstack, run packstack on the controller, snapshot
post-packstack on success; on failure keep the log and say how to go back (or go back).

The runner is an argv: by default ssh to the controller (generate an answer file there, apply the
lab's overrides here, copy it back, run packstack); `command` replaces it (tests, other installers)
and gets LABVIRT_ANSWERS, LABVIRT_CONTROLLER and LABVIRT_SSH in its environment.
"""

from __future__ import annotations

import datetime
import os
import shlex
from typing import Callable

from labvirt.core.record import MutableRecord
from labvirt.ops import snapshots
from labvirt.core.errors import LabvirtError
from labvirt.driver.children import capture, stream
from labvirt.driver.state_files import lab_state_dir, write_private

PRE, POST = "pre-packstack", "post-packstack"
REMOTE_ANSWERS = "/root/labvirt-answers.txt"


def nova_virt_type(desired, host_l2: str) -> str:
    """kvm only when the host's verdict says so and every compute node really gets vmx/svm passed
    through on a KVM domain; otherwise nova must use plain QEMU."""
    computes = [d for d in desired.domains if d.role == "compute"] or list(desired.domains)
    passthrough = all(d.domain_type == "kvm" and d.cpu_mode in ("host-passthrough", "host-model") for d in computes)
    return "kvm" if host_l2 == "kvm" and passthrough else "qemu"


class RunResult(MutableRecord):
    ok: bool
    log: str
    answers: str
    reverted: bool = False
    message: str = ""


def _capture(argv: list[str], env: dict, input: str | None = None) -> str:
    r = capture(argv, env=env, input=input)
    if r.returncode != 0:
        raise LabvirtError(f"{shlex.join(argv[-3:])} failed on the controller: "
                           f"{(r.stderr.strip().splitlines() or ['exit ' + str(r.returncode)])[-1]}")
    return r.stdout


def run(driver, desired, observed, answers_of: Callable[[str], str], controller: str, ssh: list[str],
        command: str | None = None, revert_on_failure: bool = False,
        on_line: Callable[[str], None] = lambda line: None, on_step: Callable[[str], None] = lambda s: None) -> RunResult:
    """`answers_of(generated_text)` -> the answer file to use; `ssh`: argv prefix reaching the controller."""
    state = os.path.join(lab_state_dir(desired.copy.lab, desired.copy.student), "packstack")
    os.makedirs(state, mode=0o700, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_path = os.path.join(state, f"run-{stamp}.log")
    answers_path = os.path.join(state, "answers.txt")

    nodes = snapshots.lab_nodes(desired, observed)
    if all(PRE in n.snapshots for n in nodes):
        on_step(f"snapshot {PRE} exists: keeping it")
    else:
        on_step(f"snapshot {PRE}")
        snapshots.take(driver, desired, observed, PRE, "before packstack (labvirt packstack run)")

    env = dict(os.environ)
    # 0600 from the first byte: packstack's output can name hosts and passwords
    with os.fdopen(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as log:
        if command is None:
            on_step("generating the answer file on the controller")
            generated = _capture([*ssh, f"packstack --gen-answer-file={REMOTE_ANSWERS} >/dev/null && "
                                        f"cat {REMOTE_ANSWERS}"], env)
            text = answers_of(generated)
            write_private(answers_path, text)
            _capture([*ssh, f"umask 077 && cat > {REMOTE_ANSWERS}"], env, input=text)
            argv = [*ssh, f"packstack --answer-file={REMOTE_ANSWERS}"]
        else:
            text = answers_of("")
            write_private(answers_path, text)
            argv = shlex.split(command)
            env.update(LABVIRT_ANSWERS=answers_path, LABVIRT_CONTROLLER=controller, LABVIRT_SSH=shlex.join(ssh))
        on_step("running packstack" if command is None else f"running {argv[0]}")
        try:
            code = stream(argv, on_line, env=env, log=log)
        except FileNotFoundError:
            raise LabvirtError(f"{argv[0]}: command not found") from None
    if code == 0:
        observed_now = driver.observe(desired.copy.prefix)
        if any(POST in n.snapshots for n in snapshots.lab_nodes(desired, observed_now)):
            snapshots.delete(driver, desired, observed_now, POST)
            observed_now = driver.observe(desired.copy.prefix)
        on_step(f"snapshot {POST}")
        snapshots.take(driver, desired, observed_now, POST, "after a successful packstack run")
        return RunResult(True, log_path, answers_path, message="packstack succeeded")
    if revert_on_failure:
        on_step(f"reverting to {PRE}")
        snapshots.revert(driver, desired, driver.observe(desired.copy.prefix), PRE)
        return RunResult(False, log_path, answers_path, reverted=True, message=f"packstack failed (exit {code})")
    return RunResult(False, log_path, answers_path, message=f"packstack failed (exit {code})")
