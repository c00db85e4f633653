"""`labvirt class ...`: an isolated copy of the lab per student, on one or several hosts."""

from __future__ import annotations

import contextlib
from typing import Annotated, Optional

import typer

from labvirt.cli.options import Connect, Json, LabDir, default_dir

class_app = typer.Typer(help="Class mode: one isolated copy of the lab per student, rebuilt in seconds.",
                        no_args_is_help=True)
Students = Annotated[Optional[list[str]], typer.Option("--student", "-s", help="Only these students (repeat).")]
Workers = Annotated[Optional[int], typer.Option("--workers", min=1, max=64,
                                                help="Students worked on at once (default: [class] workers or 8).")]
Wait = Annotated[bool, typer.Option("--wait", help="Return when every node of each student is ready: lease at "
                                                   "its address, ssh with the host key labvirt gave it, cloud-init done.")]
Timeout = Annotated[float, typer.Option(help="Seconds --wait waits at most, per student.")]


def _then_wait(c, work, wait: bool, timeout: float):
    """A student's work, then (with --wait) the wait for that student's nodes."""
    if not wait:
        return work

    def both(student: str) -> str:
        return f"{work(student)}; {c.wait(student, timeout)}"

    return both


def register(app: typer.Typer) -> None:
    app.add_typer(class_app, name="class")


@contextlib.contextmanager
def _classroom(directory: str, connect: str | None):
    from labvirt.ops.class_commands import Classroom
    from labvirt.core.loader import load_lab

    with Classroom(load_lab(directory or default_dir()), connect) as c:
        yield c


@contextlib.contextmanager
def _progress(title: str, students: list[str]):
    """A row per student (waiting, then its outcome), on stderr."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from labvirt.cli.output import err

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=err(), transient=True) as bar:
        tasks = {s: bar.add_task(f"{s}: {title}...", total=1) for s in students}

        def on_done(o):
            mark = "[green]✓[/]" if o.ok else "[red]✗[/]"
            bar.update(tasks[o.student], completed=1, description=f"{o.student}: done")
            from rich.markup import escape

            err().print(f"{mark} {o.student}: {escape(o.message)}")

        yield on_done


def _finish(title: str, outcomes) -> None:
    from labvirt.cli.output import err
    from labvirt.core.errors import Reported

    failed = [o for o in outcomes if not o.ok]
    ok = len(outcomes) - len(failed)
    if failed:
        err().print(f"[red]{title}: {ok} of {len(outcomes)} students ok; failed: "
                    + ", ".join(o.student for o in failed) + "[/]")
        raise Reported()
    err().print(f"[green]{title}: {ok} of {len(outcomes)} students ok[/]")


def _run(c, title: str, students: list[str], work, workers):
    with _progress(title, students) as on_done:
        outcomes = c.run(students, work, workers, on_done)
    _finish(title, outcomes)


@class_app.command("up")
def class_up(
    students: Annotated[Optional[int], typer.Option("--students", "-n", min=1, max=500,
                                                    help="Class size: students s01..sNN.")] = None,
    roster: Annotated[Optional[str], typer.Option(help="Student names: 'alice,bob' or a file with one name a line.")] = None,
    no_start: Annotated[bool, typer.Option("--no-start", help="Define everything, start nothing.")] = False,
    directory: LabDir = "", connect: Connect = None, workers: Workers = None, wait: Wait = False,
    timeout: Timeout = 900.0,
) -> None:
    """Create (or complete) every student's copy: own names, bridges, subnets; overlays on shared images."""
    import os

    from labvirt.core import class_layout as cr
    from labvirt.cli.output import note

    with _classroom(directory, connect) as c:
        names = list(c.config.roster)
        if roster:
            if os.path.isfile(roster):
                from labvirt.core.loader import read_text

                names += cr.parse_roster(read_text(roster), roster)
            else:
                names += cr.parse_roster(roster.replace(",", "\n"), "--roster")
        if students:
            names += cr.student_names(students)
        names = list(dict.fromkeys(names)) or list(c.record.students)
        if not names:
            from labvirt.core.errors import LabvirtError

            raise LabvirtError("no students: give --students N or --roster, or [class] roster in lab.toml")
        try:
            c.enroll(names)
        except cr.ClassDoesNotFit as e:
            _print_lacks(e.rows)
            raise
        for line in c.ensure_images():
            note(f"golden image {line}")
        _run(c, "class up", names, _then_wait(c, lambda s: c.up(s, start=not no_start), wait and not no_start,
                                              timeout), workers)


def _print_lacks(rows) -> None:
    from rich.table import Table

    from labvirt.core.units import format_size
    from labvirt.cli.output import err

    t = Table(title="the class does not fit: what each host lacks", title_justify="left")
    for col in ("host", "CPUs", "memory", "disk free", "copies that fit", "lacks for the whole class"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(r["uri"], str(r["cpus"]), format_size(r["memory"]),
                  format_size(r["disk"]) if r["disk"] is not None else "?", str(r["fits"]),
                  "\n".join(r["lacks"]) or "-")
    err().print(t)


@class_app.command("status")
def class_status(directory: LabDir = "", connect: Connect = None, json_out: Json = False) -> None:
    """A student-by-node table: state, address, current snapshot; and a summary line."""
    from labvirt.cli.output import out, print_json

    with _classroom(directory, connect) as c:
        data = c.status()
    if json_out:
        print_json(data)
        return
    from rich.table import Table

    t = Table(title=f"class of lab {data['lab']}", title_justify="left", show_edge=False, pad_edge=False)
    t.add_column("student")
    t.add_column("host", overflow="fold")
    for node in data["nodes"]:
        t.add_column(node, overflow="fold")
    states: dict[str, int] = {}
    drift = 0
    for s in data["students"]:
        cells = []
        for n in s["nodes"]:
            states[n["state"]] = states.get(n["state"], 0) + 1
            addr = next((i["planned"] for i in n["nics"] if i["planned"]), "-")
            snap = f" @{n['current_snapshot']}" if n["current_snapshot"] else ""
            cells.append(f"{n['state']} {addr}{snap}")
        drift += bool(s["drift"])
        t.add_row(s["student"], s["host"], *cells)
    out().print(t)
    summary = ", ".join(f"{v} {k}" for k, v in sorted(states.items()))
    out().print(f"{len(data['students'])} students, {sum(states.values())} nodes: {summary or 'none'}"
                + (f"; {drift} students differ from the lab file" if drift else ""))


@class_app.command("snapshot")
def class_snapshot(name: str, description: Annotated[str, typer.Option("--description", "-d")] = "",
                   student: Students = None, directory: LabDir = "", connect: Connect = None,
                   workers: Workers = None) -> None:
    """Snapshot every student's lab (each all or nothing)."""
    with _classroom(directory, connect) as c:
        _run(c, f"snapshot {name}", c.students(student), lambda s: c.snapshot(s, name, description), workers)


@class_app.command("revert")
def class_revert(name: str, student: Students = None, directory: LabDir = "", connect: Connect = None,
                 workers: Workers = None) -> None:
    """Revert students' labs to snapshot NAME (all students, or --student S ...)."""
    with _classroom(directory, connect) as c:
        _run(c, f"revert {name}", c.students(student), lambda s: c.revert(s, name), workers)


@class_app.command("rebuild")
def class_rebuild(student: Students = None, directory: LabDir = "", connect: Connect = None,
                  workers: Workers = None, wait: Wait = False, timeout: Timeout = 900.0) -> None:
    """Throw students' disks, seeds and snapshots away and recreate them from the golden images."""
    with _classroom(directory, connect) as c:
        _run(c, "rebuild", c.students(student), _then_wait(c, c.rebuild, wait, timeout), workers)


@class_app.command("down")
def class_down(student: Students = None, directory: LabDir = "", connect: Connect = None,
               workers: Workers = None) -> None:
    """Shut every student's nodes down."""
    with _classroom(directory, connect) as c:
        _run(c, "down", c.students(student), c.down, workers)


@class_app.command("destroy")
def class_destroy(student: Students = None, directory: LabDir = "", connect: Connect = None,
                  workers: Workers = None) -> None:
    """Remove students' copies entirely (all, or --student S ...)."""
    with _classroom(directory, connect) as c:
        _run(c, "destroy", c.students(student), c.destroy, workers)


from labvirt.cli import serve as _serve  # noqa: E402,F401  registers `class serve` (web dashboard) on class_app
