"""The decision rule against the libraries that define its parts: scipy, statsmodels, and hand computations."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import optimize, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired

from phase2 import decisions


@pytest.mark.parametrize(("level", "z"), [(0.95, 1.959964), (0.8, 1.281552)])
def test_paired_bootstrap_ci_has_its_nominal_level(level, z):
    """On a large normal sample the percentile interval is the normal one: width 2 z sd / sqrt(n), within 10%."""
    diff = np.random.default_rng(3).normal(-0.05, 0.2, size=5000)
    low, high = decisions.paired_bootstrap_ci(diff, level=level)
    expected = 2 * z * diff.std(ddof=1) / np.sqrt(len(diff))
    assert abs((high - low) / expected - 1) < 0.10
    assert low < diff.mean() < high


def bootstrap_drawn_per_call(diff, resamples=2000, seed=0, level=0.95):
    """The plain query bootstrap, drawn afresh in every call: the slow obvious reference."""
    rng = np.random.default_rng(seed)
    means = np.concatenate([diff[rng.integers(0, len(diff), size=(min(200, resamples - start), len(diff)))].mean(1)
                            for start in range(0, resamples, 200)])
    tail = (1 - level) / 2
    return tuple(float(v) for v in np.quantile(means, [tail, 1 - tail]))


def test_bootstrap_draws_resamples_once_per_query_set_and_one_query_clusters_are_the_query_bootstrap():
    """Resampled rows are shared by every codec on one query set; each interval is bit-identical to drawing them
    afresh, and labelling every query as its own cluster changes nothing."""
    rng = np.random.default_rng(4)
    for n in (333, 10_570):
        for _ in range(3):  # several codecs on one query set
            diff = rng.normal(0.01, 0.1, size=n)
            assert decisions.paired_bootstrap_ci(diff) == bootstrap_drawn_per_call(diff)
            assert decisions.paired_bootstrap_ci(diff, [f"q{i}" for i in range(n)]) == bootstrap_drawn_per_call(diff)


def test_paired_bootstrap_ci_is_seeded_and_checks_its_input():
    diff = np.random.default_rng(3).normal(-0.05, 0.2, size=400)
    low, high = decisions.paired_bootstrap_ci(diff)
    assert low < diff.mean() < high and (low, high) == decisions.paired_bootstrap_ci(diff)
    assert decisions.paired_bootstrap_ci(np.zeros(10)) == (0.0, 0.0)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        decisions.paired_bootstrap_ci(np.array([]))
    with pytest.raises(ValueError, match="3 cluster labels for 400 queries"):
        decisions.paired_bootstrap_ci(diff, ["a", "b", "c"])


def clustered_differences(seed=5, clusters=400):
    """Queries in clusters of 1-5 that share a cluster effect, as SQuAD questions share a paragraph."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 6, size=clusters)
    labels = np.repeat(np.arange(clusters), sizes)
    diff = rng.normal(0, 0.1, size=clusters)[labels] + rng.normal(-0.01, 0.05, size=len(labels))
    return diff, labels


def test_cluster_bootstrap_standard_error_is_the_cluster_robust_one_of_statsmodels():
    diff, labels = clustered_differences()
    robust = sm.OLS(diff, np.ones(len(diff))).fit(cov_type="cluster", cov_kwds={"groups": labels}).bse[0]
    naive = sm.OLS(diff, np.ones(len(diff))).fit().bse[0]
    by_cluster = decisions.bootstrap_means(diff, labels, resamples=4000).std(ddof=1)
    by_query = decisions.bootstrap_means(diff, resamples=4000).std(ddof=1)
    assert by_cluster == pytest.approx(robust, rel=0.08)
    assert by_query == pytest.approx(naive, rel=0.08)
    assert robust > 1.5 * naive  # why clusters matter: queries alone would give intervals far too narrow


@pytest.mark.parametrize(("mean", "sd", "margin"), [(0.003, 0.05, 0.01), (-0.006, 0.08, 0.01), (0.0, 0.02, 0.002)])
def test_tost_and_difference_p_values_agree_with_statsmodels_and_scipy(mean, sd, margin):
    """On normal differences the bootstrap p-values are the t-tests' up to Monte Carlo error."""
    rng = np.random.default_rng(7)
    base = rng.uniform(0.2, 0.8, size=600)
    diff = rng.normal(mean, sd, size=600)
    ours = decisions.compare(diff, margin, resamples=20_000)
    p_tost = ttost_paired(base + diff, base, -margin, margin)[0]
    p_diff = stats.ttest_1samp(diff, 0.0).pvalue
    assert ours["p equivalence"] == pytest.approx(p_tost, abs=0.015)
    assert ours["p difference"] == pytest.approx(p_diff, abs=0.015)
    assert ours["mean"] == pytest.approx(diff.mean())


def test_holm_equals_statsmodels_and_the_hand_computation():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1, then running maximum: 0.02, 0.03, 0.06, 0.06
    assert decisions.holm(p).tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert decisions.holm(p).tolist() == multipletests(p, method="holm")[1].tolist()
    assert len(decisions.holm([])) == 0


def test_each_comparison_gets_one_of_four_outcomes():
    rng = np.random.default_rng(8)
    cases = {"worse": rng.normal(-0.1, 0.05, 500), "better": rng.normal(0.1, 0.05, 500),
             "equivalent": rng.normal(0.0, 0.01, 500), "inconclusive": rng.normal(0.0, 0.3, 20)}
    table = decisions.decide(pd.DataFrame([decisions.compare(d, margin=0.01) for d in cases.values()]))
    assert table.outcome.tolist() == list(cases)
    assert (table["p difference (Holm)"] >= table["p difference"]).all()
    with pytest.raises(ValueError, match="margin must be positive"):
        decisions.compare(cases["worse"], margin=0.0)


def test_significant_but_within_the_margin_is_equivalent_not_worse():
    """10,000 queries 0.002 worse: a difference the bootstrap is sure of, and smaller than a 0.01 margin."""
    diff = np.random.default_rng(9).normal(-0.002, 0.02, 10_000)
    row = decisions.decide(pd.DataFrame([decisions.compare(diff, margin=0.01)])).iloc[0]
    assert row["p difference"] < 0.05 and row.outcome == "equivalent"


def paule_mandel_hksj(effects, variances, alpha=0.05):
    """The textbook definitions, written out: tau^2 solves Q(tau^2) = k - 1 (0 if Q(0) < k - 1), then the
    Hartung-Knapp-Sidik-Jonkman interval. The oracle for the statsmodels-backed pool."""
    k = len(effects)

    def q(tau2):
        w = 1 / (variances + tau2)
        pooled = (w * effects).sum() / w.sum()
        return (w * (effects - pooled) ** 2).sum() - (k - 1)

    tau2 = 0.0 if q(0.0) <= 0 else optimize.brentq(q, 0.0, 1e6, xtol=1e-12)
    w = 1 / (variances + tau2)
    pooled = (w * effects).sum() / w.sum()
    se = np.sqrt((w * (effects - pooled) ** 2).sum() / ((k - 1) * w.sum()))
    t = stats.t.ppf(1 - alpha / 2, k - 1)
    return pooled, pooled - t * se, pooled + t * se, tau2


@pytest.mark.parametrize("effects", [[93.0, 95.0, 90.0, 97.0, 94.0], [95.0, 95.1, 94.9, 95.05]])
def test_pooled_estimate_is_paule_mandel_with_the_hksj_interval(effects):
    """Heterogeneous collections, and ones closer than their own noise (tau^2 = 0)."""
    effects = np.array(effects)
    variances = np.linspace(0.5, 2.0, len(effects))
    table = decisions.pool(effects, variances, names=[f"c{i}" for i in range(len(effects))])
    pooled = table.iloc[-1]
    estimate, low, high, tau2 = paule_mandel_hksj(effects, variances)
    assert table.study.tolist() == [*(f"c{i}" for i in range(len(effects))), "pooled"]
    assert (pooled.estimate, pooled.low, pooled.high) == pytest.approx((estimate, low, high), rel=1e-5)
    assert pooled.tau2 == pytest.approx(tau2, abs=1e-4)
    assert table.weight.iloc[:-1].sum() == pytest.approx(1.0)
    w = 1 / variances  # Cochran's Q with fixed-effect weights; I^2 = max(0, (Q - df) / Q)
    q = (w * (effects - (w * effects).sum() / w.sum()) ** 2).sum()
    assert pooled.I2 == pytest.approx(max(0.0, (q - (len(effects) - 1)) / q), abs=1e-9)
    assert pooled.I2 >= 0


def test_pooling_one_study_returns_it_and_bad_input_is_named():
    table = decisions.pool([90.0], [4.0], ["only"])
    assert table.estimate.tolist() == [90.0, 90.0] and table.low.iloc[-1] == pytest.approx(90 - 1.959964 * 2)
    with pytest.raises(ValueError, match="every variance must be positive"):
        decisions.pool([90.0, 91.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="2 effects, 1 variances"):
        decisions.pool([90.0, 91.0], [1.0])


def test_queries_sharing_their_relevant_documents_form_one_cluster():
    qrels = {"q1": {"p1": 1}, "q2": {"p2": 1}, "q3": {"p1": 1, "x": 0}, "q4": {}, "q5": {"p2": 1, "p3": 2}}
    assert decisions.query_clusters(["q1", "q2", "q3", "q4", "q5", "q6"], qrels) == ["q1", "q2", "q1", "q4", "q5",
                                                                                      "q6"]
