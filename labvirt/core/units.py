"""Sizes as people write them ("8GiB", "512 MiB", "240G") to bytes, and back.

UNITS is the one size-unit table: the lab files' sizes and libvirt's `unit=` attributes (read by
`labvirt.core.observed`) use the same names with the same meaning, as libvirt defines them:
K/M/G/T/P/E and KiB..EiB are binary, KB..EB decimal, "b" and "bytes" are bytes. Case does not matter.
"""

from __future__ import annotations

import re

UNITS = {
    "b": 1, "bytes": 1,
    "k": 1024, "kib": 1024, "kb": 1000,
    "m": 1024**2, "mib": 1024**2, "mb": 1000**2,
    "g": 1024**3, "gib": 1024**3, "gb": 1000**3,
    "t": 1024**4, "tib": 1024**4, "tb": 1000**4,
    "p": 1024**5, "pib": 1024**5, "pb": 1000**5,
    "e": 1024**6, "eib": 1024**6, "eb": 1000**6,
}
KiB, MiB, GiB, TiB = UNITS["kib"], UNITS["mib"], UNITS["gib"], UNITS["tib"]
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$")
ALLOWED = "a number with a unit such as '512MiB', '8GiB' or '240G' (K/M/G/T are binary)"


def parse_size(text: object) -> int:
    """Return bytes, or raise ValueError with what is allowed."""
    if isinstance(text, bool) or not isinstance(text, str):
        raise ValueError(f"got {text!r}; give {ALLOWED}")
    m = _SIZE.match(text)
    if not m or m.group(2).lower() not in UNITS:
        raise ValueError(f"got {text!r}; give {ALLOWED}")
    value = float(m.group(1)) * UNITS[m.group(2).lower()]
    return int(value)


def to_bytes(count: int, unit: str) -> int:
    """`count` of libvirt's `unit` (e.g. 8, "GiB") in bytes; KeyError for a unit libvirt does not have."""
    return count * UNITS[unit.lower()]


def format_size(n: int) -> str:
    """Shortest exact binary form: 8589934592 -> '8GiB'; otherwise one decimal."""
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= factor:
            if n % factor == 0:
                return f"{n // factor}{unit}"
            return f"{n / factor:.1f}{unit}"
    return f"{n}B"
