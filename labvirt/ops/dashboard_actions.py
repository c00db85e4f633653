"""The dashboard's actions on students: revert, rebuild, start, stop, checks, run in the background.

Each student has a busy lock: a second action on a student who is queued or busy is refused with what
the student is busy with. The student's lab lock is held too, so a single-lab command on that student
(`labvirt ... --student S`) and the dashboard exclude each other; while any action runs the dashboard
holds the class lock, so `labvirt class ...` commands are refused meanwhile (and the dashboard's actions
are refused while such a command runs). Mixed into `labvirt.ops.dashboard.Dashboard`, whose model and
locks it uses.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time

from labvirt.core.record import MutableRecord, field
from labvirt.ops import class_record
from labvirt.core.errors import LabvirtError, LockedError
from labvirt.ops.verify import student_checks

ACTIONS = {"revert": "revert to {arg}", "rebuild": "rebuild", "start": "start", "stop": "stop",
           "checks": "checks {arg}"}
SNAPSHOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class Refused(LabvirtError):
    """An action the dashboard will not start (busy student, unknown action, class lock held)."""


class Job(MutableRecord):
    student: str
    label: str                    # "revert to pre-packstack"
    state: str = "queued"         # queued | running | done | failed
    queued: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    message: str = ""

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    def as_dict(self) -> dict:
        now = time.time()
        since = self.started or self.queued
        return {"label": self.label, "state": self.state, "message": self.message,
                "seconds": round((self.finished or now) - since, 1), "since": since, "finished": self.finished}


class DashboardActions:
    # -- actions ---------------------------------------------------------------------------------
    def act(self, action: str, students: list[str] | None = None, arg: str | None = None) -> dict:
        """Start `action` on `students` (None: the whole class) in the background.

        Returns {"accepted": [...], "refused": {student: reason}}; raises Refused when nothing can start
        for a reason that is not per student (unknown action, bad argument, class lock held)."""
        if action not in ACTIONS:
            raise Refused(f"unknown action {action!r}; allowed: {', '.join(ACTIONS)}")
        if action == "revert" and not (arg and SNAPSHOT_NAME.match(arg)):
            raise Refused("revert needs a snapshot name (letters, digits, '.', '_', '-')")
        if action == "checks":
            stages = self.stage_names()
            if arg not in stages:
                raise Refused(f"no stage {arg!r} in {self.spec.directory}/checks; stages: {', '.join(stages) or 'none'}")
        record = class_record.load_record(self.spec.name)
        targets = list(record.students) if students is None else list(dict.fromkeys(students))
        label = ACTIONS[action].format(arg=arg)
        accepted, refused = [], {}
        with self._lock:
            for s in targets:
                if s not in record.students:
                    refused[s] = f"no student {s!r} in the class"
                    continue
                why = self._claim(s, record.host(s), label)
                if why:
                    refused[s] = why
                else:
                    accepted.append(s)
            if accepted:
                try:
                    self._hold_class()
                except LockedError as e:
                    for s in accepted:
                        self._release(s)
                        self._jobs.pop(s, None)
                        refused[s] = str(e)
                    accepted = []
        if accepted:
            from labvirt.core.uris import parse_sim_uri

            sim = any(parse_sim_uri(record.host(s)) is not None for s in accepted)
            threading.Thread(target=self._run_batch, args=(action, accepted, arg, sim), daemon=True,
                             name=f"dashboard-{action}").start()
        self._bump()
        return {"accepted": accepted, "refused": refused}

    def _claim(self, student: str, uri: str, label: str) -> str | None:
        """Under self._lock: make the student busy, or say why not."""
        from labvirt.ops.session import lab_lock

        job = self._jobs.get(student)
        if job is not None and job.active:
            seconds = time.time() - (job.started or job.queued)
            since = f" (for {seconds:.0f} s)" if seconds >= 1 else ""
            return f"{student} is busy: {job.label} is {job.state}{since}; try again when it finishes"
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(lab_lock(self.spec.name, student, uri))
        except LockedError as e:
            return str(e)
        self._locks[student] = stack
        self._jobs[student] = Job(student, label)
        return None

    def _release(self, student: str) -> None:
        stack = self._locks.pop(student, None)
        if stack is not None:
            stack.close()

    def _hold_class(self) -> None:
        """Under self._lock: hold the class lock while any action runs (class commands wait for us)."""
        from labvirt.ops.session import lab_lock

        if self._class_hold == 0:
            try:
                self._class_stack.enter_context(lab_lock(self.spec.name, "_class", "class"))
            except LockedError as e:
                pid = str(e).split("pid ")[-1].split(")")[0]
                raise LockedError(f"a 'labvirt class' command (pid {pid}) is working on the class; "
                                  "try again when it finishes") from None
        self._class_hold += 1

    def _drop_class(self) -> None:
        with self._lock:
            self._class_hold -= 1
            if self._class_hold == 0:
                self._class_stack.close()

    def _run_batch(self, action: str, students: list[str], arg: str | None, sim: bool) -> None:
        from labvirt.ops.class_commands import Classroom

        done: set[str] = set()
        gate = self._sim_batches if sim else contextlib.nullcontext()
        try:
            with gate:
                # not entered as a context manager: the dashboard holds the class lock itself
                c = Classroom(self.spec, self.connect)
                try:
                    def work(student: str) -> str:
                        self._update(student, state="running", started=time.time())
                        return self._do(c, action, student, arg)

                    def on_done(o) -> None:
                        done.add(o.student)
                        self._update(o.student, state="done" if o.ok else "failed", message=o.message,
                                     finished=time.time())

                    c.run(students, work, on_done=on_done)
                finally:
                    c.__exit__(None, None, None)     # closes its drivers; a simulator saves its node file
        except Exception as e:          # opening the class failed: every student not done says why
            for s in students:
                if s not in done:
                    self._update(s, state="failed", message=str(e), finished=time.time())
        finally:
            with self._lock:
                for s in students:
                    self._release(s)
            self._drop_class()
            self._dirty.set()
            self._bump()

    def _update(self, student: str, **changes) -> None:
        with self._lock:
            job = self._jobs.get(student)
            if job is not None:
                for k, v in changes.items():
                    setattr(job, k, v)
        self._bump()

    def _do(self, c, action: str, student: str, arg: str | None) -> str:
        if action == "revert":
            return c.revert(student, arg)
        if action == "rebuild":
            return c.rebuild(student)
        if action == "start":
            return c.up(student, start=True)
        if action == "stop":
            return c.down(student)
        if action == "checks":
            return student_checks(c, student, arg, self._verify.setdefault(student, {}))
        raise Refused(f"unknown action {action!r}")

