"""What a throughput run says: the kernel table against faiss and the roof, operating points and their Pareto
front, speed at equal recall, each library's standing, latency regimes, scaling exponents, the disk pipelines, the
synthetic corpora's agreement with real ones, query encoding, and the sentences the chapter prints from them."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from phase2.errors import Phase2Error
from phase2.experiments.harness import BINARY_FAMILIES, BUILD_METRICS
from phase2.experiments.schema import suite_rows
from phase2.experiments.synthetic import EXTRAPOLATED
from phase2.search.disk import IO_THREADS


def encoding_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per model: p50/p99 milliseconds to embed one query and how many queries they rest on."""
    rows = suite_rows(table, "query encoding")
    return rows.pivot_table(index="method", columns="metric", values="value", aggfunc="median").reset_index().rename(
        columns={"method": "model", "p50_ms": "encode p50 ms", "p99_ms": "encode p99 ms",
                 "latency_queries": "queries timed"})


def encoding_sentence(encoding: pd.DataFrame, regimes: pd.DataFrame, target: float = 0.95) -> str:
    """Each model's encoding time beside the fastest single-query search reaching ``target``: what a faster
    search buys in a whole request."""
    if encoding.empty:
        return "Query encoding was not timed in this run."
    at = regimes[regimes["target_recall@10"] == target] if len(regimes) else regimes
    text = "Embedding one query took " + ", ".join(
        f"{row['encode p50 ms']:.1f} ms with {row.model}" for _, row in encoding.iterrows()) + " (p50)."
    if len(at):
        best = at.loc[at.p50_ms.idxmin()]
        flat = regimes[(regimes.method == "flat") & (regimes["target_recall@10"] == target)]
        text += (f" The fastest single-query search reaching recall@10 {target}, `{best.method}`, took p50 "
                 f"{best.p50_ms:.2f} ms")
        if len(flat):
            text += f" and float32 flat {flat.p50_ms.iloc[0]:.2f} ms"
        fastest = encoding["encode p50 ms"].min()
        text += (f": with the fastest encoder, search is {best.p50_ms / (best.p50_ms + fastest):.1%} of the request "
                 f"for the fastest search" + (f" and {flat.p50_ms.iloc[0] / (flat.p50_ms.iloc[0] + fastest):.1%} "
                                               "for flat." if len(flat) else "."))
    return text



KERNEL_COLUMNS = ["N", "bits", "threads", "k", "ours q/s", "faiss q/s", "speedup", "roof q/s", "ours / roof",
                  "ours GB/s", "faiss GB/s", "memory read GB/s", "ours / memory read", "ours simd", "faiss simd"]


def kernel_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per code width, thread count and depth: both kernels' queries/s and scan rate, the speedup, our queries/s
    as a share of the scan's arithmetic roof (:func:`scan_roof`), the scan rate as a multiple of the measured
    memory read rate, and the SIMD level each ran at (no rows when the run timed no kernels)."""
    kernels = suite_rows(table, "kernels")
    if kernels.empty:
        return pd.DataFrame(columns=KERNEL_COLUMNS)
    keys = ["n_vectors", "dim", "search_threads"]
    timed = kernels[kernels.method.isin(["bin-flat", "bin-flat-faiss"])].assign(
        k=lambda t: t.query_params.str.removeprefix("k=").astype(int))
    wide = timed.pivot_table(index=[*keys, "k"], columns=["method", "metric"], values="value", aggfunc="median")
    once = kernels[~kernels.method.isin(["bin-flat", "bin-flat-faiss"])].pivot_table(
        index=keys, columns="method", values="value", aggfunc="median")
    at = pd.MultiIndex.from_frame(wide.index.to_frame()[keys])
    level = timed.drop_duplicates("library").set_index("library").build_params.str.removeprefix("simd=")
    out = pd.DataFrame({
        "ours q/s": wide[("bin-flat", "qps")], "faiss q/s": wide[("bin-flat-faiss", "qps")],
        "roof q/s": once["scan roof"].reindex(at).to_numpy(),
        "ours GB/s": wide[("bin-flat", "scan_GBps")], "faiss GB/s": wide[("bin-flat-faiss", "scan_GBps")],
        "memory read GB/s": once["memory read"].reindex(at).to_numpy(),
    })
    out["speedup"] = out["ours q/s"] / out["faiss q/s"]
    out["ours / roof"] = out["ours q/s"] / out["roof q/s"]
    out["ours / memory read"] = out["ours GB/s"] / out["memory read GB/s"]
    out["ours simd"], out["faiss simd"] = level.get("phase2", ""), level.get("faiss", "")
    return out.rename_axis(index=["N", "bits", "threads", "k"]).reset_index()[KERNEL_COLUMNS]


def disk_probe(table: pd.DataFrame) -> pd.DataFrame:
    """The run's random-read probe of this disk (measured once, where a store was first on disk): latency at queue
    depth 1 and reads/s with :data:`phase2.search.disk.IO_THREADS` in flight, one row (none when no store was on
    disk)."""
    probe = suite_rows(table, "disk probe")
    wide = probe.pivot_table(index="run_id", columns="metric", values="value", aggfunc="median")
    return wide.reset_index(drop=True).rename(columns={
        "iops": f"reads/s ({IO_THREADS} in flight)", "iops_qd1": "reads/s (1 in flight)",
        "p50_ms": "p50 ms (1 in flight)", "p99_ms": "p99 ms (1 in flight)"})


def operating_points(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (data, size, method, query setting, threads): recall@10, q/s, latency, memory, build time."""
    for column in ("store_bytes_per_vector", "library", "store_on_disk"):
        if column not in table:
            raise Phase2Error(f"throughput run {table.run_id.iloc[0]} predates the column {column!r}: re-run the "
                              "throughput chapter or `python -m phase2 bench methods`")
    methods = suite_rows(table, "methods")
    keys = ["data_kind", "n_vectors", "method", "family", "library", "build_params", "query_params", "search_threads"]
    wide = methods[~methods.metric.isin(BUILD_METRICS)].pivot_table(index=keys, columns="metric", values="value",
                                                                    aggfunc="median").reset_index()
    built = ["data_kind", "n_vectors", "method"]
    build = methods[methods.metric == "build_s"].groupby(built).agg(
        build_s=("value", "median"), index_bytes=("index_bytes", "first"), disk_bytes=("disk_bytes", "first"),
        code_bytes=("code_bytes_per_vector", "first"), store_bytes=("store_bytes_per_vector", "first"),
        store_on_disk=("store_on_disk", "first"), deterministic=("deterministic", "first"))
    reused = methods[methods.metric == "build_reused"].groupby(built)["value"].max().rename("build_reused")
    build = build.join(reused)
    build["build_reused"] = build["build_reused"].fillna(0).astype(bool)  # runs before the index cache: built
    out = wide.merge(build.reset_index(), on=built)
    out["bytes_per_vector"] = out.index_bytes / out.n_vectors
    return out


def pareto_front(points: pd.DataFrame) -> pd.DataFrame:
    """The operating points no other point beats on both recall@10 and queries/s."""
    ordered = points.sort_values(["recall@10", "qps"], ascending=[False, False])
    best_qps, keep = -np.inf, []
    for index, row in ordered.iterrows():
        if row.qps > best_qps:
            keep.append(index)
            best_qps = row.qps
    return points.loc[keep].sort_values("recall@10")


def speedup_at_recall(points: pd.DataFrame, targets: Iterable[float] = (0.8, 0.9, 0.95, 0.99)) -> pd.DataFrame:
    """Per size, threads and method: the fastest setting reaching each recall@10 target, as queries/s
    and as a multiple of exact float32 search (``flat``) measured in the same run; NaN if never reached."""
    rows = []
    for (kind, n, count), group in points.groupby(["data_kind", "n_vectors", "search_threads"]):
        flat = group[group.method == "flat"].qps
        baseline = float(flat.iloc[0]) if len(flat) else np.nan
        for method, runs in group.groupby("method"):
            for target in targets:
                reached = runs[runs["recall@10"] >= target]
                qps = float(reached.qps.max()) if len(reached) else np.nan
                rows.append({"data_kind": kind, "n_vectors": n, "search_threads": count, "method": method,
                             "family": runs.family.iloc[0], "target_recall@10": target, "qps": qps,
                             "speedup_vs_flat": qps / baseline})
    return pd.DataFrame(rows)


OURS = "this project's binary pipelines"  # the group library_standing sets against each library


def library_standing(points: pd.DataFrame, targets: Iterable[float] = (0.9, 0.95, 0.99)) -> pd.DataFrame:
    """At the largest size where the most libraries were measured (real data where measured there) and all
    threads: for each recall@10 target, the fastest configuration of each library and of :data:`OURS` (binary
    families answered by this project's kernel or rescoring), with queries/s, single-query p50 and index bytes
    per vector. A group that never reaches a target has no row for it."""
    libraries_at = points.groupby("n_vectors").library.nunique()
    largest = one_kind(points[points.n_vectors == libraries_at[libraries_at == libraries_at.max()].index.max()])
    largest = largest[largest.search_threads == largest.search_threads.max()]
    ours = largest.family.isin(BINARY_FAMILIES) & largest.library.str.contains("phase2")
    libraries = sorted(library for library in largest.library.unique() if "phase2" not in library)
    groups = [(OURS, largest[ours]), *((library, largest[largest.library == library]) for library in libraries)]
    rows = []
    for target in targets:
        for group, runs in groups:
            reached = runs[runs["recall@10"] >= target]
            if len(reached):
                best = reached.loc[reached.qps.idxmax()]
                rows.append({"target_recall@10": target, "group": group, "method": best.method,
                             "query_params": best.query_params, "recall@10": best["recall@10"], "qps": best.qps,
                             "p50_ms": best.p50_ms, "bytes_per_vector": best.bytes_per_vector,
                             "n_vectors": best.n_vectors, "data_kind": best.data_kind,
                             "search_threads": best.search_threads})
    return pd.DataFrame(rows)


def standing_sentence(standing: pd.DataFrame, targets: Iterable[float] = (0.9, 0.95, 0.99)) -> str:
    """Per recall target, this project's fastest binary pipeline against the fastest library configuration."""
    if standing.empty:
        return "No method reached any recall target."
    first = standing.iloc[0]
    lines = [f"At N = {first.n_vectors:,} ({first.data_kind}), {first.search_threads} thread(s):"]
    for target in targets:
        at = standing[standing["target_recall@10"] == target]
        ours, others = at[at.group == OURS], at[at.group != OURS]
        if others.empty and ours.empty:
            lines.append(f"- recall@10 >= {target}: no method reached it.")
            continue
        best = others.loc[others.qps.idxmax()] if len(others) else None
        text = f"- recall@10 >= {target}: "
        text += (f"the fastest library configuration was `{best.method}` ({best.group}) at {best.qps:,.0f} q/s, "
                 f"p50 {best.p50_ms:.2f} ms, {best.bytes_per_vector:,.0f} B/vector; " if best is not None else
                 "no library reached it; ")
        if ours.empty:
            text += "no binary pipeline of this project reached it."
        else:
            mine = ours.iloc[0]
            text += (f"this project's fastest binary pipeline, `{mine.method}`, {mine.qps:,.0f} q/s, p50 "
                     f"{mine.p50_ms:.2f} ms, {mine.bytes_per_vector:,.0f} B/vector"
                     + (f" ({mine.qps / best.qps:.2f}x the library's queries/s)." if best is not None else "."))
        lines.append(text)
    return "\n".join(lines)


def one_kind(points: pd.DataFrame) -> pd.DataFrame:
    """The points of the one corpus a verdict reads: real where any real corpus was measured among them, else
    synthetic (never the extrapolation check)."""
    return points[points.data_kind == ("real" if (points.data_kind == "real").any() else "synthetic")]


def largest_points(points: pd.DataFrame) -> pd.DataFrame:
    """The operating points at the largest size, of :func:`one_kind`."""
    return one_kind(points[points.n_vectors == points.n_vectors.max()])


def latency_regimes(points: pd.DataFrame, targets: Iterable[float] = (0.9, 0.95, 0.99)) -> pd.DataFrame:
    """Both regimes at the largest size, per method and recall@10 target: batched queries/s (its fastest
    setting reaching the target, all threads) and single-query latency (its lowest p50 among the settings
    and thread counts reaching it, with that setting's p99), each as a multiple of float32 flat's best."""
    largest = largest_points(points)
    most = largest.search_threads.max()
    flat = largest[largest.method == "flat"]
    if flat.empty:
        return pd.DataFrame()
    flat_qps = float(flat[flat.search_threads == most].qps.max())
    flat_p50 = float(flat.p50_ms.min())
    rows = []
    for method, runs in largest.groupby("method"):
        for target in targets:
            reached = runs[runs["recall@10"] >= target]
            if reached.empty:
                continue
            batch = reached[reached.search_threads == most]
            single = reached.loc[reached.p50_ms.idxmin()]
            qps = float(batch.qps.max()) if len(batch) else np.nan
            rows.append({"n_vectors": int(runs.n_vectors.iloc[0]), "data_kind": runs.data_kind.iloc[0],
                         "target_recall@10": target, "method": method, "family": runs.family.iloc[0],
                         "batch_qps": qps, "batch_vs_flat": qps / flat_qps,
                         "batch_setting": batch.loc[batch.qps.idxmax(), "query_params"] if len(batch) else "",
                         "p50_ms": single.p50_ms, "p99_ms": single.p99_ms, "single_vs_flat": flat_p50 / single.p50_ms,
                         "single_setting": f"{single.query_params or '{}'} at {single.search_threads} thread(s)",
                         "latency_queries": single.get("latency_queries", np.nan),
                         "bytes_per_vector": single.bytes_per_vector})
    return pd.DataFrame(rows)


PIPELINE_GOALS = {"batch vs flat": 8.0, "single query vs flat": 40.0}
"""What a binary pipeline at recall@10 0.95 is held to (the binary-scan issue): at least 8x float32 flat's batched
queries/s and at least 40x flat's best single-query p50. They replace the 4x and 20x of the issue before it."""


def regimes_sentence(regimes: pd.DataFrame, target: float = 0.95) -> str:
    """The fastest binary pipeline at ``target`` in both regimes, against float32 flat and
    :data:`PIPELINE_GOALS`."""
    batch_goal, single_goal = PIPELINE_GOALS["batch vs flat"], PIPELINE_GOALS["single query vs flat"]
    at = regimes[(regimes["target_recall@10"] == target) & regimes.family.isin(BINARY_FAMILIES)]
    if regimes.empty or at.empty:
        return f"No binary pipeline reached recall@10 >= {target}."
    batch, single = at.loc[at.batch_qps.idxmax()], at.loc[at.single_vs_flat.idxmax()]
    verdict = [f"{'meets' if batch.batch_vs_flat >= batch_goal else 'misses'} the {batch_goal:g}x batch goal",
               f"{'meets' if single.single_vs_flat >= single_goal else 'misses'} the {single_goal:g}x single-query "
               "goal"]
    return (f"At N = {batch.n_vectors:,} ({batch.data_kind}), recall@10 >= {target}: batched, `{batch.method}` "
            f"{batch.batch_setting} answered {batch.batch_qps:,.0f} q/s, {batch.batch_vs_flat:.1f}x float32 flat; one "
            f"query at a time, `{single.method}` {single.single_setting} took p50 {single.p50_ms:.2f} ms (p99 "
            f"{single.p99_ms:.2f} ms), {single.single_vs_flat:.1f}x faster than flat's best p50. So this project's "
            f"binary pipeline {verdict[0]} and {verdict[1]}.")


def scaling_exponents(points: pd.DataFrame) -> pd.DataFrame:
    """Per method: the slope ``a`` of ``queries/s ∝ N^-a`` fitted by least squares on log-log axes through every
    measured size (its first query setting, one thread, one data kind: synthetic where it spans more sizes).
    A scan has ``a ≈ 1``; graphs and inverted lists less."""
    one = points[points.search_threads == 1]
    kind = one.groupby("data_kind").n_vectors.nunique().idxmax() if len(one) else "synthetic"
    one = one[one.data_kind == kind].sort_values("query_params")
    rows = []
    for method, runs in one.groupby("method"):
        first = runs[runs.query_params == runs.query_params.iloc[0]].sort_values("n_vectors")
        if first.n_vectors.nunique() < 2:
            continue
        slope = np.polyfit(np.log(first.n_vectors), np.log(first.qps), 1)[0]
        rows.append({"method": method, "family": runs.family.iloc[0], "query_params": first.query_params.iloc[0],
                     "sizes": ", ".join(f"{n:,}" for n in first.n_vectors), "exponent": -slope})
    return pd.DataFrame(rows).sort_values("exponent") if rows else pd.DataFrame(
        columns=["method", "family", "query_params", "sizes", "exponent"])


def disk_pipelines(points: pd.DataFrame) -> pd.DataFrame:
    """Each pipeline measured with its store on disk beside the same pipeline with the store in RAM, per
    setting, at the largest size and all threads: recall, q/s, p50/p99 and device reads per query."""
    largest = largest_points(points)
    largest = largest[largest.search_threads == largest.search_threads.max()]
    disk = largest[largest.store_on_disk.astype(bool)]
    rows = []
    for _, point in disk.iterrows():
        twin = largest[(largest.method == point.method.replace("-disk", "")) &
                       (largest.query_params == point.query_params)]
        ram = twin.iloc[0] if len(twin) else None
        rows.append({"method": point.method, "query_params": point.query_params, "recall@10": point["recall@10"],
                     "reads/query": point.reads_per_query, "disk q/s": point.qps, "RAM q/s": ram.qps if ram is not None
                     else np.nan, "disk p50 ms": point.p50_ms, "disk p99 ms": point.p99_ms,
                     "RAM p50 ms": ram.p50_ms if ram is not None else np.nan,
                     "RAM bytes/vector": point.bytes_per_vector, "disk bytes/vector": point.store_bytes})
    return pd.DataFrame(rows)


def disk_sentence(probe: pd.DataFrame, on_disk: pd.DataFrame, target: float = 0.95) -> str:
    """The disk's measured read cost and the fastest on-disk setting reaching ``target`` recall@10 (the most
    accurate one if none does) against the same setting with its store in RAM."""
    if probe.empty or on_disk.empty:
        return "No re-ranking store was put on disk in this run."
    reached = on_disk[on_disk["recall@10"] >= target]
    best = (reached.loc[reached["disk q/s"].idxmax()] if len(reached) else
            on_disk.loc[on_disk["recall@10"].idxmax()])
    return (f"This disk answered a random 4 KiB direct read in {probe['p50 ms (1 in flight)'].iloc[0]:.3f} ms (p50, "
            f"one at a time; p99 {probe['p99 ms (1 in flight)'].iloc[0]:.3f} ms) and served "
            f"{probe[f'reads/s ({IO_THREADS} in flight)'].iloc[0]:,.0f} reads/s with {IO_THREADS} in flight. The "
            + (f"fastest on-disk setting reaching recall@10 {target}" if len(reached) else
               f"most accurate on-disk setting (none reached recall@10 {target})")
            + f", `{best.method}` {best.query_params}, read {best['reads/query']:,.0f} blocks per query asked "
            f"alone and answered {best['disk q/s']:,.0f} q/s (p50 {best['disk p50 ms']:.2f} ms) against "
            f"{best['RAM q/s']:,.0f} q/s (p50 {best['RAM p50 ms']:.2f} ms) with its store in RAM, at recall@10 "
            f"{best['recall@10']:.3f}, holding {best['RAM bytes/vector']:,.0f} B/vector in RAM.")


def synthetic_agreement(points: pd.DataFrame) -> pd.DataFrame:
    """Recall@10 of the same method and setting on real and on synthetic corpora of the same size (and, where
    measured, on ``extrapolated`` ones: a generator fitted to a small real subset), with the differences."""
    both = points[points.search_threads == points.search_threads.min()]
    pairs = both.pivot_table(index=["n_vectors", "method", "family", "query_params"], columns="data_kind",
                             values="recall@10").reset_index()
    pairs.columns.name = None
    if not {"real", "synthetic"} <= set(pairs.columns):
        return pd.DataFrame(columns=["n_vectors", "method", "family", "query_params", "real", "synthetic"])
    pairs = pairs.dropna(subset=["real", "synthetic"]).assign(difference=lambda p: p.synthetic - p.real)
    if EXTRAPOLATED in pairs:
        pairs = pairs.assign(extrapolated_difference=pairs[EXTRAPOLATED] - pairs.real)
    return pairs


def agreement_summary(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per size and generator: how far synthetic recall@10 lies from real, over the operating points on both."""
    columns = {"synthetic": "difference", EXTRAPOLATED: "extrapolated_difference"}
    rows = []
    for n, at in pairs.groupby("n_vectors"):
        for kind, column in columns.items():
            if column in at and at[column].notna().any():
                diff = at[column].dropna()
                worst = diff.abs().idxmax()
                rows.append({"n_vectors": n, "generator": kind, "points": len(diff), "mean |difference|":
                             diff.abs().mean(), "mean difference": diff.mean(), "largest |difference|":
                             diff.abs().max(), "largest at": f"{at.method[worst]} {at.query_params[worst]}".strip()})
    return pd.DataFrame(rows)


def agreement_sentence(summary: pd.DataFrame) -> str:
    """The synthetic-versus-real gap in words, per size and generator."""
    if summary.empty:
        return "No size was run on both real and synthetic data."
    fitted = {"synthetic": "fitted to the whole real corpus",
              EXTRAPOLATED: "fitted to a small real subset, then drawn at this size (as the large sizes are)"}
    return " ".join(
        f"At N = {row['n_vectors']:,}, the generator {fitted[row['generator']]} gave recall@10 within "
        f"{row['mean |difference|']:.3f} of real on average over {row['points']} operating points (signed "
        f"{row['mean difference']:+.3f}; largest {row['largest |difference|']:.3f}, `{row['largest at']}`)."
        for _, row in summary.iterrows())


def fastest_setting(runs: pd.DataFrame, target: float) -> dict:
    """Of one method's operating points, the fastest reaching recall@10 ``target``: its query settings, recall, q/s and
    p50 (NaN, and no settings, where none reaches it)."""
    reached = runs[runs["recall@10"] >= target]
    if reached.empty:
        return {"query_params": "", "recall@10": np.nan, "qps": np.nan, "p50_ms": np.nan}
    return reached.loc[reached.qps.idxmax(), ["query_params", "recall@10", "qps", "p50_ms"]].to_dict()


def fastest_reaching(speed: pd.DataFrame, target: float, families: Iterable[str] | None = None) -> pd.Series | None:
    """The :func:`speedup_at_recall` row with the most queries/s at ``target`` (of ``families``), or None."""
    rows = speed[(speed["target_recall@10"] == target) & speed.qps.notna()]
    if families is not None:
        rows = rows[rows.family.isin(list(families))]
    return rows.loc[rows.qps.idxmax()] if len(rows) else None


def fastest_sentence(speed: pd.DataFrame, target: float) -> str:
    """Which method was fastest at a recall target, and how the fastest binary pipeline compares."""
    best = fastest_reaching(speed, target)
    binary = fastest_reaching(speed, target, BINARY_FAMILIES)
    if best is None:
        return "no method reached it."
    text = f"fastest was `{best.method}` at {best.qps:,.0f} q/s ({best.speedup_vs_flat:.1f}x float32 flat)"
    if binary is None:
        return text + "; no binary pipeline reached this recall."
    if binary.method == best.method:
        return text + ", a binary pipeline."
    return (text + f"; the fastest binary pipeline, `{binary.method}`, reached {binary.qps:,.0f} q/s "
                   f"({binary.qps / best.qps:.2f}x the fastest).")


KERNEL_GOALS = {"speedup at top-10": 3.0, "share of the roof at top-1000": 0.6}
"""What the scan is held to (the binary-scan issue): at least 3x faiss ``IndexBinaryFlat`` at top-10, and at
least 0.6 of its arithmetic roof (:func:`scan_roof`) as a first stage of 1,000 candidates."""


def kernel_sentence(kernels: pd.DataFrame) -> str:
    """:func:`kernel_table` at its largest N in one sentence, against :data:`KERNEL_GOALS`."""
    at_n = kernels[kernels.N == kernels.N.max()]
    top10, deep = at_n[at_n.k == at_n.k.min()], at_n[at_n.k == at_n.k.max()]
    speed, share = (KERNEL_GOALS[g] for g in ("speedup at top-10", "share of the roof at top-1000"))

    def meets(values: pd.Series, goal: str) -> str:
        short = int((values < float(goal.rstrip("x"))).sum())
        return f"meets the {goal} goal" if not short else f"misses the {goal} goal in {short} of {len(values)} settings"

    return (f"At N = {int(at_n.N.iloc[0]):,} random codes ({', '.join(map(str, sorted(at_n.bits.unique())))} bits, "
            f"{', '.join(map(str, sorted(at_n.threads.unique())))} threads; identical distances), this project's "
            f"Hamming scan ran at {at_n['ours simd'].iloc[0]} and faiss `IndexBinaryFlat` at "
            f"{at_n['faiss simd'].iloc[0]}. At top-{int(top10.k.iloc[0])} ours answered {top10.speedup.min():.2f}x to "
            f"{top10.speedup.max():.2f}x faiss's queries/s ({meets(top10.speedup, f'{speed:g}x')}); at "
            f"top-{int(deep.k.iloc[0]):,}, {deep.speedup.min():.2f}x to {deep.speedup.max():.2f}x, and "
            f"{deep['ours / roof'].min():.2f} to {deep['ours / roof'].max():.2f} of the scan's arithmetic roof "
            f"({deep['roof q/s'].min():,.0f} to {deep['roof q/s'].max():,.0f} queries/s: XOR, popcount and add on "
            f"cache-resident codes; {meets(deep['ours / roof'], f'{share:g}')})." + _short_of_speedup(top10, speed))


def _short_of_speedup(top10: pd.DataFrame, speed: float) -> str:
    """Where the top-10 kernel falls short of ``speed`` x faiss: the share of the arithmetic roof that speed-up
    would need, beside the share reached (above 1: no scan of these codes could reach it)."""
    short = top10[top10.speedup < speed]
    if short.empty:
        return ""
    return " Where it falls short, " + "; ".join(
        f"{speed:g}x faiss at {int(row.bits)} bits and {int(row.threads)} thread(s) would need "
        f"{speed * row['faiss q/s'] / row['roof q/s']:.2f} of the roof, and ours ran at {row['ours / roof']:.2f}"
        for _, row in short.iterrows()) + "."


def verdict(kernels: pd.DataFrame, points: pd.DataFrame, targets: Iterable[float] = (0.9, 0.95)) -> str:
    """The chapter's summary in numbers, computed from this run's tables."""
    lines = []
    if len(kernels):
        lines.append(f"- **Kernel.** {kernel_sentence(kernels)}")
    largest = largest_points(points)
    kind = largest.data_kind.iloc[0]
    most = largest.search_threads.max()
    at = largest[largest.search_threads == most].set_index("method")
    n = int(largest.n_vectors.iloc[0])
    if {"flat", "bin-flat"} <= set(at.index):
        ratio = at.qps["bin-flat"] / at.qps["flat"]
        lines.append(
            f"- **Exhaustive search, N = {n:,} ({kind}), {most} thread(s).** 1-bit codes with our kernel answered "
            f"{ratio:.1f}x the queries/s of float32 flat search (faiss, BLAS), using "
            f"{at.bytes_per_vector['bin-flat'] / at.bytes_per_vector['flat'] * 100:.1f}% of its memory; but they "
            f"return only {at['recall@10']['bin-flat']:.2f} of the exact top 10.")
    speed = speedup_at_recall(largest[largest.search_threads == most], targets)
    lines.extend(f"- **Recall@10 >= {target}, N = {n:,}:** {fastest_sentence(speed, target)}" for target in targets)
    return "\n".join(lines)
