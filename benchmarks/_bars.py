"""Shared by the benchmark scripts: time a call, print each bar as PASS or MISS and count the misses."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

Bar = tuple[str, float, Callable[[float], bool]]


def report_bars(bars: Sequence[Bar], *, scale: float = 1.0, width: int = 58) -> int:
    """Print ``PASS``/``MISS`` with the measured value (times ``scale``); return how many missed."""
    print()
    missed = 0
    for name, value, ok in bars:
        passed = bool(ok(value))
        missed += not passed
        print(f"{'PASS' if passed else 'MISS'}  {name:<{width}} measured {scale * value:.3f}")
    return missed


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times
