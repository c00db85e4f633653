"""Host commands: `check` (can this host run the lab, and how) and `nested` (nested virtualisation)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from labvirt.cli.options import Connect, Json, LabDir, default_dir

HostRoot = Annotated[Optional[str], typer.Option(
    "--host-root", metavar="DIR", show_default=False,
    help="Read proc/, sys/, dev/ and etc/ under DIR instead of / (a copy of another host's files).")]
Profile = Annotated[Optional[str], typer.Option(
    "--profile", metavar="NAME", show_default=False,
    help="Check a built-in host profile instead of this machine: intel-nested, intel-no-nested, amd-nested, "
         "no-virt, pvm.")]


class NestedAction(str, Enum):
    enable = "enable"
    disable = "disable"
    status = "status"


def register(app: typer.Typer) -> None:
    app.command("check")(check)
    app.command("nested")(nested)


def _root(host_root: str | None, profile: str | None) -> str:
    from labvirt.core.errors import LabvirtError

    if host_root and profile:
        raise LabvirtError("give either --host-root or --profile, not both")
    if profile:
        from labvirt.host.profiles import profile_root

        return profile_root(profile)
    if host_root:
        import os

        if not os.path.isdir(host_root):
            raise LabvirtError(f"--host-root {host_root}: not a directory")
        return host_root
    return "/"


def check(
    directory: LabDir = "",
    connect: Connect = None,
    json_out: Json = False,
    host_root: HostRoot = None,
    profile: Profile = None,
    students: Annotated[int, typer.Option("--students", "-n", min=1, metavar="N",
                                          help="Weigh capacity for a class of N copies of the lab.")] = 1,
) -> None:
    """Check this host (or a simulated one) for the lab: KVM, nested virtualisation, tools, capacity.

    Verdicts: L0 KVM or software emulation for the lab VMs, L1 nested virtualisation inside them,
    L2 nova's virt_type; also modprobe.d traps, libvirt, tools, capacity and network collisions.
    Exits 1 when something blocks the lab.
    """
    import os

    from labvirt.core.loader import LAB_FILE, load_lab
    from labvirt.ops.session import resolve_uri
    from labvirt.cli.output import print_json

    root = _root(host_root, profile)
    lab_dir = directory or default_dir()
    spec = load_lab(lab_dir) if os.path.isfile(os.path.join(lab_dir, LAB_FILE)) else None
    from labvirt.cli.output import note
    from labvirt.host.check import check_uri, class_fit

    report = check_uri(root, resolve_uri(connect), spec, students, root_given=bool(host_root or profile),
                       on_probe=note)
    fit = class_fit(spec, connect, students)
    if json_out:
        data = report.as_dict()
        if fit is not None:
            data["class"] = fit
        print_json(data)
    else:
        _print_report(report)
        if fit is not None:
            _print_fit(fit)
    if not report.ok or (fit is not None and not fit["fits"]):
        from labvirt.core.errors import Reported

        raise Reported()


def _print_fit(fit: dict) -> None:
    from rich.table import Table

    from labvirt.core.units import format_size
    from labvirt.cli.output import out

    t = Table(title=f"class of {fit['students']}: placement on the class's hosts", title_justify="left")
    for col in ("host", "students", "vCPUs need / host (x overcommit)", "memory", "disk", "lacks"):
        t.add_column(col, overflow="fold")
    for row in fit["hosts"]:
        cells = []
        for u in row["use"]:
            fmt = str if u["resource"] == "cpu" else format_size
            have = "?" if u["have"] is None else fmt(u["have"])
            over = "" if u["without_overcommit"] is None else f" = {u['without_overcommit']:.2f}x"
            ratio = row["overcommit"][u["resource"]]
            cells.append(f"{fmt(u['need'])} / {have}{over} (allowed {ratio:g}x)" + ("" if u["ok"] else " [red]over[/]"))
        t.add_row(row["uri"], str(row["students"]), *cells, "\n".join(row["lacks"]) or "-")
    out().print(t)
    out().print("[green]the class fits[/]" if fit["fits"] else "[red]the class does not fit[/]")


def _print_report(report) -> None:
    from rich.table import Table

    from labvirt.cli.output import out

    v = report.verdict
    what = f"lab {report.lab!r}" + (f" x {report.students}" if report.students > 1 else "") if report.lab else "no lab"
    where = "this machine" if report.root == "/" else report.root
    table = Table(title=f"{where}, {report.uri}, {what}: lab VMs '{v.guest_domain_type}', nested {v.nested}, "
                        f"nova virt_type {v.l2_virt_type}", title_justify="left", show_lines=False)
    table.add_column("", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("finding", overflow="fold")
    table.add_column("fix", overflow="fold")      # never cut a command short with an ellipsis
    style = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}
    from rich.markup import escape

    for f in report.findings:
        table.add_row(style[f.status], f.id, escape(f.message), escape(f.fix))
    out().print(table)
    fails = sum(f.status == "fail" for f in report.findings)
    if fails:
        out().print(f"[red]{fails} failing check(s) block the lab[/]")
    elif report.lab:
        out().print("[green]the lab can run on this host[/]")
    else:
        out().print("[green]nothing blocks a lab here[/] (no lab.toml: give -C DIR to weigh a lab)")


def nested(
    action: Annotated[NestedAction, typer.Argument(metavar="ACTION",
                                                   help="enable, disable, or status (changes nothing).")],
    host_root: HostRoot = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the changes as a diff; change nothing.")] = False,
    json_out: Json = False,
    connect: Connect = None,
) -> None:
    """Show, enable or disable nested virtualisation (vmx/svm inside the lab VMs) for good.

    Writes /etc/modprobe.d/labvirt-nested.conf, disables lines that would undo it, and reloads
    kvm_intel/kvm_amd when no VM is running.
    """
    from labvirt.host.facts import read_host
    from labvirt.cli.output import print_json

    root = _root(host_root, None)
    facts = read_host(root)
    if action == NestedAction.status:
        _nested_status(facts, json_out)
        return
    from labvirt.host.nested import apply_nested, plan_nested

    plan = plan_nested(facts, action.value)
    data = {"action": plan.action, "module": plan.module, "want": plan.want, "current": plan.current,
            "dry_run": dry_run, "edits": [{"path": e.path, "reasons": list(e.reasons), "diff": e.diff()}
                                          for e in plan.edits],
            "reload": [list(a) for a in plan.reload], "notes": list(plan.notes)}
    if not json_out:
        _show_plan(plan)
    if dry_run:
        if json_out:
            print_json(data)
        return
    from labvirt.host.libvirt_info import running_domains
    from labvirt.ops.session import resolve_uri

    running = running_domains(resolve_uri(connect)) if root == "/" else None
    result = apply_nested(plan, root, running_vms=running)
    data["result"] = {"written": list(result.written), "reloaded": result.reloaded, "nested": result.nested,
                      "messages": list(result.messages), "error": result.error or None}
    if json_out:
        print_json(data)
    else:
        from labvirt.cli.output import note, ok

        for path in result.written:
            ok(f"wrote {path}")
        for m in result.messages:
            note(m)
        state = f"{plan.module} nested is {result.nested}"
        if result.nested == plan.want:
            ok(state)
        else:
            note(f"{state} now; {plan.want} from its next load")
    if result.error:
        from labvirt.core.errors import DriverError

        raise DriverError(result.error)


def _show_plan(plan) -> None:
    from labvirt.cli.output import note, out

    if not plan.edits:
        note(f"/etc/modprobe.d already gives {plan.module} nested {plan.want}: no file to change")
    for e in plan.edits:
        for r in e.reasons:
            note(f"{e.path}: {r}")
    if plan.edits:
        out().print(plan.diff(), markup=False, highlight=False, end="")
    for n in plan.notes:
        note(n)
    if plan.reload:
        note(f"then, with no VM running: {plan.reload_text}")


def _nested_status(facts, json_out: bool) -> None:
    from labvirt.host.findings import modprobe_findings
    from labvirt.host.verdict import verdict
    from labvirt.cli.output import out, print_json

    v = verdict(facts)
    found = modprobe_findings(v)
    if json_out:
        print_json({"cpu_virt": v.cpu_virt, "module": v.module, "kvm_usable": v.kvm_usable, "nested": v.nested,
                    "nested_next_load": v.nested_next_load, "l1_virt": v.l1_virt, "l1": v.l1, "fix": v.l1_fix,
                    "findings": [f.as_dict() for f in found]})
        return
    from rich.markup import escape

    out().print(f"nested: [bold]{v.nested}[/]  (next load: {v.nested_next_load})")
    out().print(escape(f"L1: {v.l1}"))
    if v.l1_fix:
        out().print(escape(f"fix: {v.l1_fix}"))
    for f in found:
        out().print(escape(f"{f.status}: {f.message}" + (f" -> {f.fix}" if f.fix else "")))
