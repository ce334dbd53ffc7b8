"""Property-based tests: kernels and codecs against their slow references on random shapes and values."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from phase2.codecs import make_codec
from phase2.evaluation import metrics
from phase2.kernels import hamming_topk

from test_kernels import reference_topk

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)  # same examples in every CI run


@st.composite
def code_sets(draw):
    nbytes = draw(st.integers(1, 40))
    n = draw(st.integers(1, 30))
    byte = st.integers(0, 255)
    database = draw(arrays(np.uint8, (n, nbytes), elements=st.sampled_from([0, 255]) | byte))
    queries = draw(arrays(np.uint8, (draw(st.integers(1, 5)), nbytes), elements=byte))
    return queries, database, draw(st.integers(1, n))


@SETTINGS
@given(code_sets())
def test_hamming_topk_equals_reference(case):
    queries, database, k = case
    dist, ids = hamming_topk(queries, database, k)
    ref_dist, ref_ids = reference_topk(queries, database, k)
    np.testing.assert_array_equal(dist, ref_dist)
    np.testing.assert_array_equal(ids, ref_ids)


@st.composite
def float_sets(draw):
    d = draw(st.integers(1, 48))
    n = draw(st.integers(2, 40))
    value = st.floats(-4, 4, width=32) | st.sampled_from([0.0, 1.0, -1.0])
    docs = draw(arrays(np.float32, (n, d), elements=value))
    queries = draw(arrays(np.float32, (draw(st.integers(1, 4)), d), elements=value))
    return docs, queries, draw(st.integers(1, n))


@SETTINGS
@given(float_sets())
def test_binary_codec_equals_unpacked_sign_reference(case):
    docs, queries, k = case
    codec = make_codec("BIN").fit(docs)
    codes = codec.encode(docs)
    np.testing.assert_array_equal(np.unpackbits(codes, axis=1)[:, :docs.shape[1]], (docs > 0).astype(np.uint8))
    scores, ids = codec.search(codes, queries, k)
    hamming = ((queries[:, None, :] > 0) != (docs[None, :, :] > 0)).sum(-1)
    np.testing.assert_array_equal(ids, np.argsort(hamming, axis=1, kind="stable")[:, :k])


@SETTINGS
@given(float_sets())
def test_float32_codec_equals_stable_sort_of_exact_scores(case):
    docs, queries, k = case
    codec = make_codec("Flat").fit(docs)
    scores, ids = codec.search(codec.encode(docs), queries, k)
    assert np.all(np.diff(scores, axis=1) <= 0)
    exact = np.take_along_axis(queries @ docs.T, ids, axis=1)
    np.testing.assert_allclose(scores, exact, rtol=1e-5, atol=1e-5)
    # ties keep corpus order
    tied = (np.diff(scores, axis=1) == 0)
    assert np.all(np.diff(ids, axis=1)[tied] > 0)


@SETTINGS
@given(float_sets())
def test_int8_codec_reconstruction_error_is_within_half_a_step(case):
    docs, _, _ = case
    codec = make_codec("SQ8").fit(docs)
    span = docs.max(axis=0) - docs.min(axis=0)
    error = np.abs(codec.decode(codec.encode(docs)) - docs)
    assert np.all(error <= span / 255 * 0.5 + 1e-5)


@SETTINGS
@given(st.lists(st.integers(0, 3), min_size=1, max_size=30), st.permutations(range(30)))
def test_ndcg_is_one_for_the_ideal_ranking_and_bounded(grades, order):
    qrels = {"q": {f"d{i}": g for i, g in enumerate(grades)}}
    ideal = sorted(qrels["q"], key=lambda d: -qrels["q"][d])
    values = metrics.per_query({"q": ideal}, qrels)
    has_relevant = any(g > 0 for g in grades)
    assert values["nDCG@10"]["q"] == pytest.approx(1.0 if has_relevant else 0.0, abs=1e-12)
    shuffled = [f"d{i}" for i in order if i < len(grades)]
    for value in metrics.per_query({"q": shuffled}, qrels).values():
        assert 0.0 <= value["q"] <= 1.0 + 1e-12
