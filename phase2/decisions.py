"""How the book decides: a declared equivalence margin, the cluster bootstrap, four outcomes, Holm, pooling.

The rule, declared before any result (the method chapter prints it from here):

- **Margin.** Two codes are *equivalent* when their mean nDCG@10 differs by less than
  :data:`MARGIN_SHARE` of that collection and model's float32 nDCG@10.
- **Intervals.** The mean per-query difference is resampled by the bootstrap, *by cluster*: queries
  that share their set of relevant documents (SQuAD questions about one paragraph, SciFact claims
  citing the same abstracts) are drawn together, every other query alone. With one query per cluster
  this is the ordinary paired bootstrap, draw for draw.
- **Outcomes.** Two p-values per comparison, from the mean and its cluster-bootstrap standard error (normal
  approximation): the two one-sided tests of equivalence (TOST: the difference lies within the margin) and
  the two-sided test of a difference.
  Holm's correction runs over the cells of each table, separately for each kind. A cell is
  *equivalent* when TOST rejects; else *better* or *worse* when the difference test rejects, by its
  sign; else *inconclusive* (the interval is too wide for either).
- **Pooling.** Collections are pooled by a random-effects estimate (Paule-Mandel tau^2, which Veroniki et
  al. 2016 recommend over DerSimonian-Laird, with the Hartung-Knapp-Sidik-Jonkman interval on k - 1 degrees
  of freedom; statsmodels), never by counting cells.

Why not count resampled means beyond a bound: such p-values cannot go below ``1 / (B + 1)``, and Holm over
60 cells would multiply that floor past 0.05, so nothing could ever be declared. The intervals shown are the
bootstrap's percentiles.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects
from statsmodels.stats.multitest import multipletests
from statsmodels.tools.sm_exceptions import InvalidTestWarning

MARGIN_SHARE = 0.02
"""The equivalence margin: 2% of float32's nDCG@10 on the same collection and model."""
ALPHA = 0.05
RESAMPLES = 2000
OUTCOMES = ("worse", "equivalent", "better", "inconclusive")


def query_clusters(query_ids: list[str], qrels: dict[str, dict[str, int]]) -> list[str]:
    """Each query's cluster: the first query (in ``query_ids`` order) with the same set of relevant documents;
    a query with no relevant document is its own cluster."""
    first: dict[tuple[str, ...], str] = {}
    labels = []
    for qid in query_ids:
        relevant = tuple(sorted(d for d, grade in qrels.get(qid, {}).items() if grade > 0))
        labels.append(first.setdefault(relevant, qid) if relevant else qid)
    return labels


_CHUNK = 200  # resamples gathered at once: bounds the gathered matrix to 200 x clusters x columns


@functools.lru_cache(maxsize=4)
def _resample_rows(n: int, resamples: int, seed: int) -> tuple[np.ndarray, ...]:
    """The seeded resampled rows (clusters), in chunks of :data:`_CHUNK`: the same for every codec compared on
    one query set, so drawn once (int32 to halve their memory; the values are those of the int64 draw)."""
    rng = np.random.default_rng(seed)
    return tuple(rng.integers(0, n, size=(min(_CHUNK, resamples - start), n)).astype(np.int32)
                 for start in range(0, resamples, _CHUNK))


def bootstrap_sums(values: np.ndarray, clusters: list | np.ndarray | None = None, resamples: int = RESAMPLES,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per resample, the column sums of ``values`` ``[n]`` or ``[n, c]`` over the drawn clusters and the number
    of queries drawn: ``(sums [B, c], sizes [B])``. Clusters are numbered in order of first appearance, so one
    query per cluster draws exactly the rows of the plain query bootstrap."""
    x = np.asarray(values, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"need a non-empty [n] or [n, c] array of per-query values, got shape {np.shape(values)}")
    if clusters is None:
        sums, sizes = x, np.ones(len(x))
    else:
        if len(clusters) != len(x):
            raise ValueError(f"{len(clusters)} cluster labels for {len(x)} queries")
        codes, uniques = pd.factorize(np.asarray(clusters))
        sums = np.stack([np.bincount(codes, weights=col, minlength=len(uniques)) for col in x.T], axis=1)
        sizes = np.bincount(codes, minlength=len(uniques)).astype(np.float64)
    drawn = [(sums[rows].sum(1), sizes[rows].sum(1)) for rows in _resample_rows(len(sums), resamples, seed)]
    return np.concatenate([s for s, _ in drawn]), np.concatenate([n for _, n in drawn])


def bootstrap_means(differences: np.ndarray, clusters=None, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """The bootstrap distribution of the mean per-query difference (``B`` values), resampled by cluster."""
    diff = np.asarray(differences, dtype=np.float64)
    if diff.ndim != 1 or len(diff) == 0:
        raise ValueError(f"need a non-empty 1-D array of per-query differences, got shape {diff.shape}")
    sums, sizes = bootstrap_sums(diff, clusters, resamples, seed)
    return sums[:, 0] / sizes


def paired_bootstrap_ci(differences: np.ndarray, clusters=None, level: float = 0.95, resamples: int = RESAMPLES,
                        seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean per-query difference, resampled by cluster; seeded."""
    tail = (1 - level) / 2
    low, high = np.quantile(bootstrap_means(differences, clusters, resamples, seed), [tail, 1 - tail])
    return float(low), float(high)


def compare(differences: np.ndarray, margin: float, clusters=None, resamples: int = RESAMPLES,
            seed: int = 0) -> dict:
    """Mean difference, its 95% CI and standard error (``se``, for pooling), and the unadjusted p-values of a
    difference and of equivalence within ``margin`` (TOST: the larger of the two one-sided p-values), all from
    one bootstrap distribution."""
    if not margin > 0:
        raise ValueError(f"the equivalence margin must be positive, got {margin}")
    means = bootstrap_means(differences, clusters, resamples, seed)
    mean, se = float(np.mean(differences)), float(np.std(means, ddof=1))
    low, high = np.quantile(means, [0.025, 0.975])
    if se == 0:  # every resample alike: the difference is exactly ``mean`` on every query
        p_difference = float(mean == 0)
        p_equivalence = float(abs(mean) >= margin)
    else:
        p_difference = float(2 * stats.norm.sf(abs(mean) / se))
        p_equivalence = float(max(stats.norm.sf((mean + margin) / se), stats.norm.cdf((mean - margin) / se)))
    return {"mean": mean, "low": float(low), "high": float(high), "se": se, "margin": float(margin),
            "p difference": p_difference, "p equivalence": p_equivalence}


def holm(p_values) -> np.ndarray:
    """Holm-adjusted p-values (statsmodels ``multipletests``), in the input order."""
    p = np.asarray(p_values, dtype=np.float64)
    return multipletests(p, alpha=ALPHA, method="holm")[1] if len(p) else p


def decide(table: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """``table`` (rows from :func:`compare`) with Holm-adjusted p-values over its rows and each row's outcome."""
    out = table.copy()
    out["p difference (Holm)"] = holm(out["p difference"])
    out["p equivalence (Holm)"] = holm(out["p equivalence"])
    out["outcome"] = [
        "equivalent" if pe < alpha else ("better" if m > 0 else "worse") if pd_ < alpha else "inconclusive"
        for m, pd_, pe in zip(out["mean"], out["p difference (Holm)"], out["p equivalence (Holm)"], strict=True)]
    return out


def pool(effects, variances, names=None, alpha: float = ALPHA) -> pd.DataFrame:
    """Random-effects pooling (Paule-Mandel tau^2, Hartung-Knapp-Sidik-Jonkman interval on k - 1 degrees of
    freedom; statsmodels ``combine_effects``): one row per study, then ``pooled``, with estimate, interval
    and weight; ``tau2`` and ``I2`` in the pooled row (I^2 = max(0, (Q - df) / Q), Higgins & Thompson 2002;
    statsmodels leaves it negative when Q < df). One study is returned as itself, with its normal interval."""
    effects, variances = np.asarray(effects, np.float64), np.asarray(variances, np.float64)
    names = list(names) if names is not None else [str(i) for i in range(len(effects))]
    if len(effects) == 0 or len(effects) != len(variances) or len(names) != len(effects):
        raise ValueError(f"pool: need as many variances and names as effects, got {len(effects)} effects, "
                         f"{len(variances)} variances, {len(names)} names")
    if not np.all(variances > 0):
        raise ValueError(f"pool: every variance must be positive, got {variances.tolist()}")
    z = stats.norm.ppf(1 - alpha / 2)
    rows = pd.DataFrame({"study": names, "estimate": effects, "low": effects - z * np.sqrt(variances),
                         "high": effects + z * np.sqrt(variances)})
    if len(effects) == 1:
        return pd.concat([rows.assign(weight=1.0), rows.assign(study="pooled", weight=np.nan, tau2=0.0, I2=0.0)],
                         ignore_index=True)
    with warnings.catch_warnings():  # use_t asks for per-study sample sizes; their normal intervals are used
        warnings.simplefilter("ignore", InvalidTestWarning)
        result = combine_effects(effects, variances, method_re="iterated", use_t=True, alpha=alpha)
        frame = result.summary_frame()
    pooled = frame.loc["random effect wls"]
    rows["weight"] = frame["w_re"].iloc[:len(effects)].to_numpy()
    total = pd.DataFrame([{"study": "pooled", "estimate": pooled["eff"], "low": pooled["ci_low"],
                           "high": pooled["ci_upp"], "weight": np.nan, "tau2": float(result.tau2),
                           "I2": max(0.0, float(result.i2))}])
    return pd.concat([rows, total], ignore_index=True)
