"""Class mode, the side-effect part: one driver per host, students worked on in parallel.

Each student's work is the single-lab work (plan, engine) on the student's copy, on the host the
student was placed on. A bounded pool of workers runs students concurrently; one student's failure
is recorded and does not stop the others.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Callable

from labvirt.core import class_layout as cr
from labvirt.core.record import MutableRecord, replace
from labvirt.ops import class_record, engine
from labvirt.core import plan as p
from labvirt.core.capacity import host_capacity, needs_of
from labvirt.core.desired import HostParams, desire
from labvirt.core.errors import LabvirtError
from labvirt.ops.parallel import each
from labvirt.ops.session import (_finish, base_image_formats, desired_on, host_params, host_verdict, lab_lock,
                                 open_driver, plan_up_for, resolve_uri)
from labvirt.core.spec import LabSpec

INNER_WORKERS = 4     # concurrent libvirt operations inside one student's lab


class Outcome(MutableRecord):
    student: str
    ok: bool
    message: str


class Classroom:
    """A class of copies of one lab. Use as a context manager (closes drivers, saves simulators)."""

    def __init__(self, spec: LabSpec, connect: str | None = None):
        self.spec = spec
        self.config = cr.load_class(spec, spec.class_table)
        self.record = class_record.load_record(spec.name)
        self.connect = connect
        self._drivers: dict[str, object] = {}
        self._params: dict[str, HostParams] = {}
        self._open = threading.Lock()
        self._stack = contextlib.ExitStack()

    def __enter__(self):
        self._stack.enter_context(lab_lock(self.spec.name, "_class", "class"))
        return self

    def __exit__(self, *exc):
        self._stack.close()

    # -- hosts ----------------------------------------------------------------------------------
    def host_specs(self) -> list[cr.ClassHost]:
        if self.connect:
            return [cr.ClassHost(self.connect)]
        return list(self.config.hosts) or [cr.ClassHost(resolve_uri(None))]

    def driver(self, uri: str):
        with self._open:
            if uri not in self._drivers:
                d = open_driver(uri)
                self._stack.callback(_finish, d)
                self._drivers[uri] = d
                from labvirt.ops.external import with_host_networks

                # as a single lab's session: base images' formats read from their headers, the host's
                # networks that the lab attaches to but does not own
                params = replace(host_params(self.spec, host_verdict(d)), base_image_formats=base_image_formats(self.spec))
                self._params[uri] = with_host_networks(params, self.spec, d)
            return self._drivers[uri]

    def params(self, uri: str) -> HostParams:
        self.driver(uri)
        return self._params[uri]

    def capacity(self, uri: str):
        info = self.driver(uri).host_info()
        return host_capacity(info["cpus"], info["memory"], info.get("disk"),
                             reserve=0 if self.driver(uri).simulated else 2**30)

    # -- roster, subnets, placement ---------------------------------------------------------------
    def enroll(self, students: list[str]) -> list[str]:
        """Allocate subnets and hosts for new students (refusing a class that does not fit) and record it."""
        from labvirt.core.external import allocate_addresses, missing_ranges

        missing = missing_ranges(self.spec, self.config.external)
        if missing:
            raise LabvirtError(missing)
        hosts = self.host_specs()
        existing_hosts = {s: r["host"] for s, r in self.record.students.items()}
        taken = []
        for h in hosts:
            for net in self.driver(h.uri).observe().networks.values():
                if net.owner and net.owner.lab == self.spec.name:
                    continue          # this class's own networks are in the record already
                taken += [_network(a) for a in net.addresses]
        domain_type = self.params(hosts[0].uri).domain_type
        one = needs_of(self.spec, 1, domain_type)
        placement = cr.place(students, one, [(h.uri, self.capacity(h.uri), h.overcommit) for h in hosts],
                             existing_hosts)
        subnets = cr.allocate_subnets(self.spec, students, self.config.subnet_pool, taken,
                                      {s: r["subnets"] for s, r in self.record.students.items()})
        addresses = allocate_addresses(self.spec, students, self.config.external,
                                       {s: r.get("addresses", {}) for s, r in self.record.students.items()})
        for s in students:
            self.record.students[s] = {"host": placement[s], "subnets": subnets[s]}
            if addresses.get(s):
                self.record.students[s]["addresses"] = addresses[s]
        class_record.save_record(self.record)
        return students

    def fit(self, count: int) -> dict:
        """Would a class of `count` students fit on the class's hosts? Read-only: nothing is recorded.

        Per host: the students placement would put there, what they need (vCPUs, memory, disk),
        what the host has, and the use with and without the host's overcommit."""
        from labvirt.core.capacity import usage

        hosts = self.host_specs()
        domain_type = self.params(hosts[0].uri).domain_type
        one = needs_of(self.spec, 1, domain_type)
        names = cr.student_names(count)
        existing = {s: r["host"] for s, r in self.record.students.items()}
        try:
            placement = cr.place(names, one, [(h.uri, self.capacity(h.uri), h.overcommit) for h in hosts], existing)
            fits, lacks = True, {}
        except cr.ClassDoesNotFit as e:
            placement, fits = {}, False
            lacks = {r["uri"]: r for r in e.rows}
        rows = []
        for h in hosts:
            cap = self.capacity(h.uri)
            n = sum(1 for uri in placement.values() if uri == h.uri) if fits else lacks[h.uri]["fits"]
            rows.append({"uri": h.uri, "students": n,
                         "overcommit": {"cpu": h.overcommit.cpu, "memory": h.overcommit.memory,
                                        "disk": h.overcommit.disk},
                         "use": [{"resource": u.resource, "need": u.need, "have": u.have, "limit": u.limit,
                                  "without_overcommit": u.overcommit, "ok": u.ok}
                                 for u in usage(one * n, cap, h.overcommit)],
                         "lacks": lacks.get(h.uri, {}).get("lacks", [])})
        return {"students": count, "fits": fits, "per_student": {"vcpus": one.vcpus, "memory": one.memory,
                                                                 "disk": one.disk}, "hosts": rows}

    def students(self, only: list[str] | None = None) -> list[str]:
        known = list(self.record.students)
        if not only:
            return known
        unknown = [s for s in only if s not in self.record.students]
        if unknown:
            raise LabvirtError(f"no student {unknown[0]!r} in the class (students: {', '.join(known) or 'none'})")
        return list(only)

    # -- per-student work -------------------------------------------------------------------------
    def run(self, students: list[str], work: Callable[[str], str], workers: int | None = None,
            on_done: Callable[[Outcome], None] = lambda o: None) -> list[Outcome]:
        outcomes = []

        def one(student):
            try:
                msg = work(student)
                o = Outcome(student, True, msg)
            except Exception as e:  # one student's failure is reported, the others go on
                o = Outcome(student, False, str(e))
            on_done(o)
            return o

        for _, o, _ in each(students, one, workers or self.config.workers):
            outcomes.append(o)
        return outcomes

    def _target(self, student: str):
        uri = self.record.host(student)
        return self.record.copy(student), self.driver(uri), self.params(uri)

    def up(self, student: str, start: bool = True) -> str:
        copy, driver, params = self._target(student)
        desired, the_plan = plan_up_for(self.spec, copy, params, driver.observe(copy.prefix), start=start)
        warned = self._external(desired, driver, params)
        if the_plan.empty:
            return "up to date" + warned
        engine.apply(the_plan, driver, workers=INNER_WORKERS)
        return f"{len(the_plan.actions)} actions" + warned

    def _external(self, desired, driver, params) -> str:
        """Refuse (raise) what the host's own networks forbid; else the warnings, as a message tail."""
        from labvirt.ops.external import check_external

        verdict = check_external(self.spec, desired, driver, params)
        if verdict.refusals:
            raise LabvirtError(verdict.refusals[0] + (f" (and {len(verdict.refusals) - 1} more)"
                                                      if len(verdict.refusals) > 1 else ""))
        return "".join(f"; warning: {w}" for w in verdict.warnings)

    def down(self, student: str) -> str:
        copy, driver, params = self._target(student)
        the_plan = p.plan_down(desire(self.spec, copy, params), driver.observe(copy.prefix))
        engine.apply(the_plan, driver, workers=INNER_WORKERS, shutdown_timeout=30)
        return f"{len(the_plan.actions)} nodes shut down"

    def destroy(self, student: str) -> str:
        copy, driver, params = self._target(student)
        the_plan = p.plan_destroy(desire(self.spec, copy, params), driver.observe(copy.prefix))
        engine.apply(the_plan, driver, workers=INNER_WORKERS)
        with self._open:
            self.record.students.pop(student, None)
            class_record.save_record(self.record)
        return f"removed ({len(the_plan.actions)} actions)"

    def rebuild(self, student: str) -> str:
        """Drop the student's nodes (with snapshots), overlays and seeds; recreate them from the golden
        images and start. Networks and the pool stay."""
        from labvirt.core import rebuild

        copy, driver, params = self._target(student)
        observed = driver.observe(copy.prefix)              # once: the up is planned on what removal leaves
        desired = desired_on(self.spec, copy, params, observed)     # the removal leaves the image pool as it is
        gone = rebuild.removal(desired, observed)
        desired, up = plan_up_for(self.spec, copy, params, gone.after, desired=desired)
        warned = self._external(desired, driver, params)    # refused before anything is removed
        the_plan = rebuild.pipeline(desired, gone, up)
        engine.apply(the_plan, driver, workers=INNER_WORKERS)
        return f"rebuilt: {len(the_plan.actions)} actions" + warned

    def wait(self, student: str, timeout: float) -> str:
        """`--wait`: the single-lab wait (ops.nodes.wait_ready) on the student's copy, bounded by `timeout`."""
        import time

        from labvirt.ops.nodes import wait_ready
        from labvirt.ops.session import Session

        copy, driver, params = self._target(student)
        session = Session(spec=self.spec, copy=copy, uri=self.record.host(student), driver=driver, host=params)
        started = time.monotonic()
        reached = wait_ready(session, session.desired(), timeout)
        return f"{len(reached)} nodes ready after {time.monotonic() - started:.0f}s"

    def snapshot(self, student: str, name: str, description: str = "") -> str:
        from labvirt.ops import snapshots

        copy, driver, params = self._target(student)
        snapshots.take(driver, desire(self.spec, copy, params), driver.observe(copy.prefix), name, description,
                       workers=INNER_WORKERS)
        return f"snapshot {name}"

    def revert(self, student: str, name: str) -> str:
        from labvirt.ops import snapshots

        copy, driver, params = self._target(student)
        snapshots.revert(driver, desire(self.spec, copy, params), driver.observe(copy.prefix), name,
                         workers=INNER_WORKERS)
        return f"reverted to {name}"

    def ensure_images(self) -> list[str]:
        """Golden images the lab uses, on every host with students; built where missing."""
        from labvirt.ops import images

        built = []
        for uri in sorted({r["host"] for r in self.record.students.values()}):
            driver = self.driver(uri)
            params = self.params(uri)
            for name in sorted({n.image for n in self.spec.nodes if n.image}):
                observed = driver.observe()
                golden, what = images.build(self.spec, name, driver, images.images_dir(self.spec, params, observed))
                if what != "up to date":
                    built.append(f"{name} on {uri}: {what}")
        return built

    def status(self) -> dict:
        """Student by node: state, addresses, current snapshot; from one observation per host."""
        from labvirt.core.status import lab_status

        by_host: dict[str, object] = {}
        rows = []
        for student in self.record.students:
            copy, driver, params = self._target(student)
            uri = self.record.host(student)
            if uri not in by_host:
                by_host[uri] = driver.observe()
            observed = by_host[uri]
            desired, the_plan = plan_up_for(self.spec, copy, params, observed, start=False, for_apply=False)
            s = lab_status(desired, observed, the_plan, simulated=driver.simulated)
            s["host"] = uri
            s["subnets"] = self.record.students[student]["subnets"]
            rows.append(s)
        return {"lab": self.spec.name, "students": rows, "nodes": [n.name for n in self.spec.nodes]}


def _network(address: str):
    from ipaddress import ip_interface

    return ip_interface(address).network

