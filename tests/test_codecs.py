"""Codecs: exact code sizes, agreement with faiss and sentence-transformers, golden codes, bad input."""

import hashlib
import re

import faiss
import numpy as np
import pytest
from sentence_transformers.util import quantize_embeddings
from sentence_transformers.util.quantization import semantic_search_faiss

from phase2.codecs import (
    CODECS,
    fitted_for_search,
    inapplicable_reason,
    make_codec,
    pipelines,
    split_codec_names,
    topk_by_score,
    training_rows,
    training_size,
)
from phase2.errors import NotApplicable, ParameterError

# codec -> (rows, dims) of the seeded input, sha256 prefix of its codes
GOLDEN = {"Flat": ((64, 100), "f2c1719a60655313"), "FP16": ((64, 100), "a7b55c2d44bd0ac3"),
          "BF16": ((64, 100), "e377ff1d63b9c826"), "SQ8": ((64, 100), "da7979f14ba5ab24"),
          "SQ4": ((64, 100), "30b59c555a9dd7f3"), "BIN": ((64, 100), "f5027001f31b8ce7"),
          "BINc": ((64, 100), "78c4f0367b6b67a2"), "BINr": ((64, 100), "7c9b8d140aafc087"),
          "BINa": ((64, 100), "f5027001f31b8ce7"),  # the same bits as BIN
          "SQ8u": ((64, 100), "b8195ee41fae2b27"), "SQ8p": ((64, 100), "c2b2d0dbae00c52b"),
          "SQ4p": ((64, 100), "eb1f41a658ff4f33"), "ITQ": ((300, 32), "6ab31b7f7b61b828"),
          "PQ8": ((300, 32), "a8c4b132302be3c0"), "OPQ8,PQ8": ((300, 32), "9419b3a76d83a4e6"),
          "BIN+R4SQ8": ((300, 32), "2c35b1ed998e1d85"), "BIN2t": ((64, 100), "3278971700f98be2"),
          "BIN4t": ((64, 100), "1df4ab37009665ce"), "ITQ16": ((300, 32), "744ae0ff7e26757a"),
          "LSH64": ((64, 100), "a8628b8c09feb390"), "LSH256": ((64, 100), "e7231ef22d9e7e50"),
          "RaBitQ1": ((64, 100), "284dbf201d7a508f"), "RaBitQ2": ((64, 100), "28176f10b61de99b"),
          "RaBitQ4": ((64, 100), "6f4c455c2a1688aa"), "SQ8raw": ((64, 100), "cd7c522c44daab8e"),
          "BIN+R40BINa": ((300, 32), "f17b98d803337115")}
SIZES = {"Flat": 4 * 384, "FP16": 2 * 384, "BF16": 2 * 384, "SQ8": 384, "SQ4": 192, "BIN": 48, "BINc": 48,
         "BINr": 48, "BINa": 48, "PQ48": 48, "OPQ24,PQ24": 24, "BIN+R4Flat": 48 + 1536, "SQ8u": 384,
         "SQ8p": 384, "SQ4p": 192, "ITQ": 48, "BIN2t": 96, "BIN4t": 192,
         "ITQ128": 16, "LSH128": 16, "LSH768": 96, "RaBitQ1": 56, "RaBitQ2": 116, "RaBitQ4": 212,
         "SQ8raw": 384, "BIN+R40BINa": 48}


def unit_vectors(n, d, seed):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_every_fixed_codec_is_pinned():
    assert set(CODECS) <= set(GOLDEN)


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_codes(name):
    """Pins each codec's codes for a fixed input: any change to the codes shows up here."""
    shape, digest = GOLDEN[name]
    x = np.random.default_rng(20261124).standard_normal(shape).astype(np.float32)
    codec = make_codec(name).fit(x)
    assert hashlib.sha256(codec.encode(x).tobytes()).hexdigest()[:16] == digest


@pytest.mark.parametrize("name", SIZES)
def test_code_size_is_exact_bytes_per_vector(name):
    x = unit_vectors(400, 384, 1)
    codec = make_codec(name).fit(x)
    codes = codec.encode(x)
    assert codec.code_size == SIZES[name] and codes.shape == (400, SIZES[name]) and codes.dtype == np.uint8


# trained state stored once per index (float32), by hand for d = 384: ranges 2d, codebooks 256 x d, rotations d x d
D = 384
FIXED = {"Flat": 0, "FP16": 0, "BF16": 0, "BIN": 0, "BINa": 0, "BIN+R4Flat": 0,
         "SQ8": 4 * 2 * D, "SQ4": 4 * 2 * D, "SQ8u": 4 * 2, "SQ8p": 4 * 2 * D, "SQ4p": 4 * 2 * D,
         "BINc": 4 * D, "BINr": 4 * D * D, "BIN2t": 4 * 2 * D, "BIN4t": 4 * 4 * D,
         "ITQ": 4 * (D + D * D), "ITQ128": 4 * (D + D * 128), "LSH128": 4 * (128 * D + 128),
         "PQ48": 4 * 256 * D, "OPQ24,PQ24": 4 * (256 * D + D * D), "RaBitQ1": 4 * D, "RaBitQ4": 4 * D,
         "ITQ+R4SQ8": 4 * (D + D * D) + 4 * 2 * D, "SQ8raw": 4 * 2 * D, "BIN+R40BINa": 0}


@pytest.mark.parametrize("name", FIXED)
def test_total_bytes_are_codes_times_n_plus_the_trained_state(name):
    codec = make_codec(name).fit(unit_vectors(400, D, 1))
    assert codec.fixed_bytes == FIXED[name]
    for n in (1, 1_400, 10**6):
        assert codec.total_bytes(n) == n * codec.code_size + FIXED[name]


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
    with pytest.raises(ParameterError, match=r"unknown codec 'XQ9'; valid codecs: Flat, .*, PQ<m>, OPQ<m>,PQ<m>"):
        make_codec("XQ9")


def test_codec_lists_keep_opq_pairs_together():
    assert split_codec_names("Flat, OPQ16,PQ16,PQ8") == ["Flat", "OPQ16,PQ16", "PQ8"]
    with pytest.raises(ParameterError, match="unknown codec 'OPQ16,PQ8'"):
        split_codec_names("OPQ16,PQ8")
    with pytest.raises(ParameterError, match="names a codec twice"):
        split_codec_names("BIN,BIN")


def test_product_quantizer_matches_faiss_index_pq():
    docs, queries = unit_vectors(1000, 64, 12), unit_vectors(10, 64, 13)
    codec = make_codec("PQ16").fit(docs)
    index = faiss.IndexPQ(64, 16, 8, faiss.METRIC_INNER_PRODUCT)
    index.pq = codec._pq
    index.is_trained = True
    index.add(docs)
    np.testing.assert_array_equal(codec.encode(docs), index.sa_encode(docs))
    scores, _ = codec.search(codec.encode(docs), queries, 10)
    np.testing.assert_allclose(scores, index.search(queries, 10)[0], atol=1e-4)


@pytest.mark.parametrize(("name", "rows", "message"), [
    ("PQ7", 300, "dimension 16 is not divisible by m = 7"),
    ("PQ8", 100, "needs at least 256 training vectors"),
    ("OPQ8,PQ8", 300, "needs at least 384 training vectors \\(256 centroids, and a d x d rotation\\)"),
])
def test_product_quantizer_explains_what_it_needs(name, rows, message):
    with pytest.raises(ValueError, match=message):
        make_codec(name).fit(unit_vectors(rows, 384 if name.startswith("OPQ") else 16, 0))


def test_centering_and_rotation_are_fitted_on_the_corpus_and_applied_to_queries():
    docs = unit_vectors(500, 32, 14) + 0.5  # a common offset: plain signs are nearly all 1
    plain, centered = make_codec("BIN").fit(docs), make_codec("BINc").fit(docs)
    assert np.unpackbits(plain.encode(docs)).mean() > 0.9
    assert abs(np.unpackbits(centered.encode(docs)).mean() - 0.5) < 0.05
    rotated = make_codec("BINr").fit(docs)
    q = rotated._rotation
    np.testing.assert_allclose(q @ q.T, np.eye(32), atol=1e-5)
    scores, ids = rotated.search(rotated.encode(docs), docs[:5], 1)
    assert ids[:, 0].tolist() == list(range(5)) and (scores == 0).all()


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
@pytest.mark.parametrize("name", [n for n in CODECS if n not in ("BINr", "ITQ")])
def test_bad_input_is_rejected_with_a_clear_message(name, call, message):
    x = np.random.default_rng(0).standard_normal((20, 16)).astype(np.float32) * 2
    with pytest.raises(ValueError, match=message):
        call(make_codec(name), x)


def test_unfitted_codec_says_so():
    with pytest.raises(RuntimeError, match="call fit"):
        make_codec("SQ8").encode(np.zeros((1, 4), np.float32))


def test_asymmetric_binary_scores_float_queries_against_signs():
    docs, queries = unit_vectors(300, 40, 15), unit_vectors(6, 40, 16)
    codec = make_codec("BINa").fit(docs)
    scores, ids = codec.search(codec.encode(docs), queries, 300)
    signs = np.where(docs > 0, 1.0, -1.0).astype(np.float32)
    expected = np.argsort(-(queries @ signs.T), axis=1, kind="stable")
    np.testing.assert_array_equal(ids, expected)


def test_rescoring_reranks_the_head_exactly_and_keeps_the_first_stage_tail():
    docs, queries = unit_vectors(500, 32, 17), unit_vectors(8, 32, 18)
    codec = make_codec("BIN+R2Flat").fit(docs)
    assert (codec.code_size, codec.rescore_bytes) == (4 + 128, 128)
    codes = codec.encode(docs)
    _, ids = codec.search(codes, queries, 50)
    binary = make_codec("BIN").fit(docs)
    _, first = binary.search(binary.encode(docs), queries, 50)
    for q, row, first_row in zip(queries, ids, first, strict=True):
        head = np.sort(first_row[:20])
        expected_head = head[np.argsort(-(docs[head] @ q), kind="stable")]
        np.testing.assert_array_equal(row[:20], expected_head)
        np.testing.assert_array_equal(row[20:], first_row[20:])


def test_rescoring_names_are_checked():
    with pytest.raises(ParameterError, match="unknown codec 'BIN\\+R4PQ8'"):
        make_codec("BIN+R4PQ8")
    with pytest.raises(ParameterError, match="rescoring factor must be >= 1, got 0"):
        make_codec("BIN+R0Flat")


def test_itq_learns_an_orthogonal_rotation_with_lower_quantization_loss():
    docs = unit_vectors(2000, 32, 19) * np.linspace(0.2, 3, 32).astype(np.float32)  # unequal variances
    itq = make_codec("ITQ").fit(docs)
    rotation = itq._rotation
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(32), atol=1e-4)
    centered = docs - itq._mean

    def loss(r):
        v = centered @ r
        return float(np.sum((np.where(v >= 0, 1.0, -1.0) - v) ** 2))

    random = make_codec("BINr").fit(docs)._rotation
    assert loss(rotation) < loss(random)
    with pytest.raises(NotApplicable, match="ITQ: needs more training vectors than bits \\(32\\)"):
        make_codec("ITQ").fit(docs[:20])


def test_int8_differs_from_sentence_transformers_int8_by_rounding_only():
    """sentence-transformers' int8 maps [min, max] to 255 steps and truncates toward zero after
    subtracting 128; faiss's SQ8 truncates the 0..255 position. So ST + 128 equals SQ8 where the
    position is >= 128 and is one higher (ceil instead of floor) below it: never further apart."""
    docs = unit_vectors(500, 64, 20)
    ours = make_codec("SQ8").fit(docs).encode(docs).astype(int)
    theirs = quantize_embeddings(docs, precision="int8", calibration_embeddings=docs).astype(int) + 128
    assert np.abs(ours - theirs).max() <= 1
    assert (ours == theirs).mean() > 0.4


def test_raw_dot_int8_is_sentence_transformers_int8_scored_by_the_integer_dot_product():
    """The report's int8 row: ST's codes (ranges from the corpus), the query quantized alike, the exact integer
    dot product (int64 here), ties by row."""
    docs, queries = unit_vectors(700, 384, 21), unit_vectors(30, 384, 22)
    codec = make_codec("SQ8raw").fit(docs)
    codes = codec.encode(docs)
    theirs = quantize_embeddings(docs, precision="int8", calibration_embeddings=docs)
    np.testing.assert_array_equal(codes.view(np.int8), theirs)
    query_codes = quantize_embeddings(queries, precision="int8", ranges=np.vstack([docs.min(0), docs.max(0)]))
    exact = query_codes.astype(np.int64) @ theirs.astype(np.int64).T
    order = np.argsort(-exact, axis=1, kind="stable")[:, :10]
    scores, ids = codec.search(codes, queries, 10)
    np.testing.assert_array_equal(ids, order)
    np.testing.assert_array_equal(scores, np.take_along_axis(exact, order, axis=1).astype(np.float32))


def test_bin_rescored_by_bina_is_the_sentence_transformers_binary_protocol():
    """``BIN+R40BINa``: the Hamming top 400 re-scored by the float query against the candidates' bits, the codes
    stored once; its top 10 equals sentence-transformers' own rescoring search (ubinary, top 10 x 40)."""
    docs, queries = unit_vectors(3000, 384, 23), unit_vectors(20, 384, 24)
    codec = make_codec("BIN+R40BINa").fit(docs)
    codes = codec.encode(docs)
    assert codec.code_size == 48 and codec.rescore_bytes == 0
    np.testing.assert_array_equal(codes, quantize_embeddings(docs, precision="ubinary"))
    _, ids = codec.search(codes, queries, 10)
    theirs, _ = semantic_search_faiss(queries, corpus_embeddings=quantize_embeddings(docs, precision="ubinary"),
                                      corpus_precision="ubinary", top_k=10, rescore_multiplier=40)
    np.testing.assert_array_equal(ids, [[hit["corpus_id"] for hit in hits] for hits in theirs])


@pytest.mark.parametrize("name", ["SQ8p", "SQ4p"])
def test_clipped_scalar_quantizer_against_a_plain_reference(name):
    bits = int(name[2])
    docs = unit_vectors(400, 15, 21)  # odd dimension: the 4-bit codes carry one pad nibble
    codec = make_codec(name).fit(docs)
    lo, hi = np.quantile(docs.astype(np.float64), [0.01, 0.99], axis=0)
    step = (hi - lo) / 2**bits
    levels = np.clip(np.floor((docs - lo) / step), 0, 2**bits - 1)
    np.testing.assert_allclose(codec.decode(codec.encode(docs)), lo + (levels + 0.5) * step, atol=1e-5)
    inside = (docs >= lo) & (docs <= hi)
    error = np.abs(codec.decode(codec.encode(docs)) - docs)
    assert np.all(error[inside] <= np.broadcast_to(step, docs.shape)[inside] / 2 + 1e-5)


@pytest.mark.parametrize("bits", [2, 4])
def test_thermometer_hamming_distance_is_l1_distance_of_levels(bits):
    """Oracle: the slow obvious distance (sum of per-dimension level differences) ranks like the codes,
    including all-zero and duplicate rows; levels are equally filled on the corpus."""
    docs = unit_vectors(500, 20, 7)
    docs[3] = docs[4]  # duplicate rows
    docs[5] = 0.0  # all-zero row
    queries = unit_vectors(6, 20, 8)
    codec = make_codec(f"BIN{bits}t").fit(docs)
    doc_levels, query_levels = codec.levels(docs), codec.levels(queries)
    assert np.allclose(np.bincount(doc_levels.ravel(), minlength=bits + 1) / doc_levels.size, 1 / (bits + 1),
                       atol=0.02)
    l1 = np.abs(query_levels[:, None, :] - doc_levels[None, :, :]).sum(axis=2)
    scores, ids = codec.search(codec.encode(docs), queries, 25)
    expected_scores, expected_ids = topk_by_score(-l1.astype(np.float32), 25)
    assert np.array_equal(scores, expected_scores) and np.array_equal(ids, expected_ids)


def test_thermometer_needs_two_bits():
    from phase2.codecs import ThermometerBinary

    with pytest.raises(ParameterError, match="at least 2 bits"):
        ThermometerBinary(1)


def test_itq_with_fewer_bits_projects_on_leading_components_and_equals_itq_at_full_width():
    docs = unit_vectors(2000, 32, 19) * np.linspace(0.2, 3, 32).astype(np.float32)
    short = make_codec("ITQ16").fit(docs)
    assert short._rotation.shape == (32, 16) and short.code_size == 2
    np.testing.assert_allclose(short._rotation.T @ short._rotation, np.eye(16), atol=1e-4)
    np.testing.assert_array_equal(make_codec("ITQ32").fit(docs).encode(docs), make_codec("ITQ").fit(docs).encode(docs))
    with pytest.raises(ValueError, match="ITQ64: bits must be between 8 and the dimension 32, got 64"):
        make_codec("ITQ64").fit(docs)


@pytest.mark.parametrize("bits", [64, 256])
def test_lsh_codes_equal_faiss_index_lsh_and_search_by_hamming(bits):
    docs, queries = unit_vectors(500, 100, 21), unit_vectors(20, 100, 22)
    docs[7] = docs[3]  # duplicates tie: lower row first
    codec = make_codec(f"LSH{bits}").fit(docs)
    index = faiss.IndexLSH(100, bits, True, True)
    index.train(docs)
    codes = codec.encode(docs)
    np.testing.assert_array_equal(codes, index.sa_encode(docs))
    bits_d = np.unpackbits(codes, axis=1).astype(int)
    bits_q = np.unpackbits(codec.encode(queries), axis=1).astype(int)
    hamming = (bits_q[:, None, :] != bits_d[None, :, :]).sum(axis=2)
    scores, ids = codec.search(codes, queries, 30)
    np.testing.assert_array_equal(ids, np.argsort(hamming, axis=1, kind="stable")[:, :30])
    np.testing.assert_array_equal(-scores, np.sort(hamming, axis=1)[:, :30])


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_rabitq_search_equals_faiss_index_rabitq(bits):
    docs, queries = unit_vectors(1000, 64, 23), unit_vectors(15, 64, 24)
    from phase2.codecs.base import pinned_simd

    codec = make_codec(f"RaBitQ{bits}").fit(docs)
    index = faiss.IndexRaBitQ(64, faiss.METRIC_INNER_PRODUCT, bits)
    index.qb = codec.QUERY_BITS
    with pinned_simd():  # the codec's level (codecs.FAISS_SIMD): multi-bit codes differ between levels
        index.train(docs)
        index.add(docs)
        expected_codes = index.sa_encode(docs)
        expected_scores, expected_ids = index.search(queries, 10)
    np.testing.assert_array_equal(codec.encode(docs), expected_codes)
    scores, ids = codec.search(codec.encode(docs), queries, 10)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-6)
    with pytest.raises(ParameterError, match="faiss supports 1 to 9 bits per dimension, got 0"):
        make_codec("RaBitQ0")


def test_rabitq_codes_do_not_depend_on_the_simd_level_faiss_runs_at_elsewhere():
    """faiss's multi-bit RaBitQ rounds differently at each SIMD level; the codec pins one (codecs.FAISS_SIMD), so
    a process whose faiss runs at another level (another machine's default) still gets the golden codes."""
    x = np.random.default_rng(20261124).standard_normal(GOLDEN["RaBitQ2"][0]).astype(np.float32)
    previous = faiss.SIMDConfig.get_level()
    try:
        for level in (faiss.SIMDLevel_NONE, previous):
            faiss.SIMDConfig.set_level(level)
            codes = make_codec("RaBitQ2").fit(x).encode(x)
            assert hashlib.sha256(codes.tobytes()).hexdigest()[:16] == GOLDEN["RaBitQ2"][1]
            assert faiss.SIMDConfig.get_level() == level  # restored after each call
    finally:
        faiss.SIMDConfig.set_level(previous)


def test_rescoring_pipelines_share_one_fit_of_their_first_stage_and_its_codes():
    from phase2 import codecs

    x, other = unit_vectors(400, 64, 1), unit_vectors(400, 64, 2)
    pipelines._fitted_first_stages.clear()
    first = make_codec("ITQ+R2Flat").fit(x)
    again = make_codec("ITQ+R10SQ8").fit(x)
    assert again.first is first.first  # fitted once for both
    fresh = make_codec("ITQ").fit(x)
    assert np.array_equal(again.first.encode(x), fresh.encode(x))
    assert make_codec("ITQ+R2Flat").fit(other).first is not first.first  # another corpus: a new fit
    seeded = codecs.Rescored(codecs.IterativeQuantization(seed=1), make_codec("Flat"), 2).fit(x)
    assert seeded.first is not first.first  # another constructor state: a new fit
    assert not np.array_equal(seeded.first.encode(x), fresh.encode(x))


def test_training_rows_are_a_seeded_half_of_the_corpus_in_corpus_order():
    for n in (2, 3, 10, 1401):
        rows = training_rows(n)
        assert len(rows) == n // 2 and len(set(rows.tolist())) == n // 2 and 0 <= rows.min() and rows.max() < n
        np.testing.assert_array_equal(rows, np.sort(rows))
        np.testing.assert_array_equal(rows, training_rows(n))
    assert not np.array_equal(training_rows(1000), training_rows(1000, seed=1))


def test_trained_codecs_are_those_whose_state_depends_on_the_corpus():
    trained = {name for name in CODECS if make_codec(name).trained}
    assert trained == {"SQ8", "SQ8u", "SQ8p", "SQ8raw", "SQ4", "SQ4p", "BINc", "ITQ", "BIN2t", "BIN4t"}
    assert all(make_codec(name).trained for name in ("PQ8", "OPQ8,PQ8", "ITQ16", "LSH64", "RaBitQ1", "BIN+R4SQ8",
                                                     "SQ4+R2Flat"))
    assert not any(make_codec(name).trained for name in ("BIN+R4Flat", "BIN+R40BINa", "BINr+R2FP16"))


def corpus_with_duplicates_and_zeros(n, d, seed):
    docs = unit_vectors(n, d, seed)
    docs[5:9] = docs[0]  # duplicate rows: exact ties
    docs[20] = 0.0  # an all-zero row
    return docs


@pytest.mark.parametrize("name", ["SQ8", "SQ8raw", "ITQ", "PQ4", "BINc", "BIN2t", "RaBitQ2", "BIN+R2SQ8", "ITQ+R2Flat"])
def test_a_trained_codec_is_fitted_on_the_seeded_half_and_encodes_every_row(name):
    docs, queries = corpus_with_duplicates_and_zeros(600, 16, 31), unit_vectors(7, 16, 32)
    codec = fitted_for_search(name, docs)
    by_hand = make_codec(name).fit(docs[np.sort(np.random.default_rng(0).permutation(600)[:300])])
    np.testing.assert_array_equal(codec.encode(docs), by_hand.encode(docs))
    whole = make_codec(name).fit(docs)
    assert not np.array_equal(whole.encode(docs), codec.encode(docs))  # the half is not the corpus
    np.testing.assert_array_equal(fitted_for_search(name, docs, "corpus").encode(docs), whole.encode(docs))
    scores, ids = codec.search(codec.encode(docs), queries, 40)
    assert ids.shape == (7, 40) and (np.diff(scores, axis=1) <= 0).all()


@pytest.mark.parametrize("name", ["BIN", "BINr", "BINa", "BIN+R40BINa", "BIN+R4Flat"])
def test_an_untrained_codec_is_fitted_on_the_whole_corpus_whatever_the_training(name):
    docs = corpus_with_duplicates_and_zeros(500, 32, 35)
    codes = make_codec(name).fit(docs).encode(docs)
    for training in ("half", "corpus", "sample100"):
        np.testing.assert_array_equal(fitted_for_search(name, docs, training).encode(docs), codes)


def test_training_must_be_a_known_rule():
    with pytest.raises(ParameterError, match="training: 'halves' is not one of half, corpus"):
        fitted_for_search("SQ8", unit_vectors(10, 8, 0), "halves")
    with pytest.raises(ParameterError, match="'sample0' is not one of"):
        fitted_for_search("SQ8", unit_vectors(10, 8, 0), "sample0")


def test_learning_curve_samples_are_nested_and_half_is_the_sample_of_half_the_corpus():
    """sample<N> fits on the first N rows of the seeded order half takes its first n/2 from: the training sets of a
    learning curve are nested, and sample500 of 1,000 vectors is half."""
    docs = unit_vectors(1000, 16, 3)
    small, large = training_rows(1000, 100), training_rows(1000, 400)
    assert set(small) <= set(large) <= set(training_rows(1000)) and len(small) == 100
    np.testing.assert_array_equal(fitted_for_search("SQ8", docs, "sample500").encode(docs),
                                  fitted_for_search("SQ8", docs, "half").encode(docs))
    np.testing.assert_array_equal(fitted_for_search("SQ8", docs, "sample100").encode(docs),
                                  make_codec("SQ8").fit(docs[small]).encode(docs))
    assert training_size(make_codec("PQ16"), 1000, "sample256") == 256
    assert inapplicable_reason("PQ16", 1000, 16, "sample100").endswith("(100 of 1,000 documents)")


@pytest.mark.parametrize(("name", "n", "dim", "reason"), [
    ("ITQ", 768, 768, "needs more training vectors than bits (768) for 768 principal directions, got 768"),
    ("ITQ384", 384, 768, "needs more training vectors than bits (384)"),
    ("OPQ48,PQ48", 767, 768, "needs at least 768 training vectors (256 centroids, and a d x d rotation), got 767"),
    ("PQ48", 255, 384, "needs at least 256 training vectors (256 centroids), got 255"),
    ("PQ48", 300, 100, "the dimension 100 is not divisible by m = 48"),
    ("SQ8raw", 2000, 1024, "exact float32 sums need fewer than 1,024 dimensions, got 1024"),
    ("ITQ+R2Flat", 100, 128, "needs more training vectors than bits (128)"),
])
def test_a_codec_that_cannot_fit_says_why_from_the_shapes_and_when_fitted(name, n, dim, reason):
    assert reason in make_codec(name).unfit_reason(n, dim)
    with pytest.raises(NotApplicable, match=re.escape(f"{name}: {reason}")):
        make_codec(name).fit(unit_vectors(n, dim, 0))


@pytest.mark.parametrize(("name", "n", "dim"), [("ITQ", 769, 768), ("ITQ384", 385, 768), ("OPQ8,PQ8", 256, 32),
                                                ("PQ48", 256, 384), ("SQ8raw", 10, 1023), ("LSH64", 2, 16)])
def test_a_codec_fits_at_its_stated_minimum(name, n, dim):
    assert make_codec(name).unfit_reason(n, dim) is None
    make_codec(name).fit(unit_vectors(n, dim, 0))


def test_inapplicable_reason_counts_the_half_a_trained_codec_is_fitted_on():
    assert inapplicable_reason("ITQ", 1400, 768) == ("needs more training vectors than bits (768) for 768 principal "
                                                     "directions, got 700 (half of 1,400 documents)")
    assert inapplicable_reason("ITQ", 1400, 768, "corpus") is None
    assert inapplicable_reason("ITQ", 1400, 384) is None
    assert inapplicable_reason("BIN", 3, 768) is None  # nothing to train




def test_a_truncated_code_is_its_codec_on_the_first_dimensions_renormalised():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((300, 64)).astype(np.float32)
    x[5] = 0  # an all-zero vector, and one whose kept head is zero
    x[6, :32] = 0
    cut = make_codec("T32,BIN").fit(x)
    plain = make_codec("BIN").fit(x[:, :32])  # signs ignore the renormalisation: the oracle needs none
    assert (cut.name, cut.code_size, cut.fixed_bytes, cut.trained) == ("T32,BIN", 4, 0, False)
    np.testing.assert_array_equal(cut.encode(x), plain.encode(np.ascontiguousarray(x[:, :32])))
    for got, want in zip(cut.search(cut.encode(x), x[:20], 10), plain.search(plain.encode(x[:, :32]), x[:20, :32], 10),
                         strict=True):
        np.testing.assert_array_equal(got, want)
    head = x[:, :32].astype(np.float64)
    norms = np.linalg.norm(head, axis=1, keepdims=True)
    unit = (head / np.where(norms > 0, norms, 1)).astype(np.float32)
    flat = make_codec("T32,Flat").fit(x)
    np.testing.assert_allclose(flat.encode(x).view(np.float32), unit, rtol=0, atol=1e-6)  # zero rows stay zero
    scores, ids = flat.search(flat.encode(x), x[:3], 1)
    np.testing.assert_allclose(scores[:, 0], 1, atol=1e-6)
    np.testing.assert_array_equal(ids[:, 0], [0, 1, 2])
    trained = make_codec("T32,SQ8").fit(x)
    assert trained.trained and trained.fixed_bytes == make_codec("SQ8").fit(unit).fixed_bytes
    assert inapplicable_reason("T128,BIN", 300, 64) == "cuts to 128 dimensions, the vectors have 64 (all 300 documents)"
    assert split_codec_names("Flat,T192,BIN,T192,OPQ16,PQ16") == ["Flat", "T192,BIN", "T192,OPQ16,PQ16"]
    with pytest.raises(ParameterError, match="d must be at least 1"):
        make_codec("T0,BIN")
