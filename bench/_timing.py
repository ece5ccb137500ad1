"""Shared timing helpers for bench scripts: best-of-N wall time and the machine's load."""

from __future__ import annotations

import os
import time
from collections.abc import Callable


def best_time(fn: Callable[[], object], repeat: int = 5, min_time: float = 0.05) -> float:
    """Best wall time of one call of ``fn`` over ``repeat`` rounds (each loops to min_time)."""
    fn()  # warm-up: caches, lazy imports
    best = float("inf")
    for _ in range(repeat):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_time:
                break
        best = min(best, elapsed / n)
    return best


def load_average() -> float:
    """1-minute load average (record it with every figure: 2-core timings are fragile)."""
    return os.getloadavg()[0]
