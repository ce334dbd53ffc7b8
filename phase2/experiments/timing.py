"""Wall-clock timing the way the harness and the demo take it: threads pinned for faiss, numba and BLAS alike, a
median of repeats after a warm-up, single queries within a budget, and the cores other processes keep busy."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import faiss
import numba
import numpy as np
from threadpoolctl import threadpool_limits


def max_threads() -> int:
    return numba.config.NUMBA_NUM_THREADS


def _cpu_ticks() -> tuple[int, int]:
    """(busy ticks of the whole machine, ticks of this process) from Linux's /proc."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    busy = sum(map(int, fields)) - int(fields[3]) - int(fields[4])  # all but idle and iowait
    own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return busy, int(own[11]) + int(own[12])  # utime + stime


def busy_cores_elsewhere(seconds: float = 2.0) -> float | None:
    """Cores kept busy by *other* processes during ``seconds`` of sleep (None where /proc is missing).

    Timings are only meaningful on an idle machine: a background process at the lowest priority
    made faiss's 2-thread PQ training 10-16x slower inside a Jupyter kernel on the 2-core reference
    machine (OpenMP threads wait for each other at every barrier)."""
    try:
        busy, own = _cpu_ticks()
        time.sleep(seconds)
        busy_after, own_after = _cpu_ticks()
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, (busy_after - busy) - (own_after - own)) / os.sysconf("SC_CLK_TCK") / seconds


@contextmanager
def threads(count: int):
    """Run faiss (OpenMP), numba and BLAS on ``count`` threads."""
    before = numba.get_num_threads()
    faiss.omp_set_num_threads(count)
    numba.set_num_threads(count)
    try:
        with threadpool_limits(limits=count):
            yield
    finally:
        numba.set_num_threads(before)
        faiss.omp_set_num_threads(before)


def median_seconds(fn, repeats: int) -> tuple[float, object]:
    """Median wall time of ``repeats`` calls after one warm-up call, and the last result."""
    result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def seconds_each(call: Callable, items, budget_s: float) -> list[float]:
    """Wall time of ``call(item)`` for each item in order, until all are done or ``budget_s`` is spent (the one
    that crosses it counts): a method taking 90 ms per query (Milvus Lite's client path) would otherwise hold a
    grid for minutes. The caller records how many were timed."""
    seconds, spent = [], 0.0
    for item in items:
        start = time.perf_counter()
        call(item)
        seconds.append(time.perf_counter() - start)
        spent += seconds[-1]
        if spent > budget_s:
            break
    return seconds


def single_query_seconds(method, queries: np.ndarray, k: int, budget_s: float) -> list[float]:
    """Wall time of each query asked alone (batch size 1), within ``budget_s`` (:func:`seconds_each`)."""
    return seconds_each(lambda i: method.query(queries[i:i + 1], k), range(len(queries)), budget_s)

