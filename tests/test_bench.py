"""The benchmark harness on a tiny grid: it runs every registered method, writes results that
append, and rejects bad input. Nothing here is timed: speed is measured by ``phase2 bench``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import phase2
from phase2 import kernels
from phase2.__main__ import main
from phase2.errors import ParameterError, Phase2Error
from phase2.experiments import harness, results, synthetic, timing
from phase2.findings import reproduction, throughput
from phase2.search.methods import FaissBinaryIndex, FaissTrainingWarning, Refined
from phase2.search.registry import REGISTRY

from conftest import require_dataset


def unit_rows(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


D = 64  # the tiny grid's dimension: rabitqlib needs at least 64


@pytest.fixture(scope="module")
def tiny_run() -> pd.DataFrame:
    corpus, queries = unit_rows(600, D, 1), unit_rows(25, D, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FaissTrainingWarning)  # 600 vectors are too few for faiss's k-means
        return harness.run_methods(corpus, queries, "tiny", "synthetic", k=10, repeats=1, latency_queries=3,
                                   thread_counts=[1, 2], progress=False)


def test_every_registered_method_runs_every_setting(tiny_run):
    assert list(tiny_run.columns) == harness.COLUMNS and set(tiny_run.suite) == {"methods", "disk probe"}
    on_disk = tiny_run.suite == "disk probe"
    probe, tiny_run = tiny_run[on_disk], tiny_run[~on_disk]
    assert probe[["data_kind", "n_vectors", "family"]].isna().all().all()  # no columns of another suite filled
    assert set(probe.metric) == {"p50_ms", "p99_ms", "iops_qd1", "iops"} and (probe.value > 0).all()
    assert set(tiny_run.build_params) == set(REGISTRY)
    for name, entry in REGISTRY.items():
        rows = tiny_run[(tiny_run.build_params == name) & (tiny_run.metric == "qps")]
        methods = rows.method.nunique()
        assert methods == len(entry.build(600, D))
        assert len(rows) == methods * len(entry.grid(600)) * 2, name  # every setting at 1 and 2 threads
        assert set(rows.query_params) == {json.dumps(q, sort_keys=True) for q in entry.grid(600)}
    assert tiny_run.run_id.nunique() == 1 and (tiny_run.index_bytes > 0).all()
    assert set(tiny_run.metric) == {"build_s", "build_reused", "recall@10", "recall@10_se", "qps", "p50_ms", "p99_ms",
                                    "latency_queries", "reads_per_query", "disk_iops"}
    assert (tiny_run[tiny_run.metric == "latency_queries"].value == 3).all()
    values = tiny_run.set_index("metric").value
    assert (values.drop(["recall@10", "recall@10_se", "build_reused"]) > 0).all()
    assert values["recall@10"].between(0, 1).all() and (values["build_reused"] == 0).all()  # no tiny build is kept
    assert values["recall@10_se"].between(0, 0.5).all()


def test_exact_methods_agree_with_ground_truth(tiny_run):
    points = throughput.operating_points(tiny_run)
    recall = points.groupby("method")["recall@10"]
    assert recall.min()["flat"] == 1.0
    assert recall.min()["bin-flat"] == recall.min()["bin-flat-faiss"]  # same codes, same distances
    assert recall.min()["usearch-exact"] == 1.0
    rescored = points[points.method == "bin-rescore-f32"].set_index("query_params")["recall@10"]
    assert rescored['{"factor": 10}'].min() >= rescored['{"factor": 1}'].max()
    assert (points.bytes_per_vector > 0).all()


def test_a_store_on_disk_ranks_exactly_as_in_ram_and_counts_its_reads(tiny_run):
    points = throughput.operating_points(tiny_run)
    for store in ("int8", "f32"):
        ram = points[points.method == f"bin-rescore-{store}"].set_index(["query_params", "search_threads"])
        disk = points[points.method == f"bin-rescore-{store}-disk"].set_index(["query_params", "search_threads"])
        ram = ram.loc[disk.index]  # in RAM, the factors go deeper
        pd.testing.assert_series_equal(ram["recall@10"], disk["recall@10"])
        assert disk.store_on_disk.all() and not ram.store_on_disk.any()
        assert (disk.index_bytes == -(-600 // kernels.LANES) * kernels.LANES * D / 8).all()  # in RAM: the code blocks
        assert (disk.disk_bytes >= disk.index_bytes + 600 * disk.store_bytes).all()
        factor = disk.index.get_level_values(0).map(lambda q: json.loads(q)["factor"])
        assert ((disk.reads_per_query > 0) & (disk.reads_per_query <= 10 * factor)).all()
        assert disk.disk_iops.notna().all() and ram.reads_per_query.isna().all()
    probe = throughput.disk_probe(tiny_run)
    assert len(probe) == 1 and probe["p99 ms (1 in flight)"].iloc[0] >= probe["p50 ms (1 in flight)"].iloc[0]


def test_on_disk_and_in_ram_rescoring_return_the_same_ids_at_one_and_two_threads():
    corpus, queries = unit_rows(700, 48, 3), unit_rows(30, 48, 4)
    for store in ("int8", "float32"):
        ram, disk = Refined("r", store), Refined("d", store, on_disk=True)
        ram.fit(corpus)
        disk.fit(corpus)
        for factor in (1, 10, 100):  # 100: more candidates than rows
            ram.set_query_arguments(factor=factor)
            disk.set_query_arguments(factor=factor)
            for count in (1, 2):
                with timing.threads(count):
                    np.testing.assert_array_equal(ram.query(queries, 10), disk.query(queries, 10))
                    np.testing.assert_array_equal(ram.query(queries[:1], 10), disk.query(queries[:1], 10))
        path = disk.disk.path
        disk.disk.close()
        assert not path.exists()
    with pytest.raises(ValueError, match="asymmetric rescoring reads the scanned codes"):
        Refined("a", "signs", on_disk=True)


def test_rescoring_store_is_counted_apart_from_the_first_stage(tiny_run):
    points = throughput.operating_points(tiny_run).groupby("method").first()
    assert points.store_bytes["bin-rescore-f32"] == D * 4 and points.store_bytes["bin-rescore-int8"] == D
    assert points.store_bytes["bin-hnsw-rescore-int8(M=32)"] == D and points.store_bytes["flat"] == 0
    hnsw = points.loc["bin-hnsw-rescore-int8(M=32)"]
    assert hnsw.index_bytes / 600 > hnsw.code_bytes + hnsw.store_bytes  # the graph stays in RAM
    with pytest.raises(Phase2Error, match="predates the column 'store_bytes_per_vector'"):
        throughput.operating_points(tiny_run.drop(columns="store_bytes_per_vector"))


def test_index_first_stages_rescore_like_the_scan_and_survive_short_candidate_lists():
    corpus, queries = unit_rows(600, 32, 1), unit_rows(25, 32, 2)
    scan = Refined("scan", "int8")
    graph = Refined("graph", "int8", FaissBinaryIndex("g", "BHNSW32"))
    lists = Refined("lists", "int8", FaissBinaryIndex("l", "BIVF16"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FaissTrainingWarning)
        for method in (scan, graph, lists):
            method.fit(corpus)
    scan.set_query_arguments(factor=60)  # every code is a candidate, so Hamming ties cannot differ
    graph.set_query_arguments(factor=60, efSearch=600)
    np.testing.assert_array_equal(graph.query(queries, 10), scan.query(queries, 10))
    lists.set_query_arguments(factor=60, nprobe=1)  # one list of ~38 codes cannot fill 600 candidates
    found = lists.query(queries, 10)
    assert found.shape == (25, 10) and ((found >= 0) & (found < 600)).all()
    with pytest.raises(ValueError, match="unknown query argument 'ef'"):
        graph.set_query_arguments(ef=8)


def test_graph_overhead_is_measured(tiny_run):
    points = throughput.operating_points(tiny_run)
    per_vector = points.groupby("method").bytes_per_vector.first()
    assert per_vector["flat"] == pytest.approx(D * 4, abs=0.5)  # the serialized header is a few bytes
    assert per_vector["hnsw-flat(M=32)"] > per_vector["flat"] + 32 * 4  # M=32: 64 int32 links on level 0
    assert per_vector["bin-flat"] == -(-600 // kernels.LANES) * kernels.LANES * D / 8 / 600  # whole code blocks


def test_results_append_and_never_overwrite(tiny_run, isolated_results):
    first = harness.save(tiny_run)
    again = tiny_run.assign(run_id="another-run")
    second = harness.save(again)
    assert first != second
    table = results.read_results(harness.CHAPTER, latest=False)
    assert set(table.run_id) == {tiny_run.run_id.iloc[0], "another-run"} and len(table) == 2 * len(tiny_run)
    with pytest.raises(FileExistsError):
        harness.save(tiny_run)


def test_unknown_method_names_the_valid_ones():
    with pytest.raises(ParameterError, match="unknown method.*'nope'.*bin-flat"):
        harness.run_methods(unit_rows(50, 8, 0), unit_rows(2, 8, 1), "tiny", "real", ["flat", "nope"])


def test_kernel_benchmark_checks_faiss_and_reports_bandwidth():
    table = harness.run_kernels(3000, [24, 64], [1], n_queries=9, depths=(5, 50), repeats=1, bandwidth_bytes=1 << 23,
                                progress=False)
    summary = throughput.kernel_table(table)
    assert list(summary.bits) == [24, 24, 64, 64] and list(summary.k) == [5, 50, 5, 50]  # the arithmetic:
    assert (summary.threads == 1).all()  # test_verdicts.py
    assert (summary[["ours GB/s", "faiss GB/s", "memory read GB/s", "roof q/s"]] > 0).all().all()
    assert set(summary["ours simd"]) == {kernels.SIMD_LEVEL} and (summary["faiss simd"] != "").all()
    with pytest.raises(ParameterError, match="multiples of 8"):
        harness.run_kernels(100, [20], [1], progress=False)


def test_synthetic_documents_are_unit_norm_seeded_and_as_clustered_as_the_real_ones(tmp_path):
    centres = unit_rows(40, 16, 3)
    real = centres[np.random.default_rng(4).integers(0, 40, 3000)] + 0.15 * unit_rows(3000, 16, 5)
    real = (real / np.linalg.norm(real, axis=1, keepdims=True)).astype(np.float32)
    model = synthetic.fit_synthetic(real)
    a = synthetic.sample_synthetic(model, 5000, seed=1, chunk=1500)
    assert a.dtype == np.float32 and np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    assert np.array_equal(a, synthetic.sample_synthetic(model, 5000, seed=1, chunk=1500))
    assert not np.array_equal(a, synthetic.sample_synthetic(model, 5000, seed=2, chunk=1500))
    assert np.abs(a.mean(0) - real.mean(0)).max() < 0.05  # keeps the per-dimension offsets binarization sees
    same_size = synthetic.sample_synthetic(model, len(real))
    assert synthetic._median_nn_cosine(same_size) == pytest.approx(synthetic._median_nn_cosine(real), abs=0.02)
    assert synthetic.fit_synthetic(real).scale == model.scale
    into = np.lib.format.open_memmap(tmp_path / "docs.npy", "w+", np.float32, (6000, 16))
    assert synthetic.sample_synthetic(model, 6000, seed=1, chunk=1500, out=into) is into
    np.testing.assert_array_equal(into[:4500], a[:4500])  # a larger draw begins with the smaller one's whole chunks
    with pytest.raises(ParameterError, match=r"float32 array of shape \(5000, 16\), got float64 \(5000, 16\)"):
        synthetic.sample_synthetic(model, 5000, out=np.empty((5000, 16)))


def test_benchmark_corpus_is_real_until_it_runs_out():
    real = unit_rows(100, 8, 0)
    sample = synthetic.benchmark_corpus(real, 40, "real")
    assert len({r.tobytes() for r in sample} - {r.tobytes() for r in real}) == 0
    with pytest.raises(ParameterError, match="100 vectors, 500 asked"):
        synthetic.benchmark_corpus(real, 500, "real")
    with pytest.raises(ParameterError, match="'real', 'synthetic' or 'extrapolated', got 'fake'"):
        synthetic.benchmark_corpus(real, 10, "fake")
    assert synthetic.benchmark_corpus(real, 500, "synthetic").shape == (500, 8)


def test_queries_are_sampled_evenly_across_collections():
    groups = np.repeat([0, 1, 2], [920, 50, 30])  # one collection holds 92% of the queries
    rows = synthetic.stratified_rows(groups, 90)
    assert np.bincount(groups[rows]).tolist() == [30, 30, 30] and (np.diff(rows) > 0).all()
    rows = synthetic.stratified_rows(groups, 200)  # a share of 66: the two small ones give all they have
    assert np.bincount(groups[rows]).tolist() == [120, 50, 30]
    assert len(synthetic.stratified_rows(groups, 5000)) == 1000
    np.testing.assert_array_equal(synthetic.stratified_rows(groups, 90, seed=3),
                                  synthetic.stratified_rows(groups, 90, seed=3))


def test_single_query_latency_stops_at_its_budget():
    class Slow:
        def query(self, queries, k):
            time.sleep(0.01)

    queries = unit_rows(50, 8, 0)
    assert len(timing.single_query_seconds(Slow(), queries, 10, budget_s=0.035)) == 4  # the one that crossed counts
    assert len(timing.single_query_seconds(Slow(), queries[:3], 10, budget_s=10)) == 3


def test_pareto_front_and_speedup_at_recall():
    points = pd.DataFrame({"data_kind": "real", "n_vectors": 10, "search_threads": 1, "family": "x",
                           "method": ["flat", "a", "a", "a", "b"],
                           "recall@10": [1.0, 0.5, 0.9, 0.8, 0.95], "qps": [10.0, 100, 50, 40, 20]})
    front = throughput.pareto_front(points)
    assert list(zip(front.method, front["recall@10"], strict=True)) == [("a", 0.5), ("a", 0.9), ("b", 0.95),
                                                                        ("flat", 1.0)]
    speed = throughput.speedup_at_recall(points, targets=(0.9, 0.99)).set_index(["method", "target_recall@10"])
    assert speed.loc[("a", 0.9), "speedup_vs_flat"] == 5.0
    assert np.isnan(speed.loc[("a", 0.99), "qps"]) and speed.loc[("flat", 0.99), "speedup_vs_flat"] == 1.0


def test_cli_lists_methods_and_rejects_bad_values(capfd):
    """(capfd: a command that measures runs in a process of its own, whose stderr is the file descriptor's.)"""
    assert main(["bench", "methods", "--list"]) == 0
    listing = capfd.readouterr().out
    assert all(name in listing for name in REGISTRY)
    with pytest.raises(SystemExit):
        main(["bench", "kernels", "--bits", "384,abc"])
    assert "comma-separated integers" in capfd.readouterr().err
    assert main(["bench", "methods", "--methods", "flat,nope", "--dataset", "cranfield"]) == 2
    assert "unknown method(s) ['nope']" in capfd.readouterr().err
    assert main(["demo", "--indexes", "binary,bogus"]) == 2
    assert "unknown demo index ['bogus']" in capfd.readouterr().err


def test_a_benchmark_command_measures_in_a_process_with_the_widest_blas_kernels(tmp_path, monkeypatch):
    """OpenBLAS reads its kernels when it loads, so ``bench`` (and ``scale``) run again in a process of the timing
    role (:func:`phase2.blas_core`), and the run records the kernels it ran."""
    monkeypatch.setenv("PHASE2_RESULTS_DIR", str(tmp_path))
    assert main(["bench", "kernels", "--n", "4096", "--bits", "64", "--threads", "1", "--queries", "8",
                 "--repeats", "1"]) == 0
    record = json.loads(results.read_results(harness.CHAPTER, tmp_path).machine.iloc[0])
    widest = phase2.blas_core("timing", phase2.cpu_flags())
    assert widest is None or all(entry.endswith(" " + widest) for entry in record["blas"].split(", ")), record


def test_demo_runs_on_a_shared_collection(capsys):
    require_dataset("cranfield")
    assert main(["demo", "--dataset", "cranfield", "--indexes", "int8,binary,binary+rescore", "--examples", "1"]) == 0
    out = capsys.readouterr().out
    assert "query " in out and "float32 flat" in out and "binary + float32 rescore" in out
    table = out.split("top-10 of every judged query")[1]
    assert "nDCG@10" in table and "queries/s" in table and len(table.strip().splitlines()) == 5


def test_busy_cores_elsewhere_sees_a_spinning_process():
    spin = "import time\nend = time.time() + 3\nwhile time.time() < end: pass"
    spinner = subprocess.Popen([sys.executable, "-c", spin])
    try:
        time.sleep(0.3)
        busy = timing.busy_cores_elsewhere(1.0)
    finally:
        spinner.kill()
        spinner.wait()
    assert busy is not None and busy > 0.3


def test_every_library_answers_on_its_own_threads_and_reports_its_sizes(tiny_run):
    assert set(tiny_run[tiny_run.metric == "qps"].library) == {"faiss", "phase2", "faiss+phase2", "usearch",
                                                                 "usearch+phase2", "scann", "rabitqlib", "milvus"}
    built = tiny_run[tiny_run.metric == "build_s"].set_index("method")
    assert (built.disk_bytes > 0).all() and (built.index_bytes > 0).all()
    points = throughput.operating_points(tiny_run)
    recall = points.pivot_table(index=["method", "query_params"], columns="search_threads", values="recall@10")
    deterministic = points.groupby("method").deterministic.first()
    same = recall.loc[deterministic[deterministic].index]
    assert (same[1] == same[2]).all()  # deterministic methods find the same ids with 1 or 2 threads


def test_usearch_exact_hamming_search_returns_the_kernels_distances():
    from phase2.kernels import hamming_topk
    from phase2.search.libraries import USearchExact
    from phase2.search.methods import sign_codes

    corpus, queries = unit_rows(500, 64, 5), unit_rows(12, 64, 6)
    corpus[7:11] = corpus[3]  # duplicates: tied distances
    corpus[20] = 0.0
    method = USearchExact("usearch-exact-b1", binary=True)
    method.fit(corpus)
    ids = method.query(queries, 10)
    expected, _ = hamming_topk(sign_codes(queries), sign_codes(corpus), 10)
    found = np.unpackbits(sign_codes(queries)[:, None, :] ^ sign_codes(corpus)[ids], axis=2).sum(axis=2)
    np.testing.assert_array_equal(found, expected)


def test_methods_that_cannot_run_here_are_named_with_the_reason(monkeypatch):
    from phase2.search import libraries, registry

    monkeypatch.setattr(libraries.importlib.util, "find_spec", lambda name: None if name == "scann" else True)
    lines = registry.not_measured(["flat", "scann", "rabitqlib-hnsw"], [1_000, 100_000])
    assert lines == ["`scann` at 1,000, 100,000 vectors: the Python package providing `scann` is not installed",
                     "`rabitqlib-hnsw` at 100,000 vectors: not built above 10,000 vectors: its build took 436 s for "
                     "10^5 384-d vectors on 2 cores"]
    table = harness.run_methods(unit_rows(300, 16, 1), unit_rows(5, 16, 2), "tiny", "synthetic", ["flat", "scann"],
                                repeats=1, latency_queries=1, thread_counts=[1], progress=False)
    assert set(table.method) == {"flat"}
    monkeypatch.setattr(registry, "direct_io_unavailable", lambda: "the file system refuses O_DIRECT reads")
    assert registry.not_measured(["bin-rescore-int8-disk"], [1_000]) == [
        "`bin-rescore-int8-disk` at 1,000 vectors: the file system refuses O_DIRECT reads"]
    monkeypatch.setattr(registry, "physical_memory", lambda: 16 << 30)
    assert registry.not_measured(["flat", "sq8"], [1_000_000, 10_000_000]) == [
        "`flat` at 10,000,000 vectors: its float32 vectors (14.3 GiB) exceed 75% of this machine's 16.0 GiB of memory"]


def test_inverted_files_probe_the_same_share_of_their_lists_at_every_size():
    from phase2.search import registry

    at = {n: registry.REGISTRY["bin-ivf-scan-rescore-int8"].grid(n) for n in (10**6, 10**7, 600)}
    assert sorted({g["nprobe"] for g in at[10**6]}) == [16, 32, 64, 128, 256]
    assert sorted({g["nprobe"] for g in at[10**7]}) == [64, 128, 256, 512, 1024]  # 16,384 lists
    assert [g["nprobe"] for g in at[600]][::7] == [1, 2, 4, 8]  # 128 lists: 1/256 and 1/128 of them are one list
    assert {g["factor"] for g in at[10**7]} == {10, 25, 100, 300, 400, 500, 1000}
    for name in ("ivf-pq-rescore-int8", "ivf-rabitq-rescore-int8"):
        assert registry.REGISTRY[name].grid(10**7) == at[10**7]


def test_stores_on_disk_read_more_candidates_only_at_the_sizes_that_need_them():
    from phase2.search import registry

    for name in ("bin-rescore-int8-disk", "bin-rescore-f32-disk"):
        grid = registry.REGISTRY[name].grid
        assert max(g["factor"] for g in grid(10**6)) == 100 and grid(10**6) == registry.FACTOR
        assert max(g["factor"] for g in grid(10**7)) == 300 and grid(10**7)[:-1] == registry.FACTOR


def test_library_standing_sets_our_binary_pipelines_against_each_library():
    points = pd.DataFrame({
        "data_kind": "real", "n_vectors": 1000, "search_threads": 2, "query_params": "",
        "method": ["bin-rescore-int8", "bin-flat", "hnsw-sq8", "usearch-hnsw-i8", "usearch-hnsw-b1-rescore-int8",
                   "scann"],
        "family": ["binary+rescore", "binary", "graph", "graph", "binary+rescore", "ivf"],
        "library": ["phase2", "phase2", "faiss", "usearch", "usearch+phase2", "scann"],
        "recall@10": [0.96, 0.6, 0.99, 0.95, 0.97, 0.85], "qps": [500.0, 900, 800, 1200, 700, 3000],
        "p50_ms": 1.0, "bytes_per_vector": 100.0})
    standing = throughput.library_standing(points, targets=(0.9, 0.99)).set_index(["target_recall@10", "group"])
    assert standing.loc[(0.9, throughput.OURS), "method"] == "usearch-hnsw-b1-rescore-int8"  # our rescoring counts
    assert standing.loc[(0.9, "usearch"), "method"] == "usearch-hnsw-i8"
    assert (0.9, "scann") not in standing.index and (0.99, throughput.OURS) not in standing.index
    assert {g for _, g in standing.index} == {throughput.OURS, "faiss", "usearch"}
    text = throughput.standing_sentence(standing.reset_index(), targets=(0.9, 0.99))
    assert "- recall@10 >= 0.9: the fastest library configuration was `usearch-hnsw-i8` (usearch) at 1,200 q/s" in text
    assert "(0.58x the library's queries/s)" in text
    assert "- recall@10 >= 0.99: the fastest library configuration was `hnsw-sq8` (faiss)" in text


def test_milvus_runs_against_the_address_it_is_given(monkeypatch, tmp_path):
    from phase2.search.libraries import MILVUS_URI_ENV, MilvusCollection

    monkeypatch.setenv(MILVUS_URI_ENV, str(tmp_path / "server.db"))
    method = MilvusCollection("milvus-flat", "FLAT", {}, "float", 4)
    corpus = unit_rows(200, 16, 3)
    method.fit(corpus)
    assert (tmp_path / "server.db").exists()
    np.testing.assert_array_equal(method.query(corpus[:3], 1)[:, 0], [0, 1, 2])


def regime_points() -> pd.DataFrame:
    """Hand-made points at 10^5 (two thread counts) with known batch and single-query winners."""
    rows = []
    for method, family, params, recall, qps, p50 in [
            ("flat", "float", "{}", 1.0, (100.0, 200.0), (10.0, 12.0)),
            ("bin-rescore-int8", "binary+rescore", '{"factor": 10}', 0.93, (900.0, 1800.0), (0.4, 0.3)),
            ("bin-rescore-int8", "binary+rescore", '{"factor": 100}', 0.97, (500.0, 1000.0), (0.6, 0.5)),
            ("hnsw-sq8(M=32)", "graph", '{"efSearch": 64}', 0.96, (5000.0, 9000.0), (0.2, 0.25))]:
        for threads, q, p in zip((1, 2), qps, p50, strict=True):
            rows.append({"data_kind": "synthetic", "n_vectors": 100_000, "method": method, "family": family,
                         "query_params": params, "search_threads": threads, "recall@10": recall, "qps": q,
                         "p50_ms": p, "p99_ms": 2 * p, "latency_queries": 1000.0, "bytes_per_vector": 100.0})
    return pd.DataFrame(rows)


def test_query_rounding_sets_the_int8_query_against_the_float_query_per_factor():
    from phase2.findings import rescoring

    points = regime_points()
    rounded = points[points.method == "bin-rescore-int8"]
    kept = rounded.assign(method="bin-rescore-int8-float-query", qps=rounded.qps / 2,
                          **{"recall@10": rounded["recall@10"] + 0.002})
    table = rescoring.query_rounding(pd.concat([points, kept], ignore_index=True))
    assert table.factor.tolist() == [10, 100] and (table.n_vectors == 100_000).all()
    assert table["speed-up"].tolist() == [2.0, 2.0] and table["qps int8 query"].tolist() == [1800.0, 1000.0]
    np.testing.assert_allclose(table["recall@10 change"], -0.002)
    text = rescoring.query_rounding_sentence(table)
    assert text.startswith("At 100,000 vectors, rounding the query to int8 changed recall@10 by -0.0020 to -0.0020 "
                           "over factors 10 to 100, and answered 2.00x to 2.00x the queries/s of the float query")
    assert "(2.00x at 1,000 candidates, where re-ranking weighs most)" in text
    assert rescoring.query_rounding(points).empty and rescoring.query_rounding_sentence(table.iloc[:0]) == ""


def test_both_regimes_are_set_against_flat_and_the_goals(monkeypatch):
    regimes = throughput.latency_regimes(regime_points(), targets=(0.95,)).set_index("method")
    binary = regimes.loc["bin-rescore-int8"]
    assert (binary.batch_qps, binary.batch_vs_flat, binary.batch_setting) == (1000.0, 5.0, '{"factor": 100}')
    assert (binary.p50_ms, binary.p99_ms, binary.single_vs_flat) == (0.5, 1.0, 20.0)  # flat's best p50: 10 ms
    assert binary.single_setting == '{"factor": 100} at 2 thread(s)'
    assert "bin-rescore-int8" not in throughput.latency_regimes(regime_points(), targets=(0.99,)).method.values
    text = throughput.regimes_sentence(throughput.latency_regimes(regime_points()), target=0.95)
    assert "`bin-rescore-int8` {\"factor\": 100} answered 1,000 q/s, 5.0x float32 flat" in text
    assert "took p50 0.50 ms (p99 1.00 ms), 20.0x faster than flat's best p50" in text
    assert text.endswith("misses the 8x batch goal and misses the 40x single-query goal.")
    monkeypatch.setitem(throughput.PIPELINE_GOALS, "batch vs flat", 5.0)  # a ratio equal to its goal meets it
    monkeypatch.setitem(throughput.PIPELINE_GOALS, "single query vs flat", 20.0)
    assert throughput.regimes_sentence(throughput.latency_regimes(regime_points()), target=0.95).endswith(
        "meets the 5x batch goal and meets the 20x single-query goal.")
    assert throughput.regimes_sentence(throughput.latency_regimes(regime_points()), target=0.99) == (
        "No binary pipeline reached recall@10 >= 0.99.")


def test_scaling_exponents_are_least_squares_slopes_on_log_log_axes():
    sizes = [10_000, 100_000, 1_000_000]
    points = pd.DataFrame([{"data_kind": "synthetic", "n_vectors": n, "method": m, "family": "x",
                            "query_params": q, "search_threads": 1, "qps": 1e6 * n ** -a}
                           for m, a in (("scan", 1.0), ("graph", 0.25)) for n in sizes for q in ("{}", "z")])
    exponents = throughput.scaling_exponents(points).set_index("method")
    assert exponents.exponent.to_dict() == pytest.approx({"graph": 0.25, "scan": 1.0})
    assert exponents.sizes["scan"] == "10,000, 100,000, 1,000,000"


def test_the_generator_check_reports_each_generator_per_size():
    pairs = pd.DataFrame({"n_vectors": [1000, 1000, 2000], "method": ["a", "b", "a"], "family": "x",
                          "query_params": ["", '{"f": 1}', ""], "real": [0.5, 0.9, 0.4],
                          "synthetic": [0.6, 0.85, 0.4], "extrapolated": [0.3, 0.9, np.nan]})
    pairs = pairs.assign(difference=pairs.synthetic - pairs.real,
                         extrapolated_difference=pairs.extrapolated - pairs.real)
    summary = throughput.agreement_summary(pairs).set_index(["n_vectors", "generator"])
    assert summary.loc[(1000, "synthetic"), "mean |difference|"] == pytest.approx(0.075)
    assert summary.loc[(1000, "extrapolated"), "largest at"] == "a"
    assert (2000, "extrapolated") not in summary.index and summary.loc[(2000, "synthetic"), "points"] == 1
    text = throughput.agreement_sentence(summary.reset_index())
    assert "At N = 1,000, the generator fitted to a small real subset, then drawn at this size" in text
    assert "within 0.100 of real on average over 2 operating points (signed -0.100; largest 0.200, `a`)" in text


def test_query_encoding_is_timed_per_query_and_set_beside_search():
    require_dataset("cranfield")
    runs = harness.run_encoding(["cranfield"], ["minilm-l6"], n_queries=3)
    assert list(runs.columns) == harness.COLUMNS and set(runs.suite) == {"query encoding"}
    encoding = throughput.encoding_table(runs)
    assert encoding["queries timed"].tolist() == [3.0] and (encoding["encode p50 ms"] > 0).all()
    fixed = pd.DataFrame({"model": ["minilm-l6"], "encode p50 ms": [4.0], "encode p99 ms": [6.0],
                          "queries timed": [200.0]})
    text = throughput.encoding_sentence(fixed, throughput.latency_regimes(regime_points()))
    assert text == ("Embedding one query took 4.0 ms with minilm-l6 (p50). The fastest single-query search reaching "
                    "recall@10 0.95, `hnsw-sq8(M=32)`, took p50 0.20 ms and float32 flat 10.00 ms: with the fastest "
                    "encoder, search is 4.8% of the request for the fastest search and 71.4% for flat.")


def test_a_published_run_is_current_for_its_parameters_and_bench_code(tiny_run, tmp_path, monkeypatch):
    """The default profile's run is published with the parameters it answered; it is read back as current only
    for those parameters and while the bench code that measured it is unchanged; it names its machine."""
    monkeypatch.setenv("PHASE2_PUBLISHED_DIR", str(tmp_path))
    run = tiny_run.assign(profile="default")
    assert harness.published_run("default") == (None, "missing")
    path = harness.publish(run, "default", {"sizes": "600"})
    assert path.parent == tmp_path / "throughput"
    assert harness.publish(run, "smoke", {}) is None  # smoke is not published
    table, state = harness.published_run("default", {"sizes": "600"})
    assert state == "current" and len(table) == len(run)
    assert harness.published_run("default", {"sizes": "700"})[1] == "other parameters"
    assert harness.read_run("default", current=True).run_id.iloc[0] == run.run_id.iloc[0]
    json.loads(table.machine.iloc[0])["simd"]  # the SIMD level is recorded with every timing
    monkeypatch.setattr(harness, "code_digest", lambda: "other")
    assert harness.published_run("default")[1] == "other code"
    with pytest.raises(FileNotFoundError, match="measured by other code"):
        harness.read_run("default", current=True)
    second = harness.publish(run.assign(run_id="later"), "default", {})
    assert sorted(p.name for p in (tmp_path / "throughput").iterdir()) == [second.name]  # one published run


def test_machine_line_names_the_simd_level():
    record = {"cpu": "AMD EPYC", "cores": 2, "memory_gib": 23.5, "disk": "ssd"}
    assert harness.machine_line(json.dumps({**record, "simd": ["avx2", "avx512f", "avx512_vpopcntdq"]})) == \
        "AMD EPYC (AVX-512 with VPOPCNTDQ), 2 cores, 23.5 GiB"
    assert "(AVX2 only)" in harness.machine_line(json.dumps({**record, "simd": ["avx2"]}))
    assert harness.machine_line("") == "an unrecorded machine"
    blas = {**record, "simd": ["avx2"], "scan_simd": "avx2"}
    assert harness.machine_line(json.dumps({**blas, "blas": "faiss_cpu Haswell, numpy Haswell"})).endswith(
        "; OpenBLAS at Haswell; Hamming scan at avx2")
    assert harness.machine_line(json.dumps({**blas, "rescore_simd": "portable"})).endswith(
        "; Hamming scan at avx2; int8 re-ranking at portable")
    assert "; OpenBLAS: faiss_cpu Prescott, numpy SkylakeX;" in harness.machine_line(
        json.dumps({**blas, "blas": "faiss_cpu Prescott, numpy SkylakeX"}))


def test_compare_runs_sets_speed_ratios_to_flat_against_each_other(tiny_run):
    """A recomputed run on a machine twice as fast everywhere keeps every ratio to flat: within tolerance; one
    method three times faster only there is outside it; deterministic recall is compared exactly."""
    faster = tiny_run.copy()
    faster.loc[faster.metric == "qps", "value"] *= 2
    faster.loc[faster.metric.isin(["p50_ms", "p99_ms"]), "value"] /= 2
    same = reproduction.compare_runs(faster, tiny_run)
    speed = same[same.metric == "qps / flat"]
    assert len(speed) and (speed.outcome == "within tolerance").all()
    assert (same[same.metric == "recall@10"].outcome == "identical").all()
    skewed = faster.copy()
    skewed.loc[(skewed.metric == "qps") & (skewed.method == "bin-flat"), "value"] *= 3
    moved = reproduction.compare_runs(skewed, tiny_run)
    moved = moved[moved.metric == "qps / flat"]
    assert set(moved[moved.method == "bin-flat"].outcome) == {"outside tolerance"}
    assert set(moved[moved.method != "bin-flat"].outcome) == {"within tolerance"}


def test_the_cpu_record_carries_family_and_model_where_the_kernel_shows_them():
    """A virtual machine may name only ``AMD EPYC``: the family tells Zen 4 from Zen 5 (AVX-512 units of two widths)."""
    from phase2.experiments import results

    info = Path("/proc/cpuinfo")
    if not info.is_file() or "cpu family" not in info.read_text():
        pytest.skip("no /proc/cpuinfo with a cpu family here")
    assert re.search(r", family \d+ model \d+$", results.cpu_name()), results.cpu_name()
