"""Codecs: exact code sizes, agreement with faiss and sentence-transformers, golden codes, bad input."""

import hashlib

import faiss
import numpy as np
import pytest
from sentence_transformers.util import quantize_embeddings

from phase2.codecs import CODECS, make_codec, topk_by_score
from phase2.errors import ParameterError

GOLDEN = {"Flat": "f2c1719a60655313", "FP16": "a7b55c2d44bd0ac3", "SQ8": "da7979f14ba5ab24", "BIN": "f5027001f31b8ce7"}
SIZES = {"Flat": 4 * 384, "FP16": 2 * 384, "SQ8": 384, "BIN": 48}


def unit_vectors(n, d, seed):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("name", CODECS)
def test_golden_codes(name):
    """Pins each codec's codes for a fixed input: any change to the codes shows up here."""
    x = np.random.default_rng(20261124).standard_normal((64, 100)).astype(np.float32)
    codec = make_codec(name).fit(x)
    assert hashlib.sha256(codec.encode(x).tobytes()).hexdigest()[:16] == GOLDEN[name]


@pytest.mark.parametrize("name", CODECS)
def test_code_size_is_exact_bytes_per_vector(name):
    x = unit_vectors(50, 384, 1)
    codec = make_codec(name).fit(x)
    codes = codec.encode(x)
    assert codec.code_size == SIZES[name] and codes.shape == (50, SIZES[name]) and codes.dtype == np.uint8


def test_binary_width_rounds_up_to_whole_bytes():
    assert make_codec("BIN").fit(unit_vectors(5, 100, 1)).code_size == 13


def test_float32_search_is_exact_inner_product_with_stable_ties():
    docs = unit_vectors(300, 32, 2)
    docs[10] = docs[20] = docs[5]  # exact ties: lower row first
    queries = np.vstack([docs[5], unit_vectors(9, 32, 3)])
    codec = make_codec("Flat").fit(docs)
    scores, ids = codec.search(codec.encode(docs), queries, 15)
    full = queries @ docs.T
    expected = np.argsort(-full, axis=1, kind="stable")[:, :15]
    np.testing.assert_array_equal(ids, expected)
    assert list(ids[0, :3]) == [5, 10, 20]
    np.testing.assert_allclose(scores, np.take_along_axis(full, expected, axis=1), rtol=1e-6)


def test_float16_decodes_within_half_precision():
    docs = unit_vectors(100, 64, 4)
    codec = make_codec("FP16").fit(docs)
    np.testing.assert_allclose(codec.decode(codec.encode(docs)), docs, atol=1e-3)


def test_int8_codes_and_scores_equal_faiss_index_scalar_quantizer():
    docs, queries = unit_vectors(500, 64, 5), unit_vectors(20, 64, 6)
    codec = make_codec("SQ8").fit(docs)
    index = faiss.IndexScalarQuantizer(64, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    index.train(docs)
    index.add(docs)
    np.testing.assert_array_equal(codec.encode(docs), index.sa_encode(docs))
    scores, _ = codec.search(codec.encode(docs), queries, 10)
    faiss_scores, _ = index.search(queries, 10)
    np.testing.assert_allclose(scores, faiss_scores, atol=1e-5)


def test_binary_codes_equal_sentence_transformers_ubinary():
    x = unit_vectors(200, 384, 7)
    x[0] = 0.0  # zero maps to bit 0 in both
    codec = make_codec("BIN").fit(x)
    np.testing.assert_array_equal(codec.encode(x), quantize_embeddings(x, precision="ubinary"))


def test_binary_search_ranks_by_hamming_distance():
    docs, queries = unit_vectors(200, 64, 8), unit_vectors(5, 64, 9)
    codec = make_codec("BIN").fit(docs)
    scores, ids = codec.search(codec.encode(docs), queries, 200)
    bits_d, bits_q = docs > 0, queries > 0
    hamming = (bits_q[:, None, :] != bits_d[None, :, :]).sum(-1)
    np.testing.assert_array_equal(ids, np.argsort(hamming, axis=1, kind="stable"))
    np.testing.assert_array_equal(-scores, np.sort(hamming, axis=1))


def test_topk_by_score_breaks_ties_by_column():
    scores, ids = topk_by_score(np.array([[1.0, 3.0, 3.0, 2.0]], np.float32), 3)
    assert ids.tolist() == [[1, 2, 3]] and scores.tolist() == [[3.0, 3.0, 2.0]]


def test_unknown_codec_lists_valid_names():
    with pytest.raises(ParameterError, match="unknown codec 'PQ999'; valid codecs: Flat, FP16, SQ8, BIN"):
        make_codec("PQ999")


@pytest.mark.parametrize(("call", "message"), [
    (lambda c, x: c.fit(x[:, :10]).search(c.encode(x[:, :10]), x, 1), "dimension 16 does not match the fitted"),
    (lambda c, x: c.fit(np.where(x > 1, np.nan, x)), "non-finite value at row"),
    (lambda c, x: c.fit(x.astype(np.int32)), "expected floating-point vectors"),
    (lambda c, x: c.fit(x[0]), "expected a 2-D array"),
    (lambda c, x: c.fit(x[:0]), "the corpus is empty"),
    (lambda c, x: c.fit(x).search(c.encode(x), x, 99), "k must be between 1 and the corpus size 20, got 99"),
    (lambda c, x: c.fit(x).search(c.encode(x)[:, :-1], x, 1), "codes must be uint8"),
    (lambda c, x: c.fit(x).search(c.encode(x), x[:0], 1), "the query set is empty"),
    (lambda c, x: c.fit(x).search(c.encode(x), np.where(x > 1, np.inf, x), 1), "search queries: non-finite value"),
])
@pytest.mark.parametrize("name", CODECS)
def test_bad_input_is_rejected_with_a_clear_message(name, call, message):
    x = np.random.default_rng(0).standard_normal((20, 16)).astype(np.float32) * 2
    with pytest.raises(ValueError, match=message):
        call(make_codec(name), x)


def test_unfitted_codec_says_so():
    with pytest.raises(RuntimeError, match="call fit"):
        make_codec("SQ8").encode(np.zeros((1, 4), np.float32))
