"""Loading collections from the search path, and one clear error per kind of malformed input."""

import json

import pytest

from phase2.data import datasets
from phase2.errors import DatasetError

from conftest import CORPUS, QRELS, QUERIES, require_dataset, write_collection


@pytest.mark.parametrize(("name", "docs", "queries", "pairs"), [
    ("cranfield", 1400, 225, 1612), ("scifact", 5183, 300, 339), ("nfcorpus", 3395, 323, 12334),
    ("squad-dev", 2067, 10570, 10570), ("npl", 11426, 93, 2083)])
def test_shared_collections_match_their_readme(name, docs, queries, pairs):
    require_dataset(name)
    c = datasets.load_dataset(name)
    assert (c.n_docs, c.n_queries, c.n_judgements) == (docs, queries, pairs)
    assert set(c.qrels) == set(c.query_ids)


def test_cranfield_keeps_its_two_empty_documents():
    require_dataset("cranfield")
    assert datasets.load_dataset("cranfield").empty_doc_ids == ["471", "995"]


def test_tiny_collection_reads_titles_and_keeps_only_judged_queries(tiny_collection):
    c = datasets.load_beir_dir(tiny_collection)
    assert c.doc_texts == ["Wing lift on a wing", "boundary layer flow", "Heat heat transfer at high speed"]
    assert c.query_ids == ["q1", "q2"]
    assert c.qrels == {"q1": {"d1": 2, "d2": 0}, "q2": {"d3": 1}}


def test_fingerprint_changes_with_file_content(tmp_path):
    a = datasets.load_beir_dir(write_collection(tmp_path / "a"))
    b = datasets.load_beir_dir(write_collection(tmp_path / "b", corpus=CORPUS[:2] + [{**CORPUS[2], "text": "x"}]))
    assert a.fingerprint != b.fingerprint


def test_data_dir_setting_comes_first_on_the_search_path(tmp_path, monkeypatch):
    write_collection(tmp_path, name="cranfield", corpus=CORPUS)
    monkeypatch.setenv("PHASE2_DATA_DIR", str(tmp_path))
    assert datasets.find_dataset("cranfield") == tmp_path / "cranfield"
    assert datasets.load_dataset("cranfield").n_docs == 3
    assert "cranfield" in datasets.available_datasets()


def test_missing_dataset_names_every_place_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("PHASE2_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DatasetError) as err:
        datasets.load_dataset("nosuchset")
    msg = str(err.value)
    assert "nosuchset" in msg and str(tmp_path / "nosuchset") in msg and "hub" in msg and "PHASE2_DATA_DIR" in msg


def test_hub_collection_is_materialized_in_beir_layout(tmp_path, monkeypatch):
    """The hub path (online only) is exercised with a stand-in for datasets.load_dataset."""
    import datasets as hf

    tables = {("BeIR/scifact", "corpus"): [{"_id": "d1", "title": "T", "text": "body"}],
              ("BeIR/scifact", "queries"): [{"_id": "q1", "text": "question"}],
              ("BeIR/scifact-qrels", None): [{"query-id": "q1", "corpus-id": "d1", "score": 1}]}
    monkeypatch.setattr(hf, "load_dataset", lambda repo, config=None, split=None: tables[(repo, config)])
    monkeypatch.setattr(datasets, "PROJECT_ROOT", tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(datasets, "search_path", lambda: [tmp_path / "data"])
    c = datasets.load_dataset("scifact")
    assert c.path == tmp_path / "data" / "scifact" and c.doc_texts == ["T body"] and c.qrels == {"q1": {"d1": 1}}


BAD_INPUTS = {
    "invalid JSON line": (dict(corpus=[CORPUS[0], '{"_id": "d2", "text": '] ), "corpus.jsonl:2: invalid JSON"),
    "not UTF-8": (dict(corpus=[CORPUS[0], b'{"_id": "d2", "text": "\xff\xfe"}']), "corpus.jsonl:2: not valid UTF-8"),
    "duplicate doc id": (dict(corpus=[CORPUS[0], CORPUS[1], CORPUS[0]]),
                         "corpus.jsonl:3: duplicate _id 'd1' (first at line 1)"),
    "missing _id": (dict(corpus=[{"text": "x"}]), "corpus.jsonl:1: missing or empty '_id'"),
    "text not a string": (dict(corpus=[{"_id": "d1", "text": 3}]), "corpus.jsonl:1: field 'text' is a int"),
    "record not an object": (dict(corpus=["[1, 2]"]), "corpus.jsonl:1: expected a JSON object"),
    "empty corpus": (dict(corpus=[]), "the corpus is empty"),
    "duplicate query id": (dict(queries=[QUERIES[0], QUERIES[0]]), "queries.jsonl:2: duplicate _id 'q1'"),
    "qrels header": (dict(qrels=["q\td\ts", "q1\td1\t1"]), "test.tsv:1: expected header"),
    "qrels columns": (dict(qrels=[QRELS[0], "q1\td1"]), "test.tsv:2: expected 3 tab-separated columns"),
    "qrels score": (dict(qrels=[QRELS[0], "q1\td1\thigh"]), "test.tsv:2: score 'high' is not an integer"),
    "qrels unknown query": (dict(qrels=[QRELS[0], "q9\td1\t1"]), "test.tsv:2: query id 'q9' is not in queries.jsonl"),
    "qrels unknown doc": (dict(qrels=[QRELS[0], "q1\td9\t1"]), "test.tsv:2: corpus id 'd9' is not in corpus.jsonl"),
    "qrels pair twice": (dict(qrels=[QRELS[0], "q1\td1\t1", "q1\td1\t2"]),
                         "test.tsv:3: pair ('q1', 'd1') judged twice"),
    "no judged queries": (dict(qrels=[QRELS[0]]), "no judged queries"),
    "empty judged query": (dict(queries=[{"_id": "q1", "text": "  "}, QUERIES[1]]),
                           "queries.jsonl:1: judged query 'q1' has empty text"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_malformed_collection_error_names_file_and_line(tmp_path, case):
    parts, expected = BAD_INPUTS[case]
    path = write_collection(tmp_path, **parts)
    with pytest.raises(DatasetError) as err:
        datasets.load_beir_dir(path)
    assert expected in str(err.value)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("missing", ["corpus.jsonl", "queries.jsonl", "qrels/test.tsv"])
def test_missing_file_is_named(tiny_collection, missing):
    (tiny_collection / missing).unlink()
    with pytest.raises(DatasetError, match=f"{missing}: file missing"):
        datasets.load_beir_dir(tiny_collection)


def test_numeric_ids_are_read_as_strings(tmp_path):
    corpus = [{"_id": 1, "text": "a"}, {"_id": 2, "text": "b"}]
    path = write_collection(tmp_path, corpus=corpus, queries=[{"_id": 7, "text": "q"}],
                            qrels=[QRELS[0], "7\t2\t1"])
    c = datasets.load_beir_dir(path)
    assert c.doc_ids == ["1", "2"] and c.qrels == {"7": {"2": 1}}
    assert json.loads((path / "corpus.jsonl").read_text().splitlines()[0])["_id"] == 1
