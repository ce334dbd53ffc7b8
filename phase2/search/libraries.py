"""The libraries and engines a practitioner would install instead, behind :class:`phase2.search.methods.Method`.

usearch (HNSW over float16, int8 and packed sign bits, and its exact search), ScaNN (a k-means tree,
anisotropic hashing and float re-ordering), rabitqlib (the reference RaBitQ library: IVF and HNSW at 1 to 9
bits) and Milvus Lite through the pymilvus client (the full client path a user times). Each package is imported
only when a method is built, so a missing one costs only its own methods (:func:`missing_package`).

Thread counts follow the harness: :func:`phase2.experiments.timing.threads` sets faiss's OpenMP count, which
:func:`phase2.search.methods.search_threads` reads and each library is then given explicitly.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

from phase2.search.methods import Method, native_stderr, nlist, search_threads, sign_codes

MILVUS_URI_ENV = "PHASE2_MILVUS_URI"
"""A Milvus server or cluster address (e.g. ``http://host:19530``); unset, Milvus Lite runs embedded in a
temporary file. The same client code runs against both."""


def missing_package(module: str) -> str | None:
    """Why a library's methods cannot run here, or None when its package imports."""
    if importlib.util.find_spec(module) is None:
        return f"the Python package providing `{module}` is not installed"
    return None


def _print_all_but_absl_info(lines: list[str]) -> None:
    """ScaNN logs its training through absl straight to file descriptor 2 (``I0000 ...`` lines); print the rest."""
    kept = [line for line in lines if not re.match(r"(I\d{4} |WARNING: All log messages before absl)", line)]
    if kept:
        print("\n".join(kept), file=sys.stderr)


def _directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _padded(ids: np.ndarray, found: np.ndarray, k: int) -> np.ndarray:
    """``int64 [nq, k]`` ids with -1 (faiss's "no result") past each row's ``found`` count."""
    ids = np.asarray(ids, np.int64)
    if ids.shape[1] < k:
        ids = np.hstack([ids, np.full((len(ids), k - ids.shape[1]), -1, np.int64)])
    return np.where(np.arange(k) < np.asarray(found)[:, None], ids[:, :k], -1)


def _usearch_ids(matches, k: int) -> np.ndarray:
    """usearch's answer as ``int64 [nq, k]`` ids: a batch (``BatchMatches``) or one query's ``Matches``."""
    if hasattr(matches, "counts"):
        return _padded(matches.keys.astype(np.int64), matches.counts, k)
    keys = matches.keys.astype(np.int64)
    return _padded(keys[None, :], np.array([len(keys)]), k)


class USearchHNSW(Method):
    """usearch's HNSW over ``f16`` or ``i8`` vectors (inner product) or ``b1`` packed sign bits (Hamming).

    Built with all threads (insertion order then varies: not deterministic). Query argument: ``efSearch``
    (usearch's ``expansion_search``).
    """

    library = "usearch"
    deterministic = False
    BYTES = {"f16": 2.0, "i8": 1.0, "b1": 1 / 8}

    def __init__(self, name: str, dtype: str, connectivity: int = 16, expansion_add: int = 128) -> None:
        super().__init__(name)
        if dtype not in self.BYTES:
            raise ValueError(f"{name}: usearch dtype must be one of {', '.join(self.BYTES)}, got {dtype!r}")
        self.dtype, self.connectivity, self.expansion_add = dtype, connectivity, expansion_add
        self.family = "binary" if dtype == "b1" else "graph"

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        return sign_codes(x) if self.dtype == "b1" else x

    def fit(self, corpus):
        from usearch.index import Index

        self.dim = corpus.shape[1]
        self.index = Index(ndim=self.dim, metric="hamming" if self.dtype == "b1" else "ip", dtype=self.dtype,
                           connectivity=self.connectivity, expansion_add=self.expansion_add)
        self.index.add(np.arange(len(corpus)), self._prepare(corpus), threads=search_threads())

    def set_query_arguments(self, **arguments):
        super().set_query_arguments(**arguments)
        unknown = set(arguments) - {"efSearch"}
        if unknown:
            raise ValueError(f"{self.name}: unknown query argument(s) {sorted(unknown)}")
        if "efSearch" in arguments:
            self.index.expansion_search = arguments["efSearch"]

    def query(self, queries, k):
        return _usearch_ids(self.index.search(self._prepare(queries), k, threads=search_threads()), k)

    def index_bytes(self):
        return int(self.index.memory_usage)

    def disk_bytes(self):
        return int(self.index.serialized_length)

    @property
    def code_bytes(self):
        return self.dim * self.BYTES[self.dtype]


class USearchExact(Method):
    """usearch's exhaustive search (``usearch.index.search(..., exact=True)``): float32 inner product, or
    Hamming over packed sign bits. Exact, so deterministic up to the order of equal scores."""

    library = "usearch"

    def __init__(self, name: str, binary: bool = False) -> None:
        super().__init__(name)
        self.binary = binary
        self.family = "binary" if binary else "float"

    def fit(self, corpus):
        self.vectors = sign_codes(corpus) if self.binary else np.ascontiguousarray(corpus, np.float32)

    def query(self, queries, k):
        from usearch.index import search

        return _usearch_ids(search(self.vectors, sign_codes(queries) if self.binary else queries, k,
                                   "hamming" if self.binary else "ip", exact=True, threads=search_threads()), k)

    def index_bytes(self):
        return int(self.vectors.nbytes)

    @property
    def code_bytes(self):
        return self.vectors.shape[1] * self.vectors.itemsize


def scann_leaves(n: int) -> int:
    """k-means tree leaves for ``n`` vectors: about ``2 sqrt(n)`` (ScaNN's README uses 2,000 for 1.18M)."""
    return max(2, min(n // 10, round(2 * math.sqrt(n))))


class ScaNN(Method):
    """ScaNN as its README configures it for 10^5-10^6 vectors: a k-means tree of :func:`scann_leaves` leaves,
    anisotropic hashing (2 dimensions per 4-bit code, threshold 0.2) and exact float re-ordering of the
    ``reorder`` best. Query arguments: ``leaves_share`` (the share of leaves searched) and ``reorder``.
    The float vectors kept for re-ordering are the store (``store_bytes``). Its k-means uses threads: not
    deterministic.
    """

    library, family, deterministic = "scann", "ivf", False

    def fit(self, corpus):
        from scann.scann_ops.py import scann_ops_pybind

        n, self.dim = corpus.shape
        self.leaves = scann_leaves(n)
        builder = scann_ops_pybind.builder(corpus, 10, "dot_product")
        builder = builder.tree(num_leaves=self.leaves, num_leaves_to_search=max(1, self.leaves // 10),
                               training_sample_size=min(n, 250_000))
        builder = builder.score_ah(2, anisotropic_quantization_threshold=0.2).reorder(100)
        with native_stderr(_print_all_but_absl_info):
            self.searcher = builder.set_n_training_threads(search_threads()).build()
        self.n = n

    def query(self, queries, k):
        arguments = {"leaves_to_search": max(1, round(self.leaves * self.query_arguments.get("leaves_share", 0.1))),
                     "pre_reorder_num_neighbors": max(k, self.query_arguments.get("reorder", 100)),
                     "final_num_neighbors": k}
        count = search_threads()
        if count > 1 and len(queries) > 1:
            self.searcher.set_num_threads(count)
            ids, _ = self.searcher.search_batched_parallel(queries, **arguments)
        else:
            ids, _ = self.searcher.search_batched(queries, **arguments)
        ids = np.asarray(ids, np.int64)
        return ids if ids.shape[1] == k else np.hstack([ids, np.full((len(ids), k - ids.shape[1]), -1)])

    def index_bytes(self):
        with tempfile.TemporaryDirectory() as directory:
            self.searcher.serialize(directory)
            return _directory_bytes(Path(directory))

    @property
    def code_bytes(self):
        return self.dim / 4  # anisotropic hashing: 4 bits per 2 dimensions

    @property
    def store_bytes(self):
        return 4.0 * self.dim


class RaBitQLibIVF(Method):
    """rabitqlib's IVF-RaBitQ: its own k-means (``RaBitQKMeans``, :func:`phase2.search.methods.nlist` clusters) and
    ``nbits`` per dimension (1 to 9), inner product; rabitqlib needs at least 64 dimensions. Query argument:
    ``nprobe``. Threaded k-means: not deterministic."""

    library, family, deterministic = "rabitqlib", "rabitq", False

    def __init__(self, name: str, nbits: int) -> None:
        super().__init__(name)
        if not 1 <= nbits <= 9:
            raise ValueError(f"{name}: rabitqlib quantizes with 1 to 9 bits, got {nbits}")
        self.nbits = nbits

    def _cluster(self, corpus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from rabitqlib import RaBitQKMeans

        self.clusters = min(nlist(len(corpus)), max(1, len(corpus) // 40))
        clustering = RaBitQKMeans(corpus.shape[1], self.clusters, num_threads=search_threads(), seed=0)
        clustering.train(corpus)
        return clustering.centroids, clustering.assignments

    def fit(self, corpus):
        from rabitqlib import IvfIndex

        self.n, self.dim = corpus.shape
        centroids, assignments = self._cluster(corpus)
        self.index = IvfIndex(dim=self.dim, max_elements=self.n, num_clusters=self.clusters, nbits=self.nbits,
                              metric="ip")
        self.index.build(corpus, centroids, assignments, num_threads=search_threads())

    def query(self, queries, k):
        nprobe = min(self.clusters, self.query_arguments.get("nprobe", 16))
        ids, _ = self.index.search(queries, k, nprobe, num_threads=search_threads())
        return np.asarray(ids, np.int64)

    def index_bytes(self):
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "index")
            self.index.save(path)
            return os.path.getsize(path)

    @property
    def code_bytes(self):
        return self.dim * self.nbits / 8


class RaBitQLibHNSW(RaBitQLibIVF):
    """rabitqlib's HNSW-RaBitQ (M = 16, ef_construction = 200, ``nbits`` per dimension) over the same
    clustering. Query argument: ``efSearch``. Its build took 436 s for 10^5 384-d vectors on 2 cores."""

    family = "graph"

    def fit(self, corpus):
        from rabitqlib import HnswIndex

        self.n, self.dim = corpus.shape
        centroids, assignments = self._cluster(corpus)
        self.index = HnswIndex(dim=self.dim, max_elements=self.n, M=16, ef_construction=200, nbits=self.nbits,
                               metric="ip")
        self.index.build(corpus, centroids, assignments, num_threads=search_threads())

    def query(self, queries, k):
        ids, _ = self.index.search(queries, k, max(k, self.query_arguments.get("efSearch", 64)),
                                   num_threads=search_threads())
        return np.asarray(ids, np.int64)


class MilvusCollection(Method):
    """A Milvus collection searched through pymilvus, as an application would: insert, build ``index_type``
    (inner product), load, search. Embedded Milvus Lite in a temporary file unless :data:`MILVUS_URI_ENV`
    names a server. Query arguments: ``ef`` (HNSW) or ``nprobe`` (IVF). Milvus Lite 3.2 stores no binary
    vectors (``BINARY_VECTOR`` is refused), so its ``BIN_FLAT`` and ``BIN_IVF_FLAT`` cannot be measured here.
    """

    library, deterministic = "milvus", False
    INSERT_BATCH = 5_000

    def __init__(self, name: str, index_type: str, params: dict, family: str, bytes_per_dim: float) -> None:
        super().__init__(name)
        self.index_type, self.params, self.family, self.bytes_per_dim = index_type, params, family, bytes_per_dim

    def fit(self, corpus):
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # before grpc loads: its keep-alive chatter is not a result
        from pymilvus import DataType, MilvusClient

        self.dim = corpus.shape[1]
        self._directory = tempfile.TemporaryDirectory()
        self.client = MilvusClient(uri=os.environ.get(MILVUS_URI_ENV) or os.path.join(self._directory.name,
                                                                                        "milvus.db"))
        self.collection = "phase2_" + re.sub(r"[^A-Za-z0-9]", "_", self.name)
        if self.client.has_collection(self.collection):
            self.client.drop_collection(self.collection)
        schema = self.client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        self.client.create_collection(self.collection, schema=schema)
        for start in range(0, len(corpus), self.INSERT_BATCH):
            block = corpus[start:start + self.INSERT_BATCH]
            self.client.insert(self.collection, [{"id": start + i, "vector": v} for i, v in enumerate(block.tolist())])
        self.client.flush(self.collection)  # sealed segments get the index; a growing one is searched by brute force
        index = self.client.prepare_index_params()
        index.add_index("vector", index_type=self.index_type, metric_type="IP", params=self.params)
        self.client.create_index(self.collection, index)
        self.client.load_collection(self.collection)

    def query(self, queries, k):
        hits = self.client.search(self.collection, data=queries.tolist(), limit=k,
                                  search_params={"metric_type": "IP", "params": self.query_arguments})
        ids = np.full((len(hits), k), -1, np.int64)
        for i, row in enumerate(hits):
            ids[i, :len(row)] = [hit["id"] for hit in row]
        return ids

    def index_bytes(self):
        return _directory_bytes(Path(self._directory.name)) if not os.environ.get(MILVUS_URI_ENV) else 0

    @property
    def code_bytes(self):
        return self.dim * self.bytes_per_dim
