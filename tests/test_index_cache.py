"""Built indexes kept on disk: a restored build answers exactly as the fresh one, and a damaged entry is rebuilt."""

import warnings

import numpy as np
import pytest
from test_bench import D, unit_rows

from phase2.search import index_cache
from phase2.search.methods import FaissTrainingWarning
from phase2.search.registry import REGISTRY


@pytest.fixture
def cache(monkeypatch, tmp_path):
    monkeypatch.setenv("PHASE2_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(index_cache, "MIN_BUILD_S", 0.0)  # keep every build, however quick
    return tmp_path


def built(name: str, corpus: np.ndarray):
    (method,) = REGISTRY[name].build(len(corpus), corpus.shape[1])[:1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FaissTrainingWarning)
        return method, index_cache.fit(method, corpus, index_cache.corpus_digest(corpus))


@pytest.mark.parametrize("name", ["ivf-pq", "hnsw-sq8", "ivf-rabitq", "bin-ivf", "bin-hnsw",
                                  "ivf-pq-rescore-int8", "bin-ivf-rescore-int8", "ivf-pq-refine"])
def test_a_restored_build_answers_exactly_as_the_fresh_one(cache, name):
    corpus, queries = unit_rows(600, D, 1), unit_rows(25, D, 2)
    fresh, (build_s, reused) = built(name, corpus)
    assert not reused and fresh.state() is not None
    again, (recorded_s, reused) = built(name, corpus)
    assert reused and recorded_s == pytest.approx(build_s)  # the time measured when it was built
    arguments = REGISTRY[name].grid(len(corpus))[-1]
    for method in (fresh, again):
        method.set_query_arguments(**arguments)
    np.testing.assert_array_equal(fresh.query(queries, 10), again.query(queries, 10))
    assert again.index_bytes() == fresh.index_bytes() and again.code_bytes == fresh.code_bytes


def test_other_data_or_a_damaged_entry_builds_afresh(cache):
    corpus = unit_rows(600, D, 1)
    built("ivf-pq", corpus)
    other = corpus.copy()
    other[0, 0] += 1e-6
    assert index_cache.corpus_digest(other) != index_cache.corpus_digest(corpus)
    assert not built("ivf-pq", other)[1][1]
    (blob,) = [p for p in (cache / "indexes").glob("*.bin")
               if p.name.startswith(index_cache.corpus_digest(corpus))]
    blob.write_bytes(b"not an index")
    method, (_, reused) = built("ivf-pq", corpus)
    assert not reused and method.query(unit_rows(3, D, 2), 10).shape == (3, 10)
    assert built("ivf-pq", corpus)[1][1]  # the damaged entry was replaced


def test_quick_builds_and_methods_without_state_are_not_kept(monkeypatch, tmp_path):
    monkeypatch.setenv("PHASE2_CACHE_DIR", str(tmp_path))
    corpus = unit_rows(600, D, 1)
    assert built("ivf-pq", corpus)[1][1] is False and not (tmp_path / "indexes").exists()  # under MIN_BUILD_S
    monkeypatch.setattr(index_cache, "MIN_BUILD_S", 0.0)
    method, _ = built("bin-flat", corpus)
    assert method.state() is None and not (tmp_path / "indexes").exists()
