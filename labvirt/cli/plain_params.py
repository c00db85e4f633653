"""Option values that need no conversion skip Typer's pydantic adapters.

Typer 0.29 converts every option value through a pydantic TypeAdapter built on first use, also the
defaults and the options not given: importing pydantic and building the adapters costs a command
about a fifth of its start-up. Most values need nothing: an option not given (None), a string for a
`str` option, a default already of the option's type, or plain decimal digits for an `int` or
`float` (inside its min/max), the strings of a `list[str]` option (`--student s01 --student s02`). Those are
answered here; every other value (a choice, a path, another list, text that is not a plain number) goes to
Typer's own conversion, built on demand, so its checks and error messages stay
exactly Typer's.

This reaches into Typer's internals (`_TyperParameter.get_runtime_param`, `typer._coercion.RuntimeParam`),
for the `labvirt` process only (main(); tests through CliRunner see Typer unchanged); where they are
not there (another Typer version), nothing is changed and Typer converts as usual.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

try:
    from typer._coercion import RuntimeParam, build_runtime_param
except ImportError:     # another Typer: leave its conversion alone
    RuntimeParam = None

_INT = re.compile(r"-?[0-9]{1,18}")
_FLOAT = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,15})?")

if RuntimeParam is not None:
    @dataclass(frozen=True)
    class PlainRuntimeParam(RuntimeParam):
        descriptor: Any = None
        _typer: list = field(default_factory=list)     # Typer's own conversion, once needed

        def _coerce_value(self, value: Any, param, ctx) -> Any:
            plain = self._plain(value)
            if plain is not None and self._in_range(plain):
                return plain
            if not self._typer:
                self._typer.append(build_runtime_param(self.descriptor))
            return self._typer[0]._coerce_value(value, param=param, ctx=ctx)

        def _in_range(self, value: Any) -> bool:
            if isinstance(value, (str, list)):
                return True
            low, high = self.parameter_info.min, self.parameter_info.max
            return (low is None or value >= low) and (high is None or value <= high)

        def _plain(self, value: Any) -> Any:
            """The value when it needs no conversion (or only int()/float() of plain digits), else None."""
            kind = self.annotation
            if self.parameter_info.parser is not None or getattr(self.parameter_info, "exists", False):
                return None     # the user's parser, a path check: Typer's
            if kind is str and isinstance(value, str):
                return value
            if kind == list[str] and isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                return list(value)      # what Typer's adapter makes of them
            if kind is int and type(value) is int:
                return value
            if kind is int and isinstance(value, str) and _INT.fullmatch(value):
                return int(value)
            if kind is float and type(value) in (int, float):
                return float(value)
            if kind is float and isinstance(value, str) and _FLOAT.fullmatch(value):
                return float(value)
            return None


def install() -> None:
    """From now on in this process, every Typer parameter converts plain values itself (see above);
    other values, and every value of a choice, path or list, still reach Typer's conversion. An
    option not given (None) needs no conversion whatever its type. Called by labvirt's main() only."""
    if RuntimeParam is None:
        return
    from typer.core import _TyperParameter

    typers = _TyperParameter.get_runtime_param
    if getattr(typers, "labvirt_plain", False):
        return

    def get_runtime_param(self):
        if getattr(self, "_runtime_param", None) is None:
            descriptor = getattr(self, "type_descriptor", None)
            if descriptor is None:
                return typers(self)
            self._runtime_param = PlainRuntimeParam(parameter_info=descriptor.parameter_info,
                                                    annotation=descriptor.annotation, descriptor=descriptor)
        return self._runtime_param

    get_runtime_param.labvirt_plain = True
    _TyperParameter.get_runtime_param = get_runtime_param
