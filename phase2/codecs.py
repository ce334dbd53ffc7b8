"""Compression schemes behind one interface, named by short factory strings.

Every codec is a standalone encoder in the spirit of faiss's ``sa_encode``:
``fit`` on the corpus only, ``encode`` to ``uint8`` codes of exactly ``code_size``
bytes per vector, and ``search`` the codes with float queries for an exhaustive,
exact top-k. Scores are similarities (higher is better); ties are broken by
ascending corpus row, for every codec, so rankings are reproducible.

Factory names (:func:`make_codec`):

- ``Flat`` float32, ``FP16`` float16, ``BF16`` bfloat16 (faiss);
- ``SQ8`` / ``SQ4``: 8 / 4 bits per dimension, each dimension's corpus [min, max] mapped
  linearly to 256 / 16 levels (faiss ``ScalarQuantizer``); ``SQ8u`` one range for all
  dimensions; ``SQ8p`` / ``SQ4p`` per-dimension [1%, 99%] quantiles, values beyond clipped;
  ``SQ8raw`` sentence-transformers' int8 codes scored by their raw integer dot product;
- ``PQ<m>``: product quantization, m sub-vectors of 8 bits (m bytes); ``OPQ<m>,PQ<m>``
  with a learned rotation first (faiss);
- ``BIN``: 1 bit per dimension, the sign; ``BINc`` the sign after subtracting the corpus
  mean; ``BINr`` the sign after a seeded random rotation; ``ITQ`` after a learned rotation
  (iterative quantization); ``BIN2t`` / ``BIN4t`` 2 / 4 bits per dimension, a thermometer code
  over per-dimension quantiles; ``ITQ<bits>`` ITQ on the top ``bits`` principal components;
  ``LSH<bits>`` random hyperplanes at median thresholds (faiss). Binary codes are searched by
  Hamming distance (numba kernel); the others score a float query against decoded vectors,
  ``BINa`` too (sign bits, float query: asymmetric);
- ``RaBitQ<b>``: RaBitQ with b bits per dimension and per-vector correction factors (faiss);
- ``<first>+R<m><second>``: ``first`` finds ``m * 10`` candidates, ``second`` (Flat, FP16,
  BF16, SQ8 or SQ4 codes, which may live on disk, or ``BINa``: the float query against the
  candidates' sign bits) re-ranks them, e.g. ``BIN+R4Flat``; ``BIN+R40BINa`` is the
  sentence-transformers report's binary protocol (Hamming top 100 x 4, then the float query);
- ``T<d>,<codec>``: ``codec`` on the first ``d`` dimensions of each vector, renormalised to unit length
  (``T192,BIN``): the same model at a lower dimension.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

from phase2.errors import NotApplicable, ParameterError
from phase2.kernels import asymmetric_topk, hamming_topk

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
        with _pinned_simd():
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
        with _pinned_simd():
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
        with _pinned_simd():
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
        with _one_thread():
            return _blocked_topk(queries, self.decode(codes), k)

    def rescore(self, codes, query):
        return self.decode(codes) @ query


def _blocked_topk(queries: np.ndarray, docs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k inner products, :data:`_QUERY_BLOCK` queries at a time (bounds the score matrix)."""
    parts = [topk_by_score(queries[i:i + _QUERY_BLOCK] @ docs.T, k) for i in range(0, len(queries), _QUERY_BLOCK)]
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


class FaissScalarQuantizer(DecodingCodec):
    """faiss ``ScalarQuantizer``: 2^b levels over a range fitted on the corpus, or bfloat16 truncation.

    The range is each dimension's [min, max] or, for the ``_uniform`` types, one range shared
    by all dimensions.
    """

    def __init__(self, name: str, label: str, family: str, qtype: int) -> None:
        super().__init__()
        self.name, self.label, self.family, self._qtype = name, label, family, qtype
        self.trained = qtype != faiss.ScalarQuantizer.QT_bf16  # bfloat16 truncates; the others fit ranges

    def _fit(self, corpus):
        self._sq = faiss.ScalarQuantizer(self.dim, self._qtype)
        self._sq.train(corpus)

    def _code_size(self):
        return self._sq.code_size

    def _fixed_bytes(self):
        return 4 * self._sq.trained.size()  # per-dimension (or one global) min and range; none for fp16/bf16

    def _encode(self, x):
        return self._sq.compute_codes(x)

    def decode(self, codes):
        return self._sq.decode(np.ascontiguousarray(codes))


class ClippedScalarQuantizer(DecodingCodec):
    """``bits`` per dimension over each dimension's [q, 1 - q] corpus quantiles; values beyond are clipped.

    Level ``floor((x - lo) / step)`` with ``step = (hi - lo) / 2^bits``, decoded at the middle of its
    cell. Written here because faiss's ``RS_quantiles`` range statistic gave different codes from one
    process to the next for the same input. 4-bit codes pack two dimensions per byte, high nibble first.
    """

    family, trained = "scalar", True

    def __init__(self, bits: int, quantile: float = 0.01) -> None:
        super().__init__()
        if bits not in (4, 8):
            raise ParameterError(f"clipped scalar quantizer supports 4 or 8 bits, got {bits}")
        self.bits, self.quantile = bits, quantile
        self.name = f"SQ{bits}p"
        self.label = f"int{bits} (per-dim {100 * quantile:g}-{100 * (1 - quantile):g}% quantiles)"

    def _fit(self, corpus):
        lo, hi = np.quantile(corpus.astype(np.float64), [self.quantile, 1 - self.quantile], axis=0)
        step = np.maximum(hi - lo, 1e-12) / (1 << self.bits)
        self._lo, self._step = lo.astype(np.float32), step.astype(np.float32)

    def _code_size(self):
        return -(-self.dim * self.bits // 8)

    def _fixed_bytes(self):
        return 4 * (self._lo.size + self._step.size)

    def _encode(self, x):
        levels = np.clip(np.floor((x - self._lo) / self._step), 0, (1 << self.bits) - 1).astype(np.uint8)
        if self.bits == 8:
            return levels
        if self.dim % 2:
            levels = np.hstack([levels, np.zeros((len(levels), 1), np.uint8)])
        return (levels[:, 0::2] << 4) | levels[:, 1::2]

    def decode(self, codes):
        if self.bits == 4:
            codes = np.stack([codes >> 4, codes & 0x0F], axis=2).reshape(len(codes), -1)[:, :self.dim]
        return self._lo + (codes.astype(np.float32) + 0.5) * self._step


class RawDotInt8(Codec):
    """sentence-transformers' int8 codes scored as they are: each dimension's corpus [min, max] cut into 256
    levels, ``floor((x - min) / step) - 128`` (``quantize_embeddings(precision="int8")``), the query quantized
    alike, and the score the raw integer dot product of the two codes.

    The per-dimension offsets are not undone, so the score is not an estimate of the inner product: it is
    what an int8 index with an inner-product metric computes, and the int8 row of the sentence-transformers
    quantization report; kept to reproduce that row. Sums of at most 1,023 products of magnitude <= 128^2
    stay below 2^24, so float32 BLAS computes them exactly, on any thread count.
    """

    name, label, family = "SQ8raw", "int8 (sentence-transformers codes, raw dot product)", "scalar"
    trained = True

    def unfit_reason(self, n, dim):
        return f"exact float32 sums need fewer than 1,024 dimensions, got {dim}" if dim >= 1024 else None

    def _fit(self, corpus):
        self._start = corpus.min(axis=0)
        steps = (corpus.max(axis=0) - self._start) / 255
        self._step = np.where(steps == 0, 1, steps).astype(np.float32)

    def _code_size(self):
        return self.dim

    def _fixed_bytes(self):
        return 4 * (self._start.size + self._step.size)

    def _encode(self, x):
        levels = np.clip(np.floor((x - self._start) / self._step), 0, 255)
        return (levels - 128).astype(np.int8).view(np.uint8)

    def _search(self, codes, queries, k):
        query_codes = self._encode(queries).view(np.int8).astype(np.float32)
        return _blocked_topk(query_codes, codes.view(np.int8).astype(np.float32), k)


OPQ_ITERATIONS = 20  # faiss's default is 50; 20 keeps single-threaded training to minutes on 10k vectors


class ProductQuantizer(DecodingCodec):
    """faiss product quantization: ``m`` sub-vectors, 256 centroids each (1 byte), optional OPQ rotation.

    Trained single-threaded: k-means on threaded BLAS changes assignments with the thread count.
    """

    family, trained = "pq", True

    def __init__(self, m: int, opq: bool = False) -> None:
        super().__init__()
        self.m, self.opq = m, opq
        self.name = f"OPQ{m},PQ{m}" if opq else f"PQ{m}"
        self.label = f"{'OPQ+' if opq else ''}PQ{m}x8"

    def unfit_reason(self, n, dim):
        if self.m < 1 or dim % self.m:
            return f"the dimension {dim} is not divisible by m = {self.m}"
        needed = max(256, dim) if self.opq else 256  # faiss's OPQ aborts the process below d vectors
        if n < needed:
            return (f"needs at least {needed} training vectors (256 centroids"
                    f"{', and a d x d rotation' if self.opq else ''}), got {n}")
        return None

    def _fit(self, corpus):
        self._pq = faiss.ProductQuantizer(self.dim, self.m, 8)
        self._pq.cp.min_points_per_centroid = 1  # only silences faiss's "please provide more points" warning
        self._opq = None
        with _one_thread():
            if self.opq:
                self._opq = faiss.OPQMatrix(self.dim, self.m)
                self._opq.niter = OPQ_ITERATIONS
                self._opq.pq = self._pq
                self._opq.train(corpus)
                corpus = self._opq.apply(corpus)
            self._pq.train(corpus)

    def _code_size(self):
        return self._pq.code_size

    def _fixed_bytes(self):
        return 4 * (self._pq.centroids.size() + (self._opq.A.size() + self._opq.b.size() if self._opq else 0))

    def _encode(self, x):
        with _one_thread():
            return self._pq.compute_codes(self._opq.apply(x) if self._opq is not None else x)

    def decode(self, codes):
        x = self._pq.decode(np.ascontiguousarray(codes))
        return self._opq.reverse_transform(x) if self._opq is not None else x


class SignBinary(Codec):
    """1 bit per dimension, ``x > 0``, packed like ``np.packbits``; searched by Hamming distance.

    ``center`` subtracts the corpus mean first (sign bits then split each dimension at its
    mean); ``rotate`` applies a seeded random orthogonal matrix first (spreads variance evenly
    over the bits). Both are fitted on the corpus and applied to queries alike.
    """

    family = "binary"

    def __init__(self, center: bool = False, rotate: bool = False, seed: int = 0) -> None:
        super().__init__()
        self.center, self.rotate, self.seed = center, rotate, seed
        self.trained = center  # the rotation is drawn from the seed, whatever the corpus
        self.name = "BIN" + ("c" if center else "") + ("r" if rotate else "")
        detail = ", ".join(w for w, on in (("centered", center), ("rotated", rotate)) if on)
        self.label = f"binary (1-bit sign{', ' + detail if detail else ''})"

    def _fit(self, corpus):
        self._mean = corpus.mean(axis=0, dtype=np.float64).astype(np.float32) if self.center else None
        self._rotation = random_rotation(self.dim, self.seed) if self.rotate else None

    def _code_size(self):
        return -(-self.dim // 8)

    def _fixed_bytes(self):
        # the seeded rotation could be drawn again from its seed; it is counted as stored, as a server loads it
        return 4 * sum(a.size for a in (self._mean, self._rotation) if a is not None)

    def _encode(self, x):
        if self._mean is not None:
            x = x - self._mean
        if self._rotation is not None:
            with _one_thread():
                x = x @ self._rotation
        return np.packbits(x > 0, axis=1)

    def _search(self, codes, queries, k):
        dist, ids = hamming_topk(self._encode(queries), codes, k)
        return -dist.astype(np.float32), ids


class ThermometerBinary(SignBinary):
    """``bits`` bits per dimension, a thermometer code: bit ``j`` is ``x > t_j``, where ``t_j`` is the
    ``(j + 1) / (bits + 1)`` corpus quantile of that dimension (``bits + 1`` equally filled levels).

    The Hamming distance of two such codes is the L1 distance of their levels summed over
    dimensions, so they are searched by the same Hamming kernel as ``BIN``; bits are packed
    dimension by dimension, ``bits`` consecutive bits each.
    """

    def __init__(self, bits: int) -> None:
        super().__init__()
        if bits < 2:
            raise ParameterError(f"a thermometer code needs at least 2 bits per dimension, got {bits}")
        self.bits, self.trained = bits, True
        self.name = f"BIN{bits}t"
        self.label = f"binary ({bits}-bit thermometer, per-dim quantiles)"

    def _fit(self, corpus):
        levels = np.arange(1, self.bits + 1) / (self.bits + 1)
        self._thresholds = np.quantile(corpus.astype(np.float64), levels, axis=0).T.astype(np.float32)  # [d, bits]

    def _code_size(self):
        return -(-self.dim * self.bits // 8)

    def _fixed_bytes(self):
        return 4 * self._thresholds.size

    def _encode(self, x):
        return np.packbits((x[:, :, None] > self._thresholds[None]).reshape(len(x), -1), axis=1)

    def levels(self, x: np.ndarray) -> np.ndarray:
        """Each dimension's level ``0 .. bits`` (how many thresholds it exceeds): the codes' meaning."""
        return (check_vectors(x, f"{self.name}.levels", self.dim)[:, :, None] > self._thresholds[None]).sum(axis=2)


class AsymmetricBinary(Codec):
    """Sign bits stored, float query kept: score ``sum_i q_i * (+1 if bit_i else -1)``.

    Same codes (and bytes) as ``BIN``; only the query side keeps its magnitudes. Scored by
    per-byte lookup tables (numba kernel), in float32, the same on any thread count.
    """

    name, label, family = "BINa", "binary, float query (asymmetric)", "binary"

    def _code_size(self):
        return -(-self.dim // 8)

    def _encode(self, x):
        return np.packbits(x > 0, axis=1)

    def _search(self, codes, queries, k):
        return asymmetric_topk(queries, codes, k)

    def rescore(self, codes, query):
        signs = np.unpackbits(codes, axis=1)[:, :self.dim].astype(np.float32) * 2 - 1
        return signs @ query


RESCORE_CUTOFF = 10  # the rescored head is factor x 10 candidates: the cutoff of nDCG@10, MRR@10, Recall@10


class Rescored(Codec):
    """Two-stage search: ``first`` ranks everything, ``second`` re-ranks the top ``factor * 10``.

    That head is what a top-10 search with a rescoring multiplier of ``factor`` reads; below
    it the first stage's order is kept (so Recall@100 still reflects the first stage). Both
    codes are stored side by side; only ``first``'s bytes are scanned for every query,
    ``second``'s are read for the head alone (they may live on disk). Returned scores are the
    second stage's for the head; the tail gets the head's lowest score minus 1, 2, 3, ..., keeping the list
    sorted without inventing ties (a tie at the 10th result is reported).
    ``BIN`` re-ranked by ``BINa`` (the float query against the same sign bits, the sentence-transformers
    report's second stage) stores the bits once and reads no second store.
    """

    def __init__(self, first: Codec, second: Codec, factor: int) -> None:
        super().__init__()
        if factor < 1:
            raise ParameterError(f"rescoring factor must be >= 1, got {factor}")
        self.first, self.second, self.factor = first, second, factor
        self.name = f"{first.name}+R{factor}{second.name}"
        self.label = f"{first.label} + {second.label} rescoring of top {factor * RESCORE_CUTOFF}"
        self.family = first.family + "+rescore"
        self.trained = first.trained or second.trained
        self._shares_codes = first.name == "BIN" and isinstance(second, AsymmetricBinary)  # both: packbits(x > 0)

    def unfit_reason(self, n, dim):
        return self.first.unfit_reason(n, dim) or self.second.unfit_reason(n, dim)

    def _fit(self, corpus):
        self.first = _fitted_once(self.first, corpus)
        self.second.fit(corpus)

    def _code_size(self):
        return self.first.code_size + self.rescore_bytes

    @property
    def rescore_bytes(self) -> int:
        return 0 if self._shares_codes else self.second.code_size

    def _fixed_bytes(self):
        return self.first.fixed_bytes + self.second.fixed_bytes

    def _encode(self, x):
        if self._shares_codes:
            return self.first.encode(x)
        return np.hstack([self.first.encode(x), self.second.encode(x)])

    def _search(self, codes, queries, k):
        split = self.first.code_size
        depth = self.first_stage_depth(k, len(codes))
        _, ranked = self.first.search(np.ascontiguousarray(codes[:, :split]), queries, depth)
        second = codes if self._shares_codes else codes[:, split:]
        return self.rerank(ranked, queries, k, lambda rows, query: self.second.rescore(second[rows], query))

    def first_stage_depth(self, k: int, n: int) -> int:
        """How deep the first stage ranks: the rescored head or ``k``, whichever is longer."""
        return max(k, min(self.factor * RESCORE_CUTOFF, n))

    def rerank(self, ranked: np.ndarray, queries: np.ndarray, k: int,
               rescore_rows: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Re-rank the head of each first-stage list ``ranked`` by ``rescore_rows(rows, query)``; the tail
        keeps its order."""
        head = min(self.factor * RESCORE_CUTOFF, ranked.shape[1])
        scores = np.empty((len(queries), k), np.float32)
        ids = np.empty((len(queries), k), np.int64)
        with _one_thread():
            for i, (query, rows) in enumerate(zip(queries, ranked, strict=True)):
                candidates = np.sort(rows[:head])  # ties fall back to corpus order, as everywhere
                head_scores, order = topk_by_score(rescore_rows(candidates, query)[None, :], head)
                ids[i] = np.concatenate([candidates[order[0]], rows[head:]])[:k]
                tail = head_scores[0, -1] - np.arange(1, max(k - head, 0) + 1, dtype=np.float32)
                scores[i] = np.concatenate([head_scores[0], tail])[:k]
        return scores, ids


class Truncated(Codec):
    """``inner``'s code of the first ``d`` dimensions of each vector, renormalised to unit length (an all-zero head
    stays zero); queries are cut the same way. It varies the dimension within one model, which comparing models
    cannot: neither MiniLM nor mpnet was trained to be truncated, so the cut float32 is itself a weaker
    embedding, and a code's loss is measured against that float32 (``T<d>,Flat``)."""

    def __init__(self, d: int, inner: Codec) -> None:
        super().__init__()
        if d < 1:
            raise ParameterError(f"T<d>: d must be at least 1, got {d}")
        self.d, self.inner = d, inner
        self.name, self.label = f"T{d},{inner.name}", f"{inner.label}, first {d} dimensions"
        self.family, self.trained = inner.family, inner.trained

    def unfit_reason(self, n, dim):
        if dim < self.d:
            return f"cuts to {self.d} dimensions, the vectors have {dim}"
        return self.inner.unfit_reason(n, self.d)

    def _cut(self, x: np.ndarray) -> np.ndarray:
        head = np.ascontiguousarray(x[:, : self.d])
        norms = np.sqrt(np.einsum("ij,ij->i", head, head))[:, None]  # no BLAS: the same bits on any thread count
        return head / np.where(norms > 0, norms, np.float32(1))

    def _fit(self, corpus):
        self.inner.fit(self._cut(corpus))

    def _code_size(self):
        return self.inner.code_size

    @property
    def rescore_bytes(self) -> int:
        return self.inner.rescore_bytes

    def _fixed_bytes(self):
        return self.inner.fixed_bytes

    def _encode(self, x):
        return self.inner.encode(self._cut(x))

    def _search(self, codes, queries, k):
        return self.inner.search(codes, self._cut(queries), k)

    def rescore(self, codes, query):
        return self.inner.rescore(codes, self._cut(query[None, :])[0])


FITTED_FIRST_STAGES_KEPT = 4
"""First stages a process keeps fitted (:func:`_fitted_once`): a rescoring grid re-ranks one first stage with
several codes and factors, and ITQ or PQ fits take seconds to minutes each."""
_fitted_first_stages: OrderedDict[tuple[str, str, str], Codec] = OrderedDict()


def _fitted_once(codec: Codec, corpus: np.ndarray) -> Codec:
    """``codec`` fitted on ``corpus``, or the same codec (class and constructor state) fitted on the same bytes
    earlier in this process: fits are deterministic, so its codes are those a new fit would give."""
    key = (type(codec).__qualname__, repr(sorted(vars(codec).items())),
           hashlib.sha256(np.ascontiguousarray(corpus).data).hexdigest() + str(corpus.shape))
    fitted = _fitted_first_stages.pop(key, None) or codec.fit(corpus)
    _fitted_first_stages[key] = fitted
    while len(_fitted_first_stages) > FITTED_FIRST_STAGES_KEPT:
        _fitted_first_stages.popitem(last=False)
    return fitted


class IterativeQuantization(SignBinary):
    """ITQ (Gong & Lazebnik, 2011): center, project onto the top ``bits`` principal directions,
    then learn the rotation R that minimises the quantization loss ``||sign(VR) - VR||`` by
    alternating B = sign(VR) and orthogonal Procrustes for R. ``bits`` defaults to ``d`` (all
    components kept); fewer bits give codes below d/8 bytes. R starts from a seeded random
    rotation; training runs on one thread for reproducible codes.
    """

    def __init__(self, bits: int | None = None, iterations: int = 50, seed: int = 0) -> None:
        super().__init__(center=True, seed=seed)
        self.bits, self.iterations = bits, iterations
        self.name = f"ITQ{bits}" if bits else "ITQ"
        self.label = f"binary (ITQ rotation{f', {bits} bits' if bits else ''})"

    def unfit_reason(self, n, dim):
        bits = self.bits or dim
        if not 8 <= bits <= dim:
            return f"bits must be between 8 and the dimension {dim}, got {bits}"
        if n <= bits:
            return f"needs more training vectors than bits ({bits}) for {bits} principal directions, got {n}"
        return None

    def _fit(self, corpus):
        bits = self.bits or self.dim
        self._mean = corpus.mean(axis=0, dtype=np.float64).astype(np.float32)
        centered = (corpus - self._mean).astype(np.float64)
        with _one_thread():
            _, _, components = np.linalg.svd(centered, full_matrices=False)
            basis = components[:bits].T  # d x bits, columns = leading principal directions
            projected = centered @ basis
            rotation = random_rotation(bits, self.seed).astype(np.float64)
            for _ in range(self.iterations):
                codes = np.where(projected @ rotation >= 0, 1.0, -1.0)
                u, _, vt = np.linalg.svd(codes.T @ projected)
                rotation = (u @ vt).T
            self._rotation = (basis @ rotation).astype(np.float32)

    def _code_size(self):
        return -(-(self.bits or self.dim) // 8)


class RandomHyperplaneLSH(SignBinary):
    """Classical LSH (Charikar, 2002) as faiss builds it (``IndexLSH``): ``bits`` random orthonormal
    projections (fewer or more than ``d``), each thresholded at its corpus median. faiss seeds the
    projection itself, so the codes are fixed; searched by Hamming distance like ``BIN``.
    """

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.bits, self.trained = bits, True  # thresholds at the corpus medians
        self.name, self.label = f"LSH{bits}", f"binary (LSH, {bits} random hyperplanes)"

    def unfit_reason(self, n, dim):
        return None if self.bits >= 8 and self.bits % 8 == 0 else \
            f"bits must be a positive multiple of 8, got {self.bits}"

    def _fit(self, corpus):
        with _one_thread():  # the constructor draws and orthonormalizes the projection: BLAS, thread-dependent
            self._index = faiss.IndexLSH(self.dim, self.bits, True, True)
            self._index.train(corpus)

    def _code_size(self):
        return self.bits // 8

    def _fixed_bytes(self):
        return 4 * (self._index.rrot.A.size() + self._index.rrot.b.size() + self._index.thresholds.size())

    def _encode(self, x):
        with _one_thread():
            return self._index.sa_encode(x)


class RaBitQ(Codec):
    """RaBitQ (Gao & Long, 2024) as faiss implements it (``IndexRaBitQ``, inner product): sign bits of
    the vector relative to the corpus centroid plus ``bits - 1`` extra bits per dimension, and a few
    float correction factors per vector that make the score estimate unbiased. The query is
    quantized to ``QUERY_BITS`` bits (faiss's default), so the search is asymmetric.
    Ties in faiss's estimated scores are rare; the returned lists are re-sorted by (score, row).
    """

    family, trained = "rabitq", True  # the corpus centroid
    QUERY_BITS = 4

    def __init__(self, bits: int) -> None:
        super().__init__()
        if not 1 <= bits <= 9:
            raise ParameterError(f"RaBitQ<b>: faiss supports 1 to 9 bits per dimension, got {bits}")
        self.bits = bits
        self.name, self.label = f"RaBitQ{bits}", f"RaBitQ ({bits} bit{'s' if bits > 1 else ''}/dim)"

    def _new_index(self) -> faiss.IndexRaBitQ:
        index = faiss.IndexRaBitQ(self.dim, faiss.METRIC_INNER_PRODUCT, self.bits)
        index.qb = self.QUERY_BITS
        return index

    def _fit(self, corpus):
        self._index = self._new_index()
        with _one_thread():
            self._index.train(corpus)

    def _code_size(self):
        return self._index.code_size

    def _fixed_bytes(self):
        return 4 * self._index.center.size()  # the corpus centroid

    def _encode(self, x):
        with _one_thread():
            return self._index.sa_encode(x)

    def _search(self, codes, queries, k):
        index = faiss.clone_index(self._index)  # trained and empty
        index.add_sa_codes(codes)
        scores, ids = index.search(queries, k)
        order = np.lexsort((ids, -scores), axis=1)
        return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)


def random_rotation(dim: int, seed: int) -> np.ndarray:
    """A seeded random orthogonal ``dim x dim`` matrix (QR of a Gaussian, signs fixed so Q is unique)."""
    gaussian = np.random.default_rng(seed).standard_normal((dim, dim))
    with _one_thread():
        q, r = np.linalg.qr(gaussian)
    return (q * np.sign(np.diag(r))).astype(np.float32)


def _one_thread():
    return threadpool_limits(limits=1)


FAISS_SIMD = "AVX2"
"""The SIMD level faiss runs at inside every codec's fit, encode and search. faiss's results depend on the level it
dispatches to: on one input, RaBitQ2 and RaBitQ4 codes differ between generic, AVX2 and AVX-512 code (faiss-cpu
1.15.1), and inner products differ in their last bits (PQ, OPQ, SQ8 and 1-bit RaBitQ codes agreed). Pinned to
AVX2, the quality study's codes and rankings are the same on every x86 machine with AVX2, AVX-512 or not. The
throughput benchmarks leave faiss at its best level."""


@contextmanager
def _pinned_simd() -> Iterator[None]:
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


CODECS: dict[str, Callable[[], Codec]] = {
    "Flat": Float32,
    "FP16": Float16,
    "BF16": lambda: FaissScalarQuantizer("BF16", "bfloat16", "float", faiss.ScalarQuantizer.QT_bf16),
    "SQ8": lambda: FaissScalarQuantizer("SQ8", "int8 (per-dim min/max)", "scalar", faiss.ScalarQuantizer.QT_8bit),
    "SQ8u": lambda: FaissScalarQuantizer("SQ8u", "int8 (one global range)", "scalar",
                                         faiss.ScalarQuantizer.QT_8bit_uniform),
    "SQ8p": lambda: ClippedScalarQuantizer(8),
    "SQ8raw": RawDotInt8,
    "SQ4": lambda: FaissScalarQuantizer("SQ4", "int4 (per-dim min/max)", "scalar", faiss.ScalarQuantizer.QT_4bit),
    "SQ4p": lambda: ClippedScalarQuantizer(4),
    "BIN": SignBinary,
    "BINc": lambda: SignBinary(center=True),
    "BINr": lambda: SignBinary(rotate=True),
    "ITQ": IterativeQuantization,
    "BINa": AsymmetricBinary,
    "BIN2t": lambda: ThermometerBinary(2),
    "BIN4t": lambda: ThermometerBinary(4),
}
"""Codecs with a fixed name; the others (``PQ<m>``, ``OPQ<m>,PQ<m>``, ``T<d>,<codec>`` ...) are parsed
(:data:`PATTERNS`)."""

PATTERNS: dict[str, tuple[re.Pattern, Callable[[re.Match], Codec]]] = {
    "PQ<m>": (re.compile(r"PQ(\d+)"), lambda m: ProductQuantizer(int(m[1]))),
    "OPQ<m>,PQ<m>": (re.compile(r"OPQ(\d+),PQ(\1)"), lambda m: ProductQuantizer(int(m[1]), opq=True)),
    "ITQ<bits>": (re.compile(r"ITQ(\d+)"), lambda m: IterativeQuantization(int(m[1]))),
    "LSH<bits>": (re.compile(r"LSH(\d+)"), lambda m: RandomHyperplaneLSH(int(m[1]))),
    "RaBitQ<b>": (re.compile(r"RaBitQ(\d)"), lambda m: RaBitQ(int(m[1]))),
    "<first>+R<factor><second>": (re.compile(r"(\w+)\+R(\d+)(Flat|FP16|BF16|SQ8|SQ4|BINa)"),
                                  lambda m: Rescored(make_codec(m[1]), make_codec(m[3]), int(m[2]))),
    "T<d>,<codec>": (re.compile(r"T(\d+),(.+)"), lambda m: Truncated(int(m[1]), make_codec(m[2]))),
}


def make_codec(name: str) -> Codec:
    """A new, unfitted codec from its factory string."""
    if name in CODECS:
        return CODECS[name]()
    for pattern, build in PATTERNS.values():
        match = pattern.fullmatch(name)
        if match:
            return build(match)
    raise ParameterError(f"unknown codec {name!r}; valid codecs: {', '.join([*CODECS, *PATTERNS])}")


TRAINING = {"half": "fitted on a seeded half of the corpus, encoding all of it",
            "corpus": "fitted on the whole searched corpus",
            "sample<N>": "fitted on N rows of the same seeded order (the learning curve), encoding all of the corpus"}
"""Where a trained codec learns its state. ``half`` is what every chapter reports: one codec per search, fitted
on a seeded half of the corpus (:func:`training_rows`) and encoding every document, as a deployment trains on a
sample of what it stores; its scores are on one scale. ``corpus`` fits on every vector it then encodes (the
published sentence-transformers protocol takes its int8 ranges that way); the quality chapter shows how much it
flatters. ``sample<N>`` (``sample1024``) fits on the first N rows of the seeded order that ``half`` takes its
first n/2 from, so the training sets of a learning curve are nested. An untrained codec is the same codec any
way."""
TRAINING_SEED = 0  # the seeded order of every corpus that trained codecs are fitted on
_SAMPLE = re.compile(r"sample([1-9]\d*)")


def training_rows(n: int, size: int | None = None, seed: int = TRAINING_SEED) -> np.ndarray:
    """The corpus rows a trained codec is fitted on: the first ``size`` (default ``n // 2``, the ``half`` rule)
    rows of a seeded permutation, in corpus order."""
    return np.sort(np.random.default_rng(seed).permutation(n)[: n // 2 if size is None else size])


def checked_training(training: str) -> str:
    if training not in ("half", "corpus") and not _SAMPLE.fullmatch(training):
        raise ParameterError(f"training: {training!r} is not one of half, corpus or sample<N> (sample1024)")
    return training


def training_size(codec: Codec, n: int, training: str = "half") -> int:
    """How many of a corpus's ``n`` vectors ``codec`` is fitted on under ``training``."""
    if not codec.trained:
        return n
    sample = _SAMPLE.fullmatch(checked_training(training))
    return min(int(sample[1]), n) if sample else n // 2 if training == "half" else n


def inapplicable_reason(name: str, n: int, dim: int, training: str = "half") -> str | None:
    """Why codec ``name`` cannot search a corpus of ``n`` vectors of dimension ``dim`` under ``training`` (None
    when it can), from the shapes alone: what a table row says in place of its results."""
    codec = make_codec(name)
    size = training_size(codec, n, training)
    reason = codec.unfit_reason(size, dim)
    where = "all" if size >= n else "half of" if training == "half" else f"{size:,} of"
    return f"{reason} ({where} {n:,} documents)" if reason else None


def fitted_for_search(name: str, corpus: np.ndarray, training: str = "half") -> Codec:
    """Codec ``name`` fitted as ``training`` says (:data:`TRAINING`); it then encodes the whole ``corpus``.
    Raises :class:`phase2.errors.NotApplicable` when the codec cannot be fitted on those vectors."""
    codec = make_codec(name)
    corpus = check_vectors(corpus, f"{name} corpus")
    size = training_size(codec, corpus.shape[0], training)
    return codec.fit(corpus[training_rows(corpus.shape[0], size)] if size < corpus.shape[0] else corpus)


def split_codec_names(value: str) -> list[str]:
    """A comma-separated list of factory strings; ``OPQ<m>,PQ<m>`` and ``T<d>,<codec>`` stay one entry each. Each
    is checked."""
    tokens = [t.strip() for t in value.split(",") if t.strip()]
    names: list[str] = []
    for token in tokens:
        last = names[-1].rsplit(",", 1)[-1] if names else ""
        if re.fullmatch(r"T\d+", last) or (re.fullmatch(r"OPQ\d+", last) and token.startswith("PQ")):
            names[-1] += "," + token
        else:
            names.append(token)
    if not names:
        raise ParameterError(f"codecs: empty; valid codecs: {', '.join([*CODECS, *PATTERNS])}")
    for name in names:
        make_codec(name)
    if len(set(names)) != len(names):
        raise ParameterError(f"codecs: {value!r} names a codec twice")
    return names
