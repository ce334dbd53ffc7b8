"""Precompute on Dask: the same cache files as the serial path, bit for bit, on a local cluster and on a
scheduler started elsewhere; and the chapters then find every search they make already done."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from phase2 import PROJECT_ROOT
from phase2.book import pipeline
from phase2.experiments import params, plans, precompute, published

from conftest import cold_cache, require_dataset


def _cli(*args, cache: Path, results: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PHASE2_CACHE_DIR": str(cache), "PHASE2_RESULTS_DIR": str(results or cache / "results"),
           "PHASE2_PUBLISHED_DIR": str(cache / "published")}
    proc = subprocess.run([sys.executable, "-m", "phase2", *args], capture_output=True, text=True, cwd=PROJECT_ROOT,
                          env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _searches(cache: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((cache / "search").iterdir())}


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    """The smoke profile precomputed twice from the same cold cache: serially in one process, and on a local
    cluster of two single-threaded worker processes."""
    require_dataset("cranfield")
    serial = cold_cache(tmp_path_factory.mktemp("serial"))
    cluster = cold_cache(tmp_path_factory.mktemp("cluster"))
    _cli("precompute", "--profile", "smoke", "--serial", cache=serial)
    out = _cli("precompute", "--profile", "smoke", "--workers", "2", cache=cluster).stdout
    return serial, cluster, out


def test_local_cluster_precompute_is_bit_identical_to_the_serial_path(caches):
    serial, cluster, out = caches
    embeds, searches = precompute.plan("smoke")
    assert "local Dask cluster of 2 single-threaded workers" in out and f"{len(embeds) + len(searches)} tasks" in out
    assert len(_searches(serial)) == 3 * 2 * sum(len(t.codecs) for t in searches)  # ids, scores, sizes, sidecars
    assert any(t.codecs[:2] == ("ITQ", "ITQ+R2Flat") for t in searches)  # a first stage with its pipelines
    assert _searches(cluster) == _searches(serial)
    timings = pd.read_csv(pipeline.BUILD_DIR / "precompute" / "smoke.csv", keep_default_na=False)
    assert len(timings) == len(embeds) + len(searches) and set(timings.task) == {"embed", "search"}


def _published(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted((root / "searches").rglob("*.parquet"))}


def _assert_same_search(recomputed: Path, committed: Path) -> None:
    new, old = published.read_provenance(recomputed), published.read_provenance(committed)
    assert new["key"] == old["key"], f"{committed}: computed from other inputs than a recomputation here"
    pd.testing.assert_frame_equal(published.read_search(recomputed), published.read_search(committed),
                                  check_exact=True, obj=str(committed))


def test_the_committed_results_hold_the_smoke_slice_bit_for_bit(caches):
    """Every search of the smoke profile (cranfield with all-MiniLM-L6-v2: every codec, the rescoring and geometry
    searches), recomputed from cold caches above, equals the committed default results' rows bit for bit: a
    change of code that moves a published number fails here until the results are recomputed and committed."""
    serial, _, _ = caches
    recomputed = _published(serial / "published")
    committed = published.committed_dir("default")
    assert len(recomputed) == sum(len(t.codecs) for t in precompute.plan("smoke")[1])
    absent = [name for name in recomputed if not (committed / name).exists()]
    assert not absent, (f"{len(absent)} smoke searches are not in {committed} (python -m phase2 precompute --profile "
                        f"default publishes them), e.g. {absent[:3]}")
    for name, path in recomputed.items():
        _assert_same_search(path, committed / name)


def test_a_few_more_committed_searches_recompute_bit_for_bit(tmp_path, monkeypatch):
    """Three committed searches beyond cranfield, chosen by a hash of their paths among the MiniLM models' searches
    of collections where documents x queries stay under 2 x 10^6 (CI time), recomputed from a cold cache."""
    from phase2.data.datasets import load_dataset

    committed_root = published.committed_dir("default")
    committed = {name: path for name, path in _published(committed_root).items()
                 if not name.startswith("searches/cranfield/")}
    def cheap(name: str) -> bool:
        collection = load_dataset(name.split("/")[1])
        return name.split("/")[2].startswith("minilm") and collection.n_docs * collection.n_queries < 2_000_000

    small = [name for name in committed if cheap(name)]
    assert small, f"{committed_root} holds no MiniLM search beyond cranfield on a small collection"
    chosen = sorted(small, key=lambda name: hashlib.sha256(name.encode()).hexdigest())[:3]
    monkeypatch.setenv("PHASE2_CACHE_DIR", str(cold_cache(tmp_path, collections=())))  # compiled kernels only
    monkeypatch.setenv("PHASE2_PUBLISHED_DIR", str(tmp_path / "published"))
    for name in chosen:
        identity = published.read_provenance(committed[name])["identity"]
        require_dataset(identity["dataset"])
        task = precompute.SearchTask(identity["dataset"], identity["model"], (identity["codec"],), identity["depth"],
                                     "half" if identity["training"] == "none" else identity["training"], "default")
        task.run()
        _assert_same_search(tmp_path / "published" / name, committed[name])


def test_chapters_find_every_search_already_precomputed(caches, tmp_path):
    serial, _, _ = caches
    cache = tmp_path / "cache"
    shutil.copytree(serial, cache)
    before = _searches(cache)
    for chapter in plans.SEARCHING_CHAPTERS:
        _cli("chapter", chapter, "--profile", "smoke", "--output", str(tmp_path / f"{chapter}.ipynb"), cache=cache,
             results=tmp_path / "results")
    assert _searches(cache) == before


def test_precompute_runs_on_a_scheduler_given_by_address(caches, tmp_path, monkeypatch):
    from distributed import LocalCluster

    serial, _, _ = caches
    cache = tmp_path / "cache"
    shutil.copytree(serial, cache)
    removed = sorted((cache / "search").glob("cranfield__minilm-l6__*PQ*"))
    unpublished = sorted((cache / "published").rglob("*PQ*.parquet"))  # else they are current, and not searched
    assert removed and unpublished
    for path in [*removed, *unpublished]:
        path.unlink()
    monkeypatch.setenv("PHASE2_CACHE_DIR", str(cache))  # the workers share the cache through their environment
    monkeypatch.setenv("PHASE2_PUBLISHED_DIR", str(cache / "published"))  # and the published results
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      local_directory=str(tmp_path / "dask")) as cluster:
        out = _cli("precompute", "--profile", "smoke", "--scheduler", cluster.scheduler_address, cache=cache).stdout
    assert f"the Dask scheduler at {cluster.scheduler_address}" in out
    assert _searches(cache) == _searches(serial)
    assert sorted(_published(cache / "published")) == sorted(_published(serial / "published"))


SHARED = ("cranfield", "scifact", "nfcorpus", "squad-dev", "npl")


def test_every_planned_search_can_be_fitted_on_its_collection_and_model():
    """Without searching: every codec each profile plans fits the shape it meets (training vectors, dimension),
    and each distinct single-stage codec is fitted for real on the smallest such shape below 1,024 vectors (random
    unit vectors: the small halves, where minimum sizes bite), so a codec whose stated minimum is wrong fails here,
    not hours into a build."""
    from phase2.codecs import Rescored, make_codec, training_size
    from phase2.data.datasets import load_dataset
    from phase2.data.embeddings import MODELS

    for name in SHARED:
        require_dataset(name)
    smallest: dict[tuple[str, int], int] = {}
    for profile in params.profile_names():
        for task in precompute.plan(profile)[1]:
            n, dim = load_dataset(task.dataset).n_docs, MODELS[task.model].dim
            for name in task.codecs:
                codec = make_codec(name)
                size = training_size(codec, n, task.training)
                assert codec.unfit_reason(size, dim) is None, (profile, task, name)
                for stage in (codec.first, codec.second) if isinstance(codec, Rescored) else (codec,):
                    smallest[stage.name, dim] = min(smallest.get((stage.name, dim), size), size)
    rng = np.random.default_rng(0)
    for (name, dim), size in smallest.items():
        if size >= 1024:
            continue
        vectors = rng.standard_normal((size, dim)).astype(np.float32)
        make_codec(name).fit(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))


def test_the_default_profile_leaves_out_only_what_cannot_be_fitted_and_says_why():
    for name in SHARED:
        require_dataset(name)
    left_out = precompute.inapplicable("default")
    assert set(zip(left_out.dataset, left_out.model, strict=True)) == {("cranfield", "mpnet-base")}
    assert set(left_out.name) == {"OPQ48,PQ48", "ITQ", *(n for n in left_out.name if n.startswith("ITQ+R"))}
    assert left_out.reason.str.endswith("got 700 (half of 1,400 documents)").all()
    _, searches = precompute.plan("default")
    planned = {(t.dataset, t.model, name) for t in searches for name in t.codecs}
    assert not planned & set(zip(left_out.dataset, left_out.model, left_out.name, strict=True))
    assert ("cranfield", "mpnet-base", "ITQ384") in planned  # 384 bits fit on 700 vectors


def test_a_failed_task_does_not_stop_the_others_and_is_reported_at_the_end(tmp_path, monkeypatch):
    require_dataset("cranfield")
    monkeypatch.setenv("PHASE2_CACHE_DIR", str(cold_cache(tmp_path)))
    monkeypatch.setenv("PHASE2_PUBLISHED_DIR", str(tmp_path / "published"))  # not the committed results
    embeds, searches = precompute.plan("smoke")
    cheapest = searches[-3:]  # largest first: the three quickest searches
    monkeypatch.setattr(precompute, "plan", lambda profile, only=(): (embeds, cheapest))
    real_run = precompute.SearchTask.run
    monkeypatch.setattr(precompute.SearchTask, "run",
                        lambda self, *a: (_ for _ in ()).throw(RuntimeError("disk full")) if self == cheapest[0]
                        else real_run(self, *a))
    timings = precompute.run_serial("smoke", progress=False)
    assert len(timings) == len(embeds) + 3
    failed = timings[timings.error != ""]
    assert list(failed.codec) == [" ".join(cheapest[0].codecs)] and list(failed.error) == ["RuntimeError: disk full"]
    assert timings[timings.error == ""].seconds.notna().all()


@pytest.mark.parametrize("profile", params.profile_names())
def test_every_searching_chapter_reads_its_plan_from_where_precompute_reads_it(profile):
    for chapter in plans.SEARCHING_CHAPTERS:
        code = "\n".join(cell.source for cell in nbformat.read(params.CHAPTERS_DIR / f"{chapter}.ipynb", 4).cells)
        assert f'plans.chapter_plan("{chapter}", chapter.parameters)' in code
        plan = plans.chapter_plan(chapter, params.chapter_values(chapter, profile))
        planned = {(c, d, m): (names, depth) for c, _, pairs, names, depth in precompute._chapter_searches(profile)
                   for d, m in pairs}
        assert plan.pairs and all(planned[chapter, d, m][1] == plan.depth for d, m in plan.pairs)
        assert all(set(planned[chapter, d, m][0]) == {"Flat", *(precompute.codecs.make_codec(n).name
                                                               for n in plan.names)} for d, m in plan.pairs)


def test_the_rescoring_stores_are_named_in_one_place():
    written = '"Flat", "FP16", "BF16", "SQ8", "SQ4"'
    holders = [path.name for path in [*(PROJECT_ROOT / "phase2").rglob("*.py"), *params.CHAPTERS_DIR.glob("*.ipynb")]
               if written in path.read_text() or written.replace('"', '\\"') in path.read_text()]
    assert holders == ["plans.py"]
