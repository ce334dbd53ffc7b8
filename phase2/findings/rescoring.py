"""Two-stage pipelines: from a chapter's summaries, a first-stage code's candidates re-ranked by a second store, each
pipeline's share of float32 against the number of candidates, and the bytes it keeps in RAM and on disk; from a
throughput run, what rounding the query to int8 costs and saves in the int8 second stage."""

from __future__ import annotations

import json
import re

import pandas as pd

from phase2.evaluation import decisions
from phase2.findings.throughput import largest_points

INT8_QUERY, FLOAT_QUERY = "bin-rescore-int8", "bin-rescore-int8-float-query"
"""The exhaustive binary scan re-ranked from int8 codes with the query rounded to int8 (integer sums) and kept in
float32: the same candidates, so they differ only in the second stage's score."""


def rescoring_table(summaries: pd.DataFrame, k: int = 10) -> pd.DataFrame:
    """One row per pipeline: first stage, rescoring codes, factor, quality, and the bytes it needs.

    *RAM bytes/vector* is what every query scans; *disk bytes/vector* the rescoring codes, read only
    for the ``factor * k`` candidates of each query (*bytes read per query*). A factor of 0 is the
    first stage alone.
    """
    pattern = re.compile(r"(\w+)\+R(\d+)(\w+)")
    rows = []
    for row in summaries.to_dict("records"):
        match = pattern.fullmatch(row["name"])
        first, factor, second = (match[1], int(match[2]), match[3]) if match else (row["name"], 0, "")
        rows.append({"dataset": row["dataset"], "model": row["model"], "first stage": first, "rescored with": second,
                     "factor": factor, "candidates": factor * k,
                     **{c: row[c] for c in ("nDCG@10", "Recall@10", "% float32 nDCG@10", "Δ nDCG@10", "Δ low",
                                            "Δ high", "Δ se")},
                     "RAM bytes/vector": row["bytes/vector"], "disk bytes/vector": row["rescore bytes/vector"],
                     "bytes read per query": factor * k * row["rescore bytes/vector"]})
    return pd.DataFrame(rows)


def rescoring_curves(table: pd.DataFrame) -> pd.DataFrame:
    """The rescored rows of :func:`rescoring_table`, each pipeline starting with its first stage alone
    (factor 0), with a ``pipeline`` label: one curve per (dataset, model, pipeline)."""
    rescored = table[table.factor > 0]
    starts = rescored[["dataset", "model", "first stage", "rescored with"]].drop_duplicates().merge(
        table[table.factor == 0].drop(columns="rescored with"), on=["dataset", "model", "first stage"])
    curves = pd.concat([starts, rescored], ignore_index=True)
    curves = curves.assign(pipeline=curves["first stage"] + " + " + curves["rescored with"])
    return curves.sort_values(["dataset", "model", "pipeline", "factor"], kind="stable", ignore_index=True)


def rescoring_verdict(table: pd.DataFrame) -> str:
    """Per pipeline, the smallest factor whose nDCG@10 is equivalent to float32's, per dataset and model, by the
    book's one rule (:func:`phase2.evaluation.decisions.decide`): every rescored row of the table is one comparison with
    float32, their intervals simultaneous over all of them, equivalent when inside ±
    :data:`~phase2.evaluation.decisions.MARGIN_SHARE` of float32's nDCG@10."""
    rescored = table[table.factor > 0]
    if rescored.empty:
        return ""
    decided = decisions.decide(pd.DataFrame({
        "mean": rescored["Δ nDCG@10"].to_numpy(), "se": rescored["Δ se"].to_numpy(),
        "margin": (decisions.MARGIN_SHARE * rescored["nDCG@10"] * 100 / rescored["% float32 nDCG@10"]).to_numpy()}))
    rescored = rescored.assign(low=decided.low.to_numpy(), high=decided.high.to_numpy(),
                               outcome=decided.outcome.to_numpy())
    lines = [f"Intervals simultaneous at {decisions.level_label(decided.level.iloc[0])} over the {len(decided)} "
             f"rescored rows; equivalent: inside ±{100 * decisions.MARGIN_SHARE:g}% of float32's nDCG@10."]
    for (first, second), g in rescored.groupby(["first stage", "rescored with"], sort=False):
        parts = []
        for (dataset, model), h in g.groupby(["dataset", "model"], sort=False):
            alone = table[(table.dataset == dataset) & (table.model == model) & (table["first stage"] == first)
                          & (table.factor == 0)]["% float32 nDCG@10"]
            enough = h[h.outcome == "equivalent"].sort_values("factor")
            first_enough = enough.iloc[0] if len(enough) else None
            reached = (f"equivalent to float32 from factor {int(first_enough.factor)} "
                       f"({int(first_enough.candidates)} candidates, {first_enough['% float32 nDCG@10']:.1f}%, "
                       f"Δ nDCG@10 [{first_enough.low:+.3f}, {first_enough.high:+.3f}])"
                       if first_enough is not None else
                       f"not shown equivalent to float32 at any factor (best {h['% float32 nDCG@10'].max():.1f}%)")
            start = f"{alone.iloc[0]:.1f}% alone, " if len(alone) else ""
            parts.append(f"{dataset}/{model}: {start}{reached}")
        lines.append(f"- {first} rescored with {second}: " + "; ".join(parts) + ".")
    return "\n".join(lines)


def query_rounding(points: pd.DataFrame) -> pd.DataFrame:
    """Per factor, at the largest size and all threads: recall@10 and queries/s of the int8 second stage with the
    query rounded to int8 and kept in float32 (:data:`INT8_QUERY`, :data:`FLOAT_QUERY`), their difference and ratio.
    Empty where the run measured only one of them."""
    largest = largest_points(points)
    largest = largest[largest.search_threads == largest.search_threads.max()]
    both = largest[largest.method == INT8_QUERY].merge(largest[largest.method == FLOAT_QUERY],
                                                       on=["n_vectors", "query_params"], suffixes=(" int8", " float"))
    table = pd.DataFrame({
        "n_vectors": both.n_vectors, "factor": [json.loads(p or "{}").get("factor", 1) for p in both.query_params],
        "recall@10 int8 query": both["recall@10 int8"], "recall@10 float query": both["recall@10 float"],
        "recall@10 change": both["recall@10 int8"] - both["recall@10 float"],
        "qps int8 query": both["qps int8"], "qps float query": both["qps float"],
        "speed-up": both["qps int8"] / both["qps float"]})
    return table.sort_values("factor", ignore_index=True)


def query_rounding_sentence(table: pd.DataFrame) -> str:
    """What rounding the query to int8 did, in one sentence from :func:`query_rounding` (empty without rows)."""
    if table.empty:
        return ""
    change, speed = table["recall@10 change"], table["speed-up"]
    deepest = table.iloc[-1]
    return (f"At {int(table.n_vectors.iloc[0]):,} vectors, rounding the query to int8 changed recall@10 by "
            f"{change.min():+.4f} to {change.max():+.4f} over factors {int(table.factor.min())} to "
            f"{int(table.factor.max())}, and answered {speed.min():.2f}x to {speed.max():.2f}x the queries/s of the "
            f"float query on the same codes and candidates ({deepest['speed-up']:.2f}x at {int(deepest.factor * 10):,} "
            f"candidates, where re-ranking weighs most). The book's int8 second stage (every `-rescore-int8` "
            f"pipeline) rounds the query; `{FLOAT_QUERY}` keeps it in float32.")
