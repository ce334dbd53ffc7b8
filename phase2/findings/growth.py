"""How the methods hold up as the corpus grows to the published 10^7 tasks
(:mod:`phase2.experiments.scale`): each one's fastest setting at a recall target per size, the exponent of its
queries/s against N fitted from 10^4 to 10^7, and the check of the advisor's extrapolation the largest size gives
(queries/s predicted there from the smaller sizes alone, against the measured)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import stats

from phase2.experiments.harness import machine_line
from phase2.findings.indexes import NEAR_MISS, near_miss
from phase2.findings.throughput import fastest_setting

EXPONENT_COLUMNS = ["method", "family", "target_recall@10", "sizes", "data", "exponent", "exponent_se", "largest N",
                    "measured q/s", "predicted q/s", "measured / predicted"]
AT_SIZE_COLUMNS = ["n_vectors", "target_recall@10", "method", "query_params", "recall@10", "qps", "x flat", "p50_ms",
                   "bytes_per_vector", "build_s", "best recall@10", "near miss", "near-miss recall@10",
                   "near-miss qps"]


def at_size(points: pd.DataFrame, targets: Iterable[float] = (0.9, 0.95, 0.99)) -> pd.DataFrame:
    """At the largest size of ``points`` and all threads, per recall@10 target and method (registry name): its
    fastest setting reaching the target (queries/s, p50, bytes per vector, build seconds), its queries/s as a
    multiple of ``flat``'s and its fastest near miss (:func:`phase2.findings.indexes.near_miss`); a method that
    never reaches a target keeps a row with its best recall and no speed."""
    if points.empty:
        return pd.DataFrame(columns=AT_SIZE_COLUMNS)
    at = points[(points.n_vectors == points.n_vectors.max()) & (points.search_threads == points.search_threads.max())]
    flat = at[at.build_params == "flat"].qps
    rows = []
    for target in targets:
        for name, runs in at.groupby("build_params", sort=False):
            best = fastest_setting(runs, target)
            rows.append({"n_vectors": int(runs.n_vectors.iloc[0]), "target_recall@10": target, "method": name, **best,
                         "x flat": best["qps"] / flat.iloc[0] if len(flat) else np.nan,
                         "bytes_per_vector": runs.bytes_per_vector.iloc[0], "build_s": runs.build_s.iloc[0],
                         "best recall@10": runs["recall@10"].max(), **near_miss(runs, target)})
    return pd.DataFrame(rows, columns=AT_SIZE_COLUMNS)


def fastest_per_size(points: pd.DataFrame, target: float) -> pd.DataFrame:
    """Per method (registry name) and size, at all threads: the most queries/s of a setting reaching ``target``,
    on the synthetic corpus where the size has one and the real one otherwise (never the extrapolation check)."""
    at = points[points.search_threads == points.search_threads.max()]
    at = at[at.data_kind.isin(["synthetic", "real"]) & (at["recall@10"] >= target)]
    at = at.assign(synthetic_first=at.data_kind != "synthetic").sort_values(["synthetic_first", "qps"],
                                                                             ascending=[True, False])
    return (at.groupby(["build_params", "n_vectors"], as_index=False).first()
            [["build_params", "family", "n_vectors", "data_kind", "qps"]])


def exponents(points: pd.DataFrame, target: float = 0.9, min_sizes: int = 3) -> pd.DataFrame:
    """Per method measured at ``min_sizes`` sizes or more reaching ``target``: the exponent ``a`` of
    ``queries/s ∝ N^-a`` (least squares on log-log axes, :func:`scipy.stats.linregress`, with its standard error),
    and the queries/s at the largest size as predicted by the same fit over the smaller sizes alone (what the advisor
    does beyond its measurements), beside the measured."""
    best = fastest_per_size(points, target)
    rows = []
    for name, runs in best.groupby("build_params"):
        runs = runs.sort_values("n_vectors")
        if len(runs) < min_sizes:
            continue
        logs_n, logs_q = np.log10(runs.n_vectors.to_numpy(float)), np.log10(runs.qps.to_numpy(float))
        fit = stats.linregress(logs_n, logs_q)
        before = stats.linregress(logs_n[:-1], logs_q[:-1]) if len(runs) > 2 else None
        predicted = 10 ** (before.intercept + before.slope * logs_n[-1]) if before is not None else np.nan
        kinds = runs.groupby("data_kind", sort=False).n_vectors.agg(["min", "max"])
        rows.append({"method": name, "family": runs.family.iloc[0], "target_recall@10": target,
                     "sizes": ", ".join(f"{n:,}" for n in runs.n_vectors),
                     "data": "; ".join(f"{kind} {lo:,}-{hi:,}" if lo != hi else f"{kind} {lo:,}"
                                       for kind, (lo, hi) in kinds.iterrows()),
                     "exponent": -fit.slope, "exponent_se": fit.stderr, "largest N": int(runs.n_vectors.iloc[-1]),
                     "measured q/s": runs.qps.iloc[-1], "predicted q/s": predicted,
                     "measured / predicted": runs.qps.iloc[-1] / predicted})
    return pd.DataFrame(rows, columns=EXPONENT_COLUMNS).sort_values("exponent", ignore_index=True)


def machines(*tables: pd.DataFrame) -> list[str]:
    """The machines (in words) that measured the rows of ``tables``: one entry means their ratios compare."""
    return sorted({machine_line(record) for table in tables if len(table) for record in table.machine.unique()})


def machines_sentence(run_machine: str, task_machines: list[str], run_created: str = "",
                      tasks: pd.DataFrame | None = None) -> str:
    """Whether the chapter's run and the published tasks were measured on one kind of machine: the exponents join
    the sizes of both ("" before any task is measured). With the run's ``created_utc`` and the tasks' rows, also
    when each was measured: one kind of machine is not one host."""
    if not task_machines:
        return ""
    if task_machines == [run_machine]:
        when = ""
        if run_created and tasks is not None and len(tasks):
            first, last = (stamp[:16].replace("T", " ") for stamp in (tasks.created_utc.min(), tasks.created_utc.max()))
            when = (f", the tasks from {first} to {last} UTC and the run at {run_created[:16].replace('T', ' ')} UTC: "
                    "one kind is not one host, so a ratio across the two (an exponent joining their sizes) also "
                    "carries any difference between the hosts, as does a ratio between tasks measured apart")
        return f"The tasks and this chapter's run were measured on one kind of machine ({run_machine}){when}."
    return (f"The tasks were measured on {'; '.join(task_machines)}, this chapter's run on {run_machine}: the "
            "exponents join sizes measured on different machines and are indicative only.")


def pending(status: pd.DataFrame) -> list[str]:
    """The methods planned at the largest size whose task is not current (missing, or measured by other code or for
    other parameters), leaving out those the plan marks as not run there: what the size's sentence does not yet
    rest on."""
    largest = status[status.n_vectors == status.n_vectors.max()]
    return list(largest.method[(largest.state != "current") & (largest["not run here"] == "")])


def growth_sentence(table: pd.DataFrame, fitted: pd.DataFrame, measured_on: list[str], target: float = 0.95,
                    waiting: Iterable[str] = ()) -> str:
    """At the largest size: the fastest method reaching ``target``, the fastest binary pipeline beside it and flat,
    the methods that never reached it, and how far the smaller sizes' fit missed the measured queries/s there;
    ``waiting`` names the planned tasks (:func:`pending`) it does not yet rest on."""
    waiting = list(waiting)
    if table.empty:
        return "No task at this size has been measured yet."
    if waiting:
        text = growth_sentence(table, fitted, measured_on, target)
        return (f"On the current tasks alone ({', '.join(f'`{name}`' for name in waiting)} still to be measured by the "
                f"present code): {text[0].lower()}{text[1:]}")
    if len(measured_on) > 1:
        return (f"These tasks were measured on {len(measured_on)} different machines ({'; '.join(measured_on)}): "
                "their speeds are not set against each other here. Measure them again on one machine.")
    rows = table[(table["target_recall@10"] == target) & table.qps.notna()]
    if rows.empty:
        return f"No measured method reached recall@10 {target} at this size."
    best = rows.loc[rows.qps.idxmax()]
    binary = rows[rows.method.str.startswith("bin-")]
    text = (f"At recall@10 ≥ {target}, the fastest was `{best.method}` at {best.qps:,.0f} q/s"
            + (f" ({best['x flat']:.0f}x flat)" if np.isfinite(best["x flat"]) else " (flat not measured)"))
    if len(binary) and binary.qps.max() < best.qps:
        other = binary.loc[binary.qps.idxmax()]
        text += (f"; the fastest binary pipeline, `{other.method}`, answered {other.qps:,.0f} "
                 f"({other.qps / best.qps:.2f}x)")
        at_target = table[(table["target_recall@10"] == target) & table.method.str.startswith("bin-")]
        close = at_target[at_target["near-miss qps"] > best.qps]
        if len(close):
            near = close.loc[close["near-miss qps"].idxmax()]
            text += (f", but `{near.method}` {near['near miss']} reached {near['near-miss recall@10']:.3f}, within "
                     f"{NEAR_MISS} of the target, at {near['near-miss qps']:,.0f} q/s, more than the fastest: the "
                     "order rests on the grid's steps")
    elif binary.empty:
        text += "; no binary pipeline reached it"
    text += "."
    missed = table[(table["target_recall@10"] == target) & table.qps.isna()].sort_values("best recall@10")
    if len(missed):
        text += (" Within their grids, " + ", ".join(f"`{row.method}` (best {row['best recall@10']:.3f})"
                                                   for _, row in missed.iterrows()) + " never reached it here.")
    checked = fitted[fitted["measured / predicted"].notna() & (fitted["largest N"] == table.n_vectors.iloc[0])]
    if len(checked):
        ratios = checked["measured / predicted"]
        text += (f" Fitted on the smaller sizes alone (the advisor's extrapolation), the queries/s of "
                 f"{len(checked)} methods at recall@10 ≥ {checked['target_recall@10'].iloc[0]} here were measured at "
                 f"{ratios.min():.2f} to {ratios.max():.2f} times the prediction.")
    return text
