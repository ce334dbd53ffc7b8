"""The determinism contract, stated once and checked here.

1. Codes: every codec in ``phase2.codecs`` is deterministic. Fitted on the same corpus,
   it produces bit-identical codes on every run and with 1 or 2 threads (numba, BLAS
   and OpenMP pools alike): training that uses k-means or linear algebra (PQ, OPQ, the
   random rotation) and float scoring run on one BLAS thread. Seeded codecs (``BINr``)
   take their seed explicitly. ``tests/test_codecs.py`` pins the codes of a
   fixed input by hash (golden tests), so a change to any codec's output is visible.
2. Rankings and quality tables: exhaustive search ranks by score, ties broken by
   ascending corpus row, so the smoke profile's quality table (every metric, per
   query) is identical across runs, processes and thread counts, given the same
   embeddings. Each run is made in its own empty cache, so each really fits and searches.
3. Embeddings are computed once and cached under a key of weights, files, settings and
   library versions; the cache, not the encoder, is what later runs read. Encoders
   on other hardware (a GPU) may differ in the last bits: such vectors get another key.
4. Not deterministic, and labelled so where they appear: wall-clock timings, run ids
   and timestamps in result metadata, and (in later chapters) threaded ANN builds such
   as HNSW, which are checked against a tolerance instead of bitwise.
"""

import ast
import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from phase2.codecs import CODECS, SignBinary, make_codec, split_codec_names
from phase2.experiments import params, searches

from conftest import cold_cache, require_dataset, require_threads

METADATA = ["run_id", "created_utc", "threads", "embeddings"]  # embeddings: whether a store's sample was
# re-encoded now or in an earlier run of this process, part of the run's record, not of its results


def with_threads(n, fn):
    """``fn()`` with ``n`` numba and BLAS threads; comparing against 2 threads needs 2 that really run."""
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(n)
        with threadpool_limits(limits=n):
            if n > 1:  # checked under the limits set here: a test run before may have left a pool at one thread
                require_threads(n)
            return fn()
    finally:
        numba.set_num_threads(before)


@pytest.mark.parametrize("name", [*CODECS, "PQ16", "OPQ16,PQ16", "ITQ16", "LSH256", "RaBitQ1", "RaBitQ4"])
def test_codes_and_search_are_identical_across_runs_and_thread_counts(name):
    rng = np.random.default_rng(11)
    docs, queries = rng.standard_normal((2000, 384)).astype(np.float32), rng.standard_normal((50, 384)).astype(
        np.float32)

    def run():
        codec = make_codec(name).fit(docs)
        codes = codec.encode(docs)
        return codes, *codec.search(codes, queries, 20)

    results = [with_threads(1, run), with_threads(2, run), with_threads(2, run)]
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            assert a.tobytes() == b.tobytes()


def smoke_quality_setup() -> tuple[dict, list[str]]:
    """The quality chapter's parameters on the smoke profile, and its codec list."""
    notebook = params.CHAPTERS_DIR / "quality_vs_memory.ipynb"
    declared = params.declared_parameters(notebook)
    parameters = {name: ast.literal_eval(info["default"]) for name, info in declared.items()}
    parameters.update(params.chapter_parameters(notebook, "smoke"))
    return parameters, split_codec_names(parameters["codecs"])


META = {"run_id": "r", "created_utc": "t", "git_commit": "c", "versions": "{}", "cpu": "x", "threads": 0, "seed": 0,
        "profile": "smoke", "chapter": "quality_vs_memory"}


def quality_in(cache: Path, threads: int, codecs: list[str] | None = None) -> pd.DataFrame:
    """The smoke quality table computed in this process with ``threads`` threads and its own ``cache``;
    checks that it really searched (one cached search per codec written there, none before)."""
    parameters, names = smoke_quality_setup()
    names = codecs or names
    searched = cache / "search"
    assert not searched.exists(), f"{searched} is not cold"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PHASE2_CACHE_DIR", str(cache))
        table = with_threads(threads, lambda: searches.run_collection(parameters["dataset"], parameters["model"], names,
                                                                     parameters["k"], META, progress=False))
    assert len(list(searched.glob("*.ids.npy"))) == len(set(names) | {searches.REFERENCE})
    return table


SUBPROCESS_QUALITY = """
import sys, pandas as pd
from phase2.experiments import searches
from test_determinism import META, smoke_quality_setup
parameters, names = smoke_quality_setup()
searches.run_collection(parameters["dataset"], parameters["model"], names, parameters["k"], META,
                        progress=False).to_parquet(sys.argv[1])
"""


def test_smoke_quality_table_is_identical_across_runs_processes_and_thread_counts(tmp_path):
    """The quality chapter's own computation, with its default codecs, on the smoke profile's data: each run
    fits and searches every codec again in an empty cache (1 thread, 2 threads, and 2 threads in another
    process); only the embeddings, an input, are shared."""
    require_dataset("cranfield")
    one = quality_in(cold_cache(tmp_path / "one"), 1)
    two = quality_in(cold_cache(tmp_path / "two"), 2)  # with_threads checks that two threads really ran
    tests_dir = Path(__file__).parent
    other = cold_cache(tmp_path / "process")
    subprocess.run([sys.executable, "-c", SUBPROCESS_QUALITY, str(tmp_path / "process.parquet")], check=True,
                   cwd=tests_dir, env={**os.environ, "PYTHONPATH": str(tests_dir), "PHASE2_CACHE_DIR": str(other)})
    again = pd.read_parquet(tmp_path / "process.parquet")
    assert len(list((other / "search").glob("*.ids.npy"))) == len(smoke_quality_setup()[1])
    assert one.drop(columns=METADATA).equals(two.drop(columns=METADATA))
    pd.testing.assert_frame_equal(two, again, check_exact=True)


def test_the_cold_comparison_would_see_a_thread_dependent_result(tmp_path, monkeypatch):
    """Make the sign code's search depend on the thread count: cold caches see it; a shared cache (the
    comparison as it was) would have read the first run's result back and missed it."""
    require_dataset("cranfield")
    original = SignBinary._search

    def thread_dependent(self, codes, queries, k):
        scores, ids = original(self, codes, queries, k)
        return (scores, ids[:, ::-1].copy()) if numba.get_num_threads() > 1 else (scores, ids)

    monkeypatch.setattr(SignBinary, "_search", thread_dependent)
    codecs = ["Flat", "BIN"]
    one, two = quality_in(cold_cache(tmp_path / "one"), 1, codecs), quality_in(cold_cache(tmp_path / "two"), 2, codecs)
    assert not one.drop(columns=METADATA).equals(two.drop(columns=METADATA))
    shared = cold_cache(tmp_path / "shared")
    first = quality_in(shared, 1, codecs)
    monkeypatch.setenv("PHASE2_CACHE_DIR", str(shared))
    parameters, _ = smoke_quality_setup()
    warm = with_threads(2, lambda: searches.run_collection(parameters["dataset"], parameters["model"], codecs,
                                                          parameters["k"], META, progress=False))
    assert first.drop(columns=METADATA).equals(warm.drop(columns=METADATA))  # blind: nothing was searched again


def test_codes_are_identical_across_processes():
    """Guards against a library reading uninitialised memory (faiss's quantile statistic did)."""
    from test_codecs import GOLDEN

    script = ("import hashlib, numpy as np\nfrom phase2.codecs import make_codec\nfrom test_codecs import GOLDEN\n"
              "for name, (shape, _) in GOLDEN.items():\n"
              "    x = np.random.default_rng(20261124).standard_normal(shape).astype(np.float32)\n"
              "    print(name, hashlib.sha256(make_codec(name).fit(x).encode(x).tobytes()).hexdigest()[:16])\n")
    tests_dir = Path(__file__).parent
    outputs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                              cwd=tests_dir, env={**os.environ, "PYTHONPATH": str(tests_dir)}).stdout
               for _ in range(4)}
    assert len(outputs) == 1
    assert dict(line.split() for line in outputs.pop().splitlines()) == {n: h for n, (_, h) in GOLDEN.items()}
