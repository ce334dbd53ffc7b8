"""The codec interface (fit, encode, exact top-k search) and what every codec shares: vector checks, blocked
top-k by score, seeded rotations, one BLAS thread, and faiss pinned to one SIMD level."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

from phase2.errors import NotApplicable, ParameterError

_QUERY_BLOCK = 1024  # queries scored per block: bounds the score matrix to block x n_docs floats


def check_vectors(x: np.ndarray, what: str, dim: int | None = None) -> np.ndarray:
    """``x`` as a C-contiguous float32 matrix, or a ValueError naming what is wrong."""
    if not isinstance(x, np.ndarray) or x.ndim != 2:
        raise ValueError(f"{what}: expected a 2-D array, got shape {getattr(x, 'shape', type(x).__name__)}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{what}: expected floating-point vectors, got dtype {x.dtype}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{what}: dimension {x.shape[1]} does not match the fitted dimension {dim}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(f"{what}: non-finite value at row {bad[0]}, column {bad[1]}")
    return x


def topk_by_score(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k columns per row: score descending, ties by ascending column (stable sort)."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), order.astype(np.int64)


class Codec(ABC):
    """One compression scheme: fit on corpus vectors, encode, search codes exhaustively."""

    name: str  # factory string, e.g. "SQ8"
    label: str  # what a reader sees in tables
    family: str  # float / scalar / binary: the line a chart draws it on
    trained: bool = False  # fit learns from the corpus: its codes depend on which vectors it was fitted on

    def __init__(self) -> None:
        self.dim: int | None = None

    def fit(self, corpus: np.ndarray) -> Codec:
        """Learn what the codec needs from the corpus (never from queries)."""
        corpus = check_vectors(corpus, f"{self.name}.fit corpus")
        if corpus.shape[0] == 0:
            raise ValueError(f"{self.name}.fit: the corpus is empty")
        reason = self.unfit_reason(*corpus.shape)
        if reason:
            raise NotApplicable(f"{self.name}: {reason}")
        self.dim = corpus.shape[1]
        with pinned_simd():
            self._fit(corpus)
        return self

    def unfit_reason(self, n: int, dim: int) -> str | None:
        """Why this codec cannot be fitted on ``n`` vectors of dimension ``dim``, or None when it can: the one
        place each codec states its minimum training size and the dimensions it supports, read by ``fit`` and
        by the plans that mark a codec not applicable to a collection and model without fitting it."""
        return None

    def _fit(self, corpus: np.ndarray) -> None:  # noqa: B027 - most codecs have nothing to train
        """Train parameters from the corpus."""

    @property
    def code_size(self) -> int:
        """Exact bytes per encoded vector; the trained state stored once is :attr:`fixed_bytes`."""
        self._require_fitted()
        return self._code_size()

    @property
    def fixed_bytes(self) -> int:
        """Bytes of trained state stored once per index, whatever its size N (codebooks, rotations, ranges, means,
        as float32): what an equal-memory comparison must add to ``N x code_size``."""
        self._require_fitted()
        return self._fixed_bytes()

    def total_bytes(self, n: int) -> int:
        """Everything stored for ``n`` vectors: their codes and the trained state."""
        return n * self.code_size + self.fixed_bytes

    def _fixed_bytes(self) -> int:
        return 0  # nothing trained: float32, float16, sign bits and the asymmetric sign score

    @property
    def rescore_bytes(self) -> int:
        """Of ``code_size``, the bytes read only to rescore a short candidate list (may live on disk)."""
        return 0

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Codes as ``uint8 [n, code_size]``."""
        self._require_fitted()
        with pinned_simd():
            codes = self._encode(check_vectors(x, f"{self.name}.encode", self.dim))
        assert codes.dtype == np.uint8 and codes.shape == (x.shape[0], self.code_size)
        return codes

    def search(self, codes: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exhaustive top-k of float ``queries`` against ``codes``: ``(scores [nq,k], ids [nq,k])``."""
        self._require_fitted()
        queries = check_vectors(queries, f"{self.name}.search queries", self.dim)
        if queries.shape[0] == 0:
            raise ValueError(f"{self.name}.search: the query set is empty")
        if not isinstance(codes, np.ndarray) or codes.dtype != np.uint8 or codes.ndim != 2 \
                or codes.shape[1] != self.code_size:
            raise ValueError(f"{self.name}.search: codes must be uint8 [n, {self.code_size}], got "
                             f"{getattr(codes, 'dtype', type(codes).__name__)} {getattr(codes, 'shape', '')}")
        if not 1 <= k <= codes.shape[0]:
            raise ValueError(f"{self.name}.search: k must be between 1 and the corpus size {codes.shape[0]}, got {k}")
        with pinned_simd():
            return self._search(codes, queries, k)

    def rescore(self, codes: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Scores of one float ``query`` against a few ``codes``: what a second stage re-ranks candidates by."""
        raise ParameterError(f"{self.name} cannot re-rank candidates: it has no float-query score of single codes")

    def _require_fitted(self) -> None:
        if self.dim is None:
            raise RuntimeError(f"{self.name}: call fit() before using the codec")

    @abstractmethod
    def _code_size(self) -> int: ...

    @abstractmethod
    def _encode(self, x: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _search(self, codes: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...


class DecodingCodec(Codec):
    """Codecs scored asymmetrically: float query against the decoded corpus (inner product).

    Decoding and scoring run on one thread: OpenBLAS's threaded sgemm changes the last
    bits of a score with the thread count, which would reorder near-ties between runs.
    """

    @abstractmethod
    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Approximate float32 vectors back from codes."""

    def _search(self, codes, queries, k):
        with one_thread():
            return blocked_topk(queries, self.decode(codes), k)

    def rescore(self, codes, query):
        return self.decode(codes) @ query


def blocked_topk(queries: np.ndarray, docs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k inner products, :data:`_QUERY_BLOCK` queries at a time (bounds the score matrix)."""
    parts = [topk_by_score(queries[i:i + _QUERY_BLOCK] @ docs.T, k) for i in range(0, len(queries), _QUERY_BLOCK)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])



def random_rotation(dim: int, seed: int) -> np.ndarray:
    """A seeded random orthogonal ``dim x dim`` matrix (QR of a Gaussian, signs fixed so Q is unique)."""
    gaussian = np.random.default_rng(seed).standard_normal((dim, dim))
    with one_thread():
        q, r = np.linalg.qr(gaussian)
    return (q * np.sign(np.diag(r))).astype(np.float32)


def one_thread():
    return threadpool_limits(limits=1)


FAISS_SIMD = "AVX2"
"""The SIMD level faiss runs at inside every codec's fit, encode and search. faiss's results depend on the level it
dispatches to: on one input, RaBitQ2 and RaBitQ4 codes differ between generic, AVX2 and AVX-512 code (faiss-cpu
1.15.1), and inner products differ in their last bits (PQ, OPQ, SQ8 and 1-bit RaBitQ codes agreed). Pinned to
AVX2, the quality study's codes and rankings are the same on every x86 machine with AVX2, AVX-512 or not. The
throughput benchmarks leave faiss at its best level."""


@contextmanager
def pinned_simd() -> Iterator[None]:
    """faiss at :data:`FAISS_SIMD` inside the block where the machine has it (otherwise faiss's own choice, and
    codes that may differ from other machines'), its previous level restored after."""
    level = getattr(faiss, f"SIMDLevel_{FAISS_SIMD}")
    if not faiss.SIMDConfig.is_simd_level_available(level):
        yield
        return
    previous = faiss.SIMDConfig.get_level()
    faiss.SIMDConfig.set_level(level)
    try:
        yield
    finally:
        faiss.SIMDConfig.set_level(previous)
