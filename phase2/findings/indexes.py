"""Binary with an index: this project's binary inverted file against IVF-PQ and IVF-RaBitQ, all three re-ranked from
the same int8 store on the same grid, compared at equal recall and (nearly) equal memory."""

from __future__ import annotations

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
           "best recall@10", "qps vs faster other", "memory vs faster other"]


def inverted_files(points: pd.DataFrame, targets: Iterable[float] = (0.9, 0.95, 0.99)) -> pd.DataFrame:
    """At the largest size and all threads, per recall@10 target and inverted file of :data:`INVERTED_REFINED`: its
    fastest setting reaching the target (queries/s, p50, bytes per vector), its best recall over the grid, and
    for the binary one its queries/s and bytes as multiples of the faster of the other two at that target. A file
    that never reaches a target keeps a row with its best recall and no speed."""
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
                text += f": binary answers {mine['qps vs faster other']:.2f}x its queries/s"
        lines.append(text + ".")
    return "\n".join(lines + [goal_sentence(table)])


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
