"""Binary codecs searched by Hamming distance (sign bits, thermometer codes, ITQ, random hyperplanes), the
asymmetric float-query search of sign bits, and RaBitQ."""

from __future__ import annotations

import faiss
import numpy as np

from phase2.codecs.base import (
    Codec,
    check_vectors,
    one_thread,
    random_rotation,
)
from phase2.errors import ParameterError
from phase2.kernels import asymmetric_topk, hamming_topk


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
            with one_thread():
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
        with one_thread():
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
        with one_thread():  # the constructor draws and orthonormalizes the projection: BLAS, thread-dependent
            self._index = faiss.IndexLSH(self.dim, self.bits, True, True)
            self._index.train(corpus)

    def _code_size(self):
        return self.bits // 8

    def _fixed_bytes(self):
        return 4 * (self._index.rrot.A.size() + self._index.rrot.b.size() + self._index.thresholds.size())

    def _encode(self, x):
        with one_thread():
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
        with one_thread():
            self._index.train(corpus)

    def _code_size(self):
        return self._index.code_size

    def _fixed_bytes(self):
        return 4 * self._index.center.size()  # the corpus centroid

    def _encode(self, x):
        with one_thread():
            return self._index.sa_encode(x)

    def _search(self, codes, queries, k):
        index = faiss.clone_index(self._index)  # trained and empty
        index.add_sa_codes(codes)
        scores, ids = index.search(queries, k)
        order = np.lexsort((ids, -scores), axis=1)
        return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)
