"""The advisor: scaling rules on hand-made operating points, the harness's own points, and the CLI."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from phase2.__main__ import main
from phase2.errors import ParameterError, Phase2Error
from phase2.experiments import harness
from phase2.findings import advisor, throughput
from phase2.search.methods import FaissTrainingWarning


def point(n, method, build, family, recall, qps, bytes_per_vector, code_bytes=None, query="{}", se=0.01,
          library="faiss", on_disk=None):
    """An operating point; ``on_disk=(store bytes, reads per query, disk reads/s)`` for a store read from disk."""
    store, reads, iops = on_disk or (bytes_per_vector - (code_bytes or bytes_per_vector), np.nan, np.nan)
    return {"data_kind": "synthetic", "n_vectors": n, "method": method, "family": family, "library": library,
            "build_params": build,
            "query_params": query, "search_threads": 2, "recall@10": recall, "recall@10_se": se, "qps": qps,
            "index_bytes": bytes_per_vector * n, "code_bytes": code_bytes or bytes_per_vector,
            "store_bytes": store, "bytes_per_vector": bytes_per_vector, "store_on_disk": on_disk is not None,
            "reads_per_query": reads, "disk_iops": iops}


@pytest.fixture
def points():
    rows = []
    for n, q in [(10_000, 10_000.0), (100_000, 2_000.0)]:
        rows.append(point(n, "flat", "flat", "float", 1.0, q / 4, 1536, se=0.0))
        rows.append(point(n, "bin-flat", "bin-flat", "binary", 0.60, q, 48))
        rows.append(point(n, "bin-rescore-f32", "bin-rescore-f32", "binary+rescore", 0.95, q / 2, 48 + 1536, 48,
                          query='{"factor": 10}'))
        rows.append(point(n, "bin-rescore-f32-disk", "bin-rescore-f32-disk", "binary+rescore", 0.95, q / 2, 48, 48,
                          query='{"factor": 10}', on_disk=(1536, 100.0, 200_000.0)))
        rows.append(point(n, f"ivf-pq(nlist={n // 20},m=48)", "ivf-pq", "ivf", 0.80, 50_000.0 if n == 10_000 else
                          25_000.0, 60, 48))
    return pd.DataFrame(rows)


def test_parse_bytes_decimal_binary_and_bad_units():
    assert advisor.parse_bytes("4GB") == 4e9 and advisor.parse_bytes("1 GiB") == 2 ** 30
    assert advisor.parse_bytes("1e9") == 1e9 and advisor.parse_bytes("512_000 kb") == 512e6
    for bad in ("4 XB", "lots", "", "0GB"):
        with pytest.raises(ParameterError, match="memory:"):
            advisor.parse_bytes(bad)


def test_series_names_span_sizes():
    assert advisor.series_name("ivf-pq(nlist=512,m=48)") == "ivf-pq(m=48)"
    assert advisor.series_name("bin-ivf(nlist=1024)") == "bin-ivf"
    assert advisor.series_name("hnsw-flat(M=32)") == "hnsw-flat(M=32)"


def test_scaling_rules(points):
    inside = advisor.estimate(points, advisor.Question(31_623, 1e12, 0.5)).set_index("series")
    # inside the measured range: log-log interpolation (qps 10k -> 2k over 10x: exponent 0.699)
    assert inside.loc["bin-flat", "qps"] == pytest.approx(10_000 * (31_623 / 10_000) ** -np.log10(5), rel=1e-6)
    beyond = advisor.estimate(points, advisor.Question(10_000_000, 1e12, 0.5)).set_index("series")
    # a scan beyond the measured range grows at least linearly; an index keeps its fitted exponent (0.301)
    assert beyond.loc["bin-flat", "qps"] == pytest.approx(2_000 / 100)
    assert beyond.loc["ivf-pq(m=48)", "qps"] == pytest.approx(25_000 * 100 ** -np.log10(2), rel=1e-6)
    assert beyond.loc["bin-flat", "RAM GB"] == pytest.approx(0.48) and beyond.loc["flat", "RAM GB"] == 15.36
    assert beyond.loc["bin-flat", "recall low"] == pytest.approx(0.60 - 1.96 * 0.01)
    assert (beyond.extrapolation == 100).all()


def test_advise_picks_the_fastest_feasible_and_says_what_it_extrapolated(points):
    question = advisor.Question(10_000_000, advisor.parse_bytes("4GB"), 0.9, rescore_on_disk=True)
    advice = advisor.advise(points, question, evidence="run X")
    assert advice.choice.series == "bin-rescore-f32-disk" and advice.choice["disk GB"] == pytest.approx(15.36)
    assert advice.choice["RAM GB"] == pytest.approx(0.48) and not advice.choice["disk-bound"]
    text = advice.text()
    assert "EXTRAPOLATED 100x beyond the largest measured corpus (100,000 vectors)" in text
    assert "read from disk with direct I/O when measured: 100 device reads per query" in text
    assert "capped" not in text and "evidence: run X" in text
    in_ram = advisor.advise(points, advisor.Question(10_000_000, 4e9, 0.9))
    assert in_ram.choice is None and "best recall is 0.800 (ivf-pq(m=48)" in in_ram.text()
    slow = advisor.advise(points, advisor.Question(10_000_000, 20e9, 0.9, min_qps=1000))
    assert "bin-rescore-f32 {\"factor\": 10} reaches the recall target but only at about 10.0 queries/s" in slow.text()
    tiny = advisor.advise(points, advisor.Question(10_000_000, 1e6, 0.5))
    assert "no measured scheme fits: the smallest, bin-flat, needs 0.48 GB" in tiny.text()
    with pytest.raises(ParameterError, match="beyond the largest measured corpus"):
        advisor.advise(points, question, strict=True)
    with pytest.raises(ParameterError, match=r"measured with \[2\] search thread"):
        advisor.estimate(points, advisor.Question(1000, 1e9, 0.9, threads=8))
    with pytest.raises(ParameterError, match="target recall"):
        advisor.Question(1000, 1e9, 1.5)


def test_a_series_measured_further_answers_there_and_the_others_are_marked_extrapolated(points):
    further = pd.concat([points, pd.DataFrame([point(1_000_000, "bin-flat", "bin-flat", "binary", 0.90, 200.0, 48)])],
                        ignore_index=True)
    grid = advisor.regime_grid(further, [1_000_000], [1e12], [0.85, 0.9])
    in_ram = grid[grid["rescoring store"] == "RAM"]
    measured, extrapolated = in_ram.set_index("target recall@10").loc[[0.85, 0.9]].itertuples()
    assert (measured.winner, measured.extrapolation) == ("bin-flat {}", 1.0)  # measured there: no dot
    assert measured.qps == pytest.approx(200.0)
    assert extrapolated.winner.startswith("bin-rescore-f32 ") and extrapolated.extrapolation == 10
    verdict = advisor.binary_verdicts(further, [1_000_000], [1e12], 0.85, [0.0]).iloc[0]
    assert verdict["best binary"] == "bin-flat" and verdict.extrapolation == 10  # against flat, measured to 10^5
    assert "EXTRAPOLATED" not in advisor.advise(further, advisor.Question(1_000_000, 1e12, 0.85)).text()
    text = advisor.advise(further, advisor.Question(1_000_000, 1e12, 0.9)).text()
    assert ("EXTRAPOLATED 10x beyond the largest corpus bin-rescore-f32 was measured at (100,000 vectors; others up "
            "to 1,000,000)") in text
    strict = advisor.advise(further, advisor.Question(1_000_000, 1e12, 0.9), strict=True)
    assert strict.choice is None and "best recall is 0.900 (bin-flat" in strict.text()


def test_a_store_on_disk_is_the_askers_choice_and_the_disk_caps_its_speed(points):
    in_ram = advisor.estimate(points, advisor.Question(10_000, 1e12, 0.5)).set_index("series")
    assert "bin-rescore-f32-disk" not in in_ram.index and in_ram.loc["bin-rescore-f32", "disk GB"] == 0
    assert in_ram.loc["bin-rescore-f32", "RAM GB"] == pytest.approx(1584 * 10_000 / 1e9)  # its store stays in RAM
    on_disk = advisor.estimate(points, advisor.Question(10_000, 1e12, 0.5, rescore_on_disk=True)).set_index("series")
    row = on_disk.loc["bin-rescore-f32-disk"]
    # measured 5,000 q/s x 100 reads would need 500,000 reads/s; the disk gave 200,000
    assert row["disk-bound"] and row.qps == pytest.approx(2000.0) and row["disk reads/query"] == 100
    advice = advisor.advise(points, advisor.Question(10_000, 1e12, 0.9, min_qps=300, rescore_on_disk=True))
    assert advice.choice.series == "bin-rescore-f32"  # in RAM, faster: an on-disk store is allowed, not forced


def test_advise_recommends_a_library_configuration_when_it_is_the_best_measured(points):
    library = pd.DataFrame([point(n, "usearch-hnsw-i8(M=16)", "usearch-hnsw-i8", "graph", 0.97, q, 500,
                                  query='{"efSearch": 64}', library="usearch")
                            for n, q in [(10_000, 40_000.0), (100_000, 30_000.0)]])
    advice = advisor.advise(pd.concat([points, library], ignore_index=True),
                            advisor.Question(1_000_000, advisor.parse_bytes("4GB"), 0.9))
    assert advice.choice.series == "usearch-hnsw-i8(M=16)" and advice.choice.library == "usearch"
    assert 'choose usearch-hnsw-i8(M=16) {"efSearch": 64} (graph, usearch): 0.50 GB RAM' in advice.text()


@pytest.fixture(scope="module")
def harness_run():
    rng = np.random.default_rng(0)
    tables, meta = [], harness.new_run("test")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FaissTrainingWarning)
        for n in (400, 800):
            corpus = rng.standard_normal((n, 32)).astype(np.float32)
            corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
            tables.append(harness.run_methods(corpus, corpus[:20], "tiny", "synthetic",
                                              ["flat", "bin-flat", "hnsw-flat"],
                                              repeats=1, latency_queries=2, thread_counts=[1], meta=meta,
                                              progress=False))
    return pd.concat(tables, ignore_index=True)


def test_advise_on_the_harness_own_points(harness_run):
    points = throughput.operating_points(harness_run)
    advice = advisor.advise(points, advisor.Question(800, 1e9, 0.99, threads=1))
    assert advice.choice is not None and advice.choice["recall low"] >= 0.99
    assert set(advice.candidates.series) == {"flat", "bin-flat", "hnsw-flat(M=32)"}


def test_cli_answers_out_of_the_box_from_the_committed_run_and_names_its_machine(capsys, no_collections):
    """From committed results alone: no collection is read, so none need be on the machine."""
    assert main(["advise", "--docs", "10_000_000", "--memory", "4GB", "--target-recall", "0.7"]) == 0
    out = capsys.readouterr().out
    assert "evidence: throughput run " in out and "(default profile, git " in out
    assert re.search(r"\) on .+ \((AVX-512|AVX2 only|no AVX2)[^)]*\), \d+ cores, [\d.]+ GiB; "
                     r"(OpenBLAS[^;]+; )?Hamming scan at [\w-]+(; int8 re-ranking at [\w-]+)?: ", out), out


def test_cli_answers_and_fails_clearly_without_measurements(capsys, tmp_path, monkeypatch, harness_run):
    monkeypatch.setenv("PHASE2_RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv("PHASE2_PUBLISHED_DIR", str(tmp_path / "published"))  # no committed run either
    assert main(["advise", "--docs", "10_000_000", "--memory", "4GB", "--target-recall", "0.7"]) == 2
    assert "the advisor answers from measurements only; run the throughput chapter first" in capsys.readouterr().err
    smoke_run = harness_run.assign(profile="smoke")
    kernel_row = smoke_run.iloc[:1].assign(suite="kernels", data_kind=harness.KERNEL_DATA,
                                           source="uniform random codes", dim=1024)
    harness.save(pd.concat([kernel_row, smoke_run], ignore_index=True))  # as the chapter saves: kernels first
    assert main(["advise", "--docs", "600", "--memory", "1MB", "--target-recall", "0.9"]) == 2  # default profile
    assert "no results of profile 'default' for chapter 'throughput'" in capsys.readouterr().err
    smoke = ["--profile", "smoke", "--threads", "1"]
    assert main(["advise", "--docs", "600", "--memory", "1MB", "--target-recall", "0.9", *smoke]) == 0
    out = capsys.readouterr().out
    assert "600 documents, at most 0.001 GB RAM, recall@10 >= 0.9" in out and "EXTRAPOLATED" not in out
    assert f"evidence: throughput run {harness_run.run_id.iloc[0]} (smoke profile" in out
    assert f"dimension {harness_run.dim.iloc[0]}" in out and "uniform random codes" not in out
    assert "candidates (feasible first, then by queries/s), top 5:" in out
    assert main(["advise", "--docs", "1000", "--memory", "1MB", "--target-recall", "0.9", *smoke]) == 0
    assert "EXTRAPOLATED 1.25x beyond the largest measured corpus (800 vectors)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["advise", "--docs", "many", "--memory", "4GB", "--target-recall", "0.7"])
    assert "docs: expected comma-separated integers" in capsys.readouterr().err
    assert issubclass(ParameterError, Phase2Error)


def test_binary_verdicts_compare_the_fastest_of_each_side(points):
    extra = [point(n, "sq8", "sq8", "scalar", 0.99, q, 384) for n, q in [(10_000, 11_000.0), (100_000, 1_100.0)]]
    extra += [point(n, "hnsw-flat(M=32)", "hnsw-flat", "graph", 0.95, 20_000.0, 1_800) for n in (10_000, 100_000)]
    table = advisor.binary_verdicts(pd.concat([points, pd.DataFrame(extra)]), [100_000], [1e8, 2e10], 0.9, [0, 5_000])
    cell = table.set_index(["min qps", "rescoring store", "docs", "memory GB"])["binary is"]
    assert cell[(0, "RAM", 100_000, 0.1)] == "worse"  # only sq8 fits in RAM
    assert cell[(0, "disk", 100_000, 0.1)] == "competitive"  # binary codes + disk store: 1,000 vs sq8's 1,100 q/s
    # (1,000 q/s x 100 reads: half the disk's 200,000 reads/s, so not capped)
    assert cell[(0, "RAM", 100_000, 20.0)] == "worse"  # the graph is 20x faster
    assert cell[(5_000, "disk", 100_000, 0.1)] == "nothing feasible"
    row = table[(table["min qps"] == 0) & (table["rescoring store"] == "disk") & (table["memory GB"] == 0.1)].iloc[0]
    assert (row["best binary"], row["best other"]) == ("bin-rescore-f32-disk", "sq8")
