"""Tidy result tables with run metadata, one parquet file per run (appending never overwrites).

One row per measured value, in the schema of :mod:`phase2.experiments.schema`: the run's columns (who, when, which
code, which machine), then those of the row's suite. For the ``searches`` suite ``query_id`` is empty for the mean
over queries and holds the query id for per-query rows, so a reader never averages means with per-query values by
accident: filter on ``query_id == ""`` first.
"""

from __future__ import annotations

import functools
import io
import json
import os
import platform
import shutil
import subprocess
import uuid
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from phase2 import PROJECT_ROOT, cpu_flags
from phase2.experiments import schema
from phase2.storage import atomic_write_bytes, package_digest

COMMITTED_RESULTS = "results"
"""The folder of the checkout that holds the committed results, ``results/<profile>``."""
_VERSIONED = ("phase2", "numpy", "numba", "faiss-cpu", "torch", "sentence-transformers", "transformers")


def results_dir() -> Path:
    """Where chapters write and read results: ``$PHASE2_RESULTS_DIR`` or ``_build/results``."""
    return Path(os.environ.get("PHASE2_RESULTS_DIR") or PROJECT_ROOT / "_build" / "results")


def run_metadata(profile: str, chapter: str, seed: int) -> dict:
    """What identifies a run and the software and hardware it ran on (:data:`phase2.experiments.schema.RUN_COLUMNS`
    but the rows' ``suite``)."""
    return {
        "run_id": datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + uuid.uuid4().hex[:8],
        "created_utc": datetime.now(UTC).isoformat(timespec="microseconds"),
        "git_commit": git_commit(),
        "code": code_digest(),
        "versions": json.dumps({p: _version(p) for p in _VERSIONED}, sort_keys=True),
        "cpu": cpu_name(),
        "machine": json.dumps(machine(), sort_keys=True),
        "threads": _threads(),
        "seed": seed,
        "profile": profile,
        "chapter": chapter,
    }


def write_results(table: pd.DataFrame, suites: tuple[str, ...], directory: Path | None = None) -> Path:
    """Add one run's rows of ``suites`` as ``<directory>/<chapter>/<run_id>.parquet`` (atomic), in the columns
    :func:`phase2.experiments.schema.check` finds for them; a table that does not fit is a ValueError."""
    columns = schema.check(table, suites)
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


def read_results(chapter: str, directory: Path | None = None, latest: bool = True,
                 profile: str | None = None, current: bool = False) -> pd.DataFrame:
    """All runs of a chapter (or only the newest run) as one table; with ``profile``, only that profile's runs,
    so a smoke build or a one-off run of another profile never becomes what a chapter reads; with ``current``,
    only runs computed by the present ``phase2`` code (:func:`code_digest`), so results of older code never do."""
    folder = (directory or results_dir()) / chapter
    files = sorted(folder.glob("*.parquet"))
    if profile is not None:
        files = [f for f in files if profile in pq.read_table(f, columns=["profile"])["profile"].unique().to_pylist()]
    which = f" of profile {profile!r}" if profile is not None else ""
    if not files:
        raise FileNotFoundError(f"no results{which} for chapter {chapter!r} in {folder}")
    if current:
        older = files[-1]
        files = [f for f in files if _run_code(f) == code_digest()]
        if not files:
            raise FileNotFoundError(
                f"no results{which} for chapter {chapter!r} computed by the present phase2 code (the newest, "
                f"{older.stem}, came from code {_run_code(older) or 'unrecorded'}, now {code_digest()}): run it "
                f"again: python -m phase2 chapter {chapter}" + (f" --profile {profile}" if profile else ""))
    if latest:
        files = files[-1:]
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def _run_code(path: Path) -> str:
    try:
        return str(pq.read_table(path, columns=["code"])["code"][0].as_py())
    except (KeyError, ValueError, IndexError, OSError):
        return ""  # written before runs recorded their code


@functools.cache
def code_digest() -> str:
    """The code that computed a run (:func:`phase2.storage.package_digest`; git's commit misses edits)."""
    return package_digest()[:16]


def describe_run(table: pd.DataFrame) -> str:
    """One line naming the run a table holds: id, profile, commit, code and date."""
    runs = table.drop_duplicates("run_id")
    return "; ".join(f"{r.chapter} run {r.run_id} ({r.profile} profile, git {r.git_commit}, code {r.code}, "
                     f"{r.created_utc[:10]})" for r in runs.itertuples())


EXPORT_FORMATS = ("csv", "json")


def export_results(profile: str, fmt: str, to: Path, directory: Path | None = None) -> list[Path]:
    """Write the newest run of ``profile`` of every chapter that has results as ``<to>/<chapter>.<fmt>``, every
    column (run metadata included) and row; :func:`read_export` reads one back with the same dtypes.

    CSV: a header row, ``NaN`` for a missing value (a text column holding the text ``NaN`` is refused), and a
    ``<chapter>.schema.json`` beside it naming each column's dtype (and a categorical column's categories, and
    whether a column of objects holds flags).
    JSON: ``{"chapter", "profile", "columns": [{"name", "dtype"}], "rows": [[...], ...]}``, missing values as
    ``null``; floats are written with every digit, so both formats round-trip exactly.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; formats: {', '.join(EXPORT_FORMATS)}")
    root = directory or results_dir()
    chapters = sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.parquet"))) \
        if root.is_dir() else []
    written = []
    for chapter in chapters:
        try:
            table = read_results(chapter, root, profile=profile)
        except FileNotFoundError:
            continue
        written.append(write_export(table, Path(to) / f"{chapter}.{fmt}"))
    if not written:
        raise FileNotFoundError(f"no results of profile {profile!r} in {root}: build the book with that profile "
                                "first (python -m phase2 book --profile ...)")
    return written


def write_export(table: pd.DataFrame, path: Path) -> Path:
    """One table as CSV (with its ``.schema.json``) or JSON, by ``path``'s suffix (see :func:`export_results`)."""
    columns = [{"name": str(c), "dtype": str(table[c].dtype)} for c in table.columns]
    for column in columns:
        values = table[column["name"]]
        if column["dtype"] == "category":
            column["categories"] = values.cat.categories.tolist()
        elif column["dtype"] == "object" and values.map(lambda v: v is None or isinstance(v, bool)).all():
            column["holds"] = "bool or None"  # a suite's flag, empty on other suites' rows
    if path.suffix == ".csv":
        literal = [c["name"] for c in columns if "NaN" in c.get("categories", ())
                   or c["dtype"] in ("object", "str") and (table[c["name"]] == "NaN").any()]
        if literal:
            raise ValueError(f"column(s) {', '.join(literal)} hold the string 'NaN', which CSV export writes for a "
                             "missing value; export as JSON instead")
        atomic_write_bytes(path.with_suffix(".schema.json"), json.dumps({"columns": columns}, indent=1).encode())
        atomic_write_bytes(path, table.to_csv(index=False, na_rep="NaN").encode())
    else:
        rows = [[None if isinstance(v, float) and v != v else v for v in row]
                for row in table.astype(object).itertuples(index=False, name=None)]
        atomic_write_bytes(path, json.dumps({"columns": columns, "rows": rows}, allow_nan=False,
                                            default=lambda v: v.item() if hasattr(v, "item") else str(v)).encode())
    return path


def read_export(path: Path) -> pd.DataFrame:
    """A table written by :func:`write_export`, with the dtypes it had."""
    path = Path(path)
    if path.suffix == ".csv":
        columns = json.loads(path.with_suffix(".schema.json").read_text())["columns"]
        numeric = [c["name"] for c in columns if c["dtype"].startswith(("int", "float"))]
        flags = {c["name"]: {"True": True, "False": False} for c in columns if c["dtype"] == "bool"}
        flags |= {c["name"]: {"True": True, "False": False, "NaN": None} for c in columns if "holds" in c}
        table = pd.read_csv(path, keep_default_na=False,
                            na_values={c["name"]: ["NaN"] for c in columns if c["name"] not in flags},
                            converters={name: values.__getitem__ for name, values in flags.items()},
                            dtype={c["name"]: str for c in columns if c["name"] not in [*numeric, *flags]})
    else:
        document = json.loads(path.read_text())
        columns = document["columns"]
        table = pd.DataFrame(document["rows"], columns=[c["name"] for c in columns])
    return table.astype({c["name"]: pd.CategoricalDtype(c["categories"]) if "categories" in c else c["dtype"]
                         for c in columns})


def chart_downloads(chapter: str, tables: dict[str, pd.DataFrame], folder: Path) -> str:
    """Write the tables behind a chapter's charts as CSV and JSON into ``data/`` under ``folder`` (beside the
    executed notebook: :meth:`phase2.book.context.Chapter.downloads`) and return the HTML links a chapter ends with;
    the book build copies the files beside the chapter's page."""
    links = []
    for name, table in tables.items():
        stem = f"{chapter}-{name}"
        for fmt in EXPORT_FORMATS:
            write_export(table.reset_index(drop=True), folder / DOWNLOADS_URL / f"{stem}.{fmt}")
        links.append(f"{name} ({len(table):,} rows): " + " · ".join(
            f'<a href="{DOWNLOADS_URL}/{stem}.{fmt}" download>{fmt.upper()}</a>' for fmt in EXPORT_FORMATS))
    return "<p><b>Download the tables behind this chapter's charts</b>: " + "; ".join(links) + ".</p>"


DOWNLOADS_URL = "data"
"""Where a chapter writes its downloads, relative to its executed notebook and to its page in the HTML."""


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_commit() -> str:
    """The commit the code runs at, ``+dirty`` where a tracked file outside :data:`COMMITTED_RESULTS` differs from
    it: a batch writes each finished task there as it lands, which says nothing of the code that measures the next."""
    try:
        out = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no",
                                "--", ".", f":(exclude){COMMITTED_RESULTS}"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (out.stdout.strip() + ("+dirty" if dirty else "")) if out.returncode == 0 else "unknown"


def cpu_name() -> str:
    """The CPU's model name, with its family and model numbers: a virtual machine may show only ``AMD EPYC``, and
    the numbers tell Zen 4 (family 25) from Zen 5 (family 26), whose AVX-512 units differ in width (the Hamming
    scan ran 2x faster on one than on the other here, at the same flags)."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().split("\n\n")[0].splitlines()
                      if ":" in line)
    except OSError:
        fields = {}
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    name = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields and "model" in fields:
        return f"{name}, family {fields['cpu family']} model {fields['model']}"
    return name


def machine() -> dict:
    """The machine a result was computed on: CPU model, the SIMD features that change speed (and, for faiss,
    results) with the levels this project's Hamming scan and faiss run at, the cores this process may use, memory,
    and the disk under the results directory."""
    memory = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = int(line.split()[1]) / 2**20
    except OSError:
        pass
    flags = cpu_flags()
    simd = [f for f in ("avx2", "avx512f", "avx512_vpopcntdq", "avx512_vnni") if f in flags]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import faiss  # numba and faiss: imported when a result is written, not with this module

    from phase2 import OPENMP_SPIN
    from phase2.kernels import RESCORE_LEVEL, SIMD_LEVEL

    return {"cpu": cpu_name(), "simd": simd, "scan_simd": SIMD_LEVEL, "rescore_simd": RESCORE_LEVEL,
            "faiss_simd": faiss.SIMDConfig.get_level_name(),
            "blas": blas_kernels(), "cores": cores, "memory_gib": round(memory, 1), "disk": _disk(),
            "openmp_spin": OPENMP_SPIN}


def blas_kernels() -> str:
    """The kernels each OpenBLAS loaded in this process runs (``faiss_cpu Haswell, numpy Haswell``): the last bits of
    every float result and the speed of every float search follow them (:func:`phase2.blas_core`)."""
    from threadpoolctl import threadpool_info

    names = []
    for library in threadpool_info():
        if library.get("internal_api") == "openblas":
            owner = Path(library.get("filepath", "")).parent.name.removesuffix(".libs")  # numpy.libs, faiss_cpu.libs
            names.append(f"{owner} {library.get('architecture') or 'unknown'}")
    return ", ".join(sorted(names))  # empty where no OpenBLAS is loaded


def _disk() -> str:
    """``ssd`` or ``rotational``, and the size of the file system that holds the results directory."""
    folder = results_dir()
    while not folder.exists():
        folder = folder.parent
    device = os.stat(folder).st_dev
    kind = "unknown"
    try:
        block = Path(f"/sys/dev/block/{os.major(device)}:{os.minor(device)}").resolve()
        for queue in (block / "queue", block.parent / "queue"):
            if (queue / "rotational").is_file():
                kind = "rotational" if (queue / "rotational").read_text().strip() == "1" else "ssd"
                break
    except OSError:
        pass
    return f"{kind}, {shutil.disk_usage(folder).total / 2**30:.0f} GiB"


def _threads() -> int:
    import numba

    return numba.get_num_threads()
