"""Which scheme for N documents, a RAM budget and a recall target? Answered from measurements only.

The evidence is the throughput chapter's operating points (``throughput.operating_points``): each
method with its build and query settings, measured at corpus sizes n, with recall@10 against exact
float32 search (and its standard error over queries), queries/s and the bytes its index holds; and the
published 10^7 tasks (:mod:`phase2.experiments.scale`) measured on the run's kind of machine, which take
their methods one size further than the run. Scaling them to N documents:

- **memory** grows linearly: bytes/vector measured at the method's largest n, times N (codes, graph links, ids
  and a rescoring store all grow with N; fixed parts such as IVF centroids are amortised);
- **queries/s** follow a power law through the two nearest measured sizes, ``qps ∝ n^-a`` (a ≈ 1 for a
  scan, smaller for graphs and inverted lists);
- **recall** is the value at the nearest measured size. Recall of indexes and of compressed codes
  usually falls as N grows, so beyond the measured range it is an optimistic estimate.

Every answer says which of these were extrapolated and by how much; ``strict`` refuses instead.
A point meets the recall target only if its lower 95% bound (recall - 1.96 standard errors) does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from phase2.errors import ParameterError, Phase2Error
from phase2.experiments import harness, scale, schema
from phase2.findings import throughput

_UNITS = {"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
          "KIB": 2 ** 10, "MIB": 2 ** 20, "GIB": 2 ** 30, "TIB": 2 ** 40}
Z95 = 1.96


def parse_bytes(text: str) -> float:
    """``"4GB"`` (decimal), ``"4GiB"`` (binary), ``"512 MB"``, ``"1e9"`` -> bytes."""
    match = re.fullmatch(r"\s*([0-9][0-9_]*(?:\.[0-9]+)?(?:e[0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = match and match[2].upper()
    if not match or unit not in _UNITS:
        units = ", ".join(u for u in _UNITS if u)
        raise ParameterError(f"memory: expected a size such as 4GB, 512MiB or 1e9 (units {units}), got {text!r}")
    value = float(match[1].replace("_", "")) * _UNITS[unit]
    if value <= 0:
        raise ParameterError(f"memory: must be positive, got {text!r}")
    return value


@dataclass(frozen=True)
class Question:
    """``docs`` documents in at most ``memory_bytes`` of RAM, recall@10 at least ``target_recall``
    (against exact float32 search), at least ``min_qps`` queries/s with ``threads`` search threads."""

    docs: int
    memory_bytes: float
    target_recall: float
    min_qps: float = 0.0
    threads: int | None = None
    rescore_on_disk: bool = False

    def __post_init__(self):
        if self.docs < 1:
            raise ParameterError(f"docs: must be at least 1, got {self.docs}")
        if not 0 < self.target_recall <= 1:
            raise ParameterError(f"target recall: must be in (0, 1], got {self.target_recall}")
        if self.min_qps < 0:
            raise ParameterError(f"min qps: must be >= 0, got {self.min_qps}")


def series_name(method: str) -> str:
    """A method's name without the sizes chosen per corpus size (``nlist``), so one name spans all n."""
    name = re.sub(r"nlist=\d+,?", "", method)
    return name.replace(",)", ")").replace("()", "")


def scaling_table(points: pd.DataFrame) -> pd.DataFrame:
    """Operating points of the corpus kind measured at the most sizes (synthetic, usually), with a
    ``series`` name shared across sizes and the RAM/disk split of a rescoring store."""
    sizes = points.groupby("data_kind").n_vectors.nunique()
    kind = sizes.idxmax()
    out = points[points.data_kind == kind].copy()
    out["series"] = out.method.map(series_name)
    out["store_bytes_per_vector"] = out.store_bytes
    for column, missing in (("recall@10_se", np.nan), ("store_on_disk", False), ("reads_per_query", np.nan),
                            ("disk_iops", np.nan)):
        if column not in out:
            out[column] = missing
    out["store_on_disk"] = out.store_on_disk.fillna(False).astype(bool)
    return out


def estimate(points: pd.DataFrame, question: Question) -> pd.DataFrame:
    """Every operating point scaled to ``question.docs``: RAM, disk, recall (with its lower bound) and
    queries/s, whether it meets each constraint, and how far it was extrapolated. Where a series was measured at
    ``question.docs`` itself, its settings measured there stand for it: a setting of its grid at other sizes only
    (an inverted file's grid probes the same share of its lists, so its ``nprobe`` values move with N) is not
    carried to a size where the series has measurements of its own."""
    table = scaling_table(points)
    threads = question.threads or int(table.search_threads.max())
    if threads not in set(table.search_threads):
        raise ParameterError(f"threads: measured with {sorted(set(table.search_threads))} search thread(s), "
                             f"not {threads}")
    table = table[table.search_threads == threads]
    here = set(table.series[table.n_vectors == question.docs])
    setting_here = table.n_vectors.eq(question.docs).groupby([table.series, table.query_params]).transform("any")
    table = table[~table.series.isin(here) | setting_here]
    rows = []
    for (series, query_params), runs in table.groupby(["series", "query_params"], sort=False):
        runs = runs.sort_values("n_vectors")
        measured = runs.n_vectors.to_numpy(dtype=float)
        nearest = runs.iloc[int(np.argmin(np.abs(np.log(measured / question.docs))))]
        largest = runs.iloc[-1]
        on_disk = bool(largest.store_on_disk)
        if on_disk and not question.rescore_on_disk:
            continue  # a store on disk is the asker's choice
        qps, exponent = _power_law_qps(measured, runs.qps.to_numpy(dtype=float), question.docs,
                                       is_scan(largest.build_params))
        disk_bound = on_disk and qps * nearest.reads_per_query > nearest.disk_iops
        if disk_bound:  # the device cannot serve more reads per second than the run's probe measured
            qps = float(nearest.disk_iops / nearest.reads_per_query)
        ram = largest.bytes_per_vector * question.docs  # measured in RAM: an on-disk store is not in it
        se = nearest["recall@10_se"]
        low = nearest["recall@10"] - Z95 * se if np.isfinite(se) else nearest["recall@10"]
        rows.append({
            "series": series, "family": largest.family, "library": largest.library, "query_params": query_params,
            "RAM GB": ram / 1e9, "disk GB": largest.store_bytes_per_vector * question.docs / 1e9 if on_disk else 0.0,
            "bytes/vector": ram / question.docs, "recall@10": nearest["recall@10"], "recall low": low,
            "qps": qps, "qps exponent": exponent, "measured n": ", ".join(f"{int(n):,}" for n in measured),
            "recall from n": int(nearest.n_vectors), "extrapolation": question.docs / measured.max(),
            "basis": basis(measured, question.docs),
            "fits memory": ram <= question.memory_bytes, "meets recall": low >= question.target_recall,
            "meets qps": qps >= question.min_qps, "threads": threads,
            "disk reads/query": nearest.reads_per_query if on_disk else 0.0, "disk-bound": disk_bound,
        })
    out = pd.DataFrame(rows)
    out["feasible"] = out["fits memory"] & out["meets recall"] & out["meets qps"]
    return out.sort_values(["feasible", "qps"], ascending=[False, False], ignore_index=True)


def basis(measured: np.ndarray, n: float) -> str:
    """How a scheme measured at the sizes ``measured`` is known at ``n``: measured there, interpolated between two
    measured sizes, or extrapolated so many times beyond the largest (or below the smallest)."""
    if np.isin(n, measured):
        return "measured"
    if n > measured.max():
        return f"extrapolated {n / measured.max():g}x"
    return "interpolated" if n > measured.min() else f"extrapolated {measured.min() / n:g}x below"


def is_scan(registry_name: str) -> bool:
    """Whether a benchmark method reads every code per query (no graph, no inverted lists, no ScaNN tree)."""
    return not re.search("ivf|hnsw|scann", registry_name)


def _power_law_qps(sizes: np.ndarray, qps: np.ndarray, n: float, scan: bool) -> tuple[float, float]:
    """Queries/s at ``n`` by the power law through the two measured sizes nearest to it (log-log
    interpolation inside the range, extrapolation outside). A negative exponent from timing noise is
    taken as 0 (more documents never make search faster); a scan extrapolated upwards uses at least 1
    (fixed per-query costs hide its linear growth at small sizes). One size only: exponent 1."""
    if len(sizes) == 1:
        return float(qps[0] * sizes[0] / n), 1.0
    order = np.sort(np.argsort(np.abs(np.log(sizes / n)))[:2])
    (n1, n2), (q1, q2) = sizes[order], qps[order]
    exponent = max(0.0, float(-np.log(q2 / q1) / np.log(n2 / n1)))
    if scan and n > sizes.max():
        exponent = max(exponent, 1.0)
        n1, q1 = n2, q2
    return float(q1 * (n / n1) ** -exponent), exponent


@dataclass
class Advice:
    """The chosen scheme (None when nothing meets every constraint), the candidates, and the caveats."""

    question: Question
    choice: pd.Series | None
    candidates: pd.DataFrame
    notes: list[str]
    evidence: str

    def text(self) -> str:
        q = self.question
        head = (f"{q.docs:,} documents, at most {q.memory_bytes / 1e9:,.3g} GB RAM, recall@10 >= {q.target_recall}"
                " (of the exact float32 top 10)"
                + (f", >= {q.min_qps:,.0f} queries/s" if q.min_qps else "")
                + f", {self.candidates.threads.iloc[0]} search thread(s)")
        if self.choice is None:
            lines = [f"{head}: no measured scheme meets every constraint."]
        else:
            c = self.choice
            lines = [f"{head}:", f"  choose {c.series} {c.query_params or ''} ({c.family}, {c.library}): "
                     f"{c['RAM GB']:,.2f} GB RAM"
                     + (f" + {c['disk GB']:,.2f} GB on disk" if c["disk GB"] else "")
                     + f", recall@10 {c['recall@10']:.3f}"
                     + (f" (95% lower bound {c['recall low']:.3f})" if c["recall low"] != c["recall@10"] else
                        " (no standard error recorded)")
                     + f", about {c.qps:,.0f} queries/s"]
        lines += [f"  note: {n}" for n in self.notes]
        lines.append(f"  evidence: {self.evidence}")
        return "\n".join(lines)


def advise(points: pd.DataFrame, question: Question, evidence: str = "", strict: bool = False) -> Advice:
    """The fastest operating point that fits the memory budget and meets the recall (and speed) target
    at ``question.docs`` documents, with the nearest misses when none does."""
    candidates = estimate(points, question)
    largest = int(scaling_table(points).n_vectors.max())
    notes = []
    if question.docs > largest:
        if strict:
            raise ParameterError(f"docs: {question.docs:,} is beyond the largest measured corpus ({largest:,}); "
                                 "run the throughput chapter at that size or drop --strict to extrapolate")
        notes.append(f"EXTRAPOLATED {question.docs / largest:,.3g}x beyond the largest measured corpus ({largest:,} "
                     "vectors): memory scales linearly (reliable), queries/s by a power law fitted to the measured "
                     "sizes, linear for scans (rough), recall is the value measured at the largest size "
                     "(optimistic: it usually falls as N grows)")
    elif strict:  # only the schemes measured at this size or beyond
        candidates = candidates[candidates.extrapolation <= 1]
    feasible = candidates[candidates.feasible]
    choice = feasible.iloc[0] if len(feasible) else None
    if choice is not None and question.docs <= largest and choice.extrapolation > 1:
        notes.append(f"EXTRAPOLATED {choice.extrapolation:,.3g}x beyond the largest corpus {choice.series} was "
                     f"measured at ({question.docs / choice.extrapolation:,.0f} vectors; others up to {largest:,}): "
                     f"queries/s by its power law (rough), recall as measured at {int(choice['recall from n']):,} "
                     "(optimistic)")
    if choice is None:
        fits = candidates[candidates["fits memory"]]
        accurate = fits[fits["meets recall"]]
        if len(accurate):
            fastest = accurate.sort_values("qps", ascending=False).iloc[0]
            notes.append(f"within the memory budget {fastest.series} {fastest.query_params} reaches the recall "
                         f"target but only at about {fastest.qps:,.1f} queries/s, below the minimum")
        elif len(fits):
            best = fits.sort_values("recall low", ascending=False).iloc[0]
            notes.append(f"within the memory budget the best recall is {best['recall@10']:.3f} ({best.series} "
                         f"{best.query_params}), below the target")
        else:
            cheapest = candidates.sort_values("RAM GB").iloc[0]
            notes.append(f"no measured scheme fits: the smallest, {cheapest.series}, needs "
                         f"{cheapest['RAM GB']:,.2f} GB")
    else:
        close = feasible[feasible.qps >= 0.8 * choice.qps].iloc[1:]
        if len(close):
            notes.append("within 20% of its queries/s (a tie on a noisy machine): "
                         + ", ".join(f"{r.series} {r.query_params}".strip() for r in close.itertuples()))
        if choice["disk GB"]:
            notes.append(f"its re-ranking store was read from disk with direct I/O when measured: "
                         f"{choice['disk reads/query']:,.0f} device reads per query"
                         + (", so its queries/s are capped by the reads/s the run measured on this disk"
                            if choice["disk-bound"] else ""))
    return Advice(question, choice, candidates, notes, evidence)


def measured_points(profile: str = "default", current: bool = False) -> tuple[pd.DataFrame, str]:
    """The operating points of a profile's throughput run (:func:`phase2.experiments.harness.read_run`: the published
    run, else the newest measured here; measured by the present bench code when ``current``) and of its current
    published tasks (:func:`phase2.experiments.scale.read_tasks`) measured on the run's kind of machine; and the
    evidence line: the run, its machine, and the tasks taken or left out."""
    try:
        table = harness.read_run(profile, current=current)
    except FileNotFoundError as exc:
        raise Phase2Error(f"{exc}: the advisor answers from measurements only; run the throughput chapter first "
                          f"(make book, or python -m phase2 chapter throughput --profile {profile})") from None
    first = schema.suite_rows(table, "methods").iloc[0]
    machine = harness.machine_line(first.machine)
    tasks = scale.read_tasks(profile)
    same = tasks[tasks.machine.isin([m for m in tasks.machine.unique() if harness.machine_line(m) == machine])]
    points = throughput.operating_points(table)
    if len(same):
        points = pd.concat([points, throughput.operating_points(same)], ignore_index=True)
    kind = scaling_table(points)
    sizes = ", ".join(f"{n:,}" for n in sorted(kind.n_vectors.unique()))
    evidence = (f"throughput run {first.run_id} ({first.profile} profile, git {first.git_commit}, "
                f"{first.created_utc[:10]}) on {machine}: "
                f"{kind.data_kind.iloc[0]} corpora of {sizes} vectors modelled on {first.source}, "
                f"dimension {first.dim}, recall@10 against exact float32 search")
    taken, all_tasks = set(same.run_id), set(tasks.run_id)  # a task is one run
    if taken:
        names = sorted(same.build_params.dropna().unique())
        evidence += (f"; the largest size from {len(taken)} published tasks (all threads only: "
                     f"{', '.join(f'`{name}`' for name in names)})")
    if len(all_tasks) > len(taken):
        evidence += f"; {len(all_tasks) - len(taken)} published tasks measured on another machine are left out"
    return points, evidence


BINARY_FAMILIES = harness.BINARY_FAMILIES


def _feasible_by_cell(points: pd.DataFrame, doc_counts: list[int], budgets: list[float], targets: list[float],
                      qps_targets: list[float], threads: int | None):
    """Every cell of a (queries/s target, rescoring store, documents, recall target, RAM budget) grid as
    ``(question, budget, nearest, feasible schemes)``: one estimate per question, filtered by budget; ``nearest`` is
    the least extrapolation of any scheme there (a feasible scheme's own is in its row)."""
    for min_qps in qps_targets:
        for on_disk in (False, True):
            for docs in doc_counts:
                for target in targets:
                    question = Question(docs, max(budgets), target, min_qps, threads, on_disk)
                    estimates = estimate(points, question)
                    nearest = float(estimates.extrapolation.min())
                    for budget in budgets:
                        feasible = estimates[(estimates["RAM GB"] * 1e9 <= budget) & estimates["meets recall"]
                                             & estimates["meets qps"]]
                        yield question, budget, nearest, feasible


def regime_grid(points: pd.DataFrame, doc_counts: list[int], budgets: list[float], targets: list[float],
                min_qps: float = 0.0, threads: int | None = None) -> pd.DataFrame:
    """The winner (fastest feasible scheme) of every (documents, RAM budget, recall target, rescoring
    store in RAM or on disk) cell, with its runner-up and two flags of uncertainty: ``tie`` (a scheme of
    another family within 20% of its queries/s) and ``fragile`` (its recall's lower bound within 0.02 of
    the target). ``extrapolation`` is the winner's (N over its largest measured size), or the least of any scheme
    where none is feasible."""
    rows = []
    for question, budget, nearest, feasible in _feasible_by_cell(points, doc_counts, budgets, targets, [min_qps],
                                                                 threads):
        row = {"docs": question.docs, "memory GB": budget / 1e9, "target recall@10": question.target_recall,
               "rescoring store": "disk" if question.rescore_on_disk else "RAM", "extrapolation": nearest}
        if len(feasible):
            feasible = feasible.sort_values("qps", ascending=False)
            best = feasible.iloc[0]
            rivals = feasible[feasible.family != best.family]
            rival = rivals.iloc[0] if len(rivals) else None
            row.update(winner=f"{best.series} {best.query_params}".strip(), family=best.family,
                       extrapolation=best.extrapolation,
                       qps=best.qps, **{"RAM GB": best["RAM GB"]},
                       runner_up=None if rival is None else f"{rival.series} {rival.query_params}".strip(),
                       runner_up_family=None if rival is None else rival.family,
                       tie=rival is not None and rival.qps >= 0.8 * best.qps,
                       fragile=bool(best["recall low"] - question.target_recall < 0.02))
        else:
            row.update(winner="none feasible", family="none", qps=np.nan, **{"RAM GB": np.nan},
                       runner_up=None, runner_up_family=None, tie=False, fragile=False)
        rows.append(row)
    return pd.DataFrame(rows)


def binary_share(grid: pd.DataFrame) -> pd.DataFrame:
    """Per recall target and rescoring store: how many cells a binary scheme wins (alone or with
    rescoring), how many of those are ties, and how many cells nothing wins."""
    binary = grid.family.isin(BINARY_FAMILIES)
    return grid.assign(binary=binary, binary_tie=binary & grid.tie, none=grid.family == "none").groupby(
        ["target recall@10", "rescoring store"]).agg(
        cells=("docs", "size"), **{"binary wins": ("binary", "sum"), "of which ties": ("binary_tie", "sum"),
                                   "nothing feasible": ("none", "sum")}).reset_index()


def binary_verdicts(points: pd.DataFrame, doc_counts: list[int], budgets: list[float], target_recall: float,
                    latency_targets: list[float], threads: int | None = None) -> pd.DataFrame:
    """Per (queries/s target, rescoring store, documents, RAM budget): the fastest feasible binary scheme
    (alone or with rescoring) against the fastest feasible scheme of any other family. Binary is
    *preferable* when only it is feasible or it is at least 1.25x faster, *competitive* within 0.8-1.25x,
    *worse* when slower than that or infeasible while another scheme is feasible. ``binary extrapolation`` and
    ``other extrapolation`` are each compared scheme's N over the largest size it was measured at (1: measured
    there; NaN: no such scheme), ``extrapolation`` the larger of the two; ``binary basis`` and ``other basis`` say
    whether each was measured at that size, interpolated or extrapolated (:func:`basis`, from :func:`estimate`)."""
    rows = []
    for question, budget, nearest, ok in _feasible_by_cell(points, doc_counts, budgets, [target_recall],
                                                           latency_targets, threads):
        is_binary = ok.family.isin(BINARY_FAMILIES)
        binary, other = ok[is_binary], ok[~is_binary]
        top_binary, top_other = (side.sort_values("qps").iloc[-1] if len(side) else None for side in (binary, other))
        b, o = (np.nan if top is None else top.qps for top in (top_binary, top_other))
        binary_x, other_x = (np.nan if top is None else top.extrapolation for top in (top_binary, top_other))
        binary_basis, other_basis = (None if top is None else top.basis for top in (top_binary, top_other))
        if not len(ok):
            verdict = "nothing feasible"
        elif not len(other) or b >= 1.25 * o:
            verdict = "preferable"
        elif len(binary) and b >= 0.8 * o:
            verdict = "competitive"
        else:
            verdict = "worse"
        rows.append({"min qps": question.min_qps, "rescoring store": "disk" if question.rescore_on_disk else "RAM",
                     "docs": question.docs, "memory GB": budget / 1e9, "binary is": verdict,
                     "best binary": None if top_binary is None else top_binary.series, "binary qps": b,
                     "best other": None if top_other is None else top_other.series, "other qps": o,
                     "binary extrapolation": binary_x, "other extrapolation": other_x,
                     "binary basis": binary_basis, "other basis": other_basis,
                     "extrapolation": nearest if not len(ok) else np.nanmax([binary_x, other_x])})
    return pd.DataFrame(rows)
