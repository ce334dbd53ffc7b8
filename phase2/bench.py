"""The benchmark harness: recall, throughput, latency, build time and memory of every method.

ann-benchmarks discipline: ground truth from exact float32 search; each index built once
(all threads, timed); every query setting warmed up, then timed ``repeats`` times on the
whole batch (median queries/s) and on single queries (p50/p99 latency), at one thread and
at all threads separately. Memory is the serialized index size, so graph and list
overheads count. Results go to ``results_dir()/throughput/<run_id>.parquet`` (one file per
run: repeated runs append). Timed runs never live in the unit tests.

Data: real embeddings where they exist; beyond them, synthetic corpora drawn from a
model fitted to a real corpus (:func:`fit_synthetic`: noisy copies of real documents),
queried by the real queries and labelled ``synthetic`` in every row.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import faiss
import numba
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numba import njit, prange, types
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from phase2 import index_cache, published
from phase2.ann import exact_topk, recall_at_k
from phase2.bench_registry import REGISTRY
from phase2.datasets import load_dataset
from phase2.disk import IO_THREADS, random_read_probe
from phase2.embeddings import embed, query_encoder
from phase2.errors import ParameterError, Phase2Error
from phase2.kernels import LANES, SIMD_LEVEL, CodeBlocks, as_words, hamming_kernel, hamming_topk
from phase2.results import machine, read_results, run_metadata, write_results
from phase2.storage import atomic_write_bytes, source_digest

CHAPTER = "throughput"
BENCH_COLUMNS = ["run_id", "created_utc", "git_commit", "code", "versions", "cpu", "machine", "seed", "profile",
                 "chapter", "data_kind", "source", "n_vectors", "dim", "method", "family", "library", "build_params",
                 "query_params", "deterministic", "search_threads", "code_bytes_per_vector", "index_bytes",
                 "disk_bytes", "store_bytes_per_vector", "store_on_disk", "metric", "value"]
"""One row per measured value; ``metric`` is one of recall@10, qps, p50_ms, p99_ms, latency_queries (how many
single queries the two percentiles rest on), build_s and build_reused (methods; 1 where the index came from
:mod:`phase2.index_cache`, its build_s then measured when it was built)
or qps, scan_GBps, read_GBps (kernels). ``data_kind`` is ``real``, ``synthetic`` (drawn from a
model fitted to the real corpus named in ``source``) or ``random codes`` (kernels)."""


EXTRAPOLATED = "extrapolated"  # data_kind of synthetic corpora drawn from a generator fitted to a small real subset
KERNEL_DATA = "random codes"  # data_kind of the kernel comparison's rows, which share a run with the methods
DISK_DATA = "disk probe"  # data_kind of the random-read probe's rows, measured where a store was on disk
ENCODING_DATA = "query encoding"  # data_kind of the rows timing each model's embedding of one query
PROBES = (KERNEL_DATA, DISK_DATA, ENCODING_DATA)
BUILD_METRICS = ("build_s", "build_reused")  # measured once per built index, not per query setting
BINARY_FAMILIES = ("binary", "binary+rescore")  # the method families that count as binary in every verdict


def max_threads() -> int:
    return numba.config.NUMBA_NUM_THREADS


def _cpu_ticks() -> tuple[int, int]:
    """(busy ticks of the whole machine, ticks of this process) from Linux's /proc."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    busy = sum(map(int, fields)) - int(fields[3]) - int(fields[4])  # all but idle and iowait
    own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return busy, int(own[11]) + int(own[12])  # utime + stime


def busy_cores_elsewhere(seconds: float = 2.0) -> float | None:
    """Cores kept busy by *other* processes during ``seconds`` of sleep (None where /proc is missing).

    Timings are only meaningful on an idle machine: a background process at the lowest priority
    made faiss's 2-thread PQ training 10-16x slower inside a Jupyter kernel on the 2-core reference
    machine (OpenMP threads wait for each other at every barrier)."""
    try:
        busy, own = _cpu_ticks()
        time.sleep(seconds)
        busy_after, own_after = _cpu_ticks()
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, (busy_after - busy) - (own_after - own)) / os.sysconf("SC_CLK_TCK") / seconds


@contextmanager
def threads(count: int):
    """Run faiss (OpenMP), numba and BLAS on ``count`` threads."""
    before = numba.get_num_threads()
    faiss.omp_set_num_threads(count)
    numba.set_num_threads(count)
    try:
        with threadpool_limits(limits=count):
            yield
    finally:
        numba.set_num_threads(before)
        faiss.omp_set_num_threads(before)


def new_run(profile: str = "") -> dict:
    """Metadata shared by every row of one benchmark run (one run id, one results file)."""
    meta = run_metadata(profile, CHAPTER, seed=0)
    meta.pop("threads")  # each row says its own search_threads
    meta["code"] = code_digest()
    meta["machine"] = json.dumps(machine(), sort_keys=True)
    return meta


def check_methods(names: Iterable[str]) -> list[str]:
    names = list(names)
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ParameterError(f"unknown method(s) {unknown}; valid methods: {', '.join(REGISTRY)}")
    return names


@dataclass(frozen=True)
class SyntheticModel:
    """Synthetic documents as noisy copies of real ones: ``normalize(parent + scale * L z)``.

    ``L`` is the Cholesky factor of the within-topic covariance (residuals around 64 spherical k-means
    centroids of the real corpus); ``scale`` is set so that a synthetic corpus as large as the real one
    has the real corpus's median nearest-neighbour cosine. A plain Gaussian mixture fitted the same way
    lacked the real corpus's local structure: its 1-bit recall@10 was half the real one's.
    """

    parents: np.ndarray  # [n, d] the real documents
    cholesky: np.ndarray  # [d, d] lower
    scale: float


def _median_nn_cosine(corpus: np.ndarray, probes: int = 2000, seed: int = 0) -> float:
    """Median over sampled rows of the cosine to their nearest other row (unit-norm rows)."""
    rows = np.random.default_rng(seed).choice(len(corpus), min(probes, len(corpus)), replace=False)
    with threads(1):
        sims = corpus[rows] @ corpus.T
    sims[np.arange(len(rows)), rows] = -np.inf
    return float(np.median(sims.max(axis=1)))


def _noisy_copies(parents: np.ndarray, cholesky: np.ndarray, scale: float, n: int, rng) -> np.ndarray:
    x = parents[rng.integers(0, len(parents), n)] + scale * (rng.standard_normal((n, len(cholesky))) @ cholesky.T)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def fit_synthetic(corpus: np.ndarray, clusters: int = 64, seed: int = 0, steps: int = 8) -> SyntheticModel:
    """Within-topic covariance (seeded k-means, one thread), then ``scale`` by bisection on the median
    nearest-neighbour cosine."""
    clusters = max(1, min(clusters, len(corpus) // 40))
    with threads(1):
        kmeans = faiss.Kmeans(corpus.shape[1], clusters, niter=20, seed=seed, spherical=True)
        kmeans.train(corpus)
        assign = kmeans.index.search(corpus, 1)[1][:, 0]
    residuals = (corpus - kmeans.centroids[assign]).astype(np.float64)
    covariance = residuals.T @ residuals / max(1, len(corpus) - 1)
    covariance += 1e-8 * np.trace(covariance) / len(covariance) * np.eye(len(covariance))
    cholesky = np.linalg.cholesky(covariance).astype(np.float32)
    target = _median_nn_cosine(corpus, seed=seed)
    low, high = 0.0, 2.0
    for _ in range(steps):
        scale = (low + high) / 2
        copies = _noisy_copies(corpus, cholesky, scale, len(corpus), np.random.default_rng(seed))
        low, high = (scale, high) if _median_nn_cosine(copies, seed=seed) > target else (low, scale)
    return SyntheticModel(corpus, cholesky, (low + high) / 2)


def sample_synthetic(model: SyntheticModel, n: int, seed: int = 0, chunk: int = 100_000) -> np.ndarray:
    """``n`` unit-norm float32 synthetic documents, generated in seeded chunks."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, model.parents.shape[1]), np.float32)
    for start in range(0, n, chunk):
        out[start:start + chunk] = _noisy_copies(model.parents, model.cholesky, model.scale,
                                                 min(chunk, n - start), rng)
    return out


def pooled_embeddings(datasets: Iterable[str], model: str,
                      progress: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Documents and judged queries of several collections stacked (cached embeddings): the real corpus; and,
    per query, the position of its collection in ``datasets``."""
    docs, queries = [], []
    for name in datasets:
        collection = load_dataset(name)
        docs.append(embed(collection, model, "docs", progress=progress))
        queries.append(embed(collection, model, "queries", progress=progress))
    owner = np.concatenate([np.full(len(q), i) for i, q in enumerate(queries)])
    return np.concatenate(docs), np.concatenate(queries), owner


def stratified_rows(groups: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """A seeded sample of ``n`` row indices, as equal a share from each group as the groups' sizes allow
    (a group smaller than its share gives all its rows, the rest is shared by the others), sorted.

    Pooled queries are 92% SQuAD questions; a plain sample would let one collection decide every recall."""
    labels, sizes = np.unique(groups, return_counts=True)
    quota = np.zeros(len(labels), int)
    left = min(n, len(groups))
    while left:
        open_groups = np.flatnonzero(quota < sizes)
        share = max(1, left // len(open_groups))
        for g in open_groups:
            take = min(share, sizes[g] - quota[g], left)
            quota[g] += take
            left -= take
            if not left:
                break
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(groups == label), count, replace=False)
              for label, count in zip(labels, quota, strict=True)]
    return np.sort(np.concatenate(picked))


def benchmark_corpus(real: np.ndarray, n: int, kind: str, model: SyntheticModel | None = None,
                     seed: int = 0) -> np.ndarray:
    """``n`` vectors: a seeded sample of the real corpus (``kind="real"``, ``n`` at most its size) or documents
    drawn from ``model`` (``synthetic``: fitted to the whole real corpus; ``extrapolated``: fitted to a small
    subset of it, to check the generator where it extrapolates). Without ``model``, one is fitted to ``real``."""
    if kind == "real":
        if n > len(real):
            raise ParameterError(f"the real corpus has {len(real)} vectors, {n} asked; larger sizes are synthetic")
        rows = np.sort(np.random.default_rng(seed).choice(len(real), n, replace=False))
        return np.ascontiguousarray(real[rows])
    if kind in ("synthetic", EXTRAPOLATED):
        return sample_synthetic(model if model is not None else fit_synthetic(real, seed=seed), n, seed=seed)
    raise ParameterError(f"corpus kind must be 'real', 'synthetic' or {EXTRAPOLATED!r}, got {kind!r}")


def median_seconds(fn, repeats: int) -> tuple[float, object]:
    """Median wall time of ``repeats`` calls after one warm-up call, and the last result."""
    result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


_DISK_PROBES: dict[str, dict[str, float]] = {}  # run id -> this disk's random-read probe, measured once per run


def seconds_each(call: Callable, items, budget_s: float) -> list[float]:
    """Wall time of ``call(item)`` for each item in order, until all are done or ``budget_s`` is spent (the one
    that crosses it counts): a method taking 90 ms per query (Milvus Lite's client path) would otherwise hold a
    grid for minutes. The caller records how many were timed."""
    seconds, spent = [], 0.0
    for item in items:
        start = time.perf_counter()
        call(item)
        seconds.append(time.perf_counter() - start)
        spent += seconds[-1]
        if spent > budget_s:
            break
    return seconds


def single_query_seconds(method, queries: np.ndarray, k: int, budget_s: float) -> list[float]:
    """Wall time of each query asked alone (batch size 1), within ``budget_s`` (:func:`seconds_each`)."""
    return seconds_each(lambda i: method.query(queries[i:i + 1], k), range(len(queries)), budget_s)


def run_methods(corpus: np.ndarray, queries: np.ndarray, source: str, data_kind: str,
                methods: Iterable[str] | None = None, *,
                k: int = 10, repeats: int = 3, latency_queries: int = 100, latency_budget_s: float = 30.0,
                thread_counts: Iterable[int] | None = None, meta: dict | None = None,
                progress: bool = True) -> pd.DataFrame:
    """Build and measure each method's grid on one corpus; returns the tidy table (not written).

    Single-query latency uses ``latency_queries`` queries spread evenly over the batch (which is ordered by
    collection), each asked alone, for at most ``latency_budget_s`` per setting and thread count."""
    names = check_methods(methods if methods is not None else REGISTRY)
    thread_counts = sorted(set(thread_counts or (1, max_threads())))
    meta = meta or new_run()
    n, d = corpus.shape
    with threads(max_threads()):
        truth = exact_topk(corpus, queries, k)
    rows = []
    digest = index_cache.corpus_digest(corpus)
    base = dict(meta, data_kind=data_kind, source=source, n_vectors=n, dim=d)
    probe = None
    single = queries[np.unique(np.linspace(0, len(queries) - 1, min(latency_queries, len(queries))).astype(int))]
    for name in tqdm(names, desc=f"methods on {source}", disable=not progress):
        entry = REGISTRY[name]
        if entry.not_run_at(n):  # a missing package or a size too large here: bench_registry.not_measured says so
            continue
        for method in entry.build(n, d):
            with threads(max_threads()):
                build_s, reused = index_cache.fit(method, corpus, digest)
            common = dict(base, method=method.name, family=method.family, library=method.library, build_params=name,
                          deterministic=method.deterministic, code_bytes_per_vector=float(method.code_bytes),
                          index_bytes=method.index_bytes(), disk_bytes=method.disk_bytes(),
                          store_bytes_per_vector=float(method.store_bytes), store_on_disk=method.store_on_disk)
            if method.store_on_disk and probe is None and (probe := _DISK_PROBES.get(meta["run_id"])) is None:
                probe = _DISK_PROBES[meta["run_id"]] = random_read_probe()  # once per run: it writes 256 MiB
                rows += [dict(base, data_kind=DISK_DATA, method="random 4 KiB direct read", family="", library="",
                              build_params="", query_params="", deterministic=False, search_threads=IO_THREADS,
                              code_bytes_per_vector=0.0, index_bytes=0, disk_bytes=0, store_bytes_per_vector=0.0,
                              store_on_disk=True, metric=metric, value=value) for metric, value in probe.items()]
            rows += [dict(common, query_params="", search_threads=max_threads(), metric=metric, value=value)
                     for metric, value in (("build_s", build_s), ("build_reused", float(reused)))]
            for arguments in entry.query_grid:
                method.set_query_arguments(**arguments)
                for count in thread_counts:
                    with threads(count):
                        batch_s, found = median_seconds(lambda m=method: m.query(queries, k), repeats)
                        reads = method.device_reads()  # per query asked alone: a batch shares blocks
                        latencies = single_query_seconds(method, single, k, latency_budget_s)
                        reads = (method.device_reads() - reads) / len(latencies)
                    recalls = recall_at_k(found, truth)
                    values = {"recall@10": float(recalls.mean()),
                              "recall@10_se": float(recalls.std(ddof=1) / np.sqrt(len(recalls))) if len(recalls) > 1
                              else float("nan"),
                              "qps": len(queries) / batch_s,
                              "p50_ms": 1e3 * float(np.percentile(latencies, 50)),
                              "p99_ms": 1e3 * float(np.percentile(latencies, 99)),
                              "latency_queries": float(len(latencies))}
                    if method.store_on_disk:
                        values.update(reads_per_query=reads, disk_iops=probe["iops"])
                    rows += [dict(common, query_params=json.dumps(arguments, sort_keys=True), search_threads=count,
                                  metric=metric, value=value) for metric, value in values.items()]
    return pd.DataFrame(rows, columns=BENCH_COLUMNS)


def run_grid(datasets: Iterable[str], model: str, sizes: Iterable[int], methods: Iterable[str] | None = None, *,
             n_queries: int = 1000, check_synthetic: bool = True, checked_methods: Iterable[str] | None = None,
             extrapolation_fit_docs: int = 0, k: int = 10, repeats: int = 3, latency_queries: int = 100,
             latency_budget_s: float = 30.0, thread_counts: Iterable[int] | None = None, meta: dict | None = None,
             progress: bool = True) -> pd.DataFrame:
    """Every method at every corpus size, on real embeddings where the pooled collections have enough
    documents and on synthetic ones beyond.

    With ``check_synthetic``, sizes that are real are also run synthetic (``checked_methods`` only, default all),
    so the chapter can check that the two give the same recall curves; with ``extrapolation_fit_docs`` they
    are also run on a generator fitted to only that many real documents (``extrapolated``), which tests the
    generator the way the large sizes use it: far beyond the data it was fitted to."""
    datasets = list(datasets)
    names = check_methods(methods if methods is not None else REGISTRY)
    checked = names if checked_methods is None else [n for n in names if n in check_methods(checked_methods)]
    sizes = sorted(set(sizes))
    if not sizes or sizes[0] < 2 * k:
        raise ParameterError(f"corpus sizes must be at least {2 * k}, got {sizes}")
    real, all_queries, owner = pooled_embeddings(datasets, model, progress)
    source = f"{'+'.join(datasets)}/{model}"
    queries = np.ascontiguousarray(all_queries[stratified_rows(owner, n_queries)])
    generators = {"synthetic": fit_synthetic(real) if sizes[-1] > len(real) or check_synthetic else None}
    if check_synthetic and extrapolation_fit_docs and sizes[0] <= len(real):
        if not 2 * k <= extrapolation_fit_docs < len(real):
            raise ParameterError(f"extrapolation_fit_docs must lie in [{2 * k}, {len(real)}), got "
                                 f"{extrapolation_fit_docs}")
        subset = np.sort(np.random.default_rng(1).choice(len(real), extrapolation_fit_docs, replace=False))
        generators[EXTRAPOLATED] = fit_synthetic(real[subset])
    meta = meta or new_run()
    tables = []
    for n in sizes:
        if n > len(real):
            runs = [("synthetic", names)]
        else:
            runs = [("real", names)] + ([(kind, checked) for kind in generators] if check_synthetic else [])
        for kind, run_names in runs:
            corpus = benchmark_corpus(real, n, kind, generators.get(kind))
            tables.append(run_methods(corpus, queries, source, kind, run_names, k=k, repeats=repeats,
                                      latency_queries=latency_queries, latency_budget_s=latency_budget_s,
                                      thread_counts=thread_counts, meta=meta, progress=progress))
    return pd.concat(tables, ignore_index=True)


@njit(types.uint64(types.uint64[::1]), parallel=True, cache=True)
def _read_all(words):
    """Sum of every word: streams the array once (a memory read bandwidth probe)."""
    total = np.uint64(0)
    for i in prange(words.shape[0]):
        total += words[i]
    return total


def memory_read_gbps(count: int, nbytes: int = 1 << 30, repeats: int = 5) -> float:
    """Median rate at which ``count`` threads read a ``nbytes`` array that does not fit in cache."""
    words = np.ones(nbytes // 8, np.uint64)
    with threads(count):
        seconds, _ = median_seconds(lambda: _read_all(words), repeats)
    return nbytes / seconds / 1e9


KERNEL_DEPTHS = (10, 1000)
"""Depths the kernel comparison times: a top-10 search, and the 1,000 candidates of a first stage."""


def scan_roof(n_bytes: int, count: int, repeats: int = 5) -> float:
    """The arithmetic roof of the Hamming scan at this CPU's SIMD level (:data:`phase2.kernels.SIMD_LEVEL`) on
    ``count`` threads, in (code, query) pairs per second: the compiled scan itself over a tile of 4, 8 or 16 blocks
    that stays in the L1 cache, with a threshold no row passes, so it does only the XOR, popcount, add and compare
    of every pair (no memory traffic, no selection); the fastest tile counts. Each timing covers 2^28 pairs. A
    scan of N codes can answer at most roof / N queries per second."""
    rng = np.random.default_rng(1)
    queries = as_words(rng.integers(0, 256, (1 << 16, n_bytes), dtype=np.uint8))
    kept_dist = np.empty((1, len(queries), 1), np.int16)
    kept_rows = np.empty((1, len(queries), 1), np.int32)
    counts = np.zeros((1, len(queries)), np.int64)
    nothing = np.zeros((1, len(queries)), np.uint64)  # d < 0 never holds: no row is kept
    best = 0.0
    for tile in (4, 8, 16):
        blocks = CodeBlocks.of(rng.integers(0, 256, (tile * LANES, n_bytes), dtype=np.uint8))
        scan = hamming_kernel(blocks.n_words).scan
        calls = (1 << 28) // (len(queries) * blocks.n)

        def run(b=blocks, scan=scan, calls=calls):
            for _ in range(calls):
                scan(queries, b.blocks, b.n, 1, 1, count, len(b.blocks), kept_dist, kept_rows, counts, nothing)

        with threads(count):
            seconds, _ = median_seconds(run, repeats)
        best = max(best, calls * blocks.n * len(queries) / seconds)
    return best


def run_kernels(n: int, bits: Iterable[int], thread_counts: Iterable[int] | None = None, *, n_queries: int = 1000,
                depths: Iterable[int] = KERNEL_DEPTHS, repeats: int = 3, bandwidth_bytes: int = 1 << 30,
                meta: dict | None = None, progress: bool = True) -> pd.DataFrame:
    """Exhaustive Hamming top-k at each depth: this project's kernel vs faiss ``IndexBinaryFlat`` on uniform
    random codes, each at its SIMD level (``build_params``: ``simd=...``), and the scan's arithmetic roof
    (:func:`scan_roof`) as the queries/s no scan of N codes can exceed at this level.

    Distances are checked equal. Both indexes are built before the timing (ours lays the codes out in
    :class:`~phase2.kernels.CodeBlocks`). ``scan_GBps`` is code bytes scanned per second
    (``n * bytes * queries / time``): above the memory read rate means blocks were reused from cache.
    """
    thread_counts = sorted(set(thread_counts or (1, max_threads())))
    meta = meta or new_run()
    rng = np.random.default_rng(0)
    bits = list(bits)
    if any(width % 8 or width < 8 for width in bits):
        raise ParameterError(f"bits must be positive multiples of 8 (faiss IndexBinaryFlat), got {bits}")
    levels = {"phase2": f"simd={SIMD_LEVEL}", "faiss": f"simd={faiss.SIMDConfig.get_level_name()}"}
    rows = []
    read = {count: memory_read_gbps(count, bandwidth_bytes) for count in thread_counts}
    for width in tqdm(bits, desc="kernel widths", disable=not progress):
        database = rng.integers(0, 256, (n, width // 8), dtype=np.uint8)
        queries = rng.integers(0, 256, (n_queries, width // 8), dtype=np.uint8)
        index = faiss.IndexBinaryFlat(width)
        index.add(database)
        blocks = CodeBlocks.of(database)
        base = dict(meta, data_kind=KERNEL_DATA, source="uniform random codes", n_vectors=n, dim=width,
                    deterministic=True, code_bytes_per_vector=width / 8, index_bytes=database.nbytes,
                    store_bytes_per_vector=0.0, store_on_disk=False, family="binary")
        scanned = n * width / 8 * n_queries / 1e9
        for count in thread_counts:
            for k in depths:
                with threads(count):
                    ours_s, (ours_dist, _) = median_seconds(
                        lambda q=queries, b=blocks, k=k: hamming_topk(q, b, k), repeats)
                    faiss_s, (faiss_dist, _) = median_seconds(lambda q=queries, i=index, k=k: i.search(q, k), repeats)
                if not np.array_equal(ours_dist, faiss_dist):
                    raise AssertionError(f"kernel and faiss distances differ at {width} bits, k = {k}")
                for method, library, seconds in (("bin-flat", "phase2", ours_s), ("bin-flat-faiss", "faiss", faiss_s)):
                    common = dict(base, method=method, library=library, search_threads=count,
                                  build_params=levels[library], query_params=f"k={k}")
                    rows += [dict(common, metric="qps", value=n_queries / seconds),
                             dict(common, metric="scan_GBps", value=scanned / seconds)]
            rows.append(dict(base, method="scan roof", library="phase2", search_threads=count,
                             build_params=levels["phase2"], query_params="", metric="qps",
                             value=scan_roof(width // 8, count) / n))
            rows.append(dict(base, method="memory read", library="", search_threads=count, build_params="",
                             query_params="", metric="read_GBps", value=read[count]))
    return pd.DataFrame(rows, columns=BENCH_COLUMNS)


def run_encoding(datasets: Iterable[str], models: Iterable[str], n_queries: int = 200, budget_s: float = 10.0,
                 meta: dict | None = None) -> pd.DataFrame:
    """Each model's time to embed one query (batch size 1, all threads), over up to ``n_queries`` judged queries
    drawn evenly from the collections: the first step of every request, beside the search it precedes."""
    meta = meta or new_run()
    collections = [load_dataset(name) for name in datasets]
    owner = np.concatenate([np.full(c.n_queries, i) for i, c in enumerate(collections)])
    texts = [t for c in collections for t in c.query_texts]
    sample = [texts[i] for i in stratified_rows(owner, n_queries)]
    rows = []
    for model in models:
        encode = query_encoder(model)
        encode(sample[0])  # warm-up: the model's first call loads and compiles
        seconds = seconds_each(encode, sample, budget_s)
        base = dict(meta, data_kind=ENCODING_DATA, source="+".join(datasets), n_vectors=0, dim=0, method=model,
                    family="", library="", build_params="", query_params="", deterministic=False,
                    search_threads=max_threads(), code_bytes_per_vector=0.0, index_bytes=0, disk_bytes=0,
                    store_bytes_per_vector=0.0, store_on_disk=False)
        rows += [dict(base, metric="p50_ms", value=1e3 * float(np.percentile(seconds, 50))),
                 dict(base, metric="p99_ms", value=1e3 * float(np.percentile(seconds, 99))),
                 dict(base, metric="latency_queries", value=float(len(seconds)))]
    return pd.DataFrame(rows, columns=BENCH_COLUMNS)


def encoding_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per model: p50/p99 milliseconds to embed one query and how many queries they rest on."""
    rows = table[table.data_kind == ENCODING_DATA]
    return rows.pivot_table(index="method", columns="metric", values="value", aggfunc="median").reset_index().rename(
        columns={"method": "model", "p50_ms": "encode p50 ms", "p99_ms": "encode p99 ms",
                 "latency_queries": "queries timed"})


def encoding_sentence(encoding: pd.DataFrame, regimes: pd.DataFrame, target: float = 0.95) -> str:
    """Each model's encoding time beside the fastest single-query search reaching ``target``: what a faster
    search buys in a whole request."""
    if encoding.empty:
        return "Query encoding was not timed in this run."
    at = regimes[regimes["target_recall@10"] == target] if len(regimes) else regimes
    text = "Embedding one query took " + ", ".join(
        f"{row['encode p50 ms']:.1f} ms with {row.model}" for _, row in encoding.iterrows()) + " (p50)."
    if len(at):
        best = at.loc[at.p50_ms.idxmin()]
        flat = regimes[(regimes.method == "flat") & (regimes["target_recall@10"] == target)]
        text += (f" The fastest single-query search reaching recall@10 {target}, `{best.method}`, took p50 "
                 f"{best.p50_ms:.2f} ms")
        if len(flat):
            text += f" and float32 flat {flat.p50_ms.iloc[0]:.2f} ms"
        fastest = encoding["encode p50 ms"].min()
        text += (f": with the fastest encoder, search is {best.p50_ms / (best.p50_ms + fastest):.1%} of the request "
                 f"for the fastest search" + (f" and {flat.p50_ms.iloc[0] / (flat.p50_ms.iloc[0] + fastest):.1%} "
                                               "for flat." if len(flat) else "."))
    return text


def save(table: pd.DataFrame) -> Path:
    """Append one run's table to the results directory; returns the file written."""
    return write_results(table, columns=BENCH_COLUMNS)


SOURCES = ("bench.py", "bench_registry.py", "ann.py", "libraries.py", "kernels.py", "disk.py", "index_cache.py",
           "datasets.py", "embeddings.py")
"""The files whose code a throughput run measures. A run records their digest as its ``code``; a run of other
versions of them is not current (edits elsewhere, to the chapters' statistics say, leave timings current)."""


def code_digest() -> str:
    return source_digest(SOURCES)[:16]


def machine_line(record: str) -> str:
    """A run's ``machine`` JSON in words: ``AMD EPYC (AVX-512 with VPOPCNTDQ and VNNI), 2 cores, 23.5 GiB``."""
    found = json.loads(record) if record else {}
    if not found:
        return "an unrecorded machine"
    flags = set(found.get("simd", []))
    extras = " and ".join(name for flag, name in (("avx512_vpopcntdq", "VPOPCNTDQ"), ("avx512_vnni", "VNNI"))
                          if flag in flags)
    level = (("AVX-512 with " + extras if extras else "AVX-512") if "avx512f" in flags
             else "AVX2 only" if "avx2" in flags else "no AVX2")
    scan = f"; Hamming scan at {found['scan_simd']}" if found.get("scan_simd") else ""
    return f"{found['cpu']} ({level}), {found['cores']} cores, {found['memory_gib']} GiB{scan}"


def published_runs(profile: str) -> Path | None:
    """Where a profile's throughput run is published (``<published_dir>/throughput``); None for a profile without
    published results (:data:`phase2.published.PUBLISHED_PROFILES`), whose runs stay in the results directory."""
    return published.published_dir(profile) / CHAPTER if profile in published.PUBLISHED_PROFILES else None


def publish(table: pd.DataFrame, profile: str, parameters: dict) -> Path | None:
    """Make one run of ``profile`` its published throughput run, with the chapter ``parameters`` it answered in the
    parquet metadata; the run published before is removed (git keeps it). Returns the file written, or None for a
    profile without published results."""
    folder = published_runs(profile)
    if folder is None:
        return None
    arrow = pa.Table.from_pandas(table[BENCH_COLUMNS].reset_index(drop=True), preserve_index=False)
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}),
                                           published.META_KEY: json.dumps({"parameters": parameters},
                                                                          sort_keys=True).encode()})
    buf = pa.BufferOutputStream()
    pq.write_table(arrow, buf, compression="zstd")
    path = folder / f"{table.run_id.iloc[0]}.parquet"
    atomic_write_bytes(path, buf.getvalue().to_pybytes())
    for older in folder.glob("*.parquet"):
        if older != path:
            older.unlink()
    return path


def published_run(profile: str, parameters: dict | None = None) -> tuple[pd.DataFrame | None, str]:
    """A profile's published throughput run and its state: ``current`` (measured by the present bench code, for
    ``parameters`` when given), ``other code``, ``other parameters`` or ``missing`` (no table)."""
    folder = published_runs(profile)
    files = sorted(folder.glob("*.parquet")) if folder is not None else []
    if not files:
        return None, "missing"
    table = pd.read_parquet(files[-1])
    if table.code.iloc[0] != code_digest():
        return table, "other code"
    recorded = json.loads((pq.read_schema(files[-1]).metadata or {}).get(published.META_KEY, b"{}"))
    if parameters is not None and recorded.get("parameters") != parameters:
        return table, "other parameters"
    return table, "current"


def read_run(profile: str, current: bool = False) -> pd.DataFrame:
    """The throughput run a profile's chapters read: its published run where there is one, else the newest run of
    the profile in the results directory; with ``current``, only a run measured by the present bench code."""
    table, state = published_run(profile)
    if table is None:
        table = read_results(CHAPTER, profile=profile)
        state = "current" if table.code.iloc[0] == code_digest() else "other code"
    if current and state != "current":
        raise FileNotFoundError(f"the {profile} profile's throughput run {table.run_id.iloc[0]} was measured by other "
                                f"code ({table.code.iloc[0]}, now {code_digest()}): measure it again: "
                                f"python -m phase2 chapter throughput --profile {profile}")
    return table


KERNEL_COLUMNS = ["N", "bits", "threads", "k", "ours q/s", "faiss q/s", "speedup", "roof q/s", "ours / roof",
                  "ours GB/s", "faiss GB/s", "memory read GB/s", "ours / memory read", "ours simd", "faiss simd"]


def kernel_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per code width, thread count and depth: both kernels' queries/s and scan rate, the speedup, our queries/s
    as a share of the scan's arithmetic roof (:func:`scan_roof`), the scan rate as a multiple of the measured
    memory read rate, and the SIMD level each ran at (no rows when the run timed no kernels)."""
    kernels = table[table.data_kind == KERNEL_DATA]
    if kernels.empty:
        return pd.DataFrame(columns=KERNEL_COLUMNS)
    keys = ["n_vectors", "dim", "search_threads"]
    timed = kernels[kernels.method.isin(["bin-flat", "bin-flat-faiss"])].assign(
        k=lambda t: t.query_params.str.removeprefix("k=").astype(int))
    wide = timed.pivot_table(index=[*keys, "k"], columns=["method", "metric"], values="value", aggfunc="median")
    once = kernels[~kernels.method.isin(["bin-flat", "bin-flat-faiss"])].pivot_table(
        index=keys, columns="method", values="value", aggfunc="median")
    at = pd.MultiIndex.from_frame(wide.index.to_frame()[keys])
    level = timed.drop_duplicates("library").set_index("library").build_params.str.removeprefix("simd=")
    out = pd.DataFrame({
        "ours q/s": wide[("bin-flat", "qps")], "faiss q/s": wide[("bin-flat-faiss", "qps")],
        "roof q/s": once["scan roof"].reindex(at).to_numpy(),
        "ours GB/s": wide[("bin-flat", "scan_GBps")], "faiss GB/s": wide[("bin-flat-faiss", "scan_GBps")],
        "memory read GB/s": once["memory read"].reindex(at).to_numpy(),
    })
    out["speedup"] = out["ours q/s"] / out["faiss q/s"]
    out["ours / roof"] = out["ours q/s"] / out["roof q/s"]
    out["ours / memory read"] = out["ours GB/s"] / out["memory read GB/s"]
    out["ours simd"], out["faiss simd"] = level.get("phase2", ""), level.get("faiss", "")
    return out.rename_axis(index=["N", "bits", "threads", "k"]).reset_index()[KERNEL_COLUMNS]


def disk_probe(table: pd.DataFrame) -> pd.DataFrame:
    """The random-read probe of each corpus measured with a store on disk: latency at queue depth 1 and
    reads/s with :data:`phase2.disk.IO_THREADS` in flight (no rows when no store was on disk)."""
    probe = table[table.data_kind == DISK_DATA]
    wide = probe.pivot_table(index=["source", "n_vectors"], columns="metric", values="value", aggfunc="median")
    return wide.reset_index().rename(columns={"iops": f"reads/s ({IO_THREADS} in flight)",
                                              "iops_qd1": "reads/s (1 in flight)", "p50_ms": "p50 ms (1 in flight)",
                                              "p99_ms": "p99 ms (1 in flight)"})


def operating_points(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (data, size, method, query setting, threads): recall@10, q/s, latency, memory, build time."""
    for column in ("store_bytes_per_vector", "library", "store_on_disk"):
        if column not in table:
            raise Phase2Error(f"throughput run {table.run_id.iloc[0]} predates the column {column!r}: re-run the "
                              "throughput chapter or `python -m phase2 bench methods`")
    methods = table[~table.data_kind.isin(PROBES)]
    keys = ["data_kind", "n_vectors", "method", "family", "library", "build_params", "query_params", "search_threads"]
    wide = methods[~methods.metric.isin(BUILD_METRICS)].pivot_table(index=keys, columns="metric", values="value",
                                                                    aggfunc="median").reset_index()
    built = ["data_kind", "n_vectors", "method"]
    build = methods[methods.metric == "build_s"].groupby(built).agg(
        build_s=("value", "median"), index_bytes=("index_bytes", "first"), disk_bytes=("disk_bytes", "first"),
        code_bytes=("code_bytes_per_vector", "first"), store_bytes=("store_bytes_per_vector", "first"),
        store_on_disk=("store_on_disk", "first"), deterministic=("deterministic", "first"))
    reused = methods[methods.metric == "build_reused"].groupby(built)["value"].max().rename("build_reused")
    build = build.join(reused)
    build["build_reused"] = build["build_reused"].fillna(0).astype(bool)  # runs before the index cache: built
    out = wide.merge(build.reset_index(), on=built)
    out["bytes_per_vector"] = out.index_bytes / out.n_vectors
    return out


def pareto_front(points: pd.DataFrame) -> pd.DataFrame:
    """The operating points no other point beats on both recall@10 and queries/s."""
    ordered = points.sort_values(["recall@10", "qps"], ascending=[False, False])
    best_qps, keep = -np.inf, []
    for index, row in ordered.iterrows():
        if row.qps > best_qps:
            keep.append(index)
            best_qps = row.qps
    return points.loc[keep].sort_values("recall@10")


def speedup_at_recall(points: pd.DataFrame, targets: Iterable[float] = (0.8, 0.9, 0.95, 0.99)) -> pd.DataFrame:
    """Per size, threads and method: the fastest setting reaching each recall@10 target, as queries/s
    and as a multiple of exact float32 search (``flat``) measured in the same run; NaN if never reached."""
    rows = []
    for (kind, n, count), group in points.groupby(["data_kind", "n_vectors", "search_threads"]):
        flat = group[group.method == "flat"].qps
        baseline = float(flat.iloc[0]) if len(flat) else np.nan
        for method, runs in group.groupby("method"):
            for target in targets:
                reached = runs[runs["recall@10"] >= target]
                qps = float(reached.qps.max()) if len(reached) else np.nan
                rows.append({"data_kind": kind, "n_vectors": n, "search_threads": count, "method": method,
                             "family": runs.family.iloc[0], "target_recall@10": target, "qps": qps,
                             "speedup_vs_flat": qps / baseline})
    return pd.DataFrame(rows)


OURS = "this project's binary pipelines"  # the group library_standing sets against each library


def library_standing(points: pd.DataFrame, targets: Iterable[float] = (0.9, 0.95, 0.99)) -> pd.DataFrame:
    """At the largest size where the most libraries were measured (real data where measured there) and all
    threads: for each recall@10 target, the fastest configuration of each library and of :data:`OURS` (binary
    families answered by this project's kernel or rescoring), with queries/s, single-query p50 and index bytes
    per vector. A group that never reaches a target has no row for it."""
    libraries_at = points.groupby("n_vectors").library.nunique()
    largest = points[points.n_vectors == libraries_at[libraries_at == libraries_at.max()].index.max()]
    largest = largest[largest.data_kind == ("real" if (largest.data_kind == "real").any() else "synthetic")]
    largest = largest[largest.search_threads == largest.search_threads.max()]
    ours = largest.family.isin(BINARY_FAMILIES) & largest.library.str.contains("phase2")
    libraries = sorted(library for library in largest.library.unique() if "phase2" not in library)
    groups = [(OURS, largest[ours]), *((library, largest[largest.library == library]) for library in libraries)]
    rows = []
    for target in targets:
        for group, runs in groups:
            reached = runs[runs["recall@10"] >= target]
            if len(reached):
                best = reached.loc[reached.qps.idxmax()]
                rows.append({"target_recall@10": target, "group": group, "method": best.method,
                             "query_params": best.query_params, "recall@10": best["recall@10"], "qps": best.qps,
                             "p50_ms": best.p50_ms, "bytes_per_vector": best.bytes_per_vector,
                             "n_vectors": best.n_vectors, "data_kind": best.data_kind,
                             "search_threads": best.search_threads})
    return pd.DataFrame(rows)


def standing_sentence(standing: pd.DataFrame, targets: Iterable[float] = (0.9, 0.95, 0.99)) -> str:
    """Per recall target, this project's fastest binary pipeline against the fastest library configuration."""
    if standing.empty:
        return "No method reached any recall target."
    first = standing.iloc[0]
    lines = [f"At N = {first.n_vectors:,} ({first.data_kind}), {first.search_threads} thread(s):"]
    for target in targets:
        at = standing[standing["target_recall@10"] == target]
        ours, others = at[at.group == OURS], at[at.group != OURS]
        if others.empty and ours.empty:
            lines.append(f"- recall@10 >= {target}: no method reached it.")
            continue
        best = others.loc[others.qps.idxmax()] if len(others) else None
        text = f"- recall@10 >= {target}: "
        text += (f"the fastest library configuration was `{best.method}` ({best.group}) at {best.qps:,.0f} q/s, "
                 f"p50 {best.p50_ms:.2f} ms, {best.bytes_per_vector:,.0f} B/vector; " if best is not None else
                 "no library reached it; ")
        if ours.empty:
            text += "no binary pipeline of this project reached it."
        else:
            mine = ours.iloc[0]
            text += (f"this project's fastest binary pipeline, `{mine.method}`, {mine.qps:,.0f} q/s, p50 "
                     f"{mine.p50_ms:.2f} ms, {mine.bytes_per_vector:,.0f} B/vector"
                     + (f" ({mine.qps / best.qps:.2f}x the library's queries/s)." if best is not None else "."))
        lines.append(text)
    return "\n".join(lines)


def _largest(points: pd.DataFrame) -> pd.DataFrame:
    """The operating points at the largest size, on real data where it was measured there."""
    largest = points[points.n_vectors == points.n_vectors.max()]
    return largest[largest.data_kind == ("real" if (largest.data_kind == "real").any() else "synthetic")]


def latency_regimes(points: pd.DataFrame, targets: Iterable[float] = (0.9, 0.95, 0.99)) -> pd.DataFrame:
    """Both regimes at the largest size, per method and recall@10 target: batched queries/s (its fastest
    setting reaching the target, all threads) and single-query latency (its lowest p50 among the settings
    and thread counts reaching it, with that setting's p99), each as a multiple of float32 flat's best."""
    largest = _largest(points)
    most = largest.search_threads.max()
    flat = largest[largest.method == "flat"]
    if flat.empty:
        return pd.DataFrame()
    flat_qps = float(flat[flat.search_threads == most].qps.max())
    flat_p50 = float(flat.p50_ms.min())
    rows = []
    for method, runs in largest.groupby("method"):
        for target in targets:
            reached = runs[runs["recall@10"] >= target]
            if reached.empty:
                continue
            batch = reached[reached.search_threads == most]
            single = reached.loc[reached.p50_ms.idxmin()]
            qps = float(batch.qps.max()) if len(batch) else np.nan
            rows.append({"n_vectors": int(runs.n_vectors.iloc[0]), "data_kind": runs.data_kind.iloc[0],
                         "target_recall@10": target, "method": method, "family": runs.family.iloc[0],
                         "batch_qps": qps, "batch_vs_flat": qps / flat_qps,
                         "batch_setting": batch.loc[batch.qps.idxmax(), "query_params"] if len(batch) else "",
                         "p50_ms": single.p50_ms, "p99_ms": single.p99_ms, "single_vs_flat": flat_p50 / single.p50_ms,
                         "single_setting": f"{single.query_params or '{}'} at {single.search_threads} thread(s)",
                         "latency_queries": single.get("latency_queries", np.nan),
                         "bytes_per_vector": single.bytes_per_vector})
    return pd.DataFrame(rows)


def regimes_sentence(regimes: pd.DataFrame, target: float = 0.95, batch_goal: float = 4.0,
                     single_goal: float = 20.0) -> str:
    """The fastest binary pipeline at ``target`` in both regimes, against float32 flat and the stated goals
    (batch ``batch_goal`` x, single query ``single_goal`` x), with the bytes each reads per query."""
    at = regimes[(regimes["target_recall@10"] == target) & regimes.family.isin(BINARY_FAMILIES)]
    if regimes.empty or at.empty:
        return f"No binary pipeline reached recall@10 >= {target}."
    batch, single = at.loc[at.batch_qps.idxmax()], at.loc[at.single_vs_flat.idxmax()]
    verdict = [f"{'meets' if batch.batch_vs_flat >= batch_goal else 'misses'} the {batch_goal:g}x batch goal",
               f"{'meets' if single.single_vs_flat >= single_goal else 'misses'} the {single_goal:g}x single-query "
               "goal"]
    return (f"At N = {batch.n_vectors:,} ({batch.data_kind}), recall@10 >= {target}: batched, `{batch.method}` "
            f"{batch.batch_setting} answered {batch.batch_qps:,.0f} q/s, {batch.batch_vs_flat:.1f}x float32 flat; one "
            f"query at a time, `{single.method}` {single.single_setting} took p50 {single.p50_ms:.2f} ms (p99 "
            f"{single.p99_ms:.2f} ms), {single.single_vs_flat:.1f}x faster than flat's best p50. So this project's "
            f"binary pipeline {verdict[0]} and {verdict[1]}.")


def scaling_exponents(points: pd.DataFrame) -> pd.DataFrame:
    """Per method: the slope ``a`` of ``queries/s ∝ N^-a`` fitted by least squares on log-log axes through every
    measured size (its first query setting, one thread, one data kind: synthetic where it spans more sizes).
    A scan has ``a ≈ 1``; graphs and inverted lists less."""
    one = points[points.search_threads == 1]
    kind = one.groupby("data_kind").n_vectors.nunique().idxmax() if len(one) else "synthetic"
    one = one[one.data_kind == kind].sort_values("query_params")
    rows = []
    for method, runs in one.groupby("method"):
        first = runs[runs.query_params == runs.query_params.iloc[0]].sort_values("n_vectors")
        if first.n_vectors.nunique() < 2:
            continue
        slope = np.polyfit(np.log(first.n_vectors), np.log(first.qps), 1)[0]
        rows.append({"method": method, "family": runs.family.iloc[0], "query_params": first.query_params.iloc[0],
                     "sizes": ", ".join(f"{n:,}" for n in first.n_vectors), "exponent": -slope})
    return pd.DataFrame(rows).sort_values("exponent") if rows else pd.DataFrame(
        columns=["method", "family", "query_params", "sizes", "exponent"])


def disk_pipelines(points: pd.DataFrame) -> pd.DataFrame:
    """Each pipeline measured with its store on disk beside the same pipeline with the store in RAM, per
    setting, at the largest size and all threads: recall, q/s, p50/p99 and device reads per query."""
    largest = _largest(points)
    largest = largest[largest.search_threads == largest.search_threads.max()]
    disk = largest[largest.store_on_disk.astype(bool)]
    rows = []
    for _, point in disk.iterrows():
        twin = largest[(largest.method == point.method.replace("-disk", "")) &
                       (largest.query_params == point.query_params)]
        ram = twin.iloc[0] if len(twin) else None
        rows.append({"method": point.method, "query_params": point.query_params, "recall@10": point["recall@10"],
                     "reads/query": point.reads_per_query, "disk q/s": point.qps, "RAM q/s": ram.qps if ram is not None
                     else np.nan, "disk p50 ms": point.p50_ms, "disk p99 ms": point.p99_ms,
                     "RAM p50 ms": ram.p50_ms if ram is not None else np.nan,
                     "RAM bytes/vector": point.bytes_per_vector, "disk bytes/vector": point.store_bytes})
    return pd.DataFrame(rows)


def disk_sentence(probe: pd.DataFrame, on_disk: pd.DataFrame, target: float = 0.95) -> str:
    """The disk's measured read cost and the fastest on-disk setting reaching ``target`` recall@10 (the most
    accurate one if none does) against the same setting with its store in RAM."""
    if probe.empty or on_disk.empty:
        return "No re-ranking store was put on disk in this run."
    reached = on_disk[on_disk["recall@10"] >= target]
    best = (reached.loc[reached["disk q/s"].idxmax()] if len(reached) else
            on_disk.loc[on_disk["recall@10"].idxmax()])
    return (f"This disk answered a random 4 KiB direct read in {probe['p50 ms (1 in flight)'].iloc[0]:.3f} ms (p50, "
            f"one at a time; p99 {probe['p99 ms (1 in flight)'].iloc[0]:.3f} ms) and served "
            f"{probe[f'reads/s ({IO_THREADS} in flight)'].iloc[0]:,.0f} reads/s with {IO_THREADS} in flight. The "
            + (f"fastest on-disk setting reaching recall@10 {target}" if len(reached) else
               f"most accurate on-disk setting (none reached recall@10 {target})")
            + f", `{best.method}` {best.query_params}, read {best['reads/query']:,.0f} blocks per query asked "
            f"alone and answered {best['disk q/s']:,.0f} q/s (p50 {best['disk p50 ms']:.2f} ms) against "
            f"{best['RAM q/s']:,.0f} q/s (p50 {best['RAM p50 ms']:.2f} ms) with its store in RAM, at recall@10 "
            f"{best['recall@10']:.3f}, holding {best['RAM bytes/vector']:,.0f} B/vector in RAM.")


def synthetic_agreement(points: pd.DataFrame) -> pd.DataFrame:
    """Recall@10 of the same method and setting on real and on synthetic corpora of the same size (and, where
    measured, on ``extrapolated`` ones: a generator fitted to a small real subset), with the differences."""
    both = points[points.search_threads == points.search_threads.min()]
    pairs = both.pivot_table(index=["n_vectors", "method", "family", "query_params"], columns="data_kind",
                             values="recall@10").reset_index()
    pairs.columns.name = None
    if not {"real", "synthetic"} <= set(pairs.columns):
        return pd.DataFrame(columns=["n_vectors", "method", "family", "query_params", "real", "synthetic"])
    pairs = pairs.dropna(subset=["real", "synthetic"]).assign(difference=lambda p: p.synthetic - p.real)
    if EXTRAPOLATED in pairs:
        pairs = pairs.assign(extrapolated_difference=pairs[EXTRAPOLATED] - pairs.real)
    return pairs


def agreement_summary(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per size and generator: how far synthetic recall@10 lies from real, over the operating points on both."""
    columns = {"synthetic": "difference", EXTRAPOLATED: "extrapolated_difference"}
    rows = []
    for n, at in pairs.groupby("n_vectors"):
        for kind, column in columns.items():
            if column in at and at[column].notna().any():
                diff = at[column].dropna()
                worst = diff.abs().idxmax()
                rows.append({"n_vectors": n, "generator": kind, "points": len(diff), "mean |difference|":
                             diff.abs().mean(), "mean difference": diff.mean(), "largest |difference|":
                             diff.abs().max(), "largest at": f"{at.method[worst]} {at.query_params[worst]}".strip()})
    return pd.DataFrame(rows)


def agreement_sentence(summary: pd.DataFrame) -> str:
    """The synthetic-versus-real gap in words, per size and generator."""
    if summary.empty:
        return "No size was run on both real and synthetic data."
    fitted = {"synthetic": "fitted to the whole real corpus",
              EXTRAPOLATED: "fitted to a small real subset, then drawn at this size (as the large sizes are)"}
    return " ".join(
        f"At N = {row['n_vectors']:,}, the generator {fitted[row['generator']]} gave recall@10 within "
        f"{row['mean |difference|']:.3f} of real on average over {row['points']} operating points (signed "
        f"{row['mean difference']:+.3f}; largest {row['largest |difference|']:.3f}, `{row['largest at']}`)."
        for _, row in summary.iterrows())


def fastest_reaching(speed: pd.DataFrame, target: float, families: Iterable[str] | None = None) -> pd.Series | None:
    """The :func:`speedup_at_recall` row with the most queries/s at ``target`` (of ``families``), or None."""
    rows = speed[(speed["target_recall@10"] == target) & speed.qps.notna()]
    if families is not None:
        rows = rows[rows.family.isin(list(families))]
    return rows.loc[rows.qps.idxmax()] if len(rows) else None


def fastest_sentence(speed: pd.DataFrame, target: float) -> str:
    """Which method was fastest at a recall target, and how the fastest binary pipeline compares."""
    best = fastest_reaching(speed, target)
    binary = fastest_reaching(speed, target, BINARY_FAMILIES)
    if best is None:
        return "no method reached it."
    text = f"fastest was `{best.method}` at {best.qps:,.0f} q/s ({best.speedup_vs_flat:.1f}x float32 flat)"
    if binary is None:
        return text + "; no binary pipeline reached this recall."
    if binary.method == best.method:
        return text + ", a binary pipeline."
    return (text + f"; the fastest binary pipeline, `{binary.method}`, reached {binary.qps:,.0f} q/s "
                   f"({binary.qps / best.qps:.2f}x the fastest).")


KERNEL_GOALS = {"speedup at top-10": 3.0, "share of the roof at top-1000": 0.6}
"""What the scan is held to (the binary-scan issue): at least 3x faiss ``IndexBinaryFlat`` at top-10, and at
least 0.6 of its arithmetic roof (:func:`scan_roof`) as a first stage of 1,000 candidates."""


def kernel_sentence(kernels: pd.DataFrame) -> str:
    """:func:`kernel_table` at its largest N in one sentence, against :data:`KERNEL_GOALS`."""
    at_n = kernels[kernels.N == kernels.N.max()]
    top10, deep = at_n[at_n.k == at_n.k.min()], at_n[at_n.k == at_n.k.max()]
    speed, share = (KERNEL_GOALS[g] for g in ("speedup at top-10", "share of the roof at top-1000"))

    def meets(values: pd.Series, goal: str) -> str:
        short = int((values < float(goal.rstrip("x"))).sum())
        return f"meets the {goal} goal" if not short else f"misses the {goal} goal in {short} of {len(values)} settings"

    return (f"At N = {int(at_n.N.iloc[0]):,} random codes ({', '.join(map(str, sorted(at_n.bits.unique())))} bits, "
            f"{', '.join(map(str, sorted(at_n.threads.unique())))} threads; identical distances), this project's "
            f"Hamming scan ran at {at_n['ours simd'].iloc[0]} and faiss `IndexBinaryFlat` at "
            f"{at_n['faiss simd'].iloc[0]}. At top-{int(top10.k.iloc[0])} ours answered {top10.speedup.min():.2f}x to "
            f"{top10.speedup.max():.2f}x faiss's queries/s ({meets(top10.speedup, f'{speed:g}x')}); at "
            f"top-{int(deep.k.iloc[0]):,}, {deep.speedup.min():.2f}x to {deep.speedup.max():.2f}x, and "
            f"{deep['ours / roof'].min():.2f} to {deep['ours / roof'].max():.2f} of the scan's arithmetic roof "
            f"({deep['roof q/s'].min():,.0f} to {deep['roof q/s'].max():,.0f} queries/s: XOR, popcount and add on "
            f"cache-resident codes; {meets(deep['ours / roof'], f'{share:g}')}).")


def verdict(kernels: pd.DataFrame, points: pd.DataFrame, targets: Iterable[float] = (0.9, 0.95)) -> str:
    """The chapter's summary in numbers, computed from this run's tables."""
    lines = []
    if len(kernels):
        lines.append(f"- **Kernel.** {kernel_sentence(kernels)}")
    largest = points[points.n_vectors == points.n_vectors.max()]
    kind = "synthetic" if (largest.data_kind == "synthetic").all() else "real"
    largest = largest[largest.data_kind == kind]
    most = largest.search_threads.max()
    at = largest[largest.search_threads == most].set_index("method")
    n = int(largest.n_vectors.iloc[0])
    if {"flat", "bin-flat"} <= set(at.index):
        ratio = at.qps["bin-flat"] / at.qps["flat"]
        lines.append(
            f"- **Exhaustive search, N = {n:,} ({kind}), {most} thread(s).** 1-bit codes with our kernel answered "
            f"{ratio:.1f}x the queries/s of float32 flat search (faiss, BLAS), using "
            f"{at.bytes_per_vector['bin-flat'] / at.bytes_per_vector['flat'] * 100:.1f}% of its memory; but they "
            f"return only {at['recall@10']['bin-flat']:.2f} of the exact top 10.")
    speed = speedup_at_recall(largest[largest.search_threads == most], targets)
    lines.extend(f"- **Recall@10 >= {target}, N = {n:,}:** {fastest_sentence(speed, target)}" for target in targets)
    return "\n".join(lines)
