"""The decision rule against the libraries that define its parts: scipy, statsmodels, and hand computations."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import optimize, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired

from phase2.evaluation import decisions


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
def test_one_row_decides_as_tost_and_the_t_test_do(mean, sd, margin):
    """On normal differences, one row's deciding interval (level 95% for a table of one row) is the t-test's 95%
    interval up to Monte Carlo error, and equivalent exactly when statsmodels' TOST at 2.5% rejects."""
    rng = np.random.default_rng(7)
    base = rng.uniform(0.2, 0.8, size=600)
    diff = rng.normal(mean, sd, size=600)
    row = decisions.decide(pd.DataFrame([decisions.compare(diff, margin, resamples=20_000)])).iloc[0]
    low, high = stats.ttest_1samp(diff, 0.0).confidence_interval(0.95)
    assert (row.low, row.high) == pytest.approx((low, high), abs=0.1 * (high - low))
    assert row.level == 0.95 and row["mean"] == pytest.approx(diff.mean())
    p_tost = ttost_paired(base + diff, base, -margin, margin)[0]
    assert (row.outcome == "equivalent") == (p_tost < 0.025)


def test_no_wrong_claim_in_a_table_more_often_than_alpha():
    """1,000 simulated tables of 20 comparisons, half truly 0 (equivalent within the margin), a quarter truly
    at the margin's edge (neither equivalent nor different), a quarter truly 0.5 margins below 0: a claim is wrong
    when it says equivalent of a difference at the margin, worse or better of a zero, or better of a negative
    one. The familywise chance of any wrong claim stays at or under 5% (the old rule's separate Holm runs for
    TOST and for the difference test allowed up to 10%)."""
    rng = np.random.default_rng(11)
    truth = np.r_[np.zeros(10), np.full(5, 0.01), np.full(5, -0.005)]
    wrong_tables = 0
    for _ in range(1000):
        table = decisions.decide(pd.DataFrame({"mean": truth + rng.normal(0, 0.003, 20), "se": 0.003,
                                               "margin": 0.01}))
        wrong = ((table.outcome == "equivalent") & (np.abs(truth) >= 0.01)) \
            | ((table.outcome != "equivalent") & (table.outcome != "inconclusive") & (truth == 0)) \
            | ((table.outcome == "better") & (truth < 0))
        wrong_tables += wrong.any()
    assert wrong_tables / 1000 <= 0.05


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
    assert (table.level == 1 - 0.05 / 4).all()  # simultaneous over the table's four rows
    assert ((table.low < table["mean"]) & (table["mean"] < table.high)).all()
    with pytest.raises(ValueError, match="margin must be positive"):
        decisions.compare(cases["worse"], margin=0.0)


def test_significant_but_within_the_margin_is_equivalent_not_worse():
    """10,000 queries 0.002 worse: a difference the bootstrap is sure of, and smaller than a 0.01 margin."""
    diff = np.random.default_rng(9).normal(-0.002, 0.02, 10_000)
    row = decisions.decide(pd.DataFrame([decisions.compare(diff, margin=0.01)])).iloc[0]
    assert row.high < 0 and row.outcome == "equivalent"


def paule_mandel_hksj(effects, variances, alpha=0.05):
    """The textbook definitions, written out: tau^2 solves Q(tau^2) = k - 1 (0 if Q(0) < k - 1), then the
    Hartung-Knapp-Sidik-Jonkman interval with its scale q floored at 1 (the modified HKSJ). The oracle for the
    statsmodels-backed pool."""
    k = len(effects)

    def q(tau2):
        w = 1 / (variances + tau2)
        pooled = (w * effects).sum() / w.sum()
        return (w * (effects - pooled) ** 2).sum() - (k - 1)

    tau2 = 0.0 if q(0.0) <= 0 else optimize.brentq(q, 0.0, 1e6, xtol=1e-12)
    w = 1 / (variances + tau2)
    pooled = (w * effects).sum() / w.sum()
    scale = max(1.0, (w * (effects - pooled) ** 2).sum() / (k - 1))
    se = np.sqrt(scale / w.sum())
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


def test_pooled_interval_never_collapses_below_the_fixed_effect_one_when_collections_agree():
    """The issue's case: five studies with SE 1 and nearly equal effects. Plain HKSJ scales by q = Q / (k - 1)
    far below 1 and gave [89.90, 90.18], about 9x narrower than the fixed-effect [88.80, 91.28]."""
    effects = [90.0, 90.1, 89.95, 90.05, 90.1]
    pooled = decisions.pool(effects, [1.0] * 5).iloc[-1]
    fixed_half = 1.959964 / np.sqrt(5)
    assert pooled.high - pooled.low >= 2 * fixed_half
    assert (pooled.low, pooled.high) == pytest.approx(
        (np.mean(effects) - stats.t.ppf(0.975, 4) / np.sqrt(5), np.mean(effects) + stats.t.ppf(0.975, 4) / np.sqrt(5)))
    assert pooled.pi_low <= pooled.low and pooled.pi_high >= pooled.high  # a new collection varies more


@pytest.mark.parametrize("tau", [0.0, 1.0, 3.0])
def test_pooled_interval_covers_the_true_mean_in_simulation(tau):
    """2,000 meta-analyses of five collections with unequal standard errors (0.5 to 2, as the book's collections
    differ in size), true mean 90, between-collection spread ``tau``. The modified HKSJ interval is conservative
    when the collections agree (tau = 0: the floor q >= 1 with t(4) quantiles gives at least the fixed-effect
    interval's 95%, 98-100% here) and near nominal once they differ (93-97%)."""
    rng = np.random.default_rng(7)
    se = np.array([0.5, 0.8, 1.0, 1.5, 2.0])
    covered = 0
    for _ in range(2000):
        effects = 90 + rng.normal(0, tau, 5) + rng.normal(0, se)
        pooled = decisions.pool(effects, se ** 2).iloc[-1]
        covered += pooled.low <= 90 <= pooled.high
    coverage = covered / 2000
    assert (0.95 <= coverage <= 1.0) if tau == 0 else (0.93 <= coverage <= 0.97), coverage


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


def test_relevance_components_join_queries_through_any_shared_relevant_document():
    """q1-q2 share d1, q2-q3 share d2 (q1 and q3 share nothing but are joined through q2); q4 stands alone and q5
    has no relevant document. Identical relevant sets join none of them."""
    qrels = {"q1": {"d1": 1}, "q2": {"d1": 1, "d2": 1}, "q3": {"d2": 2, "d9": 0}, "q4": {"d4": 1}, "q5": {"d1": 0}}
    ids = ["q1", "q2", "q3", "q4", "q5"]
    assert decisions.relevance_components(ids, qrels) == ["q1", "q1", "q1", "q4", "q5"]
    assert decisions.query_clusters(ids, qrels) == ids
