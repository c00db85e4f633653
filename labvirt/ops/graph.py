"""`labvirt graph`: the lab's graph from the lab files, or from a lab on a host (node states, observed
addresses), and Graphviz's `dot` to draw it as SVG or PNG."""

from __future__ import annotations

import os
import subprocess
import tempfile

from labvirt.core.errors import LabvirtError
from labvirt.core.graph import LabGraph, lab_graph

FORMATS = ("dot", "mermaid", "svg", "png")
DRAWN = ("svg", "png")                      # drawn by Graphviz; the others are text labvirt writes
EXTENSIONS = {".dot": "dot", ".gv": "dot", ".mmd": "mermaid", ".mermaid": "mermaid", ".svg": "svg", ".png": "png"}
DOT_TIMEOUT = 60.0


def format_for(fmt: str | None, output: str | None) -> str:
    """The format asked for, else the one -o's extension names, else DOT."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise LabvirtError(f"--format: got {fmt!r}; allowed: {', '.join(FORMATS)}")
        return fmt
    if output:
        ext = os.path.splitext(output)[1].lower()
        if ext in EXTENSIONS:
            return EXTENSIONS[ext]
    return "dot"


def lab_status_of(session) -> dict:
    """labvirt status's data for the session's lab copy (states, observed addresses of running nodes)."""
    from labvirt.core.status import lab_status

    desired, the_plan = session.plan_up(start=False)
    observed = session.observe()
    addresses = {}
    for dom in desired.domains:
        obs = observed.domains.get(dom.name)
        if obs is not None and obs.state == "running":
            addresses[dom.name] = session.driver.addresses(dom.name)[0]
    return lab_status(desired, observed, the_plan, addresses, simulated=session.simulated)


def graph_of(session) -> LabGraph:
    """From the lab files when the session is offline, else with what the host reports."""
    desired = session.desired()
    if session.driver is None:
        return lab_graph(desired)
    return lab_graph(desired, lab_status_of(session), source=session.uri)


def class_graphs(classroom) -> list[tuple[str, LabGraph]]:
    """(host, graph) of every student's copy, from one observation per host (Classroom.status)."""
    from labvirt.core.desired import desire

    out = []
    for row in classroom.status()["students"]:
        student, host = row["student"], row["host"]
        desired = desire(classroom.spec, classroom.record.copy(student), classroom.params(host))
        out.append((host, lab_graph(desired, row, source=host)))
    return out


def draw(dot_text: str, fmt: str) -> bytes:
    """SVG or PNG from DOT text, by Graphviz's `dot` (argv, bounded in time)."""
    from labvirt.driver.children import capture

    if fmt not in DRAWN:
        raise LabvirtError(f"dot draws {', '.join(DRAWN)}, not {fmt!r}")
    with tempfile.TemporaryDirectory(prefix="labvirt-graph-") as tmp:
        path = os.path.join(tmp, f"graph.{fmt}")
        try:
            done = capture(["dot", f"-T{fmt}", "-o", path], input=dot_text, timeout=DOT_TIMEOUT)
        except FileNotFoundError:
            raise LabvirtError("Graphviz's 'dot' is not installed (apt-get install graphviz); "
                               "--format dot or mermaid need nothing") from None
        except subprocess.TimeoutExpired:
            raise LabvirtError(f"dot did not finish within {DOT_TIMEOUT:g}s") from None
        if done.returncode != 0:
            raise LabvirtError(f"dot failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
        with open(path, "rb") as f:
            return f.read()
