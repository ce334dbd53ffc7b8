"""The study's summaries on hand-made per-query results: equal-memory picks, verdicts, failure profiles."""

import numpy as np
import pandas as pd
import pytest

from phase2 import quality

# codec -> (family, bytes, rescore bytes, per-query nDCG@10 for 40 queries)
RNG = np.random.default_rng(0)
BASE = RNG.uniform(0.2, 0.9, 40)
CODECS = {
    "Flat": ("float", 1536, 0, BASE),
    "PQ16": ("pq", 16, 0, BASE - 0.02),
    "PQ48": ("pq", 48, 0, BASE - 0.01),
    "ITQ128": ("binary", 16, 0, BASE - 0.10),
    "BIN": ("binary", 48, 0, BASE - np.where(np.arange(40) < 4, 0.5, 0.0)),  # four queries carry all the loss
    "ITQ": ("binary", 48, 0, BASE - 0.01 + RNG.normal(0, 0.02, 40)),
    "BIN+R4Flat": ("binary+rescore", 48, 1536, BASE),
    "BIN+R1Flat": ("binary+rescore", 48, 1536, BASE - 0.05),
}


@pytest.fixture(scope="module")
def results():
    rows = []
    for codec, (family, size, rescore, values) in CODECS.items():
        common = {"dataset": "toy", "model": "m", "codec": codec, "codec_label": codec, "family": family,
                  "bytes_per_vector": size, "rescore_bytes_per_vector": rescore}
        for metric in ("nDCG@10", "Recall@10", "Recall@100", "MRR@10", quality.OVERLAP):
            rows.append({**common, "metric": metric, "value": float(values.mean()), "query_id": ""})
            rows.extend({**common, "metric": metric, "value": float(v), "query_id": f"q{i}"}
                        for i, v in enumerate(values))
    return pd.DataFrame(rows)


def test_equal_memory_picks_the_best_code_of_each_family_that_fits(results):
    best = quality.equal_memory(quality.all_summaries(results), budgets=(16, 48))
    picks = {(r.budget, r.family): r.name for r in best.itertuples()}
    assert picks == {(16, "pq"): "PQ16", (16, "binary"): "ITQ128", (48, "pq"): "PQ48", (48, "binary"): "ITQ",
                     (48, "binary+rescore"): "BIN+R4Flat"}


def test_binary_at_budgets_uses_the_paired_ci_of_the_two_codes(results):
    best = quality.equal_memory(quality.all_summaries(results), budgets=(16, 48))
    comparison = quality.binary_at_budgets(results, best).set_index("budget")
    assert comparison.loc[16, "binary is"] == "worse"  # 0.08 lower on every query
    assert comparison.loc[48, "binary is"] == "competitive"  # ITQ vs PQ48: noise around zero
    assert comparison.loc[16, "Δ (binary - other)"] == pytest.approx(-0.08)
    text = quality.budget_verdict(comparison.reset_index())
    assert "- 16 bytes/vector: binary 1 worse, 0 competitive, 0 better of 1 (collection, model) pair" in text


def test_failure_profile_sees_a_loss_concentrated_on_few_queries(results):
    profile = quality.failure_profile(results, ["BIN", "ITQ128"]).set_index("name")
    assert profile.loc["BIN", "% hurt"] == pytest.approx(10.0) and profile.loc["BIN", "% unchanged"] == 90.0
    assert profile.loc["BIN", "loss share of worst 10%"] == pytest.approx(1.0)
    assert profile.loc["ITQ128", "loss share of worst 10%"] == pytest.approx(0.1)
    worst = quality.worst_queries(results, "toy", "m", "BIN", {f"q{i}": f"text {i}" for i in range(40)}, n=3)
    assert list(worst["query"]) == ["text 0", "text 1", "text 2"]


def test_rescoring_table_and_verdict_find_the_first_factor_not_significantly_below_float32(results):
    table = quality.rescoring_table(quality.all_summaries(results))
    row = table.set_index("first stage").loc["BIN"]
    assert set(row.factor) == {0, 1, 4} and table.loc[table.factor == 4, "bytes read per query"].item() == 40 * 1536
    text = quality.rescoring_verdict(table)
    assert "- BIN rescored with Flat: toy/m: " in text
    assert "not significantly below float32 from factor 4 (40 candidates, 100.0%, Δ nDCG@10 CI [" in text
    curves = quality.rescoring_curves(table)
    assert list(curves[curves.pipeline == "BIN + Flat"].factor) == [0, 1, 4]


def test_rescoring_grid_never_rescores_a_codec_by_itself():
    assert quality.rescoring_grid(["BIN", "SQ8"], ["SQ8"], [2]) == ["BIN", "SQ8", "BIN+R2SQ8"]
