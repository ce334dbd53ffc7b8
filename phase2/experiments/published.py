"""Published results: the per-query rows of every search a profile's chapters make, kept as data with their
provenance, so that the book is rendered from them instead of recomputing them, and anyone can recompute them.

One file per search, as ann-benchmarks keeps one result file per run::

    <published_dir(profile)>/searches/<dataset>/<model>/<codec>__<training>.parquet

Columns: ``query_id`` (the judged queries in qrels order), then one float64 column per metric of
:data:`EVALUATED` (what :func:`evaluate` computes from the search's ranked ids and scores). The parquet
key-value metadata ``phase2`` holds the provenance as JSON: ``identity`` (what was searched: the collection and
its files' fingerprint, the model and the identities of its document and query vectors, the codec, where it was
fitted, the depth) and its ``key``, ``sizes`` (code, rescore and fixed bytes), ``behaviour`` (the
:func:`behaviour_of` the code that computed it), ``source`` (the digest of its source files), ``commit``,
``profile``, ``seconds`` (wall time of the search, or 0 when it came from the cache), ``machine`` and ``date``.

A search is *current* when its file exists with the identity the plan asks for and the same behaviour digest as
the code here; *other code* when the identity matches but the behaviour differs; *other inputs* when a file
exists for another identity; *missing* otherwise. Caches of ids and scores stay untracked (``data/cache``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from phase2 import PROJECT_ROOT
from phase2.data.datasets import Collection
from phase2.errors import ParameterError
from phase2.evaluation import metrics
from phase2.experiments.results import COMMITTED_RESULTS, git_commit, machine
from phase2.storage import atomic_write_bytes, cache_dir, source_digest

PUBLISHED_PROFILES = ("default",)
"""Profiles whose results are committed (``results/<profile>/``); the others write under ``_build/published/``."""
EVALUATED = tuple(metrics.REGISTRY)
"""The per-query columns of a published search, in order (:data:`phase2.evaluation.metrics.REGISTRY`)."""
BEHAVIOUR_SOURCES = ("codecs", "kernels", "evaluation/metrics.py", "experiments/published.py")
"""The sources whose outputs a published row depends on; :func:`behaviour_digest` runs them on a fixed input."""
META_KEY = b"phase2"
STATES = ("current", "other code", "other inputs", "missing")
"""What :func:`status_of` says of a planned search."""


def published_dir(profile: str) -> Path:
    """Where a profile's results are published: ``$PHASE2_PUBLISHED_DIR`` if set, else :func:`committed_dir` for a
    committed profile and ``_build/published/<profile>`` for the others."""
    if os.environ.get("PHASE2_PUBLISHED_DIR"):
        return Path(os.environ["PHASE2_PUBLISHED_DIR"])
    if profile in PUBLISHED_PROFILES:
        return committed_dir(profile)
    return PROJECT_ROOT / "_build" / "published" / profile


def committed_dir(profile: str) -> Path:
    """The committed results of a profile of :data:`PUBLISHED_PROFILES`: ``results/<profile>`` in the checkout."""
    if profile not in PUBLISHED_PROFILES:
        raise ParameterError(f"profile {profile!r} has no committed results; profiles with committed results: "
                             f"{', '.join(PUBLISHED_PROFILES)}")
    return PROJECT_ROOT / COMMITTED_RESULTS / profile


def read_roots(profile: str) -> tuple[Path, ...]:
    """Where a profile's chapters and precompute look for published searches, first match first: its
    :func:`published_dir`, then the committed results of every published profile (a search's identity does not
    depend on the profile: the smoke profile's searches are the default's on cranfield). ``$PHASE2_PUBLISHED_DIR``
    replaces them all."""
    if os.environ.get("PHASE2_PUBLISHED_DIR"):
        return (published_dir(profile),)
    return tuple(dict.fromkeys([published_dir(profile), *(committed_dir(p) for p in PUBLISHED_PROFILES)]))


def search_path(root: Path, dataset: str, model: str, codec: str, training: str) -> Path:
    """The file of one search under a published root."""
    safe = re.sub(r"[^A-Za-z0-9.+-]", "_", codec)
    return root / "searches" / dataset / model / f"{safe}__{training}.parquet"


def search_identity(collection: Collection, model: str, codec: str, training: str, depth: int,
                    vectors: dict[str, str]) -> dict:
    """What a search computed from: the collection (name and files' fingerprint), the model and the identities of
    its ``docs`` and ``queries`` vectors (:func:`phase2.data.embeddings.vectors_key`), the codec, where it was fitted
    (``none`` for an untrained codec) and the depth."""
    from phase2.codecs import checked_training, make_codec

    return {"dataset": collection.name, "dataset_fingerprint": collection.fingerprint, "model": model,
            "docs": vectors["docs"], "queries": vectors["queries"], "codec": codec,
            "training": checked_training(training) if make_codec(codec).trained else "none", "depth": depth}


def identity_of(collection: Collection, model: str, codec: str, training: str, depth: int) -> dict:
    """:func:`search_identity` with the vectors' identities as the search cache keys them."""
    from phase2.data.embeddings import get_model_spec, vectors_key

    spec = get_model_spec(model)
    return search_identity(collection, model, codec, training, depth,
                           {part: vectors_key(spec, collection, part) for part in ("docs", "queries")})


def identity_key(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]


def write_search(root: Path, identity: dict, rows: pd.DataFrame, sizes: tuple[int, int, int], seconds: float,
                 profile: str) -> Path:
    """Write one search's rows and provenance atomically; returns the path."""
    provenance = {"identity": identity, "key": identity_key(identity),
                  "sizes": {"code_size": sizes[0], "rescore_bytes": sizes[1], "fixed_bytes": sizes[2]},
                  "behaviour": behaviour_of(identity["codec"]), "source": source_digest(BEHAVIOUR_SOURCES)[:16],
                  "commit": git_commit(), "profile": profile, "seconds": round(float(seconds), 3),
                  "machine": machine(), "date": datetime.now(UTC).isoformat(timespec="seconds")}
    table = pa.Table.from_pandas(rows[["query_id", *EVALUATED]], preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           META_KEY: json.dumps(provenance, sort_keys=True).encode()})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", compression_level=9)
    path = search_path(root, identity["dataset"], identity["model"], identity["codec"], identity["training"])
    atomic_write_bytes(path, buffer.getvalue())
    return path


def read_provenance(path: Path) -> dict | None:
    """A published file's provenance, or None when the file is missing or unreadable."""
    try:
        return json.loads(pq.read_schema(path).metadata[META_KEY])
    except (OSError, KeyError, TypeError, ValueError, pa.ArrowException):
        return None


def read_search(path: Path) -> pd.DataFrame:
    """A published search's per-query rows."""
    return pd.read_parquet(path)


def status_of(root: Path, identity: dict) -> tuple[str, dict | None]:
    """``current``, ``other code``, ``other inputs`` or ``missing`` (module docstring), and the file's provenance."""
    found = read_provenance(search_path(root, identity["dataset"], identity["model"], identity["codec"],
                                        identity["training"]))
    if found is None:
        return "missing", None
    if found.get("key") != identity_key(identity):
        return "other inputs", found
    if found.get("behaviour") != behaviour_of(identity["codec"]):
        return "other code", found
    return "current", found


def compare(recomputed: Path, committed: Path) -> pd.DataFrame:
    """Each search published under ``recomputed`` against the same file under ``committed``: ``search`` (its path
    under the root) and ``outcome``: ``identical`` (same inputs, every row bit for bit), ``differs`` (with the
    metrics and number of queries that differ), ``other inputs`` or ``not committed``."""
    rows = []
    for path in sorted((recomputed / "searches").rglob("*.parquet")):
        name = str(path.relative_to(recomputed))
        theirs = committed / name
        found, new = read_provenance(theirs), read_provenance(path)
        if found is None:
            outcome = "not committed"
        elif new is None or found["key"] != new["key"]:
            outcome = "other inputs"
        else:
            mine, old = read_search(path), read_search(theirs)
            if mine.equals(old):
                outcome = "identical"
            elif list(mine.query_id) != list(old.query_id):
                outcome = "differs: other queries"
            else:
                moved = [f"{metric} at {int((mine[metric].to_numpy() != old[metric].to_numpy()).sum())} queries"
                         for metric in EVALUATED if not mine[metric].equals(old[metric])]
                outcome = "differs: " + ", ".join(moved)
        rows.append({"search": name, "outcome": outcome})
    return pd.DataFrame(rows, columns=["search", "outcome"])


def find_current(roots: tuple[Path, ...], identity: dict) -> tuple[Path, dict] | None:
    """The first of ``roots`` where the search ``identity`` is current, with its file's provenance; None if none."""
    for root in roots:
        status, found = status_of(root, identity)
        if status == "current":
            return search_path(root, identity["dataset"], identity["model"], identity["codec"],
                               identity["training"]), found
    return None


BEHAVIOUR_CODECS = ("Flat", "FP16", "BF16", "SQ8", "SQ8u", "SQ8p", "SQ8raw", "SQ4", "SQ4p", "PQ192", "PQ48", "PQ16",
                    "OPQ48,PQ48", "RaBitQ4", "RaBitQ2", "RaBitQ1", "BIN", "BINc", "BINr", "ITQ", "ITQ128", "BINa",
                    "LSH1024", "LSH256", "BIN2t", "BIN4t", "BIN+R4Flat", "BIN+R4SQ8", "BIN+R40BINa", "ITQ+R2Flat",
                    "SQ4+R10SQ8")
"""One codec of every kind the chapters search, run by :func:`behaviour_digest`."""


BEHAVIOUR_EXTENSIONS = {"T<d>,<codec>": ("T192,Flat", "T192,BIN")}
"""Kinds of codec added after :data:`BEHAVIOUR_CODECS` was fixed (keyed by their :data:`phase2.codecs.PATTERNS`
entry), each with codecs of its own that :func:`behaviour_digest` runs: a search of such a kind records the core
digest and its kind's, so adding a kind leaves every published search of the others current."""


def behaviour_digest_path(names: tuple[str, ...] | None = None) -> Path:
    """Where :func:`behaviour_digest` of ``names`` (default :data:`BEHAVIOUR_CODECS`) is cached: under the cache
    directory, named by the sources' digest (and the names, when they are not the core set)."""
    tail = "" if names is None else "-" + hashlib.sha256(json.dumps(names).encode()).hexdigest()[:12]
    return cache_dir() / "behaviour" / f"{source_digest(BEHAVIOUR_SOURCES)[:20]}{tail}.txt"


def behaviour_of(codec: str) -> str:
    """The behaviour digest a search of ``codec`` records and must match to be current: the core
    :func:`behaviour_digest`, followed by its kind's (``+``) when the codec is of a kind of
    :data:`BEHAVIOUR_EXTENSIONS`."""
    from phase2.codecs import PATTERNS

    core = behaviour_digest()
    for kind, names in BEHAVIOUR_EXTENSIONS.items():
        if PATTERNS[kind][0].fullmatch(codec):
            return f"{core}+{behaviour_digest(names)}"
    return core


def check_reproducible_blas() -> None:
    """Refuse to compute what must be the same on every machine with OpenBLAS kernels other than the reproducible
    ones (:func:`phase2.blas_core`): numpy loaded before phase2, or a process of the timing role."""
    from phase2 import blas_core, cpu_flags
    from phase2.experiments.results import blas_kernels

    wanted = blas_core("reproducible", cpu_flags())
    loaded = blas_kernels()
    if wanted is not None and any(not entry.endswith(" " + wanted) for entry in loaded.split(", ") if entry):
        raise RuntimeError(f"OpenBLAS runs other kernels than {wanted} in this process ({loaded}), so its searches "
                           f"would differ in their last bits from every other machine's: import phase2 before numpy, "
                           f"and leave PHASE2_BLAS unset (it is {os.environ.get('PHASE2_BLAS', 'unset')})")


@cache
def behaviour_digest(names: tuple[str, ...] | None = None) -> str:
    """What the search and evaluation code does, as a digest of its outputs on a fixed input: each codec of ``names``
    (default :data:`BEHAVIOUR_CODECS`) fitted on half and on all (:data:`phase2.codecs.TRAINING`) on 1,000 seeded
    384-d vectors with structure (a Gaussian mixture), searched to depth 100 by 64 queries: the codes, the ranked
    ids and every metric of the rankings against seeded judgements. A change of code that moves any of these outputs
    changes it; a refactoring that moves none keeps every published result current (CI also recomputes a slice of
    real searches bit for bit). Computed once per state of :data:`BEHAVIOUR_SOURCES` and cached."""
    path = behaviour_digest_path(names)
    if path.exists():
        return path.read_text().strip()
    check_reproducible_blas()
    from phase2.codecs import fitted_for_search, make_codec

    rng = np.random.default_rng(20261204)
    centres = rng.standard_normal((8, 384))
    docs = centres[rng.integers(0, 8, 1000)] + 0.8 * rng.standard_normal((1000, 384))
    docs = (docs / np.linalg.norm(docs, axis=1, keepdims=True)).astype(np.float32)
    queries = docs[rng.choice(1000, 64, replace=False)] + 0.3 * rng.standard_normal((64, 384)).astype(np.float32)
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    doc_ids, query_ids = [f"d{i}" for i in range(1000)], [f"q{i}" for i in range(64)]
    qrels = {q: {f"d{j}": int(rng.integers(1, 3)) for j in rng.choice(1000, 5, replace=False)} for q in query_ids}
    h = hashlib.sha256()
    for name in BEHAVIOUR_CODECS if names is None else names:
        for training in ("half", "corpus") if make_codec(name).trained else ("half",):  # sample<N> takes the
            # first N rows of the same seeded order as half (phase2.codecs.training_rows)
            codec = fitted_for_search(name, docs, training)
            codes = codec.encode(docs)
            scores, ids = codec.search(codes, queries, 100)
            _, values = metrics.per_query_arrays(ids, doc_ids, query_ids, qrels, scores=scores)
            for array in (codes, ids, *(values[m] for m in sorted(values))):  # not the float scores: their last
                # bits follow the BLAS kernel the CPU selects, and no published value depends on them but for ties
                h.update(np.ascontiguousarray(array).tobytes())
    digest = h.hexdigest()[:16]
    atomic_write_bytes(path, digest.encode())
    return digest
