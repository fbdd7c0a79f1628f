"""FeeSync's benchmarks (`make bench`, i.e. `python -m bench.run`; see bench/README.md).

This package module holds only what every benchmark module shares and needs no Django:
the result row of `bench/results.json` and a stopwatch. Importing it must not touch
Django, because `bench.run` decides the settings and the database before Django starts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypedDict

__all__ = ["Result", "Stopwatch", "result", "ratio", "stopwatch"]


class Result(TypedDict):
    """One row of bench/results.json. `name` is a stable contract (DESIGN.md, Benchmarks):
    runs are compared by it. `target` is None where there is no target (floors, ratios);
    `ok` is None then too."""

    name: str
    value: float
    unit: str
    target: float | None
    ok: bool | None
    n: int | None


def result(
    name: str,
    value: float,
    unit: str,
    *,
    target: float | None = None,
    n: int | None = None,
    higher_is_better: bool = False,
) -> Result:
    """A result row; `ok` says whether `value` meets `target` (at most it, by default)."""
    ok = None if target is None else (value >= target if higher_is_better else value <= target)
    return Result(name=name, value=round(float(value), 4), unit=unit, target=target, ok=ok, n=n)


def ratio(name: str, value: float, floor: float, *, n: int | None = None) -> Result:
    """`value / floor` as an "x" row: how far above its floor a figure is. Machines here are
    shared, so the ratio drifts less between runs than either absolute time."""
    return result(name, value / floor if floor > 0 else float("inf"), "x", n=n)


class Stopwatch:
    """Elapsed wall-clock seconds of a `with stopwatch() as sw:` block, in `sw.seconds`."""

    seconds: float = 0.0


@contextmanager
def stopwatch() -> Iterator[Stopwatch]:
    sw = Stopwatch()
    start = time.perf_counter()
    try:
        yield sw
    finally:
        sw.seconds = time.perf_counter() - start
