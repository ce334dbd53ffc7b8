"""Published tasks at sizes no build measures (phase2.experiments.scale) and what the chapter reads from them
(phase2.findings.growth)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from scipy import stats

from phase2.__main__ import main
from phase2.errors import ParameterError
from phase2.experiments import harness, results, scale, synthetic
from phase2.findings import advisor, growth
from phase2.search.methods import exact_topk

D = 16


def unit_rows(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


VALUES = {"scale_sizes": [3000], "scale_methods": ["bin-flat", "flat"], "dataset": ["tiny"], "model": ["minilm-l6"],
          "n_queries": 20, "large_repeats": 1, "latency_queries": 2, "latency_budget_s": 0.5}


@pytest.fixture
def tasks(tmp_path, monkeypatch):
    """A plan of two methods at 3,000 synthetic vectors, measured into a temporary published directory."""
    monkeypatch.setenv("PHASE2_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PHASE2_PUBLISHED_DIR", str(tmp_path / "published"))
    values = dict(VALUES)
    monkeypatch.setattr(scale, "plan_values", lambda profile: values)
    real, queries = unit_rows(800, D, 1), unit_rows(40, D, 2)
    monkeypatch.setattr(scale, "pooled_embeddings", lambda datasets, model, progress: (real, queries,
                                                                                       np.arange(40) % 2))
    monkeypatch.setattr(scale, "get_model_spec", lambda model: type("Spec", (), {"dim": D}))
    return values, real, queries, tmp_path


def test_each_task_is_written_when_done_and_a_second_batch_measures_only_what_is_not_current(tasks):
    values, real, queries, root = tasks
    written = scale.run_scale("default", progress=False)
    assert [p.name for p in written] == ["3000-bin-flat.parquet", "3000-flat.parquet"]
    status = scale.status("default", values)
    assert list(status.state) == ["current", "current"] and status.machine.str.len().min() > 0
    rows = scale.read_tasks("default", values)
    assert set(rows.build_params) == {"bin-flat", "flat"} and (rows.code == scale.code_digest()).all()
    assert set(rows.search_threads) == {scale.max_threads()} and rows.run_id.nunique() == 2  # a run per task
    assert scale.run_scale("default", progress=False) == []  # all current: nothing measured again
    written[1].unlink()  # a batch stopped before flat finished
    values["latency_queries"] = 3  # and bin-flat's parameters changed since
    assert list(scale.status("default", values).state) == ["other parameters", "missing"]
    assert len(scale.run_scale("default", only=["flat"], progress=False)) == 1
    assert list(scale.status("default", values).state) == ["other parameters", "current"]
    recorded = json.loads(pq.read_schema(written[1]).metadata[b"phase2"])
    assert recorded == {"parameters": scale.task_parameters(values)}


def test_the_mapped_corpus_is_the_generators_draw_and_the_truth_is_exact(tasks):
    values, real, queries, root = tasks
    generator = synthetic.fit_synthetic(real)
    corpus = scale.mapped_corpus(generator, 3000, progress=False)
    assert isinstance(corpus, np.memmap) and not corpus.flags.writeable
    np.testing.assert_array_equal(corpus, synthetic.sample_synthetic(generator, 3000))
    (root / "cache" / "scale" / f"{scale.generator_key(generator)}-5000x{D}.part").write_bytes(b"\1" * 64)
    larger = scale.mapped_corpus(generator, 5000, progress=False)  # an interrupted draw is drawn again
    np.testing.assert_array_equal(larger, synthetic.sample_synthetic(generator, 5000))
    truth = scale.ground_truth(corpus, queries, "key")
    np.testing.assert_array_equal(truth, exact_topk(np.asarray(corpus), queries, scale.K))
    np.testing.assert_array_equal(scale.ground_truth(corpus, queries, "key"), truth)  # read back, not recomputed


def test_bad_requests_are_named(tasks):
    with pytest.raises(ParameterError, match=r"--only: \['hnsw-flat'\] are not in the default profile's"):
        scale.run_scale("default", only=["hnsw-flat"], progress=False)


def test_the_default_profile_plans_ten_million_vectors_apart_from_the_chapters_own_run():
    values = scale.plan_values("default")
    assert values["scale_sizes"] == [10_000_000]
    assert {t.method for t in scale.plan(values)} >= {"flat", "bin-rescore-int8", "bin-rescore-int8-disk",
                                                      "bin-ivf-scan-rescore-int8", "ivf-pq-rescore-int8",
                                                      "ivf-rabitq-rescore-int8"}
    assert set(scale.PLAN_PARAMETERS) <= set(values) and not set(scale.PLAN_PARAMETERS) & set(scale.TASK_PARAMETERS)


def points_at(sizes, exponent, method="m", family="binary", recall=0.95, threads=2, kind="synthetic"):
    return pd.DataFrame([{"build_params": method, "method": method, "family": family, "n_vectors": n,
                          "data_kind": kind, "search_threads": threads, "recall@10": recall, "query_params": "",
                          "qps": 1e6 * n ** -exponent, "p50_ms": 1.0, "bytes_per_vector": 48.0, "build_s": 1.0}
                         for n in sizes])


def test_exponents_are_linregress_slopes_and_test_the_extrapolation_to_the_largest_size():
    sizes = [10_000, 100_000, 1_000_000, 10_000_000]
    exact = points_at(sizes, 0.8)
    slower = points_at(sizes, 0.5, method="ivf", family="ivf")
    slower.loc[slower.n_vectors == 10_000_000, "qps"] /= 2  # half the speed the smaller sizes predict
    missing = points_at(sizes, 1.0, method="low", recall=0.5)  # never reaches 0.9: no exponent
    one_thread = points_at(sizes, 3.0, threads=1)  # not at all threads: not read
    fitted = growth.exponents(pd.concat([exact, slower, missing, one_thread], ignore_index=True))
    assert list(fitted.method) == ["ivf", "m"]
    row = fitted.set_index("method").loc["m"]
    assert row.exponent == pytest.approx(0.8) and row.exponent_se == pytest.approx(0, abs=1e-9)
    assert row["measured / predicted"] == pytest.approx(1.0)
    ivf = fitted.set_index("method").loc["ivf"]
    assert ivf["measured / predicted"] == pytest.approx(0.5)
    logs = np.log10(np.array(sizes, float))
    reference = stats.linregress(logs, np.log10(slower.qps.to_numpy()))
    assert ivf.exponent == pytest.approx(-reference.slope) and ivf.exponent_se == pytest.approx(reference.stderr)


def test_real_corpora_fill_the_sizes_synthetic_ones_lack():
    real = points_at([10_000, 100_000], 1.0, kind="real")
    real.loc[:, "qps"] *= 3
    both = pd.concat([real, points_at([100_000, 1_000_000], 1.0)], ignore_index=True)
    best = growth.fastest_per_size(both, 0.9)
    assert list(best.data_kind) == ["real", "synthetic", "synthetic"]
    assert growth.exponents(both).data.iloc[0] == "real 10,000; synthetic 100,000-1,000,000"


def test_at_size_sets_each_method_against_flat_and_the_sentence_refuses_mixed_machines():
    flat = points_at([10_000_000], 1.0, method="flat", family="float", recall=1.0)
    binary = points_at([10_000_000], 0.0, method="bin-rescore-int8", recall=0.96)
    table = growth.at_size(pd.concat([flat, binary], ignore_index=True), targets=(0.95, 0.99))
    row = table[(table.method == "bin-rescore-int8") & (table["target_recall@10"] == 0.95)].iloc[0]
    assert row["x flat"] == pytest.approx(1e6 / (1e6 * 1e-7)) and row.n_vectors == 10_000_000
    assert np.isnan(table[(table.method == "bin-rescore-int8") & (table["target_recall@10"] == 0.99)].qps.iloc[0])
    sentence = growth.growth_sentence(table, growth.exponents(flat), ["machine A"])
    assert sentence.startswith("At recall@10 ≥ 0.95, the fastest was `bin-rescore-int8`")
    assert "not set against each other" in growth.growth_sentence(table, growth.exponents(flat), ["A", "B"])
    assert "grid's steps" not in sentence
    assert growth.machines_sentence("A", []) == "" and "one kind of machine (A)" in growth.machines_sentence("A", ["A"])
    assert "indicative only" in growth.machines_sentence("A", ["B"])
    tasks = pd.DataFrame({"created_utc": ["2026-12-06T04:30:23.2+00:00", "2026-12-06T03:20:42.1+00:00"]})
    assert growth.machines_sentence("A", ["A"], "2026-12-06T00:06:01.7+00:00", tasks) == (
        "The tasks and this chapter's run were measured on one kind of machine (A), the tasks from 2026-12-06 03:20 "
        "to 2026-12-06 04:30 UTC and the run at 2026-12-06 00:06 UTC: one kind is not one host, so a ratio across the "
        "two (an exponent joining their sizes) also carries any difference between the hosts, as does a ratio "
        "between tasks measured apart.")


def published_run() -> pd.DataFrame:
    """A small throughput run of the default profile, published (where the fixture points)."""
    run = harness.run_methods(unit_rows(500, D, 3), unit_rows(10, D, 4), "tiny", "synthetic", ["flat", "bin-flat"],
                              repeats=1, latency_queries=2, thread_counts=[1, scale.max_threads()],
                              meta=harness.new_run("default"), progress=False)
    harness.publish(run, "default", {})
    return run


def test_the_advisor_takes_the_current_tasks_measured_on_the_runs_machine(tasks):
    scale.run_scale("default", progress=False)
    run = published_run()
    points, evidence = advisor.measured_points("default")
    assert sorted(points.n_vectors.unique()) == [500, 3000]
    assert "the largest size from 2 published tasks (all threads only: `bin-flat`, `flat`)" in evidence
    elsewhere = json.dumps({**json.loads(run.machine.iloc[0]), "cpu": "another CPU"})
    harness.publish(run.assign(machine=elsewhere), "default", {})
    points, evidence = advisor.measured_points("default")
    assert list(points.n_vectors.unique()) == [500] and "2 published tasks measured on another machine" in evidence


def test_results_export_writes_the_current_tasks_beside_the_chapters_runs(tasks, monkeypatch):
    root = tasks[3]
    monkeypatch.setenv("PHASE2_RESULTS_DIR", str(root / "results"))
    scale.run_scale("default", progress=False)
    harness.save(published_run())
    assert main(["results", "export", "--profile", "default", "--format", "csv", "--to", str(root / "out")]) == 0
    exported = results.read_export(root / "out" / "scale.csv")
    assert len(exported) == len(scale.read_tasks("default")) and set(exported.build_params) == {"bin-flat", "flat"}


def test_the_growth_sentence_says_where_a_binary_near_miss_outruns_the_fastest():
    def setting(method, factor, recall, qps):
        return points_at([10_000_000], 0.0, method=method, recall=recall).assign(
            qps=qps, query_params=f'{{"factor": {factor}}}')

    rabitq = setting("ivf-rabitq-rescore-int8", 25, 0.951, 2475.0)
    binary = pd.concat([setting("bin-ivf-scan-rescore-int8", 300, 0.949, 2563.0),
                        setting("bin-ivf-scan-rescore-int8", 500, 0.961, 1947.0)], ignore_index=True)
    table = growth.at_size(pd.concat([rabitq, binary], ignore_index=True), targets=(0.95,))
    assert growth.growth_sentence(table, growth.exponents(rabitq), ["machine A"]) == (
        "At recall@10 ≥ 0.95, the fastest was `ivf-rabitq-rescore-int8` at 2,475 q/s (flat not measured); the fastest "
        "binary pipeline, `bin-ivf-scan-rescore-int8`, answered 1,947 (0.79x), but `bin-ivf-scan-rescore-int8` "
        '{"factor": 300} reached 0.949, within 0.005 of the target, at 2,563 q/s, more than the fastest: the order '
        "rests on the grid's steps.")
    short = binary.assign(**{"recall@10": binary["recall@10"].where(binary.qps < 2000, 0.94)})  # 0.01 short
    table = growth.at_size(pd.concat([rabitq, short], ignore_index=True), targets=(0.95,))
    assert growth.growth_sentence(table, growth.exponents(rabitq), ["machine A"]).endswith("answered 1,947 (0.79x).")


def test_the_growth_sentence_names_the_planned_tasks_it_does_not_yet_rest_on():
    status = pd.DataFrame({"n_vectors": [1_000_000, 10_000_000, 10_000_000, 10_000_000, 10_000_000],
                           "method": ["bin-flat", "bin-flat", "flat", "bin-rescore-int8", "ivf-pq-rescore-int8"],
                           "state": ["other code", "current", "missing", "other code", "missing"],
                           "not run here": ["", "", "needs 15.4 GB", "", ""]})
    assert growth.pending(status) == ["bin-rescore-int8", "ivf-pq-rescore-int8"]
    binary = points_at([10_000_000], 0.0, method="bin-flat", recall=0.96)
    table = growth.at_size(binary, targets=(0.95,))
    alone = growth.growth_sentence(table, growth.exponents(binary), ["machine A"])
    assert growth.growth_sentence(table, growth.exponents(binary), ["machine A"], waiting=growth.pending(status)) == (
        "On the current tasks alone (`bin-rescore-int8`, `ivf-pq-rescore-int8` still to be measured by the present "
        f"code): a{alone[1:]}")
    assert growth.growth_sentence(table, growth.exponents(binary), ["machine A"], waiting=[]) == alone


def test_the_growth_sentence_names_the_methods_that_never_reached_the_target():
    binary = points_at([10_000_000], 0.0, method="bin-ivf-scan-rescore-int8", recall=0.96)
    graph = points_at([10_000_000], 0.0, method="hnsw-sq8", family="graph", recall=0.746)
    table = growth.at_size(pd.concat([binary, graph], ignore_index=True), targets=(0.95,))
    sentence = growth.growth_sentence(table, growth.exponents(binary), ["machine A"])
    assert "Within their grids, `hnsw-sq8` (best 0.746) never reached it here." in sentence
