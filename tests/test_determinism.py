"""The determinism contract, stated once and checked here.

1. Codes: every codec in ``phase2.codecs`` is deterministic. Fitted on the same corpus,
   it produces bit-identical codes on every run and with 1 or 2 threads (numba, BLAS
   and OpenMP pools alike): training that uses k-means or linear algebra (PQ, OPQ, the
   random rotation) and float scoring run on one BLAS thread. Seeded codecs (``BINr``)
   take their seed explicitly. ``tests/test_codecs.py`` pins the codes of a
   fixed input by hash (golden tests), so a change to any codec's output is visible.
2. Rankings and quality tables: exhaustive search ranks by score, ties broken by
   ascending corpus row, so the smoke profile's quality table (every metric, per
   query) is identical across runs and thread counts, given the same embeddings.
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
import pytest
from threadpoolctl import threadpool_limits

from phase2 import pipeline, quality
from phase2.codecs import CODECS, make_codec, split_codec_names

from conftest import require_dataset

METADATA = ["run_id", "created_utc", "threads"]


def with_threads(n, fn):
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        with threadpool_limits(limits=n):
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


def test_smoke_quality_table_is_identical_across_runs_and_thread_counts():
    """The quality chapter's own computation, with its default codecs, on the smoke profile's data."""
    require_dataset("cranfield")
    notebook = pipeline.CHAPTERS_DIR / "quality_vs_memory.ipynb"
    declared = pipeline.declared_parameters(notebook)
    parameters = {name: ast.literal_eval(info["default"]) for name, info in declared.items()}
    parameters.update(pipeline.chapter_parameters(notebook, "smoke"))
    codec_names = split_codec_names(parameters["codecs"])
    meta = {"run_id": "r", "created_utc": "t", "git_commit": "c", "versions": "{}", "cpu": "x", "threads": 0,
            "seed": 0, "profile": "smoke", "chapter": "quality_vs_memory"}

    def run():
        return quality.run_collection(parameters["dataset"], parameters["model"], codec_names, parameters["k"], meta,
                                      progress=False)

    one, two, again = with_threads(1, run), with_threads(2, run), with_threads(2, run)
    assert one.drop(columns=METADATA).equals(two.drop(columns=METADATA))
    assert two.equals(again)


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
