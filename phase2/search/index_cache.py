"""Built indexes kept on disk, so building the same index on the same data again reuses it.

A 10^6-vector IVF-PQ trains for minutes and an HNSW graph at that size for longer; a re-run of the throughput
chapter (another query grid, a changed plot) should not pay for them again. A build is found by a key of the
corpus's bytes, the method's name (registry entry and build parameters) and the sources that say how methods
are built (:data:`SOURCES`), so any change to either builds afresh. Only builds slower than
:data:`MIN_BUILD_S` are kept: the rest cost less to redo than to store. A reused build reports the build time
measured when it was made, and says it was reused (the harness's ``build_reused``).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import faiss
import numpy as np

from phase2.search.methods import Method
from phase2.storage import array_digest, atomic_write_bytes, cache_dir, source_digest

MIN_BUILD_S = 10.0
SOURCES = ("search/methods.py", "search/registry.py")
_BUILD_CODE = f"{source_digest(SOURCES)[:12]}-faiss{faiss.__version__}"


def corpus_digest(corpus: np.ndarray) -> str:
    """A key of the corpus's shape, type and bytes (about a second per GB)."""
    return f"{'x'.join(map(str, corpus.shape))}{corpus.dtype}-{array_digest(corpus)[:32]}"


def index_path(method: Method, digest: str) -> Path:
    """Where ``method``'s build on the corpus with ``digest`` is kept; its metadata sits beside it (``.json``)."""
    name = hashlib.sha256(f"{type(method).__name__}:{method.name}".encode()).hexdigest()[:16]
    return cache_dir() / "indexes" / f"{digest}-{name}-{_BUILD_CODE}.bin"


def fit(method: Method, corpus: np.ndarray, digest: str) -> tuple[float, bool]:
    """Build ``method`` on ``corpus``, or restore it from the cache; returns (build seconds, reused). An
    unreadable cache entry is removed and the index built again."""
    path = index_path(method, digest)
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file():
        try:
            recorded = json.loads(meta.read_text())
            method.restore(np.fromfile(path, np.uint8), corpus)
            return float(recorded["build_s"]), True
        except (OSError, RuntimeError, ValueError, KeyError):
            path.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
    start = time.perf_counter()
    method.fit(corpus)
    build_s = time.perf_counter() - start
    if build_s >= MIN_BUILD_S and (state := method.state()) is not None:
        atomic_write_bytes(path, state.tobytes())
        atomic_write_bytes(meta, json.dumps({"method": method.name, "n_vectors": len(corpus), "build_s": build_s,
                                             "built_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
                                            indent=1).encode())
    return build_s, False
