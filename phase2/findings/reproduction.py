"""Reproduced throughput runs: a recomputed run set against the committed one as speed ratios to flat search
measured in the same run (the searches' half of ``results compare``, bit for bit, is
:func:`phase2.experiments.published.compare`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from phase2.findings.throughput import operating_points

TIMING_TOLERANCE = 0.25
"""How far a recomputed run's speed, as a ratio to flat search measured in the same run, may sit from the committed
run's (either way, as a factor 1.25) and still count as reproduced. Ratios cancel the machine's overall speed, not
its SIMD level: a run on a machine with another level (``machine``) is expected to move the binary scans."""


def compare_runs(recomputed: pd.DataFrame, committed: pd.DataFrame,
                 tolerance: float = TIMING_TOLERANCE) -> pd.DataFrame:
    """Two throughput runs side by side, per operating point both measured: the recall@10 of deterministic methods
    (must be equal), and q/s and p50 latency as ratios to flat search at the same corpus and threads in the same
    run, the recomputed ratio over the committed one (``quotient``) and whether it lies within ``tolerance``."""
    keys = ["data_kind", "n_vectors", "method", "query_params", "search_threads"]
    mine, theirs = operating_points(recomputed), operating_points(committed)
    rows = []
    for frame in (mine, theirs):
        flat = frame[frame.method == "flat"].set_index(["data_kind", "n_vectors", "search_threads"])
        at = pd.MultiIndex.from_frame(frame[["data_kind", "n_vectors", "search_threads"]])
        frame["qps / flat"] = frame.qps.to_numpy() / flat.qps.groupby(level=[0, 1, 2]).median().reindex(at).to_numpy()
        frame["p50 / flat"] = (frame.p50_ms.to_numpy()
                               / flat.p50_ms.groupby(level=[0, 1, 2]).median().reindex(at).to_numpy())
    both = mine.merge(theirs, on=keys, suffixes=(" recomputed", " committed"))
    for metric in ("qps / flat", "p50 / flat"):
        quotient = both[f"{metric} recomputed"] / both[f"{metric} committed"]
        rows.append(both[keys].assign(metric=metric, committed=both[f"{metric} committed"],
                                      recomputed=both[f"{metric} recomputed"], quotient=quotient,
                                      outcome=np.where((quotient <= 1 + tolerance) & (quotient >= 1 / (1 + tolerance)),
                                                       "within tolerance", "outside tolerance")))
    exact = both[both["deterministic committed"].astype(bool)]
    same = exact["recall@10 recomputed"].to_numpy() == exact["recall@10 committed"].to_numpy()
    rows.append(exact[keys].assign(metric="recall@10", committed=exact["recall@10 committed"],
                                   recomputed=exact["recall@10 recomputed"], quotient=np.nan,
                                   outcome=np.where(same, "identical", "differs")))
    return pd.concat(rows, ignore_index=True).dropna(subset=["committed", "recomputed"])
