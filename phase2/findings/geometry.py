"""Embedding geometry, and whether it explains where 1-bit codes lose.

A sign bit keeps only which side of zero each coordinate falls on. It throws away
most when the coordinates are not centred on zero (every vector gets the same bits
for offset dimensions), when a few dimensions carry most of the variance (their
magnitudes are lost), and when the corpus is anisotropic (all vectors in a narrow
cone, so the distinguishing part is small). The diagnostics below measure these on a
seeded sample of the corpus, cheaply enough to run before choosing a codec.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json

import numpy as np
import pandas as pd
from scipy import stats

from phase2.data.datasets import load_dataset
from phase2.data.embeddings import embed, get_model_spec, vectors_key
from phase2.evaluation import decisions
from phase2.experiments import published, searches
from phase2.experiments.plans import LOSS_CODECS
from phase2.findings import per_pair
from phase2.storage import atomic_write_bytes

DIAGNOSTICS = {
    "mean norm": "length of the corpus mean vector (0: centred; unit-norm vectors, so at most 1)",
    "anisotropy": "average cosine of random document pairs",
    "offset/sd": "median over dimensions of |mean| / standard deviation",
    "variance spread": "coefficient of variation of the per-dimension variances",
    "outlier variance": "largest per-dimension variance / median per-dimension variance",
    "effective rank": "exp(entropy of the covariance eigenvalues) / dimensions",
    "bit entropy": "mean entropy (bits) of each sign bit over the sample; 1 = balanced",
    "query shift": "1 - cosine(mean query, mean document)",
    "sign overlap@10": "overlap@10 of sign-bit Hamming search with cosine search, sample documents as queries",
}
"""Diagnostic name -> what it measures. All but ``query shift`` need only the corpus."""

PREDICTOR = "sign overlap@10"
"""The diagnostic tested as a predictor of the 1-bit loss. It was chosen while the chapter was written, with results
in view, so its held-out test checks a hypothesis; it does not confirm a pre-registered one."""


def diagnostics(docs: np.ndarray, queries: np.ndarray, sample: int, seed: int, probes: int = 200) -> dict:
    """:data:`DIAGNOSTICS` of unit-norm ``docs`` (a seeded sample of ``sample`` rows) and ``queries``."""
    if sample < 20:
        raise ValueError(f"sample must be at least 20 documents, got {sample}")
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(docs), size=min(sample, len(docs)), replace=False))
    x = docs[rows].astype(np.float64)
    n, d = x.shape
    mean, sd = x.mean(axis=0), x.std(axis=0)
    variance = sd ** 2
    first, second = rng.integers(0, n, size=(2, 20_000))
    distinct = first != second
    eigenvalues = np.clip(np.linalg.eigvalsh(np.cov(x, rowvar=False)), 0, None)
    share = eigenvalues[eigenvalues > 0] / eigenvalues.sum()
    positive = (x > 0).mean(axis=0)
    bit_entropy = -(_xlog2(positive) + _xlog2(1 - positive))
    query_mean = queries.astype(np.float64).mean(axis=0)
    return {
        "mean norm": float(np.linalg.norm(mean)),
        "anisotropy": float(np.einsum("ij,ij->i", x[first[distinct]], x[second[distinct]]).mean()),
        "offset/sd": float(np.median(np.abs(mean) / np.maximum(sd, 1e-12))),
        "variance spread": float(variance.std() / variance.mean()),
        "outlier variance": float(variance.max() / np.median(variance)),
        "effective rank": float(np.exp(-(share * np.log(share)).sum()) / d),
        "bit entropy": float(bit_entropy.mean()),
        "query shift": float(1 - query_mean @ mean / max(np.linalg.norm(query_mean) * np.linalg.norm(mean), 1e-12)),
        "sign overlap@10": sign_overlap(x, min(probes, n - 11)),
    }


def sign_overlap(x: np.ndarray, probes: int, k: int = 10) -> float:
    """Mean overlap of the top ``k`` by sign-bit Hamming distance and by inner product, the first
    ``probes`` rows as queries against all rows (themselves excluded); ties go to the lower row."""
    if probes < 1 or len(x) <= k:
        raise ValueError(f"need more than {k} rows and at least one probe, got {len(x)} rows, {probes} probes")
    bits = x > 0
    agreement = (bits[:probes, None, :] == bits[None, :, :]).sum(axis=2).astype(np.float64)
    scores = x[:probes] @ x.T
    self_match = np.arange(probes)
    agreement[self_match, self_match] = -np.inf
    scores[self_match, self_match] = -np.inf
    by_bits = np.argsort(-agreement, axis=1, kind="stable")[:, :k]
    by_cosine = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(by_bits, by_cosine, strict=True)]))


def _xlog2(p: np.ndarray) -> np.ndarray:
    return np.where(p > 0, p * np.log2(np.where(p > 0, p, 1)), 0.0)



def loss_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model): float32 nDCG@10, % retained by each of :data:`LOSS_CODECS`, the 1-bit loss
    (100 - % retained by BIN, in points) and the gain of centring, rotation and ITQ over BIN (points)."""
    wide = summary.pivot_table(index=["dataset", "model"], columns="name", values="% float32 nDCG@10",
                               sort=False)
    reference = summary[summary.name == "Flat"].set_index(["dataset", "model"])["nDCG@10"]
    table = pd.DataFrame({"float32 nDCG@10": reference})
    for name in LOSS_CODECS:
        table[f"% {name}"] = wide[name]
    table["1-bit loss"] = 100 - table["% BIN"]
    for name in ("BINc", "BINr", "ITQ"):
        table[f"gain {name}"] = table[f"% {name}"] - table["% BIN"]
    return table.reset_index()


def correlations(frame: pd.DataFrame, target: str, names: list[str], permutations: int = 10_000,
                 seed: int = 0, within: str = "model", replicates: np.ndarray | None = None) -> pd.DataFrame:
    """Spearman's rank correlation of each diagnostic with ``target`` across the rows of ``frame``, with a
    two-sided permutation p-value (seeded) and its Holm-adjusted value over the table's rows.

    ``target`` is permuted only among rows with the same ``within`` (the model): pairs of one model share its
    geometry, pairs of different models are not exchangeable. ``replicates`` (``[B, rows]``, the target
    recomputed on resampled queries, :func:`loss_replicates`) carry the target's own sampling error into a
    95% interval of rho. With a handful of rows, only strong correlations mean much."""
    rng = np.random.default_rng(seed)
    y = frame[target].rank().to_numpy()
    strata = [np.flatnonzero(frame[within].to_numpy() == g) for g in frame[within].unique()]
    rows = []
    for name in names:
        x = frame[name].rank().to_numpy()
        rho = _pearson(x, y)
        shuffled = np.array([_pearson(x, _permute_within(y, strata, rng)) for _ in range(permutations)])
        p = (1 + np.sum(np.abs(shuffled) >= abs(rho) - 1e-12)) / (1 + permutations)
        row = {"diagnostic": name, "Spearman rho": rho, "permutation p": p, "pairs": len(frame)}
        if replicates is not None:
            resampled = [_pearson(x, pd.Series(r).rank().to_numpy()) for r in replicates]
            row["rho low"], row["rho high"] = np.quantile(resampled, [0.025, 0.975])
        rows.append(row)
    table = pd.DataFrame(rows)
    table.insert(3, "Holm p", decisions.holm(table["permutation p"]))
    return table


def _permute_within(y: np.ndarray, strata: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    out = y.copy()
    for rows in strata:
        out[rows] = y[rng.permutation(rows)]
    return out


def loss_replicates(results: pd.DataFrame, frame: pd.DataFrame, resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """``[resamples, rows]``: each row's 1-bit loss (100 - % of float32's nDCG@10 kept by ``BIN``) recomputed on
    its queries resampled by cluster (:func:`phase2.evaluation.decisions.bootstrap_sums`), for :func:`correlations`."""
    columns = []
    for dataset, model in frame[["dataset", "model"]].itertuples(index=False):
        per_query = per_pair.decision_scores(results, dataset, model)[0]
        clusters = per_pair.query_cluster_labels(results, dataset, model).reindex(per_query.index)
        sums, _ = decisions.bootstrap_sums(per_query[["BIN", searches.REFERENCE]].to_numpy(), clusters.to_numpy(),
                                           resamples, seed)
        columns.append(100 - 100 * sums[:, 0] / sums[:, 1])
    return np.stack(columns, axis=1)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x @ x) * (y @ y))
    return float(x @ y / denominator) if denominator > 0 else 0.0


def diagnostics_behaviour() -> str:
    """A digest of what :func:`diagnostics` computes, on a fixed input: a published diagnostics row is current while
    this is unchanged (edits to the statistics in this module leave it so)."""
    rng = np.random.default_rng(0)
    docs, queries = (rng.standard_normal((n, 16)) for n in (300, 40))
    docs, queries = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (docs, queries))
    found = diagnostics(docs.astype(np.float32), queries.astype(np.float32), 200, 0, probes=20)
    return hashlib.sha256(json.dumps(found, sort_keys=True).encode()).hexdigest()[:16]


def diagnostics_table(pairs: list[tuple[str, str]], sample: int, seed: int, profile: str) -> pd.DataFrame:
    """:func:`diagnostics` of every (dataset, model) pair: read from the profile's published diagnostics
    (``<published dir>/geometry/diagnostics.parquet``, :func:`phase2.experiments.published.read_roots`) where a row has
    the same identity (the collection's fingerprint, the vectors' identities, sample and seed) and behaviour digest,
    else computed from the vectors; what was computed joins the published table of a published profile."""
    behaviour = diagnostics_behaviour()
    identities = {pair: _identity(*pair, sample, seed) for pair in pairs}
    found = {}
    for root in published.read_roots(profile):
        path = root / "geometry" / "diagnostics.parquet"
        if path.is_file():
            table = pd.read_parquet(path)
            for row in table[table.behaviour == behaviour].to_dict("records"):
                found.setdefault(row["key"], row)
    rows, computed = [], []
    for (dataset, model), key in identities.items():
        row = found.get(key)
        if row is None:
            collection = load_dataset(dataset)
            docs, queries = (embed(collection, model, part, progress=False) for part in ("docs", "queries"))
            row = {"dataset": dataset, "model": model, **diagnostics(docs, queries, sample, seed), "key": key,
                   "behaviour": behaviour}
            computed.append(row)
        rows.append(row)
    if computed and profile in published.PUBLISHED_PROFILES:
        path = published.published_dir(profile) / "geometry" / "diagnostics.parquet"
        kept = pd.read_parquet(path) if path.is_file() else pd.DataFrame(columns=[*computed[0]])
        merged = pd.concat([kept[~kept.key.isin([r["key"] for r in computed])], pd.DataFrame(computed)],
                           ignore_index=True).sort_values(["dataset", "model"], kind="stable")
        buffer = io.BytesIO()
        merged.to_parquet(buffer, index=False, compression="zstd")
        atomic_write_bytes(path, buffer.getvalue())
    return pd.DataFrame(rows)[["dataset", "model", *DIAGNOSTICS]]


def _identity(dataset: str, model: str, sample: int, seed: int) -> str:
    collection = load_dataset(dataset)
    spec = get_model_spec(model)
    identity = {"dataset": dataset, "fingerprint": collection.fingerprint, "model": model,
                **{part: vectors_key(spec, collection, part) for part in ("docs", "queries")},
                "sample": sample, "seed": seed}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]


def held_out_predictions(frame: pd.DataFrame, predictor: str, target: str, group: str = "dataset") -> pd.DataFrame:
    """Leave one ``group`` out: fit ``target ~ a + b * predictor`` on the other groups' rows, predict the
    held-out rows. Beside it, the baseline that ignores geometry (the other rows' mean)."""
    groups = frame[group].unique()
    if len(groups) < 3:
        raise ValueError(f"need at least 3 distinct {group}s to hold one out, got {len(groups)}")
    rows = []
    for held_out in groups:
        train, test = frame[frame[group] != held_out], frame[frame[group] == held_out]
        slope, intercept = np.polyfit(train[predictor], train[target], 1)
        for _, row in test.iterrows():
            rows.append({"dataset": row.dataset, "model": row.model, predictor: row[predictor],
                         "actual": row[target], "predicted": intercept + slope * row[predictor],
                         "baseline": train[target].mean()})
    out = pd.DataFrame(rows)
    out["error"] = out.predicted - out.actual
    out["baseline error"] = out.baseline - out.actual
    return out


def collection_interval(values: pd.Series, collections: pd.Series, level: float = 0.95) -> dict:
    """Mean of per-collection means with a t interval on k - 1 degrees of freedom (k collections: the unit that
    varies), and the exact two-sided sign-flip p-value over the 2^k sign patterns of those means, which cannot go
    below 2 / 2^k (1/16 with five collections). A bootstrap over five collections covered 83% where it claimed
    95%."""
    means = values.groupby(collections.to_numpy(), sort=False).mean().to_numpy()
    k = len(means)
    if k < 2:
        raise ValueError(f"need at least 2 collections for an interval, got {k}")
    mean, se = float(means.mean()), float(means.std(ddof=1) / np.sqrt(k))
    half = stats.t.isf((1 - level) / 2, k - 1) * se
    signs = np.array(list(itertools.product((-1.0, 1.0), repeat=k)))
    flipped = np.abs((signs * means).mean(axis=1))
    p = float(np.mean(flipped >= abs(mean) - 1e-12))
    return {"mean": mean, "low": mean - half, "high": mean + half, "collections": k, "p sign-flip": p,
            "p floor": 2 / 2 ** k}


def prediction_verdict(predictions: pd.DataFrame, predictor: str, target: str) -> str:
    """One sentence: held-out mean absolute error of the geometric prediction against the baseline's, and their
    difference with a t interval over the collections' means (the unit held out, :func:`collection_interval`)."""
    mae, baseline = predictions.error.abs().mean(), predictions["baseline error"].abs().mean()
    gap = predictions.error.abs() - predictions["baseline error"].abs()
    found = collection_interval(gap, predictions.dataset)
    low, high = found["low"], found["high"]
    better = ("beats" if high < 0 else "is worse than" if low > 0 else
              "is not distinguishable from")
    return (f"Predicting the {target} from {predictor!r} with one dataset held out at a time: mean absolute error "
            f"{mae:.1f} points against {baseline:.1f} for the geometry-blind baseline over {len(predictions)} "
            f"(dataset, model) pairs, a difference of {found['mean']:+.1f} points [{low:+.1f}, {high:+.1f}] (95% t "
            f"interval over the {found['collections']} collections' means, {found['collections'] - 1} degrees of "
            f"freedom; exact sign-flip p {found['p sign-flip']:.3f}, which cannot go below "
            f"{found['p floor']:.4g} with {found['collections']} collections); the diagnostic {better} the "
            "baseline" + (" by the t interval, which assumes normal collection means; the exact sign-flip test does "
                          "not confirm it at 5%." if (high < 0 or low > 0) and found["p sign-flip"] >= 0.05 else "."))


"""``family`` of the result rows that hold a diagnostic (``metric``) of a (dataset, model), with no codec."""


def diagnostic_rows(table: pd.DataFrame, meta: dict) -> pd.DataFrame:
    """The diagnostics table (one row per dataset and model) as result rows of the ``diagnostics`` suite, so later
    chapters can read it."""
    long = table.melt(id_vars=["dataset", "model"], value_vars=list(DIAGNOSTICS), var_name="metric")
    return long.assign(**meta, suite="diagnostics")


def split_results(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A geometry run's results as (diagnostics table, the codecs' search results)."""
    is_diagnostic = runs.suite == "diagnostics"
    table = runs[is_diagnostic].pivot_table(index=["dataset", "model"], columns="metric", values="value",
                                            sort=False).reset_index()
    table.columns.name = None
    return table[["dataset", "model", *DIAGNOSTICS]], runs[~is_diagnostic]


def summary(frame: pd.DataFrame, seed: int = 0, replicates: np.ndarray | None = None) -> list[str]:
    """The chapter's findings as sentences, from the merged diagnostics and loss table (one row per pair) and,
    when given, the loss recomputed on resampled queries (:func:`loss_replicates`)."""
    worst = frame.sort_values("1-bit loss", ascending=False).iloc[0]
    best_fix = frame[["gain BINc", "gain BINr", "gain ITQ"]].median().idxmax().removeprefix("gain ")
    lines = [f"The plain sign code loses between {frame['1-bit loss'].min():.1f} and {frame['1-bit loss'].max():.1f} "
             f"points of float32's nDCG@10 across {len(frame)} (collection, model) pair(s); most on "
             f"{worst.dataset} with {worst.model}.",
             f"Median gain over the plain sign code: centring {frame['gain BINc'].median():+.1f}, random rotation "
             f"{frame['gain BINr'].median():+.1f}, ITQ {frame['gain ITQ'].median():+.1f} points; the best repair "
             f"in the median is {best_fix}."]
    if frame.dataset.nunique() < 3:
        return lines
    found = correlations(frame, "1-bit loss", list(DIAGNOSTICS), seed=seed, replicates=replicates)
    strongest = found.iloc[found["Spearman rho"].abs().argmax()]
    interval = (f", 95% interval {strongest['rho low']:+.2f} to {strongest['rho high']:+.2f} with the loss's own "
                "sampling error" if "rho low" in found else "")
    lines.append(f"Strongest rank correlation with the loss: {strongest.diagnostic!r} (rho "
                 f"{strongest['Spearman rho']:+.2f}{interval}; permutation p {strongest['permutation p']:.3f} "
                 f"within models, {strongest['Holm p']:.2f} after Holm's correction for {len(found)} diagnostics; "
                 f"{len(frame)} pairs). It was picked after the fact, so read it as a hypothesis for more "
                 "collections and models to test.")
    lines.append(prediction_verdict(held_out_predictions(frame, PREDICTOR, "1-bit loss"), PREDICTOR, "1-bit loss"))
    post_hoc = held_out_predictions(frame, strongest.diagnostic, "1-bit loss")
    lines.append(f"The same held-out test with {strongest.diagnostic!r} (selected on these data, so optimistic): "
                 f"mean absolute error {post_hoc.error.abs().mean():.1f} points against "
                 f"{post_hoc['baseline error'].abs().mean():.1f}.")
    return lines
