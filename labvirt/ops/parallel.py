"""Run one function over many items on a bounded pool of threads, collecting every outcome."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")


def each(items: Iterable[T], fn: Callable[[T], object], workers: int = 8) -> list[tuple[T, object, Exception | None]]:
    """[(item, result, error)] in the order of `items`; one item's failure does not stop the others."""
    items = list(items)

    def one(item):
        try:
            return item, fn(item), None
        except Exception as e:  # collected for the caller to report per item
            return item, None, e

    if len(items) <= 1 or workers <= 1:
        return [one(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(one, items))
