"""Codecs that score a float query against decoded vectors: float32, float16, bfloat16, scalar quantizers
(faiss's and the clipped ones), sentence-transformers' raw int8 dot product, and (O)PQ."""

from __future__ import annotations

import faiss
import numpy as np

from phase2.codecs.base import Codec, DecodingCodec, blocked_topk, one_thread
from phase2.errors import ParameterError


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
        return blocked_topk(query_codes, codes.view(np.int8).astype(np.float32), k)


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
        with one_thread():
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
        with one_thread():
            return self._pq.compute_codes(self._opq.apply(x) if self._opq is not None else x)

    def decode(self, codes):
        x = self._pq.decode(np.ascontiguousarray(codes))
        return self._opq.reverse_transform(x) if self._opq is not None else x
