"""How much of a command's start is labvirt's records being generated (bench/README.md, issue 15).

    cd LAB && python bench/import_floor.py real MODULES...   # the stack, then labvirt's MODULES
    cd LAB && python bench/import_floor.py stub MODULES...   # the same, @dataclass made a no-op

Imports labvirt's stack (Typer, Rich's console, libvirt-python, lxml) and then the given labvirt
modules (those a no-op `up` imports: see bench/README.md for how the list was taken). With `stub`,
`dataclasses.dataclass` returns the class unchanged, so no record's methods are generated: the
classes cannot be used, only imported. The wall time of `stub` against `real`, as whole processes, is
what generating the records costs; `stub` against floor_cli.py is what the rest of labvirt's modules cost.

It measured the tree before commit ce11754, when labvirt's records were dataclasses; since, they are
msgspec Structs (labvirt.core.record) and `stub` changes nothing.
"""

import importlib
import sys

if sys.argv[1] == "stub":
    import dataclasses

    def unchanged(cls=None, /, **_options):
        return (lambda c: c) if cls is None else cls

    dataclasses.dataclass = unchanged

import libvirt  # noqa: E402,F401  the stack, as floor_cli.py imports it
import lxml.etree  # noqa: E402,F401
import rich.console  # noqa: E402,F401
import typer  # noqa: E402,F401

for name in sys.argv[2:]:
    importlib.import_module(name)
