"""The quality-vs-memory experiment: exhaustive search with every codec, scored against qrels.

Exhaustive search means any quality difference comes from the codes alone, not
from an index. float32 is always run: it is the reference for "% retained" and
for overlap@10.
"""

from __future__ import annotations

import pandas as pd
from tqdm import tqdm

from phase2 import metrics
from phase2.codecs import Float32, make_codec
from phase2.datasets import load_dataset
from phase2.embeddings import embed

REFERENCE = Float32.name
OVERLAP = "Overlap@10"


def run_collection(dataset: str, model: str, codecs: list[str], depth: int, meta: dict,
                   progress: bool = True) -> pd.DataFrame:
    """Tidy rows (means and per-query values) for one dataset and model, every codec."""
    collection = load_dataset(dataset)
    docs = embed(collection, model, "docs", progress=progress)
    queries = embed(collection, model, "queries", progress=progress)
    depth = min(depth, collection.n_docs)
    names = [REFERENCE] + [c for c in codecs if c != REFERENCE]
    rows, reference_ids = [], None
    for name in tqdm(names, desc=f"{dataset}/{model} codecs", disable=not progress):
        codec = make_codec(name).fit(docs)
        _, ids = codec.search(codec.encode(docs), queries, depth)
        if reference_ids is None:
            reference_ids = ids
        run = metrics.ranked_doc_ids(ids, collection.doc_ids, collection.query_ids)
        values = metrics.per_query(run, collection.qrels)
        values[OVERLAP] = dict(zip(collection.query_ids, metrics.overlap_at_k(ids, reference_ids, 10), strict=True))
        common = {**meta, "dataset": dataset, "model": model, "codec": codec.name, "codec_label": codec.label,
                  "family": codec.family, "bytes_per_vector": codec.code_size - codec.rescore_bytes,
                  "rescore_bytes_per_vector": codec.rescore_bytes}
        for metric, per_query in values.items():
            rows.append({**common, "metric": metric, "value": metrics.mean(per_query), "query_id": ""})
            rows.extend({**common, "metric": metric, "value": float(v), "query_id": q} for q, v in per_query.items())
    return pd.DataFrame(rows)


def summary_table(results: pd.DataFrame, dataset: str, model: str) -> pd.DataFrame:
    """One row per codec (factory ``name`` and readable ``codec``): bytes, mean metrics, % of float32 retained."""
    means = results[(results.query_id == "") & (results.dataset == dataset) & (results.model == model)]
    wide = means.pivot_table(index=["codec", "codec_label", "family", "bytes_per_vector", "rescore_bytes_per_vector"],
                             columns="metric", values="value", sort=False).reset_index()
    wide.columns.name = None
    reference = means[(means.codec == REFERENCE) & (means.metric == "nDCG@10")].value.iloc[0]
    wide["% float32 nDCG@10"] = 100 * wide["nDCG@10"] / reference
    wide["Δ nDCG@10 [95% CI]"] = [_delta_with_ci(results, dataset, model, name) for name in wide.codec]
    wide = wide.rename(columns={"codec": "name", "codec_label": "codec", "bytes_per_vector": "bytes/vector",
                                "rescore_bytes_per_vector": "rescore bytes/vector"})
    cols = ["name", "codec", "family", "bytes/vector", "rescore bytes/vector", "nDCG@10", "Recall@10", "Recall@100",
            "MRR@10", OVERLAP, "% float32 nDCG@10", "Δ nDCG@10 [95% CI]"]
    return wide[cols].sort_values("bytes/vector", ascending=False, kind="stable").reset_index(drop=True)


def all_summaries(results: pd.DataFrame) -> pd.DataFrame:
    """:func:`summary_table` for every (dataset, model) in the results, stacked with those two columns."""
    pairs = results[["dataset", "model"]].drop_duplicates().itertuples(index=False)
    return pd.concat([summary_table(results, d, m).assign(dataset=d, model=m) for d, m in pairs],
                     ignore_index=True)


def verdict(summaries: pd.DataFrame, loss_threshold: float = 5.0) -> str:
    """The summary paragraph in numbers: what each codec keeps of float32, and where binary loses most."""
    reference = summaries[summaries.codec == Float32.label]
    lines = []
    for model, ref in reference.groupby("model", sort=False):
        n = len(ref)
        ref_bytes = int(ref["bytes/vector"].iloc[0])
        lines.append(f"**{model}**, {n} collection{'s' if n > 1 else ''}, float32 = {ref_bytes} bytes/vector:")
        rows = summaries[(summaries.model == model) & (summaries.codec != Float32.label)]
        for codec, g in rows.groupby("codec", sort=False):
            kept = g["% float32 nDCG@10"]
            loss = ref.set_index("dataset")["nDCG@10"] - g.set_index("dataset")["nDCG@10"]
            worst, best = g.loc[kept.idxmin()], g.loc[kept.idxmax()]
            size, rescore = int(g["bytes/vector"].iloc[0]), int(g["rescore bytes/vector"].iloc[0])
            footprint = (f"{size} scanned + {rescore} rescore bytes" if rescore else
                         f"{size} bytes, {ref_bytes / size:.0f}x smaller")
            change = -loss
            kept_text = (f"{kept.iloc[0]:.1f}%" if n == 1 else
                         f"{kept.min():.1f}% ({worst.dataset}) to {kept.max():.1f}% ({best.dataset}), "
                         f"median {kept.median():.1f}%,")
            change_text = (_signed(change.iloc[0]) if n == 1 else
                           f"{_signed(change.min())} to {_signed(change.max())}")
            lines.append(
                f"- {codec} ({footprint}) kept {kept_text} of float32's "
                f"nDCG@10 (absolute change {change_text}); its top-10 shared "
                f"{100 * g[OVERLAP].mean():.0f}% of float32's top-10 on average."
            )
        binary = rows[rows.family == "binary"]
        for codec, g in binary.groupby("codec", sort=False):
            bad = g[g["% float32 nDCG@10"] < 100 - loss_threshold]
            lines.append(f"- {codec} lost more than {loss_threshold:.0f}% of float32's nDCG@10 on {len(bad)} of "
                         f"{len(g)} collection{'s' if len(g) > 1 else ''}"
                         + (f": {', '.join(bad.dataset)}." if len(bad) else "."))
        if len(binary):
            budget = int(binary["bytes/vector"].min())  # the 1-bit codes' size
            reference_ndcg = ref.set_index("dataset")["nDCG@10"]
            notes = []
            for dataset, g in rows[rows["bytes/vector"] <= budget].groupby("dataset", sort=False):
                best = g.loc[g["nDCG@10"].idxmax()]
                best_binary = g[g.family == "binary"]["nDCG@10"].max() / reference_ndcg[dataset]
                extra = int(best["rescore bytes/vector"])
                note = (f"{dataset}: {best.codec}{f' (+{extra} rescore bytes)' if extra else ''} "
                        f"({best['% float32 nDCG@10']:.1f}%")
                notes.append(note + (")" if best.family == "binary" else f"; best binary {100 * best_binary:.1f}%)"))
            lines.append(f"- Best codec within {budget} scanned bytes/vector, by nDCG@10: " + "; ".join(notes) + ".")
    return "\n".join(lines)


def _signed(x: float) -> str:
    """``+0.012`` style, without a negative zero."""
    return f"{round(float(x), 3) + 0.0:+.3f}"


def _delta_with_ci(results: pd.DataFrame, dataset: str, model: str, codec: str) -> str:
    """Mean per-query nDCG@10 difference from float32 with its paired bootstrap 95% CI, as text."""
    rows = results[(results.dataset == dataset) & (results.model == model) & (results.metric == "nDCG@10")
                   & (results.query_id != "")]
    per_query = rows.pivot_table(index="query_id", columns="codec", values="value")
    diff = (per_query[codec] - per_query[REFERENCE]).to_numpy()
    low, high = metrics.paired_bootstrap_ci(diff)
    return f"{_signed(diff.mean())} [{_signed(low)}, {_signed(high)}]"
