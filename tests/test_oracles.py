"""Independent oracles: each number the book prints, recomputed the slow obvious way and compared.

Every reference here is written from the method's definition (a paper's formula, a library's
documented format), never by calling the code under test again. Golden hashes in
``test_codecs.py`` pin stability; these tests pin correctness.
"""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from phase2.codecs import make_codec, random_rotation
from phase2.search.methods import Refined, exact_topk, recall_at_k


def unit_rows(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def uneven_rows(n: int, d: int, seed: int) -> np.ndarray:
    """Unit rows whose dimensions have very different ranges (so a per-dimension scale matters),
    with an offset (so signs are unbalanced), a duplicate pair and an all-zero row."""
    x = unit_rows(n, d, seed) * np.geomspace(0.05, 3, d).astype(np.float32) + 0.02
    x[7] = x[3]
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    x[11] = 0.0
    return x.astype(np.float32)


def hamming_matrix(queries: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """Hamming distance of the sign bits (``x > 0``), one bit at a time."""
    return ((queries[:, None, :] > 0) != (docs[None, :, :] > 0)).sum(axis=2)


def rerank(candidates: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Candidates (in first-stage order) sorted by score descending; equal scores keep that order."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(candidates, order, axis=1)


# --- recall@k ---------------------------------------------------------------------------------------------

def test_recall_at_k_oracle_on_hand_made_partial_overlaps():
    truth = np.array([[4, 3, 10, 11], [8, 6, 5, 7], [9, 12, 13, 14], [0, 1, 2, 3]])
    found = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [20, 21, 22, 23], [3, 99, 98, 97]])
    np.testing.assert_array_equal(recall_at_k(found, truth), [0.5, 1.0, 0.0, 0.25])


def test_recall_at_k_oracle_counts_only_the_first_k_found_and_ignores_padding():
    truth = np.array([[1, 2], [3, 4], [5, 6]])
    found = np.array([[2, 9, 1, 1], [-1, -1, -1, -1], [6, -1, 5, -1]])  # an index may return fewer than k (-1)
    np.testing.assert_array_equal(recall_at_k(found, truth), [0.5, 0.0, 0.5])
    small = np.array([[5, -1], [5, -1], [-1, -1]])  # exact search over one document, k = 2
    np.testing.assert_array_equal(recall_at_k(np.array([[5, -1], [-1, -1], [-1, -1]]), small), [1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="recall@2: found has 2 rows, truth 3"):
        recall_at_k(found[:2], truth)


def test_exact_topk_oracle_is_a_float64_argsort():
    corpus, queries = unit_rows(500, 24, 40), unit_rows(30, 24, 41)
    expected = np.argsort(-(queries.astype(np.float64) @ corpus.T.astype(np.float64)), axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(exact_topk(corpus, queries, 10), expected)


def test_exact_topk_in_parts_equals_one_search_short_parts_included(monkeypatch):
    from phase2.search import methods

    corpus, queries = unit_rows(500, 24, 40), unit_rows(30, 24, 41)
    whole = exact_topk(corpus, queries, 10)
    monkeypatch.setattr(methods, "TRUTH_ROWS", 128)
    np.testing.assert_array_equal(exact_topk(corpus, queries, 10), whole)
    monkeypatch.setattr(methods, "TRUTH_ROWS", 3)  # parts shorter than k, padded with -1 by faiss
    few = corpus[:7]
    order = np.argsort(-(queries.astype(np.float64) @ few.T.astype(np.float64)), axis=1, kind="stable")
    np.testing.assert_array_equal(exact_topk(few, queries, 10), np.hstack([order, np.full((30, 3), -1)]))


# --- Refined (the throughput chapter's binary + rescoring pipelines) --------------------------------

def faiss_sq8_decode(docs: np.ndarray) -> np.ndarray:
    """faiss's documented 8-bit scalar quantizer, written out: per dimension [min, max] in 255 steps,
    code ``floor(255 (x - min) / (max - min))``, decoded at the middle of its cell."""
    lo, hi = docs.min(axis=0).astype(np.float64), docs.max(axis=0).astype(np.float64)
    span = hi - lo
    codes = np.clip(np.floor(255 * (docs - lo) / span), 0, 255)
    return lo + (codes + 0.5) / 255 * span


def int8_query_scores(docs: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """What the int8 second stage ranks by, written out: the faiss SQ8 codes of :func:`faiss_sq8_decode` against
    ``q * step`` (``step`` = the cell width, in float32 as faiss keeps it) scaled so its largest magnitude is 127
    and rounded to the nearest integer (half to even), summed exactly."""
    lo, hi = docs.min(axis=0).astype(np.float64), docs.max(axis=0).astype(np.float64)
    codes = np.clip(np.floor(255 * (docs - lo) / (hi - lo)), 0, 255)
    weights = (queries * ((docs.max(axis=0) - docs.min(axis=0)) / 255).astype(np.float32)).astype(np.float64)
    rounded = np.rint(weights * (127 / np.abs(weights).max(axis=1))[:, None])
    return rounded @ codes.T


@pytest.mark.parametrize(("store", "on_disk", "float_query"), [
    ("float32", False, False), ("int8", False, False), ("int8", False, True), ("signs", False, False),
    ("int8", True, False)])
@pytest.mark.parametrize("factor", [1, 4, 100])
def test_binary_rescore_oracle_against_numpy_decode_and_argsort(store, on_disk, float_query, factor):
    docs, queries = uneven_rows(700, 48, 42), unit_rows(40, 48, 43)
    method = Refined("oracle", store, on_disk=on_disk, float_query=float_query)
    method.fit(docs)
    method.set_query_arguments(factor=factor)
    found = method.query(queries, 10)
    candidates = np.argsort(hamming_matrix(queries, docs), axis=1, kind="stable")[:, :min(700, 10 * factor)]
    if store == "int8" and not float_query:
        scores = np.take_along_axis(int8_query_scores(docs, queries), candidates, axis=1)
        np.testing.assert_array_equal(found, rerank(candidates, scores, 10))
        return
    vectors = {"float32": lambda: docs.astype(np.float64), "int8": lambda: faiss_sq8_decode(docs),
               "signs": lambda: np.where(docs > 0, 1.0, -1.0)}[store]()
    scores = np.einsum("qd,qcd->qc", queries.astype(np.float64), vectors[candidates])
    np.testing.assert_array_equal(found, rerank(candidates, scores, 10))


# --- codecs -----------------------------------------------------------------------------------------------

def itq_reference(corpus: np.ndarray, iterations: int, seed: int) -> np.ndarray:
    """ITQ as Gong & Lazebnik (2011) state it: V = the centred data on its principal directions; repeat
    B = sgn(V R), then R = argmin ||B - V R||_F over orthogonal R (orthogonal Procrustes: with the SVD
    V^T B = U S W^T, R = U W^T). Returns the code bits."""
    x = corpus.astype(np.float64)
    centred = x - x.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    v = centred @ components.T
    r = random_rotation(v.shape[1], seed).astype(np.float64)  # the paper starts from a random rotation
    for _ in range(iterations):
        b = np.where(v @ r >= 0, 1.0, -1.0)
        u, _, wt = np.linalg.svd(v.T @ b)  # max tr(R^T V^T B): R = U W^T
        r = u @ wt
    return v @ r > 0


def test_itq_oracle_against_pca_and_procrustes():
    docs = unit_rows(1500, 24, 44) * np.linspace(0.2, 3, 24).astype(np.float32)
    codec = make_codec("ITQ").fit(docs)
    bits = np.unpackbits(codec.encode(docs), axis=1)[:, :24].astype(bool)
    expected = itq_reference(docs, codec.iterations, codec.seed)
    assert (bits == expected).mean() > 0.999  # float32 against float64: a value at 0 may flip


@pytest.mark.parametrize(("name", "relative", "smallest_normal"), [("FP16", 2.0 ** -11, 2.0 ** -14),
                                                                   ("BF16", 2.0 ** -8, 2.0 ** -126)])
def test_half_precision_error_is_within_half_a_unit_in_the_last_place(name, relative, smallest_normal):
    """Round to nearest: at most 2^-11 (float16, 10 stored fraction bits) or 2^-8 (bfloat16, 7) of |x|.
    A bfloat16 encoder fails the float16 bound; a truncating one fails both."""
    rng = np.random.default_rng(45)
    x = (rng.choice([-1, 1], (300, 64)) * 10.0 ** rng.uniform(-6, 4, (300, 64))).astype(np.float32)
    codec = make_codec(name).fit(x)
    error = np.abs(codec.decode(codec.encode(x)).astype(np.float64) - x)
    normal = np.abs(x) >= smallest_normal
    assert np.all(error[normal] <= relative * np.abs(x[normal]))
    assert np.all(error[~normal] <= relative * smallest_normal)
    assert (error[normal] / np.abs(x[normal])).max() > relative / 2  # and no more precise: it is not float32


def faiss_scalar_decoder(name: str, docs: np.ndarray):
    qtype = {"SQ4": faiss.ScalarQuantizer.QT_4bit, "SQ8u": faiss.ScalarQuantizer.QT_8bit_uniform}[name]
    index = faiss.IndexScalarQuantizer(docs.shape[1], qtype, faiss.METRIC_INNER_PRODUCT)
    index.train(docs)
    index.add(docs)
    return index


@pytest.mark.parametrize(("name", "levels", "per_dimension"), [("SQ4", 15, True), ("SQ8u", 255, False)])
def test_scalar_quantizer_oracle_against_faiss_and_the_written_out_formula(name, levels, per_dimension):
    docs, queries = uneven_rows(400, 32, 46), unit_rows(12, 32, 47)
    codec = make_codec(name).fit(docs)
    codes = codec.encode(docs)
    index = faiss_scalar_decoder(name, docs)
    np.testing.assert_array_equal(codes, index.sa_encode(docs))
    np.testing.assert_array_equal(codec.decode(codes), index.sa_decode(codes))
    scores, ids = codec.search(codes, queries, 10)
    faiss_scores, faiss_ids = index.search(queries, 10)
    np.testing.assert_allclose(scores, faiss_scores, atol=1e-5)
    lo, hi = (docs.min(axis=0), docs.max(axis=0)) if per_dimension else (docs.min(), docs.max())
    span = hi - lo  # float32 throughout, as faiss computes: a value at the maximum lands on the top level
    level = np.clip(np.floor(((docs - lo) / span) * np.float32(levels)), 0, levels)
    decoded = codec.decode(codes)
    np.testing.assert_allclose(decoded, lo + (level + 0.5) / levels * span, rtol=0, atol=1e-6)
    assert np.all(np.abs(decoded - docs) <= np.broadcast_to(span / levels, docs.shape) * 0.5 + 1e-6)


def test_opq_oracle_against_faiss_pretransform_index():
    docs, queries = unit_rows(600, 32, 48), unit_rows(10, 32, 49)
    codec = make_codec("OPQ8,PQ8").fit(docs)
    codes = codec.encode(docs)
    rotation = faiss.vector_to_array(codec._opq.A).reshape(32, 32)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(32), atol=1e-5)
    quantizer = faiss.IndexPQ(32, 8, 8, faiss.METRIC_INNER_PRODUCT)
    quantizer.pq, quantizer.is_trained = codec._pq, True
    index = faiss.IndexPreTransform(codec._opq, quantizer)
    index.add(docs)
    np.testing.assert_array_equal(codes, index.sa_encode(docs))
    np.testing.assert_allclose(codec.decode(codes), index.sa_decode(codes), atol=1e-6)
    # decode = R^T (PQ centroids of the rotated vector): rebuild it from the codebook by hand
    centroids = faiss.vector_to_array(codec._pq.centroids).reshape(8, 256, 4)
    rotated = np.hstack([centroids[m, codes[:, m]] for m in range(8)])
    np.testing.assert_allclose(codec.decode(codes), rotated @ rotation, atol=1e-5)
    scores, _ = codec.search(codes, queries, 10)
    np.testing.assert_allclose(scores, index.search(queries, 10)[0], atol=1e-5)


def test_bin_r4sq8_oracle_against_decode_and_argsort():
    """The RQ1 rescoring row: Hamming head of 40 (ties by row), re-ranked by q . decode(int8), the tail kept."""
    docs, queries = uneven_rows(600, 48, 50), unit_rows(25, 48, 51)
    codec = make_codec("BIN+R4SQ8").fit(docs)
    _, ids = codec.search(codec.encode(docs), queries, 100)
    first = np.argsort(hamming_matrix(queries, docs), axis=1, kind="stable")[:, :100]
    head = np.sort(first[:, :40], axis=1)  # the head is re-ranked in corpus order: ties fall back to it
    scores = np.einsum("qd,qcd->qc", queries.astype(np.float64), faiss_sq8_decode(docs)[head])
    np.testing.assert_array_equal(ids[:, :40], rerank(head, scores, 40))
    np.testing.assert_array_equal(ids[:, 40:], first[:, 40:])


# --- encoders ---------------------------------------------------------------------------------------------

def automodel_mean_pooled(location: str, texts: list[str], max_length: int) -> np.ndarray:
    """What sentence-transformers' model card says these models compute, with plain transformers: the
    token embeddings mean-pooled over the attention mask, then L2-normalised."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer, model = AutoTokenizer.from_pretrained(location), AutoModel.from_pretrained(location).eval()
    out = []
    for text in texts:  # one at a time: no padding at all
        batch = tokenizer([text], truncation=True, max_length=max_length, return_tensors="pt")
        with torch.no_grad():
            tokens = model(**batch).last_hidden_state[0].double().numpy()
        out.append(tokens.mean(axis=0))
    pooled = np.array(out)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


ORACLE_TEXTS = [{"_id": "d1", "title": "Wing", "text": "lift on a wing at high angle of attack"},
                {"_id": "d2", "title": "", "text": "boundary layer flow"},
                {"_id": "d3", "title": "Heat", "text": "heat transfer " * 300},  # longer than any max_seq_length
                {"_id": "d4", "title": "Ünïcode", "text": "résumé of naïve café façades — 10⁻³ m/s"}]


@pytest.mark.parametrize("model", ["minilm-l6", pytest.param("mpnet-base", marks=pytest.mark.models)])
def test_encoder_oracle_against_transformers_automodel(model, tmp_path, monkeypatch):
    from phase2.data import embeddings
    from phase2.data.datasets import load_beir_dir

    from conftest import require_model_weights, write_collection

    spec = embeddings.get_model_spec(model)
    require_model_weights(spec)
    monkeypatch.setenv("PHASE2_CACHE_DIR", str(tmp_path / "cache"))
    collection = load_beir_dir(write_collection(tmp_path, corpus=ORACLE_TEXTS))
    ours = embeddings.embed(collection, model, "docs", progress=False)
    expected = automodel_mean_pooled(embeddings.model_location(spec), list(collection.doc_texts), spec.max_seq_length)
    assert ours.shape == (4, spec.dim)
    cosine = np.sum(ours * expected, axis=1)
    assert cosine.min() >= 0.9999, cosine
    np.testing.assert_allclose(ours, expected, atol=2e-5)


# --- one end-to-end number --------------------------------------------------------------------------------

def test_smoke_chapter_rows_for_cranfield_flat_and_bin_equal_numpy_rankings_scored_by_pytrec_eval(smoke_build):
    """The quality chapter's per-query rows for float32 and the sign code, rebuilt without phase2's codecs,
    kernels or metrics: a float64 dot product and a bit-by-bit Hamming distance, ranked by a stable argsort
    (ties by ascending row, the book's rule), scored by pytrec_eval (trec_eval)."""
    import pandas as pd
    import pytrec_eval

    from phase2.data.datasets import load_dataset
    from phase2.data.embeddings import embed

    from conftest import require_dataset

    require_dataset("cranfield")
    c = load_dataset("cranfield")
    docs, queries = embed(c, "minilm-l6", "docs", progress=False), embed(c, "minilm-l6", "queries", progress=False)
    rankings = {"Flat": np.argsort(-(queries.astype(np.float64) @ docs.T.astype(np.float64)), axis=1, kind="stable"),
                "BIN": np.argsort(hamming_matrix(queries, docs), axis=1, kind="stable")}
    (run_file,) = (smoke_build.results / "quality_vs_memory").glob("*.parquet")
    rows = pd.read_parquet(run_file)
    rows = rows[(rows.dataset == "cranfield") & (rows.model == "minilm-l6") & (rows.query_id != "")]
    measures = {"nDCG@10": ("ndcg_cut", "ndcg_cut_10", 100), "Recall@10": ("recall", "recall_10", 100),
                "Recall@100": ("recall", "recall_100", 100), "MRR@10": ("recip_rank", "recip_rank", 10)}
    for codec, ranking in rankings.items():
        for metric, (measure, key, depth) in measures.items():
            run = {q: {c.doc_ids[j]: float(depth - r) for r, j in enumerate(row[:depth])}
                   for q, row in zip(c.query_ids, ranking, strict=True)}
            values = {q: v[key] for q, v in pytrec_eval.RelevanceEvaluator(c.qrels, {measure}).evaluate(run).items()}
            book = rows[(rows.codec == codec) & (rows.metric == metric)].set_index("query_id").value
            assert set(book.index) == set(values) == set(c.qrels)
            np.testing.assert_allclose(book.loc[list(values)].to_numpy(), list(values.values()), rtol=0, atol=1e-12,
                                       err_msg=f"{codec} {metric}")
