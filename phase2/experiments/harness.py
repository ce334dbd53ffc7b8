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
from collections.abc import Iterable
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numba import njit, prange, types
from tqdm import tqdm

from phase2.data.datasets import load_dataset
from phase2.data.embeddings import query_encoder
from phase2.errors import ParameterError
from phase2.experiments import published, schema
from phase2.experiments.results import read_results, run_metadata, write_results
from phase2.experiments.synthetic import (
    EXTRAPOLATED,
    benchmark_corpus,
    fit_synthetic,
    pooled_embeddings,
    stratified_rows,
)
from phase2.experiments.timing import max_threads, median_seconds, seconds_each, single_query_seconds, threads
from phase2.kernels import LANES, SIMD_LEVEL, CodeBlocks, as_words, hamming_kernel, hamming_topk
from phase2.search import index_cache
from phase2.search.disk import IO_THREADS, random_read_probe
from phase2.search.methods import exact_topk, recall_at_k
from phase2.search.registry import REGISTRY
from phase2.storage import atomic_write_bytes, source_digest

CHAPTER = "throughput"
SUITES = ("methods", "kernels", "disk probe", "query encoding")
"""The suites a throughput run holds (:data:`phase2.experiments.schema.SUITES`): one row per measured value."""
COLUMNS = schema.columns(SUITES)
KERNEL_DATA = "random codes"  # data_kind of the kernel comparison's codes
BUILD_METRICS = ("build_s", "build_reused")  # measured once per built index, not per query setting
BINARY_FAMILIES = ("binary", "binary+rescore")  # the method families that count as binary in every verdict


def new_run(profile: str = "") -> dict:
    """Metadata shared by every row of one benchmark run (one run id, one results file)."""
    return {**run_metadata(profile, CHAPTER, seed=0), "code": code_digest()}


def check_methods(names: Iterable[str]) -> list[str]:
    names = list(names)
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ParameterError(f"unknown method(s) {unknown}; valid methods: {', '.join(REGISTRY)}")
    return names


_DISK_PROBES: dict[str, dict[str, float]] = {}  # run id -> this disk's random-read probe, measured once per run


def run_methods(corpus: np.ndarray, queries: np.ndarray, source: str, data_kind: str,
                methods: Iterable[str] | None = None, *,
                k: int = 10, repeats: int = 3, latency_queries: int = 100, latency_budget_s: float = 30.0,
                thread_counts: Iterable[int] | None = None, meta: dict | None = None, truth: np.ndarray | None = None,
                progress: bool = True) -> pd.DataFrame:
    """Build and measure each method's grid on one corpus; returns the tidy table (not written).

    Single-query latency uses ``latency_queries`` queries spread evenly over the batch (which is ordered by
    collection), each asked alone, for at most ``latency_budget_s`` per setting and thread count. ``truth`` is the
    queries' exact top-``k`` where the caller has it (computed here otherwise)."""
    names = check_methods(methods if methods is not None else REGISTRY)
    thread_counts = sorted(set(thread_counts or (1, max_threads())))
    meta = meta or new_run()
    n, d = corpus.shape
    if truth is None:
        with threads(max_threads()):
            truth = exact_topk(corpus, queries, k)
    rows = []
    digest = index_cache.corpus_digest(corpus)
    base = dict(meta, suite="methods", data_kind=data_kind, source=source, n_vectors=n, dim=d)
    probe = None
    single = queries[np.unique(np.linspace(0, len(queries) - 1, min(latency_queries, len(queries))).astype(int))]
    for name in tqdm(names, desc=f"methods on {source}", disable=not progress):
        entry = REGISTRY[name]
        if entry.not_run_at(n, d):  # a missing package or a size too large here: registry.not_measured says so
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
                rows += [dict(meta, suite="disk probe", method="random 4 KiB direct read", search_threads=IO_THREADS,
                              metric=metric, value=value) for metric, value in probe.items()]
            rows += [dict(common, query_params="", search_threads=max_threads(), metric=metric, value=value)
                     for metric, value in (("build_s", build_s), ("build_reused", float(reused)))]
            for arguments in entry.grid(n):
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
    return pd.DataFrame(rows, columns=COLUMNS)


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
    of every pair (no memory traffic, no selection); the fastest of ``repeats`` timings of every tile counts (a
    median moved by 40% between runs on the 2-core reference machine). Each timing covers 2^28 pairs. A scan of N
    codes can answer at most roof / N queries per second."""
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
            run()  # warm-up
            seconds = min(seconds_each(lambda _, run=run: run(), range(repeats), float("inf")))
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
        base = dict(meta, suite="kernels", data_kind=KERNEL_DATA, source="uniform random codes", n_vectors=n,
                    dim=width, code_bytes_per_vector=width / 8, index_bytes=database.nbytes, family="binary")
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
    return pd.DataFrame(rows, columns=COLUMNS)


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
        base = dict(meta, suite="query encoding", source="+".join(datasets), method=model,
                    search_threads=max_threads())
        rows += [dict(base, metric="p50_ms", value=1e3 * float(np.percentile(seconds, 50))),
                 dict(base, metric="p99_ms", value=1e3 * float(np.percentile(seconds, 99))),
                 dict(base, metric="latency_queries", value=float(len(seconds)))]
    return pd.DataFrame(rows, columns=COLUMNS)


def save(table: pd.DataFrame) -> Path:
    """Append one run's table to the results directory; returns the file written."""
    return write_results(table, SUITES)


SOURCES = ("__init__.py", "experiments/harness.py", "experiments/timing.py", "experiments/synthetic.py", "search",
           "kernels", "data/datasets.py", "data/embeddings.py")
"""The files whose code a throughput run measures (the package's ``__init__`` sets the OpenMP runtimes' spinning). A
run records their digest as its ``code``; a run of other versions of them is not current (edits elsewhere, to the
chapters' statistics say, leave timings current)."""


def code_digest() -> str:
    return source_digest(SOURCES)[:16]


def machine_line(record: str) -> str:
    """A run's ``machine`` JSON in words: ``AMD EPYC (AVX-512 with VPOPCNTDQ and VNNI), 2 cores, 23.5 GiB; OpenBLAS
    at SkylakeX; Hamming scan at avx512-vpopcntdq; int8 re-ranking at avx512-vnni`` (the OpenBLAS kernels and the
    levels where the run recorded them)."""
    found = json.loads(record) if record else {}
    if not found:
        return "an unrecorded machine"
    flags = set(found.get("simd", []))
    extras = " and ".join(name for flag, name in (("avx512_vpopcntdq", "VPOPCNTDQ"), ("avx512_vnni", "VNNI"))
                          if flag in flags)
    level = (("AVX-512 with " + extras if extras else "AVX-512") if "avx512f" in flags
             else "AVX2 only" if "avx2" in flags else "no AVX2")
    scan = f"; Hamming scan at {found['scan_simd']}" if found.get("scan_simd") else ""
    scan += f"; int8 re-ranking at {found['rescore_simd']}" if found.get("rescore_simd") else ""
    kernels = sorted({entry.rsplit(" ", 1)[-1] for entry in found["blas"].split(", ")}) if found.get("blas") else []
    blas = f"; OpenBLAS at {kernels[0]}" if len(kernels) == 1 else f"; OpenBLAS: {found['blas']}" if kernels else ""
    return f"{found['cpu']} ({level}), {found['cores']} cores, {found['memory_gib']} GiB{blas}{scan}"


def published_runs(profile: str) -> Path | None:
    """Where a profile's throughput run is published (``<published_dir>/throughput``); None for a profile without
    published results (:data:`phase2.experiments.published.PUBLISHED_PROFILES`), whose runs stay in the results
    directory."""
    return published.published_dir(profile) / CHAPTER if profile in published.PUBLISHED_PROFILES else None


def publish(table: pd.DataFrame, profile: str, parameters: dict) -> Path | None:
    """Make one run of ``profile`` its published throughput run, with the chapter ``parameters`` it answered in the
    parquet metadata; the run published before is removed (git keeps it). Returns the file written, or None for a
    profile without published results."""
    folder = published_runs(profile)
    if folder is None:
        return None
    path = write_table(table, folder / f"{table.run_id.iloc[0]}.parquet", parameters)
    for older in folder.glob("*.parquet"):
        if older != path:
            older.unlink()
    return path


def write_table(table: pd.DataFrame, path: Path, parameters: dict) -> Path:
    """Write rows of the harness's :data:`COLUMNS` to ``path`` (parquet, atomic), with the chapter ``parameters``
    they were measured with in its metadata (:func:`recorded_parameters`)."""
    arrow = pa.Table.from_pandas(table[COLUMNS].reset_index(drop=True), preserve_index=False)
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), published.META_KEY: json.dumps(
        {"parameters": parameters}, sort_keys=True).encode()})
    buf = pa.BufferOutputStream()
    pq.write_table(arrow, buf, compression="zstd")
    atomic_write_bytes(path, buf.getvalue().to_pybytes())
    return path


def recorded_parameters(path: Path) -> dict:
    """The chapter parameters a file of :func:`write_table` was measured with (empty where none are recorded)."""
    return json.loads((pq.read_schema(path).metadata or {}).get(published.META_KEY, b"{}")).get("parameters", {})


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
    if parameters is not None and recorded_parameters(files[-1]) != parameters:
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

