""""Did you mean": the one place that finds the known words closest to a mistyped one, and says so. Pure.

Every message that offers a correction (unknown keys and values in lab files, packstack service
names and answer-file keys, modprobe.d module names) takes its candidates from `closest` and its
wording from `hint`, so all of them read alike:  ... (did you mean 'memory'?)
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

CUTOFF = 0.6     # difflib's similarity ratio a candidate needs (1.0 = equal)


def closest(word: str, choices: Iterable[str], n: int = 1, cutoff: float = CUTOFF) -> list[str]:
    """Up to `n` of `choices` most like `word`, best first; [] when none is close enough."""
    return difflib.get_close_matches(word, sorted(set(choices)), n=n, cutoff=cutoff)


def hint(candidates: Iterable[str]) -> str:
    """" (did you mean 'a'?)", " (did you mean 'a' or 'b'?)", or "" when there is no candidate."""
    words = [repr(c) for c in candidates]
    if not words:
        return ""
    listed = words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
    return f" (did you mean {listed}?)"


def did_you_mean(word: str, choices: Iterable[str], n: int = 1, cutoff: float = CUTOFF) -> str:
    """`hint(closest(...))`: the suffix to append to a message about `word`."""
    return hint(closest(word, choices, n=n, cutoff=cutoff))
