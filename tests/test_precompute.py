"""Precompute on Dask: the same cache files as the serial path, bit for bit, on a local cluster and on a
scheduler started elsewhere; and the chapters then find every search they make already done."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from phase2 import PROJECT_ROOT, pipeline, precompute

from conftest import cold_cache, require_dataset


def _cli(*args, cache: Path, results: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PHASE2_CACHE_DIR": str(cache), "PHASE2_RESULTS_DIR": str(results or cache / "results")}
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


def test_chapters_find_every_search_already_precomputed(caches, tmp_path):
    serial, _, _ = caches
    cache = tmp_path / "cache"
    shutil.copytree(serial, cache)
    before = _searches(cache)
    for chapter in precompute.SEARCHING_CHAPTERS:
        _cli("chapter", chapter, "--profile", "smoke", "--output", str(tmp_path / f"{chapter}.ipynb"), cache=cache,
             results=tmp_path / "results")
    assert _searches(cache) == before


def test_precompute_runs_on_a_scheduler_given_by_address(caches, tmp_path, monkeypatch):
    from distributed import LocalCluster

    serial, _, _ = caches
    cache = tmp_path / "cache"
    shutil.copytree(serial, cache)
    removed = sorted((cache / "search").glob("cranfield__minilm-l6__*PQ*"))
    assert removed
    for path in removed:
        path.unlink()
    monkeypatch.setenv("PHASE2_CACHE_DIR", str(cache))  # the workers share the cache through their environment
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      local_directory=str(tmp_path / "dask")) as cluster:
        out = _cli("precompute", "--profile", "smoke", "--scheduler", cluster.scheduler_address, cache=cache).stdout
    assert f"the Dask scheduler at {cluster.scheduler_address}" in out
    assert _searches(cache) == _searches(serial)
