"""How the book decides: a declared equivalence margin, the cluster bootstrap, simultaneous intervals with four
outcomes, pooling.

The rule, declared before any result (the method chapter prints it from here):

- **Margin.** Two codes are *equivalent* when their mean nDCG@10 differs by less than
  :data:`MARGIN_SHARE` of that collection and model's float32 nDCG@10.
- **Intervals.** The mean per-query difference is resampled by the bootstrap, *by cluster*: queries
  that share their set of relevant documents (SQuAD questions about one paragraph, SciFact claims
  citing the same abstracts) are drawn together, every other query alone. With one query per cluster
  this is the ordinary paired bootstrap, draw for draw.
- **Outcomes.** Each comparison's interval is its mean ± a quantile times its cluster-bootstrap standard error
  (normal; t for a pooled estimate), at the simultaneous level 1 - alpha/m over the table's m comparisons
  (Bonferroni), so that the chance of any wrong claim in a table, of any kind, is at most alpha. A cell is
  *equivalent* when its interval lies inside ±margin (two one-sided tests, TOST); else *better* or *worse* when
  it excludes 0, by its sign; else *inconclusive* (the interval is too wide for either). The interval printed is
  the one that decides, with its level.
- **Pooling.** Collections are pooled by a random-effects estimate (Paule-Mandel tau^2, which Veroniki et
  al. 2016 recommend over DerSimonian-Laird, with the modified Hartung-Knapp-Sidik-Jonkman interval on k - 1
  degrees of freedom, its scale floored at 1; statsmodels), never by counting cells.

Why normal intervals from the bootstrap's standard error rather than its percentiles: a percentile at level
1 - 0.05/60 needs far more than 2,000 resamples, and counting resampled means beyond a bound gives p-values that
cannot go below ``1 / (B + 1)``.
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


def relevance_components(query_ids: list[str], qrels: dict[str, dict[str, int]]) -> list[str]:
    """A coarser clustering than :func:`query_clusters`: connected components of the graph joining two queries that
    share any relevant document (each labelled by its first query). The method chapter sets the two side by side;
    on nfcorpus it leaves 6 components, one of 318 of 323 queries, too few units to resample."""
    parent = {q: q for q in query_ids}
    position = {q: i for i, q in enumerate(query_ids)}

    def root(q: str) -> str:
        while parent[q] != q:
            parent[q] = parent[parent[q]]
            q = parent[q]
        return q

    holder: dict[str, str] = {}
    for qid in query_ids:
        for doc, grade in qrels.get(qid, {}).items():
            if grade > 0:
                if doc in holder:
                    a, b = root(qid), root(holder[doc])
                    parent[max(a, b, key=position.get)] = min(a, b, key=position.get)
                else:
                    holder[doc] = qid
    return [root(q) for q in query_ids]


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
    """Mean per-query difference, its cluster-bootstrap standard error (``se``) and the ``margin``: a row for
    :func:`decide`, which gives it its interval and outcome."""
    if not margin > 0:
        raise ValueError(f"the equivalence margin must be positive, got {margin}")
    means = bootstrap_means(differences, clusters, resamples, seed)
    return {"mean": float(np.mean(differences)), "se": float(np.std(means, ddof=1)), "margin": float(margin)}


def holm(p_values) -> np.ndarray:
    """Holm-adjusted p-values (statsmodels ``multipletests``), in the input order."""
    p = np.asarray(p_values, dtype=np.float64)
    return multipletests(p, alpha=ALPHA, method="holm")[1] if len(p) else p


def decide(table: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Each row's deciding interval and outcome, one rule for every table of the book.

    ``table`` has ``mean``, ``se`` and ``margin`` per row (and ``df`` where the estimate is a t statistic, a
    pooled one; else normal). For its m rows, each row's interval is mean ± q·se at the simultaneous level
    1 - alpha/m (Bonferroni): with probability at least 1 - alpha every interval of the table covers its true
    difference, so the chance that *any* claim the table makes is wrong (equivalent, worse or better, all kinds
    together) is at most alpha. A row is *equivalent* when its interval lies inside ±margin (TOST at alpha/(2m)),
    else *worse* or *better* when it lies below or above 0, else *inconclusive*. The interval printed is the one
    that decides: ``low``, ``high`` and its ``level``."""
    out = table.copy()
    m = max(len(out), 1)
    tail = alpha / (2 * m)
    df = out["df"].to_numpy(np.float64) if "df" in out else np.full(len(out), np.nan)  # NaN: normal
    q = np.where(np.isfinite(df), stats.t.isf(tail, np.where(np.isfinite(df), df, 1)), stats.norm.isf(tail))
    out["low"], out["high"] = out["mean"] - q * out["se"], out["mean"] + q * out["se"]
    out["level"] = 1 - alpha / m
    out["outcome"] = ["equivalent" if -margin < low and high < margin else "worse" if high < 0 else
                      "better" if low > 0 else "inconclusive"
                      for low, high, margin in zip(out["low"], out["high"], out["margin"], strict=True)]
    return out


def level_label(level: float) -> str:
    """``98.75%``: a simultaneous level as the tables print it."""
    return f"{100 * level:.4g}%"


def pool(effects, variances, names=None, alpha: float = ALPHA) -> pd.DataFrame:
    """Random-effects pooling: Paule-Mandel tau^2 (statsmodels ``combine_effects``) and the *modified*
    Hartung-Knapp-Sidik-Jonkman interval on k - 1 degrees of freedom, its scale q floored at 1 (Knapp & Hartung
    2003; Röver, Knapp & Friede 2015): plain HKSJ scales the variance by q < 1 whenever the collections agree more
    than their standard errors say (Q < k - 1), and then gives an interval narrower than the fixed-effect one.

    One row per study (its normal interval, estimate ± z·SE), then ``pooled`` with estimate, interval, ``tau2``,
    ``I2`` (max(0, (Q - df) / Q), Higgins & Thompson 2002; statsmodels leaves it negative when Q < df), ``se`` and
    ``df`` of the interval (for :func:`decide`; NaN for one study, whose interval is normal) and the 95%
    prediction interval for a new collection, ``pi_low``/``pi_high``: estimate ± t(k - 2)·sqrt(tau^2 + SE^2)
    (Higgins, Thompson & Spiegelhalter 2009; NaN below three studies). One study is returned as itself."""
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
        return pd.concat([rows.assign(weight=1.0), rows.assign(study="pooled", weight=np.nan, tau2=0.0, I2=0.0,
                                                               se=np.sqrt(variances), df=np.nan, pi_low=np.nan,
                                                               pi_high=np.nan)], ignore_index=True)
    with warnings.catch_warnings():  # use_t asks for per-study sample sizes; their normal intervals are used
        warnings.simplefilter("ignore", InvalidTestWarning)
        result = combine_effects(effects, variances, method_re="iterated", use_t=True, alpha=alpha)
    k = len(effects)
    variance = max(float(result.var_hksj_re), float(result.sd_eff_w_re) ** 2)  # q floored at 1
    half = stats.t.isf(alpha / 2, k - 1) * np.sqrt(variance)
    spread = stats.t.isf(alpha / 2, k - 2) * np.sqrt(float(result.tau2) + variance) if k >= 3 else np.nan
    estimate = float(result.mean_effect_re)
    rows["weight"] = result.weights_rel_re
    total = pd.DataFrame([{"study": "pooled", "estimate": estimate, "low": estimate - half, "high": estimate + half,
                           "weight": np.nan, "tau2": float(result.tau2), "I2": max(0.0, float(result.i2)),
                           "se": float(np.sqrt(variance)), "df": k - 1, "pi_low": estimate - spread,
                           "pi_high": estimate + spread}])
    return pd.concat([rows, total], ignore_index=True)
