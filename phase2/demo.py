"""The demo: one collection, a handful of indexes, example queries and a comparison table.

Every index comes from the benchmark registry (:mod:`phase2.search.registry`), so the demo shows
the same methods the throughput chapter measures, on a collection small enough to answer in
seconds: float32 exhaustive search (the reference), int8 scalar quantization, 1-bit sign codes
with and without float32 rescoring, product quantization and HNSW.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm import tqdm

from phase2.data.datasets import Collection, load_dataset
from phase2.data.embeddings import embed
from phase2.errors import ParameterError
from phase2.evaluation import metrics
from phase2.experiments.timing import max_threads, median_seconds, threads
from phase2.search.methods import Method, recall_at_k
from phase2.search.registry import REGISTRY

DEMO_METHODS = {  # key: (label shown, registry name, index in the entry's build list, query arguments)
    "float32": ("float32 flat", "flat", 0, {}),
    "int8": ("int8 (SQ8) flat", "sq8", 0, {}),
    "binary": ("binary flat", "bin-flat", 0, {}),
    "binary+rescore": ("binary + float32 rescore of top 40", "bin-rescore-f32", 0, {"factor": 4}),
    "pq": ("PQ, d/8 bytes", "pq", 0, {}),
    "hnsw": ("HNSW32 float32, efSearch 64", "hnsw-flat", 0, {"efSearch": 64}),
}
REFERENCE = "float32"
K = 10


@dataclass
class DemoIndex:
    label: str
    method: Method
    build_s: float


def build_indexes(docs: np.ndarray, keys: list[str], progress: bool = True) -> list[DemoIndex]:
    indexes = []
    for key in tqdm(keys, desc="building indexes", disable=not progress):
        label, name, position, arguments = DEMO_METHODS[key]
        method = REGISTRY[name].build(*docs.shape)[position]
        start = time.perf_counter()
        method.fit(docs)
        build_s = time.perf_counter() - start
        method.set_query_arguments(**arguments)
        indexes.append(DemoIndex(label, method, build_s))
    return indexes


def compare(collection: Collection, docs: np.ndarray, queries: np.ndarray, indexes: list[DemoIndex],
            repeats: int = 3) -> pd.DataFrame:
    """Code and measured index bytes/vector (codebooks, graph and rescoring store included), nDCG@10 on
    the collection's judgements, recall@10 vs float32, queries/s, build time."""
    reference = indexes[0].method.query(queries, K)
    rows = []
    for index in indexes:
        seconds, found = median_seconds(lambda m=index.method: m.query(queries, K), repeats)
        run = metrics.ranked_doc_ids(found, collection.doc_ids, collection.query_ids)
        ndcg = metrics.mean(metrics.per_query(run, collection.qrels, ("nDCG@10",))["nDCG@10"])
        rows.append({"index": index.label, "code bytes/vector": index.method.code_bytes,
                     "index bytes/vector": index.method.index_bytes() / len(docs),
                     "nDCG@10": ndcg, "recall@10 vs float32": recall_at_k(found, reference).mean(),
                     "queries/s": len(queries) / seconds, "build s": index.build_s})
    return pd.DataFrame(rows)


def example_hits(collection: Collection, queries: np.ndarray, indexes: list[DemoIndex], examples: int,
                 hits: int = 3, width: int = 70) -> str:
    """The first ``examples`` queries with each index's top ``hits`` documents (relevant ones starred)."""
    lines = []
    for q in range(min(examples, len(queries))):
        judged = collection.qrels.get(collection.query_ids[q], {})
        lines.append(f"\nquery {collection.query_ids[q]}: {collection.query_texts[q][:width * 2]}")
        for index in indexes:
            lines.append(f"  {index.label}")
            for row in index.method.query(queries[q:q + 1], hits)[0]:
                mark = "*" if judged.get(collection.doc_ids[row], 0) > 0 else " "
                text = collection.doc_texts[row].replace("\n", " ")
                lines.append(f"    {mark} {collection.doc_ids[row]:>10}  {text[:width]}")
    lines.append("\n(* = judged relevant)")
    return "\n".join(lines)


def run_demo(dataset: str, model: str, examples: int = 3, keys: list[str] | None = None,
             thread_count: int | None = None, progress: bool = True) -> tuple[str, pd.DataFrame]:
    """Example hits and the comparison table; float32 flat always runs first as the reference."""
    keys = list(keys or DEMO_METHODS)
    unknown = [key for key in keys if key not in DEMO_METHODS]
    if unknown:
        raise ParameterError(f"unknown demo index {unknown}; valid: {', '.join(DEMO_METHODS)}")
    keys = [REFERENCE] + [key for key in dict.fromkeys(keys) if key != REFERENCE]
    collection = load_dataset(dataset)
    docs = embed(collection, model, "docs", progress=progress)
    queries = embed(collection, model, "queries", progress=progress)
    if len(docs) < 2 * K:
        raise ParameterError(f"{dataset} has {len(docs)} documents; the demo needs at least {2 * K}")
    with threads(thread_count or max_threads()):
        indexes = build_indexes(docs, keys, progress)
        table = compare(collection, docs, queries, indexes)
        hits = example_hits(collection, queries, indexes, examples)
    return hits, table
