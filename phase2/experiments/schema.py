"""One results schema: the run metadata every row carries, then the columns of its suite, each declared once here.

A results file holds one run of one chapter, one row per measured value. Its rows may come from several suites (a
throughput run measures methods, kernels, a disk probe and query encoding; a geometry run searches codecs and
computes diagnostics): the file's columns are :data:`RUN_COLUMNS` and then every column of those suites, in the
order declared, and a row leaves the columns of other suites empty. :func:`phase2.experiments.results.write_results`
checks a table against this before it writes; the spec page's table of columns is generated from it
(:func:`schema_table`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from phase2.evaluation import metrics

RUN_COLUMNS = {
    "run_id": "the run: UTC time and a random suffix; one results file per run",
    "created_utc": "when the run started",
    "git_commit": "the commit it ran at (`+dirty` with uncommitted edits outside the committed results)",
    "code": "digest of the code that computed it: the whole package, or for a throughput run the sources it times",
    "versions": "JSON: the versions of phase2, numpy, numba, faiss-cpu, torch, sentence-transformers, transformers",
    "cpu": "the CPU model",
    "machine": "JSON: CPU model, its SIMD features, the level the Hamming scan and faiss ran at, cores, memory, disk",
    "threads": "threads the run's numba, BLAS and faiss had",
    "seed": "the run's seed",
    "profile": "the profile it ran under (smoke, default, full)",
    "chapter": "the chapter that wrote it",
    "suite": "which of the suites below the row belongs to",
}
"""What identifies a run and the software and hardware it ran on: the first columns of every results file."""


@dataclass(frozen=True)
class Suite:
    """One kind of measurement: its ``name`` (the rows' ``suite``), what it measures and the columns it fills."""

    name: str
    description: str
    columns: dict[str, str]


SUITES = {suite.name: suite for suite in (
    Suite("searches", "one exhaustive search of a codec per collection and model, evaluated per query", {
        "dataset": "the collection",
        "model": "the embedding model",
        "codec": "the codec's factory name (`phase2.codecs`)",
        "codec_label": "the codec in words",
        "family": "float, scalar, product, binary, rabitq, rescored ...",
        "bytes_per_vector": "what every query scans (must stay in memory)",
        "rescore_bytes_per_vector": "read only for the rescored candidates (may live on disk); 0 for one stage",
        "fixed_bytes": "the trained state stored once (codebooks, rotations, ranges, means, as float32)",
        "n_vectors": "the documents searched",
        "metric": "one of " + ", ".join(metrics.REGISTRY) + " (`phase2.evaluation.metrics.REGISTRY`)",
        "value": "the metric's value",
        "query_id": "empty for the mean over queries, else the query",
        "query_cluster": "the queries the bootstrap draws together (same relevant documents); empty on means",
        "embeddings": "JSON per part: where the vectors came from (cache, encoder, or a verified store)",
    }),
    Suite("diagnostics", "the geometry chapter's embedding diagnostics, one value per collection and model", {
        "dataset": "the collection",
        "model": "the embedding model",
        "metric": "the diagnostic's name",
        "value": "its value",
    }),
    Suite("methods", "a search method built once and timed at each query setting and thread count", {
        "data_kind": "the corpus: real, synthetic (drawn from a model of the real corpus in `source`) or "
                     "extrapolated (the model fitted to a small subset)",
        "source": "the real collections the corpus comes from or was modelled on",
        "n_vectors": "the corpus's vectors",
        "dim": "their dimension",
        "method": "the method's registry name (`phase2.search.registry`)",
        "family": "float, scalar, product, binary, binary+rescore, graph, ivf ...",
        "library": "phase2, faiss, usearch, scann, rabitqlib, milvus",
        "build_params": "JSON: the build's parameters",
        "query_params": "JSON: the query setting",
        "deterministic": "whether its results are the same on every run",
        "search_threads": "threads the queries ran on",
        "code_bytes_per_vector": "the codes every query scans, per vector",
        "index_bytes": "the serialized index, graph and lists included",
        "disk_bytes": "what stays on disk",
        "store_bytes_per_vector": "the re-ranking store, per vector",
        "store_on_disk": "whether that store was read from disk",
        "metric": "recall@10, recall@10_se, qps (a batch), p50_ms, p99_ms, latency_queries (single queries), "
                  "build_s, build_reused, reads_per_query, disk_iops",
        "value": "the metric's value",
    }),
    Suite("kernels", "the exhaustive Hamming top-k on random codes: this project's kernel, faiss, the roof", {
        "data_kind": "`random codes`",
        "source": "how the codes were drawn",
        "n_vectors": "the codes scanned",
        "dim": "their width in bits",
        "method": "bin-flat (ours), bin-flat-faiss, scan roof (the most queries/s the arithmetic allows), "
                  "memory read",
        "family": "binary",
        "library": "phase2 or faiss",
        "build_params": "the SIMD level the library ran at",
        "query_params": "k=10 or k=1000",
        "search_threads": "threads",
        "code_bytes_per_vector": "bytes per code",
        "index_bytes": "the codes' bytes",
        "metric": "qps, scan_GBps, read_GBps",
        "value": "the metric's value",
    }),
    Suite("disk probe", "this disk's random 4 KiB direct reads, measured where a store was on disk", {
        "method": "random 4 KiB direct read",
        "search_threads": "reads in flight",
        "metric": "p50_ms, p99_ms, iops_qd1, iops (16 in flight)",
        "value": "the metric's value",
    }),
    Suite("query encoding", "each model's time to embed one query (batch size 1)", {
        "source": "the collections the queries were drawn from",
        "method": "the embedding model",
        "search_threads": "threads",
        "metric": "p50_ms, p99_ms, latency_queries",
        "value": "the metric's value",
    }),
)}
"""Every suite a results file may hold, by name."""


def columns(suites: tuple[str, ...]) -> list[str]:
    """The columns of a results file holding rows of ``suites``: the run's, then each suite's not yet listed."""
    found = dict.fromkeys(RUN_COLUMNS)
    for name in suites:
        found.update(dict.fromkeys(SUITES[name].columns))
    return list(found)


def check(table: pd.DataFrame, suites: tuple[str, ...]) -> list[str]:
    """The columns ``table`` is written with, once it is checked: every suite named is declared, every row's
    ``suite`` is one of them, and every column they declare is present. A ValueError says what is wrong."""
    unknown = [name for name in suites if name not in SUITES]
    if unknown:
        raise ValueError(f"unknown results suite(s) {unknown}; declared: {', '.join(SUITES)}")
    wanted = columns(suites)
    missing = [column for column in wanted if column not in table.columns]
    if missing:
        raise ValueError(f"results table lacks columns {missing} (suites {', '.join(suites)})")
    found = set(table["suite"].unique())
    if not found <= set(suites):
        raise ValueError(f"results rows of suite(s) {sorted(found - set(suites))}, expected {', '.join(suites)}")
    return wanted


INTEGER_COLUMNS = ("n_vectors", "dim")
"""Integer counts that a file stores as float when a suite that lacks them (the disk probe, query encoding) leaves
them empty on its rows: :func:`suite_rows` gives them back as integers."""


def suite_rows(table: pd.DataFrame, suite: str) -> pd.DataFrame:
    """The rows of one suite, its :data:`INTEGER_COLUMNS` as integers again (sizes print as ``1,000,000``)."""
    rows = table[table.suite == suite]
    return rows.astype({c: "int64" for c in INTEGER_COLUMNS if c in rows and rows[c].notna().all()})


def schema_table() -> str:
    """The schema as Markdown for the spec page: the run columns, then each suite with its columns."""
    lines = ["| column | what it holds |", "|---|---|", *(f"| `{c}` | {h} |" for c, h in RUN_COLUMNS.items())]
    for suite in SUITES.values():
        lines += ["", f"**Suite `{suite.name}`**: {suite.description}.", "", "| column | what it holds |",
                  "|---|---|", *(f"| `{c}` | {h} |" for c, h in suite.columns.items())]
    return "\n".join(lines) + "\n"
