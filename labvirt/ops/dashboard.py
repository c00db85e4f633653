"""`labvirt class serve` without the web: one live model of the class, and the actions on it.

The model (`Dashboard.view()`): per student, per node the state, planned and observed addresses and
current snapshot; the student's running or last action; per host its load and capacity. It is rebuilt
from libvirt when something changes:
  - a real libvirt host: its domain lifecycle events (libvirt's default event loop, one long-lived
    connection per host), plus a slow bounded re-read for what has no event (DHCP leases, snapshots
    taken by another process);
  - a simulated host: its node file is rewritten by whichever process changes it, so the file's
    mtime is polled (every `poll` seconds), as is the class record (students added or removed).
Reading never rewrites a simulator's node file (the driver is closed without saving).

Actions (revert, rebuild, start, stop, checks) run the same per-student work as `labvirt class ...`
(`Classroom`). Each student has a busy lock: a second action on a student who is queued or busy is
refused with what the student is busy with. The student's lab lock is held too, so a single-lab
command on that student (`labvirt ... --student S`) and the dashboard exclude each other; while any
action runs the dashboard holds the class lock, so `labvirt class ...` commands are refused meanwhile
(and the dashboard's actions are refused while such a command runs).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from dataclasses import dataclass, field

from labvirt.core import class_layout as cr
from labvirt.ops import class_record
from labvirt.core.errors import LabvirtError, LockedError, UnsupportedError
from labvirt.core.loader import load_lab

ACTIONS = {"revert": "revert to {arg}", "rebuild": "rebuild", "start": "start", "stop": "stop",
           "checks": "checks {arg}"}
SNAPSHOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CONSOLE_LINES = 40
# a console line that may show a secret is never served (cloud-init prints generated passwords)
SECRET_LINE = re.compile(r"pass(word|wd|phrase)?\b|secret|token|PRIVATE KEY|chpasswd", re.IGNORECASE)


# ---- verify: the lab's stages (checks/STAGE.toml) run per student through labvirt.ops.verify -------
VERIFY_AVAILABLE = True


def verify_stages(spec) -> list[str]:
    from labvirt.ops.verify import load_stages

    try:
        return [stage.name for stage in load_stages(spec.directory)]
    except LabvirtError:
        return []


def run_checks(classroom, student: str, stage: str, results: dict) -> str:
    """Run stage `stage` on one student's copy; record {"ok", "summary"} under the stage's name."""
    from labvirt.ops.verify import class_verify, load_stage

    matrix = class_verify(classroom, load_stage(classroom.spec.directory, stage), [student])
    report = matrix["reports"][0]
    counts = report.get("counts") or {}
    summary = f"{stage}: {report['outcome']}" + (
        " (" + ", ".join(f"{n} {k}" for k, n in counts.items() if n) + ")" if counts else "")
    if report.get("error"):
        summary += f": {report['error']}"
    results[stage] = {"ok": bool(report["holds"]), "summary": summary}
    return summary
# ---- end HOOK(verify) --------------------------------------------------------------------------


class Refused(LabvirtError):
    """An action the dashboard will not start (busy student, unknown action, class lock held)."""


@dataclass
class Job:
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


def redact(lines: list[str]) -> list[str]:
    return ["[line hidden: it may show a secret]" if SECRET_LINE.search(line) else line for line in lines]


class Dashboard:
    """The class as a live model. `start()` reads it and begins watching; `close()` stops."""

    def __init__(self, directory: str, connect: str | None = None, poll: float = 0.5, reread: float = 10.0):
        self.spec = load_lab(directory)
        self.connect = connect
        self.poll = poll                  # simulator: how often the node files' mtimes are looked at
        self.reread = reread              # real hosts: a full re-read this often (leases, snapshots)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self.version = 0
        self._model: dict = {"lab": self.spec.name, "nodes": [n.name for n in self.spec.nodes],
                             "students": [], "hosts": [], "error": None, "refreshed": None}
        self._jobs: dict[str, Job] = {}
        self._locks: dict[str, contextlib.ExitStack] = {}     # students' lab locks, while busy
        self._class_hold = 0
        self._class_stack = contextlib.ExitStack()
        self._sim_batches = threading.Lock()    # one batch at a time on simulated hosts (one node file)
        self._verify: dict[str, dict] = {}      # student -> stage -> result (HOOK(verify))
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._listeners: list = []
        self._real: dict[str, object] = {}      # uri -> long-lived Driver (reads and events)
        self._params: dict[str, object] = {}
        self._watcher: threading.Thread | None = None
        self.events_source: dict[str, str] = {}

    # -- life ------------------------------------------------------------------------------------
    def start(self) -> None:
        from labvirt.driver import console

        console.prepare()     # libvirt's event loop, before any connection (events, console streams)
        self.refresh()
        self._watcher = threading.Thread(target=self._watch, name="dashboard-watch", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        self._stop.set()
        self._dirty.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        with self._lock:
            for d in self._real.values():
                with contextlib.suppress(Exception):
                    d.close()
            self._real.clear()
            self._changed.notify_all()

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    def subscribe(self, listener) -> None:
        """`listener()` is called (from a worker thread) after each new version."""
        with self._lock:
            self._listeners.append(listener)

    def unsubscribe(self, listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _bump(self) -> None:
        with self._lock:
            self.version += 1
            listeners = list(self._listeners)
            self._changed.notify_all()
        for fn in listeners:
            with contextlib.suppress(Exception):
                fn()

    def wait(self, version: int, timeout: float) -> int:
        """Block until the model is newer than `version` (or `timeout`); the current version."""
        with self._changed:
            self._changed.wait_for(lambda: self.version != version or self._stop.is_set(), timeout)
            return self.version

    # -- the model -------------------------------------------------------------------------------
    def view(self) -> dict:
        """The model with each student's action and verify results merged in (plain data)."""
        with self._lock:
            m = dict(self._model)
            m["version"] = self.version
            m["students"] = [dict(s, job=self._jobs[s["student"]].as_dict() if s["student"] in self._jobs else None,
                                  verify=self._verify.get(s["student"], {}))
                             for s in self._model["students"]]
            m["verify"] = {"available": VERIFY_AVAILABLE, "stages": verify_stages(self.spec),
                           "reason": None if VERIFY_AVAILABLE else "verify not available"}
            m["snapshots"] = sorted({n for s in m["students"] for n in s["snapshots"]})
            return m

    def refresh(self) -> None:
        """Read every host of the class once and replace the model."""
        from labvirt.core.status import lab_status
        from labvirt.ops.session import plan_up_for

        record = class_record.load_record(self.spec.name)
        uris = list(dict.fromkeys([r["host"] for r in record.students.values()] + self._configured_hosts()))
        observed, drivers, opened = {}, {}, []
        try:
            for uri in uris:
                d = self._reader(uri)
                if d.simulated:
                    opened.append(d)
                drivers[uri] = d
                observed[uri] = d.observe()
            rows = []
            for student, rec in record.students.items():
                uri = rec["host"]
                d, obs = drivers[uri], observed[uri]
                copy = record.copy(student)
                desired, the_plan = plan_up_for(self.spec, copy, self._params[uri], obs, start=False,
                                                for_apply=False)
                addresses = {}
                if not d.simulated:
                    for dom in desired.domains:
                        o = obs.domains.get(dom.name)
                        if o is not None and o.state == "running":
                            with contextlib.suppress(LabvirtError):
                                addresses[dom.name] = d.addresses(dom.name)[0]
                s = lab_status(desired, obs, the_plan, addresses, simulated=d.simulated)
                nodes = [{"name": n["name"], "domain": n["domain"], "state": n["state"],
                          "current_snapshot": n["current_snapshot"], "snapshots": n["snapshots"],
                          "nics": [{"name": i.get("name"), "network": i.get("network"), "planned": i.get("planned"),
                                    "observed": [o["ip"] for o in i.get("observed", [])]} for i in n["nics"]]}
                         for n in s["nodes"]]
                common = set.intersection(*(set(n["snapshots"]) for n in nodes)) if nodes else set()
                rows.append({"student": student, "host": uri, "simulated": d.simulated, "nodes": nodes, "drift": s["drift"],
                             "snapshots": sorted(common)})
            hosts = [self._host_row(uri, drivers[uri], observed[uri], record) for uri in uris]
        finally:
            for d in opened:
                d.close()           # without saving: reading leaves the node file alone
        with self._lock:
            self._model = {"lab": self.spec.name, "nodes": [n.name for n in self.spec.nodes], "students": rows,
                           "hosts": hosts, "error": None, "refreshed": time.time()}
        self._bump()

    def _configured_hosts(self) -> list[str]:
        from labvirt.ops.session import resolve_uri

        if self.connect:
            return [self.connect]
        hosts = cr.load_class(self.spec, self.spec.class_table).hosts
        return [h.uri for h in hosts] or [resolve_uri(None)]

    def _reader(self, uri: str):
        """A driver to read `uri`: a fresh simulator (closed after reading) or the long-lived connection."""
        from labvirt.ops.session import host_params, host_verdict, open_driver

        with self._lock:
            d = self._real.get(uri)
        if d is not None and d.conn.isAlive():
            return d
        d = open_driver(uri)
        if uri not in self._params:
            self._params[uri] = host_params(self.spec, host_verdict(d))
        if not d.simulated:
            watch_lifecycle(d.conn, self.spec.name, self._dirty.set)
            self.events_source[uri] = "libvirt lifecycle events"
            with self._lock:
                old, self._real[uri] = self._real.get(uri), d
            if old is not None:
                with contextlib.suppress(Exception):
                    old.close()
        else:
            self.events_source[uri] = f"polling the simulator's node file every {self.poll:g} s"
        return d

    def _host_row(self, uri: str, driver, observed, record) -> dict:
        from labvirt.core.capacity import host_capacity
        from labvirt.core.uris import is_local

        info = driver.host_info()
        cap = host_capacity(info["cpus"], info["memory"], info.get("disk"), reserve=0 if driver.simulated else 2**30)
        running = [d for d in observed.domains.values() if d.state == "running"]
        load = None
        if not driver.simulated and is_local(uri):
            with contextlib.suppress(OSError):
                load = round(os.getloadavg()[0], 2)
        return {"uri": uri, "simulated": driver.simulated, "cpus": cap.cpus, "memory": cap.memory, "disk": cap.disk,
                "students": sum(1 for r in record.students.values() if r["host"] == uri),
                "running": {"domains": len(running), "vcpus": sum(d.vcpus for d in running),
                            "memory": sum(d.memory for d in running)},
                "domains": len(observed.domains), "load": load, "updates": self.events_source.get(uri, "")}

    # -- watching --------------------------------------------------------------------------------
    def _stamps(self) -> tuple:
        """What the bounded poll compares: the class record and each simulated host's node file."""
        from labvirt.driver import simulator as sim

        paths = [class_record.record_path(self.spec.name)]
        with self._lock:
            hosts = [h["uri"] for h in self._model["hosts"]]
        for uri in hosts:
            name = sim.parse_uri(uri)
            if name is not None:
                paths.append(os.path.join(sim.sim_dir(name), "node.xml"))
        out = []
        for p in paths:
            try:
                st = os.stat(p)
                out.append((p, st.st_mtime_ns, st.st_size))
            except FileNotFoundError:
                out.append((p, None, None))
        return tuple(out)

    def _watch(self) -> None:
        last = self._stamps()
        next_reread = time.monotonic() + self.reread
        while not self._stop.is_set():
            self._dirty.wait(self.poll)
            if self._stop.is_set():
                return
            stamps = self._stamps()
            due = bool(self._real) and time.monotonic() >= next_reread
            if stamps == last and not self._dirty.is_set() and not due:
                continue
            if self._sim_batches.locked() and not due:
                continue          # an action holds the simulator; it saves and we see the new mtime then
            time.sleep(0.15)      # coalesce: one revert sends several events
            self._dirty.clear()
            last = self._stamps()
            next_reread = time.monotonic() + self.reread
            try:
                self.refresh()
            except Exception as e:    # keep showing the last model, say why it is old
                with self._lock:
                    self._model = dict(self._model, error=f"could not refresh: {e}")
                self._bump()

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
            stages = verify_stages(self.spec)
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
            from labvirt.driver.simulator import parse_uri

            sim = any(parse_uri(record.host(s)) is not None for s in accepted)
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
            return run_checks(c, student, arg, self._verify.setdefault(student, {}))
        raise Refused(f"unknown action {action!r}")

    # -- console ---------------------------------------------------------------------------------
    def console(self, student: str, node: str, lines: int = CONSOLE_LINES) -> str:
        """The last lines a node's serial console showed (lines that may show a secret are hidden)."""
        from labvirt.core.uris import is_local
        from labvirt.driver import console as con

        record = class_record.load_record(self.spec.name)
        if student not in record.students:
            raise Refused(f"no student {student!r} in the class")
        if node not in [n.name for n in self.spec.nodes]:
            raise Refused(f"no node {node!r} in lab {self.spec.name!r}")
        uri = record.host(student)
        domain = f"{record.copy(student).prefix}-{node}"
        from labvirt.driver import simulator as sim

        if sim.parse_uri(uri) is not None:
            raise UnsupportedError(f"{domain} is simulated: the simulator has no console")
        d = self._reader(uri)
        obs = d.observe(record.copy(student).prefix).domains.get(domain)
        if obs is None:
            raise Refused(f"{domain} does not exist")
        if obs.serial_log and is_local(uri):
            text = con.tail(obs.serial_log, lines)
        else:
            text = con.capture(d.conn, domain, 2.0).decode(errors="replace").replace("\r", "")
        return "\n".join(redact(text.splitlines()[-lines:]))


def watch_lifecycle(conn, lab: str, on_change) -> None:
    """Call `on_change()` whenever a domain of `lab` (any student) starts, stops, is defined, reverted...

    Needs libvirt's default event loop registered before `conn` was opened (driver.console.prepare).
    (Belongs in driver/libvirt_driver.py; here while that file is being reworked.)"""
    import libvirt

    prefix = lab + "-"

    def on_event(_conn, dom, _event, _detail, _opaque):
        if dom.name().startswith(prefix):
            on_change()

    conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_event, None)
    conn.setKeepAlive(5, 3)
