"""Numba kernels for packed binary codes. Validation lives in the Python wrappers.

Codes are rows of ``uint8`` as ``np.packbits`` writes them (first dimension in the
most significant bit). The Hamming kernels read them as ``uint64`` words; a width that
is not a multiple of 64 bits is zero-padded on both sides, which leaves every distance
unchanged (``0 xor 0 = 0``).

Every top-k here orders by score and then by ascending row (the tie rule), whatever the
thread count: each thread keeps exact per-query heaps over its own slice of rows, keyed by
``(score, row)``, and the slices are merged by the same key.

Speed comes from two things (measured in the throughput chapter): the word count of a code
is a compile-time constant (one kernel is compiled per width, so the inner loop unrolls and
the queries stay in registers), and each block of database rows is scored against every
query of the batch while it sits in cache, so a batch reads the database from memory once.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import sys

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

from phase2.storage import atomic_write_bytes, cache_dir

_BLOCK_BYTES = 16 * 1024  # database rows per block: about half of a 32 KiB L1 data cache
_NO_ROW = np.iinfo(np.int64).max


@intrinsic
def _popcount64(typingctx, x):
    """Population count of a uint64 via LLVM's ``ctpop`` (one POPCNT instruction)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


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
def _replace_top(keys, rows, key, row):  # pragma: no cover - compiled
    """Replace the root of the max-heap ordered by ``(key, row)`` and sift it down."""
    _sift(keys, rows, key, row, keys.shape[0])


@njit(cache=True)
def _sort_heap(keys, rows):  # pragma: no cover - compiled
    """Sort a max-heap in place into ascending ``(key, row)`` order (the second half of heapsort)."""
    for end in range(keys.shape[0] - 1, 0, -1):
        key, row = keys[end], rows[end]
        keys[end] = keys[0]
        rows[end] = rows[0]
        _sift(keys, rows, key, row, end)


QUERY_GROUP = 8  # queries scored together against each row: the row is loaded once, the queries stay in registers


def _group_source(group: int, n_words: int, indent: str, dense: bool = False) -> str:
    """Loop body scoring ``group`` queries from ``q0`` against rows ``start..end``, fully unrolled: into the
    per-slice heaps, or (``dense``) into the distance matrix and the per-slice distance histograms."""
    lines = [f"q{a}_{w} = queries[q0 + {a}, {w}]" for a in range(group) for w in range(n_words)]
    if not dense:
        lines += [f"top{a} = heap_dist[s, q0 + {a}, 0]" for a in range(group)]
    lines.append("for j in range(start, end):")
    lines += [f"    x{w} = database[j, {w}]" for w in range(n_words)]
    for a in range(group):
        lines.append(f"    d{a} = np.int32(" + " + ".join(f"popcount(q{a}_{w} ^ x{w})" for w in range(n_words)) + ")")
        if dense:
            lines += [f"    dist[q0 + {a}, j] = np.int16(d{a})", f"    hist[s, q0 + {a}, d{a}] += 1"]
        else:
            lines += [f"    if d{a} < top{a}:",
                      f"        replace_top(heap_dist[s, q0 + {a}], heap_rows[s, q0 + {a}], d{a}, np.int64(j))",
                      f"        top{a} = heap_dist[s, q0 + {a}, 0]"]
    return "\n".join(indent + line for line in lines)


def _scan_source(name: str, arguments: str, signature: str, n_words: int, block_rows: int, dense: bool) -> str:
    """A blocked scan over row slices (one per thread) and groups of queries, calling :func:`_group_source`."""
    return f"""
@njit(types.void({signature}), parallel=True, boundscheck=False, cache=True)
def {name}({arguments}):
    n_slices = {"hist" if dense else "heap_dist"}.shape[0]
    n_queries = queries.shape[0]
    n_rows = database.shape[0]
    n_grouped = n_queries - n_queries % {QUERY_GROUP}
    slice_rows = (n_rows + n_slices - 1) // n_slices
    for s in prange(n_slices):
        stop = min(n_rows, (s + 1) * slice_rows)
        for start in range(s * slice_rows, stop, {block_rows}):
            end = min(stop, start + {block_rows})
            for q0 in range(0, n_grouped, {QUERY_GROUP}):
{_group_source(QUERY_GROUP, n_words, " " * 16, dense)}
            for q0 in range(n_grouped, n_queries):
{_group_source(1, n_words, " " * 16, dense)}
"""


@functools.cache
def _hamming_kernel(n_words: int):
    r"""Compile the blocked Hamming top-k for codes of exactly ``n_words`` 64-bit words.

    For query :math:`q` and row :math:`x_j`, :math:`d_j = \sum_{w<W} \mathrm{popcount}(q_w \oplus x_{j,w})`.
    Slice ``s`` of the rows fills ``heap_dist[s, q]``/``heap_rows[s, q]``, a max-heap of the
    ``k`` smallest ``(d_j, j)``. Rows are visited in ascending order, so a row at the
    heap's worst distance never displaces an earlier one: the test is ``d_j < top``.
    The module's second kernel, ``distances``, writes every :math:`d_j` to ``dist[q, j]`` and counts them
    in ``hist[s, q, d]`` instead, for :func:`_select_by_count` (deep candidate lists).

    The source is generated for ``W`` and a group of :data:`QUERY_GROUP` queries (then single
    queries for the remainder) so every word is a named scalar held in a register: with a loop
    over words and queries instead, the scan ran at half the rate on the machine of the
    throughput chapter. Compiling takes seconds per width, once: the module is written to the
    cache directory and numba caches its machine code there.
    """
    block_rows = max(16, _BLOCK_BYTES // (8 * n_words))
    words = "types.uint64[:, ::1], types.uint64[:, ::1]"
    source = f"""# Generated by phase2.kernels for {n_words}-word codes; numba caches its machine code beside this file.
import numpy as np
from numba import njit, prange, types

from phase2.kernels import _popcount64 as popcount, _replace_top as replace_top

{_scan_source("kernel", "queries, database, heap_dist, heap_rows",
              words + ", types.int32[:, :, ::1], types.int64[:, :, ::1]", n_words, block_rows, False)}
{_scan_source("distances", "queries, database, dist, hist",
              words + ", types.int16[:, ::1], types.int32[:, :, ::1]", n_words, block_rows, True)}"""
    # A real file (named by its content) lets numba cache the compiled kernel across processes.
    path = cache_dir() / "kernels" / f"hamming_{n_words}w_{hashlib.sha256(source.encode()).hexdigest()[:12]}.py"
    if not path.exists() or path.read_text() != source:
        atomic_write_bytes(path, source.encode())
    spec = importlib.util.spec_from_file_location(f"_phase2_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # numba re-imports it by name when loading its cache
    spec.loader.exec_module(module)
    return module


@njit(types.void(types.float32[:, ::1], types.uint8[:, ::1], types.float32[:, :, ::1], types.int64[:, :, ::1]),
      parallel=True, cache=True)
def _asymmetric_kernel(tables, database, heap_cost, heap_rows):
    r"""Blocked top-k of float queries against sign codes through per-byte lookup tables.

    ``tables[q, 256 * p + v]`` is :math:`\sum_{t<8} \pm q_{8p+t}` for byte value ``v`` at byte ``p``
    (``+`` where bit ``t`` is set), so the score of row ``j`` is :math:`\sum_p T_q[p, x_{j,p}]`,
    summed in byte order. The heaps keep the ``k`` smallest ``(-score, j)``.
    """
    n_slices = heap_cost.shape[0]
    n_queries = tables.shape[0]
    n_rows, n_bytes = database.shape
    slice_rows = (n_rows + n_slices - 1) // n_slices
    block_rows = max(16, 16384 // n_bytes)
    for s in prange(n_slices):
        stop = min(n_rows, (s + 1) * slice_rows)
        for start in range(s * slice_rows, stop, block_rows):
            end = min(stop, start + block_rows)
            for qi in range(n_queries):
                table = tables[qi]
                keys = heap_cost[s, qi]
                rows = heap_rows[s, qi]
                top = keys[0]
                for j in range(start, end):
                    score = np.float32(0)
                    for p in range(n_bytes):
                        score += table[256 * p + database[j, p]]
                    if -score < top:
                        _replace_top(keys, rows, -score, np.int64(j))
                        top = keys[0]


@njit(types.void(types.float32[::1], types.int64[::1], types.float32, types.int64), inline="always")
def _offer(keys, rows, cost, row):  # pragma: no cover - compiled
    """Put ``(cost, row)`` in the max-heap of the ``k`` smallest pairs unless it is worse than the root or
    ``row`` is already held (a candidate list with repeats). A repeat that was evicted never returns: the
    root only gets smaller, and it was at most the evicted pair."""
    if cost > keys[0] or (cost == keys[0] and row >= rows[0]):
        return
    for t in range(keys.shape[0]):
        if rows[t] == row:
            return
    _replace_top(keys, rows, cost, row)


@njit([types.void(types.float32[:, ::1], store, types.int64[:, ::1], types.float32[:, :, ::1], types.int64[:, :, ::1])
       for store in (types.float32[:, ::1], types.uint8[:, ::1])],
      parallel=True, boundscheck=False, fastmath={"reassoc"}, cache=True)
def _rescore_kernel(queries, store, candidates, heap_cost, heap_rows):  # pragma: no cover - compiled
    r"""Per query (threads split the queries), the ``k`` best candidates by :math:`s_r = q \cdot x_r`.

    A store as wide as the queries holds :math:`x_r` itself (float32 vectors or uint8 codes). A store an
    eighth as wide holds packed sign bits, :math:`x_{r,8p+t} = 2 b - 1` for bit ``7 - t`` of byte ``p``
    (``np.packbits`` order; the queries are zero-padded to eight times its width).
    ``heap_cost[0, q]``/``heap_rows[0, q]`` is the max-heap of the ``k`` smallest ``(-s_r, r)``; negative
    rows (a first stage that found fewer) are skipped. Sums are reassociated by LLVM into vector lanes: one
    fixed order, the same on every run and thread count."""
    n_queries, n_candidates = candidates.shape
    width = store.shape[1]
    packed = queries.shape[1] != width
    for qi in prange(n_queries):
        q = queries[qi]
        for i in range(n_candidates):
            row = candidates[qi, i]
            if row < 0:
                continue
            acc = np.float32(0)
            if packed:
                for p in range(width):
                    byte = np.uint8(store[row, p])
                    for t in range(8):
                        acc += q[8 * p + t] * np.float32(2 * ((byte >> (7 - t)) & 1) - 1)
            else:
                for d in range(width):
                    acc += q[d] * np.float32(store[row, d])
            _offer(heap_cost[0, qi], heap_rows[0, qi], -acc, row)


def as_words(codes: np.ndarray) -> np.ndarray:
    """Packed ``uint8`` codes as C-contiguous ``uint64`` words, zero-padded to 8 bytes."""
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    n, nbytes = codes.shape
    padded_bytes = -(-nbytes // 8) * 8
    if padded_bytes != nbytes:
        padded = np.zeros((n, padded_bytes), np.uint8)
        padded[:, :nbytes] = codes
        codes = padded
    return codes.view(np.uint64)


def _check_codes(queries: np.ndarray, database: np.ndarray) -> None:
    for name, arr in (("queries", queries), ("database", database)):
        if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim != 2:
            raise ValueError(f"{name} codes must be a 2-D uint8 array of packed bits, got "
                             f"{getattr(arr, 'dtype', type(arr).__name__)} with shape {getattr(arr, 'shape', None)}")
    if queries.shape[1] != database.shape[1]:
        raise ValueError(f"code width mismatch: queries have {queries.shape[1]} bytes per code, "
                         f"database has {database.shape[1]}")


def _check_k(database: np.ndarray, k: int) -> None:
    if database.shape[0] == 0:
        raise ValueError("database is empty")
    if not 1 <= k <= database.shape[0]:
        raise ValueError(f"k must be between 1 and the database size {database.shape[0]}, got {k}")


def _slices(n_rows: int) -> int:
    """Row slices: one per thread, never so many that a slice is smaller than a few blocks."""
    return max(1, min(numba.get_num_threads(), n_rows // 4096))


@njit(parallel=True, cache=True)
def _merge(keys, rows, k):  # pragma: no cover - compiled
    """Per query (threads split the queries), the ``k`` smallest ``(key, row)`` pairs over all slices' heaps,
    in order: each heap is sorted in place, then the sorted slices are merged. Compiled and parallel, as its
    cost counts in single-query latency and, at a depth of 1,000 candidates, in batch throughput."""
    n_slices, n_queries, depth = keys.shape
    out_keys = np.empty((n_queries, k), keys.dtype)
    out_rows = np.empty((n_queries, k), np.int64)
    for q in prange(n_queries):
        for s in range(n_slices):
            _sort_heap(keys[s, q], rows[s, q])
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


@njit(types.void(types.int16[:, ::1], types.int32[:, :, ::1], types.int32[:, ::1], types.int64[:, ::1]),
      parallel=True, boundscheck=False, cache=True)
def _select_by_count(dist, hist, out_dist, out_rows):  # pragma: no cover - compiled
    r"""Per query (threads split the queries), the ``k`` smallest ``(d_j, j)`` of a distance row, in order,
    by counting: the histogram gives the threshold :math:`t`, the smallest distance with
    :math:`\#\{j: d_j \le t\} \ge k`; one pass in row order then places every row with :math:`d_j < t`
    at its distance's next slot and the first :math:`k - \#\{d_j < t\}` rows at :math:`t`. Linear in the
    rows whatever ``k``, where a heap of 1,000 entries per query spilled out of the L1 cache."""
    n_queries, n_rows = dist.shape
    k = out_rows.shape[1]
    n_slices, _, n_bins = hist.shape
    for q in prange(n_queries):
        slot = np.zeros(n_bins, np.int64)  # slot[b]: rows with a distance below b, where b's rows start
        below = 0
        threshold = 0
        while True:
            count = 0
            for s in range(n_slices):
                count += hist[s, q, threshold]
            slot[threshold] = below
            if below + count >= k:
                break
            below += count
            threshold += 1
        at_threshold = k - below
        for j in range(n_rows):
            d = dist[q, j]
            if d < threshold or (d == threshold and at_threshold > 0):
                if d == threshold:
                    at_threshold -= 1
                out_dist[q, slot[d]] = d
                out_rows[q, slot[d]] = j
                slot[d] += 1


DENSE_DEPTH = 100
"""From this many candidates per query, :func:`hamming_topk` counts (distance matrix + histogram) instead of
keeping heaps. Over 10^5 384-bit codes, 1,000 queries, on the 2-core reference machine: equal at 100, and
3.1x (1 thread) to 4.4x (2 threads) faster at 1,000, where the heaps spilled out of the L1 cache; heaps
were 1.3x faster at 10."""
_DENSE_BYTES = 64 << 20  # the distance matrix of one chunk of queries


def hamming_topk(queries: np.ndarray, database: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest database rows of each query by Hamming distance.

    Returns ``(distances int32 [nq, k], ids int64 [nq, k])``, ordered by distance and
    then by row index (the documented tie rule).
    """
    _check_codes(queries, database)
    _check_k(database, k)
    if queries.shape[0] == 0:
        return np.empty((0, k), np.int32), np.empty((0, k), np.int64)
    q_words, db_words = as_words(queries), as_words(database)
    n_slices = _slices(database.shape[0])
    kernels = _hamming_kernel(db_words.shape[1])
    if k < DENSE_DEPTH or 64 * db_words.shape[1] > np.iinfo(np.int16).max:
        heap_dist = np.full((n_slices, len(q_words), k), np.iinfo(np.int32).max, np.int32)
        heap_rows = np.full((n_slices, len(q_words), k), _NO_ROW, np.int64)
        kernels.kernel(q_words, db_words, heap_dist, heap_rows)
        return _merge(heap_dist, heap_rows, k)
    out_dist = np.empty((len(q_words), k), np.int32)
    out_rows = np.empty((len(q_words), k), np.int64)
    chunk = max(QUERY_GROUP, _DENSE_BYTES // (2 * len(database)) // QUERY_GROUP * QUERY_GROUP)
    for first in range(0, len(q_words), chunk):
        part = q_words[first:first + chunk]
        dist = np.empty((len(part), len(database)), np.int16)
        hist = np.zeros((n_slices, len(part), 64 * db_words.shape[1] + 1), np.int32)
        kernels.distances(part, db_words, dist, hist)
        _select_by_count(dist, hist, out_dist[first:first + chunk], out_rows[first:first + chunk])
    return out_dist, out_rows


def sign_lookup_tables(queries: np.ndarray) -> np.ndarray:
    """Per query and code byte, the score contribution of each of the 256 byte values (see the kernel)."""
    n, dim = queries.shape
    n_bytes = -(-dim // 8)
    padded = np.zeros((n, n_bytes * 8), np.float32)
    padded[:, :dim] = queries
    signs = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).astype(np.float32) * 2 - 1  # [256, 8]
    tables = np.einsum("npt,vt->npv", padded.reshape(n, n_bytes, 8), signs, optimize=False)
    return np.ascontiguousarray(tables.reshape(n, n_bytes * 256), dtype=np.float32)


def asymmetric_topk(queries: np.ndarray, database: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of float ``queries`` against sign codes, score ``sum_i q_i * (+1 if bit_i else -1)``.

    Returns ``(scores float32 [nq, k], ids int64 [nq, k])``, score descending, ties by row.
    Padding bits of the last byte count as zeros of a zero query component, so they add nothing.
    """
    if not isinstance(queries, np.ndarray) or queries.ndim != 2 or queries.dtype != np.float32:
        raise ValueError(f"queries must be a 2-D float32 array, got {getattr(queries, 'dtype', type(queries))}")
    if not isinstance(database, np.ndarray) or database.dtype != np.uint8 or database.ndim != 2:
        raise ValueError("database codes must be a 2-D uint8 array of packed bits")
    if database.shape[1] != -(-queries.shape[1] // 8):
        raise ValueError(f"code width mismatch: {queries.shape[1]}-d queries need {-(-queries.shape[1] // 8)} "
                         f"bytes per code, database has {database.shape[1]}")
    _check_k(database, k)
    n_slices = _slices(database.shape[0])
    heap_cost = np.full((n_slices, len(queries), k), np.inf, np.float32)
    heap_rows = np.full((n_slices, len(queries), k), _NO_ROW, np.int64)
    if len(queries):
        _asymmetric_kernel(sign_lookup_tables(queries), np.ascontiguousarray(database), heap_cost, heap_rows)
    cost, rows = _merge(heap_cost, heap_rows, k)
    return -cost, rows


RESCORE_STORES = ("float32", "uint8", "signs")


def rescore_topk(queries: np.ndarray, store: np.ndarray, candidates: np.ndarray, k: int,
                 kind: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    """Re-rank each query's candidate rows by a finer score and keep the best ``k``: the second stage of a
    binary pipeline, parallel over queries.

    ``kind`` says what ``store`` holds: ``float32`` vectors (score ``q . x``), ``uint8`` scalar codes
    (score ``q . c``; pass ``q * step`` as the query so it ranks like the decoded vector) or packed
    ``signs`` (score ``sum_i q_i * (+1 if bit_i else -1)``: the float query against the binary codes).
    Candidates may repeat (a row counts once) and hold -1 for "none". Returns ``(scores float32 [nq, k],
    ids int64 [nq, k])``, score descending, ties by row; a query with fewer than ``k`` distinct candidates
    is padded with score -inf and id -1.
    """
    if kind not in RESCORE_STORES:
        raise ValueError(f"store kind must be one of {RESCORE_STORES}, got {kind!r}")
    if not isinstance(queries, np.ndarray) or queries.ndim != 2:
        raise ValueError(f"queries must be a 2-D array, got {getattr(queries, 'shape', type(queries).__name__)}")
    expected = np.float32 if kind == "float32" else np.uint8
    if not isinstance(store, np.ndarray) or store.ndim != 2 or store.dtype != expected:
        raise ValueError(f"a {kind} store must be a 2-D {np.dtype(expected).name} array, got "
                         f"{getattr(store, 'dtype', type(store).__name__)} with shape {getattr(store, 'shape', None)}")
    width = -(-queries.shape[1] // 8) if kind == "signs" else queries.shape[1]
    if store.shape[1] != width:
        raise ValueError(f"{queries.shape[1]}-d queries need {width} {'bytes' if kind == 'signs' else 'values'} per "
                         f"{kind} store row, the store has {store.shape[1]}")
    candidates = np.ascontiguousarray(candidates, dtype=np.int64)
    if candidates.ndim != 2 or candidates.shape[0] != queries.shape[0]:
        raise ValueError(f"candidates {candidates.shape} must be 2-D with one row per query ({queries.shape[0]})")
    if candidates.size and (candidates.min() < -1 or candidates.max() >= len(store)):
        raise ValueError(f"candidate rows must lie in [0, {len(store)}) or be -1 for none")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    heap_cost = np.full((1, len(queries), k), np.inf, np.float32)
    heap_rows = np.full((1, len(queries), k), _NO_ROW, np.int64)
    if kind == "signs":
        padded = np.zeros((len(queries), 8 * width), np.float32)
        padded[:, :queries.shape[1]] = queries
        queries = padded
    _rescore_kernel(np.ascontiguousarray(queries, dtype=np.float32), np.ascontiguousarray(store), candidates,
                    heap_cost, heap_rows)
    cost, rows = _merge(heap_cost, heap_rows, k)
    empty = rows == _NO_ROW
    return np.where(empty, -np.inf, -cost).astype(np.float32), np.where(empty, -1, rows)
