"""Tidy result tables with run metadata, one parquet file per run (appending never overwrites).

Schema (one row per measured value): ``run_id, created_utc, git_commit, versions,
cpu, threads, seed, profile, chapter, dataset, model, codec, codec_label, family,
bytes_per_vector, rescore_bytes_per_vector, metric, value, query_id``. ``bytes_per_vector``
is what every query scans (must stay in memory); ``rescore_bytes_per_vector`` is read only
for a short candidate list (may live on disk), 0 for single-stage codecs. ``query_id`` is empty for the mean over
queries and holds the query id for per-query rows, so a reader never averages
means with per-query values by accident: filter on ``query_id == ""`` first. ``embeddings`` says where
the (dataset, model)'s vectors came from, as JSON per part: the cache, the encoder, or a published store
with the result of its verification (:mod:`phase2.stores`); empty for rows without a model.
"""

from __future__ import annotations

import io
import json
import os
import platform
import subprocess
import uuid
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pandas as pd

from phase2 import PROJECT_ROOT
from phase2.storage import atomic_write_bytes

COLUMNS = ["run_id", "created_utc", "git_commit", "versions", "cpu", "threads", "seed", "profile", "chapter",
           "dataset", "model", "codec", "codec_label", "family", "bytes_per_vector", "rescore_bytes_per_vector",
           "metric", "value", "query_id", "embeddings"]

_VERSIONED = ("phase2", "numpy", "numba", "faiss-cpu", "torch", "sentence-transformers", "transformers")


def results_dir() -> Path:
    """Where chapters write and read results: ``$PHASE2_RESULTS_DIR`` or ``_build/results``."""
    return Path(os.environ.get("PHASE2_RESULTS_DIR") or PROJECT_ROOT / "_build" / "results")


def run_metadata(profile: str, chapter: str, seed: int) -> dict:
    """What identifies a run and the software and hardware it ran on."""
    return {
        "run_id": datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + uuid.uuid4().hex[:8],
        "created_utc": datetime.now(UTC).isoformat(timespec="microseconds"),
        "git_commit": _git_commit(),
        "versions": json.dumps({p: _version(p) for p in _VERSIONED}, sort_keys=True),
        "cpu": _cpu_name(),
        "threads": _threads(),
        "seed": seed,
        "profile": profile,
        "chapter": chapter,
    }


def write_results(table: pd.DataFrame, directory: Path | None = None, columns: list[str] = COLUMNS) -> Path:
    """Add one run's rows as ``<directory>/<chapter>/<run_id>.parquet`` (atomic), in the schema ``columns``."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"results table lacks columns {missing}")
    runs = table["run_id"].unique()
    chapters = table["chapter"].unique()
    if len(runs) != 1 or len(chapters) != 1:
        raise ValueError(f"write one run of one chapter at a time, got runs {list(runs)} of chapters {list(chapters)}")
    path = (directory or results_dir()) / chapters[0] / f"{runs[0]}.parquet"
    if path.exists():
        raise FileExistsError(f"{path} exists: run ids are unique, refusing to overwrite")
    buf = io.BytesIO()
    table[columns].to_parquet(buf, index=False)
    atomic_write_bytes(path, buf.getvalue())
    return path


def read_results(chapter: str, directory: Path | None = None, latest: bool = True) -> pd.DataFrame:
    """All runs of a chapter (or only the newest run) as one table."""
    files = sorted(((directory or results_dir()) / chapter).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no results for chapter {chapter!r} in {(directory or results_dir()) / chapter}")
    if latest:
        files = files[-1:]
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (out.stdout.strip() + ("+dirty" if dirty else "")) if out.returncode == 0 else "unknown"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _threads() -> int:
    import numba

    return numba.get_num_threads()
