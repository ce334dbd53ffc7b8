"""Every metric value must equal pytrec_eval's (trec_eval) on the same ranking."""

import itertools

import numpy as np
import pytest
import pytrec_eval

from phase2.data.datasets import load_dataset
from phase2.evaluation import metrics

from conftest import require_dataset

TREC_MEASURES = {"nDCG@10": ("ndcg_cut", "ndcg_cut_10"), "Recall@10": ("recall", "recall_10"),
                 "Recall@100": ("recall", "recall_100"), "MRR@10": ("recip_rank", "recip_rank")}


def trec_values(run, qrels):
    """pytrec_eval on our ranking: scores encode ranks, so trec_eval's own tie rule never applies."""
    scored = {q: {d: float(len(docs) - i) for i, d in enumerate(docs)} for q, docs in run.items()}
    cut10 = {q: {d: float(10 - i) for i, d in enumerate(docs[:10])} for q, docs in run.items()}
    return trec_on_scores(scored, qrels, cut10)


def trec_on_scores(scored, qrels, cut10=None):
    """pytrec_eval's values per measure and query, for runs given as ``{query: {doc: score}}``."""
    out = {}
    for name, (measure, key) in TREC_MEASURES.items():
        evaluator = pytrec_eval.RelevanceEvaluator(qrels, {measure})
        result = evaluator.evaluate(cut10 if name == "MRR@10" and cut10 is not None else scored)
        out[name] = {q: values[key] for q, values in result.items()}
    return out


def trec_tie_order(scores: dict[str, float]) -> list[str]:
    """trec_eval's documented ranking of a scored run: score descending, equal scores by document id
    descending (as strings)."""
    return sorted(scores, key=lambda d: (-scores[d], tuple(-ord(ch) for ch in d) + (1,)))


def random_run(rng, qrels, doc_ids, depth):
    return {q: list(rng.choice(doc_ids, size=depth, replace=False)) for q in qrels}


def assert_agree(run, qrels):
    ours, theirs = metrics.per_query(run, qrels), trec_values(run, qrels)
    for name in TREC_MEASURES:
        assert set(ours[name]) == set(theirs[name]) == set(qrels), name  # every judged query, nothing else
        for q, value in theirs[name].items():
            assert ours[name][q] == pytest.approx(value, abs=1e-12), (name, q)


def test_agrees_with_pytrec_eval_on_graded_synthetic_judgements():
    rng = np.random.default_rng(0)
    doc_ids = [f"d{i}" for i in range(300)]
    qrels = {f"q{j}": {d: int(rng.integers(0, 4)) for d in rng.choice(doc_ids, size=int(rng.integers(1, 40)),
                                                                     replace=False)} for j in range(50)}
    qrels["all-zero"] = {"d1": 0, "d2": 0}  # judged, none relevant
    qrels["missed"] = {"d299": 3, "d298": 1}  # relevant, never retrieved: every metric 0
    run = random_run(rng, qrels, doc_ids, 150)
    run["missed"] = [d for d in run["missed"] if d not in qrels["missed"]]
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


def test_raw_tied_scores_agree_with_pytrec_eval_under_its_documented_tie_rule():
    """trec_eval orders equal scores by document id, descending: our metrics on that order equal its
    values on the raw scores. (Our own rankings break ties by ascending corpus row instead.)"""
    rng = np.random.default_rng(5)
    doc_ids = [f"d{i}" for i in range(120)] + ["9", "10", "100"]  # string order differs from numeric order
    qrels = {f"q{j}": {d: int(rng.integers(0, 3)) for d in rng.choice(doc_ids, 25, replace=False)} for j in range(40)}
    scored = {q: {d: float(rng.integers(0, 6)) for d in rng.choice(doc_ids, 60, replace=False)} for q in qrels}
    ordered = {q: trec_tie_order(s) for q, s in scored.items()}
    cut10 = {q: {d: scored[q][d] for d in ordered[q][:10]} for q in qrels}
    theirs, ours = trec_on_scores(scored, qrels, cut10), metrics.per_query(ordered, qrels)
    assert trec_tie_order({"10": 1.0, "9": 1.0, "100": 1.0, "x": 2.0}) == ["x", "9", "100", "10"]
    for name in TREC_MEASURES:
        assert set(theirs[name]) == set(qrels)
        for q, value in theirs[name].items():
            assert ours[name][q] == pytest.approx(value, abs=1e-12), (name, q)


def test_tie_order_moves_real_binary_ndcg_within_a_bound():
    """Hamming rankings tie heavily. On cranfield with MiniLM-L6 sign codes, any tie order lies between
    relevant-first and relevant-last; our rule (ascending row) and trec_eval's (descending id) lie inside,
    within 0.005 of each other, and the whole span is under 0.03 of mean nDCG@10 (measured: about 0.02)."""
    require_dataset("cranfield")
    from phase2.data.embeddings import embed

    c = load_dataset("cranfield")
    docs, queries = embed(c, "minilm-l6", "docs", progress=False), embed(c, "minilm-l6", "queries", progress=False)
    hamming = ((queries[:, None, :] > 0) != (docs[None, :, :] > 0)).sum(axis=2)
    gains = np.array([[max(c.qrels[q].get(d, 0), 0) for d in c.doc_ids] for q in c.query_ids])
    id_rank = np.empty(len(c.doc_ids), int)
    id_rank[np.argsort(np.array(c.doc_ids))[::-1]] = np.arange(len(c.doc_ids))  # trec_eval: id descending
    orders = {"ours": np.argsort(hamming, axis=1, kind="stable"),
              "trec_eval": np.lexsort((np.broadcast_to(id_rank, hamming.shape), hamming), axis=1),
              "relevant first": np.lexsort((-gains, hamming), axis=1),
              "relevant last": np.lexsort((gains, hamming), axis=1)}
    ndcg = {name: metrics.mean(metrics.per_query(metrics.ranked_doc_ids(order[:, :10], c.doc_ids, c.query_ids),
                                                 c.qrels, ("nDCG@10",))["nDCG@10"]) for name, order in orders.items()}
    low, high = ndcg["relevant last"], ndcg["relevant first"]
    assert low <= ndcg["ours"] <= high and low <= ndcg["trec_eval"] <= high
    assert abs(ndcg["ours"] - ndcg["trec_eval"]) < 0.005 and high - low < 0.03
    scored = {q: {d: -float(h) for d, h in zip(c.doc_ids, row, strict=True)} for q, row in zip(c.query_ids, hamming,
                                                                                               strict=True)}
    trec = trec_on_scores(scored, c.qrels)["nDCG@10"]  # pytrec_eval on the raw tied Hamming scores
    assert np.mean([trec[q] for q in c.qrels]) == pytest.approx(ndcg["trec_eval"], abs=1e-12)


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


@pytest.mark.parametrize("seed", range(5))
def test_per_query_arrays_equal_the_dict_path_bit_for_bit(seed):
    """The vectorized path the chapters use against the per-query dict path (itself checked against
    pytrec_eval above): graded and negative judgements, a judged query the run lacks, a document id that
    two corpus rows share, -1 padding, a depth below the cutoffs, and a query with nothing relevant."""
    rng = np.random.default_rng(seed)
    doc_ids = [f"d{i}" for i in range(60)] + ["d7"]
    query_ids = [f"q{i}" for i in range(30)]
    qrels = {q: {f"d{j}": int(rng.integers(-1, 4)) for j in rng.choice(60, size=rng.integers(1, 12), replace=False)}
             for q in query_ids[:25]}
    qrels["lost"] = {"d1": 2}
    qrels["q0"] = {"d3": 0, "d4": -1}
    depth = int(rng.choice([8, 40]))
    ids = np.stack([rng.permutation(len(doc_ids))[:depth] for _ in query_ids]).astype(np.int32)
    ids[3, -2:] = -1
    judged, arrays = metrics.per_query_arrays(ids, doc_ids, query_ids, qrels)
    expected = metrics.per_query(metrics.ranked_doc_ids(ids, doc_ids, query_ids), qrels)
    assert judged == list(qrels)
    for name, values in expected.items():
        assert arrays[name].dtype == np.float64
        assert arrays[name].tolist() == list(values.values()), name


def test_overlap_counts_each_shared_id_once_as_sets_do():
    rng = np.random.default_rng(0)
    for _ in range(100):
        a, b = rng.integers(-1, 15, size=(20, 12)), rng.integers(-1, 15, size=(20, 12))
        k = int(rng.integers(1, 13))
        expected = [len(set(x[:k]) & set(y[:k])) / k for x, y in zip(a.tolist(), b.tolist(), strict=True)]
        assert metrics.overlap_at_k(a, b, k).tolist() == expected
    assert metrics.overlap_at_k(np.array([[3, 3, 1]]), np.array([[3, 1, 1]]), 3).tolist() == [2 / 3]


def expected_ndcg_over_tie_orders(ranking, scores, judged, cutoff=10):
    """The slow obvious reference: nDCG@cutoff averaged over every ordering of each run of tied scores."""
    runs, start = [], 0
    for i in range(1, len(scores) + 1):
        if i == len(scores) or scores[i] != scores[start]:
            runs.append(ranking[start:i])
            start = i
    orderings = [[]]
    for run in runs:
        orderings = [done + list(p) for done in orderings for p in itertools.permutations(run)]
    return float(np.mean([metrics._ndcg(order[:cutoff], judged, cutoff) for order in orderings]))


@pytest.mark.parametrize("seed", range(4))
def test_tie_aware_ndcg_is_the_mean_over_every_order_of_the_tied_documents(seed):
    rng = np.random.default_rng(seed)
    n_docs, depth = 40, 14
    doc_ids = [f"d{j}" for j in range(n_docs)]
    query_ids = [f"q{i}" for i in range(6)]
    qrels = {q: {f"d{j}": int(rng.integers(-1, 3)) for j in rng.choice(n_docs, 8, replace=False)} for q in query_ids}
    ids = np.stack([rng.permutation(n_docs)[:depth] for _ in query_ids])
    scores = -np.sort(rng.integers(0, 9, size=(len(query_ids), depth)), axis=1).astype(np.float32)  # runs of ties
    scores[:, -3:] = scores[:, -4:-3] - np.arange(1, 4)  # no run reaches the last rank: every run is whole
    judged, stats = metrics.tie_statistics(ids, scores, doc_ids, query_ids, qrels)
    assert judged == query_ids
    for i, q in enumerate(query_ids):
        ranking = [doc_ids[j] for j in ids[i]]
        assert stats[metrics.TIE_AWARE][i] == pytest.approx(expected_ndcg_over_tie_orders(ranking, scores[i], qrels[q]))
        assert stats[metrics.TIED_AT_CUTOFF][i] == float(scores[i, 9] == scores[i, 10])
    assert not stats[metrics.TIE_RUN_CUT].any()


def test_without_ties_the_tie_aware_ndcg_is_the_row_order_one_and_a_run_to_the_end_is_flagged():
    doc_ids = [f"d{j}" for j in range(30)]
    qrels = {"q": {"d3": 2, "d7": 1}}
    ids = np.arange(12)[None, :]
    distinct = -np.arange(12, dtype=np.float32)[None, :]
    _, stats = metrics.tie_statistics(ids, distinct, doc_ids, ["q"], qrels)
    _, plain = metrics.per_query_arrays(ids, doc_ids, ["q"], qrels)
    assert stats[metrics.TIE_AWARE][0] == pytest.approx(plain["nDCG@10"][0]) and stats[metrics.TIED_AT_CUTOFF][0] == 0
    tail_tied = distinct.copy()
    tail_tied[0, 8:] = -8  # ranks 9-12 tie and the run reaches the last rank of 12, of 30 documents
    _, stats = metrics.tie_statistics(ids, tail_tied, doc_ids, ["q"], qrels)
    assert stats[metrics.TIED_AT_CUTOFF][0] == 1.0 and stats[metrics.TIE_RUN_CUT][0] == 1.0
    with pytest.raises(ValueError, match="one shape"):
        metrics.tie_statistics(ids, distinct[:, :5], doc_ids, ["q"], qrels)
