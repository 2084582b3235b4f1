"""Shared by the benchmarks: best-of-N time and peak memory of one callable, in-process."""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable
from typing import TypeVar

import pyarrow as pa

T = TypeVar("T")
# Every proxy pool stays alive: Arrow frees some buffers after the call has returned (the
# CSV reader's threads) through the pool that gave them; a proxy gone by then crashes.
_POOLS: list[pa.MemoryPool] = []


def measure(fn: Callable[[], T], repeat: int) -> tuple[float, int, T]:
    """Best wall time of ``repeat`` untraced runs (and what that run returned), then the
    peak memory of one more run: the Python heap (tracemalloc, which also sees NumPy and
    pandas buffers) plus Arrow's pool. Tracing slows pandas' per-object code about
    threefold and Arrow's vectorised code hardly at all, so traced times would flatter
    the Arrow side."""
    best, answer = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        out = fn()
        elapsed = time.perf_counter() - start
        if elapsed < best:
            best, answer = elapsed, out
    gc.collect()
    base = pa.default_memory_pool()
    proxy = pa.proxy_memory_pool(base)
    _POOLS.append(proxy)
    pa.set_memory_pool(proxy)
    tracemalloc.start()
    try:
        fn()
        _, heap = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        pa.set_memory_pool(base)
    return best, heap + proxy.max_memory(), answer  # type: ignore[return-value]
