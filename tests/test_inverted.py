"""Oracle tests: the binary inverted file's scan against a slow, obvious reference, and the method built on it."""

import os
import re

import numba
import numpy as np
import pytest

from phase2 import kernels
from phase2.kernels import InvertedBlocks, hamming_topk, inverted, inverted_topk
from phase2.search.methods import HammingIVF, sign_codes

from conftest import require_threads


def reference_inverted(queries, codes, lists, probes, k):
    """Every row of the probed lists, distance by unpacked bits, sorted by (distance, list, row); -1 after the
    last candidate."""
    qb, db = np.unpackbits(queries, axis=1), np.unpackbits(codes, axis=1)
    dist = np.full((len(queries), k), -1, np.int32)
    ids = np.full((len(queries), k), -1, np.int64)
    for q in range(len(queries)):
        rows = np.flatnonzero(np.isin(lists, probes[q][probes[q] >= 0]))
        order = sorted(rows.tolist(), key=lambda r: (int(np.sum(qb[q] != db[r])), lists[r], r))[:k]
        dist[q, :len(order)] = [int(np.sum(qb[q] != db[r])) for r in order]
        ids[q, :len(order)] = order
    return dist, ids


def case(seed, n, nbytes, n_lists, nq, nprobe):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, (n, nbytes), dtype=np.uint8)
    codes[0] = 0  # an all-zero row
    codes[1] = codes[2] = codes[3]  # duplicate rows: exact ties, here in different lists
    lists = rng.integers(0, n_lists, n)
    lists[1:4] = [n_lists - 1, 0, n_lists - 1]
    if n_lists > 2:
        lists[lists == 1] = 2  # an empty list
    queries = np.vstack([codes[:3], rng.integers(0, 256, (nq - 3, nbytes), dtype=np.uint8)])
    probes = np.stack([rng.choice(n_lists, nprobe, replace=False) for _ in range(nq)])
    return codes, lists, queries, probes


@pytest.fixture(params=["as-built", "seeded", "forced-fallback"])
def selection(request, monkeypatch):
    """How each query's threshold starts: as the kernel decides (no seed below k = 100); seeded from the first
    block of each probed list at every k; or at the smallest sampled distance, so most queries keep fewer than k
    rows and are scanned again."""
    if request.param != "as-built":
        monkeypatch.setattr(inverted, "SEED_FROM_K", 1)
    if request.param == "forced-fallback":
        monkeypatch.setattr(inverted, "_starting_ranks", lambda index, probes, k: np.ones(len(probes), np.int64))
    return request.param


@pytest.mark.parametrize("nbits", [8, 64, 200, 384, 1024])
@pytest.mark.parametrize("k", [1, 7, 64, 500])
def test_inverted_topk_matches_reference(nbits, k, selection):
    """k = 1 and 7 cut the kept buffer many times; 500 is more than the probed lists hold (-1 padding)."""
    codes, lists, queries, probes = case(nbits + k, 900, nbits // 8, 13, 12, 4)
    dist, ids = inverted_topk(queries, InvertedBlocks.of(codes, lists, 13), probes, k)
    ref_dist, ref_ids = reference_inverted(queries, codes, lists, probes, k)
    np.testing.assert_array_equal(dist, ref_dist)
    np.testing.assert_array_equal(ids, ref_ids)


def test_all_zero_codes_tie_and_keep_list_then_row_order():
    lists = np.array([2, 0, 1, 0, 2, 1])
    index = InvertedBlocks.of(np.zeros((6, 5), np.uint8), lists, 3)
    dist, ids = inverted_topk(np.zeros((1, 5), np.uint8), index, np.array([[2, 0]]), 4)
    assert (dist == 0).all() and ids.tolist() == [[1, 3, 0, 4]]


def test_a_seeded_scan_of_many_lists_is_exact(selection):
    """Enough candidates per query (20 of 64 lists over 6,000 codes) that the seed's rank lies inside its sample."""
    codes, lists, queries, probes = case(21, 6000, 8, 64, 20, 20)
    for k in (100, 300):
        dist, ids = inverted_topk(queries, InvertedBlocks.of(codes, lists, 64), probes, k)
        ref_dist, ref_ids = reference_inverted(queries, codes, lists, probes, k)
        np.testing.assert_array_equal(dist, ref_dist)
        np.testing.assert_array_equal(ids, ref_ids)


def test_repeated_and_missing_probes_scan_each_list_once():
    codes, lists, queries, probes = case(3, 300, 8, 5, 6, 3)
    index = InvertedBlocks.of(codes, lists, 5)
    messy = np.hstack([probes, probes[:, :1], np.full((6, 2), -1)])
    np.testing.assert_array_equal(inverted_topk(queries, index, messy, 20)[1],
                                  inverted_topk(queries, index, probes, 20)[1])


@pytest.mark.parametrize("k", [10, 1000])
def test_same_result_with_one_and_two_threads(k, selection):
    codes, lists, queries, probes = case(11, 20_000, 48, 64, 67, 16)
    require_threads(2)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = inverted_topk(queries, InvertedBlocks.of(codes, lists, 64), probes, k)
        numba.set_num_threads(2)
        two = inverted_topk(queries, InvertedBlocks.of(codes, lists, 64), probes, k)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])


def test_blocks_file_each_code_under_its_list_with_padding_marked():
    codes, lists, _, _ = case(5, 100, 6, 4, 4, 1)
    index = InvertedBlocks.of(codes, lists, 4)
    for lst in range(4):
        slots = np.arange(64 * index.starts[lst] // 2, 32 * index.starts[lst + 1])
        rows = index.ids[slots][index.ids[slots] >= 0]
        assert rows.tolist() == np.flatnonzero(lists == lst).tolist()
        np.testing.assert_array_equal(index.codes.read(slots[index.ids[slots] >= 0]), codes[rows])
    assert sorted(index.ids[index.ids >= 0].tolist()) == list(range(100))


@pytest.mark.parametrize(("call", "message"), [
    (lambda i: inverted_topk(np.zeros((1, 5), np.uint8), i, np.zeros((1, 1), int), 1), "code width mismatch"),
    (lambda i: inverted_topk(np.zeros((2, 6), np.uint8), i, np.zeros((1, 1), int), 1), "one row per query \\(2\\)"),
    (lambda i: inverted_topk(np.zeros((1, 6), np.uint8), i, np.array([[4]]), 1), "list numbers in \\[0, 4\\)"),
    (lambda i: inverted_topk(np.zeros((1, 6), np.uint8), i, np.zeros((1, 1), int), 0), "k must be at least 1"),
    (lambda i: InvertedBlocks.of(np.zeros((3, 6), np.uint8), np.array([0, 1]), 4), "each of the 3 codes"),
    (lambda i: InvertedBlocks.of(np.zeros((2, 6), np.uint8), np.array([0, 4]), 4), "values 0 to 4"),
])
def test_bad_input_is_named(call, message):
    index = InvertedBlocks.of(np.zeros((3, 6), np.uint8), np.array([0, 1, 3]), 4)
    with pytest.raises(ValueError, match=message):
        call(index)


def test_the_inverted_scan_vectorises_its_popcount():
    """On an AVX-512 VPOPCNTDQ machine the lists' blocks are counted with ``vpopcntq`` on vector registers
    (compiled afresh; 256-bit ones where LLVM's tuning for the CPU prefers them, as on an Intel Xeon)."""
    flags = set(open("/proc/cpuinfo").read().split()) if os.path.exists("/proc/cpuinfo") else set()
    if "avx512_vpopcntdq" not in flags:
        pytest.skip("this CPU has no AVX-512 VPOPCNTDQ")
    assert re.search(r"vpopcntq\s+%[yz]mm", kernels.inverted_assembly(6))


def test_the_method_finds_neighbours_and_restores_from_its_state():
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((4000, 32)).astype(np.float32)
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    queries = corpus[:50] + 0.05 * rng.standard_normal((50, 32)).astype(np.float32)
    method = HammingIVF("bin-ivf-scan(nlist=16)", 16)
    method.fit(corpus)
    method.set_query_arguments(nprobe=16)  # every list: the exhaustive Hamming search's distances
    found = method.query(queries, 10)
    codes, query_codes = sign_codes(corpus), sign_codes(queries)
    distance = np.unpackbits(codes[found] ^ query_codes[:, None], axis=2).sum(axis=2)
    np.testing.assert_array_equal(distance, hamming_topk(query_codes, codes, 10)[0])
    restored = HammingIVF("bin-ivf-scan(nlist=16)", 16)
    restored.restore(method.state(), corpus)
    restored.set_query_arguments(nprobe=4)
    method.set_query_arguments(nprobe=4)
    np.testing.assert_array_equal(restored.query(queries, 10), method.query(queries, 10))
    assert method.index_bytes() == restored.index_bytes() > 4000 * 4
    with pytest.raises(ValueError, match="unknown query argument"):
        method.set_query_arguments(efSearch=4)
