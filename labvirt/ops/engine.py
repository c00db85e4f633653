"""engine.apply(plan, driver): the only place where planned actions become side effects.

Pipelined: every action runs as soon as the actions it waits for are done (its chain's previous
action and the targets it needs; labvirt.core.schedule), on a bounded pool of workers. A failure skips
only what waits for it: a re-run plans what is left from what exists.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Callable

from labvirt.core import plan as p
from labvirt.core import schedule
from labvirt.core.errors import LabvirtError
from labvirt.core.record import MutableRecord, field
from labvirt.ops.volumes import removed_on_failure

Event = Callable[[str, p.Action, "Exception | None"], None]   # ("start" | "done" | "fail", action, error)


class Result(MutableRecord):
    done: list[p.Action] = field(default_factory=list)
    failed: list[tuple[p.Action, Exception]] = field(default_factory=list)
    skipped: list[p.Action] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


class ApplyError(LabvirtError):
    def __init__(self, result: Result):
        self.result = result
        first, err = result.failed[0]
        more = f" (and {len(result.failed) - 1} more)" if len(result.failed) > 1 else ""
        super().__init__(f"{first.describe()} failed: {err}{more}; run the same command again to finish, "
                         "or 'labvirt destroy' to remove what was created")


def _shutdown(action, driver, timeout):
    if driver.shutdown_domain(action.target, timeout) == "destroyed":
        return f"{action.target} did not shut down within {timeout:g}s: powered off"
    return None


# one entry per action type (exact type: no subclass ordering to get wrong)
_RUN = {
    p.DefineNetwork: lambda a, d, t: d.define_network(a.xml),
    p.StartNetwork: lambda a, d, t: d.start_network(a.target),
    p.AutostartNetwork: lambda a, d, t: d.autostart_network(a.target),
    p.AddDhcpHost: lambda a, d, t: d.update_network_hosts(a.target, "dhcp", a.xml, add=True, live=a.live),
    p.RemoveDhcpHost: lambda a, d, t: d.update_network_hosts(a.target, "dhcp", a.xml, add=False, live=a.live),
    p.AddDnsHost: lambda a, d, t: d.update_network_hosts(a.target, "dns", a.xml, add=True, live=a.live),
    p.RemoveDnsHost: lambda a, d, t: d.update_network_hosts(a.target, "dns", a.xml, add=False, live=a.live),
    p.DeleteNetwork: lambda a, d, t: d.delete_network(a.target),
    p.DefinePool: lambda a, d, t: d.define_pool(a.xml),
    p.StartPool: lambda a, d, t: d.start_pool(a.target),
    p.DeletePool: lambda a, d, t: d.delete_pool(a.target),
    p.CreateVolume: lambda a, d, t: d.create_volume(a.pool, a.xml),
    p.CreateSeed: lambda a, d, t: create_seed(a, d),
    p.CustomizeDisk: lambda a, d, t: customize_disk(a, d),
    p.DeleteVolume: lambda a, d, t: d.delete_volume(a.pool, a.name),
    p.DefineDomain: lambda a, d, t: d.define_domain(a.xml),
    p.UpdateDomain: lambda a, d, t: d.define_domain(a.xml),
    p.AttachNic: lambda a, d, t: d.attach_nic(a.target, a.xml, attach=True),
    p.DetachNic: lambda a, d, t: d.attach_nic(a.target, a.xml, attach=False),
    p.StartDomain: lambda a, d, t: d.start_domain(a.target),
    p.ShutdownDomain: _shutdown,
    p.DestroyDomain: lambda a, d, t: d.destroy_domain(a.target),
}


def run_action(action: p.Action, driver, shutdown_timeout: float = 60.0) -> str | None:
    """Do one action with the driver; returns an optional message for the user."""
    run = _RUN.get(type(action))
    if run is None:
        raise LabvirtError(f"engine does not know how to {action.verb}")
    return run(action, driver, shutdown_timeout)


def create_seed(action: p.CreateSeed, driver) -> None:
    """Build the ISO, create a volume of its size, upload it; a half-made seed is removed again."""

    from labvirt.core.desired import DesiredVolume
    from labvirt.core.render import render_volume, tostring
    from labvirt.core.seed import build_seed_iso

    iso = build_seed_iso(dict(action.documents))
    vol = DesiredVolume(pool=action.pool, name=action.name, path="", capacity=len(iso), format="raw", kind="seed")
    driver.create_volume(action.pool, tostring(render_volume(vol)))
    with removed_on_failure(driver, action.pool, action.name):
        driver.upload_volume(action.pool, action.name, data=iso)


def customize_disk(action: p.CustomizeDisk, driver) -> None:
    """On failure the new overlay is deleted again, so a re-run creates and customizes it anew."""
    pool, name = action.target.split("/", 1)
    with removed_on_failure(driver, pool, name):
        driver.customize_disk(list(action.argv))


def apply(plan: p.Plan, driver, workers: int = 8, on_event: Event | None = None,
          shutdown_timeout: float = 60.0) -> Result:
    """Apply every action of `plan`, each as soon as what it waits for is done (labvirt.core.schedule),
    on at most `workers` threads. A failed action skips what waits for it, directly or not; the rest
    goes on, and a re-run plans what is left. Raises ApplyError when something failed (result attached).
    On Ctrl-C nothing new starts; what runs finishes."""
    if plan.blockers:
        raise LabvirtError(plan.blockers[0] + (f" (and {len(plan.blockers) - 1} more problems)"
                                               if len(plan.blockers) > 1 else ""))
    actions = list(plan.actions)
    result = Result()
    emit = on_event or (lambda *a: None)
    prereqs = schedule.prerequisites(actions)
    deps = schedule.dependents(prereqs)
    waiting = [set(pre) for pre in prereqs]
    rank = {i: r for r, i in enumerate(schedule.priority(actions))}
    ready = sorted((i for i in range(len(actions)) if not waiting[i]), key=rank.__getitem__)
    skipped: set[int] = set()

    def one(i: int):
        emit("start", actions[i], None)
        return run_action(actions[i], driver, shutdown_timeout)

    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    running: dict = {}
    try:
        while ready or running:
            for i in ready:
                running[pool.submit(one, i)] = i
            ready = []
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in sorted(finished, key=lambda f: rank[running[f]]):
                i = running.pop(future)
                error = future.exception()
                if error is not None:
                    result.failed.append((actions[i], error))
                    emit("fail", actions[i], error)
                    skipped |= schedule.downstream(i, deps)
                    continue
                result.done.append(actions[i])
                if future.result():
                    result.messages.append(future.result())
                emit("done", actions[i], None)
                for j in deps[i]:
                    waiting[j].discard(i)
                    if not waiting[j] and j not in skipped:
                        ready.append(j)
            ready.sort(key=rank.__getitem__)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if result.failed:
        result.skipped.extend(actions[i] for i in sorted(skipped, key=rank.__getitem__))
        raise ApplyError(result)
    return result
