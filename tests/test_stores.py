"""Published embedding stores: export, look-up before the cache, verification on use, refusal."""

from __future__ import annotations

import json

import numpy as np
import pytest

from phase2.__main__ import main
from phase2.data import embedding_stores, embeddings
from phase2.data.datasets import load_beir_dir, load_dataset
from phase2.errors import EmbeddingStoreError
from phase2.experiments import params, searches

from conftest import require_dataset, require_model_weights, under_ci


def files_under(path):
    return {p.relative_to(path): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture
def published(tiny_collection, tmp_path, monkeypatch):
    """A store of the tiny collection with MiniLM-L6, exported by the CLI; then a new, empty cache."""
    monkeypatch.setenv("PHASE2_DATA_DIR", str(tiny_collection.parent))
    monkeypatch.setenv("PHASE2_CACHE_DIR", str(tmp_path / "export-cache"))
    assert main(["embeddings", "export", "--model", "minilm-l6", "--dataset", "tiny", "--to", str(tmp_path / "s")]) == 0
    collection = load_beir_dir(tiny_collection)
    expected = {part: embeddings.embed(collection, "minilm-l6", part, progress=False)
                for part in embedding_stores.PARTS}
    monkeypatch.setenv("PHASE2_EMBEDDING_STORES", str(tmp_path / "s"))
    monkeypatch.setenv("PHASE2_CACHE_DIR", str(tmp_path / "cache"))
    return collection, tmp_path / "s" / "minilm-l6" / "tiny", expected


def test_a_store_round_trips_through_export_and_lookup(published, tmp_path, monkeypatch):
    collection, directory, expected = published
    assert sorted(p.name for p in directory.iterdir()) == ["docs.ids.json", "docs.npy", "manifest.json",
                                                          "queries.ids.json", "queries.npy"]
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["parts"]["docs"]["sha256"] == embedding_stores.array_sha256(expected["docs"])
    assert manifest["parts"]["queries"]["ids_sha256"] == embedding_stores.ids_sha256(collection.query_ids)
    assert (manifest["model"], manifest["dim"], manifest["max_seq_length"]) == ("minilm-l6", 384, 256)

    def no_encoding_beyond_the_sample(*args):
        raise AssertionError("the store was not used")

    monkeypatch.setattr(embeddings, "save_array", no_encoding_beyond_the_sample)  # nothing goes to the cache
    for part in embedding_stores.PARTS:
        embedded = embeddings.embed_record(collection, "minilm-l6", part, progress=False)
        np.testing.assert_array_equal(embedded.vectors, expected[part])
        assert embedded.key == embeddings.vectors_key(embeddings.get_model_spec("minilm-l6"), collection, part)
        record = embedded.provenance
        assert record["source"] == "store" and record["re-encoded"] == "now" and record["min_cosine"] >= 0.9999
        assert record["sample"] == len(expected[part])  # a tiny collection: every text re-encoded
    monkeypatch.setattr(embeddings, "_load_encoder", no_encoding_beyond_the_sample)
    again = embeddings.embed_record(collection, "minilm-l6", "docs", progress=False)  # the passed check is remembered
    assert again.provenance["re-encoded"] == "earlier run"
    assert not (tmp_path / "cache" / "embeddings").exists()
    before = files_under(directory)
    assert main(["embeddings", "export", "--model", "minilm-l6", "--dataset", "tiny", "--to", str(tmp_path / "s")]) == 0
    assert files_under(directory) == before  # exporting again changes nothing


def rewrite_manifest_hash(directory, part, array):
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["parts"][part]["sha256"] = embedding_stores.array_sha256(array)
    (directory / "manifest.json").write_text(json.dumps(manifest))


def swap_first_ids(directory):
    ids = json.loads((directory / "docs.ids.json").read_text())
    (directory / "docs.ids.json").write_text(json.dumps([ids[1], ids[0], *ids[2:]]))


def alter_one_value(directory):
    array = np.load(directory / "docs.npy")
    array[0, 0] += 0.01
    np.save(directory / "docs.npy", array)


def perturb_with_matching_manifest(directory):
    array = np.load(directory / "docs.npy")
    array[1] = array[1] + 0.1 * array[2]  # a near miss: cosine about 0.99, as other settings would give
    array[1] /= np.linalg.norm(array[1])
    np.save(directory / "docs.npy", array)
    rewrite_manifest_hash(directory, "docs", array)


@pytest.mark.parametrize(("damage", "message"), [
    (swap_first_ids, r"ids differ from the loaded collection's at position 0: store has 'd2', the collection 'd1'"),
    (alter_one_value, r"the array's sha256 is [0-9a-f]{16}\.\.\., the manifest says [0-9a-f]{16}\.\.\.: the array "
                      r"was altered"),
    (perturb_with_matching_manifest, r"re-encoding 'd2' with the installed model gives cosine 0\.9\d+ with the stored "
                                     r"vector \(at least 0\.9999 needed\)"),
    (lambda d: (d / "manifest.json").unlink(), r"manifest\.json is missing"),
])
def test_a_store_that_fails_a_check_is_refused_by_name_and_leaves_the_cache_untouched(published, tmp_path, damage,
                                                                                         message):
    collection, directory, _ = published
    embeddings.embed(collection, "minilm-l6", "queries", progress=False)  # the cache holds a remembered check
    damage(directory)
    cache = files_under(tmp_path / "cache")
    with pytest.raises(EmbeddingStoreError, match=message) as refused:
        embeddings.embed(collection, "minilm-l6", "docs", progress=False)
    assert str(directory) in str(refused.value) and "the store is refused" in str(refused.value)
    assert files_under(tmp_path / "cache") == cache


def test_searches_are_keyed_by_the_stored_vectors(published, tmp_path, monkeypatch):
    collection, directory, _ = published
    spec = embeddings.get_model_spec("minilm-l6")
    from_store = embeddings.vectors_key(spec, collection, "docs")
    assert from_store == "store-" + json.loads((directory / "manifest.json").read_text())["parts"]["docs"]["sha256"]
    monkeypatch.setenv("PHASE2_EMBEDDING_STORES", str(tmp_path / "elsewhere"))
    assert embeddings.vectors_key(spec, collection, "docs") == embeddings.embedding_key(spec, collection, "docs")


def test_stored_models_run_only_where_a_store_holds_them(published, tmp_path):
    pairs, line = params.collection_model_pairs(["tiny", "other"], ["minilm-l3"], ["minilm-l6"])
    assert pairs == [("tiny", "minilm-l3"), ("tiny", "minilm-l6"), ("other", "minilm-l3")]
    assert line.startswith(f"No embedding store holds minilm-l6 for other (looked in {tmp_path / 's'}, ")
    assert params.collection_model_pairs(["tiny"], ["minilm-l6"], ["minilm-l6"]) == ([("tiny", "minilm-l6")], "")


def test_smoke_collection_exported_and_read_back_gives_the_same_quality_rows(tmp_path, monkeypatch):
    """cranfield with MiniLM-L6 through a store: the same vectors, so the same per-query metrics, and the run
    records the verified store in its ``embeddings`` column."""
    require_dataset("cranfield")
    c = load_dataset("cranfield")
    direct = searches.run_collection("cranfield", "minilm-l6", ["BIN"], 100, {}, progress=False)
    assert main(["embeddings", "export", "--model", "minilm-l6", "--dataset", "cranfield", "--to",
                 str(tmp_path / "s")]) == 0
    monkeypatch.setenv("PHASE2_EMBEDDING_STORES", str(tmp_path / "s"))
    monkeypatch.setenv("PHASE2_CACHE_DIR", str(tmp_path / "cache"))
    for part in embedding_stores.PARTS:
        np.testing.assert_array_equal(embeddings.embed(c, "minilm-l6", part, progress=False),
                                      np.load(tmp_path / "s" / "minilm-l6" / "cranfield" / f"{part}.npy"))
    stored = searches.run_collection("cranfield", "minilm-l6", ["BIN"], 100, {}, progress=False)
    assert direct.drop(columns="embeddings").equals(stored.drop(columns="embeddings"))
    source = json.loads(stored.embeddings.iloc[0])
    assert source["docs"]["source"] == "store" and source["docs"]["min_cosine"] >= 0.9999
    assert source["docs"]["store"] == str(tmp_path / "s" / "minilm-l6" / "cranfield")  # the exported store, first
    # the direct run read the shared store where this machine has one (../shared/embeddings), else its own vectors
    assert json.loads(direct.embeddings.iloc[0])["docs"]["source"] in ("store", "cache", "encoded")


@pytest.mark.models
def test_the_published_mpnet_store_verifies():
    """The store in ../shared/embeddings, when this machine has it: every check passes on cranfield."""
    spec = embeddings.get_model_spec("mpnet-base")
    directory = embedding_stores.locate("mpnet-base", "cranfield")
    if directory is None:
        if under_ci():
            pytest.fail("CI has ../shared/embeddings, which should hold mpnet-base for cranfield", pytrace=False)
        pytest.skip("no published mpnet-base store for cranfield on the store path")
    require_model_weights(spec)
    embedded = embeddings.embed_record(load_dataset("cranfield"), "mpnet-base", "docs", progress=False)
    vectors, record = embedded.vectors, embedded.provenance
    assert vectors.shape == (1400, 768) and record["source"] == "store" and record["min_cosine"] >= 0.9999
