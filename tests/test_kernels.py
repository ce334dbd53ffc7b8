"""Oracle tests: the numba kernels against slow, obvious references and against faiss."""

import faiss
import numba
import numpy as np
import pytest

from phase2 import kernels
from phase2.kernels import as_words, asymmetric_topk, hamming_topk, uint8_dot

from conftest import require_threads


def reference_topk(queries, database, k):
    """Unpack every bit, count differences, stable sort: distance ascending, ties by row index."""
    qb, db = np.unpackbits(queries, axis=1), np.unpackbits(database, axis=1)
    dist = np.array([[int(np.sum(q != x)) for x in db] for q in qb], dtype=np.int32).reshape(len(qb), len(db))
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(dist, order, axis=1), order


def random_codes(rng, n, nbytes):
    codes = rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
    codes[0] = 0  # an all-zero row
    codes[1] = codes[2] = codes[3]  # duplicate rows: exact ties
    return codes


@pytest.fixture(params=[1, 3], ids=["one-slice", "three-slices"])
def slices(request, monkeypatch):
    """Row slices per search: three force the cross-slice merge even on one thread and 40 rows."""
    monkeypatch.setattr(kernels, "_slices", lambda n_rows: request.param)
    return request.param


@pytest.mark.parametrize("nbits", [8, 56, 64, 72, 128, 200, 384, 1000])
@pytest.mark.parametrize("k", [1, 7, 40])
def test_topk_matches_reference_on_any_width(nbits, k, slices):
    rng = np.random.default_rng(nbits * 100 + k)
    database = random_codes(rng, 40, nbits // 8)
    queries = np.vstack([database[:4], random_codes(rng, 6, nbits // 8)])
    dist, ids = hamming_topk(queries, database, k)
    ref_dist, ref_ids = reference_topk(queries, database, k)
    np.testing.assert_array_equal(dist, ref_dist)
    np.testing.assert_array_equal(ids, ref_ids)


def test_all_zero_codes_tie_everywhere_and_keep_row_order():
    database = np.zeros((10, 5), np.uint8)
    dist, ids = hamming_topk(np.zeros((2, 5), np.uint8), database, 10)
    assert (dist == 0).all() and (ids == np.arange(10)).all()


def test_widths_that_are_not_whole_words_are_zero_padded():
    codes = np.array([[0xFF, 0x01, 0x80]], np.uint8)
    words = as_words(codes)
    assert words.shape == (1, 1) and words.dtype == np.uint64
    assert int(np.bitwise_count(words).sum()) == 10


@pytest.mark.parametrize("nbytes", [8, 48, 128])
def test_distances_equal_faiss_index_binary_flat(nbytes):
    rng = np.random.default_rng(nbytes)
    database, queries = rng.integers(0, 256, (500, nbytes), dtype=np.uint8), rng.integers(0, 256, (20, nbytes),
                                                                                          dtype=np.uint8)
    index = faiss.IndexBinaryFlat(nbytes * 8)
    index.add(database)
    faiss_dist, _ = index.search(queries, 25)
    dist, _ = hamming_topk(queries, database, 25)
    np.testing.assert_array_equal(dist, faiss_dist)


def test_same_result_with_one_and_two_threads():
    rng = np.random.default_rng(7)
    database, queries = random_codes(rng, 20_000, 48), random_codes(rng, 64, 48)
    database[5000:5100] = database[100]  # ties across the two threads' slices
    require_threads(2)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = hamming_topk(queries, database, 10)
        numba.set_num_threads(2)
        two = hamming_topk(queries, database, 10)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])


@pytest.mark.parametrize(("queries", "database", "k", "message"), [
    (np.zeros((1, 4), np.int8), np.zeros((3, 4), np.uint8), 1, "queries codes must be a 2-D uint8"),
    (np.zeros((1, 4), np.uint8), np.zeros((3, 5), np.uint8), 1, "code width mismatch: queries have 4"),
    (np.zeros((1, 4), np.uint8), np.zeros((3, 4), np.uint8), 4, "k must be between 1 and the database size 3"),
    (np.zeros((1, 4), np.uint8), np.zeros((3, 4), np.uint8), 0, "got 0"),
    (np.zeros((1, 4), np.uint8), np.zeros((0, 4), np.uint8), 1, "database is empty"),
])
def test_bad_input_is_rejected_with_a_clear_message(queries, database, k, message):
    with pytest.raises(ValueError, match=message):
        hamming_topk(queries, database, k)


def test_no_queries_gives_empty_result():
    dist, ids = hamming_topk(np.zeros((0, 4), np.uint8), np.zeros((3, 4), np.uint8), 2)
    assert dist.shape == ids.shape == (0, 2)


def reference_asymmetric(queries, database, k):
    """Decode every sign to +-1, one float64 dot product per row, stable sort by score descending."""
    signs = np.unpackbits(database, axis=1, count=queries.shape[1]).astype(np.float64) * 2 - 1
    scores = queries.astype(np.float64) @ signs.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


@pytest.mark.parametrize("dim", [8, 13, 64, 384])
def test_asymmetric_topk_matches_reference(dim, slices):
    rng = np.random.default_rng(dim)
    queries = rng.integers(-4, 5, (6, dim)).astype(np.float32)  # small integers: exact sums, real ties
    database = random_codes(rng, 60, -(-dim // 8))
    database[:, -1] &= np.uint8(0xFF << (-dim % 8) & 0xFF)  # padding bits are zero, as np.packbits writes them
    scores, ids = asymmetric_topk(queries, database, 20)
    ref_scores, ref_ids = reference_asymmetric(queries, database, 20)
    np.testing.assert_array_equal(scores, ref_scores)
    np.testing.assert_array_equal(ids, ref_ids)


def test_asymmetric_topk_rejects_a_width_mismatch():
    with pytest.raises(ValueError, match="13-d queries need 2 bytes per code, database has 3"):
        asymmetric_topk(np.zeros((1, 13), np.float32), np.zeros((4, 3), np.uint8), 1)


def test_uint8_dot_scores_candidates_like_numpy():
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 256, (50, 37), dtype=np.uint8)
    weights = rng.standard_normal((4, 37)).astype(np.float32)
    candidates = rng.integers(0, 50, (4, 9))
    expected = np.einsum("qd,qid->qi", weights.astype(np.float64), codes[candidates].astype(np.float64))
    np.testing.assert_allclose(uint8_dot(weights, codes, candidates), expected, rtol=1e-5, atol=1e-3)
    with pytest.raises(ValueError, match=r"candidate rows must lie in \[0, 50\)"):
        uint8_dot(weights, codes, candidates + 50)
