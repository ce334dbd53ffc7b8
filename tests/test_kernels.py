"""Oracle tests: the numba kernels against slow, obvious references and against faiss."""

import os
import re
import subprocess
import sys

import faiss
import numba
import numpy as np
import pytest

from phase2 import kernels
from phase2.kernels import as_words, asymmetric_topk, hamming, hamming_topk, rescore

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


@pytest.fixture(params=[(1, 1), (1, 3), (3, 1)], ids=["one-unit", "three-row-slices", "three-query-groups"])
def slices(request, monkeypatch):
    """Work split of a scan: three row slices force the cross-slice merge even on one thread and 40 rows."""
    monkeypatch.setattr(hamming, "_work_split", lambda n_queries, n_blocks: (min(request.param[0], n_queries),
                                                                             request.param[1]))
    return request.param


@pytest.fixture(params=["unseeded", "seeded", "forced-fallback", "tiny-buffer"])
def selection(request, monkeypatch):
    """How the threshold starts and tightens: from nothing; from a sample (every third row); from the smallest
    sampled distance, so most queries keep fewer than k rows and are scanned again; or with a buffer of k + 1,
    so the buffer is cut back at nearly every row."""
    if request.param == "seeded":
        monkeypatch.setattr(hamming, "_starting_rank", lambda n_rows, k: (3, min(k, -(-n_rows // 3))))
    elif request.param == "forced-fallback":
        monkeypatch.setattr(hamming, "_starting_rank", lambda n_rows, k: (1, 1))
    elif request.param == "tiny-buffer":
        monkeypatch.setattr(hamming, "_capacity", lambda k: k + 1)
    return request.param


@pytest.mark.parametrize("nbits", [8, 56, 64, 72, 128, 200, 384, 1000])
@pytest.mark.parametrize("k", [1, 7, 40])
def test_topk_matches_reference_on_any_width(nbits, k, slices, selection):
    rng = np.random.default_rng(nbits * 100 + k)
    database = random_codes(rng, 40, nbits // 8)
    queries = np.vstack([database[:4], random_codes(rng, 6, nbits // 8)])
    dist, ids = hamming_topk(queries, database, k)
    ref_dist, ref_ids = reference_topk(queries, database, k)
    np.testing.assert_array_equal(dist, ref_dist)
    np.testing.assert_array_equal(ids, ref_ids)


def test_all_zero_codes_tie_everywhere_and_keep_row_order(selection):
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


@pytest.mark.parametrize("k", [10, 1000])
def test_same_result_with_one_and_two_threads(k):
    rng = np.random.default_rng(7)
    database, queries = random_codes(rng, 20_000, 48), random_codes(rng, 67, 48)
    database[5000:5100] = database[100]  # ties across the two threads' slices
    require_threads(2)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = hamming_topk(queries, database, k)
        numba.set_num_threads(2)
        two = hamming_topk(queries, database, k)
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


def test_deep_lists_cut_a_run_of_ties_exactly(selection):
    rng = np.random.default_rng(11)
    database, queries = random_codes(rng, 3000, 48), random_codes(rng, 13, 48)
    database[2000:2300] = database[7]  # a run of ties that the threshold cuts through
    queries[0] = database[7]
    deep = hamming_topk(queries, database, 1000)
    ref = reference_topk(queries, database, 1000)
    np.testing.assert_array_equal(deep[0], ref[0])
    np.testing.assert_array_equal(deep[1], ref[1])
    everything = hamming_topk(queries, database, len(database))  # k = N: every row, in order
    np.testing.assert_array_equal(np.sort(everything[1], axis=1), np.tile(np.arange(len(database)), (13, 1)))


def test_a_sampled_threshold_on_a_large_database_and_its_fallback_are_exact(monkeypatch):
    rng = np.random.default_rng(5)
    database = random_codes(rng, 4 * kernels.SEED_SAMPLE + 5000, 48)  # large enough to be seeded
    queries = np.vstack([database[10:14], random_codes(rng, 20, 48)])
    queries[-1] = ~database[0]  # far from everything: its top rows sit at the far end of the distances
    blocks = kernels.CodeBlocks.of(database)
    unseeded = hamming_topk(queries, blocks, 100, seeded=False)
    seeded = hamming_topk(queries, blocks, 100)
    np.testing.assert_array_equal(seeded[0], unseeded[0])
    np.testing.assert_array_equal(seeded[1], unseeded[1])
    rescanned = []
    original = hamming.hamming_topk
    monkeypatch.setattr(hamming, "_seed_thresholds",  # too tight: only exact copies pass, every query is short
                        lambda queries, blocks, n_rows, stride, rank, thresholds: thresholds.fill(1))
    monkeypatch.setattr(hamming, "hamming_topk", lambda q, db, k, seeded=True: rescanned.append(len(q))
                        or original(q, db, k, seeded))
    forced = original(queries, blocks, 100)
    assert rescanned == [len(queries)]
    np.testing.assert_array_equal(forced[0], unseeded[0])
    np.testing.assert_array_equal(forced[1], unseeded[1])
    d, _ = reference_topk(queries[:3], database, 100)
    np.testing.assert_array_equal(unseeded[0][:3], d)


def test_code_blocks_hold_each_code_word_by_word_in_lanes_and_search_like_the_codes():
    rng = np.random.default_rng(2)
    codes = random_codes(rng, 70, 12)  # two words (the second zero-padded), three blocks, the last partial
    blocks = kernels.CodeBlocks.of(codes)
    words = as_words(codes)
    assert blocks.blocks.shape == (3, 2, kernels.LANES) and blocks.n == 70 and blocks.n_bytes == 12
    np.testing.assert_array_equal(blocks.blocks[1, :, 5], words[kernels.LANES + 5])
    assert not blocks.blocks[2, :, 70 - 2 * kernels.LANES:].any()
    queries = random_codes(rng, 5, 12)
    for got, want in zip(hamming_topk(queries, blocks, 70), reference_topk(queries, codes, 70), strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(("codes", "said"), [
    (np.zeros((4, 6), np.float32), "float32 with shape (4, 6)"),
    (np.zeros(48, np.uint8), "uint8 with shape (48,)"),
    (np.zeros((4, 0), np.uint8), "uint8 with shape (4, 0)"),
    ([[1, 2]], "list with shape None"),
])
def test_code_blocks_refuse_what_is_not_packed_codes(codes, said):
    with pytest.raises(ValueError, match=re.escape(f"2-D uint8 array of packed bits, one row per code, got {said}")):
        kernels.CodeBlocks.of(codes)


def test_the_scan_runs_at_the_machines_simd_level():
    """The dispatch record and the machine code agree with the CPU: an AVX-512 VPOPCNTDQ machine must not run
    the scalar path (the inner loop is ``vpopcntq`` on vector registers: 512-bit on Zen 4 and Zen 5, 256-bit on
    an Intel Xeon of family 6 model 207, whose LLVM tuning prefers 256-bit vectors), an AVX2 one uses a
    ``vpshufb`` nibble lookup."""
    flags = set(open("/proc/cpuinfo").read().split()) if os.path.exists("/proc/cpuinfo") else set()
    assembly = kernels.scan_assembly(6)
    if "avx512_vpopcntdq" in flags:
        assert kernels.SIMD_LEVEL == "avx512-vpopcntdq"
        assert re.search(r"vpopcntq\s+%[yz]mm", assembly)
    elif "avx2" in flags:
        assert kernels.SIMD_LEVEL == "avx2"
        assert "vpshufb" in assembly and "vpopcntq" not in assembly
    else:
        assert kernels.SIMD_LEVEL == "scalar"


def test_re_ranking_prefetches_the_rows_it_reads_next():
    """Each store kind's re-ranking loop holds ``prefetcht0`` (compiled afresh: numba shows no cached code)."""
    for signature in rescore._rescore_kernel.signatures:
        fresh = numba.njit(signature, parallel=True, boundscheck=False, fastmath={"reassoc"}, cache=False)(
            rescore._rescore_kernel.py_func)
        assert "prefetcht0" in fresh.inspect_asm(signature), signature


@pytest.mark.parametrize(("cpu", "vector"), [("haswell", "vpshufb"), ("x86-64", None)])
def test_the_avx2_and_portable_paths_give_the_same_result(cpu, vector, tmp_path):
    """Compiled for an AVX2 CPU (Haswell) and for baseline x86-64 (scalar popcount) in a fresh process, the scan
    returns what it returns here."""
    rng = np.random.default_rng(9)
    database, queries = random_codes(rng, 5000, 48), random_codes(rng, 30, 48)
    np.save(tmp_path / "database.npy", database), np.save(tmp_path / "queries.npy", queries)
    script = ("import sys, numpy as np\nfrom phase2 import kernels\n"
              "d, i = kernels.hamming_topk(np.load(sys.argv[1]), np.load(sys.argv[2]), 50)\n"
              "np.save(sys.argv[3], np.hstack([d, i]))\n"
              "code = kernels.scan_assembly(6)\n"
              "print(kernels.SIMD_LEVEL, 'vpopcntq' in code, 'vpshufb' in code, sep='|')")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "queries.npy"), str(tmp_path / "database.npy"),
                           str(tmp_path / "out.npy")], capture_output=True, text=True, check=True,
                          env={**os.environ, "NUMBA_CPU_NAME": cpu, "NUMBA_CPU_FEATURES": "",  # its own features
                               "PHASE2_CACHE_DIR": str(tmp_path / "cache")})
    level, has_vpopcntq, has_vpshufb = done.stdout.strip().split("|")
    assert level == f"{cpu} target" and has_vpopcntq == "False"
    assert has_vpshufb == str(vector == "vpshufb")
    d, i = hamming_topk(queries, database, 50)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), np.hstack([d, i]))


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


def reference_rescore(scores, candidates, k):
    """Per query: the distinct candidate rows (-1 dropped), their float64 scores, sorted by (-score, row) in
    Python; padded with (-inf, -1)."""
    out_scores, out_ids = np.full((len(candidates), k), -np.inf), np.full((len(candidates), k), -1)
    for q, rows in enumerate(candidates.tolist()):
        ranked = sorted({(-scores[q, r], r) for r in rows if r >= 0})[:k]
        for i, (cost, r) in enumerate(ranked):
            out_scores[q, i], out_ids[q, i] = -cost, r
    return out_scores, out_ids


def rescore_case(rng, n, dim, kind):
    """A store with an all-zero row and duplicate rows, small-integer queries (exact float sums, real ties),
    and the exact score of every (query, row) in float64."""
    queries = rng.integers(-4, 5, (5, dim)).astype(np.float32)
    if kind == "float32":
        store = rng.integers(-3, 4, (n, dim)).astype(np.float32)
    elif kind == "uint8":
        store = rng.integers(0, 256, (n, dim), dtype=np.uint8)
    else:
        store = rng.integers(0, 256, (n, -(-dim // 8)), dtype=np.uint8)
        store[:, -1] &= np.uint8(0xFF << (-dim % 8) & 0xFF)  # padding bits are zero, as np.packbits writes them
    store[0] = 0
    store[1] = store[2] = store[3]
    decoded = (np.unpackbits(store, axis=1, count=dim).astype(np.float64) * 2 - 1 if kind == "signs"
               else store.astype(np.float64))
    exact = queries.astype(np.float64) @ decoded.T
    return queries, store, exact


@pytest.mark.parametrize("kind", ["float32", "uint8", "signs"])
@pytest.mark.parametrize("dim", [13, 64])
def test_rescore_topk_matches_reference(kind, dim):
    rng = np.random.default_rng(dim)
    n = 40
    queries, store, exact = rescore_case(rng, n, dim, kind)
    depth = 3 * n  # more candidates than rows: repeats are certain
    candidates = rng.integers(0, n, (len(queries), depth))
    candidates[:, :4] = [1, 2, 3, 1]  # duplicate rows, and a repeated row
    candidates[0, 10:] = -1  # a first stage that found fewer
    candidates[1] = -1  # one that found nothing
    for k in (1, 10, n + 5):  # k beyond the distinct candidates: padded
        for count in (1, numba.config.NUMBA_NUM_THREADS):
            numba.set_num_threads(count)
            scores, ids = kernels.rescore_topk(queries, store, candidates, k, kind)
            ref_scores, ref_ids = reference_rescore(exact, candidates, k)
            np.testing.assert_array_equal(ids, ref_ids)
            np.testing.assert_array_equal(scores, ref_scores)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


def test_rescore_topk_of_float_vectors_is_bit_identical_across_threads():
    rng = np.random.default_rng(7)
    store = rng.standard_normal((500, 384)).astype(np.float32)
    queries = rng.standard_normal((64, 384)).astype(np.float32)
    candidates = rng.integers(0, 500, (64, 100))
    results = []
    for count in (1, numba.config.NUMBA_NUM_THREADS):
        numba.set_num_threads(count)
        results.append(kernels.rescore_topk(queries, store, candidates, 10))
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    exact = np.einsum("qd,qcd->qc", queries.astype(np.float64), store[candidates].astype(np.float64))
    np.testing.assert_allclose(results[0][0][:, 0], exact.max(axis=1), rtol=1e-5)


def integer_case(rng, n, dim):
    """uint8 codes with an all-zero row and duplicate rows; float queries, one of them all zero (its int8 query is
    zero: every score ties and the rows come in order)."""
    store = rng.integers(0, 256, (n, dim), dtype=np.uint8)
    store[0] = 0
    store[1] = store[2] = store[3]
    queries = rng.standard_normal((5, dim)).astype(np.float32)
    queries[4] = 0
    return queries, store


@pytest.mark.parametrize("dim", [13, 64, 100, 384, 768])  # below, at, past and at multiples of the 64-byte step
def test_integer_rescore_equals_int64_sums_of_the_int8_query(dim):
    rng = np.random.default_rng(dim)
    n = 40
    queries, store = integer_case(rng, n, dim)
    integers, scale = kernels.int8_query(queries)
    exact = integers.astype(np.int64) @ store.astype(np.int64).T
    candidates = rng.integers(0, n, (len(queries), 3 * n))
    candidates[:, :4] = [1, 2, 3, 1]  # duplicate rows, and a repeated row
    candidates[0, 10:] = -1  # a first stage that found fewer
    candidates[1] = -1  # one that found nothing
    for k in (1, 10, n + 5):
        ref_scores, ref_ids = reference_rescore(exact.astype(np.float64), candidates, k)
        for count in (1, numba.config.NUMBA_NUM_THREADS):
            numba.set_num_threads(count)
            scores, ids = kernels.rescore_topk(queries, store, candidates, k, "uint8-int8")
            np.testing.assert_array_equal(ids, ref_ids)
            np.testing.assert_array_equal(scores, (ref_scores / scale[:, None]).astype(np.float32))
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert (ids[4][ids[4] >= 0] == np.sort(ids[4][ids[4] >= 0])).all()  # the zero query: all tie, rows in order


def test_int8_query_scales_each_query_to_127_and_rounds_half_to_even():
    queries = np.array([[0.5, -1.0, 0.25], [0, 0, 0], [2.54, 1.27, -0.005]], np.float32)
    integers, scale = kernels.int8_query(queries)
    np.testing.assert_array_equal(integers, [[64, -127, 32], [0, 0, 0], [127, 64, 0]])  # 63.5 -> 64, 31.75 -> 32
    np.testing.assert_allclose(scale, [127, 1, 50], rtol=1e-6)
    assert integers.dtype == np.int8


def test_integer_re_ranking_runs_at_the_machines_level():
    """An AVX-512 VNNI machine sums with ``vpdpbusd`` (the dispatch record and the machine code agree); any
    other runs the portable integer loop."""
    flags = set(open("/proc/cpuinfo").read().split()) if os.path.exists("/proc/cpuinfo") else set()
    assembly = kernels.rescore_assembly()
    assert "prefetcht0" in assembly
    if "avx512_vnni" in flags:
        assert kernels.RESCORE_LEVEL == "avx512-vnni" and re.search(r"vpdpbusd\s[^\n]*%zmm", assembly)
    else:
        assert kernels.RESCORE_LEVEL == "portable" and "vpdpbusd" not in assembly


def test_the_portable_integer_re_ranking_gives_the_same_result(tmp_path):
    """Compiled for baseline x86-64 in a fresh process, integer re-ranking returns what it returns here."""
    rng = np.random.default_rng(11)
    queries, store = integer_case(rng, 3000, 100)
    candidates = rng.integers(-1, 3000, (len(queries), 500))
    for name, array in (("queries", queries), ("store", store), ("candidates", candidates)):
        np.save(tmp_path / f"{name}.npy", array)
    script = ("import sys, numpy as np\nfrom phase2 import kernels\n"
              "s, i = kernels.rescore_topk(*(np.load(f'{sys.argv[1]}/{n}.npy') for n in ('queries', 'store', "
              "'candidates')), 50, 'uint8-int8')\n"
              "np.save(f'{sys.argv[1]}/out.npy', np.hstack([s, i]))\nprint(kernels.RESCORE_LEVEL)")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True,
                          env={**os.environ, "NUMBA_CPU_NAME": "x86-64", "NUMBA_CPU_FEATURES": "",
                               "PHASE2_CACHE_DIR": str(tmp_path / "cache")})
    assert done.stdout.strip() == "portable"
    s, i = kernels.rescore_topk(queries, store, candidates, 50, "uint8-int8")
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), np.hstack([s, i]))


@pytest.mark.parametrize(("store", "candidates", "kind", "message"), [
    (np.zeros((5, 8), np.float32), [[0, 5]], "float32", r"candidate rows must lie in \[0, 5\) or be -1"),
    (np.zeros((5, 8), np.float32), [[0, -2]], "float32", r"candidate rows must lie in \[0, 5\) or be -1"),
    (np.zeros((5, 8), np.uint8), [[0]], "float32", "a float32 store must be a 2-D float32 array"),
    (np.zeros((5, 7), np.float32), [[0]], "float32", "8-d queries need 8 values per float32 store row, the "
                                                     "store has 7"),
    (np.zeros((5, 2), np.uint8), [[0]], "signs", "8-d queries need 1 bytes per signs store row, the store has 2"),
    (np.zeros((5, 8), np.uint8), [[0], [1]], "uint8", r"candidates \(2, 1\) must be 2-D with one row per query"),
    (np.zeros((5, 8), np.float32), [[0]], "uint8-int8", "a uint8-int8 store must be a 2-D uint8 array"),
    (np.zeros((5, 8), np.uint8), [[0]], "int4", "store kind must be one of"),
])
def test_rescore_topk_names_bad_input(store, candidates, kind, message):
    with pytest.raises(ValueError, match=message):
        kernels.rescore_topk(np.zeros((1, 8), np.float32), store, np.array(candidates), 1, kind)
