"""engine.apply(plan, driver): the only place where planned actions become side effects.

Phases run in order; inside a phase, the actions of one chain (one object, or a pool with its
volumes) run in order and chains run concurrently on a bounded pool of workers. A failed chain does not stop the other chains of its
phase, but no later phase starts: a re-run plans what is left from what exists.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from labvirt.core import plan as p
from labvirt.core.errors import LabvirtError
from labvirt.ops.volumes import removed_on_failure

Event = Callable[[str, p.Action, "Exception | None"], None]   # ("start" | "done" | "fail", action, error)


@dataclass
class Result:
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
    p.AddDhcpHost: lambda a, d, t: d.update_dhcp_host(a.target, a.xml, add=True, live=a.live),
    p.RemoveDhcpHost: lambda a, d, t: d.update_dhcp_host(a.target, a.xml, add=False, live=a.live),
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
    """Apply every action of `plan`. Raises ApplyError when something failed (result attached)."""
    if plan.blockers:
        raise LabvirtError(plan.blockers[0] + (f" (and {len(plan.blockers) - 1} more problems)"
                                               if len(plan.blockers) > 1 else ""))
    result = Result()
    lock = threading.Lock()
    emit = on_event or (lambda *a: None)

    def chain(actions: list[p.Action]) -> None:
        for i, action in enumerate(actions):
            emit("start", action, None)
            try:
                msg = run_action(action, driver, shutdown_timeout)
            except Exception as e:  # reported per action; the other chains go on
                with lock:
                    result.failed.append((action, e))
                    result.skipped.extend(actions[i + 1:])
                emit("fail", action, e)
                return
            with lock:
                result.done.append(action)
                if msg:
                    result.messages.append(msg)
            emit("done", action, None)

    phases = plan.phases()
    for n, actions in enumerate(phases):
        chains: dict[str, list[p.Action]] = {}
        for a in actions:
            chains.setdefault(a.chain_key, []).append(a)
        if len(chains) == 1 or workers <= 1:
            for c in chains.values():
                chain(c)
        else:
            with ThreadPoolExecutor(max_workers=min(workers, len(chains))) as pool:
                list(pool.map(chain, chains.values()))
        if result.failed:
            for later in phases[n + 1:]:
                result.skipped.extend(later)
            raise ApplyError(result)
    return result
