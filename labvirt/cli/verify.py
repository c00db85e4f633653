"""`labvirt verify [STAGE]`: does the lab hold what the course expects at this stage?"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from labvirt.cli.options import Connect, Json, LabDir, Student, default_dir

Workers = Annotated[int, typer.Option("--workers", min=1, max=64, help="Checks run at once.")]
MARK = {"passed": "[green]✓ passed[/]", "failed": "[red]✗ FAILED[/]", "error": "[red]? could not run[/]",
        "skipped": "[dim]- skipped[/]", "simulated": "[yellow]~ not run[/]"}


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)


def verify(
    stage: Annotated[Optional[str], typer.Argument(help="The stage: a file checks/STAGE.toml in the lab "
                                                        "(none: list the stages).")] = None,
    node: Annotated[Optional[list[str]], typer.Option("--node", "-n", help="Only on this node (repeat).")] = None,
    workers: Workers = 8,
    directory: LabDir = "", connect: Connect = None, student: Student = None, json_out: Json = False,
) -> None:
    """Run a stage's checks on the lab's nodes (over ssh, concurrently, each bounded in time) and say
    whether the stage holds. Exit 0: it holds; 1: a check failed or could not run, or nothing ran
    (the simulator); 2: the check files are wrong."""
    from labvirt.ops import verify as ops_verify
    from labvirt.ops.session import Session
    from labvirt.cli.output import print_json

    lab_dir = directory or default_dir()
    if stage is None:
        from labvirt.core.loader import load_lab

        load_lab(lab_dir)
        stages = ops_verify.load_stages(lab_dir)
        if json_out:
            print_json({"stages": [stage_summary(s) for s in stages]})
        else:
            print_stages(stages, lab_dir)
        return
    with Session.open(lab_dir, connect, student) as s:
        spec_stage = ops_verify.load_stage(s.spec.directory, stage)
        from labvirt.cli.output import err

        with err().status(f"verify {stage}: {len(spec_stage.checks)} checks on {s.copy.prefix}"):
            report = ops_verify.run_stage(s, spec_stage, workers=workers, only_nodes=node)
    if json_out:
        print_json(report)
    else:
        print_report(report)
    if not report["holds"]:
        from labvirt.core.errors import Reported

        raise Reported()


def stage_summary(s) -> dict:
    return {"stage": s.name, "snapshot": s.snapshot, "description": s.description, "checks": len(s.checks),
            "file": s.file}


def print_stages(stages, lab_dir: str) -> None:
    from labvirt.cli.output import out
    from labvirt.cli.tables import _table

    if not stages:
        out().print(f"no stages: add checks/STAGE.toml to {lab_dir}", markup=False)
        return
    t = _table("Stages", "stage", "snapshot", "checks", "description")
    for s in stages:
        t.add_row(s.name, s.snapshot or "-", str(len(s.checks)), s.description)
    out().print(t)


def print_report(report: dict) -> None:
    from rich.markup import escape

    from labvirt.cli.output import out
    from labvirt.cli.tables import _table

    who = report["lab"] + (f"-{report['student']}" if report["student"] else "")
    snap = f" (snapshot {report['snapshot']})" if report.get("snapshot") else ""
    sim = report["simulated"]
    t = _table(f"Stage {report['stage']}{snap} on {who}", "node", "check", "result", "time",
               "command that would run (ssh with the lab's key)" if sim else "detail")
    for r in report["results"]:
        t.add_row(escape(r["node"]), escape(r["check"]), MARK.get(r["status"], r["status"]),
                  f"{r['seconds']:.1f}s" if r["status"] in ("passed", "failed", "error") else "-",
                  escape(r["command"] if r["status"] == "simulated" else r["detail"]))
    out().print(t)
    for r in report["results"]:
        if r["status"] in ("failed", "error") and r["output"]:
            out().print(f"[bold]{escape(r['node'])}: {escape(r['check'])}[/] printed:")
            out().print(r["output"], markup=False)
    if sim:
        out().print(f"checks are not run on the simulator ({escape(report.get('uri', 'sim'))}): nothing boots there",
                    style="yellow")
    c = report["counts"]
    line = (f"{c['passed']} passed, {c['failed']} failed, {c['error']} could not run, {c['skipped']} skipped"
            + (f", {c['simulated']} not run (simulator)" if c["simulated"] else ""))
    verdict = {"holds": "[green]holds[/]", "fails": "[red]does not hold[/]",
               "not verified": "[yellow]is not verified[/]"}[report["outcome"]]
    out().print(f"stage {escape(report['stage'])} {verdict}: {line}")
