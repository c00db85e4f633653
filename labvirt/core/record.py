"""labvirt's values: records built by msgspec's `Struct`, in C.

Every value the core passes around (specs, desired and observed state, actions, plans, host facts) is a
`Record`: typed fields, positional or keyword construction, `==`, `hash` and `repr` like a frozen
dataclass. They were frozen dataclasses until issue 15: CPython generates a dataclass's methods at import
by compiling source text, about 0.5 ms a class here, and every command imported about a hundred of them
(0.065 s of a 0.22 s no-op `up`; bench/README.md, "The no-op `up`"). msgspec makes the same methods in
C (0.02 ms a class).

What differs from dataclasses, and what this module gives instead:
- `replace(record, **changes)` and `field_names(record_or_type)` (not `dataclasses.replace`/`fields`);
- a field left out of `==` and `hash` (dataclasses' `compare=False`): `__eq__, __hash__ =
  compared_without(...)` in the class body, naming the fields left out;
- a field left out of `repr` (secrets): `__repr__ = repr_without(...)`;
- a field added after its record's spec hash was first stored (dataclasses' field metadata): named in
  the class attribute `unhashed` (labvirt.core.spec), read with `field_defaults`;
- instances have no `__dict__`: no attribute can be added to one.
"""

from __future__ import annotations

import functools

import msgspec
from msgspec import field  # noqa: F401  re-exported: field(default_factory=...)
from msgspec.structs import replace  # noqa: F401  re-exported


class Record(msgspec.Struct, frozen=True):
    """A frozen record (a value)."""


class MutableRecord(msgspec.Struct):
    """A record whose fields can be set (a builder or a session's state)."""


def is_record(value) -> bool:
    return isinstance(value, msgspec.Struct)


def field_names(record) -> tuple[str, ...]:
    """The record's (or record type's) fields, in declaration order."""
    return record.__struct_fields__


@functools.cache
def field_defaults(cls) -> dict[str, object]:
    """Field name -> default value, for the fields of record type `cls` that have one (a default_factory
    field maps to msgspec's factory object)."""
    names, values = cls.__struct_fields__, cls.__struct_defaults__
    return dict(zip(names[len(names) - len(values):], values))


def as_dict(record) -> dict:
    """Field name -> value, one level deep (nested records stay records)."""
    return {name: getattr(record, name) for name in record.__struct_fields__}


def compared_without(*ignored: str):
    """`__eq__` and `__hash__` that leave the named fields out (dataclasses' compare=False)."""

    def key(self):
        return tuple(getattr(self, name) for name in self.__struct_fields__ if name not in ignored)

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return key(self) == key(other)

    def __hash__(self):
        return hash(key(self))

    return __eq__, __hash__


def repr_without(*hidden: str):
    """`__repr__` that leaves out the named fields (secrets: private keys)."""

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__struct_fields__ if name not in hidden)
        return f"{type(self).__name__}({shown})"

    return __repr__
