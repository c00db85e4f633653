"""A Rich progress bar on stderr fed by the engine's events."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def progress(title: str, total: int):
    """Yields an on_event(kind, action, error) callback for labvirt.ops.engine.apply."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from labvirt.cli.output import err

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err(), transient=True, disable=total == 0) as bar:
        task = bar.add_task(title, total=total)

        def on_event(kind, action, error):
            if kind == "start":
                bar.update(task, description=f"{title}: {action.describe()[:60]}")
            elif kind == "done":
                bar.advance(task)
            elif kind == "fail":
                bar.advance(task)
                from rich.markup import escape

                err().print(f"[red]✗[/] {escape(action.describe())}: {escape(str(error))}")

        yield on_event
