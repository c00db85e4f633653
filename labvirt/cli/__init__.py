"""The `labvirt` command. Only formats and dispatches; heavy imports happen inside commands.

Command groups live in their own modules and are registered here. One place (`main`) turns a
LabvirtError into one line on stderr and an exit code.

Options before the command, as in `virsh -c URI CMD`: `--connect/-c` (a command's own --connect
wins, see options.global_connect) and shell completion. Completion is Typer's (the scripts and the
`_LABVIRT_COMPLETE` protocol) with the shell always named by the user, so nothing is detected and
nothing is imported for it unless it is asked for.
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from typing import Annotated, Optional

import typer

from labvirt.cli import class_extra, classroom, graph, host, images, lab, ops, packstack, verify
from labvirt.cli.options import CONNECT_HELP

PROG = "labvirt"                    # the console script: completion scripts and usage lines name it
COMPLETE_VAR = "_LABVIRT_COMPLETE"  # set by the completion scripts when the shell asks for candidates


class Shell(str, Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


app = typer.Typer(
    name=PROG,
    help="Build and rebuild OpenStack training labs on libvirt (or on the built-in simulator).",
    no_args_is_help=True,
    add_completion=False,           # Typer's own guesses the shell; ours below takes it as an argument
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _completion_classes() -> None:
    """Typer's completion classes (bash, zsh, fish) replace click's defaults: its scripts speak to them."""
    from typer.completion import completion_init

    completion_init()


def _show_completion(ctx: typer.Context, value: Optional[Shell]) -> None:
    if value is None or ctx.resilient_parsing:
        return
    from typer.completion import get_completion_script

    _completion_classes()
    typer.echo(get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=value.value))
    raise typer.Exit()


def _install_completion(ctx: typer.Context, value: Optional[Shell]) -> None:
    if value is None or ctx.resilient_parsing:
        return
    from typer.completion import install

    _completion_classes()
    shell, path = install(shell=value.value, prog_name=PROG, complete_var=COMPLETE_VAR)
    typer.echo(f"{shell} completion for {PROG} installed in {path}; it takes effect in a new shell", err=True)
    raise typer.Exit()


@app.callback()
def _global(
    connect: Annotated[Optional[str], typer.Option(
        "--connect", "-c", show_default=False,
        help=CONNECT_HELP + " Also accepted after the command, where it wins.")] = None,
    install_completion: Annotated[Optional[Shell], typer.Option(
        "--install-completion", metavar="SHELL", callback=_install_completion, expose_value=False, is_eager=True,
        help="Install tab completion for SHELL (bash, zsh or fish) in your shell's start-up files.")] = None,
    show_completion: Annotated[Optional[Shell], typer.Option(
        "--show-completion", metavar="SHELL", callback=_show_completion, expose_value=False, is_eager=True,
        help="Print the completion script for SHELL (bash, zsh or fish), to install it yourself.")] = None,
) -> None:
    # the value is read by each command's --connect (options.global_connect), not here
    pass


for _module in (lab, host, images, ops, classroom, packstack, graph, verify, class_extra):
    _module.register(app)

if COMPLETE_VAR in os.environ:      # the shell asks for candidates: answer in the scripts' format
    _completion_classes()


GLOBAL_VALUE_OPTIONS = ("-c", "--connect")   # the callback's options that take a value


def command_word(argv: list[str]) -> str | None:
    """The command `argv` names (after the global --connect/-c), or None when it names none first
    (no arguments, --help, completion options)."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word in GLOBAL_VALUE_OPTIONS:
            i += 2
        elif word.startswith("--connect=") or (word.startswith("-c") and len(word) > 2 and word[2] != "-"):
            i += 1
        elif word.startswith("-"):
            return None
        else:
            return word
    return None


def app_for(argv: list[str]) -> typer.Typer:
    """`app` with only the command `argv` names (or `app` itself when it names none or an unknown one).

    Turning the registered commands into click commands (Typer's get_command: every signature, every
    option) is a large part of a command's fixed cost; one command needs only its own. Usage lines,
    options and errors stay the same; `labvirt --help`, unknown commands (and their "did you mean")
    and completion get the full app.
    """
    import copy

    from typer.main import get_command_name

    word = command_word(argv)
    if word is None or COMPLETE_VAR in os.environ:
        return app
    commands = [c for c in app.registered_commands
                if (c.name or get_command_name(c.callback.__name__)) == word]
    groups = [g for g in app.registered_groups if (g.name or g.typer_instance.info.name) == word]
    if not commands and not groups:
        return app
    one = copy.copy(app)
    one.registered_commands = commands
    one.registered_groups = groups
    return one


def main() -> None:
    from labvirt.core.errors import LabvirtError

    try:
        from typer.main import get_command

        from labvirt.cli.plain_params import install

        install()
        get_command(app_for(sys.argv[1:]))(prog_name=PROG)   # standalone: click reports usage errors and exits itself
    except LabvirtError as e:
        if str(e):          # Reported(): the command has already said what failed
            from labvirt.cli.output import err

            err().print(f"[red]error:[/] {_escape(str(e))}")
        sys.exit(e.exit_code)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
