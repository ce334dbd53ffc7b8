"""Every metric value must equal pytrec_eval's (trec_eval) on the same ranking."""

import numpy as np
import pytest
import pytrec_eval

from phase2 import metrics
from phase2.datasets import load_dataset

from conftest import require_dataset

TREC_MEASURES = {"nDCG@10": ("ndcg_cut", "ndcg_cut_10"), "Recall@10": ("recall", "recall_10"),
                 "Recall@100": ("recall", "recall_100"), "MRR@10": ("recip_rank", "recip_rank")}


def trec_values(run, qrels):
    """pytrec_eval on our ranking: scores encode ranks, so trec_eval's own tie rule never applies."""
    scored = {q: {d: float(len(docs) - i) for i, d in enumerate(docs)} for q, docs in run.items()}
    cut10 = {q: {d: float(10 - i) for i, d in enumerate(docs[:10])} for q, docs in run.items()}
    out = {}
    for name, (measure, key) in TREC_MEASURES.items():
        evaluator = pytrec_eval.RelevanceEvaluator(qrels, {measure})
        result = evaluator.evaluate(cut10 if name == "MRR@10" else scored)
        out[name] = {q: result[q][key] for q in qrels if q in result}
    return out


def random_run(rng, qrels, doc_ids, depth):
    return {q: list(rng.choice(doc_ids, size=depth, replace=False)) for q in qrels}


def assert_agree(run, qrels):
    ours, theirs = metrics.per_query(run, qrels), trec_values(run, qrels)
    for name in TREC_MEASURES:
        for q, value in theirs[name].items():
            assert ours[name][q] == pytest.approx(value, abs=1e-12), (name, q)


def test_agrees_with_pytrec_eval_on_graded_synthetic_judgements():
    rng = np.random.default_rng(0)
    doc_ids = [f"d{i}" for i in range(300)]
    qrels = {f"q{j}": {d: int(rng.integers(0, 4)) for d in rng.choice(doc_ids, size=int(rng.integers(1, 40)),
                                                                     replace=False)} for j in range(50)}
    qrels["all-zero"] = {"d1": 0, "d2": 0}  # judged, none relevant
    run = random_run(rng, qrels, doc_ids, 150)
    for q in list(run)[:10]:  # rankings that put judged documents first, to exercise high values
        run[q] = sorted(qrels[q], key=lambda d: -qrels[q][d]) + [d for d in run[q] if d not in qrels[q]]
    assert_agree(run, qrels)


def test_agrees_with_pytrec_eval_on_cranfield_judgements():
    require_dataset("cranfield")
    c = load_dataset("cranfield")
    rng = np.random.default_rng(1)
    run = random_run(rng, c.qrels, c.doc_ids, 100)
    for q in list(run)[::3]:
        run[q] = list(c.qrels[q]) + [d for d in run[q] if d not in c.qrels[q]][:100 - len(c.qrels[q])]
    assert_agree(run, c.qrels)


def test_hand_computed_values():
    qrels = {"q": {"a": 2, "b": 1, "z": 1}}
    run = {"q": ["x", "a", "b"]}
    values = metrics.per_query(run, qrels)
    dcg = 2 / np.log2(3) + 1 / np.log2(4)
    idcg = 2 + 1 / np.log2(3) + 1 / np.log2(4)
    assert values["nDCG@10"]["q"] == pytest.approx(dcg / idcg)
    assert values["Recall@10"]["q"] == pytest.approx(2 / 3)
    assert values["MRR@10"]["q"] == 0.5


def test_query_missing_from_run_scores_zero():
    assert metrics.per_query({}, {"q": {"a": 1}})["nDCG@10"] == {"q": 0.0}


def test_overlap_at_k():
    a = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    b = np.array([[4, 3, 9, 9], [5, 6, 7, 8]])
    np.testing.assert_allclose(metrics.overlap_at_k(a, b, 2), [0.0, 1.0])
    np.testing.assert_allclose(metrics.overlap_at_k(a, b, 4), [0.5, 1.0])
    with pytest.raises(ValueError, match="overlap@5"):
        metrics.overlap_at_k(a, b, 5)


def test_ranked_doc_ids_maps_rows_to_ids():
    assert metrics.ranked_doc_ids(np.array([[1, 0]]), ["a", "b"], ["q"]) == {"q": ["b", "a"]}


def test_paired_bootstrap_ci_is_seeded_and_brackets_the_mean():
    diff = np.random.default_rng(3).normal(-0.05, 0.2, size=400)
    low, high = metrics.paired_bootstrap_ci(diff)
    assert low < diff.mean() < high and high - low < 0.06
    assert (low, high) == metrics.paired_bootstrap_ci(diff)
    assert metrics.paired_bootstrap_ci(np.zeros(10)) == (0.0, 0.0)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        metrics.paired_bootstrap_ci(np.array([]))
