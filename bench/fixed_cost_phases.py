"""Where one labvirt command's time goes, inside its own process (run by bench_fixed_cost.py --phases).

    python bench/fixed_cost_phases.py up -C LAB --connect URI

Runs `labvirt ARGS` in this process with timers around its phases and prints one JSON object on
stdout's last line: seconds per phase, each phase's own time (nested phases and imports subtracted),
and "import" for every module import wherever it happens. The phases are wrapped from outside by
name; a phase that no longer exists under that name is simply absent from the result.
"""

from __future__ import annotations

import builtins
import functools
import json
import sys
import time

T0 = time.perf_counter()
TOTALS: dict[str, float] = {}
STACK: list[list] = []          # [name, start, time of children]


def _enter(name):
    STACK.append([name, time.perf_counter(), 0.0])


def _leave():
    name, start, children = STACK.pop()
    took = time.perf_counter() - start
    TOTALS[name] = TOTALS.get(name, 0.0) + took - children
    if STACK:
        STACK[-1][2] += took


_real_import = builtins.__import__


def _import(name, globals=None, locals=None, fromlist=(), level=0):
    if STACK and STACK[-1][0] == "import":
        return _real_import(name, globals, locals, fromlist, level)
    if name in sys.modules and not fromlist:
        return _real_import(name, globals, locals, fromlist, level)
    _enter("import")
    try:
        return _real_import(name, globals, locals, fromlist, level)
    finally:
        _leave()


def wrap(owner, attr: str, name: str) -> None:
    fn = getattr(owner, attr, None)
    if fn is None:
        return
    raw = fn.__func__ if isinstance(fn, classmethod) else fn

    @functools.wraps(raw)
    def timed(*a, **kw):
        _enter(name)
        try:
            return raw(*a, **kw)
        finally:
            _leave()

    setattr(owner, attr, classmethod(timed) if isinstance(owner.__dict__.get(attr), classmethod) else timed)


def main(argv: list[str]) -> None:
    builtins.__import__ = _import
    _enter("import")
    import typer  # noqa: F401
    _leave()
    _enter("command modules (labvirt.cli, registration)")
    import labvirt.cli as cli
    _leave()
    import typer._coercion as coercion
    import typer.core as tcore
    import typer.main as tmain

    wrap(tmain, "get_command", "Typer app build (click commands)")
    wrap(tcore, "build_runtime_param", "option parsing (Typer's pydantic adapters)")
    wrap(coercion, "build_runtime_param", "option parsing (Typer's pydantic adapters)")
    import labvirt.ops.session as session
    import labvirt.cli.output as output

    wrap(session, "load_lab", "lab files (load + validate spec)")
    wrap(session, "lab_lock", "lock")
    wrap(session, "open_driver", "connection (open driver)")
    wrap(session, "host_verdict", "host verdict")
    wrap(session.Session, "observe", "observation")
    import labvirt.host.facts as facts

    wrap(facts, "read_host", "host facts (/proc, /sys, /dev/kvm)")
    wrap(session, "plan_up_for", "desired state + plan")
    wrap(session.Session, "refusals", "refusals (host facts, capacity)")
    wrap(session, "_finish", "close (simulator save / disconnect)")
    for fn in ("ok", "warn", "note", "print_json", "err", "out"):
        wrap(output, fn, "rendering (Rich)")
    try:
        import labvirt.cli.tables as tables

        for fn in dir(tables):
            if fn.startswith("print_"):
                wrap(tables, fn, "rendering (Rich)")
    except ImportError:
        pass
    sys.argv = ["labvirt", *argv]
    code = 0
    try:
        cli.main()
    except SystemExit as e:
        code = e.code or 0
    builtins.__import__ = _real_import
    total = time.perf_counter() - T0
    TOTALS["rest (Typer dispatch, the command's own work)"] = total - sum(TOTALS.values())
    sys.stdout.flush()
    print("\n" + json.dumps({"exit": code, "total": total, "phases": TOTALS}))


if __name__ == "__main__":
    main(sys.argv[1:])
