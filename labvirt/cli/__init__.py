"""The `labvirt` command. Only formats and dispatches; heavy imports happen inside commands.

Command groups live in their own modules and are registered here. One place (`main`) turns a
LabvirtError into one line on stderr and an exit code.
"""

from __future__ import annotations

import sys

import typer

from labvirt.cli import class_extra, classroom, graph, host, images, lab, ops, packstack, verify

app = typer.Typer(
    name="labvirt",
    help="Build and rebuild OpenStack training labs on libvirt (or on the built-in simulator).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

for _module in (lab, host, images, ops, classroom, packstack, graph, verify, class_extra):
    _module.register(app)


def main() -> None:
    from labvirt.core.errors import LabvirtError

    try:
        app()   # standalone: click reports usage errors and exits itself
    except LabvirtError as e:
        if str(e):          # Reported(): the command has already said what failed
            from labvirt.cli.output import err

            err().print(f"[red]error:[/] {_escape(str(e))}")
        sys.exit(e.exit_code)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
