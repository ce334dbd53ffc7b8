"""The study's four research questions, and a one-paragraph answer to each computed from the chapters' results.

The conclusion chapter states these paragraphs; each function takes the tables that chapter already
reads, so an answer changes exactly when its evidence does.
"""

from __future__ import annotations

import pandas as pd

from phase2.evaluation import decisions
from phase2.experiments import plans
from phase2.findings import geometry, per_pair, quality, throughput

QUESTIONS = {
    "RQ1": "As vectors go from float32 to 1 bit, how does retrieval quality fall, per collection and per "
           "embedding model, and at equal memory, when does binary match or lose to the alternatives?",
    "RQ2": "What are the real speedups of binary Hamming search over strong float, int8, PQ and ANN baselines, "
           "once popcount cost, selection, memory traffic and index traversal are counted, and how do they "
           "change with corpus size and threads?",
    "RQ3": "Why does binarization fail where it fails: does the embeddings' geometry explain the 1-bit loss, "
           "and does a cheap diagnostic of a corpus sample predict it?",
    "RQ4": "For a corpus size, a RAM budget and a recall target, which scheme should one use, and where is "
           "binary the right choice?",
}

EVIDENCE = {"RQ1": "quality_vs_memory", "RQ2": "throughput", "RQ3": "geometry", "RQ4": "regimes"}
"""The chapter whose results answer each question: the front page links it."""
_WHERE = {"RAM": "in RAM", "disk": "on disk"}  # where a cell keeps the rescoring store


def front_page(texts: dict[str, str]) -> str:
    """The answers as the front page shows them: each question, the conclusion's computed answer (``texts``, by
    question), and a link to the chapter that holds its evidence."""
    return "\n\n".join(f"**{rq}. {QUESTIONS[rq]}**\n\n{text} (Evidence: {{doc}}`../chapters/{EVIDENCE[rq]}`.)"
                         for rq, text in texts.items()) + "\n"


def _kept(summaries: pd.DataFrame, name: str) -> pd.Series:
    return summaries[summaries.name == name].set_index(["dataset", "model"])["% float32 nDCG@10"]


def quality_answer(summaries: pd.DataFrame, comparison: pd.DataFrame, pooled: pd.DataFrame | None = None,
                   n: int | None = None, kinds: pd.DataFrame | None = None) -> str:
    """RQ1 from :func:`phase2.findings.per_pair.all_summaries`, :func:`phase2.findings.quality.binary_at_budgets` (bytes
    counted at ``n``, or each collection's own N), :func:`phase2.findings.quality.pooled_retention` of the sign code and
    :func:`phase2.findings.quality.binary_kinds`."""
    pairs = summaries[["dataset", "model"]].drop_duplicates()
    parts = [f"Over {len(pairs)} (collection, model) pairs and exhaustive search"]
    scalar = [(label, _kept(summaries, name)) for name, label in
              (("FP16", "float16"), ("SQ8", "int8"), ("SQ4", "int4")) if (summaries.name == name).any()]
    if scalar:
        parts.append("the median share of float32's nDCG@10 kept was " + ", ".join(
            f"{k.median():.1f}% for {label} (worst {k.min():.1f}%)" for label, k in scalar))
    text = "; ".join(parts) + "."
    if (summaries.name == "BIN").any():
        sign = _kept(summaries, "BIN")
        worst = sign.idxmin()
        size = int(summaries[summaries.name == "BIN"]["bytes/vector"].min())
        text += (f" The 1-bit sign code ({size} B/vector at the smallest dimension, 32x smaller than float32) kept a "
                 f"median {sign.median():.1f}%, from {sign.min():.1f}% ({worst[0]}, {worst[1]}) to "
                 f"{sign.max():.1f}%" + (f", {_kept(summaries, 'SQ8').median() - sign.median():.1f} points below "
                                         "int8's median." if (summaries.name == "SQ8").any() else "."))
        if pooled is not None and len(pooled):
            text += " Pooled over collections (random effects, 95% interval), it kept " + quality.pooled_sign_sentence(
                pooled) + "."
        variants = {name: _kept(summaries, name).median() for name in plans.LOSS_CODECS  # the d-bit sign codes
                    if (summaries.name == name).any()}
        best = max(variants, key=variants.get)
        if best != "BIN":
            text += f" The best 1-bit variant in the median, {best}, kept {variants[best]:.1f}%."
    if kinds is not None and len(kinds):
        text += " By kind of 1-bit code, the best code's pooled share: " + "; ".join(
            f"{kind}, " + ", ".join(f"{r['best code']} {r['pooled % float32']:.1f}% [{r.low:.1f}, {r.high:.1f}] "
                                    f"with {r.model}" for _, r in g.iterrows())
            for kind, g in kinds.groupby("kind", sort=False)) + "."
    if len(comparison):
        pooled = quality.pooled_budgets(comparison)
        where = "each collection's own N" if n is None else f"N = {n:,}"
        text += (f" At equal memory (bytes/vector with the trained state, at {where}), binary minus the best other "
                 f"code in % of float32's nDCG@10, pooled over collections by random effects, was "
                 + quality.pooled_budget_sentence(pooled)
                 + f" (equivalent: the interval inside ±{100 * decisions.MARGIN_SHARE:g}%; intervals simultaneous at "
                 f"{decisions.level_label(pooled.level.iloc[0])} over the {len(pooled)} (budget, model) rows; codes "
                 "chosen on one half of the queries and compared on the other).")
    rescored = [n for n in ("BIN+R4Flat", "BIN+R4SQ8") if (summaries.name == n).any()]
    if rescored:
        text += " Re-ranking the sign code's top 40 brought the median to " + " and ".join(
            f"{_kept(summaries, n).median():.1f}% with {'float32' if n.endswith('Flat') else 'int8'}"
            for n in rescored) + "."
    return text


def speed_answer(kernels: pd.DataFrame, points: pd.DataFrame, target: float = 0.9) -> str:
    """RQ2 from :func:`phase2.findings.throughput.kernel_table` and
    :func:`phase2.findings.throughput.operating_points`."""
    sentences = []
    if len(kernels):
        sentences.append(throughput.kernel_sentence(kernels))
    real = points[points.data_kind == "real"]
    synthetic = points[points.data_kind == "synthetic"]
    by_size = pd.concat([real, synthetic[synthetic.n_vectors > (real.n_vectors.max() if len(real) else 0)]])
    most = by_size.search_threads.max()
    exhaustive = by_size[(by_size.search_threads == most) & by_size.method.isin(["flat", "bin-flat"])]
    ratios = exhaustive.pivot_table(index="n_vectors", columns="method", values="qps")
    if {"flat", "bin-flat"} <= set(ratios.columns):
        ratio = (ratios["bin-flat"] / ratios["flat"]).dropna()
        recall = exhaustive[exhaustive.method == "bin-flat"].set_index("n_vectors")["recall@10"]
        sentences.append(
            f"Exhaustive 1-bit search answered {', '.join(f'{r:.1f}x at N = {n:,}' for n, r in ratio.items())} "
            f"the queries/s of float32 flat search ({most} threads) with 1/32 of its memory, but returned only "
            f"{recall.min():.2f}-{recall.max():.2f} of the exact top 10 by itself.")
    largest = by_size[(by_size.n_vectors == by_size.n_vectors.max()) & (by_size.search_threads == most)]
    if len(largest):
        n = int(largest.n_vectors.iloc[0])
        speed = throughput.speedup_at_recall(largest, [target])
        sentences.append(f"Counting only settings that reach recall@10 >= {target} at N = {n:,}: "
                         + throughput.fastest_sentence(speed, target))
    return " ".join(sentences)


def geometry_answer(runs: pd.DataFrame, seed: int = 0) -> str:
    """RQ3 from a geometry chapter run (its search results and the diagnostics it recorded)."""
    table, searches = geometry.split_results(runs)
    frame = table.merge(geometry.loss_table(per_pair.all_summaries(searches)), on=["dataset", "model"])
    replicates = geometry.loss_replicates(searches, frame, seed=seed) if frame.dataset.nunique() >= 3 else None
    return " ".join(geometry.summary(frame, seed, replicates))


def regimes_answer(verdicts: pd.DataFrame, target_recall: float) -> str:
    """RQ4 from :func:`phase2.findings.advisor.binary_verdicts` over the conclusion's grid."""
    counts = verdicts["binary is"].value_counts()
    text = (f"Asking for recall@10 >= {target_recall} of exact search, over {len(verdicts)} (queries/s target, "
            f"rescoring store, corpus size, RAM) cells a binary scheme was preferable in "
            f"{counts.get('preferable', 0)}, competitive in {counts.get('competitive', 0)} and worse in "
            f"{counts.get('worse', 0)}; nothing measured qualified in {counts.get('nothing feasible', 0)}.")
    wins = verdicts[verdicts["binary is"] == "preferable"]
    if len(wins):
        text += " Binary was the right choice at " + "; ".join(
            f"{row.docs:,} docs in {row['memory GB']:g} GB (store {_WHERE[row['rescoring store']]}, "
            f"{row['min qps']:,.0f}+ q/s: {row['best binary']})" for _, row in wins.iterrows()) + "."
    others = verdicts[verdicts["binary is"].isin(["worse", "competitive"])]["best other"].value_counts()
    if len(others):
        text += (f" Where another family qualified, the fastest was most often {others.index[0]} "
                 f"({others.iloc[0]} of {others.sum()} cells).")
    decided = verdicts[verdicts["binary is"] != "nothing feasible"]
    beyond = decided[decided.extrapolation > 1]
    if len(beyond):
        text += (f" {len(beyond)} of the {len(decided)} decided cells compare a scheme beyond the largest corpus it "
                 f"was measured at (up to {beyond.extrapolation.max():g}x): its queries/s there are extrapolated and "
                 "its recall taken where it was measured, which is optimistic for an index (its recall usually falls "
                 "as N grows); the deployment table names both schemes of each cell.")
    return text


def deployment_detail(row: pd.Series) -> str:
    """What a cell of :func:`phase2.findings.advisor.binary_verdicts` compared: the fastest feasible binary and
    other scheme, each measured at the cell's size, interpolated, or extrapolated how far beyond its largest
    measured corpus."""
    if row["binary is"] == "nothing feasible":
        return ""
    sides = [f"{side}: " + ("none feasible" if row[f"best {side}"] is None else
                            f"{row[f'best {side}']}, {row[f'{side} basis']}") for side in ("binary", "other")]
    return f" ({'; '.join(sides)})"
