"""Where output goes: data on stdout, messages and progress on stderr (Rich, created on first use)."""

from __future__ import annotations

import functools
import json
import sys


# emoji=False: text is printed as given (a path or message with ":name:" in it stays so), and Rich's
# table of emoji codes is never imported
@functools.cache
def err():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


@functools.cache
def out():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True, emoji=False)


def print_json(obj) -> None:
    """Exactly the object on stdout, nothing else."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()


def note(msg: str) -> None:
    err().print(msg, markup=False)


def warn(msg: str) -> None:
    err().print(f"[yellow]warning:[/] {_esc(msg)}")


def ok(msg: str) -> None:
    err().print(f"[green]✓[/] {_esc(msg)}")


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)
