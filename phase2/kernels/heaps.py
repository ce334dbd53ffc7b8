"""Exact top-k heaps keyed by ``(cost, row)``, shared by the kernels: a max-heap of the ``k`` smallest pairs per
query and slice, merged across slices in the tie rule's order; and the checks every top-k wrapper makes."""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

NO_ROW = np.iinfo(np.int64).max


@njit(cache=True)
def _sift(keys, rows, key, row, size):  # pragma: no cover - compiled
    """Put ``(key, row)`` at the root of the max-heap ``keys[:size]``/``rows[:size]`` ordered by ``(key, row)``
    and sift it down."""
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        right = child + 1
        if right < size and (keys[right] > keys[child] or (keys[right] == keys[child] and rows[right] > rows[child])):
            child = right
        if keys[child] < key or (keys[child] == key and rows[child] < row):
            break
        keys[i] = keys[child]
        rows[i] = rows[child]
        i = child
    keys[i] = key
    rows[i] = row


@njit(cache=True)
def replace_top(keys, rows, key, row):  # pragma: no cover - compiled
    """Replace the root of the max-heap ordered by ``(key, row)`` and sift it down."""
    _sift(keys, rows, key, row, keys.shape[0])


@njit(cache=True)
def sort_heap(keys, rows):  # pragma: no cover - compiled
    """Sort a max-heap in place into ascending ``(key, row)`` order (the second half of heapsort)."""
    for end in range(keys.shape[0] - 1, 0, -1):
        key, row = keys[end], rows[end]
        keys[end] = keys[0]
        rows[end] = rows[0]
        _sift(keys, rows, key, row, end)


def check_k(database: np.ndarray, k: int) -> None:
    if database.shape[0] == 0:
        raise ValueError("database is empty")
    if not 1 <= k <= database.shape[0]:
        raise ValueError(f"k must be between 1 and the database size {database.shape[0]}, got {k}")


def slices(n_rows: int) -> int:
    """Row slices: one per thread, never so many that a slice is smaller than a few blocks."""
    return max(1, min(numba.get_num_threads(), n_rows // 4096))


@njit(parallel=True, cache=True)
def merge(keys, rows, k):  # pragma: no cover - compiled
    """Per query (threads split the queries), the ``k`` smallest ``(key, row)`` pairs over all slices' heaps,
    in order: each heap is sorted in place, then the sorted slices are merged. Compiled and parallel, as its
    cost counts in single-query latency and, at a depth of 1,000 candidates, in batch throughput."""
    n_slices, n_queries, depth = keys.shape
    out_keys = np.empty((n_queries, k), keys.dtype)
    out_rows = np.empty((n_queries, k), np.int64)
    for q in prange(n_queries):
        for s in range(n_slices):
            sort_heap(keys[s, q], rows[s, q])
        position = np.zeros(n_slices, np.int64)
        for i in range(k):
            best = -1
            for s in range(n_slices):
                p = position[s]
                if p < depth and (best < 0 or keys[s, q, p] < keys[best, q, position[best]]
                                  or (keys[s, q, p] == keys[best, q, position[best]]
                                      and rows[s, q, p] < rows[best, q, position[best]])):
                    best = s
            out_keys[q, i] = keys[best, q, position[best]]
            out_rows[q, i] = rows[best, q, position[best]]
            position[best] += 1
    return out_keys, out_rows
