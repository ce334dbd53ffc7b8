"""Numba kernels for packed binary codes. Validation lives in the Python wrappers.

Codes are rows of ``uint8`` as ``np.packbits`` writes them (first dimension in the
most significant bit). Kernels read them as ``uint64`` words; a width that is not
a multiple of 64 bits is zero-padded on both sides, which leaves every Hamming
distance unchanged (``0 xor 0 = 0``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic


@intrinsic
def _popcount64(typingctx, x):
    """Population count of a uint64 via LLVM's ``ctpop`` (one POPCNT instruction)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


@njit(
    types.void(types.uint64[:, ::1], types.uint64[:, ::1], types.int32[:, ::1], types.int64[:, ::1]),
    parallel=True,
    cache=True,
)
def _hamming_topk_kernel(queries, database, out_dist, out_ids):
    r"""Exact Hamming top-k with a counting selection.

    For query :math:`q` and row :math:`x_j`, :math:`d_j = \sum_w \mathrm{popcount}(q_w \oplus x_{j,w})`.
    Distances are integers in :math:`[0, 64W]`, so a histogram finds the threshold
    :math:`t` (smallest with :math:`|\{j: d_j \le t\}| \ge k`) and one ascending pass
    over :math:`j` places each row at its rank. Result: distance ascending, ties by
    ascending row index -- the same order as a stable sort, for any thread count.
    """
    n_queries, n_words = queries.shape
    n_rows = database.shape[0]
    k = out_ids.shape[1]
    max_dist = n_words * 64
    for qi in prange(n_queries):
        dist = np.empty(n_rows, np.int32)
        hist = np.zeros(max_dist + 1, np.int64)
        for j in range(n_rows):
            s = np.uint64(0)
            for w in range(n_words):
                s += _popcount64(queries[qi, w] ^ database[j, w])
            dist[j] = np.int32(s)
            hist[s] += 1
        # start[d] = rank of the first row at distance d
        start = np.empty(max_dist + 1, np.int64)
        total = 0
        for d in range(max_dist + 1):
            start[d] = total
            total += hist[d]
        for j in range(n_rows):
            d = dist[j]
            rank = start[d]
            if rank < k:
                out_dist[qi, rank] = d
                out_ids[qi, rank] = j
                start[d] = rank + 1


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


def hamming_topk(queries: np.ndarray, database: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest database rows of each query by Hamming distance.

    Returns ``(distances int32 [nq, k], ids int64 [nq, k])``, ordered by distance and
    then by row index (the documented tie rule).
    """
    _check_codes(queries, database)
    if database.shape[0] == 0:
        raise ValueError("database is empty")
    if not 1 <= k <= database.shape[0]:
        raise ValueError(f"k must be between 1 and the database size {database.shape[0]}, got {k}")
    out_dist = np.empty((queries.shape[0], k), np.int32)
    out_ids = np.empty((queries.shape[0], k), np.int64)
    if queries.shape[0]:
        _hamming_topk_kernel(as_words(queries), as_words(database), out_dist, out_ids)
    return out_dist, out_ids

