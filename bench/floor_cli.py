"""The floor of a no-op `up` for any CLI on labvirt's fixed stack (Typer, Rich, libvirt-python, lxml).

bench_fixed_cost.py runs this beside labvirt, as whole processes in the same repetition:

    floor_cli.py up -C LAB --connect URI    # the least a no-op `up` must do, on the same stack
    floor_cli.py --help                     # a one-command Typer app's help (Typer's Rich formatter)

`up` imports what labvirt's stack imports (Typer, Rich's console, libvirt-python, lxml), reads
LAB/lab.toml and the file of every network and domain (tomllib), opens the connection, looks up each
network and domain by name and checks it is running (the least a no-op `up` must ask libvirt), and
prints one line through Rich to stderr. No validation, no desired state, no plan, no lock, no host
check, and no command-line dispatch: its arguments are read from sys.argv by position. Typer's own
dispatch (click objects for the commands, a pydantic adapter per option value, and pydantic's import)
costs about 0.1 s more; labvirt cuts most of it (labvirt/cli/__init__.py app_for, cli/plain_params.py),
so it is left out of the floor. What is left of labvirt's time above this is labvirt's own.
"""

from __future__ import annotations

import os
import sys
import tomllib
from typing import Annotated, Optional

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def up(lab: Annotated[str, typer.Option("-C", help="The lab directory.")] = ".",
       connect: Annotated[Optional[str], typer.Option("--connect", "-c", help="libvirt URI.")] = None) -> None:
    """Check that the lab's networks and domains exist and run (nothing to do when they do)."""
    noop_up(lab, connect)


def noop_up(lab: str, connect: str | None) -> None:
    import libvirt
    import lxml.etree  # noqa: F401  (labvirt's stack: XML is built with lxml)
    from rich.console import Console

    with open(os.path.join(lab, "lab.toml"), "rb") as f:
        name = tomllib.load(f)["lab"]["name"]
    files = {kind: sorted(os.listdir(os.path.join(lab, kind))) for kind in ("networks", "domains")}
    for kind, names in files.items():
        for n in names:
            with open(os.path.join(lab, kind, n), "rb") as f:
                tomllib.load(f)
    libvirt.registerErrorHandler(lambda *_: None, None)
    conn = libvirt.open(connect)
    try:
        missing = [n for n in files["networks"] if not conn.networkLookupByName(f"{name}-{n[:-5]}").isActive()]
        missing += [n for n in files["domains"] if not conn.lookupByName(f"{name}-{n[:-5]}").isActive()]
    finally:
        conn.close()
    if missing:
        sys.exit(f"not running: {missing}")
    Console(stderr=True).print(f"[green]✓[/] lab {name} is up to date on {connect}: nothing to do")


@app.command()
def down() -> None:
    """A second command, so that Typer dispatches by name as in any multi-command CLI."""


if __name__ == "__main__":
    if sys.argv[1:2] == ["up"] and sys.argv[2:3] == ["-C"] and sys.argv[4:5] == ["--connect"]:
        noop_up(sys.argv[3], sys.argv[5])      # floor_cli.py up -C LAB --connect URI, without Typer's dispatch
    else:
        app()
