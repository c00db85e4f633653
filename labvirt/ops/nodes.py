"""What the node-level commands decide: which addresses a node has (waiting for them, bounded), how to
log in to it, and whether `up` builds the golden images it is missing first."""

from __future__ import annotations

import time
from collections.abc import Callable

from labvirt.core.addresses import has_observed, node_addresses
from labvirt.core.errors import LabvirtError, NotFoundError


def domain_of(desired, node: str):
    """The desired domain of node `node`, or NotFoundError listing the lab's nodes."""
    for d in desired.domains:
        if d.key == node:
            return d
    raise NotFoundError(f"no node {node!r} in lab {desired.copy.prefix}; nodes: "
                        + ", ".join(d.key for d in desired.domains))


def addresses(session, desired, node: str | None = None, wait: bool = False, timeout: float = 120.0,
              clock=time.monotonic, sleep=time.sleep) -> list[dict]:
    """Planned and observed addresses per NIC of `node` (default: every node). With `wait`, poll (backing
    off up to 2 s) until every node has an observed address or `timeout` passes; then raise, naming
    every source and what it said."""
    wanted = [domain_of(desired, node).key] if node else [d.key for d in desired.domains]
    names = {d.key: d.name for d in desired.domains}
    deadline = clock() + timeout
    delay = 0.25
    while True:
        seen = {}
        for key in wanted:
            try:
                seen[names[key]] = session.driver.addresses(names[key])
            except NotFoundError:
                seen[names[key]] = ({}, {"all": "node does not exist (run 'labvirt up')"})
        data = node_addresses(desired, wanted, seen, simulated=session.simulated)
        done = all(has_observed(e) for e in data)
        if not wait or done:
            return data
        if clock() >= deadline:
            e = next(e for e in data if not has_observed(e))
            said = "; ".join(f"{src}: {msg}" for src, msg in e["sources"].items()) or "no source answered"
            raise LabvirtError(f"no address observed for {e['node']} within {timeout:g}s (tried {said})")
        sleep(min(delay, max(0.0, deadline - clock())))
        delay = min(delay * 2, 2.0)


def login(session, node: str) -> tuple[str, list[str]]:
    """(address, ssh options) to log in to `node`: the lab's user and key, its static address (else the
    one libvirt observes), labvirt's known_hosts (rewritten from the host keys labvirt holds), through
    the libvirt host for qemu+ssh URIs."""
    from labvirt.core.login import login_address, ssh_options
    from labvirt.core.uris import jump_host
    from labvirt.driver.ssh_keys import lab_key
    from labvirt.ops.session import refresh_known_hosts

    desired = session.desired()
    dom = domain_of(desired, node)
    if session.simulated:
        raise LabvirtError(f"{node} runs on the simulator ({session.uri}): there is nothing to log in to")
    address = login_address(dom)
    if address is None:
        found, _ = session.driver.addresses(dom.name)
        address = next((o["ip"] for n in dom.nics for o in found.get(n.mac, [])), None)
    if address is None:
        raise LabvirtError(f"{node} has no static address and libvirt observes none; try 'labvirt ip {node} --wait'")
    key, _ = lab_key(session.copy.lab, session.copy.student)
    known_hosts = refresh_known_hosts(desired)
    return address, ssh_options(key, known_hosts, jump_host(session.uri))


def ssh_command(session, node: str, command: list[str]) -> list[str]:
    """The ssh argv that logs in to `node` (see `login`) and runs `command` (nothing: a shell)."""
    address, options = login(session, node)
    argv = ["ssh", *options, f"{session.spec.ssh_user}@{address}"]
    return argv + (["--", *command] if command else [])


def plan_up(session, recreate: bool = False, start: bool = True, dry_run: bool = False, build: bool = True,
            force: bool = False, adopt: bool = False, build_image: Callable[[str], None] | None = None):
    """desired + plan for `up`. Golden images the plan is missing are built first (then planned again)
    when building is allowed and nothing else would make `up` refuse."""
    desired, the_plan = session.plan_up(recreate=recreate, start=start, for_apply=not dry_run, force=force, adopt=adopt)
    missing = list(the_plan.missing_images)
    if missing and build and not dry_run and build_image is not None and not the_plan.refused:
        for name in missing:
            build_image(name)
        desired, the_plan = session.plan_up(recreate=recreate, start=start, for_apply=True, force=force, adopt=adopt)
    return desired, the_plan
