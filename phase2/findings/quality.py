"""The quality-vs-memory findings, computed from a chapter's results table (:mod:`phase2.experiments.searches`) through
its per-pair views (:mod:`phase2.findings.per_pair`): the tiers of every codec, the best code within each byte budget
(equal memory) and binary against the best other code there, pooled over collections; the sign code's pooled retention
and the best code of each kind of 1-bit code; how the clustering of queries moves an interval. Dimension, training
sets and two-stage pipelines have modules of their own (:mod:`phase2.findings.dimension`,
:mod:`phase2.findings.learning`, :mod:`phase2.findings.rescoring`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from phase2.data.datasets import load_dataset
from phase2.evaluation import decisions, metrics
from phase2.experiments.searches import REFERENCE, Vectors, search_values
from phase2.findings.per_pair import difference_interval, held_out, per_query_table, plain, signed


def cluster_sensitivity(dataset: str, model: str, depth: int = 100, published_roots: tuple = (),
                        codec: str = "BIN") -> dict:
    """How the clustering of queries moves a standard error: the cluster-bootstrap SE of ``codec`` minus float32
    (tie-aware nDCG@10) with every query alone, with queries of an identical relevant set together (the book's
    rule, :func:`phase2.evaluation.decisions.query_clusters`) and with connected components of shared relevant documents
    (:func:`phase2.evaluation.decisions.relevance_components`), and the size of the largest component."""
    collection = load_dataset(dataset)
    vectors = Vectors(collection, model, progress=False)
    depth = min(depth, collection.n_docs)
    values = {name: search_values(collection, model, name, depth, vectors, published_roots)
              for name in (REFERENCE, codec)}
    judged = values[REFERENCE]["judged"]
    diff = values[codec]["values"][metrics.TIE_AWARE] - values[REFERENCE]["values"][metrics.TIE_AWARE]
    position = {q: i for i, q in enumerate(collection.query_ids)}
    by_set = decisions.query_clusters(collection.query_ids, collection.qrels)
    by_component = decisions.relevance_components(collection.query_ids, collection.qrels)
    labels = {"set": [by_set[position[q]] for q in judged], "component": [by_component[position[q]] for q in judged]}
    sizes = pd.Series(labels["component"]).value_counts()
    return {"collection": dataset, "judged queries": len(judged), "identical-set clusters": len(set(labels["set"])),
            "components": len(sizes), "largest component": int(sizes.iloc[0]),
            "SE by query": float(decisions.bootstrap_means(diff).std(ddof=1)),
            "SE by identical set": float(decisions.bootstrap_means(diff, labels["set"]).std(ddof=1)),
            "SE by component": float(decisions.bootstrap_means(diff, labels["component"]).std(ddof=1))}


def cluster_choice(table: pd.DataFrame, min_units: int = 30) -> str:
    """The choice between the clusterings of :func:`cluster_sensitivity`, from its table (indexed by collection):
    components are usable where they leave at least ``min_units`` clusters and none holds half the queries."""
    ratio = table["SE by component"] / table["SE by identical set"]
    unusable = (table.components < min_units) | (table["largest component"] > table["judged queries"] / 2)
    usable = ratio[~unusable]
    text = ""
    if usable.size:
        text = (f"Where components can be resampled ({', '.join(usable.index)}), the standard error by component is "
                f"{usable.min():.2f}x to {usable.max():.2f}x the rule's. ")
    if unusable.any():
        text += ("On " + ", ".join(f"{name} ({int(row.components)} components, the largest "
                                   f"{int(row['largest component'])} of {int(row['judged queries'])} queries)"
                                   for name, row in table[unusable].iterrows())
                 + f" components leave fewer than {min_units} units or one holding most queries: a bootstrap over "
                 "them does not estimate a standard error (it gives "
                 + ", ".join(f"{r:.1f}x" for r in ratio[unusable]) + " the rule's there, from a handful of draws). ")
    return text + ("The book keeps identical relevant sets as its clusters." if unusable.any() or usable.max() < 1.1
                   else "Components widen the intervals where they can be resampled: read the book's intervals as "
                        "that much too narrow there.")


TIERS = [(99.0, "kept at least 99% of float32's nDCG@10 on every collection"),
         (95.0, "kept 95-99% on every collection"),
         (0.0, "lost more than 5% on at least one collection")]


def verdict(results: pd.DataFrame, summaries: pd.DataFrame) -> str:
    """The summary paragraph in numbers: each codec in one of three tiers by its *worst* collection
    (:data:`TIERS`), cheapest first, with its size and median % of float32 kept; then, within the 1-bit
    codes' size, the best codec of each collection, chosen on one half of the queries and reported on the other
    (:func:`held_out`)."""
    reference = summaries[summaries.name == REFERENCE]
    lines = []
    for model, ref in reference.groupby("model", sort=False):
        n = len(ref)
        ref_bytes = int(ref["bytes/vector"].iloc[0])
        lines.append(f"**{model}**, {n} collection{'s' if n > 1 else ''}, float32 = {ref_bytes} bytes/vector "
                     "(% of float32's nDCG@10: median over the collections, then the worst):")
        rows = summaries[(summaries.model == model) & (summaries.name != REFERENCE)]
        entries = []
        for codec, g in rows.groupby("codec", sort=False):
            kept = g["% float32 nDCG@10"]
            worst = g.loc[kept.idxmin()]
            size, rescore = int(g["bytes/vector"].iloc[0]), int(g["rescore bytes/vector"].iloc[0])
            footprint = f"{size} B + {rescore} B rescore store" if rescore else f"{size} B"
            spread = (f"{kept.iloc[0]:.1f}%" if n == 1 else
                      f"median {kept.median():.1f}%, worst {kept.min():.1f}% on {worst.dataset}")
            entries.append((size, kept.min(), f"{codec} ({footprint}, {spread})"))
        for floor, label in TIERS:
            tier = sorted(e for e in entries if e[1] >= floor)
            entries = [e for e in entries if e[1] < floor]
            if tier:
                lines.append(f"- {len(tier)} {'codes' if len(tier) > 1 else 'code'} {label}: "
                             + "; ".join(text for _, _, text in tier) + ".")
        binary = rows[rows.family == "binary"]
        if len(binary):
            untrained = binary[binary["fixed bytes"] == 0]  # the sign code's d/8 bytes, no trained state
            budget = int((untrained if len(untrained) else binary)["bytes/vector"].min())
            notes = []
            fits = rows[rows["bytes/vector at N"] <= budget * (1 + MEMORY_SLACK)]
            for dataset, g in fits.groupby("dataset", sort=False):
                if not (g.family == "binary").any():
                    continue
                per_query, _, chooses = held_out(results, dataset, model)
                chosen_on, tested = per_query[chooses].mean(), per_query[~chooses].mean()
                kept = 100 * tested / tested[REFERENCE]
                best = g.set_index("name").loc[chosen_on[g.name].idxmax()]
                best_binary = chosen_on[g[g.family == "binary"].name].idxmax()
                extra = int(best["rescore bytes/vector"])
                note = (f"{dataset}: {best.codec}{f' (+{extra} rescore bytes)' if extra else ''} "
                        f"({kept[best.name]:.1f}%")
                notes.append(note + (")" if best.family == "binary" else
                                     f"; best binary {best_binary} {kept[best_binary]:.1f}%)"))
            lines.append(f"- Best codec within {budget} bytes/vector at the collection's own N (trained state "
                         f"included, within {100 * MEMORY_SLACK:g}%; rescore stores beside), by nDCG@10 (chosen on "
                         "one half of the queries, % of float32 on the other): " + "; ".join(notes) + ".")
    return "\n".join(lines)


def headline(summaries: pd.DataFrame, comparison: pd.DataFrame, pooled: pd.DataFrame) -> str:
    """The chapter's findings in three lines, for the box under its title (the summary at its end has every codec):
    what the 1-bit sign code keeps, the cheapest code that keeps 99% everywhere, and binary against the best other
    code at equal memory (``comparison``, :func:`binary_at_budgets` at one N)."""
    lines = []
    sign = pooled[pooled.study == "pooled"] if len(pooled) else pooled
    if len(sign):
        lines.append("- **The 1-bit sign code** (`BIN`, pooled over collections, 95% interval) keeps "
                     + pooled_sign_sentence(pooled) + ".")
    rows = summaries[summaries.name != REFERENCE]
    cheapest = []
    for model, m in rows.groupby("model", sort=False):
        worst = m.groupby("codec", sort=False).agg(kept=("% float32 nDCG@10", "min"), size=("bytes/vector", "first"),
                                                   rescore=("rescore bytes/vector", "first"))
        kept = worst[worst.kept >= TIERS[0][0]].sort_values(["size", "rescore"])
        if len(kept):
            codec, best = kept.index[0], kept.iloc[0]
            extra = f" + {best.rescore:,.0f} B rescore store" if best.rescore else ""
            cheapest.append(f"`{codec}` ({best['size']:,.0f} B{extra}) with {model}")
    if cheapest:
        lines.append("- **The cheapest code keeping at least 99%** of float32's nDCG@10 on every collection: "
                     + "; ".join(cheapest) + ".")
    if len(comparison):
        pooled = pooled_budgets(comparison)
        lines.append(f"- **At equal memory** ({n_label(int(comparison.N.iloc[0]))}), binary minus the best other code "
                     f"in % of float32's nDCG@10, pooled over collections (intervals simultaneous at "
                     f"{decisions.level_label(pooled.level.iloc[0])}; equivalent within "
                     f"±{100 * decisions.MARGIN_SHARE:g}%): " + pooled_budget_sentence(pooled) + ".")
    return "\n".join(lines)


def tie_table(summaries: pd.DataFrame) -> pd.DataFrame:
    """Per collection, model and codec whose 10th and 11th results ever tie: how often, the row-order and
    tie-aware nDCG@10, how often a run of ties reached the search depth, and whether ties decide."""
    columns = ["dataset", "model", "name", f"% {metrics.TIED_AT_CUTOFF}", "nDCG@10", metrics.TIE_AWARE,
               f"% {metrics.TIE_RUN_CUT}", "ties decide"]
    return summaries[summaries[f"% {metrics.TIED_AT_CUTOFF}"] > 0][columns].reset_index(drop=True)


def failure_profile(results: pd.DataFrame, codecs: list[str], tie: float = 1e-9) -> pd.DataFrame:
    """How each codec's loss is spread over queries, per dataset and model.

    For the per-query nDCG@10 change from float32: the share of queries hurt, unchanged and
    helped, the mean change among those hurt, and the share of the total loss carried by the
    worst 10% of queries (1.0 = a few queries carry all of it; 0.1 = spread evenly).
    """
    rows = []
    for (dataset, model), _ in results.groupby(["dataset", "model"], sort=False):
        per_query = per_query_table(results, dataset, model)
        for codec in (c for c in codecs if c in per_query and c != REFERENCE):
            diff = (per_query[codec] - per_query[REFERENCE]).to_numpy()
            hurt = diff < -tie
            losses = np.sort(np.clip(-diff, 0, None))[::-1]
            worst = max(1, int(np.ceil(0.1 * len(diff))))
            rows.append({"dataset": dataset, "model": model, "name": codec, "queries": len(diff),
                         "% hurt": 100 * hurt.mean(), "% unchanged": 100 * (np.abs(diff) <= tie).mean(),
                         "% helped": 100 * (diff > tie).mean(),
                         "mean Δ when hurt": float(diff[hurt].mean()) if hurt.any() else 0.0,
                         "loss share of worst 10%": float(losses[:worst].sum() / max(losses.sum(), tie))})
    return pd.DataFrame(rows)


def worst_queries(results: pd.DataFrame, dataset: str, model: str, codec: str, query_texts: dict[str, str],
                  n: int = 5) -> pd.DataFrame:
    """The ``n`` queries whose nDCG@10 fell most under ``codec``, with their text and both scores."""
    per_query = per_query_table(results, dataset, model)
    overlap = per_query_table(results, dataset, model, metrics.OVERLAP)[codec]
    diff = (per_query[codec] - per_query[REFERENCE]).sort_values(kind="stable").head(n)
    return pd.DataFrame({"query": [query_texts[q] for q in diff.index], "float32 nDCG@10": per_query.loc[diff.index,
                         REFERENCE].to_numpy(), f"{codec} nDCG@10": per_query.loc[diff.index, codec].to_numpy(),
                         "overlap@10 with float32": overlap.loc[diff.index].to_numpy()}, index=diff.index)


BUDGETS = (16, 32, 48, 64, 96, 128)
"""Bytes/vector at which the families are compared: the codes every query scans plus the trained state spread over
the N vectors (:func:`amortized_bytes`)."""
MEMORY_SLACK = 0.02
"""A code fits a budget B when its bytes per vector are at most ``B x (1 + MEMORY_SLACK)``: memory within 2% counts
as equal, as nDCG@10 within 2% of float32 counts as equivalent (:data:`phase2.evaluation.decisions.MARGIN_SHARE`).
Without it, any trained state at all (a 1.5 kB mean) would push a 48-byte code out of the 48-byte budget."""

PUBLISHED = {
    "source": "sentence-transformers embedding-quantization report (Shakir, Aarsen & Lee, 2024; 15 MTEB retrieval "
              "sets)",
    "protocol": "its binary rows rescore: the Hamming top 100 x rescore multiplier 4 are re-scored by the float query "
                "against their binary codes; its int8 rows are a raw dot product on int8 codes",
    "all-MiniLM-L6-v2": "float32 41.66, binary with rescoring 39.07 (93.79%), int8 37.82 (90.79%)",
    "others": "e5-base-v2: binary with rescoring 74.77%; mxbai-embed-large-v1: binary 92.53% without rescoring, "
              "96.45% with it",
}
"""The published rows (nDCG@10 averaged over the report's retrieval sets, % of float32), quoted per model with
the report's protocol beside this study's own numbers."""


def amortized_bytes(summaries: pd.DataFrame, n: int | None = None) -> pd.Series:
    """Bytes per vector kept in memory: the scanned codes plus the trained state spread over N vectors, N the
    collection's own size (``n`` None) or ``n``."""
    return summaries["bytes/vector"] + summaries["fixed bytes"] / (summaries["N"] if n is None else n)


EQUAL_MEMORY_AT = (None, 10**6, 10**7)
"""The N at which equal-memory comparisons are shown: each collection's own size, then 10^6 and 10^7 vectors."""


VERDICT_N = 10**6
"""The N the conclusion's equal-memory verdict holds for: a deployment-sized index, where a 384-d PQ codebook adds
0.4 B per vector (at the collections' own sizes it adds 34-281 B; the quality chapter shows both)."""


def n_label(n: int | None, short: bool = False) -> str:
    """How a table names the N its bytes hold for (``short``: for a file name)."""
    if short:
        return "own-n" if n is None else f"n-{n}"
    return "each collection's own N" if n is None else f"N = {n:,}"


def equal_memory(results: pd.DataFrame, summaries: pd.DataFrame, budgets=BUDGETS,
                 n: int | None = None) -> pd.DataFrame:
    """Per dataset, model and budget, the best codec of each family within that many bytes per vector
    (:data:`MEMORY_SLACK`), counted by :func:`amortized_bytes` at N (``n``, or the collection's own size): chosen
    by nDCG@10 on one half of the queries (:func:`held_out`), reported on the other half (nDCG@10, % of float32's,
    Δ from float32 with its normal 95% interval from the cluster bootstrap), so the choice does not flatter it.

    Rescored pipelines count their first stage only (their rescore bytes may live on disk) and are
    their own family, ``<first family>+rescore``.
    """
    rows = []
    summaries = summaries.assign(**{"bytes/vector at budget N": amortized_bytes(summaries, n)})
    for (dataset, model), g in summaries.groupby(["dataset", "model"], sort=False):
        per_query, clusters, chooses = held_out(results, dataset, model)
        chosen_on, tested = per_query[chooses].mean(), per_query[~chooses]
        reference = tested[REFERENCE].mean()
        for budget in budgets:
            fits = g[(g["bytes/vector at budget N"] <= budget * (1 + MEMORY_SLACK)) & (g.family != "float")]
            for family, f in fits.groupby("family", sort=False):
                best = f.set_index("name").loc[chosen_on[f.name].idxmax()]
                delta, low, high, _ = difference_interval(tested, clusters[~chooses], best.name)
                rows.append({"dataset": dataset, "model": model, "N": n or int(best["N"]), "budget": budget,
                             "family": family, "name": best.name,
                             **best[["bytes/vector", "fixed bytes", "bytes/vector at budget N",
                                     "rescore bytes/vector"]].to_dict(),
                             "test queries": len(tested), "nDCG@10": tested[best.name].mean(),
                             "% float32 nDCG@10": 100 * tested[best.name].mean() / reference,
                             "Δ nDCG@10": delta, "Δ low": low, "Δ high": high})
    return pd.DataFrame(rows)


def binary_at_budgets(results: pd.DataFrame, summaries: pd.DataFrame, budgets=BUDGETS,
                      n: int | None = None) -> pd.DataFrame:
    """At each budget (bytes per vector at N, :func:`amortized_bytes`), the best 1-bit-family code against the best
    code of any other family (no rescoring). Both are chosen on one half of the queries (:func:`selection_half`)
    and compared on the other, so the choice does not flatter the test. Each comparison is decided by
    :func:`phase2.evaluation.decisions.decide` over the whole table: worse, equivalent, better or inconclusive.
    """
    rows = []
    for (dataset, model), g in summaries.groupby(["dataset", "model"], sort=False):
        per_query, clusters, chooses = held_out(results, dataset, model)
        chosen_on, tested = per_query[chooses].mean(), per_query[~chooses]
        test_clusters = clusters[~chooses].to_numpy()
        margin = decisions.MARGIN_SHARE * per_query[REFERENCE].mean()
        cost = amortized_bytes(g, n).set_axis(g.name)
        family = g.set_index("name").family
        for budget in budgets:
            fits = cost.index[cost <= budget * (1 + MEMORY_SLACK)]
            binary = [c for c in fits if family[c] == "binary"]
            others = [c for c in fits if family[c] not in ("float", "binary", "binary+rescore")]
            if not binary or not others:
                continue
            b, o = chosen_on[binary].idxmax(), chosen_on[others].idxmax()
            difference = (tested[b] - tested[o]).to_numpy()
            comparison = decisions.compare(difference, margin, test_clusters)
            sums, _ = decisions.bootstrap_sums(np.column_stack([difference, tested[REFERENCE].to_numpy()]),
                                               test_clusters)
            rows.append({"dataset": dataset, "model": model, "N": n or int(g["N"].iloc[0]), "budget": budget,
                         "best binary": b, "binary nDCG@10": tested[b].mean(), "best other": o,
                         "other nDCG@10": tested[o].mean(), "test queries": len(tested), **comparison,
                         "Δ % of float32": 100 * difference.mean() / tested[REFERENCE].mean(),
                         "se % of float32": float(np.std(100 * sums[:, 0] / sums[:, 1], ddof=1))})
    if not rows:
        return pd.DataFrame(columns=["dataset", "model", "N", "budget", "binary is"])
    table = decisions.decide(pd.DataFrame(rows))
    return table.rename(columns={"mean": "Δ (binary - other)", "low": "Δ low", "high": "Δ high",
                                 "outcome": "binary is"})


def pooled_budgets(comparison: pd.DataFrame) -> pd.DataFrame:
    """Per budget and model, binary minus the best other code as a share of float32's nDCG@10 (100·Δ/float32,
    each collection's with its cluster-bootstrap SE), pooled over the collections by random effects
    (:func:`phase2.evaluation.decisions.pool`), then decided by :func:`phase2.evaluation.decisions.decide` over all the
    table's pooled rows: the margin is the declared one, ±:data:`~phase2.evaluation.decisions.MARGIN_SHARE` of
    float32."""
    rows = []
    for (budget, model), g in comparison.groupby(["budget", "model"], sort=True):
        pooled = decisions.pool(g["Δ % of float32"], g["se % of float32"] ** 2, g.dataset).iloc[-1]
        rows.append({"budget": budget, "model": model, "collections": len(g), "mean": pooled.estimate,
                     "se": pooled.se, "df": pooled.df, "margin": 100 * decisions.MARGIN_SHARE, "tau2": pooled.tau2,
                     "prediction low": pooled.pi_low, "prediction high": pooled.pi_high,
                     "datasets": ", ".join(g.dataset)})
    if not rows:
        return pd.DataFrame(columns=["budget", "model", "collections", "Δ %", "low", "high", "level", "binary is"])
    table = decisions.decide(pd.DataFrame(rows))
    return table.rename(columns={"mean": "Δ %", "outcome": "binary is"})


def pooled_sign_sentence(pooled: pd.DataFrame) -> str:
    """``91.3% [88.0, 94.1] of float32's nDCG@10 with minilm-l6 (5 collections)`` per model of a
    :func:`pooled_retention` table, naming the collections where the models' sets differ."""
    studies = pooled[pooled.study != "pooled"].groupby("model", sort=False).study.apply(tuple)
    differ = studies.nunique() > 1
    return "; ".join(
        f"{r.estimate:.1f}% [{r.low:.1f}, {r.high:.1f}] of float32's nDCG@10 with {r.model} "
        f"({len(studies[r.model])} collection{'s' if len(studies[r.model]) > 1 else ''}"
        + (f": {', '.join(studies[r.model])})" if differ else ")")
        for r in pooled[pooled.study == "pooled"].itertuples())


def pooled_budget_sentence(pooled: pd.DataFrame) -> str:
    """``48 B: minilm-l6 -3.1% [-5.0, -1.2] worse, ...; 64 B: ...`` from :func:`pooled_budgets`."""
    return "; ".join(f"{budget} B: " + ", ".join(f"{r.model} {signed(r['Δ %'], 1)}% [{signed(r.low, 1)}, "
                                                 f"{signed(r.high, 1)}] {r['binary is']}" for _, r in g.iterrows())
                     for budget, g in pooled.groupby("budget", sort=True))


def budget_verdict(comparison: pd.DataFrame, n: int | None = None) -> str:
    """One line per budget: per model the pooled relative difference (binary - other) over collections with its
    deciding interval and outcome (:func:`pooled_budgets`), then the per-collection outcomes as the detail."""
    if comparison.empty:
        return "No budget had both a binary code and another code within it."
    pooled = pooled_budgets(comparison)
    lines = [f"Bytes per vector at {n_label(n)}, within {100 * MEMORY_SLACK:g}% of the budget; binary minus the best "
             f"other code in % of float32's nDCG@10, pooled over collections by random effects; margin "
             f"±{100 * decisions.MARGIN_SHARE:g}%; intervals simultaneous at "
             f"{decisions.level_label(pooled.level.iloc[0])} over the {len(pooled)} pooled rows (per collection: at "
             f"{decisions.level_label(comparison.level.iloc[0])} over {len(comparison)}); codes chosen on one half "
             "of the queries, compared on the other."]
    for budget, g in comparison.groupby("budget", sort=True):
        rows = pooled[pooled.budget == budget]
        verdicts = "; ".join(f"{r.model} {signed(r['Δ %'], 1)}% [{signed(r.low, 1)}, {signed(r.high, 1)}], "
                             f"{r['binary is']} ({r.collections} collection{'s' if r.collections > 1 else ''})"
                             for _, r in rows.iterrows())
        detail = ", ".join(f"{d}/{m} {o}" for d, m, o in zip(g.dataset, g.model, g["binary is"], strict=True))
        lines.append(f"- {budget} B/vector: {verdicts}. Per collection: {detail}.")
    return "\n".join(lines)


def pooled_retention(results: pd.DataFrame, codec: str = "BIN", model: str | None = None,
                     test_half: bool = False) -> pd.DataFrame:
    """Per model (or for ``model`` only), the % of float32's nDCG@10 that ``codec`` keeps on each collection (a
    ratio of means, its variance from the cluster bootstrap) and their random-effects pool
    (:func:`phase2.evaluation.decisions.pool`); on the queries that test a choice only (:func:`held_out`) when
    ``test_half``, for a code chosen on the other half."""
    tables = []
    pairs = plain(results.loc[results.codec == codec, ["dataset", "model"]].drop_duplicates())
    if model is not None:
        pairs = pairs[pairs.model == model]
    for name, datasets in pairs.groupby("model", sort=False):
        effects, variances = [], []
        for dataset in datasets.dataset:
            per_query, clusters, chooses = held_out(results, dataset, name)
            if test_half:
                per_query, clusters = per_query[~chooses], clusters[~chooses]
            sums, _ = decisions.bootstrap_sums(per_query[[codec, REFERENCE]].to_numpy(), clusters.to_numpy())
            effects.append(100 * per_query[codec].mean() / per_query[REFERENCE].mean())
            variances.append(float(np.var(100 * sums[:, 0] / sums[:, 1], ddof=1)))
        tables.append(decisions.pool(effects, variances, datasets.dataset).assign(model=name, codec=codec))
    return pd.concat(tables, ignore_index=True)


BINARY_KINDS = {
    "symmetric Hamming on sign bits": ("BIN", "BINc", "BINr", "ITQ"),
    "the float query against sign bits (asymmetric)": ("BINa", "BIN+R40BINa"),
    "RaBitQ: sign bits with correction factors": ("RaBitQ1",),
}
"""The three kinds of 1-bit-per-dimension code a verdict about "binary" may mean, each by its codes (d/8 bytes,
RaBitQ1 8 more for its factors)."""


def binary_kinds(results: pd.DataFrame, summaries: pd.DataFrame) -> pd.DataFrame:
    """Per kind of 1-bit code (:data:`BINARY_KINDS`) and model: its best code, chosen by the median over the
    collections of its % of float32's nDCG@10 on one half of the queries (:func:`held_out`), and that code's
    random-effects pooled % of float32's nDCG@10 on the other half, with its 95% interval."""
    rows = []
    for kind, names in BINARY_KINDS.items():
        for model, g in summaries[summaries.name.isin(names)].groupby("model", sort=False):
            chosen = {}
            for dataset in g.dataset.unique():
                per_query, _, chooses = held_out(results, dataset, model)
                selected = per_query[chooses].mean()
                chosen[dataset] = 100 * selected[[c for c in names if c in selected]] / selected[REFERENCE]
            best = pd.DataFrame(chosen).median(axis=1).idxmax()
            pooled = pooled_retention(results, best, model, test_half=True).iloc[-1]
            rows.append({"kind": kind, "model": model, "best code": best,
                         "bytes/vector": int(g[g.name == best]["bytes/vector"].iloc[0]),
                         "collections": int((g.name == best).sum()), "pooled % float32": pooled.estimate,
                         "low": pooled.low, "high": pooled.high})
    return pd.DataFrame(rows)


def published_comparison(summaries: pd.DataFrame, flattery: pd.DataFrame, model: str = "minilm-l6") -> str:
    """Our retained share of float32 nDCG@10 for the one model the report also measured, under the report's own
    protocol (``BIN+R40BINa``; ``SQ8raw`` with its ranges from every vector it quantizes, the
    :func:`training_flattery` search) and with this book's codes, beside its rows."""
    ours = summaries[summaries.model == model]

    ndcg = metrics.TIE_AWARE if metrics.TIE_AWARE in ours else "nDCG@10"
    reference = ours[ours.name == REFERENCE].set_index("dataset")[ndcg]

    def described(values: pd.Series, datasets: pd.Series) -> str:
        """Per-collection shares (median and range), and the report's way: the mean nDCG@10 over the collections
        as a share of float32's mean over the same collections."""
        if values.empty:
            return "not run"
        kept = 100 * values.to_numpy() / datasets.map(reference).to_numpy()
        if len(kept) == 1:
            return f"{kept[0]:.1f}% (1 collection, {datasets.iloc[0]})"
        return (f"median {np.median(kept):.1f}% (range {kept.min():.1f}-{kept.max():.1f}%, {len(kept)} collections; "
                f"{100 * values.mean() / datasets.map(reference).mean():.1f}% as a ratio of means, the report's way)")

    def share(codec_name: str) -> str:
        rows = ours[ours.name == codec_name]
        return described(rows[ndcg], rows.dataset)

    protocol = flattery[(flattery.model == model) & (flattery.codec == "SQ8raw")]
    protocol_share = described(protocol["nDCG@10 (whole corpus)"], protocol.dataset)
    return (f"The {PUBLISHED['source']} gives, for all-MiniLM-L6-v2, {PUBLISHED['all-MiniLM-L6-v2']}; "
            f"{PUBLISHED['protocol']}. For other models: {PUBLISHED['others']}. Here, all-MiniLM-L6-v2 ({model}) "
            f"under the report's protocol kept: binary, Hamming top 400 re-scored by the float query against their "
            f"bits (BIN+R40BINa), {share('BIN+R40BINa')}, against the report's 93.79%; int8 as the raw dot product "
            f"of sentence-transformers' int8 codes with their ranges taken from every document they quantize, as "
            f"`quantize_embeddings` does (SQ8raw, no rescoring), {protocol_share}, against 90.79%; the same codes "
            f"with ranges from half of each corpus, as this book fits every trained codec, {share('SQ8raw')}. The "
            f"remaining gap has a known source: the collections (these, not its 15 MTEB retrieval sets). With this "
            f"book's codes: sign bits alone (BIN) {share('BIN')}; the float query against every document's bits "
            f"(BINa) {share('BINa')}; float32 rescoring of the Hamming top 40 (BIN+R4Flat) {share('BIN+R4Flat')}; "
            f"int8 decoded by its per-dimension "
            f"ranges before the dot product (SQ8) {share('SQ8')}.")


