"""Read-only embedding stores: embeddings computed once, published, and verified on every use.

A model too slow to embed on this project's 2-core machines (all-mpnet-base-v2: about 4.5 hours for
the five collections) is embedded once elsewhere and published in this layout::

    <store>/<model>/<collection>/docs.npy           float32 [n_docs, dim], unit norm, in the loader's order
    <store>/<model>/<collection>/docs.ids.json      the document ids in that order
    <store>/<model>/<collection>/queries.npy        float32 [n_judged_queries, dim]
    <store>/<model>/<collection>/queries.ids.json
    <store>/<model>/<collection>/manifest.json      model, hub id, dim, max_seq_length, normalize, text rule,
                                                    library versions; per part n, sha256, ids_sha256

``sha256`` is taken over the array's raw float32 bytes in C order (not over the ``.npy`` file),
``ids_sha256`` over ``json.dumps(ids)``. Stores are looked up in ``$PHASE2_EMBEDDING_STORES``
(``:``-separated), then in ``shared/embeddings`` beside the project, before the cache and the encoder.

Verification on use (:func:`load_verified`): the ids must equal the loaded collection's, the array's
sha256 the manifest's, and :data:`SAMPLE` seeded texts per part, re-encoded with the installed model,
must each reach cosine :data:`MIN_COSINE` with the stored vector. A store that fails any check raises
:class:`~phase2.errors.EmbeddingStoreError` and is never used. A passed re-encoding check is remembered
in the cache (keyed by the array's hash, the weights and the library versions), so later chapters
repeat the cheap checks but not the encoding.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from phase2 import PROJECT_ROOT
from phase2.errors import EmbeddingStoreError
from phase2.storage import array_digest, atomic_write_bytes, cache_dir

SAMPLE = 16  # texts re-encoded per part
MIN_COSINE = 0.9999
TEXT_RULE = "(title + ' ' + text).strip() for documents; query text as is"
HASH_RULE = "sha256 of the array's raw float32 bytes in C order (not of the .npy file); ids_sha256 of json.dumps(ids)"
PARTS = ("docs", "queries")


def store_roots() -> list[Path]:
    """Where stores are looked up, in order: ``$PHASE2_EMBEDDING_STORES``, then ``shared/embeddings``."""
    listed = [Path(p) for p in os.environ.get("PHASE2_EMBEDDING_STORES", "").split(":") if p]
    return [*listed, PROJECT_ROOT.parent / "shared" / "embeddings"]


def locate(model: str, collection: str) -> Path | None:
    """The first store directory that holds ``<model>/<collection>``, or None."""
    for root in store_roots():
        if (root / model / collection).is_dir():
            return root / model / collection
    return None


def array_sha256(array: np.ndarray) -> str:
    return array_digest(np.asarray(array, dtype=np.float32))


def ids_sha256(ids: list[str]) -> str:
    return hashlib.sha256(json.dumps(ids).encode()).hexdigest()


def read_manifest(directory: Path) -> dict:
    path = directory / "manifest.json"
    if not path.is_file():
        raise EmbeddingStoreError(f"embedding store {directory}: manifest.json is missing; the store is refused")
    try:
        manifest = json.loads(path.read_text())
        for part in PARTS:
            manifest["parts"][part]["sha256"]
    except (ValueError, KeyError, TypeError) as exc:
        raise EmbeddingStoreError(f"embedding store {path}: not a valid manifest ({exc!r}); the store is "
                                  "refused") from None
    return manifest


def part_sha256(model: str, collection: str, part: str) -> str | None:
    """The manifest's sha256 of a stored part, if a store holds it (what search caches key on); None if none does."""
    directory = locate(model, collection)
    return None if directory is None else read_manifest(directory)["parts"][part]["sha256"]


def _first_difference(stored: list[str], loaded: list[str]) -> str:
    for i, (a, b) in enumerate(zip(stored, loaded, strict=False)):
        if a != b:
            return f"position {i}: store has {a!r}, the collection {b!r}"
    return f"the store has {len(stored)} ids, the collection {len(loaded)}"


def load_verified(directory: Path, spec, ids: list[str], texts: list[str], part: str,
                  encode: Callable[[list[str]], np.ndarray], weights: str) -> tuple[np.ndarray, dict]:
    """The stored vectors of ``part`` after every check, and the check's record; EmbeddingStoreError if one fails.

    ``ids`` and ``texts`` are the loaded collection's, in its order; ``encode`` embeds texts with the installed
    model; ``weights`` identifies those weights (part of the remembered check's key).
    """
    manifest = read_manifest(directory)
    where = f"embedding store {directory} ({part})"
    if manifest.get("model") != spec.name or int(manifest.get("dim", -1)) != spec.dim:
        raise EmbeddingStoreError(f"{where}: made for model {manifest.get('model')!r} with dim {manifest.get('dim')}, "
                                  f"not {spec.name!r} with dim {spec.dim}; the store is refused")
    try:
        stored_ids = json.loads((directory / f"{part}.ids.json").read_text())
        vectors = np.load(directory / f"{part}.npy", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise EmbeddingStoreError(f"{where}: cannot read {part}.npy / {part}.ids.json ({exc}); the store is "
                                  "refused") from None
    if stored_ids != ids:
        raise EmbeddingStoreError(f"{where}: ids differ from the loaded collection's at "
                                  f"{_first_difference(stored_ids, ids)}; the store is refused")
    if vectors.dtype != np.float32 or vectors.shape != (len(ids), spec.dim):
        raise EmbeddingStoreError(f"{where}: expected float32 [{len(ids)}, {spec.dim}], got {vectors.dtype} "
                                  f"{list(vectors.shape)}; the store is refused")
    digest = array_sha256(vectors)
    expected = manifest["parts"][part]["sha256"]
    if digest != expected:
        raise EmbeddingStoreError(f"{where}: the array's sha256 is {digest[:16]}..., the manifest says "
                                  f"{expected[:16]}...: the array was altered; the store is refused")
    record = {"store": str(directory), "part": part, "sha256": digest, "ids": "equal", "sample": 0,
              "min_cosine": None, "re-encoded": "earlier run"}
    remembered = cache_dir() / "stores" / f"{hashlib.sha256(f'{digest}:{weights}'.encode()).hexdigest()[:20]}.json"
    if remembered.is_file():
        return vectors, {**record, **json.loads(remembered.read_text()), "re-encoded": "earlier run"}
    rows = np.sort(np.random.default_rng(0).choice(len(ids), size=min(SAMPLE, len(ids)), replace=False))
    fresh = np.asarray(encode([texts[i] for i in rows]), dtype=np.float64)
    cosine = np.sum(fresh * vectors[rows], axis=1) / (np.linalg.norm(fresh, axis=1)
                                                       * np.linalg.norm(vectors[rows], axis=1))
    if cosine.min() < MIN_COSINE:
        worst = int(np.argmin(cosine))
        raise EmbeddingStoreError(f"{where}: re-encoding {ids[rows[worst]]!r} with the installed model gives cosine "
                                  f"{cosine[worst]:.6f} with the stored vector (at least {MIN_COSINE} needed): other "
                                  "weights, settings or text rule made it; the store is refused")
    checked = {"sample": len(rows), "min_cosine": round(float(cosine.min()), 6)}
    atomic_write_bytes(remembered, json.dumps(checked).encode())
    return vectors, {**record, **checked, "re-encoded": "now"}


def write_store(to: Path, spec, collection, vectors: dict[str, np.ndarray], versions: dict[str, str]) -> Path:
    """Write ``<to>/<model>/<collection>/`` for both parts (each file atomic; the manifest last). Writing the
    same vectors again leaves the same bytes, so an export can be repeated or resumed."""
    directory = Path(to) / spec.name / collection.name
    ids = {"docs": list(collection.doc_ids), "queries": list(collection.query_ids)}
    parts = {}
    for part in PARTS:
        array = np.ascontiguousarray(vectors[part], dtype=np.float32)
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        atomic_write_bytes(directory / f"{part}.npy", buffer.getvalue())
        atomic_write_bytes(directory / f"{part}.ids.json", json.dumps(ids[part]).encode())
        parts[part] = {"n": len(array), "sha256": array_sha256(array), "ids_sha256": ids_sha256(ids[part])}
    manifest = {"model": spec.name, "hub_id": spec.hub_id, "dim": spec.dim, "max_seq_length": spec.max_seq_length,
                "normalize": True, "text_rule": TEXT_RULE, "collection": collection.name,
                "collection_fingerprint": collection.fingerprint, "dtype": "float32", "versions": versions,
                "hash_rule": HASH_RULE, "parts": parts}
    atomic_write_bytes(directory / "manifest.json", (json.dumps(manifest, indent=1) + "\n").encode())
    return directory
