"""Lab operations: snapshots, console, addresses (`ip`), ssh, /etc/hosts, Ansible inventory."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from labvirt.cli.options import Connect, Json, LabDir, Student, default_dir


class _SnapshotGroup(TyperGroup):
    """`labvirt snapshot NAME` creates; `list`, `revert NAME`, `delete NAME` are subcommands."""

    def parse_args(self, ctx, args):
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["create", *args]
        return super().parse_args(ctx, args)


snapshot_app = typer.Typer(
    cls=_SnapshotGroup, no_args_is_help=True,
    help="Whole-lab snapshots: 'labvirt snapshot NAME' takes one; list / revert NAME / delete NAME.")


def register(app: typer.Typer) -> None:
    app.add_typer(snapshot_app, name="snapshot")
    app.command("ip")(ip)
    app.command("console")(console)
    app.command("ssh")(ssh)
    app.command("hosts")(hosts)
    app.command("inventory")(inventory)


@snapshot_app.command("create")
def snapshot_create(
    name: str,
    description: Annotated[str, typer.Option("--description", "-d", help="What this snapshot is for.")] = "",
    verify: Annotated[bool, typer.Option("--verify", help="Take it only when the stage that belongs to NAME "
                                                          "holds (checks/STAGE.toml).")] = False,
    directory: LabDir = "", connect: Connect = None, student: Student = None,
) -> None:
    """Snapshot every node at one moment (memory too for running nodes). All or nothing."""
    from labvirt.ops import snapshots
    from labvirt.ops.session import Session
    from labvirt.cli.output import err, ok

    with Session.open(directory or default_dir(), connect, student, lock=True) as s:
        desired = s.desired()
        if verify:
            from labvirt.ops.verify import StageDoesNotHold, verify_for_snapshot

            try:
                with err().status(f"verifying the stage of {name}"):
                    verify_for_snapshot(s, name)
            except StageDoesNotHold as e:
                from labvirt.cli.verify import print_report

                print_report(e.report)
                raise
        with err().status(f"snapshot {name} of {desired.copy.prefix}"):
            doms = snapshots.take(s.driver, desired, s.observe(), name, description)
    ok(f"snapshot {name!r} of lab {desired.copy.prefix}: {len(doms)} nodes")


@snapshot_app.command("list")
def snapshot_list(directory: LabDir = "", connect: Connect = None, student: Student = None,
                  json_out: Json = False) -> None:
    """Lab snapshots with description, time, and per-node state."""
    import datetime

    from labvirt.ops import snapshots
    from labvirt.ops.session import Session
    from labvirt.cli.output import out, print_json

    with Session.open(directory or default_dir(), connect, student) as s:
        desired = s.desired()
        data = snapshots.list_lab(s.driver, desired, s.observe())
    if json_out:
        print_json({"lab": desired.copy.lab, "student": desired.copy.student, "snapshots": data})
        return
    from labvirt.cli.tables import _table

    t = _table(f"Snapshots of {desired.copy.prefix}", "name", "created", "nodes", "description")
    for e in data:
        when = datetime.datetime.fromtimestamp(e["created"]).strftime("%Y-%m-%d %H:%M:%S")
        nodes = ", ".join(f"{k} ({v['state']}{', current' if v['current'] else ''})" for k, v in e["nodes"].items())
        t.add_row(e["name"] + ("" if e["complete"] else " (partial)"), when, nodes, e["description"])
    out().print(t)


@snapshot_app.command("revert")
def snapshot_revert(
    name: str, directory: LabDir = "", connect: Connect = None, student: Student = None,
    wait: Annotated[bool, typer.Option("--wait", help="Return when every running node answers ssh.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits at most.")] = 300.0,
) -> None:
    """Bring every node back to snapshot NAME, running or not as it was then; running nodes' clocks are
    set to the host's time (guest agent)."""
    from labvirt.ops import snapshots
    from labvirt.ops.session import Session
    from labvirt.cli.output import err, ok, warn

    notes: list[str] = []
    with Session.open(directory or default_dir(), connect, student, lock=True) as s:
        desired = s.desired()
        with err().status(f"reverting {desired.copy.prefix} to {name}"):
            states = snapshots.revert(s.driver, desired, s.observe(), name, on_note=notes.append)
        if wait:
            from labvirt.cli.lab import wait_for_nodes

            wait_for_nodes(s, desired, timeout)
    for n in notes:
        warn(n)
    ok(f"lab {desired.copy.prefix} reverted to {name!r}: " + ", ".join(f"{d} {st}" for d, st in states.items()))


@snapshot_app.command("delete")
def snapshot_delete(name: str, directory: LabDir = "", connect: Connect = None, student: Student = None) -> None:
    """Delete snapshot NAME from every node."""
    from labvirt.ops import snapshots
    from labvirt.ops.session import Session
    from labvirt.cli.output import ok

    with Session.open(directory or default_dir(), connect, student, lock=True) as s:
        desired = s.desired()
        doms = snapshots.delete(s.driver, desired, s.observe(), name)
    ok(f"snapshot {name!r} deleted from {len(doms)} nodes")


def ip(
    node: Annotated[Optional[str], typer.Argument(help="One node (default: all).")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until libvirt observes an address.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits at most.")] = 120.0,
    directory: LabDir = "", connect: Connect = None, student: Student = None, json_out: Json = False,
) -> None:
    """Addresses per NIC: planned (DHCP reservation) and observed (lease, guest agent, ARP)."""
    from labvirt.ops import nodes
    from labvirt.ops.session import Session
    from labvirt.cli.output import err, out, print_json

    with Session.open(directory or default_dir(), connect, student) as s:
        desired = s.desired()
        if wait:
            with err().status(f"waiting up to {timeout:g}s for addresses"):
                data = nodes.addresses(s, desired, node, wait=True, timeout=timeout)
        else:
            data = nodes.addresses(s, desired, node)
    if json_out:
        print_json({"lab": desired.copy.lab, "student": desired.copy.student, "simulated": s.simulated,
                    "nodes": data})
        return
    for e in data:
        for n in e["nics"]:
            seen = ", ".join(f"{o['ip']} ({o['source']})" for o in n["observed"]) or "-"
            out().print(f"{e['node']}\t{n['name']}\t{n['planned'] or 'dhcp'}\t{seen}", markup=False)


def console(
    node: Annotated[str, typer.Argument(help="The node whose serial console to attach.")],
    tail: Annotated[Optional[int], typer.Option("--tail", metavar="N",
                                                help="Print the last N lines the console has shown, then exit.")] = None,
    capture: Annotated[Optional[float], typer.Option("--capture", metavar="SECONDS",
                                                     help="Print the live console for SECONDS, then exit.")] = None,
    send: Annotated[Optional[list[str]], typer.Option("--send", metavar="LINE",
                                                      help="Type LINE on the console first (with --capture).")] = None,
    until: Annotated[Optional[str], typer.Option(help="With --capture: stop early once TEXT appears.")] = None,
    directory: LabDir = "", connect: Connect = None, student: Student = None,
) -> None:
    """Attach to a node's serial console (Ctrl+] leaves), or print it for scripts (--tail / --capture)."""
    import sys

    from labvirt.driver import console as con
    from labvirt.core.errors import NotFoundError, UnsupportedError
    from labvirt.ops.session import Session

    if tail is None:
        con.prepare()        # libvirt's event loop must exist before the connection is opened
    with Session.open(directory or default_dir(), connect, student) as s:
        from labvirt.ops.nodes import domain_of

        dom = domain_of(s.desired(), node)
        if s.simulated:
            raise UnsupportedError(f"{node} runs on the simulator ({s.uri}): simulated nodes have no console")
        if tail is not None:
            obs = s.observe().domains.get(dom.name)
            if obs is None or not obs.serial_log:
                raise NotFoundError(f"{dom.name} has no serial log (run 'labvirt up')")
            from labvirt.core.uris import is_local

            if not is_local(s.uri):
                raise UnsupportedError(f"the console log is on the remote host ({obs.serial_log}); use --capture SECONDS")
            sys.stdout.write(con.tail(obs.serial_log, tail) + "\n")
        elif capture is not None:
            data = con.capture(s.driver.conn, dom.name, capture, send or [], until)
            sys.stdout.write(data.decode(errors="replace").replace("\r", ""))
        else:
            con.interactive(s.driver.conn, dom.name)


def hosts(directory: LabDir = "", student: Student = None) -> None:
    """Print an /etc/hosts block for the lab (between BEGIN/END markers)."""
    import sys

    from labvirt.core.cloudinit import hosts_block
    from labvirt.ops.session import Session

    with Session.open(directory or default_dir(), None, student, offline=True) as s:
        sys.stdout.write(hosts_block(s.desired()))


def inventory(directory: LabDir = "", connect: Connect = None, student: Student = None) -> None:
    """Print an Ansible inventory (groups labvirt_controller / labvirt_compute / ... in labvirt_nodes),
    logging in as `labvirt ssh` does (the lab's key and known_hosts; a jump for qemu+ssh hosts)."""
    import sys

    from labvirt.core.login import inventory as render
    from labvirt.core.uris import jump_host
    from labvirt.driver.ssh_keys import lab_key
    from labvirt.ops.session import Session, refresh_known_hosts, resolve_uri

    with Session.open(directory or default_dir(), connect, student, offline=True) as s:
        key, _ = lab_key(s.copy.lab, s.copy.student)
        desired = s.desired()
        known = refresh_known_hosts(desired)
        sys.stdout.write(render(desired, s.spec.ssh_user, key, known, jump_host(resolve_uri(connect))))


def ssh(
    node: Annotated[str, typer.Argument(help="The node to log in to.")],
    command: Annotated[Optional[list[str]], typer.Argument(help="Command to run (after --).")] = None,
    directory: LabDir = "", connect: Connect = None, student: Student = None,
) -> None:
    """ssh to a node with the lab's user, key and address (through the libvirt host for qemu+ssh URIs)."""
    import os

    from labvirt.core.errors import LabvirtError
    from labvirt.ops.nodes import ssh_command
    from labvirt.ops.session import Session

    with Session.open(directory or default_dir(), connect, student) as s:
        argv = ssh_command(s, node, command or [])
    try:
        os.execvp(argv[0], argv)
    except FileNotFoundError:
        raise LabvirtError("ssh not found: install openssh-client") from None
