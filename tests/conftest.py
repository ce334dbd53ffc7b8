"""Shared fixtures: tiny BEIR collections written on the fly, isolated result and cache dirs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import pytest

from phase2 import PROJECT_ROOT
from phase2.book import pipeline
from phase2.data import datasets
from phase2.data.datasets import find_dataset
from phase2.errors import DatasetError

CORPUS = [{"_id": "d1", "title": "Wing", "text": "lift on a wing"},
          {"_id": "d2", "title": "", "text": "boundary layer flow"},
          {"_id": "d3", "title": "Heat", "text": "heat transfer at high speed"}]
QUERIES = [{"_id": "q1", "text": "wing lift"}, {"_id": "q2", "text": "heat"}, {"_id": "q3", "text": "unjudged"}]
QRELS = ["query-id\tcorpus-id\tscore", "q1\td1\t2", "q1\td2\t0", "q2\td3\t1"]


def write_collection(root: Path, corpus=None, queries=None, qrels=None, name: str = "tiny") -> Path:
    """A BEIR directory; each part is a list of records (dicts) or raw lines (str/bytes)."""
    path = root / name
    (path / "qrels").mkdir(parents=True, exist_ok=True)

    def lines(items):
        return b"".join((x if isinstance(x, bytes) else (x if isinstance(x, str) else json.dumps(x)).encode())
                        + b"\n" for x in items)

    (path / "corpus.jsonl").write_bytes(lines(CORPUS if corpus is None else corpus))
    (path / "queries.jsonl").write_bytes(lines(QUERIES if queries is None else queries))
    (path / "qrels" / "test.tsv").write_bytes(lines(QRELS if qrels is None else qrels))
    return path


@pytest.fixture
def tiny_collection(tmp_path) -> Path:
    return write_collection(tmp_path)


@pytest.fixture
def isolated_results(tmp_path, monkeypatch) -> Path:
    out = tmp_path / "results"
    monkeypatch.setenv("PHASE2_RESULTS_DIR", str(out))
    return out


@pytest.fixture
def no_collections(tmp_path, monkeypatch) -> None:
    """A machine without ``../shared`` and offline: no collection can be found, only named."""
    monkeypatch.setattr(datasets, "search_path", lambda: [tmp_path / "no-collections"])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def under_ci() -> bool:
    """``.ci/run`` exports CI=true: there, what a test needs and lacks is a failure, never a skip."""
    return bool(os.environ.get("CI"))


def require_dataset(name: str) -> None:
    try:
        find_dataset(name)
    except DatasetError as err:
        if under_ci():
            pytest.fail(f"CI needs collection {name} (../shared/datasets or $PHASE2_DATA_DIR): {err}", pytrace=False)
        pytest.skip(f"collection {name} not available on this machine")


def require_model_weights(spec) -> None:
    """Tests of a model whose weights ship in optional packages: `make test` installs them (`make models`);
    a bare pytest without them skips, with the reason. Under CI, a failure."""
    try:
        for distribution in spec.distributions:
            metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        message = f"{spec.name} weights not installed ({spec.install_command}; `make models`)"
        if under_ci():
            pytest.fail(f"CI needs the {message}", pytrace=False)
        pytest.skip(message)


def require_threads(count: int = 2) -> None:
    """A comparison across thread counts proves nothing unless ``count`` threads really run."""
    import numba
    from threadpoolctl import threadpool_info

    blas = min((pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"), default=0)
    if numba.config.NUMBA_NUM_THREADS < count or blas < count:
        pytest.fail(f"this test compares 1 and {count} threads, but numba has {numba.config.NUMBA_NUM_THREADS} "
                    f"and BLAS {blas}: run it on a machine with at least {count} cores", pytrace=False)


def cold_cache(root: Path, collections=("cranfield",), model: str = "minilm-l6") -> Path:
    """A new cache directory holding only the named collections' embeddings, the compiled kernels and the search
    code's behaviour digest, copied from the project's cache (computed there first if missing): every fit, search
    and chapter result is then computed again. Embeddings are an input here, cached under their own key (the
    determinism contract, 3)."""
    from phase2.data.datasets import load_dataset
    from phase2.data.embeddings import embed
    from phase2.experiments import published
    from phase2.storage import atomic_write_bytes, cache_dir

    target = root / "cache"
    (target / "embeddings").mkdir(parents=True)
    for name in collections:
        collection = load_dataset(name)
        embed(collection, model, "docs", progress=False), embed(collection, model, "queries", progress=False)
        for path in (cache_dir() / "embeddings").glob(f"{name}__{model}__*"):
            if path.is_file():
                shutil.copy2(path, target / "embeddings")
    if (cache_dir() / "kernels").is_dir():
        shutil.copytree(cache_dir() / "kernels", target / "kernels")
    digests = {names: published.behaviour_digest(names)  # half a minute once per state of the code, not per cache
               for names in (None, *published.BEHAVIOUR_EXTENSIONS.values())}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PHASE2_CACHE_DIR", str(target))
        for names, digest in digests.items():
            atomic_write_bytes(published.behaviour_digest_path(names), digest.encode())
    return target


@pytest.fixture(scope="session")
def smoke_build(tmp_path_factory) -> SimpleNamespace:
    """The book built on the smoke profile exactly as a user builds it, every chapter executed now
    (``--force``) with its results in a scratch directory: ``html``, ``executed`` notebooks, ``results`` and what
    it printed (``console``)."""
    results = tmp_path_factory.mktemp("smoke-results")
    proc = subprocess.run([sys.executable, "-m", "phase2", "book", "--profile", "smoke", "--force"],
                          cwd=PROJECT_ROOT, env={**os.environ, "PHASE2_RESULTS_DIR": str(results)},
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return SimpleNamespace(html=pipeline.rendered("smoke", "html"), results=results,
                           executed=pipeline.executed_dir("smoke") / "chapters", console=proc.stdout + proc.stderr)


@pytest.fixture(scope="session")
def smoke_book(smoke_build) -> Path:
    """The smoke build's HTML (under ``_build/profiles/smoke``: never the default book's ``_build/html``)."""
    return smoke_build.html
