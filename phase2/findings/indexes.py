"""Binary with an index: this project's binary inverted file against IVF-PQ and IVF-RaBitQ, all three re-ranked from
the same int8 store on the same grid, compared at equal recall and (nearly) equal memory."""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np
import pandas as pd

from phase2.findings.throughput import fastest_setting, largest_points

BINARY_INVERTED = "bin-ivf-scan-rescore-int8"
INVERTED_REFINED = (BINARY_INVERTED, "ivf-pq-rescore-int8", "ivf-rabitq-rescore-int8")
"""The registry names compared (``registry.ivf_refined`` gives their one grid)."""
GOAL = {"target": 0.95, "memory tolerance": 0.10}
"""The binary-scan issue's goal: at recall@10 0.95, binary IVF + int8 answers at least the queries/s of the faster
of IVF-PQ and IVF-RaBitQ with int8 refinement, at equal memory (within 10%)."""
COLUMNS = ["target_recall@10", "method", "query_params", "recall@10", "qps", "p50_ms", "bytes_per_vector",
           "best recall@10", "fewest candidates", "near miss", "near-miss recall@10", "near-miss qps",
           "qps vs faster other", "memory vs faster other"]
NEAR_MISS = 0.005
"""How far below a target a setting still counts as a near miss: where the loser's near miss outruns the winner, the
verdict at that target rests on the grid's step, and the sentence says so."""
K = 10
"""The depth of the compared recall (recall@10): a setting re-ranks ``factor * K`` candidates per query."""


def fewest_candidates(runs: pd.DataFrame, target: float) -> float:
    """The fewest candidates per query (``factor * K``) any setting of one file re-ranked to reach recall@10
    ``target``, whatever it probed (NaN where none did): how well its first stage ranks the true neighbours."""
    reached = runs[runs["recall@10"] >= target]
    factors = [json.loads(text or "{}").get("factor", 1) for text in reached.query_params]
    return float(K * min(factors)) if factors else np.nan


def near_miss(runs: pd.DataFrame, target: float) -> dict:
    """Of one file's settings short of ``target`` by less than :data:`NEAR_MISS`, the fastest (no settings and NaN
    where none is)."""
    best = fastest_setting(runs[runs["recall@10"] < target], target - NEAR_MISS)
    return {"near miss": best["query_params"], "near-miss recall@10": best["recall@10"], "near-miss qps": best["qps"]}


def inverted_files(points: pd.DataFrame, targets: Iterable[float] = (0.9, 0.95, 0.99)) -> pd.DataFrame:
    """At the largest size and all threads, per recall@10 target and inverted file of :data:`INVERTED_REFINED`: its
    fastest setting reaching the target (queries/s, p50, bytes per vector), its best recall over the grid, the
    fewest candidates any setting re-ranked to reach it (:func:`fewest_candidates`), and for the binary one its
    queries/s and bytes as multiples of the faster of the other two at that target. A file that never reaches a
    target keeps a row with its best recall and no speed."""
    largest = largest_points(points)
    at = largest[(largest.search_threads == largest.search_threads.max())
                 & largest.build_params.isin(INVERTED_REFINED)]
    rows = []
    for target in targets:
        group = []
        for name, runs in at.groupby("build_params", sort=False):
            best = fastest_setting(runs, target)
            group.append({"target_recall@10": target, "method": name, **best,
                          "bytes_per_vector": runs.bytes_per_vector.iloc[0], "best recall@10": runs["recall@10"].max(),
                          "fewest candidates": fewest_candidates(runs, target), **near_miss(runs, target),
                          "qps vs faster other": np.nan, "memory vs faster other": np.nan})
        others = [row for row in group if row["method"] != BINARY_INVERTED and not np.isnan(row["qps"])]
        if others:
            faster = max(others, key=lambda row: row["qps"])
            for row in group:
                if row["method"] == BINARY_INVERTED:
                    row["qps vs faster other"] = row["qps"] / faster["qps"]
                    row["memory vs faster other"] = row["bytes_per_vector"] / faster["bytes_per_vector"]
        rows += group
    return pd.DataFrame(rows, columns=COLUMNS)


def inverted_sentence(table: pd.DataFrame, points: pd.DataFrame) -> str:
    """Per target, binary IVF + int8 against the faster of the other two, the goal (:data:`GOAL`) checked, and
    for a target none reaches, each one's best recall beside int8 codes' own exhaustive recall (``sq8``), the
    ceiling a re-ranking by int8 scores approaches."""
    if table.empty or BINARY_INVERTED not in set(table.method):
        return "The inverted files re-ranked from int8 were not measured together in this run."
    largest = largest_points(points)
    lines = [f"At N = {int(largest.n_vectors.iloc[0]):,} ({largest.data_kind.iloc[0]}), "
             f"{int(largest.search_threads.max())} thread(s), the same grid for all three:"]
    for target, group in table.groupby("target_recall@10"):
        mine = group[group.method == BINARY_INVERTED].iloc[0]
        others = group[(group.method != BINARY_INVERTED) & group.qps.notna()]
        if np.isnan(mine.qps) and others.empty:
            sq8 = largest[largest.build_params == "sq8"]["recall@10"]
            ceiling = (f"; int8 codes alone, searched exhaustively (`sq8`), reached {sq8.max():.3f}, and a "
                       "re-ranking by int8 scores ranks as they do, so the int8 store, not the first stage, stops "
                       "these pipelines" if len(sq8) else "")
            best = ", ".join(f"`{row.method}` {row['best recall@10']:.3f}" for _, row in group.iterrows())
            lines.append(f"- recall@10 >= {target}: none reached it (best: {best}){ceiling}.")
            continue
        text = f"- recall@10 >= {target}: "
        text += (f"`{BINARY_INVERTED}` {mine.query_params} {mine.qps:,.0f} q/s at {mine.bytes_per_vector:,.0f} "
                 "B/vector" if not np.isnan(mine.qps) else
                 f"`{BINARY_INVERTED}` never reached it (best {mine['best recall@10']:.3f})")
        if len(others):
            faster = others.loc[others.qps.idxmax()]
            text += (f"; the faster of the others, `{faster.method}` {faster.query_params}, {faster.qps:,.0f} q/s at "
                     f"{faster.bytes_per_vector:,.0f} B/vector")
            if not np.isnan(mine.qps):
                text += (f": binary answers {mine['qps vs faster other']:.2f}x its queries/s. The fewest candidates "
                         f"re-ranked per query that reached it: binary {mine['fewest candidates']:,.0f}, "
                         f"`{faster.method}` {faster['fewest candidates']:,.0f}")
                text += _grid_step(mine, faster)
        lines.append(text + ".")
    return "\n".join(lines + [goal_sentence(table)])


def _grid_step(mine: pd.Series, faster: pd.Series) -> str:
    """A clause where the slower one's near miss (:func:`near_miss`) outruns the faster one at a target: the order
    there rests on the grid's step between two settings, not on a margin the grid resolves."""
    slower, winner = (mine, faster) if mine.qps < faster.qps else (faster, mine)
    if not slower["near-miss qps"] > winner.qps:
        return ""
    return (f". The order rests on the grid's steps: `{slower.method}` {slower['near miss']} reached "
            f"{slower['near-miss recall@10']:.3f}, within {NEAR_MISS} of the target, at {slower['near-miss qps']:,.0f} "
            f"q/s, more than `{winner.method}`'s {winner.qps:,.0f}, so a setting between two of the grid's might "
            "reverse the order")


def goal_sentence(table: pd.DataFrame) -> str:
    """Whether binary IVF + int8 meets :data:`GOAL` in this run."""
    at = table[(table["target_recall@10"] == GOAL["target"]) & (table.method == BINARY_INVERTED)]
    if at.empty or np.isnan(at["qps vs faster other"].iloc[0]):
        return f"The goal (at recall@10 {GOAL['target']}, at least the faster one's queries/s) cannot be judged here."
    speed, memory = at["qps vs faster other"].iloc[0], at["memory vs faster other"].iloc[0]
    equal = abs(memory - 1) <= GOAL["memory tolerance"]
    meets = speed >= 1 and equal
    return (f"At recall@10 {GOAL['target']}, binary IVF + int8 answered {speed:.2f}x the queries/s of the faster "
            f"of IVF-PQ and IVF-RaBitQ with int8 refinement, holding {memory:.2f}x its memory: it "
            f"{'meets' if meets else 'misses'} the goal (at least equal speed, memory within "
            f"{GOAL['memory tolerance']:.0%}).")
