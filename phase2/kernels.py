"""Numba kernels for packed binary codes. Validation lives in the Python wrappers.

Codes are rows of ``uint8`` as ``np.packbits`` writes them (first dimension in the
most significant bit). The Hamming scan reads them as ``uint64`` words in a code-major layout
(:class:`CodeBlocks`: blocks of :data:`LANES` codes, word by word), so the inner loop runs over codes and LLVM
vectorises the popcount for the CPU it compiles on: ``vpopcntq`` on AVX-512 VPOPCNTDQ, a ``vpshufb`` nibble
lookup on AVX2, scalar ``popcnt`` below (:data:`SIMD_LEVEL`, recorded with every timing). A width that is not a
multiple of 64 bits is zero-padded, which leaves every distance unchanged (``0 xor 0 = 0``).

Every top-k here orders by score and then by ascending row (the tie rule), whatever the
thread count. The Hamming top-k keeps, per query, only the rows below a threshold that tightens as it scans
(:func:`hamming_topk`); the other kernels keep exact per-query heaps keyed by ``(score, row)``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import sys
from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

from phase2.storage import atomic_write_bytes, cache_dir

_BLOCK_BYTES = 16 * 1024  # codes per tile of the scan, per heap block: about half of a 32 KiB L1 cache
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


LANES = 32
"""Codes per block of :class:`CodeBlocks`: the lanes of the scan's inner loop (four 512-bit or eight 256-bit
registers of 64-bit words per word of the code)."""


def _host_simd_level() -> str:
    """What LLVM compiles the scan for: ``avx512-vpopcntdq``, ``avx2`` or ``scalar`` from this CPU's features, or
    ``<name> target`` when ``NUMBA_CPU_NAME`` names another CPU to compile for."""
    import llvmlite.binding as llvm

    if numba.config.CPU_NAME:
        return f"{numba.config.CPU_NAME} target"
    features = {name for name, on in llvm.get_host_cpu_features().items() if on}
    return "avx512-vpopcntdq" if "avx512vpopcntdq" in features else "avx2" if "avx2" in features else "scalar"


SIMD_LEVEL = _host_simd_level()
"""The instruction set the Hamming scan runs at here, decided when the module loads (see the module docstring);
:func:`scan_assembly` shows the code it became."""


@dataclass(frozen=True)
class CodeBlocks:
    """Packed codes laid out for the scan, built once per database: ``blocks[b, w, i]`` is word ``w`` of code
    ``LANES * b + i`` (zero past the last code), so the ``LANES`` codes of a block sit side by side in each word."""

    blocks: np.ndarray  # uint64 [ceil(n / LANES), n_words, LANES]
    n: int  # codes
    n_bytes: int  # bytes per packed code

    @classmethod
    def of(cls, codes: np.ndarray) -> CodeBlocks:
        words = as_words(codes)
        n, n_words = words.shape
        padded = np.zeros((-(-n // LANES) * LANES, n_words), np.uint64)
        padded[:n] = words
        blocks = np.ascontiguousarray(padded.reshape(-1, LANES, n_words).transpose(0, 2, 1))
        return cls(blocks, n, codes.shape[1])

    @property
    def n_words(self) -> int:
        return self.blocks.shape[1]

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The packed ``uint8`` codes of ``rows``, gathered from the blocks (what a re-ranking stage reads)."""
        words = np.ascontiguousarray(self.blocks[rows // LANES, :, rows % LANES])
        return np.ascontiguousarray(words.view(np.uint8)[:, : self.n_bytes])

    @property
    def nbytes(self) -> int:
        return self.blocks.nbytes


_COMPACT_SIGNATURE = types.Tuple((types.int64, types.uint64))(types.int16[::1], types.int32[::1], types.int64,
                                                              types.int64, types.int64[::1])


@njit(_COMPACT_SIGNATURE, boundscheck=False, cache=True)
def _compact(dist, rows, n, k, hist):  # pragma: no cover - compiled
    r"""Keep the ``k`` smallest ``(d, row)`` of ``dist[:n]``/``rows[:n]`` (rows ascending) at the front, in row
    order, by counting: :math:`t` is the smallest distance with :math:`\#\{i: d_i \le t\} \ge k`; every row below
    :math:`t` stays, and the first :math:`k - \#\{d_i < t\}` rows at :math:`t`. Returns ``(k, t)``: a later row
    (larger index) enters the top ``k`` only with a distance below :math:`t`. ``n >= k``."""
    hist[:] = 0
    for i in range(n):
        hist[dist[i]] += 1
    below, t = 0, 0
    while below + hist[t] < k:
        below += hist[t]
        t += 1
    at_t, kept = k - below, 0
    for i in range(n):
        d = dist[i]
        if d < t or (d == t and at_t > 0):
            if d == t:
                at_t -= 1
            dist[kept] = d
            rows[kept] = rows[i]
            kept += 1
    return kept, np.uint64(t)


def _scan_source(n_words: int) -> str:
    """The scan for ``n_words``-word codes, unrolled over words so each query word is a named scalar."""
    qwords = "\n".join(f"                q{w} = queries[q, {w}]" for w in range(n_words))
    distance = " + ".join(f"popcount(x[{w}, i] ^ q{w})" for w in range(n_words))
    return f"""
@njit(types.void(types.uint64[:, ::1], types.uint64[:, :, ::1], types.int64, types.int64, types.int64, types.int64,
                 types.int64, types.int16[:, :, ::1], types.int32[:, :, ::1], types.int64[:, ::1],
                 types.uint64[:, ::1]), parallel=True, boundscheck=False, cache=True)
def scan(queries, blocks, n_rows, k, n_slices, n_groups, tile_blocks, kept_dist, kept_rows, counts, thresholds):
    n_queries = queries.shape[0]
    n_blocks = blocks.shape[0]
    capacity = kept_dist.shape[2]
    per_slice = (n_blocks + n_slices - 1) // n_slices
    for unit in prange(n_slices * n_groups):
        s = unit // n_groups
        g = unit % n_groups
        first_query = g * n_queries // n_groups
        last_query = (g + 1) * n_queries // n_groups
        first_block = s * per_slice
        last_block = min(n_blocks, first_block + per_slice)
        dist = np.empty({LANES}, np.uint64)
        hist = np.empty({64 * n_words + 1}, np.int64)
        for tile in range(first_block, last_block, tile_blocks):
            tile_end = min(last_block, tile + tile_blocks)
            for q in range(first_query, last_query):
{qwords}
                t = thresholds[s, q]
                c = counts[s, q]
                for b in range(tile, tile_end):
                    x = blocks[b]
                    hits = 0
                    for i in range({LANES}):
                        d = {distance}
                        dist[i] = d
                        hits += d < t
                    if hits > 0:
                        for i in range({LANES}):
                            row = b * {LANES} + i
                            if dist[i] < t and row < n_rows:
                                kept_dist[s, q, c] = np.int16(dist[i])
                                kept_rows[s, q, c] = np.int32(row)
                                c += 1
                                if c == capacity:
                                    c, t = compact(kept_dist[s, q], kept_rows[s, q], c, k, hist)
                thresholds[s, q] = t
                counts[s, q] = c
"""


@functools.cache
def hamming_kernel(n_words: int):
    r"""Compile the fused threshold-pruned Hamming scan for codes of exactly ``n_words`` 64-bit words.

    For query :math:`q` and row :math:`x_j`, :math:`d_j = \sum_{w<W} \mathrm{popcount}(q_w \oplus x_{j,w})`,
    computed for the :data:`LANES` codes of a block at once. Work unit ``(s, g)`` scans row slice ``s`` for
    query group ``g``, a tile of blocks (about 16 KiB) at a time for every query of the group while the tile
    sits in L1. It appends row ``j`` to ``kept_dist[s, q]``/``kept_rows[s, q]`` iff :math:`d_j < t_{s,q}`;
    when that buffer is full, :func:`_compact` keeps the ``k`` smallest ``(d, j)`` and lowers
    :math:`t_{s,q}` to the ``k``-th distance. Rows arrive in ascending order, so the kept rows of slice ``s``
    hold its exact top ``k`` of the rows below the starting threshold.

    The source is generated for ``W`` (one kernel per width, compiled once and cached by numba under the cache
    directory) so that each query word is a scalar broadcast against the block's lanes.
    """
    source = _module_source(n_words)
    # A real file (named by its content) lets numba cache the compiled kernel across processes.
    path = cache_dir() / "kernels" / f"hamming_{n_words}w_{hashlib.sha256(source.encode()).hexdigest()[:12]}.py"
    if not path.exists() or path.read_text() != source:
        atomic_write_bytes(path, source.encode())
    spec = importlib.util.spec_from_file_location(f"_phase2_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # numba re-imports it by name when loading its cache
    spec.loader.exec_module(module)
    return module


def _module_source(n_words: int) -> str:
    return f"""# Generated by phase2.kernels for {n_words}-word codes; numba caches its machine code beside this file.
import numpy as np
from numba import njit, prange, types

from phase2.kernels import _compact as compact, _popcount64 as popcount

{_scan_source(n_words)}"""


def scan_assembly(n_words: int = 6) -> str:
    """The machine code of the scan for ``n_words``-word codes as compiled here, compiled afresh (numba does not
    show cached code): the evidence for :data:`SIMD_LEVEL` (``vpopcntq`` on AVX-512 VPOPCNTDQ, ``vpshufb`` on
    AVX2)."""
    namespace: dict = {}
    exec(compile(_module_source(n_words).replace("cache=True", "cache=False"), f"<scan {n_words}w>", "exec"),
         namespace)
    return next(iter(namespace["scan"].inspect_asm().values()))


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


@njit(types.void(types.uint64[:, ::1], types.uint64[:, :, ::1], types.int64, types.int64, types.int64,
                 types.uint64[:, ::1]), parallel=True, boundscheck=False, cache=True)
def _seed_thresholds(queries, blocks, n_rows, stride, rank, thresholds):  # pragma: no cover - compiled
    r"""Per query, a starting threshold from a systematic sample of whole blocks (``0, stride, 2 stride, ...``,
    :data:`LANES` rows each, so the sample is scored in vector lanes like the scan): one more than the
    ``rank``-th smallest sampled distance, for every row slice. With ``rank`` safely above the sample's expected
    count of top-``k`` rows, at least ``k`` rows lie below it with high probability; a query for which fewer
    do is scanned again without it (:func:`hamming_topk`)."""
    n_words = blocks.shape[1]
    for q in prange(queries.shape[0]):
        hist = np.zeros(64 * n_words + 1, np.int64)
        dist = np.empty(LANES, np.uint64)
        for b in range(0, blocks.shape[0], stride):
            dist[:] = 0
            for w in range(n_words):
                word = queries[q, w]
                for i in range(LANES):
                    dist[i] += _popcount64(blocks[b, w, i] ^ word)
            for i in range(min(LANES, n_rows - b * LANES)):
                hist[dist[i]] += 1
        seen = 0
        for d in range(hist.shape[0]):
            seen += hist[d]
            if seen >= rank:
                thresholds[:, q] = np.uint64(d + 1)
                break


@njit(types.void(types.int16[:, :, ::1], types.int32[:, :, ::1], types.int64[:, ::1], types.int64,
                 types.int32[:, ::1], types.int64[:, ::1], types.boolean[::1]), parallel=True, boundscheck=False,
      cache=True)
def _finish(kept_dist, kept_rows, counts, k, out_dist, out_rows, short):  # pragma: no cover - compiled
    r"""Per query, the ``k`` smallest ``(d, row)`` over the row slices' kept rows, in that order: the slices'
    rows are concatenated in slice order (so rows stay ascending), cut to ``k`` by :func:`_compact` and placed by
    a counting sort on the distance, stable in row order. A query whose slices kept fewer than ``k`` rows in all
    is marked ``short`` (its starting threshold was too low)."""
    n_slices, n_queries, capacity = kept_dist.shape
    n_bins = 64 * 64 * 8 + 1
    for q in prange(n_queries):
        total = 0
        for s in range(n_slices):
            total += counts[s, q]
        if total < k:
            short[q] = True
            continue
        dist = np.empty(total, np.int16)
        rows = np.empty(total, np.int32)
        at = 0
        for s in range(n_slices):
            for i in range(counts[s, q]):
                dist[at] = kept_dist[s, q, i]
                rows[at] = kept_rows[s, q, i]
                at += 1
        top = 0
        for i in range(total):
            top = max(top, np.int64(dist[i]))
        hist = np.zeros(min(n_bins, top + 1), np.int64)
        if total > k:
            _compact(dist, rows, total, k, hist)
            hist[:] = 0
        for i in range(k):
            hist[dist[i]] += 1
        start = 0
        for b in range(hist.shape[0]):
            count = hist[b]
            hist[b] = start
            start += count
        for i in range(k):
            d = dist[i]
            out_dist[q, hist[d]] = d
            out_rows[q, hist[d]] = rows[i]
            hist[d] += 1


SEED_SAMPLE = 8192
"""Rows (whole blocks of :data:`LANES`) sampled per query for the starting threshold of :func:`hamming_topk`, on
databases of more than four times as many rows (smaller ones start with no threshold)."""
_KEPT_BYTES = 64 << 20  # the kept-row buffers of one chunk of queries


def _starting_rank(n_rows: int, k: int) -> tuple[int, int] | None:
    r"""Block stride and rank for :func:`_seed_thresholds`, or None for no starting threshold: the rank is the
    expected count :math:`\mu` of top-``k`` rows among the sampled rows plus four of its Poisson standard
    deviations and four, so a short query (a rescan) is rare."""
    if n_rows <= 4 * SEED_SAMPLE:
        return None
    n_blocks = -(-n_rows // LANES)
    stride = max(1, n_blocks // (SEED_SAMPLE // LANES))
    sampled = len(range(0, n_blocks, stride)) * LANES
    mu = k * sampled / n_rows
    rank = int(np.ceil(mu + 4 * np.sqrt(mu) + 4))
    return (stride, rank) if rank < sampled - LANES else None


def _capacity(k: int) -> int:
    """Rows a query's buffer holds per row slice before :func:`_compact` cuts it back to ``k``."""
    return max(2 * k, k + 64)


def _work_split(n_queries: int, n_blocks: int) -> tuple[int, int]:
    """``(query groups, row slices)`` of a scan, one work unit per pair: threads split many queries; a batch of
    fewer queries than threads (a single query) splits the rows too, where there are enough."""
    threads = numba.get_num_threads()
    groups = min(n_queries, threads)
    return groups, max(1, min(threads // groups, n_blocks // 128))


def hamming_topk(queries: np.ndarray, database: np.ndarray | CodeBlocks, k: int,
                 seeded: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest database rows of each query by Hamming distance.

    ``database`` is packed ``uint8`` codes, or the same already laid out as :class:`CodeBlocks` (an index
    builds that once). Returns ``(distances int32 [nq, k], ids int64 [nq, k])``, ordered by distance and then by
    row index (the documented tie rule), exactly, whatever the thread count. ``seeded`` starts each query at a
    sampled threshold (:func:`_seed_thresholds`); the result is the same without it, only slower on large
    databases.
    """
    blocks = database if isinstance(database, CodeBlocks) else None
    _check_codes(queries, database if blocks is None else np.empty((1, blocks.n_bytes), np.uint8))
    n_rows = blocks.n if blocks is not None else database.shape[0]
    if n_rows == 0:
        raise ValueError("database is empty")
    if not 1 <= k <= n_rows:
        raise ValueError(f"k must be between 1 and the database size {n_rows}, got {k}")
    if 64 * -(-queries.shape[1] // 8) > np.iinfo(np.int16).max:
        raise ValueError(f"codes of {8 * queries.shape[1]} bits are wider than the scan counts (32,767 bits)")
    if queries.shape[0] == 0:
        return np.empty((0, k), np.int32), np.empty((0, k), np.int64)
    blocks = blocks or CodeBlocks.of(database)
    q_words = as_words(queries)
    scan = hamming_kernel(blocks.n_words).scan
    capacity = _capacity(k)
    start = _starting_rank(n_rows, k) if seeded else None
    tile_blocks = max(1, _BLOCK_BYTES // (8 * LANES * blocks.n_words))
    out_dist = np.empty((len(q_words), k), np.int32)
    out_rows = np.empty((len(q_words), k), np.int64)
    chunk = max(1, _KEPT_BYTES // (6 * capacity * numba.get_num_threads()))
    for first in range(0, len(q_words), chunk):
        part = q_words[first:first + chunk]
        groups, slices = _work_split(len(part), len(blocks.blocks))
        kept_dist = np.empty((slices, len(part), capacity), np.int16)
        kept_rows = np.empty((slices, len(part), capacity), np.int32)
        counts = np.zeros((slices, len(part)), np.int64)
        thresholds = np.full((slices, len(part)), 64 * blocks.n_words + 1, np.uint64)  # every row passes
        if start is not None:
            _seed_thresholds(part, blocks.blocks, n_rows, *start, thresholds)
        scan(part, blocks.blocks, n_rows, k, slices, groups, tile_blocks, kept_dist, kept_rows, counts, thresholds)
        short = np.zeros(len(part), np.bool_)
        _finish(kept_dist, kept_rows, counts, k, out_dist[first:first + chunk], out_rows[first:first + chunk], short)
        if short.any():  # the starting threshold let fewer than k rows through: scan those queries from scratch
            again = first + np.flatnonzero(short)
            out_dist[again], out_rows[again] = hamming_topk(queries[again], blocks, k, seeded=False)
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
