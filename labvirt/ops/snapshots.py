"""Lab-level snapshots: every node of a lab copy under one name, all or nothing.

Taking one pauses every running node, snapshots all nodes concurrently (internal snapshots: disk,
and memory for nodes that run), then resumes them: one consistent moment. A snapshot of a paused
node records "paused", so the node's real state is kept in the snapshot's description
("labvirt-state: running"), and revert restores running nodes paused first, then resumes them
together. If any node fails, the snapshots this run took are deleted and the error names the node.
"""

from __future__ import annotations

from labvirt.core.desired import DesiredLab
from labvirt.core.errors import LabvirtError, NotFoundError
from labvirt.core.observed import Observed, ObservedDomain, claim
from labvirt.ops.parallel import each
from labvirt.core.render import render_snapshot, tostring

STATE_MARK = "labvirt-state: "
RESERVED = ("list", "revert", "delete", "create")


class SnapshotError(LabvirtError):
    pass


def encode_description(description: str, state: str) -> str:
    return f"{description}\n{STATE_MARK}{state}" if description else f"{STATE_MARK}{state}"


def decode_description(text: str) -> tuple[str, str | None]:
    lines = (text or "").splitlines()
    if lines and lines[-1].startswith(STATE_MARK):
        return "\n".join(lines[:-1]), lines[-1][len(STATE_MARK):].strip()
    return text or "", None


def lab_nodes(desired: DesiredLab, observed: Observed) -> list[ObservedDomain]:
    """The lab copy's domains as they exist; refuses when one is missing or not labvirt's."""
    nodes, missing = [], []
    for dom in desired.domains:
        obs = observed.domains.get(dom.name)
        if obs is None:
            missing.append(dom.key)
            continue
        owned = claim(obs.owner, "node", desired.copy)
        if not owned.ours:
            raise LabvirtError(f"domain {dom.name!r} {owned.why}; not touching it")
        nodes.append(obs)
    if missing:
        raise NotFoundError(f"nodes not created yet: {', '.join(missing)} (run 'labvirt up' first)")
    return nodes


def _check_name(name: str) -> None:
    if not name or name.startswith("-") or "/" in name or any(c.isspace() for c in name):
        raise LabvirtError(f"snapshot name {name!r}: use letters, digits, '-', '_', '.' (no spaces or '/')")


def _snapshot_xml(node: ObservedDomain, name: str, description: str) -> str:
    internal, excluded = [], []
    for d in node.disk_devices:
        if d.device == "disk":
            if d.format != "qcow2":
                raise SnapshotError(f"{node.name}: disk {d.dev} is {d.format or 'of unknown format'}; "
                                    "internal snapshots need qcow2 (recreate the node with a qcow2 disk)")
            internal.append(d.dev)
        else:                       # CD-ROMs (the cloud-init seed) are read-only: nothing to snapshot
            excluded.append(d.dev)
    return tostring(render_snapshot(name, encode_description(description, node.state),
                                    tuple(internal), tuple(excluded)))


def take(driver, desired: DesiredLab, observed: Observed, name: str, description: str = "",
         workers: int = 8) -> list[str]:
    """Snapshot every node as `name`. Returns the domain names. All or nothing."""
    _check_name(name)
    nodes = lab_nodes(desired, observed)
    have = [n.name for n in nodes if name in n.snapshots]
    if have:
        raise SnapshotError(f"snapshot {name!r} already exists on {', '.join(have)}; "
                            f"delete it first ('labvirt snapshot delete {name}')")
    xml = {n.name: _snapshot_xml(n, name, description) for n in nodes}   # refuses raw disks before anything
    running = [n.name for n in nodes if n.state == "running"]
    paused = []
    try:
        for dom, _, err in each(running, driver.suspend, workers):
            if err is None:
                paused.append(dom)
            else:
                raise SnapshotError(f"{dom}: could not pause it for a consistent snapshot: {err}")
        results = each([n.name for n in nodes], lambda d: driver.create_snapshot(d, xml[d]), workers)
        failed = [(d, e) for d, _, e in results if e is not None]
        if failed:
            taken = [d for d, _, e in results if e is None]
            undo = each(taken, lambda d: driver.delete_snapshot(d, name), workers)
            kept = [d for d, _, e in undo if e is not None]
            dom, err = failed[0]
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            undone = f"removed it from the {len(taken) - len(kept)} nodes that had it"
            if kept:
                undone += f"; could not remove it from {', '.join(kept)}: 'labvirt snapshot delete {name}'"
            raise SnapshotError(f"snapshot {name!r} failed on {dom}: {err}{more}; {undone}")
    finally:
        each(paused, driver.resume, workers)
    return [n.name for n in nodes]


def revert(driver, desired: DesiredLab, observed: Observed, name: str, workers: int = 8,
           on_note=lambda message: None) -> dict[str, str]:
    """Every node back to `name`, including whether it ran. Returns domain -> state after revert.
    Running nodes get their clock set to the host's time (guest agent); where that cannot be done,
    `on_note` says why (the guest's clock then lags by the time since the snapshot)."""
    nodes = lab_nodes(desired, observed)
    lacking = [n.name for n in nodes if name not in n.snapshots]
    if lacking:
        raise NotFoundError(f"snapshot {name!r} is missing on {', '.join(lacking)}; "
                            "see 'labvirt snapshot list'")
    target = {}
    for n in nodes:
        snap = next(s for s in driver.snapshots(n.name) if s["name"] == name)
        target[n.name] = decode_description(snap["description"])[1] or snap["state"] or "shutoff"
    live = [d for d, state in target.items() if state in ("running", "paused")]
    results = each(list(target), lambda d: driver.revert_snapshot(d, name, paused=d in live), workers)
    failed = [(d, e) for d, _, e in results if e is not None]
    if failed:
        dom, err = failed[0]
        raise SnapshotError(f"revert to {name!r} failed on {dom}: {err}")
    to_resume = [d for d in live if target[d] == "running"]
    for dom, _, err in each(to_resume, driver.resume, workers):
        if err is not None:
            raise SnapshotError(f"{dom}: reverted but could not resume: {err}")
    if not driver.simulated:
        for dom, why, err in each(to_resume, driver.sync_clock, workers):
            if err is not None or why is not None:
                on_note(f"{dom}: clock not set to the host's time ({err or why}); it lags by the time since "
                        f"snapshot {name!r} was taken")
    return target


def delete(driver, desired: DesiredLab, observed: Observed, name: str, workers: int = 8) -> list[str]:
    nodes = lab_nodes(desired, observed)
    having = [n.name for n in nodes if name in n.snapshots]
    if not having:
        raise NotFoundError(f"no snapshot {name!r} in lab {desired.copy.prefix}")
    results = each(having, lambda d: driver.delete_snapshot(d, name), workers)
    failed = [(d, e) for d, _, e in results if e is not None]
    if failed:
        raise SnapshotError(f"deleting {name!r} failed on {failed[0][0]}: {failed[0][1]}")
    return having


def list_lab(driver, desired: DesiredLab, observed: Observed) -> list[dict]:
    """Lab snapshots: name, description, created, complete (every node has it), and per node."""
    by_name: dict[str, dict] = {}
    keys = {d.name: d.key for d in desired.domains}
    nodes = [n for n in (observed.domains.get(d.name) for d in desired.domains) if n is not None]
    for node in nodes:
        for s in driver.snapshots(node.name):
            desc, state = decode_description(s["description"])
            entry = by_name.setdefault(s["name"], {"name": s["name"], "description": desc, "created": s["created"],
                                                   "nodes": {}})
            entry["created"] = min(entry["created"], s["created"])
            entry["nodes"][keys[node.name]] = {"state": state or s["state"], "created": s["created"],
                                               "current": s["current"]}
    out = sorted(by_name.values(), key=lambda e: e["created"])
    for e in out:
        e["complete"] = len(e["nodes"]) == len(desired.domains)
    return out
