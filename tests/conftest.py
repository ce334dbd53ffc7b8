"""Shared fixtures: tiny BEIR collections written on the fly, isolated result and cache dirs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from phase2 import PROJECT_ROOT, pipeline
from phase2.datasets import find_dataset
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


def require_dataset(name: str) -> None:
    try:
        find_dataset(name)
    except DatasetError:
        pytest.skip(f"collection {name} not available on this machine")


@pytest.fixture(scope="session")
def smoke_build(tmp_path_factory) -> SimpleNamespace:
    """The book built on the smoke profile exactly as a user builds it, every chapter executed now
    (``--force``) with its results in a scratch directory: ``html``, ``executed`` notebooks, ``results``."""
    results = tmp_path_factory.mktemp("smoke-results")
    subprocess.run([sys.executable, "-m", "phase2", "book", "--profile", "smoke", "--force"], check=True,
                   cwd=PROJECT_ROOT, env={**os.environ, "PHASE2_RESULTS_DIR": str(results)})
    return SimpleNamespace(html=PROJECT_ROOT / "_build" / "html", results=results,
                           executed=pipeline.executed_dir("smoke") / "chapters")


@pytest.fixture(scope="session")
def smoke_book(smoke_build) -> Path:
    """``_build/html`` of the smoke build."""
    return smoke_build.html
