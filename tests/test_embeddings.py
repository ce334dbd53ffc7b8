"""Embeddings: real model, unit norm, a cache keyed by everything that changes the vectors."""

import numpy as np
import pytest

from phase2 import embeddings
from phase2.datasets import load_beir_dir
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
    with pytest.raises(ParameterError, match="unknown model 'gpt'; valid models: minilm-l6"):
        embeddings.get_model_spec("gpt")


def test_bad_part_is_rejected(tiny_collection):
    with pytest.raises(ValueError, match="part must be 'docs' or 'queries'"):
        embeddings.embed(load_beir_dir(tiny_collection), "minilm-l6", "titles")
