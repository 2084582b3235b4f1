"""Shared by the benchmarks: best-of-N time and peak memory of one callable, in-process."""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable

import pyarrow as pa


def measure(fn: Callable[[], object], repeat: int) -> tuple[float, int]:
    """Best wall time over ``repeat`` runs and the peak memory of any run: the Python heap
    (tracemalloc, which also sees NumPy/pandas buffers) plus Arrow's memory pool."""
    best, peak = float("inf"), 0
    for _ in range(repeat):
        gc.collect()
        base_pool = pa.default_memory_pool()
        proxy = pa.proxy_memory_pool(base_pool)
        pa.set_memory_pool(proxy)
        tracemalloc.start()
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        _, py_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        pa.set_memory_pool(base_pool)
        best = min(best, elapsed)
        peak = max(peak, py_peak + proxy.max_memory())
    return best, peak
