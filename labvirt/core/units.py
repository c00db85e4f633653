"""Sizes as people write them ("8GiB", "512 MiB", "240G") to bytes, and back."""

from __future__ import annotations

import re

_UNITS = {
    "b": 1,
    "k": 1024, "kb": 1000, "kib": 1024,
    "m": 1024**2, "mb": 1000**2, "mib": 1024**2,
    "g": 1024**3, "gb": 1000**3, "gib": 1024**3,
    "t": 1024**4, "tb": 1000**4, "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$")
ALLOWED = "a number with a unit such as '512MiB', '8GiB' or '240G' (K/M/G/T are binary)"


def parse_size(text: object) -> int:
    """Return bytes, or raise ValueError with what is allowed."""
    if isinstance(text, bool) or not isinstance(text, str):
        raise ValueError(f"got {text!r}; give {ALLOWED}")
    m = _SIZE.match(text)
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"got {text!r}; give {ALLOWED}")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    return int(value)


def format_size(n: int) -> str:
    """Shortest exact binary form: 8589934592 -> '8GiB'; otherwise one decimal."""
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= factor:
            if n % factor == 0:
                return f"{n // factor}{unit}"
            return f"{n / factor:.1f}{unit}"
    return f"{n}B"
