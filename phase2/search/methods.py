"""Search methods behind one small interface (in the spirit of ann-benchmarks).

A :class:`Method` is built once from a corpus (``fit``), then answers top-k queries
under a set of query-time arguments (``set_query_arguments`` then ``query``), and reports
the memory it measurably holds (``index_bytes``: the serialized index, graph and codes
included). Which methods exist and which parameters are swept lives in
:mod:`phase2.search.registry`; the runner (:mod:`phase2.experiments.harness`) never names a method.

``deterministic`` says whether the built index is the same for any thread count: faiss
builds HNSW graphs and trains k-means with threads, so those indexes (and their recall)
may differ slightly from run to run. Exhaustive methods are exact and deterministic.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import contextmanager

import faiss
import numpy as np

from phase2.kernels import CodeBlocks, InvertedBlocks, hamming_topk, inverted_topk, rescore_topk
from phase2.search.disk import DirectStore

SEED = 0
POINTS_PER_CENTROID = 40  # faiss's k-means asks for at least 39 training points per centroid


def sign_codes(x: np.ndarray) -> np.ndarray:
    """1 bit per dimension, ``x > 0``, packed like ``np.packbits`` (the ``BIN`` codec's codes)."""
    return np.packbits(x > 0, axis=1)


def search_threads() -> int:
    """The thread count the harness set (:func:`phase2.experiments.timing.threads` sets faiss's OpenMP count): what a
    method that runs another library's threads passes to it."""
    return faiss.omp_get_max_threads()


def nlist(n: int) -> int:
    """Inverted lists for ``n`` vectors: the power of two nearest ``4 sqrt(n)`` (faiss's rule of thumb)."""
    return 1 << max(4, round(math.log2(4 * math.sqrt(n))))


def training_sample(corpus: np.ndarray) -> np.ndarray:
    """A seeded sample of ``40 * nlist(n)`` rows: enough for IVF k-means, and PQ (which keeps at most 65,536)."""
    rows = POINTS_PER_CENTROID * nlist(len(corpus))
    if len(corpus) <= rows:
        return corpus
    return corpus[np.sort(np.random.default_rng(SEED).choice(len(corpus), rows, replace=False))]


class FaissTrainingWarning(UserWarning):
    """What faiss printed while training (e.g. fewer k-means points than it recommends)."""


@contextmanager
def native_stderr(handle: Callable[[list[str]], None]):
    """Capture what C++ code writes straight to file descriptor 2 while the block runs, and pass its non-empty
    lines to ``handle`` afterwards."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            handle([line for line in capture.read().decode(errors="replace").splitlines() if line.strip()])


def _warn_faiss(lines: list[str]) -> None:
    for line in dict.fromkeys(lines):
        warnings.warn(f"faiss: {line.strip()}", FaissTrainingWarning, stacklevel=4)


def faiss_messages_as_warnings():
    """faiss's C++ code prints training warnings straight to file descriptor 2; turn them into
    Python warnings (one per distinct line) so callers can filter, count or show them."""
    return native_stderr(_warn_faiss)


class Method(ABC):
    """Build once, then answer batches of queries under query-time arguments."""

    family: str  # the chart's colour: float, scalar, pq, graph, ivf, binary, ...
    library: str = "faiss"  # whose code answers the queries: faiss, phase2 (this project), usearch, scann, ...
    deterministic: bool = True
    store_on_disk: bool = False  # the re-ranking store is read from a file with direct I/O, not held in RAM

    def __init__(self, name: str) -> None:
        self.name = name  # registry name plus build parameters, e.g. "hnsw(M=32)"
        self.query_arguments: dict = {}

    @abstractmethod
    def fit(self, corpus: np.ndarray) -> None:
        """Build the index from unit-norm float32 vectors."""

    def set_query_arguments(self, **arguments) -> None:
        self.query_arguments = arguments

    @abstractmethod
    def query(self, queries: np.ndarray, k: int) -> np.ndarray:
        """Row ids ``int64 [nq, k]`` of the best ``k`` corpus vectors per query (inner product)."""

    @abstractmethod
    def index_bytes(self) -> int:
        """Bytes the search holds in memory, measured (serialized size or array sizes)."""

    def disk_bytes(self) -> int:
        """Bytes the index takes when saved, measured; the in-memory size where the two are the same."""
        return self.index_bytes()

    @property
    @abstractmethod
    def code_bytes(self) -> float:
        """Bytes per vector scanned for every query (the codes), excluding graph or list overhead."""

    @property
    def store_bytes(self) -> float:
        """Bytes per vector of a re-ranking store read only for each query's candidates: part of
        ``index_bytes`` when held in RAM, of ``disk_bytes`` only when ``store_on_disk``; 0 for single-stage
        methods."""
        return 0.0

    def device_reads(self) -> int:
        """Reads from the storage device since the index was built (the harness divides them by queries)."""
        return 0

    def state(self) -> np.ndarray | None:
        """The built index as bytes (uint8) for the on-disk cache (:mod:`phase2.search.index_cache`), or None where
        this method is not kept there."""
        return None

    def restore(self, state: np.ndarray, corpus: np.ndarray) -> None:
        """Become the index :meth:`state` saved after fitting ``corpus``; what is cheap to recompute, is."""
        raise NotImplementedError(f"{self.name}: no saved state to restore")


class FaissIndex(Method):
    """Any float index faiss's factory can build, inner-product metric.

    Query arguments are faiss ``ParameterSpace`` names: ``nprobe``, ``efSearch``, ``k_factor_rf``.
    """

    def __init__(self, name: str, factory: str, family: str, code_bytes: float, deterministic: bool = True):
        super().__init__(name)
        self.factory, self.family, self._code_bytes, self.deterministic = factory, family, code_bytes, deterministic

    def fit(self, corpus):
        self.index = faiss.index_factory(corpus.shape[1], self.factory, faiss.METRIC_INNER_PRODUCT)
        if not self.index.is_trained:
            with faiss_messages_as_warnings():
                self.index.train(training_sample(corpus))
        self.index.add(corpus)

    def set_query_arguments(self, **arguments):
        super().set_query_arguments(**arguments)
        space = faiss.ParameterSpace()
        for key, value in arguments.items():
            space.set_index_parameter(self.index, key, value)

    def query(self, queries, k):
        return self.index.search(queries, k)[1]

    def index_bytes(self):
        """The serialized size; a flat index's vectors (what serializing would add is a header of a few bytes)."""
        if self.is_flat:
            return int(self.index.code_size * self.index.ntotal)
        return int(faiss.serialize_index(self.index).size)

    def state(self):
        """None for a flat index: it is a copy of the corpus, rebuilt by a copy."""
        return None if self.is_flat else faiss.serialize_index(self.index)

    @property
    def is_flat(self) -> bool:
        """A flat index is its float32 vectors: serializing one would double its memory (to 30.7 GB at 10^7
        384-d vectors)."""
        return self.factory == "Flat"

    def restore(self, state, corpus):
        self.index = faiss.deserialize_index(state)

    @property
    def code_bytes(self):
        return self._code_bytes


class FaissBinaryIndex(Method):
    """A faiss binary index (``BFlat``, ``BHNSW32``, ``BIVF1024``) over sign codes; queries are signed too."""

    family = "binary"

    def __init__(self, name: str, factory: str, deterministic: bool = True):
        super().__init__(name)
        self.factory, self.deterministic = factory, deterministic

    def fit(self, corpus):
        codes = sign_codes(corpus)
        self.dim = corpus.shape[1]
        self.index = faiss.index_binary_factory(codes.shape[1] * 8, self.factory)
        if not self.index.is_trained:
            with faiss_messages_as_warnings():
                self.index.train(training_sample(codes))
        self.index.add(codes)

    def set_query_arguments(self, **arguments):
        super().set_query_arguments(**arguments)
        for key, value in arguments.items():
            if key == "efSearch":
                self.index.hnsw.efSearch = value
            elif key == "nprobe":
                self.index.nprobe = value
            else:
                raise ValueError(f"{self.name}: unknown query argument {key!r}")

    def query(self, queries, k):
        return self.index.search(sign_codes(queries), k)[1]

    def index_bytes(self):
        return int(faiss.serialize_index_binary(self.index).size)

    def state(self):
        return faiss.serialize_index_binary(self.index)

    def restore(self, state, corpus):
        self.dim, self.index = corpus.shape[1], faiss.deserialize_index_binary(state)

    @property
    def code_bytes(self):
        return self.dim / 8


class HammingFlat(Method):
    """Exhaustive Hamming search of sign codes with this project's numba kernel, over the codes laid out for the
    scan once (:class:`~phase2.kernels.CodeBlocks`)."""

    family, library = "binary", "phase2"

    def fit(self, corpus):
        self.blocks = CodeBlocks.of(sign_codes(corpus))

    def query(self, queries, k):
        return hamming_topk(sign_codes(queries), self.blocks, k)[1]

    def index_bytes(self):
        return int(self.blocks.nbytes)

    @property
    def code_bytes(self):
        return self.blocks.n_bytes


class HammingIVF(Method):
    """A binary inverted file on this project's scan: float centroids trained as faiss trains IVF-PQ's (k-means on
    :func:`training_sample`, inner product), each vector's sign code filed under its nearest centroid, and each
    query's ``nprobe`` nearest lists scanned by :func:`~phase2.kernels.inverted_topk` (code-major blocks, fused
    threshold, queries in parallel). faiss's ``IndexBinaryIVF`` instead clusters the codes themselves in Hamming
    space. Query argument: ``nprobe``."""

    family, library, deterministic = "binary", "phase2", False  # k-means runs on threads
    DEFAULTS = {"nprobe": 1}

    def __init__(self, name: str, n_lists: int) -> None:
        super().__init__(name)
        self.n_lists = n_lists
        self.query_arguments = dict(self.DEFAULTS)

    def fit(self, corpus):
        quantizer = faiss.IndexFlatIP(corpus.shape[1])
        trainer = faiss.IndexIVFFlat(quantizer, corpus.shape[1], self.n_lists, faiss.METRIC_INNER_PRODUCT)
        with faiss_messages_as_warnings():
            trainer.train(training_sample(corpus))
        self._file(quantizer, quantizer.search(corpus, 1)[1][:, 0], corpus)

    def _file(self, quantizer: faiss.IndexFlatIP, lists: np.ndarray, corpus: np.ndarray) -> None:
        self.quantizer, self.lists = quantizer, lists.astype(np.int32)
        self.inverted = InvertedBlocks.of(sign_codes(corpus), self.lists, self.n_lists)

    def set_query_arguments(self, **arguments):
        if unknown := sorted(set(arguments) - set(self.DEFAULTS)):
            raise ValueError(f"{self.name}: unknown query argument(s) {unknown}")
        super().set_query_arguments(**{**self.DEFAULTS, **arguments})

    def query(self, queries, k):
        probes = self.quantizer.search(queries, min(self.n_lists, self.query_arguments["nprobe"]))[1]
        return inverted_topk(sign_codes(queries), self.inverted, probes, k)[1]

    def index_bytes(self):
        return int(self.inverted.nbytes + 4 * self.quantizer.d * self.quantizer.ntotal)

    def state(self):
        centroids = faiss.serialize_index(self.quantizer)
        return np.concatenate([np.array([centroids.size], np.int64).view(np.uint8), centroids,
                               self.lists.view(np.uint8)])

    def restore(self, state, corpus):
        size = int(state[:8].view(np.int64)[0])
        lists = state[8 + size:].view(np.int32)
        if len(lists) != len(corpus):
            raise ValueError(f"{self.name}: the saved lists hold {len(lists)} rows, the corpus {len(corpus)}")
        self._file(faiss.deserialize_index(state[8:8 + size]), lists, corpus)

    @property
    def code_bytes(self):
        return self.inverted.codes.n_bytes


class Refined(Method):
    """Any first stage's top ``factor * k``, re-ranked by a finer score (faiss calls this refinement).

    The first stage is this project's exhaustive Hamming scan (default), another binary index over the
    same sign codes (faiss's or usearch's HNSW or IVF), or any other method (PQ, IVF-PQ, HNSW-PQ, RaBitQ):
    every family gets the same second stage and factor grid. The family is the first stage's with
    ``+rescore``. The second stage is the :func:`rescore_topk` kernel
    (parallel over queries) over a re-ranking store: ``float32`` vectors, ``int8`` codes (faiss's
    per-dimension ``SQ8``: ``q . decode(c)`` ranks like ``(q * step) . c``, with ``q * step`` rounded to int8 and
    summed exactly in integers, through VNNI where the CPU has it; ``float_query`` keeps it in float32) or ``signs``,
    the sign codes themselves scored against the float query (asymmetric: no store beyond the codes). The store is read
    for the candidates only (``store_bytes``). With ``on_disk`` it lives in a file read with direct I/O
    (:class:`phase2.search.disk.DirectStore`: every candidate's block comes from the device) and only the first
    stage counts in ``index_bytes``. Query arguments: ``factor``, and the first stage's own (``efSearch``,
    ``nprobe``).
    """

    STORES = ("float32", "int8", "signs")

    def __init__(self, name: str, store: str, first: Method | None = None, on_disk: bool = False,
                 float_query: bool = False):
        super().__init__(name)
        if store not in self.STORES:
            raise ValueError(f"rescoring store must be one of {self.STORES}, got {store!r}")
        if on_disk and store == "signs":
            raise ValueError("asymmetric rescoring reads the scanned codes, which are in RAM: no store to put on disk")
        if float_query and store != "int8":
            raise ValueError(f"only the int8 store has an int8 query to keep in float32, not {store!r}")
        self.store, self.store_on_disk, self.float_query = store, on_disk, float_query
        self.first = first or HammingFlat(name)
        self.family = f"{self.first.family}+rescore"
        self.deterministic = self.first.deterministic
        self.library = "phase2" if self.first.library == "phase2" else f"{self.first.library}+phase2"
        self.disk = None

    def fit(self, corpus):
        self.first.fit(corpus)
        self._fit_store(corpus)

    def state(self):
        return self.first.state()

    def restore(self, state, corpus):
        self.first.restore(state, corpus)
        self._fit_store(corpus)

    def _fit_store(self, corpus: np.ndarray) -> None:
        """The re-ranking store: seconds to build even at 10^6, so never cached."""
        self.step = None
        if self.store == "float32":
            self.vectors, self.kind = corpus.copy(), "float32"
        elif self.store == "signs":  # the codes the first stage scans where it keeps them, else a copy
            self.vectors, self.kind = getattr(self.first, "blocks", None) or sign_codes(corpus), "signs"
        else:
            self.sq = faiss.ScalarQuantizer(corpus.shape[1], faiss.ScalarQuantizer.QT_8bit)
            self.sq.train(corpus)
            self.vectors, self.kind = self.sq.compute_codes(corpus), "uint8" if self.float_query else "uint8-int8"
            trained = faiss.vector_to_array(self.sq.trained).reshape(2, -1)
            self.step = (trained[1] / 255).astype(np.float32)
        self.store_row_bytes = self.vectors.nbytes / (self.vectors.n if self._shares_codes() else len(self.vectors))
        if self.store_on_disk:
            self.disk, self.vectors = DirectStore(self.vectors), None

    def set_query_arguments(self, **arguments):
        super().set_query_arguments(**arguments)
        self.first.set_query_arguments(**{key: v for key, v in arguments.items() if key != "factor"})

    def query(self, queries, k):
        n = self.disk.shape[0] if self.disk else self.vectors.n if self._shares_codes() else len(self.vectors)
        candidates = self.first.query(queries, min(n, k * self.query_arguments.get("factor", 1)))
        weights = queries if self.step is None else queries * self.step
        if self.disk is None and not self._shares_codes():
            return rescore_topk(weights, self.vectors, candidates, k, self.kind)[1]
        found = candidates >= 0  # a store read by rows: the device, or the first stage's code blocks
        rows, local = np.unique(candidates[found], return_inverse=True)
        compact = np.full(candidates.shape, -1, np.int64)
        compact[found] = local
        ids = rescore_topk(weights, (self.disk or self.vectors).read(rows), compact, k, self.kind)[1]
        return np.where(ids >= 0, rows[np.maximum(ids, 0)], -1) if len(rows) else ids

    def _shares_codes(self) -> bool:
        """Asymmetric rescoring of the codes the first stage scans: no store of its own."""
        return self.vectors is not None and self.vectors is getattr(self.first, "blocks", None)

    def index_bytes(self):
        in_ram = 0 if self.disk or self._shares_codes() else self.vectors.nbytes
        return int(self.first.index_bytes() + in_ram)

    def disk_bytes(self):
        return self.index_bytes() if self.disk is None else int(self.first.disk_bytes() + self.disk.nbytes)

    def device_reads(self):
        return self.disk.blocks_read if self.disk else 0

    @property
    def code_bytes(self):
        return self.first.code_bytes

    @property
    def store_bytes(self):
        return 0.0 if self._shares_codes() else self.store_row_bytes


TRUTH_ROWS = 1 << 21
"""Corpus rows the ground truth searches at a time: a larger corpus (a file mapped into memory) is never copied
whole."""


def exact_topk(corpus: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Ground truth: exact inner-product top-k (faiss ``IndexFlatIP``), over :data:`TRUTH_ROWS` rows at a time, the
    parts merged by (score descending, row) as faiss orders ties."""
    parts_scores, parts_ids = [], []
    for first in range(0, len(corpus), TRUTH_ROWS):
        index = faiss.IndexFlatIP(corpus.shape[1])
        index.add(np.ascontiguousarray(corpus[first:first + TRUTH_ROWS]))
        scores, ids = index.search(queries, k)
        parts_scores.append(scores)
        parts_ids.append(np.where(ids >= 0, ids + first, -1))
    if len(parts_ids) == 1:
        return parts_ids[0]
    scores, ids = np.hstack(parts_scores), np.hstack(parts_ids)
    order = np.lexsort((np.where(ids >= 0, ids, np.iinfo(np.int64).max), -scores), axis=1)[:, :k]
    return np.take_along_axis(ids, order, axis=1)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per query, the share of the true top-k found in the first k returned ids. -1 is faiss's "no result":
    it never counts as found, and a truth row padded with it (a corpus smaller than k) has fewer to find."""
    k = truth.shape[1]
    if len(found) != len(truth):
        raise ValueError(f"recall@{k}: found has {len(found)} rows, truth {len(truth)}")
    out = np.empty(len(truth))
    for i, (f, t) in enumerate(zip(found.tolist(), truth.tolist(), strict=True)):
        relevant = set(t) - {-1}
        out[i] = len(set(f[:k]) & relevant) / len(relevant) if relevant else 1.0
    return out
