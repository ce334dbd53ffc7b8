"""The Hamming scan: codes in a code-major layout (:class:`CodeBlocks`) so the popcount vectorises, and the
threshold-pruned exact top-k over it (:func:`hamming_topk`)."""

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


@intrinsic
def _popcount64(typingctx, x):
    """Population count of a uint64 via LLVM's ``ctpop`` (one POPCNT instruction)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen



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
        """The blocks of packed codes: a 2-D ``uint8`` array, one row per code (anything else is a ValueError)."""
        if not isinstance(codes, np.ndarray) or codes.dtype != np.uint8 or codes.ndim != 2 or not codes.shape[1]:
            kind = getattr(codes, "dtype", type(codes).__name__)
            raise ValueError(f"codes must be a 2-D uint8 array of packed bits, one row per code, got {kind} with shape "
                             f"{getattr(codes, 'shape', None)}")
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


@njit(types.void(types.int16[::1], types.int64, types.int64[::1]), boundscheck=False, cache=True)
def _first_positions(dist, n, hist):  # pragma: no cover - compiled
    """The counting sort's offsets: ``hist`` (zeros, one bin per distance) becomes, per distance, the position of
    its first item when ``dist[:n]`` is sorted stably."""
    for i in range(n):
        hist[dist[i]] += 1
    start = 0
    for b in range(hist.shape[0]):
        count = hist[b]
        hist[b] = start
        start += count


def query_scan_source(n_words: int, blocks: str, holds_code: str) -> str:
    """Source that scans the blocks ``blocks`` (a range expression) for query ``q`` of work unit ``s``, 16 spaces
    deep: the query's words as named scalars, each block's :data:`LANES` distances at once (so the popcount
    vectorises), and every row ``row`` with ``holds_code`` true and a distance below the threshold appended to the
    unit's buffer, cut back by ``compact`` when full. Shared by the flat scan and the inverted file's."""
    qwords = "\n".join(f"                q{w} = queries[q, {w}]" for w in range(n_words))
    distance = " + ".join(f"popcount(x[{w}, i] ^ q{w})" for w in range(n_words))
    return f"""{qwords}
                t = thresholds[s, q]
                c = counts[s, q]
                for b in {blocks}:
                    x = blocks[b]
                    hits = 0
                    for i in range({LANES}):
                        d = {distance}
                        dist[i] = d
                        hits += d < t
                    if hits > 0:
                        for i in range({LANES}):
                            row = b * {LANES} + i
                            if dist[i] < t and {holds_code}:
                                kept_dist[s, q, c] = np.int16(dist[i])
                                kept_rows[s, q, c] = np.int32(row)
                                c += 1
                                if c == capacity:
                                    c, t = compact(kept_dist[s, q], kept_rows[s, q], c, k, hist)
                thresholds[s, q] = t
                counts[s, q] = c"""


def _scan_source(n_words: int) -> str:
    """The scan for ``n_words``-word codes, unrolled over words so each query word is a named scalar."""
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
{query_scan_source(n_words, "range(tile, tile_end)", "row < n_rows")}
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
    return load_generated(f"hamming_{n_words}w", _module_source(n_words))


def load_generated(stem: str, source: str):
    """Import a generated kernel module. A real file under the cache directory, named by its content, lets numba
    cache the compiled kernel across processes."""
    path = cache_dir() / "kernels" / f"{stem}_{hashlib.sha256(source.encode()).hexdigest()[:12]}.py"
    if not path.exists() or path.read_text() != source:
        atomic_write_bytes(path, source.encode())
    spec = importlib.util.spec_from_file_location(f"_phase2_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # numba re-imports it by name when loading its cache
    spec.loader.exec_module(module)
    return module


def _module_source(n_words: int) -> str:
    return f"""# Generated by phase2.kernels.hamming for {n_words}-word codes; numba caches its machine code beside it.
import numpy as np
from numba import njit, prange, types

from phase2.kernels.hamming import _compact as compact, _popcount64 as popcount

{_scan_source(n_words)}"""


def generated_assembly(source: str, name: str) -> str:
    """The machine code of function ``name`` of a generated kernel ``source`` as compiled here, compiled afresh
    (numba does not show cached code)."""
    namespace: dict = {}
    exec(compile(source.replace("cache=True", "cache=False"), f"<{name}>", "exec"), namespace)
    return next(iter(namespace[name].inspect_asm().values()))


def scan_assembly(n_words: int = 6) -> str:
    """The machine code of the scan for ``n_words``-word codes: the evidence for :data:`SIMD_LEVEL`
    (``vpopcntq`` on AVX-512 VPOPCNTDQ, ``vpshufb`` on AVX2)."""
    return generated_assembly(_module_source(n_words), "scan")


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
        _first_positions(dist, k, hist)
        for i in range(k):
            d = dist[i]
            out_dist[q, hist[d]] = d
            out_rows[q, hist[d]] = rows[i]
            hist[d] += 1


SEED_SAMPLE = 8192
"""Rows (whole blocks of :data:`LANES`) sampled per query for the starting threshold of :func:`hamming_topk`, on
databases of more than four times as many rows (smaller ones start with no threshold)."""
_KEPT_BYTES = 64 << 20  # the kept-row buffers of one chunk of queries


def seed_rank(mu: np.ndarray | float) -> np.ndarray:
    r"""The rank in a sample whose distance seeds a query's threshold, for :math:`\mu` expected top-``k`` rows in
    the sample: :math:`\lceil \mu + 4\sqrt{\mu} + 4 \rceil`, four Poisson standard deviations and four above it,
    so a query the seed starves (a rescan) is rare."""
    return np.ceil(mu + 4 * np.sqrt(mu) + 4).astype(np.int64)


def _starting_rank(n_rows: int, k: int) -> tuple[int, int] | None:
    """Block stride and rank (:func:`seed_rank`) for :func:`_seed_thresholds`, or None for no starting
    threshold."""
    if n_rows <= 4 * SEED_SAMPLE:
        return None
    n_blocks = -(-n_rows // LANES)
    stride = max(1, n_blocks // (SEED_SAMPLE // LANES))
    sampled = len(range(0, n_blocks, stride)) * LANES
    rank = int(seed_rank(k * sampled / n_rows))
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
