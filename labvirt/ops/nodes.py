"""What the node-level commands decide: which addresses a node has (waiting for them, bounded), how to
log in to it, and whether `up` builds the golden images it is missing first."""

from __future__ import annotations

import subprocess
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


READY_SCRIPT = ("if command -v cloud-init >/dev/null 2>&1 && [ -d /run/cloud-init ]; then "
                "cloud-init status --wait >/dev/null 2>&1; cloud-init status; else echo 'status: none'; fi")


def wait_ready(session, desired, timeout: float = 600.0, on_progress: Callable[[str, str], None] = lambda n, s: None,
               clock=time.monotonic, sleep=time.sleep) -> dict[str, dict]:
    """Wait, bounded by `timeout`, until every running node is ready: its address seen by libvirt (a
    lease or the guest agent at the reserved address; a node with a static address is also tried
    over ssh directly, as its guest may never ask for a lease), ssh answering with the host key labvirt gave it (strict,
    labvirt's known_hosts), and cloud-init finished where the node has a seed. Polls each node with
    back-off (libvirt has no event for a DHCP lease or an sshd). Returns node -> what it reached;
    raises LabvirtError naming what each unready node did and did not reach."""
    from labvirt.core.login import login_address
    from labvirt.driver.children import capture

    seeded = {v.node for v in desired.volumes if v.kind == "seed"}
    observed = session.observe()
    nodes = [d for d in desired.domains
             if (o := observed.domains.get(d.name)) is not None and o.state == "running"]
    reached = {d.key: {"lease": False, "ssh": False, "cloud-init": None if d.key not in seeded else False,
                       "said": ""} for d in nodes}
    if session.simulated:
        for d in nodes:
            reached[d.key].update(lease=True, ssh=True, said="simulated: nothing boots")
        return reached
    deadline = clock() + timeout
    delay = {d.key: 1.0 for d in nodes}
    pending = list(nodes)
    while pending:
        for dom in list(pending):
            state = reached[dom.key]
            if not state["lease"]:
                found, said = session.driver.addresses(dom.name)
                want = {str(n.address) for n in dom.nics if n.address is not None}
                # a lease, or the guest agent reporting the address: a guest with static addresses
                # from its seed never asks for a lease
                ips = {o["ip"] for n in dom.nics for o in found.get(n.mac, []) if o["source"] in ("lease", "agent")}
                state["lease"] = bool(want & ips) if want else bool(ips)
                state["said"] = "; ".join(f"{k}: {v}" for k, v in said.items())
                if state["lease"]:
                    on_progress(dom.key, "lease")
            if state["lease"] or login_address(dom) is not None:     # static: ssh proves it anyway
                # one argument: ssh hands the remote command to the login shell as one line
                argv = ssh_command(session, dom.key, [READY_SCRIPT])
                try:
                    r = capture(argv, timeout=max(5.0, min(120.0, deadline - clock())))
                except subprocess.TimeoutExpired:
                    state["said"] = "ssh: no answer in time"
                else:
                    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in r.stderr or "verification failed" in r.stderr:
                        raise LabvirtError(f"{dom.key}: its ssh host key is not the one labvirt gave it "
                                           f"({r.stderr.strip().splitlines()[-1]}); was the node built without its seed?")
                    if r.returncode == 0:
                        state["ssh"] = True
                        status = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
                        if status == "status: done":
                            state["cloud-init"] = True
                        elif status == "status: error":
                            raise LabvirtError(f"{dom.key}: cloud-init finished with errors; see "
                                               f"'labvirt ssh {dom.key} -- cloud-init status --long'")
                        state["said"] = status
                    else:
                        state["said"] = (r.stderr.strip().splitlines() or [f"ssh exit {r.returncode}"])[-1]
                if state["ssh"] and state["cloud-init"] is not False:
                    on_progress(dom.key, "ready")
                    pending.remove(dom)
        if not pending:
            break
        if clock() >= deadline:
            lines = []
            for dom in pending:
                s = reached[dom.key]
                got = [k for k in ("lease", "ssh", "cloud-init") if s[k]]
                lacking = [k for k in ("lease", "ssh", "cloud-init") if s[k] is False]
                lines.append(f"{dom.key}: reached {', '.join(got) or 'nothing'}; not {', '.join(lacking)} ({s['said']})")
            raise LabvirtError(f"not ready within {timeout:g}s: " + " | ".join(lines))
        step = min(delay.values())
        sleep(min(step, max(0.0, deadline - clock())))
        for k in delay:
            delay[k] = min(delay[k] * 1.5, 5.0)
    return reached
