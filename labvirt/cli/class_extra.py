"""`labvirt class graph` and `labvirt class verify`: registered onto the `class` group of classroom.py."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from labvirt.cli.classroom import Students, Workers, _classroom
from labvirt.cli.graph import Format, Output
from labvirt.cli.options import Connect, Json, LabDir

CELL = {"passed": "[green]✓[/]", "failed": "[red]✗[/]", "error": "[red]?[/]", "skipped": "[dim]-[/]",
        "simulated": "[yellow]~[/]", None: "[dim] [/]"}


def register(app: typer.Typer) -> None:
    from labvirt.cli.classroom import class_app

    class_app.command("graph")(class_graph)
    class_app.command("verify")(class_verify)


def class_graph(fmt: Format = None, output: Output = None, student: Students = None,
                directory: LabDir = "", connect: Connect = None) -> None:
    """Draw every student's copy (states and addresses as the hosts report them), grouped by host."""
    from labvirt.core.graph import class_to_dot
    from labvirt.ops import graph as ops_graph
    from labvirt.cli.graph import emit

    chosen = ops_graph.format_for(fmt, output)
    with _classroom(directory, connect) as c:
        only = set(c.students(student))
        copies = [(h, g) for h, g in ops_graph.class_graphs(c) if g.student in only]
        lab = c.spec.name
    if not copies:
        from labvirt.core.errors import LabvirtError

        raise LabvirtError("no students in the class yet ('labvirt class up' first)")
    emit(None, chosen, output, dot_text=class_to_dot(lab, copies))


def class_verify(
    stage: Annotated[str, typer.Argument(help="The stage: checks/STAGE.toml in the lab.")],
    student: Students = None, directory: LabDir = "", connect: Connect = None, workers: Workers = None,
    json_out: Json = False,
) -> None:
    """A student x check matrix for STAGE, and one line per student whose lab is not where the stage
    expects. Exit 0 only when the stage holds for every student."""
    from labvirt.ops import verify as ops_verify
    from labvirt.cli.output import err, print_json

    with _classroom(directory, connect) as c:
        spec_stage = ops_verify.load_stage(c.spec.directory, stage)
        students = c.students(student)
        if not students:
            from labvirt.core.errors import LabvirtError

            raise LabvirtError("no students in the class yet ('labvirt class up' first)")
        with err().status(f"verify {stage} on {len(students)} students"):
            matrix = ops_verify.class_verify(c, spec_stage, students, workers)
    if json_out:
        print_json(matrix)
    else:
        print_matrix(matrix)
    if matrix["holding"] != matrix["total"]:
        from labvirt.core.errors import Reported

        raise Reported()


def print_matrix(m: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    from labvirt.cli.output import out

    snap = f" (snapshot {m['snapshot']})" if m.get("snapshot") else ""
    t = Table(title=f"stage {m['stage']}{snap}, class of lab {m['lab']}", title_justify="left",
              show_edge=False, pad_edge=False)
    t.add_column("student")
    for i, _ in enumerate(m["checks"], 1):
        t.add_column(str(i), justify="center")
    t.add_column("stage")
    words = {"holds": "[green]holds[/]", "fails": "[red]behind[/]", "not verified": "[yellow]not verified[/]"}
    for row in m["students"]:
        t.add_row(escape(row["student"]), *(CELL[row["cells"][n]] for n in m["checks"]), words[row["outcome"]])
    out().print(t)
    out().print("checks: " + "; ".join(f"{i} {escape(n)}" for i, n in enumerate(m["checks"], 1)))
    out().print("✓ passed on every node, ✗ failed, ? could not run, ~ not run (simulator), - skipped", style="dim")
    for row in m["students"]:
        if row["outcome"] == "fails":
            out().print(f"[red]{escape(row['student'])}[/]: " + escape("; ".join(row["behind"])))
    out().print(f"{m['holding']} of {m['total']} students where stage {escape(m['stage'])} expects")
