"""`labvirt graph`: a picture of the lab (DOT, Mermaid, SVG, PNG)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from labvirt.cli.options import Connect, LabDir, Student, default_dir

Format = Annotated[Optional[str], typer.Option(
    "--format", "-f", metavar="svg|png|dot|mermaid", show_default=False,
    help="Output format (default: from -o's extension, else dot). svg and png are drawn by Graphviz.")]
Output = Annotated[Optional[str], typer.Option(
    "--output", "-o", metavar="FILE", show_default=False,
    help="Write to FILE (default: stdout; png only when stdout is not a terminal).")]
Offline = Annotated[bool, typer.Option("--offline", help="From the lab files alone: no libvirt, no states.")]


def register(app: typer.Typer) -> None:
    app.command("graph")(graph)


def graph(
    fmt: Format = None, output: Output = None, offline: Offline = False,
    directory: LabDir = "", connect: Connect = None, student: Student = None,
) -> None:
    """Draw the lab: nodes (role, vCPU, memory, state), NICs (eth, address, MAC), networks (mode, subnet,
    bridge). From the lab files with --offline; otherwise with what the libvirt host reports."""
    from labvirt.ops import graph as ops_graph
    from labvirt.ops.session import Session

    chosen = ops_graph.format_for(fmt, output)
    with Session.open(directory or default_dir(), connect, student, offline=offline) as s:
        g = ops_graph.graph_of(s)
    emit(g, chosen, output)


def emit(g, chosen: str, output: str | None, dot_text: str | None = None) -> None:
    """Write one graph (or ready DOT text) in `chosen` format to `output` or stdout."""
    import sys

    from labvirt.core.errors import LabvirtError
    from labvirt.core.graph import to_dot, to_mermaid
    from labvirt.ops import graph as ops_graph
    from labvirt.cli.output import ok

    if chosen == "mermaid":
        if g is None:
            raise LabvirtError("--format mermaid draws one lab copy; use dot, svg or png for the class")
        data = to_mermaid(g).encode()
    else:
        text = dot_text if dot_text is not None else to_dot(g)
        data = text.encode() if chosen == "dot" else ops_graph.draw(text, chosen)
    if output:
        with open(output, "wb") as f:
            f.write(data)
        ok(f"wrote {chosen} to {output}")
        return
    if chosen == "png" and sys.stdout.isatty():
        raise LabvirtError("PNG is binary: give -o FILE (or redirect stdout)")
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
