"""Options shared by many commands (Annotated types, so every command spells them the same way)."""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

CONNECT_HELP = ("libvirt URI: qemu:///system, qemu+ssh://host/system, or the simulator 'sim' / 'sim:///NAME'. "
                "Default: $LIBVIRT_DEFAULT_URI, else qemu:///system.")


def global_connect(ctx: typer.Context, value: Optional[str]) -> Optional[str]:
    """A command's own --connect, else the one given before the command (`labvirt -c URI up`).

    The command's option is the more specific one, so it wins when both are given; neither given
    leaves None, and the session falls back to $LIBVIRT_DEFAULT_URI, then qemu:///system.
    """
    if value is not None:
        return value
    return ctx.find_root().params.get("connect")


LabDir = Annotated[str, typer.Option("--directory", "-C", envvar="LABVIRT_LAB", show_default=False,
                                     help="Lab directory (default: the current directory).")]
Connect = Annotated[Optional[str], typer.Option("--connect", "-c", show_default=False, callback=global_connect,
                                                help=CONNECT_HELP)]
Student = Annotated[Optional[str], typer.Option("--student", "-s", show_default=False,
                                                help="Work on this student's copy of the lab (class mode).")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]


def default_dir() -> str:
    return os.getcwd()
