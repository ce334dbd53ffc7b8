"""The study's summaries on hand-made per-query results: equal-memory picks, verdicts, failure profiles."""

import numpy as np
import pandas as pd
import pytest

from phase2.codecs import Codec
from phase2.data.datasets import load_beir_dir
from phase2.errors import ParameterError
from phase2.evaluation import decisions, metrics
from phase2.experiments import plans, searches
from phase2.findings import dimension, learning, per_pair, quality, rescoring

from conftest import write_collection

# codec -> (family, bytes, rescore bytes, fixed bytes, per-query nDCG@10 for 40 queries)
RNG = np.random.default_rng(0)
BASE = RNG.uniform(0.2, 0.9, 40)
N = 10_000  # the toy collection's size: a 384-d PQ codebook (393,216 B) adds 39.3 B per vector at this N
CODEBOOK = 4 * 256 * 384
CODECS = {
    "Flat": ("float", 1536, 0, 0, BASE),
    "PQ16": ("pq", 16, 0, CODEBOOK, BASE - 0.02),
    "PQ48": ("pq", 48, 0, CODEBOOK, BASE - 0.01),
    "ITQ128": ("binary", 16, 0, 4 * (384 + 384 * 128), BASE - 0.10),
    "BIN": ("binary", 48, 0, 0, BASE - np.where(np.arange(40) < 4, 0.5, 0.0)),  # four queries carry all the loss
    "ITQ": ("binary", 48, 0, 4 * (384 + 384 * 384), BASE - 0.01 + RNG.normal(0, 0.02, 40)),
    "BIN+R4Flat": ("binary+rescore", 48, 1536, 0, BASE),
    "BIN+R1Flat": ("binary+rescore", 48, 1536, 0, BASE - 0.05),
}


def toy_results(codecs=CODECS, clusters=None):
    rows = []
    for codec, (family, size, rescore, fixed, values) in codecs.items():
        common = {"dataset": "toy", "model": "m", "codec": codec, "codec_label": codec, "family": family,
                  "bytes_per_vector": size, "rescore_bytes_per_vector": rescore, "fixed_bytes": fixed, "n_vectors": N}
        for metric in ("nDCG@10", "Recall@10", "Recall@100", "MRR@10", metrics.OVERLAP):
            rows.append({**common, "metric": metric, "value": float(values.mean()), "query_id": "",
                         "query_cluster": ""})
            rows.extend({**common, "metric": metric, "value": float(v), "query_id": f"q{i}",
                         "query_cluster": clusters[i] if clusters else f"q{i}"} for i, v in enumerate(values))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def results():
    return toy_results()


def test_summaries_add_the_trained_state_spread_over_the_collection(results):
    summary = per_pair.all_summaries(results).set_index("name")
    assert summary.loc["PQ48", "fixed bytes"] == CODEBOOK and summary.loc["PQ48", "N"] == N
    assert summary.loc["PQ48", "bytes/vector at N"] == pytest.approx(48 + CODEBOOK / N)
    assert summary.loc["BIN", "bytes/vector at N"] == 48
    assert quality.amortized_bytes(summary, 10**6)["PQ48"] == pytest.approx(48.393216)


def test_equal_memory_counts_the_trained_state_at_the_n_it_names(results):
    """At the toy's own N the PQ codebook (39 B/vector) pushes both PQ codes out of their budgets and the rotation
    (14.8 B) pushes ITQ out of 48; spread over 10^7 vectors, each fits within the 2% slack."""
    summaries = per_pair.all_summaries(results)
    own = quality.equal_memory(results, summaries, budgets=(16, 48))
    assert {(r.budget, r.family): r.name for r in own.itertuples()} == {
        (48, "binary"): "BIN", (48, "binary+rescore"): "BIN+R4Flat"}
    assert set(own.N) == {N}
    large = quality.equal_memory(results, summaries, budgets=(16, 48), n=10**7)
    assert {(r.budget, r.family): r.name for r in large.itertuples()} == {
        (16, "pq"): "PQ16", (16, "binary"): "ITQ128", (48, "pq"): "PQ48", (48, "binary"): "ITQ",
        (48, "binary+rescore"): "BIN+R4Flat"}
    assert set(large.N) == {10**7}


def test_binary_at_budgets_chooses_on_one_half_tests_on_the_other_and_decides(results):
    summaries = per_pair.all_summaries(results)
    comparison = quality.binary_at_budgets(results, summaries, budgets=(16, 48), n=10**7).set_index("budget")
    assert comparison.loc[16, "binary is"] == "worse"  # 0.08 lower on every query
    assert comparison.loc[16, "Δ (binary - other)"] == pytest.approx(-0.08)
    tested = comparison.loc[16, "test queries"]
    assert 0 < tested < 40 and comparison.loc[48, "test queries"] == tested
    # ITQ vs PQ48 on ~20 queries: noise around 0, its interval too wide to call equivalent within 2%
    assert comparison.loc[48, "binary is"] == "inconclusive"
    assert (comparison.level == 1 - 0.05 / 2).all()  # simultaneous over the table's two cells
    tested_reference = BASE[per_pair.held_out(results, "toy", "m")[2] == 0].mean()
    assert comparison.loc[16, "Δ % of float32"] == pytest.approx(-8 / tested_reference)
    text = quality.budget_verdict(comparison.reset_index(), n=10**7)
    assert text.startswith("Bytes per vector at N = 10,000,000, within 2% of the budget; binary minus the best other "
                           "code in % of float32's nDCG@10, pooled over collections by random effects; margin ±2%; "
                           "intervals simultaneous at 97.5% over the 2 pooled rows")
    assert "- 16 B/vector: m -13.3% [" in text and "], worse (1 collection). Per collection: toy/m worse." in text


def test_pooled_budgets_decide_the_relative_difference_over_collections():
    """Collections whose float32 nDCG@10 differs 2x, binary 0.02 below the other code on each: the same
    absolute difference is 2.9% of one and 5.7% of the other (a third in between); the pool is of the relative
    differences, and it is decided as a whole (worse), not as a count of cells."""
    rows = pd.DataFrame({"dataset": ["a", "b", "c"], "model": "m", "budget": 48, "Δ % of float32": [-2.9, -5.7, -4.3],
                         "se % of float32": [0.5, 0.5, 0.5]})
    pooled = quality.pooled_budgets(rows).iloc[0]
    assert pooled["Δ %"] == pytest.approx(-4.3, abs=0.01) and pooled.collections == 3
    assert pooled["binary is"] == "worse" and pooled.high < 0 and pooled.df == 2


def test_binary_at_budgets_at_the_collections_own_n_finds_no_rival_that_fits(results):
    summaries = per_pair.all_summaries(results)
    assert quality.binary_at_budgets(results, summaries, budgets=(16, 48)).empty  # no PQ code fits at N = 10,000


def test_pooled_retention_pools_collections_per_model():
    table = quality.pooled_retention(toy_results(), "BIN").set_index("study")
    kept = 100 * CODECS["BIN"][4].mean() / BASE.mean()
    assert table.loc["toy", "estimate"] == pytest.approx(kept)
    assert table.loc["pooled", "estimate"] == pytest.approx(kept)
    assert table.loc["toy", "low"] < kept < table.loc["toy", "high"]


def test_failure_profile_sees_a_loss_concentrated_on_few_queries(results):
    profile = quality.failure_profile(results, ["BIN", "ITQ128"]).set_index("name")
    assert profile.loc["BIN", "% hurt"] == pytest.approx(10.0) and profile.loc["BIN", "% unchanged"] == 90.0
    assert profile.loc["BIN", "loss share of worst 10%"] == pytest.approx(1.0)
    assert profile.loc["ITQ128", "loss share of worst 10%"] == pytest.approx(0.1)
    worst = quality.worst_queries(results, "toy", "m", "BIN", {f"q{i}": f"text {i}" for i in range(40)}, n=3)
    assert list(worst["query"]) == ["text 0", "text 1", "text 2"]


def test_rescoring_table_and_verdict_find_the_first_factor_equivalent_to_float32(results):
    table = rescoring.rescoring_table(per_pair.all_summaries(results))
    row = table.set_index("first stage").loc["BIN"]
    assert set(row.factor) == {0, 1, 4} and table.loc[table.factor == 4, "bytes read per query"].item() == 40 * 1536
    text = rescoring.rescoring_verdict(table)
    assert "- BIN rescored with Flat: toy/m: " in text
    assert "equivalent to float32 from factor 4 (40 candidates, 100.0%, Δ nDCG@10 [" in text
    assert text.startswith("Intervals simultaneous at 97.5% over the 2 rescored rows;")  # one rule, as everywhere
    assert "- ITQ" not in text and "BIN rescored with Flat: toy/m: 91.3% alone," in text
    curves = rescoring.rescoring_curves(table)
    assert list(curves[curves.pipeline == "BIN + Flat"].factor) == [0, 1, 4]


def test_rescoring_grid_never_rescores_a_codec_by_itself():
    assert plans.rescoring_grid(["BIN", "SQ8"], ["SQ8"], [2]) == ["BIN", "SQ8", "BIN+R2SQ8"]


def test_verdict_sorts_codecs_into_tiers_by_their_worst_collection(results):
    text = quality.verdict(results, per_pair.all_summaries(results))
    lines = text.splitlines()
    assert lines[0].startswith("**m**, 1 collection, float32 = 1536 bytes/vector")
    assert lines[1].startswith("- 2 codes kept at least 99% of float32's nDCG@10 on every collection: ")
    assert "BIN+R4Flat (48 B + 1536 B rescore store, 100.0%)" in lines[1]
    assert lines[2].startswith("- 2 codes kept 95-99% on every collection: PQ16 (16 B, ")
    assert lines[3].startswith("- 3 codes lost more than 5% on at least one collection: ITQ128 (16 B, 82.6%)")
    # within the sign code's 48 B at the toy's own N: the rotation (14.8 B/vector) and codebooks push ITQ and PQ out
    assert lines[4] == ("- Best codec within 48 bytes/vector at the collection's own N (trained state included, "
                        "within 2%; rescore stores beside), by nDCG@10 (chosen on one half of the queries, % of "
                        "float32 on the other): toy: BIN+R4Flat (+1536 rescore bytes) (100.0%; best binary BIN 95.8%).")


def test_search_results_are_cached_and_keyed_by_codec_depth_and_code(tmp_path, monkeypatch):
    words = "wing lift heat flow boundary layer speed shock wave drag".split()
    corpus = [{"_id": f"d{i}", "text": " ".join(words[i % 10:] + words[:i % 10][: i % 3])} for i in range(12)]
    qrels = ["query-id\tcorpus-id\tscore", "q1\td1\t1", "q2\td3\t1"]
    tiny_collection = write_collection(tmp_path / "data", corpus=corpus, qrels=qrels)
    monkeypatch.setenv("PHASE2_DATA_DIR", str(tiny_collection.parent))
    monkeypatch.setenv("PHASE2_CACHE_DIR", str(tmp_path / "cache"))
    first = searches.run_collection("tiny", "minilm-l6", ["BIN", "SQ8", "BIN+R2Flat"], 12, {}, progress=False)
    assert len(list((tmp_path / "cache" / "search").glob("*.ids.npy"))) == 4  # Flat runs as the reference

    def no_fit(self, corpus):
        raise AssertionError(f"cache miss: {self.name} was fitted again")

    monkeypatch.setattr(Codec, "fit", no_fit)
    again = searches.run_collection("tiny", "minilm-l6", ["BIN", "SQ8", "BIN+R2Flat"], 12, {}, progress=False)
    pd.testing.assert_frame_equal(again.drop(columns="embeddings"), first.drop(columns="embeddings"))
    assert set(first.embeddings) == {'{"docs": {"source": "encoded"}, "queries": {"source": "encoded"}}'}
    assert set(again.embeddings) == {'{"docs": {"source": "cache"}, "queries": {"source": "cache"}}'}
    with pytest.raises(AssertionError, match="cache miss: Flat"):
        searches.run_collection("tiny", "minilm-l6", ["BIN"], 11, {}, progress=False)  # another depth

    collection = load_beir_dir(tiny_collection)
    key = searches.search_key(collection, "minilm-l6", "BIN", 12)
    assert key != searches.search_key(collection, "minilm-l6", "BINc", 12)
    assert key == searches.search_key(collection, "minilm-l6", "BIN", 12, "corpus")  # nothing trained: one search
    trained = searches.search_key(collection, "minilm-l6", "SQ8", 12)
    assert trained != searches.search_key(collection, "minilm-l6", "SQ8", 12, "corpus")
    with pytest.raises(ParameterError, match="training: 'queries' is not one of half, corpus"):
        searches.search_key(collection, "minilm-l6", "SQ8", 12, "queries")
    monkeypatch.setattr(searches, "_search_code_digest", lambda: "edited codecs.py")
    assert key != searches.search_key(collection, "minilm-l6", "BIN", 12)


def test_training_flattery_compares_the_reported_half_fit_with_fitting_on_the_whole_corpus(tmp_path, monkeypatch):
    words = "wing lift heat flow boundary layer speed shock wave drag".split()
    corpus = [{"_id": f"d{i}", "text": " ".join(words[i % 10:] + words[:i % 10][: i % 3])} for i in range(12)]
    qrels = ["query-id\tcorpus-id\tscore", "q1\td1\t1", "q2\td3\t1"]
    monkeypatch.setenv("PHASE2_DATA_DIR", str(write_collection(tmp_path / "data", corpus=corpus, qrels=qrels).parent))
    monkeypatch.setenv("PHASE2_CACHE_DIR", str(tmp_path / "cache"))
    codecs = ["BIN", "SQ8", "BINc", "BIN+R2SQ8"]
    assert plans.flattered_codecs(codecs) == ["SQ8", "BINc"]
    table = learning.training_flattery("tiny", "minilm-l6", codecs, 12).set_index("codec")
    reported = per_pair.all_summaries(searches.run_collection("tiny", "minilm-l6", codecs, 12, {}, progress=False))
    reported = reported.set_index("name")
    assert list(table.index) == ["SQ8", "BINc"]
    for name in table.index:
        row = table.loc[name]
        aware = metrics.TIE_AWARE  # the flattery table decides on tie-aware nDCG@10, as every table does
        assert row["nDCG@10 (half)"] == pytest.approx(reported.loc[name, aware])
        gain = (row["nDCG@10 (whole corpus)"] - row["nDCG@10 (half)"]) / reported.loc["Flat", aware]
        assert row["flattery (% of float32)"] == pytest.approx(100 * gain)
        assert row["CI low"] <= row["flattery (% of float32)"] <= row["CI high"]
    assert "over 2 codec and collection pairs" in learning.flattery_verdict(table.reset_index())


def test_the_rq1_answer_states_scalar_sign_equal_memory_and_rescoring_numbers(results):
    from phase2.findings import answers

    summaries = per_pair.all_summaries(results)
    text = answers.quality_answer(summaries, quality.binary_at_budgets(results, summaries, n=10**7),
                                  quality.pooled_retention(results), n=10**7)
    assert text.startswith("Over 1 (collection, model) pairs and exhaustive search.")
    sign = 100 * (BASE - np.where(np.arange(40) < 4, 0.5, 0.0)).mean() / BASE.mean()
    assert f"The 1-bit sign code (48 B/vector at the smallest dimension, 32x smaller than float32) kept a median " \
           f"{sign:.1f}%" in text
    assert "Pooled over collections (random effects, 95% interval), it kept 91.3% [" in text
    assert ("At equal memory (bytes/vector with the trained state, at N = 10,000,000), binary minus the best other "
            "code in % of float32's nDCG@10, pooled over collections by random effects, was 16 B: m -13.3% [") in text
    assert "cells" not in text  # a headline pools; it does not count cells
    assert "Re-ranking the sign code's top 40 brought the median to 100.0% with float32." in text


def test_paired_difference_pairs_queries_by_id_not_by_row_order(results):
    """A codec 0.01 below float32 on every query, with large between-query spread: the paired interval is
    tight around -0.01 and stays so when one codec's rows come in another order; unpaired, it would not be."""
    shuffled = results.sample(frac=1.0, random_state=1)  # rows in any order: pairing is by query id
    mean, low, high = per_pair.paired_difference(shuffled, "toy", "m", "PQ48")
    assert mean == pytest.approx(-0.01) and low == pytest.approx(-0.01) and high == pytest.approx(-0.01)
    flat = per_pair.per_query_table(results, "toy", "m")["Flat"].to_numpy()
    pq = per_pair.per_query_table(shuffled, "toy", "m").loc[[f"q{i}" for i in range(40)], "PQ48"].to_numpy()
    unpaired = np.random.default_rng(0).permutation(pq) - flat  # the same values, paired wrongly
    wrong_low, wrong_high = decisions.paired_bootstrap_ci(unpaired)
    assert wrong_high - wrong_low > 0.05 > high - low


def test_dimension_verdict_compares_one_model_with_another_with_a_paired_interval():
    """The sign code keeps float32 - 0.10 on every query with MiniLM-L6 and float32 - 0.05 with mpnet: a gap of
    0.05 / mean(float32) in share, paired over the same queries, worded as one model against another."""
    codecs = {"Flat": CODECS["Flat"], "BIN": ("binary", 48, 0, 0, BASE - 0.10)}
    two = pd.concat([toy_results(codecs).assign(model="minilm-l6"),
                     toy_results({**codecs, "BIN": ("binary", 96, 0, 0, BASE - 0.05)}).assign(model="mpnet-base")],
                    ignore_index=True)
    best = pd.DataFrame([{"dataset": "toy", "model": m, "budget": b, "family": "binary", "name": n, "nDCG@10": v}
                         for m, b, n, v in (("minilm-l6", 48, "BIN", 0.30), ("minilm-l6", 96, "BIN2t", 0.32),
                                            ("mpnet-base", 48, "ITQ384", 0.33), ("mpnet-base", 96, "BIN", 0.36))])
    table = dimension.dimension_table(best)
    assert table.dim.tolist() == [384, 768] and table["best binary ≤ 48 B"].tolist() == ["BIN", "ITQ384"]
    text = dimension.dimension_verdict(two, table)
    gap = dimension.model_gap(two, "BIN", "mpnet-base", "minilm-l6").iloc[-1]
    assert gap.estimate == pytest.approx(100 * 0.05 / BASE.mean()) and gap.low < gap.estimate < gap.high
    assert text.startswith("The full sign code's share of its own model's float32 nDCG@10 (768 bits with mpnet-base, "
                           f"384 with the others), pooled paired difference with its 95% interval: mpnet-base minus "
                           f"minilm-l6: +{gap.estimate:.1f} points [")
    assert "they do not show what dimension alone does." in text
    assert text.endswith("At 96 B/vector, the best binary code reached a median nDCG@10 of 0.360 with the 768-d "
                         "model against 0.320 with the 384-d models.")
    one = dimension.dimension_table(best[best.model == "minilm-l6"])
    assert dimension.dimension_verdict(two, one).startswith("Every model here has 384 dimensions")
    no_fit = dimension.dimension_table(best[(best.model == "minilm-l6") | (best.budget == 96)])  # nothing 768-d at 48 B
    assert ("At 48 B/vector, no binary code of the 768-d model fits the budget at the collections' own N. At 96"
            in dimension.dimension_verdict(two, no_fit))


def test_summaries_are_cached_by_content_and_equal_to_computing_them_again(results, tmp_path, monkeypatch):
    monkeypatch.setenv("PHASE2_CACHE_DIR", str(tmp_path))
    fresh = per_pair.all_summaries(results)
    assert len(list((tmp_path / "summaries").glob("*.parquet"))) == 1
    pd.testing.assert_frame_equal(per_pair.all_summaries(results), fresh, check_exact=True)
    changed = results.copy()
    changed.loc[changed.index[-1], "value"] += 0.25
    per_pair.all_summaries(changed)
    assert len(list((tmp_path / "summaries").glob("*.parquet"))) == 2


def test_published_comparison_quotes_the_reports_rows_and_only_the_named_models_numbers(results):
    summaries = per_pair.all_summaries(results)
    none = pd.DataFrame(columns=["dataset", "model", "codec", "nDCG@10 (whole corpus)"])
    text = quality.published_comparison(summaries, none, model="m")
    bin_kept = summaries.set_index("name").loc["BIN", "% float32 nDCG@10"]
    assert f"sign bits alone (BIN) {bin_kept:.1f}% (1 collection, toy)" in text
    assert "float32 41.66, binary with rescoring 39.07 (93.79%), int8 37.82 (90.79%)" in text
    assert "e5-base-v2: binary with rescoring 74.77%" in text and "96.45% with it" in text
    assert "(BIN+R40BINa), not run, against the report's 93.79%" in text
    assert "(SQ8raw, no rescoring), not run, against 90.79%" in text
    two = pd.concat([summaries, summaries.assign(dataset="toy2")], ignore_index=True)
    assert (f"sign bits alone (BIN) median {bin_kept:.1f}% (range {bin_kept:.1f}-{bin_kept:.1f}%, 2 collections; "
            f"{bin_kept:.1f}% as a ratio of means, the report's way)"
            in quality.published_comparison(two, none, model="m"))
    flat = summaries.set_index("name").loc["Flat", "nDCG@10"]
    protocol = pd.DataFrame({"dataset": ["toy"], "model": ["m"], "codec": ["SQ8raw"],
                             "nDCG@10 (whole corpus)": [0.9 * flat]})
    assert ("as `quantize_embeddings` does (SQ8raw, no rescoring), 90.0% (1 collection, toy), against 90.79%"
            in quality.published_comparison(summaries, protocol, model="m"))
    assert "sign bits alone (BIN) not run" in quality.published_comparison(summaries, none, model="other")


def test_decisions_use_the_tie_aware_ndcg_always_and_mark_where_ties_decide(results):
    """BIN's tie-aware nDCG@10 is 0.05 above its row-order one (beyond 2% of float32's ~0.55); ITQ's by 0.001:
    both are decided on their tie-aware values, and only BIN is marked as one whose ties decide."""
    extra = []
    for codec, shift in (("Flat", 0.0), ("BIN", 0.05), ("ITQ", 0.001), ("PQ48", 0.0)):
        rows = results[(results.codec == codec) & (results.metric == "nDCG@10")]
        extra.append(rows.assign(metric=metrics.TIE_AWARE, value=rows.value + shift))
        extra.append(rows.assign(metric=metrics.TIED_AT_CUTOFF, value=0.5 if shift else 0.0))
        extra.append(rows.assign(metric=metrics.TIE_RUN_CUT, value=0.0))
    with_ties = pd.concat([results, *extra], ignore_index=True)
    decided, tie_decided = per_pair.decision_scores(with_ties, "toy", "m")
    assert tie_decided == ["BIN"]
    plain = per_pair.per_query_table(results, "toy", "m")
    assert np.allclose(decided["BIN"], plain["BIN"] + 0.05)
    assert np.allclose(decided["ITQ"], plain["ITQ"] + 0.001)  # tie-aware always, not only where ties decide
    summary = per_pair.summary_table(with_ties, "toy", "m").set_index("name")
    assert summary.loc["BIN", "ties decide"] and not summary.loc["ITQ", "ties decide"]
    assert summary.loc["BIN", "% float32 nDCG@10"] == pytest.approx(100 * (plain["BIN"] + 0.05).mean() / BASE.mean())
    ties = quality.tie_table(summary.reset_index().assign(dataset="toy", model="m"))
    assert ties.name.tolist() == ["BIN", "ITQ"] and ties[f"% {metrics.TIED_AT_CUTOFF}"].tolist() == [50.0, 50.0]


def test_binary_kinds_names_the_best_code_of_each_kind_with_its_pooled_share(results):
    kinds = quality.binary_kinds(results, per_pair.all_summaries(results))
    assert kinds[["kind", "best code"]].values.tolist() == [["symmetric Hamming on sign bits", "ITQ"]]
    tests = per_pair.held_out(results, "toy", "m")[2] == 0  # chosen on one half, pooled on the other
    kept = 100 * CODECS["ITQ"][4][tests].mean() / BASE[tests].mean()
    assert kinds["pooled % float32"].iloc[0] == pytest.approx(kept) and kinds.low.iloc[0] < kept < kinds.high.iloc[0]


def test_cluster_choice_keeps_identical_sets_where_components_cannot_be_resampled():
    table = pd.DataFrame({"judged queries": [300, 323], "components": [247, 6], "largest component": [4, 318],
                          "SE by identical set": [1.0, 1.0], "SE by component": [0.99, 5.0]},
                         index=["scifact", "nfcorpus"])
    text = quality.cluster_choice(table)
    assert text.startswith("Where components can be resampled (scifact), the standard error by component is 0.99x")
    assert "nfcorpus (6 components, the largest 318 of 323 queries)" in text
    assert text.endswith("The book keeps identical relevant sets as its clusters.")
    wider = quality.cluster_choice(table.iloc[:1].assign(**{"SE by component": 1.5}))
    assert wider.endswith("read the book's intervals as that much too narrow there.")


def test_tidy_rows_are_those_of_one_dict_per_row():
    blocks = [({"run_id": "r", "threads": 2, "bytes_per_vector": 48, "share": 1.5}, "nDCG@10", ["q1", "q2"],
               np.array([0.1, 0.2])),
              ({"run_id": "r", "threads": 2, "bytes_per_vector": 16, "share": 2.5}, "MRR@10", ["q1"], np.array([0.3]))]
    clusters = {"q1": "c1", "q2": "q2"}
    rows = []
    for common, metric, query_ids, values in blocks:
        rows.append({**common, "metric": metric, "value": float(np.mean(values)), "query_id": "",
                     "query_cluster": ""})
        rows.extend({**common, "metric": metric, "value": float(v), "query_id": q, "query_cluster": clusters[q]}
                    for q, v in zip(query_ids, values, strict=True))
    tidy = searches._tidy(blocks, clusters)
    text = ["run_id", "metric", "query_id", "query_cluster"]
    assert [c for c, dtype in tidy.dtypes.items() if isinstance(dtype, pd.CategoricalDtype)] == text
    assert all(list(tidy[c].cat.categories) == sorted(set(tidy[c])) for c in text)
    pd.testing.assert_frame_equal(tidy.astype({c: str for c in text}), pd.DataFrame(rows), check_exact=True)


def test_stack_keeps_categories_over_the_union_of_values():
    first = searches._tidy([({"run_id": "r", "dataset": "b"}, "nDCG@10", ["q2", "q1"], np.array([0.1, 0.2]))],
                          {"q1": "c1", "q2": "c2"})
    second = searches._tidy([({"run_id": "r", "dataset": "a"}, "MRR@10", ["q3"], np.array([0.3]))], {"q3": "c3"})
    added = pd.DataFrame({"run_id": ["r"], "dataset": ["z"], "metric": ["spread"], "value": [1.0], "query_id": [""],
                          "query_cluster": [""]})
    stacked = searches.stack([first, second, added])
    assert list(stacked.dataset.cat.categories) == ["a", "b", "z"]
    assert list(stacked.query_id.cat.categories) == ["", "q1", "q2", "q3"]
    plain = pd.concat([t.astype({c: str for c in t if c != "value"})
                       for t in (first, second, added)], ignore_index=True)
    pd.testing.assert_frame_equal(stacked.astype({c: str for c in stacked if c != "value"}), plain)


def test_dimension_within_pairs_each_code_with_float32_of_the_same_cut_and_pools(monkeypatch):
    from types import SimpleNamespace

    rng = np.random.default_rng(3)
    queries = [f"q{i}" for i in range(40)]
    found = {}
    for dataset, loss in (("a", 0.10), ("b", 0.11), ("c", 0.10)):  # the cut keeps about 6 points less
        flat = rng.uniform(0.4, 0.9, 40)
        found[dataset, "minilm-l6"] = {"Flat": flat, "BIN": 0.9 * flat + rng.normal(0, 0.01, 40),
                                       "T192,Flat": 0.95 * flat,
                                       "T192,BIN": (0.9 - loss) * flat + rng.normal(0, 0.01, 40)}
        found[dataset, "mpnet-base"] = {"T384,Flat": flat, "T384,BIN": 0.7 * flat + rng.normal(0, 0.01, 40),
                                        "Flat": flat, "BIN": 0.95 * flat}
    collections = {d: SimpleNamespace(name=d, n_docs=500, query_ids=queries, qrels={q: {q: 1} for q in queries})
                   for d in "abc"}
    monkeypatch.setattr(searches, "load_dataset", collections.__getitem__)
    monkeypatch.setattr(searches, "search_values", lambda collection, model, name, *_a, **_k: {
        "judged": queries, "values": {metrics.TIE_AWARE: found[collection.name, model][name]}})
    assert plans.truncated_names("minilm-l6", ["BIN"]) == ["T192,Flat", "T192,BIN"]
    pairs = [(d, m) for m in ("minilm-l6", "mpnet-base") for d in "abc"]
    table = dimension.dimension_within(pairs, ["BIN"], 100)
    within = table[(table.comparison == "d against d/2") & (table.model == "minilm-l6")]
    assert list(within.study) == ["a", "b", "c", "pooled"]
    for dataset, row in within.set_index("study").iloc[:3].iterrows():
        v = found[dataset, "minilm-l6"]
        full, cut = 100 * v["BIN"].mean() / v["Flat"].mean(), 100 * v["T192,BIN"].mean() / v["T192,Flat"].mean()
        assert (row["% float32 (first)"], row["% float32 (second)"]) == pytest.approx((full, cut))
        assert row.estimate == pytest.approx(full - cut)
        assert row.low < row.estimate < row.high
    pooled = within.iloc[-1]
    assert 0 < pooled.low < pooled.estimate < pooled.high and pooled.d == 384
    across = table[table.comparison == "equal dimension"].set_index("study")
    assert list(across.model.unique()) == ["mpnet-base cut, against minilm-l6"] and set(across.d) == {384}
    v = found["a", "mpnet-base"], found["a", "minilm-l6"]
    assert across.loc["a", "estimate"] == pytest.approx(100 * (v[0]["T384,BIN"].mean() / v[0]["T384,Flat"].mean()
                                                               - v[1]["BIN"].mean() / v[1]["Flat"].mean()))
    text = dimension.dimension_within_verdict(table)
    assert "minilm-l6 BIN" in text and "pooled over 3 collections (more kept at 384)" in text
    assert "mpnet-base's first 384 dimensions against minilm-l6's 384, BIN" in text and "minilm-l6 keeps more" in text
    assert dimension.dimension_within_verdict(table.iloc[:0]) == "No model was searched at half its dimension."
