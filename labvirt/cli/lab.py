"""Lab commands: init, plan, up, down, destroy, status."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from labvirt.cli.options import Connect, Json, LabDir, Student, default_dir

Recreate = Annotated[bool, typer.Option("--recreate", help="Recreate nodes whose change cannot be applied in place.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Only show the plan; change nothing.")]
DomainType = Annotated[Optional[str], typer.Option(
    help="Override the domain type (kvm or qemu) the host check would choose.")]
Workers = Annotated[int, typer.Option("--workers", min=1, max=64, help="Concurrent libvirt operations.")]
Force = Annotated[bool, typer.Option("--force", help="Start the nodes even when they do not fit in the host's memory.")]
Adopt = Annotated[bool, typer.Option("--adopt", help="Take over this lab's objects that were made from another "
                                                     "lab directory (after moving the lab directory).")]


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("plan")(plan)
    app.command("up")(up)
    app.command("down")(down)
    app.command("destroy")(destroy)
    app.command("status")(status)


def init(
    directory: Annotated[str, typer.Argument(help="Directory to create the lab in.")],
    name: Annotated[Optional[str], typer.Option(help="Lab name (default: the directory's name).")] = None,
) -> None:
    """Scaffold a new lab directory (controller + compute, NAT and host-only networks)."""
    from labvirt.scaffold import scaffold
    from labvirt.cli.output import ok

    created = scaffold(directory, name)
    ok(f"created lab {created!r} in {directory}; edit lab.toml, domains/, networks/, images/, then 'labvirt plan -C {directory}'")


def plan(
    directory: LabDir = "",
    connect: Connect = None,
    student: Student = None,
    json_out: Json = False,
    xml: Annotated[Optional[str], typer.Option("--xml", metavar="DIR",
                                               help="Write every libvirt XML document into DIR, one file per object.")] = None,
    offline: Annotated[bool, typer.Option(help="Do not look at libvirt: plan as if nothing existed.")] = False,
    domain_type: DomainType = None,
) -> None:
    """Show what 'up' would create or change (networks, nodes, volumes), as tables or --json.
    Exits 1 when 'up' would refuse it ('blocked:' lines other than golden images 'up' builds)."""
    from labvirt.ops.session import Session
    from labvirt.core.summary import describe
    from labvirt.cli.output import print_json, warn

    session = Session.open(directory or default_dir(), connect, student, offline=offline, domain_type=domain_type)
    with session:
        desired, the_plan = session.plan_up()
    if xml:
        written = write_xml(desired, the_plan, xml)
        from labvirt.cli.output import ok

        ok(f"wrote {len(written)} XML documents to {xml}")
    data = describe(desired, the_plan)
    data["host"] = session.host_summary()
    if json_out:
        print_json(data)
    else:
        from labvirt.cli.tables import print_plan

        print_plan(data)
    for w in desired.warnings:
        warn(w)
    if the_plan.refused:
        from labvirt.core.errors import Reported

        raise Reported()


def write_xml(desired, the_plan, directory: str) -> list[str]:
    import os

    from labvirt.core.render import render_domain, render_network, render_pool, render_volume, tostring

    os.makedirs(directory, exist_ok=True)
    docs = [(f"network-{n.name}.xml", render_network(n)) for n in desired.networks if not n.external]  # the host's own
    docs.append((f"pool-{desired.pool.name}.xml", render_pool(desired.pool)))
    docs += [(f"volume-{v.pool}-{v.name}.xml", render_volume(v)) for v in desired.volumes]
    docs += [(f"domain-{d.name}.xml", render_domain(d)) for d in desired.domains]
    written = []
    for fname, tree in docs:
        path = os.path.join(directory, fname)
        with open(path, "w") as f:
            f.write(tostring(tree))
        written.append(path)
    return written



def _apply(session, the_plan, title: str, workers: int, shutdown_timeout: float = 60.0):
    from labvirt.ops.engine import apply
    from labvirt.cli.output import note
    from labvirt.cli.progress import progress

    with progress(title, len(the_plan.actions)) as on_event:
        result = apply(the_plan, session.driver, workers=workers, on_event=on_event,
                       shutdown_timeout=shutdown_timeout)
    for m in result.messages:
        note(m)
    return result


def up(
    directory: LabDir = "",
    connect: Connect = None,
    student: Student = None,
    dry_run: DryRun = False,
    recreate: Recreate = False,
    no_start: Annotated[bool, typer.Option("--no-start", help="Define everything, start nothing.")] = False,
    no_build: Annotated[bool, typer.Option("--no-build", help="Stop when a golden image is missing "
                                                                 "instead of building it.")] = False,
    workers: Workers = 8,
    domain_type: DomainType = None,
    json_out: Json = False,
    force: Force = False,
    adopt: Adopt = False,
    wait: Annotated[bool, typer.Option("--wait", help="Return when every node is ready: lease at its address, "
                                                      "ssh with the host key labvirt gave it, cloud-init done.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits at most.")] = 900.0,
) -> None:
    """Create or update the lab on the libvirt host and start its nodes. A second run changes nothing."""
    from labvirt.ops.session import Session
    from labvirt.core.summary import describe
    from labvirt.cli.output import ok, print_json, warn

    with Session.open(directory or default_dir(), connect, student, lock=not dry_run,
                      domain_type=domain_type) as session:
        from labvirt.cli.images import build_images
        from labvirt.ops.nodes import plan_up

        desired, the_plan = plan_up(session, recreate=recreate, start=not no_start, dry_run=dry_run,
                                    build=not no_build, force=force, adopt=adopt,
                                    build_image=lambda name: build_images(session, [name], force=False))
        for w in desired.warnings:
            warn(w)
        if dry_run:
            data = describe(desired, the_plan)
            data["host"] = session.host_summary()
            if json_out:
                print_json(data)
            else:
                from labvirt.cli.tables import print_plan

                print_plan(data)
            if the_plan.refused or (no_build and the_plan.missing_images):
                from labvirt.core.errors import Reported

                raise Reported()
            return
        where = f"{session.uri}" + (" (simulated)" if session.simulated else "")
        if the_plan.empty and not the_plan.blockers:
            ok(f"lab {desired.copy.prefix} is up to date on {where}: nothing to do")
        else:
            _apply(session, the_plan, f"up {desired.copy.prefix}", workers)
            ok(f"lab {desired.copy.prefix} is up on {where}: {len(the_plan.actions)} actions")
        for n in the_plan.notes:
            warn(n)
        ready = wait_for_nodes(session, desired, timeout) if wait and not no_start else None
        if json_out:
            print_json({"lab": desired.copy.lab, "student": desired.copy.student, "uri": session.uri,
                        "actions": [a.describe() for a in the_plan.actions], "notes": list(the_plan.notes),
                        **({"ready": ready} if ready is not None else {})})


def wait_for_nodes(session, desired, timeout: float) -> dict:
    """`--wait`: a line per node as it gets its lease and becomes ready; bounded by `timeout`."""
    import time

    from labvirt.cli.output import err, ok
    from labvirt.ops.nodes import wait_ready

    started = time.monotonic()
    with err().status(f"waiting up to {timeout:g}s for the nodes") as status:
        def progress(node: str, what: str) -> None:
            if what == "ready":
                ok(f"{node} ready after {time.monotonic() - started:.0f}s")
            else:
                status.update(f"{node}: {what}")

        return wait_ready(session, desired, timeout, on_progress=progress)


def down(
    directory: LabDir = "",
    connect: Connect = None,
    student: Student = None,
    purge: Annotated[bool, typer.Option("--purge", help="Also remove everything (same as 'destroy').")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a graceful shutdown before powering off.")] = 60.0,
    workers: Workers = 8,
) -> None:
    """Shut the lab's nodes down (graceful, bounded by --timeout, then power off)."""
    if purge:
        return destroy(directory, connect, student, workers=workers)
    from labvirt.core.plan import plan_down
    from labvirt.ops.session import Session
    from labvirt.cli.output import ok

    with Session.open(directory or default_dir(), connect, student, lock=True) as session:
        desired = session.desired()
        the_plan = plan_down(desired, session.observe())
        if the_plan.blockers:
            from labvirt.core.errors import ConflictError

            raise ConflictError(the_plan.blockers[0])
        if the_plan.empty:
            ok(f"lab {desired.copy.prefix}: no node is running")
            return
        _apply(session, the_plan, f"down {desired.copy.prefix}", workers, shutdown_timeout=timeout)
        ok(f"lab {desired.copy.prefix}: {len(the_plan.actions)} nodes shut down")


def destroy(
    directory: LabDir = "",
    connect: Connect = None,
    student: Student = None,
    workers: Workers = 8,
) -> None:
    """Remove the lab: nodes (with snapshots), disks, pool and networks. Only objects labvirt made."""
    from labvirt.core.plan import plan_destroy
    from labvirt.ops.session import Session
    from labvirt.cli.output import ok

    with Session.open(directory or default_dir(), connect, student, lock=True) as session:
        desired = session.desired()
        the_plan = plan_destroy(desired, session.observe())
        if the_plan.empty:
            ok(f"lab {desired.copy.prefix}: nothing to remove")
        else:
            _apply(session, the_plan, f"destroy {desired.copy.prefix}", workers)
            ok(f"lab {desired.copy.prefix} removed: {len(the_plan.actions)} actions")
        for b in the_plan.blockers:
            from labvirt.cli.output import warn

            warn(b)


def status(
    directory: LabDir = "",
    connect: Connect = None,
    student: Student = None,
    json_out: Json = False,
) -> None:
    """Nodes (state, vCPU, memory, addresses, snapshot), networks, and drift from the lab file."""
    from labvirt.ops.graph import lab_status_of
    from labvirt.ops.session import Session
    from labvirt.cli.output import print_json

    with Session.open(directory or default_dir(), connect, student) as session:
        data = lab_status_of(session)
        data["uri"] = session.uri
    if json_out:
        print_json(data)
    else:
        from labvirt.cli.tables import print_status

        print_status(data)
