"""Geometry diagnostics against closed-form cases, and the held-out prediction against a hand fit."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from phase2.evaluation import decisions
from phase2.findings import geometry


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_isotropic_gaussian_is_centred_balanced_and_full_rank():
    rng = np.random.default_rng(0)
    docs = unit(rng.standard_normal((4000, 32)))
    g = geometry.diagnostics(docs, docs[:100], sample=4000, seed=1)
    assert set(g) == set(geometry.DIAGNOSTICS)
    assert g["mean norm"] < 0.05 and abs(g["anisotropy"]) < 0.02 and g["offset/sd"] < 0.05
    assert g["bit entropy"] > 0.99 and g["effective rank"] > 0.95 and g["outlier variance"] < 1.3


def test_offset_cone_is_anisotropic_with_unbalanced_bits():
    rng = np.random.default_rng(0)
    docs = unit(rng.standard_normal((3000, 32)) * 0.3 + 1.0)
    g = geometry.diagnostics(docs, docs, sample=1000, seed=0)
    assert g["mean norm"] > 0.9 and g["anisotropy"] > 0.8 and g["bit entropy"] < 0.3
    assert g["query shift"] < 1e-3  # queries drawn from the same distribution


def test_sign_overlap_matches_a_slow_reference_and_is_one_when_signs_order_like_cosine():
    rng = np.random.default_rng(3)
    x = unit(rng.standard_normal((60, 16))).astype(np.float64)
    x[5] = x[4]  # duplicate rows tie in both rankings
    expected = []
    for i in range(20):
        others = [j for j in range(60) if j != i]
        by_cos = sorted(others, key=lambda j: (-(x[i] @ x[j]), j))[:10]
        by_bits = sorted(others, key=lambda j: (-int(((x[i] > 0) == (x[j] > 0)).sum()), j))[:10]
        expected.append(len(set(by_cos) & set(by_bits)) / 10)
    assert geometry.sign_overlap(x, 20) == pytest.approx(np.mean(expected))
    signs = np.sign(rng.standard_normal((40, 8)))
    signs = np.vstack([signs, np.zeros((1, 8))])  # an all-zero row: no positive bits at all
    assert 0 <= geometry.sign_overlap(signs, 10) <= 1


def test_diagnostics_reject_a_tiny_sample():
    with pytest.raises(ValueError, match="sample must be at least 20 documents, got 5"):
        geometry.diagnostics(np.eye(30, dtype=np.float32), np.eye(30, dtype=np.float32), sample=5, seed=0)


def test_loss_table_from_summaries():
    rows = []
    for name, ndcg in [("Flat", 0.5), ("BIN", 0.4), ("BINc", 0.45), ("BINr", 0.42), ("ITQ", 0.47)]:
        rows.append({"dataset": "a", "model": "m", "name": name, "nDCG@10": ndcg, "% float32 nDCG@10": 200 * ndcg})
    table = geometry.loss_table(pd.DataFrame(rows)).iloc[0]
    assert table["1-bit loss"] == pytest.approx(20) and table["gain ITQ"] == pytest.approx(14)
    assert table["float32 nDCG@10"] == 0.5


def frame_with_linear_loss():
    rows = [{"dataset": f"d{i % 4}", "model": f"m{i // 4}", "x": float(i), "noise": float((i * 7) % 5),
             "loss": 30 - 2.0 * i} for i in range(8)]
    return pd.DataFrame(rows)


def test_correlations_give_rank_correlation_and_permutation_p():
    table = geometry.correlations(frame_with_linear_loss(), "loss", ["x", "noise"], permutations=2000).set_index(
        "diagnostic")
    assert table.loc["x", "Spearman rho"] == pytest.approx(-1.0)
    assert table.loc["x", "permutation p"] < 0.01 and table.loc["noise", "permutation p"] > 0.05
    assert (table.pairs == 8).all()
    assert table["Holm p"].tolist() == pytest.approx(decisions.holm(table["permutation p"]).tolist())


def test_permutations_stay_within_a_model_and_the_targets_own_error_widens_rho():
    """Two models, four collections each: a within-model permutation never moves a loss to the other model, so
    with the loss fully explained by the model (x ranks the models) no shuffle breaks the correlation."""
    frame = frame_with_linear_loss().assign(loss=lambda f: np.where(f.model == "m0", 10.0, 20.0) + 0.0,
                                            x=lambda f: np.where(f.model == "m0", 0.0, 1.0))
    table = geometry.correlations(frame, "loss", ["x"], permutations=500).set_index("diagnostic")
    assert table.loc["x", "permutation p"] == 1.0  # across models it would be small: the rows are not exchangeable
    noisy = np.random.default_rng(0).normal(0, 5, size=(200, len(frame))) + frame_with_linear_loss().loss.to_numpy()
    wide = geometry.correlations(frame_with_linear_loss(), "loss", ["x"], permutations=10, replicates=noisy)
    assert wide["rho low"].iloc[0] < -0.5 < wide["rho high"].iloc[0] <= 1.0


def test_held_out_prediction_refits_without_the_held_out_dataset():
    frame = frame_with_linear_loss()
    predictions = geometry.held_out_predictions(frame, "x", "loss")
    assert len(predictions) == 8 and predictions.error.abs().max() == pytest.approx(0, abs=1e-9)
    held = frame[frame.dataset != "d0"]
    assert predictions.loc[predictions.dataset == "d0", "baseline"].iloc[0] == pytest.approx(held.loss.mean())
    assert "the diagnostic beats the baseline" in geometry.prediction_verdict(predictions, "x", "loss")
    tied = predictions.assign(error=predictions["baseline error"])
    assert "difference of +0.0 points [+0.0, +0.0]" in geometry.prediction_verdict(tied, "x", "loss")
    assert "is not distinguishable from the baseline" in geometry.prediction_verdict(tied, "x", "loss")
    with pytest.raises(ValueError, match="need at least 3 distinct datasets"):
        geometry.held_out_predictions(frame[frame.dataset.isin(["d0", "d1"])], "x", "loss")


def test_diagnostics_travel_through_the_result_rows_unchanged():
    rng = np.random.default_rng(0)
    table = pd.DataFrame([{"dataset": d, "model": m, **{name: rng.uniform() for name in geometry.DIAGNOSTICS}}
                          for d in ("a", "b") for m in ("m1", "m2")])
    searches = pd.DataFrame([{"suite": "searches", "dataset": "a", "model": "m1", "codec": "BIN", "family": "binary",
                              "metric": "nDCG@10",
                              "value": 0.4, "query_id": ""}])
    rows = geometry.diagnostic_rows(table, {"run_id": "r", "chapter": "geometry"})
    assert (rows.suite == "diagnostics").all() and "codec" not in rows and len(rows) == 4 * 9
    back, rest = geometry.split_results(pd.concat([searches, rows], ignore_index=True))
    pd.testing.assert_frame_equal(back, table)
    pd.testing.assert_frame_equal(rest[searches.columns], searches)


def test_summary_explains_and_tests_the_predictor_from_three_collections_on():
    frame = pd.DataFrame([{"dataset": f"d{i % 4}", "model": f"m{i // 4}", "1-bit loss": 30 - 2.0 * i,
                           "gain BINc": 1.0, "gain BINr": 0.5, "gain ITQ": 2.0 - i,
                           **{name: float((i * (k + 3)) % 7) for k, name in enumerate(geometry.DIAGNOSTICS)}}
                          for i in range(8)])
    frame[geometry.PREDICTOR] = -frame["1-bit loss"]
    lines = geometry.summary(frame, seed=0)
    assert lines[0].startswith("The plain sign code loses between 16.0 and 30.0 points")
    assert "the best repair in the median is BINc" in lines[1]
    assert "'sign overlap@10' (rho -1.00" in lines[2] and "the diagnostic beats the baseline" in lines[3]
    assert len(geometry.summary(frame[frame.dataset.isin(["d0", "d1"])])) == 2


def test_collection_interval_covers_in_simulation_and_states_the_sign_flip_floor():
    """1,000 simulated studies of five collections x three models, each collection with its own effect (the unit
    that varies): the t interval on the collections' means covers the true mean 93-97% of the time; the bootstrap
    over five collections it replaces covered about 83%."""
    rng = np.random.default_rng(3)
    collections = pd.Series(np.repeat([f"c{i}" for i in range(5)], 3))
    covered = 0
    for _ in range(1000):
        values = pd.Series(np.repeat(rng.normal(1.0, 2.0, 5), 3) + rng.normal(0, 0.5, 15))
        found = geometry.collection_interval(values, collections)
        covered += found["low"] <= 1.0 <= found["high"]
    assert 0.93 <= covered / 1000 <= 0.97, covered / 1000
    same_sign = geometry.collection_interval(pd.Series([1.0, 2.0, 3.0, 4.0, 5.0]), pd.Series(list("abcde")))
    assert same_sign["p sign-flip"] == same_sign["p floor"] == 1 / 16  # the smallest p five collections allow
    assert same_sign["low"] == pytest.approx(3 - stats.t.ppf(0.975, 4) * np.std([1, 2, 3, 4, 5], ddof=1) / np.sqrt(5))
