"""Retrieval metrics with trec_eval's definitions, per query.

A run is, per query, a ranked list of document ids (our ranking, ties already
broken). The definitions match trec_eval (``ndcg_cut``, ``recall``,
``recip_rank`` on the run cut at 10) with relevance level 1: gains are the
graded judgements (non-positive grades gain nothing), discount ``log2(rank + 1)``,
a document counts as relevant when its grade is >= 1. The tests check every
value against pytrec_eval, fed with scores that encode our ranks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from phase2.data.datasets import Collection

OVERLAP = "Overlap@10"  # the share of float32's top 10 a code also returns (:func:`overlap_at_k`)
TIE_AWARE = "nDCG@10 tie-aware"
TIED_AT_CUTOFF = "tied 10th/11th"
TIE_RUN_CUT = "tie run cut at depth"


@dataclass(frozen=True)
class Metric:
    """One per-query metric of a search: its ``name`` (a results column), what it measures, how it is computed
    (``kind`` at ``cutoff``: trec_eval's ``ndcg``, ``recall`` and ``rr``, or ``tie-aware``, ``tied``,
    ``tie-run-cut``, ``overlap``) and its direction (``higher_is_better``)."""

    name: str
    description: str
    kind: str
    cutoff: int
    higher_is_better: bool = True


REGISTRY = {metric.name: metric for metric in (
    Metric("nDCG@10", "normalized discounted cumulative gain of the top 10 against the graded judgements "
           "(pytrec_eval)", "ndcg", 10),
    Metric("Recall@10", "the share of a query's relevant documents found in the top 10", "recall", 10),
    Metric("Recall@100", "the share of a query's relevant documents found in the top 100", "recall", 100),
    Metric("MRR@10", "the reciprocal rank of the first relevant document in the top 10 (0 if none)", "rr", 10),
    Metric(TIE_AWARE, "nDCG@10 as the expectation over every order of documents tied in score (McSherry & Najork, "
           "2008)", "tie-aware", 10),
    Metric(TIED_AT_CUTOFF, "1 where the 10th and 11th results have the same score, else 0 (its mean: the share of "
           "such queries)", "tied", 10, higher_is_better=False),
    Metric(TIE_RUN_CUT, "1 where the run of ties at the 10th result reaches the last retrieved rank, else 0 (the run "
           "may go on beyond it; the tie-aware nDCG@10 then uses its visible part)", "tie-run-cut", 10,
           higher_is_better=False),
    Metric(OVERLAP, "the share of float32's top 10 that a codec also returns", "overlap", 10),
)}
"""Every per-query metric a search is evaluated on, in the order of tables and of a published search's columns;
the glossary's table of them is generated from it (:func:`metric_table`). A new trec_eval-style metric is one entry
here (``Metric("nDCG@5", ..., "ndcg", 5)``)."""
METRICS = {name: (metric.kind, metric.cutoff) for name, metric in REGISTRY.items()
           if metric.kind in ("ndcg", "recall", "rr")}
"""The trec_eval metrics of :data:`REGISTRY` (name -> (kind, cutoff)), computed by :func:`per_query`."""


def metric_table() -> str:
    """:data:`REGISTRY` as the glossary's Markdown table: each metric's name, what it measures, its direction."""
    rows = ["| name | meaning | better |", "| --- | --- | --- |"]
    rows += [f"| `{m.name}` | {m.description} | {'higher' if m.higher_is_better else 'lower'} |"
             for m in REGISTRY.values()]
    return "\n".join(rows) + "\n"


def ranked_doc_ids(ids: np.ndarray, doc_ids: list[str], query_ids: list[str]) -> dict[str, list[str]]:
    """Turn a ``[nq, k]`` matrix of corpus rows into ``{query id: [doc id, ...]}``."""
    return {qid: [doc_ids[j] for j in row] for qid, row in zip(query_ids, ids.tolist(), strict=True)}


def per_query(run: dict[str, list[str]], qrels: dict[str, dict[str, int]],
              metrics: tuple[str, ...] = tuple(METRICS)) -> dict[str, dict[str, float]]:
    """``{metric: {query id: value}}`` for every judged query (a query missing from the run scores 0)."""
    out: dict[str, dict[str, float]] = {m: {} for m in metrics}
    for qid, judged in qrels.items():
        ranking = run.get(qid, [])
        for m in metrics:
            kind, cutoff = METRICS[m]
            top = ranking[:cutoff]
            out[m][qid] = _ONE_QUERY[kind](top, judged, cutoff)
    return out


def per_query_arrays(ids: np.ndarray, doc_ids: list[str], query_ids: list[str], qrels: dict[str, dict[str, int]],
                     metrics: tuple[str, ...] = tuple(METRICS),
                     scores: np.ndarray | None = None) -> tuple[list[str], dict[str, np.ndarray]]:
    """:func:`per_query` of :func:`ranked_doc_ids` without building either: the judged query ids in ``qrels``
    order and, per metric, their values as an array, bit-identical to the dict path (same operations in the
    same order: the gains of each rank are looked up at once, then summed rank by rank). With the ranking's
    ``scores``, also :func:`tie_statistics`, from the same gains."""
    judged_ids, present, gains = _gains(ids, doc_ids, query_ids, qrels)
    relevant = np.array([sum(1 for g in qrels[q].values() if g >= 1) for q in judged_ids], dtype=np.int64)
    out = {}
    for m in metrics:
        kind, cutoff = METRICS[m]
        top = gains[:, :cutoff]
        if kind == "ndcg":
            dcg = np.zeros(len(judged_ids))
            for i in range(top.shape[1]):
                dcg = dcg + np.maximum(top[:, i], 0) / math.log2(i + 2)
            values = _normalized(dcg, [_ideal_dcg(qrels[q], cutoff) for q in judged_ids])
        elif kind == "recall":
            found = (top >= 1).sum(axis=1)
            values = np.where(relevant > 0, found / np.maximum(relevant, 1), 0.0)
        else:
            hit = top >= 1
            values = np.where(hit.any(axis=1), 1.0 / (hit.argmax(axis=1) + 1), 0.0)
        out[m] = np.where(present, values, 0.0)
    if scores is not None:
        out.update(_tie_values(judged_ids, present, gains, ids, scores, doc_ids, query_ids, qrels, 10))
    return judged_ids, out


def tie_statistics(ids: np.ndarray, scores: np.ndarray, doc_ids: list[str], query_ids: list[str],
                   qrels: dict[str, dict[str, int]], cutoff: int = 10) -> tuple[list[str], dict[str, np.ndarray]]:
    """Per judged query: nDCG@``cutoff`` as the expectation over all orderings of tied documents (McSherry &
    Najork, ECIR 2008: each rank in a run of equal scores gets the run's mean gain) and whether the
    ``cutoff``-th and next results tie (1.0) or not. A run of ties that reaches the last of the ``depth``
    ranks may go on beyond it; its visible part is used, and :data:`TIE_RUN_CUT` flags those queries."""
    judged_ids, present, gains = _gains(ids, doc_ids, query_ids, qrels)
    return judged_ids, _tie_values(judged_ids, present, gains, ids, scores, doc_ids, query_ids, qrels, cutoff)


def _tie_values(judged_ids, present, gains, ids, scores, doc_ids, query_ids, qrels, cutoff) -> dict[str, np.ndarray]:
    """:func:`tie_statistics` from gains already looked up (shared with :func:`per_query_arrays`)."""
    if scores.shape != ids.shape or ids.shape[1] <= cutoff:
        raise ValueError(f"tie statistics need [nq, > {cutoff}] ids and scores of one shape, got {ids.shape} and "
                         f"{scores.shape}")
    rows = np.array([{q: i for i, q in enumerate(query_ids)}.get(q, 0) for q in judged_ids], dtype=np.int64)
    s = scores[rows]
    nq, depth = s.shape
    run = np.concatenate([np.zeros((nq, 1), np.int64), np.cumsum(s[:, 1:] != s[:, :-1], axis=1)], axis=1)
    flat = (np.arange(nq)[:, None] * depth + run).ravel()
    sums = np.bincount(flat, weights=np.maximum(gains, 0).ravel().astype(np.float64), minlength=nq * depth)
    sizes = np.bincount(flat, minlength=nq * depth)
    mean_gain = (sums[flat] / sizes[flat]).reshape(nq, depth)
    dcg = (mean_gain[:, :cutoff] / np.log2(np.arange(2, cutoff + 2))).sum(axis=1)
    values = _normalized(dcg, [_ideal_dcg(qrels[q], cutoff) for q in judged_ids])
    tied = (s[:, cutoff - 1] == s[:, cutoff]).astype(np.float64)
    cut = (run[:, cutoff - 1] == run[:, -1]) & (len(doc_ids) > depth)
    return {TIE_AWARE: np.where(present, values, 0.0), TIED_AT_CUTOFF: np.where(present, tied, 0.0),
            TIE_RUN_CUT: np.where(present, cut, False).astype(np.float64)}


def _normalized(dcg: np.ndarray, ideal: list[float]) -> np.ndarray:
    idcg = np.array(ideal, dtype=np.float64)
    return np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1.0), 0.0)


def _gains(ids: np.ndarray, doc_ids: list[str], query_ids: list[str],
           qrels: dict[str, dict[str, int]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The judged query ids (``qrels`` order), which of them the run has, and the graded gain at each rank."""
    judged_ids = list(qrels)
    row_of_query = {q: i for i, q in enumerate(query_ids)}
    rows_of_doc: dict[str, list[int]] = {}
    for j, d in enumerate(doc_ids):
        rows_of_doc.setdefault(d, []).append(j)
    n_docs = len(doc_ids)
    present = np.array([q in row_of_query for q in judged_ids], dtype=bool)
    keys, grades = [], []
    for i, q in enumerate(judged_ids):
        for d, g in qrels[q].items():
            keys.extend(i * n_docs + j for j in rows_of_doc.get(d, ()))
            grades.extend(g for _ in rows_of_doc.get(d, ()))
    order = np.argsort(np.array(keys, dtype=np.int64), kind="stable")
    keys_sorted, grades_sorted = np.array(keys, dtype=np.int64)[order], np.array(grades, dtype=np.int64)[order]
    ranked = ids[[row_of_query.get(q, 0) for q in judged_ids]].astype(np.int64) % max(n_docs, 1)  # -1 is the last row
    wanted = np.arange(len(judged_ids), dtype=np.int64)[:, None] * n_docs + ranked
    at = np.minimum(np.searchsorted(keys_sorted, wanted), max(len(keys_sorted) - 1, 0))
    gains = np.where(keys_sorted[at] == wanted, grades_sorted[at], 0) if len(keys_sorted) else np.zeros_like(wanted)
    gains[~present] = 0
    return judged_ids, present, gains


def mean(values: dict[str, float]) -> float:
    return float(np.mean(list(values.values()))) if values else float("nan")


def _ndcg(top: list[str], judged: dict[str, int], cutoff: int) -> float:
    dcg = sum(max(judged.get(d, 0), 0) / math.log2(i + 2) for i, d in enumerate(top))
    idcg = _ideal_dcg(judged, cutoff)
    return dcg / idcg if idcg > 0 else 0.0


def _ideal_dcg(judged: dict[str, int], cutoff: int) -> float:
    ideal_gains = sorted((g for g in judged.values() if g > 0), reverse=True)[:cutoff]
    return sum(g / math.log2(i + 2) for i, g in enumerate(ideal_gains))


def _recall(top: list[str], judged: dict[str, int], cutoff: int) -> float:
    relevant = sum(1 for g in judged.values() if g >= 1)
    found = sum(1 for d in top if judged.get(d, 0) >= 1)
    return found / relevant if relevant else 0.0


def _reciprocal_rank(top: list[str], judged: dict[str, int], cutoff: int) -> float:
    for i, d in enumerate(top):
        if judged.get(d, 0) >= 1:
            return 1.0 / (i + 1)
    return 0.0


_ONE_QUERY = {"ndcg": _ndcg, "recall": _recall, "rr": _reciprocal_rank}


def overlap_at_k(ids: np.ndarray, reference_ids: np.ndarray, k: int) -> np.ndarray:
    """Per query, the fraction of the reference top-k (e.g. float32's) that ``ids`` also has in its top-k."""
    if ids.shape[0] != reference_ids.shape[0] or min(ids.shape[1], reference_ids.shape[1]) < k:
        raise ValueError(f"overlap@{k}: need [nq, >= {k}] id matrices for the same queries, "
                         f"got {ids.shape} and {reference_ids.shape}")
    a, b = ids[:, :k], reference_ids[:, :k]
    first = ~np.tril(a[:, :, None] == a[:, None, :], k=-1).any(axis=2)  # each id of a counted once, as in a set
    return ((a[:, :, None] == b[:, None, :]).any(axis=2) & first).sum(axis=1) / k


def evaluate(collection: Collection, ids: np.ndarray, scores: np.ndarray, reference_ids: np.ndarray) -> pd.DataFrame:
    """The evaluator: a search's run (its top-k corpus rows ``ids`` and their ``scores`` per query) and the
    collection's qrels as per-query rows, ``query_id`` (judged queries, qrels order) and every metric of
    :data:`REGISTRY`, Overlap@10 against the float32 search's ``reference_ids``."""
    judged, values = per_query_arrays(ids, collection.doc_ids, collection.query_ids, collection.qrels, scores=scores)
    overlap = dict(zip(collection.query_ids, overlap_at_k(ids, reference_ids, 10).tolist(), strict=True))
    table = pd.DataFrame({"query_id": judged, **{m: np.asarray(values[m], np.float64) for m in values}})
    table[OVERLAP] = np.array([overlap[q] for q in judged], np.float64)
    return table[["query_id", *REGISTRY]]
