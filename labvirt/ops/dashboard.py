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
(`Classroom`); how they are queued and locked is in labvirt.ops.dashboard_actions.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time

from labvirt.core import class_layout as cr
from labvirt.ops import class_record
from labvirt.core.errors import LabvirtError, UnsupportedError
from labvirt.core.loader import load_lab
from labvirt.ops.dashboard_actions import ACTIONS, DashboardActions, Job, Refused  # noqa: F401 (the API)
from labvirt.ops.verify import StageNames

CONSOLE_LINES = 40
# a console line that may show a secret is never served (cloud-init prints generated passwords)
SECRET_LINE = re.compile(r"pass(word|wd|phrase)?\b|secret|token|PRIVATE KEY|chpasswd", re.IGNORECASE)




def redact(lines: list[str]) -> list[str]:
    return ["[line hidden: it may show a secret]" if SECRET_LINE.search(line) else line for line in lines]


class Dashboard(DashboardActions):
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
        self._verify: dict[str, dict] = {}      # student -> stage -> result of the last checks
        self.stage_names = StageNames(self.spec.directory)
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
            stages = self.stage_names()
            m["verify"] = {"available": bool(stages), "stages": stages,
                           "reason": None if stages else f"no stages in {self.spec.directory}/checks"}
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
            from labvirt.driver.events import watch_lifecycle

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
        from labvirt.core.uris import parse_sim_uri
        from labvirt.driver.state_files import sim_dir

        paths = [class_record.record_path(self.spec.name)]
        with self._lock:
            hosts = [h["uri"] for h in self._model["hosts"]]
        for uri in hosts:
            name = parse_sim_uri(uri)
            if name is not None:
                paths.append(os.path.join(sim_dir(name), "node.xml"))
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
        from labvirt.core.uris import parse_sim_uri

        if parse_sim_uri(uri) is not None:
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
