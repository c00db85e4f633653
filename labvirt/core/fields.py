"""Reading one TOML table field by field, each problem raised as a SpecError naming file and field."""

from __future__ import annotations

import re

from labvirt.core.errors import SpecError
from labvirt.core.suggest import closest, did_you_mean, hint
from labvirt.core.units import parse_size

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$|^[a-z]$")
NAME_RULE = "lowercase letters, digits and '-', starting with a letter, not ending with '-', 1-32 characters"


class Table:
    """A TOML table being read; unknown keys are refused with the closest known one."""

    def __init__(self, data: dict, file: str, prefix: str = ""):
        self.data = data
        self.file = file
        self.prefix = prefix
        self.known: set[str] = set()

    def path(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def fail(self, key: str, problem: str):
        raise SpecError(self.file, self.path(key), problem)

    def _get(self, key: str, required: bool, default):
        self.known.add(key)
        if key not in self.data:
            if required:
                raise SpecError(self.file, self.path(key), "missing required field" + self._mistyped(key))
            return default
        return self.data[key]

    def str(self, key: str, required: bool = False, default=None, choices=None, pattern=None, rule=""):
        value = self._get(key, required, default)
        if value is default and key not in self.data:
            return value
        if not isinstance(value, str):
            self.fail(key, f"must be a string, got {type(value).__name__} {value!r}")
        if choices is not None and value not in choices:
            self.fail(key, f"got {value!r}; allowed: {', '.join(choices)}{did_you_mean(value, choices)}")
        if pattern is not None and not pattern.match(value):
            self.fail(key, f"got {value!r}; allowed: {rule}")
        return value

    def int(self, key: str, required: bool = False, default=None, low=None, high=None):
        value = self._get(key, required, default)
        if value is default and key not in self.data:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"must be a whole number, got {value!r}")
        if (low is not None and value < low) or (high is not None and value > high):
            self.fail(key, f"got {value}; allowed: {low} to {high}")
        return value

    def bool(self, key: str, default=None):
        value = self._get(key, False, default)
        if key in self.data and not isinstance(value, bool):
            self.fail(key, f"must be true or false, got {value!r}")
        return value

    def size(self, key: str, required: bool = False, default=None, low=None, high=None):
        from labvirt.core.units import format_size

        value = self._get(key, required, default)
        if value is default and key not in self.data:
            return parse_size(value) if isinstance(value, str) else value   # a default written as "20GiB"
        try:
            n = parse_size(value)
        except ValueError as e:
            self.fail(key, str(e))
        if (low is not None and n < low) or (high is not None and n > high):
            self.fail(key, f"got {value!r}; allowed: {format_size(low)} to {format_size(high)}")
        return n

    def str_list(self, key: str, default=()):
        value = self._get(key, False, default)
        if key not in self.data:
            return tuple(value)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(key, f"must be a list of strings, got {value!r}")
        return tuple(value)

    def table(self, key: str, required: bool = False):
        value = self._get(key, required, None)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.fail(key, f"must be a table, got {value!r}")
        return Table(value, self.file, f"{self.path(key)}.")

    def tables(self, key: str, required: bool = False):
        value = self._get(key, required, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.fail(key, "must be an array of tables ([[" + key + "]] sections)")
        return [Table(v, self.file, f"{self.path(key)}[{i}].") for i, v in enumerate(value)]

    def done(self):
        """Refuse any key that was not read."""
        for key in self.data:
            if key not in self.known:
                raise SpecError(self.file, self.path(key),
                                f"unknown key{did_you_mean(key, self.known)}; known: {', '.join(sorted(self.known))}")

    def _mistyped(self, key: str) -> str:
        """For a missing required `key`: the key given instead of it, when one not read so far looks like it."""
        unread = [k for k in self.data if isinstance(k, str) and k not in self.known]
        typo = closest(key, unread)
        return f"; {typo[0]!r} is not a known key{hint([key])}" if typo else ""
