"""What dimension does to binary codes: one model against another (the full sign code's share of its own
float32), and within one model, each code at d against d/2 (``T<d/2>,<codec>``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from phase2.data.embeddings import get_model_spec
from phase2.evaluation import decisions
from phase2.experiments.plans import truncated_names
from phase2.experiments.searches import REFERENCE, TieAwareScores
from phase2.findings.per_pair import decision_scores, query_cluster_labels, signed


def dimension_table(best: pd.DataFrame, budgets=(48, 96)) -> pd.DataFrame:
    """Per collection and model (with its dimension): the best binary code within each budget and its nDCG@10,
    from :func:`equal_memory`'s ``best`` (equal memory)."""
    rows = []
    for (dataset, model), g in best.groupby(["dataset", "model"], sort=False):
        binary = g[g.family == "binary"].set_index("budget")
        row = {"dataset": dataset, "model": model, "dim": get_model_spec(model).dim}
        for budget in budgets:
            if budget in binary.index:
                row[f"best binary ≤ {budget} B"] = binary.loc[budget, "name"]
                row[f"nDCG@10 at {budget} B"] = binary.loc[budget, "nDCG@10"]
        rows.append(row)
    return pd.DataFrame(rows)


def model_gap(results: pd.DataFrame, codec: str, first: str, second: str) -> pd.DataFrame:
    """``codec``'s % of float32's nDCG@10 with model ``first`` minus with model ``second``, per collection that has
    both (the same queries: one cluster bootstrap draws both models' per-query scores together), pooled by random
    effects (:func:`phase2.evaluation.decisions.pool`)."""
    effects, variances, names = [], [], []
    for dataset in sorted(set(results.dataset[results.model == first]) & set(results.dataset[results.model == second])):
        a = decision_scores(results, dataset, first)[0]
        b = decision_scores(results, dataset, second)[0].reindex(a.index)
        if codec not in a or codec not in b:
            continue
        clusters = query_cluster_labels(results, dataset, first).reindex(a.index)
        effect, variance = _retention_gap(np.column_stack([a[codec], a[REFERENCE], b[codec], b[REFERENCE]]),
                                          clusters.to_numpy())
        effects.append(effect), variances.append(variance), names.append(dataset)
    if not effects:
        return pd.DataFrame(columns=["study", "estimate", "low", "high"])
    return decisions.pool(effects, variances, names)


def _retention_gap(columns: np.ndarray, clusters: np.ndarray) -> tuple[float, float]:
    """For per-query columns ``[code A, its float32, code B, its float32]`` of the same queries: A's % of its
    float32 (a ratio of means) minus B's, and the variance of that difference over the cluster bootstrap, which
    draws all four columns together."""
    sums, _ = decisions.bootstrap_sums(columns, clusters)
    means = columns.mean(axis=0)
    return (100 * (means[0] / means[1] - means[2] / means[3]),
            float(np.var(100 * (sums[:, 0] / sums[:, 1] - sums[:, 2] / sums[:, 3]), ddof=1)))


def dimension_within(pairs: list[tuple[str, str]], codecs: list[str], depth: int,
                     published_roots: tuple = ()) -> pd.DataFrame:
    """Dimension within one model: per model and code of ``codecs``, its % of float32's nDCG@10 (tie-aware) at the
    model's dimension d and at d/2 (the first d/2 dimensions renormalised, against float32 of the same cut,
    :func:`truncated_names`), per collection and pooled by random effects (:func:`phase2.evaluation.decisions.pool`);
    the difference (d minus d/2, in points of % float32) is paired on the same queries with a cluster-bootstrap
    variance, so it separates dimension from model, which :func:`model_gap` cannot. Then, where one model's half
    dimension is another's whole (``comparison`` ``equal dimension``): the first model's cut minus the second
    model's whole, on the collections both have."""
    models = list(dict.fromkeys(m for _, m in pairs))
    datasets = {model: [d for d, m in pairs if m == model] for model in models}
    scores = TieAwareScores(depth, published_roots)
    tables = []
    for model in models:
        dim = get_model_spec(model).dim
        for codec in codecs:
            cut_codec, cut_reference = truncated_names(model, [codec])[::-1]
            tables.append(_pooled_gap(scores, datasets[model], (model, codec, REFERENCE), (model, cut_codec,
                                                                                            cut_reference))
                          .assign(model=model, codec=codec, d=dim, comparison="d against d/2"))
            for other in models:
                if get_model_spec(other).dim == dim // 2 and other != model:
                    shared = [d for d in datasets[model] if d in datasets[other]]
                    tables.append(_pooled_gap(scores, shared, (model, cut_codec, cut_reference),
                                              (other, codec, REFERENCE))
                                  .assign(model=f"{model} cut, against {other}", codec=codec, d=dim // 2,
                                          comparison="equal dimension"))
    columns = ["comparison", "model", "codec", "d", "study", "% float32 (first)", "% float32 (second)", "estimate",
               "low", "high", "pi_low", "pi_high"]
    return pd.concat(tables, ignore_index=True).reindex(columns=columns) if tables else pd.DataFrame(columns=columns)


def _pooled_gap(scores: TieAwareScores, datasets: list[str], first: tuple[str, str, str],
                second: tuple[str, str, str]) -> pd.DataFrame:
    """``first`` (model, code, its float32)'s % of its float32's nDCG@10 minus ``second``'s, per collection (paired
    on the same queries, :func:`_retention_gap`) and pooled (:func:`phase2.evaluation.decisions.pool`), with both
    shares."""
    shares, effects, variances = [], [], []
    for dataset in datasets:
        columns = pd.concat([scores(dataset, model, name) for model, *names in (first, second) for name in names],
                            axis=1).dropna()
        clusters = scores.clusters(dataset).reindex(columns.index)
        effect, variance = _retention_gap(columns.to_numpy(), clusters.to_numpy())
        means = columns.mean().to_numpy()
        shares.append((100 * means[0] / means[1], 100 * means[2] / means[3]))
        effects.append(effect), variances.append(variance)
    pooled = decisions.pool(effects, variances, datasets)
    pooled["% float32 (first)"] = [*(a for a, _ in shares), np.nan]
    pooled["% float32 (second)"] = [*(b for _, b in shares), np.nan]
    return pooled


def dimension_within_verdict(table: pd.DataFrame) -> str:
    """One computed paragraph on :func:`dimension_within`: per model and code, the pooled difference d minus d/2
    with its 95% interval and what it says (more kept at the higher dimension, less, or no difference this
    precise); then the equal-dimension comparisons across models."""
    if table.empty:
        return "No model was searched at half its dimension."

    def reading(row, more: str, less: str) -> str:
        return more if row.low > 0 else less if row.high < 0 else "no difference this precise"

    def interval(row) -> str:
        return f"{signed(row.estimate, 1)} points [{signed(row.low, 1)}, {signed(row.high, 1)}]"

    within, across = [], []
    for (comparison, model, codec), g in table.groupby(["comparison", "model", "codec"], sort=False):
        studies, row = g[g.study != "pooled"], g[g.study == "pooled"].iloc[0]
        d, over = int(row.d), f"pooled over {len(studies)} collection{'s' if len(studies) > 1 else ''}"
        first, second = studies["% float32 (first)"].median(), studies["% float32 (second)"].median()
        if comparison == "d against d/2":
            within.append(f"{model} {codec}: median {first:.1f}% of float32 at {d} dimensions, {second:.1f}% at its "
                          f"first {d // 2}; {d} minus {d // 2}: {interval(row)} {over} ("
                          + reading(row, f"more kept at {d}", f"less kept at {d}") + ")")
        else:
            large, small = model.split(" cut, against ")
            across.append(f"{large}'s first {d} dimensions against {small}'s {d}, {codec}: median {first:.1f}% "
                          f"against {second:.1f}%, difference {interval(row)} {over} ("
                          + reading(row, f"{large} keeps more", f"{small} keeps more") + ")")
    text = ("Within one model, the same code at the model's dimension and at half of it (the first half of each "
            "vector, renormalised, measured against float32 of the same cut), % of float32's nDCG@10: "
            + "; ".join(within) + ".")
    if across:
        text += (" At equal dimension across models, which asks whether a model's smaller loss is its dimension or "
                 "the model: " + "; ".join(across) + ".")
    return text + (" The cut vectors are a weaker embedding than the whole (no model here was trained to be "
                   "truncated), so this measures how a code's loss moves with dimension, not which embedding to "
                   "deploy.")


def dimension_verdict(results: pd.DataFrame, table: pd.DataFrame, budgets=(48, 96)) -> str:
    """The full sign code's share of float32 with the highest-dimensional model against each lower-dimensional
    one, as a pooled paired difference with its interval (:func:`model_gap`), worded as one model against another:
    the models differ in more than their dimension, so this does not isolate dimension. Then the best binary code
    at equal memory, median over the collections that have both."""
    dims = table.set_index(["dataset", "model"]).dim
    if dims.nunique() < 2:
        return (f"Every model here has {int(dims.iloc[0])} dimensions: a model of another dimension (mpnet-base, "
                "768) is needed to compare.") if len(dims) else "No results."
    lo, hi = int(dims.min()), int(dims.max())
    large = dims[dims == hi].index.get_level_values(1)[0]
    parts = []
    for small in dict.fromkeys(dims[dims == lo].index.get_level_values(1)):
        gap = model_gap(results, "BIN", large, small)
        if len(gap):
            row = gap.iloc[-1]
            parts.append(f"{large} minus {small}: {signed(row.estimate, 1)} points [{signed(row.low, 1)}, "
                         f"{signed(row.high, 1)}] over {len(gap) - 1} collection{'s' if len(gap) > 2 else ''}")
    if not parts:
        return "No collection has both a 384-d and a 768-d model."
    text = (f"The full sign code's share of its own model's float32 nDCG@10 ({hi} bits with {large}, {lo} with the "
            "others), pooled paired difference with its 95% interval: " + "; ".join(parts) + ". These compare one "
            "model with another, which differ in training and architecture as well as dimension: they do not show "
            "what dimension alone does.")
    small, large_index = dims[dims == lo], dims[dims == hi]
    shared = sorted(set(small.index.get_level_values(0)) & set(large_index.index.get_level_values(0)))

    def median(index, column):
        values = table.set_index(["dataset", "model"])[column].reindex(index)
        return values[[d in shared for d in index.get_level_values(0)]].median()

    for budget in budgets:
        column = f"nDCG@10 at {budget} B"
        if column not in table:
            continue
        at_large, at_small = median(large_index.index, column), median(small.index, column)
        if pd.isna(at_large) or pd.isna(at_small):
            missing = f"the {hi}-d model" if pd.isna(at_large) else f"the {lo}-d models"
            text += f" At {budget} B/vector, no binary code of {missing} fits the budget at the collections' own N."
        else:
            text += (f" At {budget} B/vector, the best binary code reached a median nDCG@10 of {at_large:.3f} with "
                     f"the {hi}-d model against {at_small:.3f} with the {lo}-d models.")
    return text
