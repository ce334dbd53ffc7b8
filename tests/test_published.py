"""Published results: one file per search with its provenance, the states a planned search can be in, the behaviour
digest that decides 'other code', and rows equal to what the chapters compute from the same search."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import phase2
from phase2.codecs import SignBinary
from phase2.data.datasets import load_dataset
from phase2.data.embeddings import embed
from phase2.evaluation import metrics
from phase2.experiments import published, results, searches

from conftest import cold_cache, require_dataset


@pytest.fixture
def small_digest(tmp_path, monkeypatch):
    """The behaviour digest over two codecs, in a cache of its own (the full one takes half a minute)."""
    monkeypatch.setenv("PHASE2_CACHE_DIR", str(tmp_path / "digest-cache"))
    monkeypatch.setattr(published, "BEHAVIOUR_CODECS", ("BIN", "SQ8"))
    monkeypatch.setattr(published, "BEHAVIOUR_EXTENSIONS", {"T<d>,<codec>": ("T192,BIN",)})
    published.behaviour_digest.cache_clear()
    yield
    published.behaviour_digest.cache_clear()


def rows_for(collection, model, codec, depth=100):
    docs, queries = (embed(collection, model, part, progress=False) for part in ("docs", "queries"))
    _, ids, scores, sizes = searches.cached_search(collection, model, codec, depth, docs, queries)
    reference = searches.cached_search(collection, model, searches.REFERENCE, depth, docs, queries)[1]
    return metrics.evaluate(collection, ids, scores, reference), sizes


def test_a_published_search_round_trips_with_its_provenance(tmp_path, monkeypatch, small_digest):
    require_dataset("cranfield")
    monkeypatch.setenv("PHASE2_CACHE_DIR", str(cold_cache(tmp_path)))
    collection = load_dataset("cranfield")
    rows, sizes = rows_for(collection, "minilm-l6", "SQ8")
    identity = published.identity_of(collection, "minilm-l6", "SQ8", "half", 100)
    path = published.write_search(tmp_path / "pub", identity, rows, sizes, 1.25, "default")
    assert path == tmp_path / "pub" / "searches" / "cranfield" / "minilm-l6" / "SQ8__half.parquet"
    pd.testing.assert_frame_equal(published.read_search(path), rows, check_exact=True)
    found = published.read_provenance(path)
    assert found["identity"] == identity and found["key"] == published.identity_key(identity)
    assert identity["docs"].startswith("store-") and identity["training"] == "half"  # read from the shared store
    assert found["sizes"] == {"code_size": 384, "rescore_bytes": 0, "fixed_bytes": sizes[2]}
    assert found["seconds"] == 1.25 and found["profile"] == "default" and found["behaviour"]
    assert set(found["machine"]) == {"cpu", "simd", "scan_simd", "rescore_simd", "faiss_simd", "blas", "cores",
                                      "memory_gib", "disk", "openmp_spin"}
    assert found["commit"]
    assert list(rows.columns) == ["query_id", *published.EVALUATED] and len(rows) == collection.n_queries


def test_published_rows_equal_the_chapters_per_query_values(tmp_path, monkeypatch):
    require_dataset("cranfield")
    monkeypatch.setenv("PHASE2_CACHE_DIR", str(cold_cache(tmp_path)))
    collection = load_dataset("cranfield")
    table = searches.run_collection("cranfield", "minilm-l6", ["BIN", "PQ48"], 100, {}, progress=False)
    for codec in ("BIN", "PQ48"):
        rows = rows_for(collection, "minilm-l6", codec)[0].set_index("query_id")
        chapter = table[(table.codec == codec) & (table.query_id != "")]
        for metric in published.EVALUATED:
            values = chapter[chapter.metric == metric].set_index("query_id").value
            np.testing.assert_array_equal(rows.loc[values.index, metric].to_numpy(), values.to_numpy())


def test_a_planned_search_is_missing_current_from_other_inputs_or_from_other_code(tmp_path, monkeypatch,
                                                                                   small_digest):
    root = tmp_path / "pub"
    identity = {"dataset": "toy", "dataset_fingerprint": "f", "model": "m", "docs": "store-a", "queries": "store-b",
                "codec": "BIN", "training": "none", "depth": 100}
    rows = pd.DataFrame({"query_id": ["q1"], **{m: [0.5] for m in published.EVALUATED}})
    assert published.status_of(root, identity) == ("missing", None)
    published.write_search(root, identity, rows, (48, 0, 0), 0.0, "default")
    assert published.status_of(root, identity)[0] == "current"
    assert published.status_of(root, {**identity, "docs": "store-c"})[0] == "other inputs"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(published, "behaviour_digest", lambda: "another")
        assert published.status_of(root, identity)[0] == "other code"
    path = published.search_path(root, "toy", "m", "BIN", "none")
    path.write_bytes(b"not parquet")  # a damaged file is as good as none
    assert published.status_of(root, identity) == ("missing", None)


def test_a_kind_of_codec_added_later_has_a_digest_of_its_own_beside_the_core(tmp_path, small_digest, monkeypatch):
    root = tmp_path / "pub"
    core = {"dataset": "toy", "dataset_fingerprint": "f", "model": "m", "docs": "a", "queries": "b", "codec": "BIN",
            "training": "none", "depth": 100}
    cut = {**core, "codec": "T192,BIN"}
    rows = pd.DataFrame({"query_id": ["q1"], **{m: [0.5] for m in published.EVALUATED}})
    for identity in (core, cut):
        published.write_search(root, identity, rows, (48, 0, 0), 0.0, "default")
    assert published.read_provenance(published.search_path(root, "toy", "m", "T192,BIN", "none"))["behaviour"] \
        == f"{published.behaviour_digest()}+{published.behaviour_digest(('T192,BIN',))}"
    original = published.behaviour_digest
    with pytest.MonkeyPatch.context() as patch:  # the truncation behaves otherwise: only its searches go stale
        patch.setattr(published, "behaviour_digest", lambda names=None: original() if names is None else "moved")
        assert published.status_of(root, core)[0] == "current"
        assert published.status_of(root, cut)[0] == "other code"


def test_the_behaviour_digest_moves_with_what_the_code_computes(small_digest, monkeypatch):
    digest = published.behaviour_digest()
    published.behaviour_digest.cache_clear()
    assert published.behaviour_digest() == digest  # read back from its cache, and stable
    original = SignBinary._encode

    def flipped(self, x):
        codes = original(self, x)
        codes[:, 0] ^= 1
        return codes

    monkeypatch.setattr(SignBinary, "_encode", flipped)
    monkeypatch.setattr(published, "source_digest", lambda names: "a changed source")  # not the cached state
    published.behaviour_digest.cache_clear()
    assert published.behaviour_digest() != digest


def test_published_dir_is_committed_only_for_the_published_profiles(monkeypatch):
    monkeypatch.delenv("PHASE2_PUBLISHED_DIR", raising=False)
    assert published.published_dir("default").parts[-2:] == ("results", "default")
    assert published.published_dir("smoke").parts[-3:] == ("_build", "published", "smoke")
    monkeypatch.setenv("PHASE2_PUBLISHED_DIR", "/tmp/elsewhere")
    assert str(published.published_dir("default")) == "/tmp/elsewhere"


def test_compare_says_which_searches_are_identical_and_what_moved(tmp_path):
    identity = {"dataset": "toy", "dataset_fingerprint": "f", "model": "m", "docs": "store-a", "queries": "store-b",
                "codec": "BIN", "training": "none", "depth": 100}
    rows = pd.DataFrame({"query_id": ["q1", "q2"], **{m: [0.5, 0.25] for m in published.EVALUATED}})
    for root in ("mine", "theirs"):
        published.write_search(tmp_path / root, identity, rows, (48, 0, 0), 0.0, "default")
    moved = rows.copy()
    moved.loc[1, "nDCG@10"] = 0.3
    published.write_search(tmp_path / "mine", {**identity, "codec": "SQ8"}, moved, (384, 0, 0), 0.0, "default")
    published.write_search(tmp_path / "theirs", {**identity, "codec": "SQ8"}, rows, (384, 0, 0), 0.0, "default")
    published.write_search(tmp_path / "mine", {**identity, "codec": "ITQ"}, rows, (48, 0, 0), 0.0, "default")
    published.write_search(tmp_path / "mine", {**identity, "codec": "BINr"}, rows, (48, 0, 0), 0.0, "default")
    published.write_search(tmp_path / "theirs", {**identity, "codec": "BINr", "docs": "store-z"}, rows, (48, 0, 0),
                           0.0, "default")
    outcome = published.compare(tmp_path / "mine", tmp_path / "theirs").set_index("search").outcome
    assert outcome.to_dict() == {"searches/toy/m/BIN__none.parquet": "identical",
                                 "searches/toy/m/BINr__none.parquet": "other inputs",
                                 "searches/toy/m/ITQ__none.parquet": "not committed",
                                 "searches/toy/m/SQ8__none.parquet": "differs: nDCG@10 at 1 queries"}


AVX512 = frozenset({"avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl"})


def test_results_run_on_one_blas_kernel_everywhere_and_timings_on_the_widest():
    assert phase2.blas_core("reproducible", AVX512) == phase2.blas_core("reproducible", AVX512 - {"avx512f"}) == \
        "Haswell"
    assert phase2.blas_core("timing", AVX512) == "SkylakeX"
    assert phase2.blas_core("timing", frozenset({"avx2", "fma"})) == "Haswell"
    assert phase2.blas_core("reproducible", frozenset({"sse2"})) is phase2.blas_core("timing", frozenset()) is None


def test_this_process_and_a_timing_process_load_the_kernels_of_their_role():
    """The tests (which import phase2 before numpy) run the reproducible kernels; a process started with
    ``PHASE2_BLAS=timing`` the widest; an unknown role is refused by name."""
    wanted = phase2.blas_core("reproducible", phase2.cpu_flags())
    if wanted is None:
        pytest.skip("this CPU has no AVX2 and FMA: OpenBLAS keeps its own kernels")
    loaded = results.blas_kernels()
    assert loaded and all(entry.endswith(" " + wanted) for entry in loaded.split(", ")), loaded
    code = "import phase2, numpy, faiss; from phase2.experiments import results; print(results.blas_kernels())"
    timing = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PHASE2_BLAS": "timing"},
                            capture_output=True, text=True, check=True).stdout.strip()
    widest = phase2.blas_core("timing", phase2.cpu_flags())
    assert all(entry.endswith(" " + widest) for entry in timing.split(", ")), timing
    refused = subprocess.run([sys.executable, "-c", "import phase2"], env={**os.environ, "PHASE2_BLAS": "fast"},
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "PHASE2_BLAS='fast'" in refused.stderr


def test_the_behaviour_digest_is_refused_on_other_blas_kernels(tmp_path, monkeypatch):
    """Where numpy was loaded before phase2 (or in a timing process) the digest, and so every search published from
    it, would follow this CPU's kernels: it is refused with the reason, and nothing is cached."""
    if phase2.blas_core("reproducible", phase2.cpu_flags()) is None:
        pytest.skip("this CPU has no AVX2 and FMA: OpenBLAS keeps its own kernels")
    monkeypatch.setenv("PHASE2_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(results, "blas_kernels", lambda: "faiss_cpu Prescott, numpy SkylakeX")
    with pytest.raises(RuntimeError, match=r"other kernels than Haswell .*faiss_cpu Prescott, numpy SkylakeX"):
        published.behaviour_digest.__wrapped__(("BIN",))
    assert not published.behaviour_digest_path(("BIN",)).exists()
