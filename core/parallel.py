"""Work split between the machine's cores (at most two) by plain threads, numpy only.

numpy's products, gathers, FFTs and element-wise operations release the GIL, so two threads
working on different frames of the same clip use two cores. One small shared pool serves
the S2D runtimes and the pitch tracker; nothing here changes a result, only who computes it.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_POOL = None
_POOL_LOCK = threading.Lock()
_WORKER = threading.local()


def default_threads() -> int:
    """Both cores of a two-core machine, at most 2 (the pieces of work are too short to share
    among more without waiting on memory)."""
    return max(1, min(2, os.cpu_count() or 1))


def _thread_pool(workers: int) -> ThreadPoolExecutor:
    """One shared pool of helper threads (created on first use)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers < workers:
            _POOL = ThreadPoolExecutor(max(1, workers), thread_name_prefix="s2f-worker")
        return _POOL


def _as_worker(work, a: int, e: int) -> None:
    _WORKER.active = True
    try:
        work(a, e)
    finally:
        _WORKER.active = False


def split_frames(work, n: int, threads: int) -> None:
    """Run ``work(a, e)`` over [0, n) cut into ``threads`` contiguous shares at once: the
    calling thread takes the first, pool threads the others (for work that releases the GIL).
    Called from a pool thread it runs everything itself (no waiting on its own pool)."""
    if threads <= 1 or n <= 1 or getattr(_WORKER, "active", False):
        work(0, n)
        return
    bounds = np.linspace(0, n, min(threads, n) + 1).round().astype(int)
    pool = _thread_pool(len(bounds) - 2)
    futures = [pool.submit(_as_worker, work, a, e) for a, e in zip(bounds[1:-1], bounds[2:])]
    try:
        work(bounds[0], bounds[1])
    finally:
        for f in futures:   # always wait: the workers write into the caller's arrays
            f.exception()
    for f in futures:
        f.result()
