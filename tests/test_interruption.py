"""Runs killed by a signal in the middle of a write leave no corrupt file, and the next run
recomputes only what is missing and appends results without losing or duplicating rows."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from phase2 import storage
from phase2.data.datasets import load_beir_dir
from phase2.experiments import results

# Runs in a child process: makes the final fsync of the chosen write announce itself and hang,
# so the parent can kill the child while the bytes are written but not yet renamed into place.
# SIGINT gets Python's Ctrl-C handler back: a shell running the tests in the background (`make test &`)
# starts children with SIGINT ignored, and Python then never raises KeyboardInterrupt.
CHILD = textwrap.dedent("""
    import os, signal, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from phase2 import storage
    hang_on = int(os.environ["HANG_ON_WRITE"])  # 1-based index of the write to interrupt
    writes = [0]
    real_fsync = os.fsync
    def fsync(fd):
        writes[0] += 1
        if writes[0] == hang_on:
            print("WRITING", flush=True)
            time.sleep(120)
        real_fsync(fd)
    storage.os.fsync = fsync
    exec(sys.argv[1])
    print("DONE", flush=True)
""")


def run_child(code: str, env: dict, hang_on: int = 0, sig=None) -> str:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **env, "HANG_ON_WRITE": str(hang_on)})
    if sig is None:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        return out
    for line in proc.stdout:
        if line.strip() == "WRITING":
            break
    else:
        pytest.fail("child never reached the write: " + proc.stderr.read()[-2000:])
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    return ""


EMBED_BOTH = ("from phase2.data.datasets import load_beir_dir\nfrom phase2.data.embeddings import embed\n"
              "c = load_beir_dir({path!r})\nembed(c, 'minilm-l6', 'docs', progress=False)\n"
              "embed(c, 'minilm-l6', 'queries', progress=False)")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_killed_while_caching_embeddings_recomputes_only_what_is_missing(tiny_collection, tmp_path, sig):
    env = {"PHASE2_CACHE_DIR": str(tmp_path / "cache")}
    code = EMBED_BOTH.format(path=str(tiny_collection))
    # writes: 1 docs array, 2 docs sidecar, 3 queries array -> kill while the queries array is being written
    run_child(code, env, hang_on=3, sig=sig)
    cache = tmp_path / "cache" / "embeddings"
    finished = sorted(p.name for p in cache.glob("*.npy"))
    assert len(finished) == 1 and "__docs__" in finished[0], finished
    docs_file = next(cache.glob("*__docs__*.npy"))
    before = docs_file.stat().st_mtime_ns
    leftovers = [p for p in cache.iterdir() if p.name.endswith(".tmp")]
    assert (len(leftovers) == 0) if sig == signal.SIGINT else (len(leftovers) <= 1)

    run_child(code, env)  # the next run
    assert docs_file.stat().st_mtime_ns == before, "docs were cached and must not be recomputed"
    c = load_beir_dir(tiny_collection)
    from phase2.data.embeddings import embedding_key, get_model_spec

    queries_file = next(cache.glob("*__queries__*.npy"))
    key = embedding_key(get_model_spec("minilm-l6"), c, "queries")
    assert storage.load_array(queries_file, key).shape == (2, 384)


def test_killed_while_writing_results_keeps_earlier_runs_and_appends_cleanly(tmp_path):
    def run_rows(value):
        meta = results.run_metadata("smoke", "ch", 0)
        return pd.DataFrame([{**meta, "suite": "searches", "dataset": "d", "model": "m", "codec": "BIN",
                              "codec_label": "b",
                              "family": "binary", "bytes_per_vector": 48, "rescore_bytes_per_vector": 0,
                              "fixed_bytes": 0, "n_vectors": 100, "metric": "nDCG@10", "value": value,
                              "query_id": q, "query_cluster": q, "embeddings": ""} for q in ("", "q1", "q2")])

    results.write_results(run_rows(0.1), ("searches",), tmp_path)
    code = ("import pandas as pd\nfrom phase2.experiments import results\nfrom pathlib import Path\n"
            f"df = pd.read_pickle({str(tmp_path / 'rows.pkl')!r})\n"
            f"results.write_results(df, ('searches',), Path({str(tmp_path)!r}))")
    run_rows(0.2).to_pickle(tmp_path / "rows.pkl")
    run_child(code, {}, hang_on=1, sig=signal.SIGKILL)
    after_kill = results.read_results("ch", tmp_path, latest=False)
    assert len(after_kill) == 3 and set(after_kill.value) == {0.1}

    results.write_results(run_rows(0.3), ("searches",), tmp_path)
    table = results.read_results("ch", tmp_path, latest=False)
    assert len(table) == 6 and sorted(set(table.value)) == [0.1, 0.3]
    assert not table.duplicated(["run_id", "query_id"]).any()


def test_interrupted_chapter_leaves_no_executed_notebook_and_reruns(tmp_path):
    out = tmp_path / "quality.ipynb"
    env = {"PHASE2_RESULTS_DIR": str(tmp_path / "results")}
    code = ("from phase2.__main__ import main\n"
            f"main(['chapter', 'quality_vs_memory', '--output', {str(out)!r}])")
    # the first fsync of the run is the executed notebook's; papermill has run every cell by then
    run_child(code, env, hang_on=1, sig=signal.SIGINT)
    assert not out.exists(), "an interrupted chapter must not leave a notebook that looks executed"
    run_child(code, env)
    assert out.exists()
    # The kernel had finished (and written its results whole) before the notebook write was cut:
    # that run's rows are complete and kept; the rerun adds its own run, never a mixture.
    table = results.read_results("quality_vs_memory", tmp_path / "results", latest=False)
    sizes = table.groupby("run_id").size()
    assert len(sizes) == 2 and sizes.nunique() == 1 and np.isfinite(table.value).all()
    assert not [p for p in (tmp_path / "results" / "quality_vs_memory").iterdir() if p.suffix != ".parquet"]
