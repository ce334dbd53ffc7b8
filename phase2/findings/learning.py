"""What a trained codec's training set does to it: how much fitting on every vector it encodes would flatter it,
and its retention against the size of the set it was fitted on (the learning curve)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from phase2.codecs import inapplicable_reason, make_codec, training_size
from phase2.data.datasets import load_dataset
from phase2.data.embeddings import get_model_spec
from phase2.evaluation import decisions, metrics
from phase2.experiments.plans import flattered_codecs, learning_trainings
from phase2.experiments.searches import REFERENCE, TieAwareScores, Vectors, search_values
from phase2.findings.per_pair import mean_interval


def training_flattery(dataset: str, model: str, codecs: list[str], depth: int,
                      published_roots: tuple = ()) -> pd.DataFrame:
    """How much fitting each trained codec on every vector it encodes would flatter it.

    Per trained codec that fits both ways: nDCG@10 as the book reports it (fitted on a seeded half of the corpus)
    and fitted on the whole corpus (tie-aware, as every decision), their per-query difference (corpus minus half)
    as % of float32's nDCG@10, with its normal 95% interval from the cluster bootstrap's SE. Searches are read
    from ``published_roots`` where current there.
    """
    collection = load_dataset(dataset)
    vectors = Vectors(collection, model, progress=False)
    depth = min(depth, collection.n_docs)
    dim = get_model_spec(model).dim
    clusters = dict(zip(collection.query_ids, decisions.query_clusters(collection.query_ids, collection.qrels),
                        strict=True))

    def ndcg(name: str, training: str) -> tuple[list[str], np.ndarray]:
        found = search_values(collection, model, name, depth, vectors, published_roots, training)
        return found["judged"], found["values"][metrics.TIE_AWARE]

    judged, reference = ndcg(REFERENCE, "half")
    scale = 100 / reference.mean()
    rows = []
    for name in flattered_codecs(codecs):
        if inapplicable_reason(name, collection.n_docs, dim, "half"):
            continue
        half, corpus = ndcg(name, "half")[1], ndcg(name, "corpus")[1]
        _, low, high, _ = mean_interval(corpus - half, [clusters[q] for q in judged])
        rows.append({"dataset": dataset, "model": model, "codec": name, "nDCG@10 (half)": half.mean(),
                     "nDCG@10 (whole corpus)": corpus.mean(),
                     "flattery (% of float32)": scale * (corpus - half).mean(),
                     "CI low": scale * low, "CI high": scale * high})
    return pd.DataFrame(rows)


def learning_curve(dataset: str, model: str, codecs: list[str], sizes: list[int], depth: int,
                   published_roots: tuple = ()) -> pd.DataFrame:
    """nDCG@10 (tie-aware) retention of each trained codec against the size of the set it was fitted on, from a
    few hundred vectors to the whole corpus (:func:`learning_trainings`; nested seeded sets), on every judged query;
    beside it, the training-free sign codes (``BIN``, ``BINa``: one value, no curve). Each point: % of float32's
    nDCG@10, and its difference from the whole-corpus fit in % of float32 with a normal 95% interval from the
    cluster bootstrap. Sizes a codec cannot be fitted on are left out."""
    collection = load_dataset(dataset)
    dim = get_model_spec(model).dim
    read = TieAwareScores(depth, published_roots)

    def scores(name: str, training: str = "half") -> tuple[list[str], np.ndarray]:
        values = read(dataset, model, name, training)
        return list(values.index), values.to_numpy()

    judged, reference = scores(REFERENCE)
    groups = read.clusters(dataset).reindex(judged).tolist()
    scale = 100 / reference.mean()
    rows = []
    for name in codecs:
        trained = make_codec(name).trained
        trainings = [t for t in learning_trainings(collection.n_docs, sizes)
                     if not inapplicable_reason(name, collection.n_docs, dim, t)] if trained else ["half"]
        if not trainings:
            continue
        fitted = {training: scores(name, training)[1] for training in trainings}
        whole = fitted[trainings[-1]]
        for training, values in fitted.items():
            gap, low, high, _ = (scale * v for v in mean_interval(values - whole, groups))
            rows.append({"dataset": dataset, "model": model, "codec": name,
                         "training vectors": training_size(make_codec(name), collection.n_docs, training)
                         if trained else 0, "training": training if trained else "none",
                         "% float32 nDCG@10": scale * values.mean(), "Δ from whole corpus (% of float32)": gap,
                         "low": low, "high": high})
    return pd.DataFrame(rows)


def learning_verdict(curve: pd.DataFrame) -> str:
    """Per trained codec and collection, the training size from which its retention stays within the equivalence
    margin (:data:`~phase2.evaluation.decisions.MARGIN_SHARE` of float32's nDCG@10) of the whole-corpus fit, by point
    estimate (the intervals are in the table); and the training-free codes' retention beside them."""
    if curve.empty:
        return "No learning curve was run."
    margin = 100 * decisions.MARGIN_SHARE
    parts = []
    for (dataset, codec), g in curve[curve.training != "none"].groupby(["dataset", "codec"], sort=False):
        g = g.sort_values("training vectors")
        close = (g["Δ from whole corpus (% of float32)"].abs() <= margin)[::-1].cummin()[::-1]  # and all larger
        plateau = g[close]["training vectors"].min()
        parts.append(f"{codec} on {dataset}: {g['% float32 nDCG@10'].iloc[0]:.1f}% of float32 fitted on "
                     f"{g['training vectors'].iloc[0]:,} vectors, {g['% float32 nDCG@10'].iloc[-1]:.1f}% on all "
                     f"{g['training vectors'].iloc[-1]:,}; within ±{margin:g}% of that from {plateau:,} vectors")
    free = curve[curve.training == "none"]
    text = ("Trained codes against the size of their training set (nested seeded sets): " + "; ".join(parts) + ".")
    if len(free):
        text += (" Sign bits need no training: " + "; ".join(
            f"{r.codec} {r['% float32 nDCG@10']:.1f}% on {r.dataset}" for _, r in free.iterrows())
            + ", the same on a corpus of any size or one that streams in.")
    return text


def flattery_verdict(flattery: pd.DataFrame) -> str:
    """One computed paragraph on :func:`training_flattery`'s table."""
    if flattery.empty:
        return "No trained single-stage codec ran, so training on the whole corpus was not measured."
    share = flattery["flattery (% of float32)"]
    above, below = int((flattery["CI low"] > 0).sum()), int((flattery["CI high"] < 0).sum())
    top = flattery.loc[share.idxmax()]
    return (f"Fitted on every vector it encodes instead of on half of them, a trained codec would gain a "
            f"median {share.median():+.2f}% of float32's nDCG@10 (from {share.min():+.2f}% to {share.max():+.2f}% "
            f"over {len(flattery)} codec and collection pairs). The largest gain is {top.codec} on {top.dataset}, "
            f"{top['flattery (% of float32)']:+.2f}% [{top['CI low']:+.2f}, {top['CI high']:+.2f}]. {above} of the "
            f"95% intervals lie above 0 and {below} below it. The book's figures are those fitted on half.")
