"""Compression schemes behind one interface, named by short factory strings.

Every codec is a standalone encoder in the spirit of faiss's ``sa_encode``:
``fit`` on the corpus only, ``encode`` to ``uint8`` codes of exactly ``code_size``
bytes per vector, and ``search`` the codes with float queries for an exhaustive,
exact top-k. Scores are similarities (higher is better); ties are broken by
ascending corpus row, for every codec, so rankings are reproducible.

Factory names: ``Flat`` (float32), ``FP16`` (float16), ``SQ8`` (int8, per-dimension
min/max fitted on the corpus, via faiss), ``BIN`` (1 bit per dimension: the sign,
searched by Hamming distance with the numba kernel).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

from phase2.errors import ParameterError
from phase2.kernels import hamming_topk

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
    """One compression scheme: fit on the corpus, encode, search codes exhaustively."""

    name: str  # factory string, e.g. "SQ8"
    label: str  # what a reader sees in tables
    family: str  # float / scalar / binary: the line a chart draws it on

    def __init__(self) -> None:
        self.dim: int | None = None

    def fit(self, corpus: np.ndarray) -> Codec:
        """Learn what the codec needs from the corpus (never from queries)."""
        corpus = check_vectors(corpus, f"{self.name}.fit corpus")
        if corpus.shape[0] == 0:
            raise ValueError(f"{self.name}.fit: the corpus is empty")
        self.dim = corpus.shape[1]
        self._fit(corpus)
        return self

    def _fit(self, corpus: np.ndarray) -> None:  # noqa: B027 - most codecs have nothing to train
        """Train parameters from the corpus."""

    @property
    def code_size(self) -> int:
        """Exact bytes per encoded vector."""
        self._require_fitted()
        return self._code_size()

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Codes as ``uint8 [n, code_size]``."""
        self._require_fitted()
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
        return self._search(codes, queries, k)

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

    Scores are computed on one BLAS thread: OpenBLAS's threaded sgemm changes the last
    bits of a score with the thread count, which would reorder near-ties between runs.
    """

    @abstractmethod
    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Approximate float32 vectors back from codes."""

    def _search(self, codes, queries, k):
        docs = self.decode(codes)
        with threadpool_limits(limits=1, user_api="blas"):
            parts = [topk_by_score(queries[i:i + _QUERY_BLOCK] @ docs.T, k)
                     for i in range(0, len(queries), _QUERY_BLOCK)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


class Float32(DecodingCodec):
    name, label, family = "Flat", "float32", "float"

    def _code_size(self):
        return 4 * self.dim

    def _encode(self, x):
        return x.view(np.uint8).copy()

    def decode(self, codes):
        return np.ascontiguousarray(codes).view(np.float32)


class Float16(DecodingCodec):
    name, label, family = "FP16", "float16", "float"

    def _code_size(self):
        return 2 * self.dim

    def _encode(self, x):
        return x.astype(np.float16).view(np.uint8)

    def decode(self, codes):
        return np.ascontiguousarray(codes).view(np.float16).astype(np.float32)


class ScalarInt8(DecodingCodec):
    """faiss ``SQ8``: each dimension mapped linearly from its corpus [min, max] to 256 levels."""

    name, label, family = "SQ8", "int8 (per-dim min/max)", "scalar"

    def _fit(self, corpus):
        self._sq = faiss.ScalarQuantizer(self.dim, faiss.ScalarQuantizer.QT_8bit)
        self._sq.train(corpus)

    def _code_size(self):
        return self._sq.code_size

    def _encode(self, x):
        return self._sq.compute_codes(x)

    def decode(self, codes):
        return self._sq.decode(np.ascontiguousarray(codes))


class SignBinary(Codec):
    """1 bit per dimension, ``x > 0``, packed like ``np.packbits``; searched by Hamming distance."""

    name, label, family = "BIN", "binary (1-bit sign)", "binary"

    def _code_size(self):
        return -(-self.dim // 8)

    def _encode(self, x):
        return np.packbits(x > 0, axis=1)

    def _search(self, codes, queries, k):
        dist, ids = hamming_topk(self._encode(queries), codes, k)
        return -dist.astype(np.float32), ids


CODECS: dict[str, Callable[[], Codec]] = {c.name: c for c in (Float32, Float16, ScalarInt8, SignBinary)}


def make_codec(name: str) -> Codec:
    """A new, unfitted codec from its factory string."""
    try:
        return CODECS[name]()
    except KeyError:
        raise ParameterError(f"unknown codec {name!r}; valid codecs: {', '.join(CODECS)}") from None
