"""Float scores against codes: the asymmetric search of sign bits through per-byte lookup tables, and the
re-ranking of each query's candidates by a finer store (float32 vectors, uint8 codes or sign bits), the uint8 codes
also against a query rounded to int8 in exact integer sums (``vpdpbusd`` where the CPU has AVX-512 VNNI:
:data:`RESCORE_LEVEL`)."""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from phase2.kernels.heaps import NO_ROW, check_k, merge, replace_top, slices

PREFETCH_AHEAD = 8
"""Candidates ahead of the one being scored whose store rows are prefetched: re-ranking reads rows at random, and
without it each row's cache misses stall the core. At 10^6 random 384-d rows, 1,000 queries, 2 threads (AVX-512
machine): 1,000 uint8 candidates 0.081 -> 0.021 s, 100 candidates 0.0087 -> 0.0029 s, 1,000 float32 candidates
0.093 -> 0.064 s (medians of 7; 4 and 16 ahead within 15% of 8, 32 slower)."""
CACHE_LINE = 64
VNNI_BYTES = 64
"""Bytes one ``vpdpbusd`` multiplies: 64 uint8 x int8 products summed in fours into 16 int32 lanes."""


def _host_rescore_level() -> str:
    """How integer re-ranking runs here: ``avx512-vnni`` (explicit ``vpdpbusd``) where this CPU has AVX-512 VNNI
    and numba compiles for it, else ``portable`` (a plain integer loop, whatever the compiler makes of it)."""
    import llvmlite.binding as llvm

    if numba.config.CPU_NAME:
        return "portable"
    return "avx512-vnni" if llvm.get_host_cpu_features().get("avx512vnni", False) else "portable"


RESCORE_LEVEL = _host_rescore_level()
"""The instruction set integer re-ranking runs at, decided when the module loads and recorded with every timing.
Both levels compute the same int32 sums exactly, so their results are identical."""


@intrinsic
def _prefetch(typingctx, array, row, column):
    """``llvm.prefetch`` (read, keep in every cache level) of the line holding ``array[row, column]``: a hint,
    it changes no result."""
    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        view = context.make_array(array_type)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, array_type, view, [args[1], args[2]])
        byte_pointer = ir.IntType(8).as_pointer()
        hint = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
            ir.VoidType(), [byte_pointer, ir.IntType(32), ir.IntType(32), ir.IntType(32)]), "llvm.prefetch.p0i8")
        read, keep, data = (ir.Constant(ir.IntType(32), v) for v in (0, 3, 1))
        builder.call(hint, [builder.bitcast(pointer, byte_pointer), read, keep, data])
        return context.get_dummy_value()

    return types.void(array, row, column), codegen


@njit(inline="always")
def _prefetch_ahead(store, candidates, qi, i):  # pragma: no cover - compiled
    """Prefetch every cache line of the store row of query ``qi``'s candidate :data:`PREFETCH_AHEAD` places after
    candidate ``i``, if there is one."""
    ahead = i + PREFETCH_AHEAD
    if ahead < candidates.shape[1] and candidates[qi, ahead] >= 0:
        for column in range(0, store.shape[1], CACHE_LINE // store.itemsize):
            _prefetch(store, candidates[qi, ahead], column)


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
                        replace_top(keys, rows, -score, np.int64(j))
                        top = keys[0]


@njit([types.void(key[::1], types.int64[::1], key, types.int64) for key in (types.float32, types.int32)],
      inline="always")
def _offer(keys, rows, cost, row):  # pragma: no cover - compiled
    """Put ``(cost, row)`` in the max-heap of the ``k`` smallest pairs unless it is worse than the root or
    ``row`` is already held (a candidate list with repeats). A repeat that was evicted never returns: the
    root only gets smaller, and it was at most the evicted pair."""
    if cost > keys[0] or (cost == keys[0] and row >= rows[0]):
        return
    for t in range(keys.shape[0]):
        if rows[t] == row:
            return
    replace_top(keys, rows, cost, row)


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
    fixed order, the same on every run and thread count. The rows of the candidate :data:`PREFETCH_AHEAD` places
    on are prefetched while a row is scored."""
    n_queries, n_candidates = candidates.shape
    width = store.shape[1]
    packed = queries.shape[1] != width
    for qi in prange(n_queries):
        q = queries[qi]
        for i in range(n_candidates):
            _prefetch_ahead(store, candidates, qi, i)
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



@intrinsic
def _vnni_dot(typingctx, store, row, query, chunks):
    r""":math:`\sum_{d < 64 c} s_{row,d} q_d` in int32 over the first ``chunks`` x 64 bytes of a uint8 store row and
    an int8 query: ``vpdpbusd`` (uint8 x int8, four products summed per int32 lane) on 64-byte loads, then one sum
    of the 16 lanes. Exact: each lane holds at most ``255 * 128 * d / 16``."""
    def codegen(context, builder, signature, args):
        lanes, bytes_ = ir.VectorType(ir.IntType(32), 16), ir.VectorType(ir.IntType(8), VNNI_BYTES)
        byte_pointer = ir.IntType(8).as_pointer()
        zero = ir.Constant(ir.IntType(64), 0)
        store_type, query_type = signature.args[0], signature.args[2]
        rows = context.make_array(store_type)(context, builder, args[0])
        start = builder.bitcast(cgutils.get_item_pointer(context, builder, store_type, rows, [args[1], zero]),
                                byte_pointer)
        vector = context.make_array(query_type)(context, builder, args[2])
        weights = builder.bitcast(cgutils.get_item_pointer(context, builder, query_type, vector, [zero]), byte_pointer)
        busd = cgutils.get_or_insert_function(builder.module, ir.FunctionType(lanes, [lanes, lanes, lanes]),
                                              "llvm.x86.avx512.vpdpbusd.512")
        total = cgutils.alloca_once_value(builder, ir.Constant(lanes, None))
        with cgutils.for_range(builder, args[3]) as loop:
            offset = builder.mul(loop.index, ir.Constant(ir.IntType(64), VNNI_BYTES))
            codes, query = (builder.bitcast(builder.load(builder.bitcast(builder.gep(base, [offset]),
                                                                         bytes_.as_pointer()), align=1), lanes)
                            for base in (start, weights))
            builder.store(builder.call(busd, [builder.load(total), codes, query]), total)
        reduce = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), [lanes]),
                                                "llvm.vector.reduce.add.v16i32")
        return builder.call(reduce, [builder.load(total)])

    return types.int32(store, row, query, chunks), codegen


@njit(types.int32(types.uint8[:, ::1], types.int64, types.int8[::1], types.int64, types.int64), inline="always")
def _integer_tail(store, row, query, start, width):  # pragma: no cover - compiled
    """The int32 sum over columns ``start`` to ``width``: all of a row on the portable path, the columns past
    the last whole 64 on the VNNI one."""
    acc = np.int32(0)
    for d in range(start, width):
        acc += np.int32(store[row, d]) * np.int32(query[d])
    return acc


if RESCORE_LEVEL == "avx512-vnni":
    @njit(types.int32(types.uint8[:, ::1], types.int64, types.int8[::1], types.int64), inline="always")
    def _integer_dot(store, row, query, whole):  # pragma: no cover - compiled
        """The int32 sum: ``whole`` 64-byte chunks through ``vpdpbusd``, the columns past them one by one."""
        acc = _vnni_dot(store, row, query, whole)
        if VNNI_BYTES * whole < store.shape[1]:  # a width that is not a multiple of 64
            acc += _integer_tail(store, row, query, VNNI_BYTES * whole, store.shape[1])
        return acc
else:
    @njit(types.int32(types.uint8[:, ::1], types.int64, types.int8[::1], types.int64), inline="always")
    def _integer_dot(store, row, query, whole):  # pragma: no cover - compiled
        """The int32 sum, column by column (``whole`` is unused here)."""
        return _integer_tail(store, row, query, 0, store.shape[1])


@njit(types.void(types.int8[:, ::1], types.uint8[:, ::1], types.int64[:, ::1], types.int32[:, :, ::1],
                 types.int64[:, :, ::1]), parallel=True, boundscheck=False, cache=True)
def _integer_kernel(queries, store, candidates, heap_cost, heap_rows):  # pragma: no cover - compiled
    r"""Per query (threads split the queries), the ``k`` best candidates by the exact int32 sum
    :math:`s_r = \sum_d c_{r,d} w_d` of uint8 codes ``c`` and an int8 query ``w`` (:data:`RESCORE_LEVEL` says
    how it is computed; every level gives the same sums). ``heap_cost[0, q]``/``heap_rows[0, q]`` is the max-heap
    of the ``k`` smallest ``(-s_r, r)``; negative rows are skipped; rows :data:`PREFETCH_AHEAD` candidates on are
    prefetched, as in the float kernel."""
    n_queries, n_candidates = candidates.shape
    whole = store.shape[1] // VNNI_BYTES
    for qi in prange(n_queries):
        q = queries[qi]
        for i in range(n_candidates):
            _prefetch_ahead(store, candidates, qi, i)
            row = candidates[qi, i]
            if row >= 0:
                _offer(heap_cost[0, qi], heap_rows[0, qi], np.int32(-_integer_dot(store, row, q, whole)), row)


def int8_query(queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each query scaled so its largest magnitude is 127 and rounded to int8 (half to even), and the scale: an
    all-zero query stays zero with scale 1. Ranks like the float query up to its rounding."""
    peak = np.abs(queries).max(axis=1, initial=0).astype(np.float64)
    scale = np.where(peak > 0, 127 / np.where(peak > 0, peak, 1), 1.0)
    return np.rint(queries * scale[:, None]).astype(np.int8), scale


def rescore_assembly() -> str:
    """The machine code of the integer re-ranking loop, compiled afresh (numba shows no cached code): the
    evidence for :data:`RESCORE_LEVEL` (``vpdpbusd`` on AVX-512 VNNI)."""
    signature = _integer_kernel.signatures[0]
    fresh = njit(signature, parallel=True, boundscheck=False, cache=False)(_integer_kernel.py_func)
    return fresh.inspect_asm(signature)


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
    check_k(database, k)
    n_slices = slices(database.shape[0])
    heap_cost = np.full((n_slices, len(queries), k), np.inf, np.float32)
    heap_rows = np.full((n_slices, len(queries), k), NO_ROW, np.int64)
    if len(queries):
        _asymmetric_kernel(sign_lookup_tables(queries), np.ascontiguousarray(database), heap_cost, heap_rows)
    cost, rows = merge(heap_cost, heap_rows, k)
    return -cost, rows


RESCORE_STORES = ("float32", "uint8", "uint8-int8", "signs")


def rescore_topk(queries: np.ndarray, store: np.ndarray, candidates: np.ndarray, k: int,
                 kind: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    """Re-rank each query's candidate rows by a finer score and keep the best ``k``: the second stage of a
    binary pipeline, parallel over queries.

    ``kind`` says what ``store`` holds and how it is scored: ``float32`` vectors (score ``q . x``), ``uint8``
    scalar codes (score ``q . c``; pass ``q * step`` as the query so it ranks like the decoded vector),
    ``uint8-int8``, the same codes against the query rounded to int8 (:func:`int8_query`; exact integer sums,
    through VNNI where the CPU has it; the score returned is the sum over the query's scale) or packed ``signs``
    (score ``sum_i q_i * (+1 if bit_i else -1)``: the float query against the binary codes).
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
    heap_rows = np.full((1, len(queries), k), NO_ROW, np.int64)
    if kind == "uint8-int8":
        integers, scale = int8_query(np.asarray(queries, dtype=np.float32))
        heap_cost = np.full((1, len(queries), k), np.iinfo(np.int32).max, np.int32)
        _integer_kernel(integers, np.ascontiguousarray(store), candidates, heap_cost, heap_rows)
        cost, rows = merge(heap_cost, heap_rows, k)
        empty = rows == NO_ROW
        return np.where(empty, -np.inf, -cost / scale[:, None]).astype(np.float32), np.where(empty, -1, rows)
    heap_cost = np.full((1, len(queries), k), np.inf, np.float32)
    if kind == "signs":
        padded = np.zeros((len(queries), 8 * width), np.float32)
        padded[:, :queries.shape[1]] = queries
        queries = padded
    _rescore_kernel(np.ascontiguousarray(queries, dtype=np.float32), np.ascontiguousarray(store), candidates,
                    heap_cost, heap_rows)
    cost, rows = merge(heap_cost, heap_rows, k)
    empty = rows == NO_ROW
    return np.where(empty, -np.inf, -cost).astype(np.float32), np.where(empty, -1, rows)
