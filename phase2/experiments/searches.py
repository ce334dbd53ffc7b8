"""The searches a chapter reads, as rows of its results table: each search read from the published results
where it is current there, else computed (fitted, searched and cached by a key of what it computed from) and
evaluated against the qrels.

Exhaustive search means any quality difference comes from the codes alone, not from an index. float32 is always
run: it is the reference for "% retained" and for overlap@10.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache
from importlib import metadata

import numpy as np
import pandas as pd
from tqdm import tqdm

from phase2.codecs import Codec, Float32, checked_training, fitted_for_search, inapplicable_reason, make_codec
from phase2.data.datasets import Collection, load_dataset
from phase2.data.embeddings import embed_record, get_model_spec, vectors_key
from phase2.errors import NotApplicable
from phase2.evaluation import decisions, metrics
from phase2.evaluation.metrics import OVERLAP
from phase2.experiments import published
from phase2.storage import cache_dir, load_array, save_array, source_digest

REFERENCE = Float32.name


SEARCH_CODE = ("codecs", "kernels")  # the sources whose every edit invalidates cached search results


@cache
def _search_code_digest() -> str:
    return source_digest(SEARCH_CODE)


def search_key(collection: Collection, model: str, codec: str, depth: int, training: str = "half") -> str:
    """Cache key of one exhaustive search: both embeddings' keys, the codec, the depth, where a trained codec was
    fitted, the code and libraries."""
    spec = get_model_spec(model)
    trained = make_codec(codec).trained
    payload = {"docs": vectors_key(spec, collection, "docs"), "queries": vectors_key(spec, collection, "queries"),
               "codec": codec, "depth": depth, "training": checked_training(training) if trained else "none",
               "code": _search_code_digest(),
               "versions": {lib: metadata.version(lib) for lib in ("numpy", "faiss-cpu", "numba")}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def cached_search(collection: Collection, model: str, name: str, depth: int, docs: np.ndarray,
                  queries: np.ndarray, training: str = "half") -> tuple[Codec, np.ndarray, np.ndarray,
                                                                          tuple[int, int, int]]:
    """The codec (unfitted when cached), its top-``depth`` ids and scores (float32, for ties) and its
    ``(code_size, rescore_bytes, fixed_bytes)``; a trained codec is fitted as ``training`` says
    (:data:`phase2.codecs.TRAINING`). Raises :class:`phase2.errors.NotApplicable` (before any work) when the codec
    cannot be fitted on this collection's vectors.

    Fitting and searching is most of a quality chapter's time; the quality, rescoring and geometry
    chapters and every profile share these results, so the full profile redoes only what is new.
    """
    reason = inapplicable_reason(name, *docs.shape, training)
    if reason:
        raise NotApplicable(f"{name} on {collection.name} with {model}: {reason}")
    codec = make_codec(name)
    key = search_key(collection, model, codec.name, depth, training)
    stem = cache_dir() / "search" / f"{collection.name}__{model}__{re.sub(r'[^A-Za-z0-9.-]', '_', codec.name)}__{key}"
    parts = {part: load_array(stem.with_suffix(f".{part}.npy"), key) for part in ("ids", "scores", "sizes")}
    if any(value is None for value in parts.values()):
        codec = fitted_for_search(codec.name, docs, training)
        scores, ids = codec.search(codec.encode(docs), queries, depth)
        parts = {"ids": ids.astype(np.int32), "scores": scores.astype(np.float32),
                 "sizes": np.array([codec.code_size, codec.rescore_bytes, codec.fixed_bytes], dtype=np.int64)}
        for part in ("sizes", "scores", "ids"):  # ids last: a complete entry is one whose ids exist
            save_array(stem.with_suffix(f".{part}.npy"), parts[part], key)
    sizes = parts["sizes"]
    return codec, parts["ids"], parts["scores"], (int(sizes[0]), int(sizes[1]), int(sizes[2]))


class Vectors:
    """A collection's document and query vectors, embedded (or read from a store) on first use only: a chapter that
    reads every search from published results never loads them."""

    def __init__(self, collection: Collection, model: str, progress: bool) -> None:
        self.collection, self.model, self.progress, self._pair = collection, model, progress, None

    def get(self) -> tuple[np.ndarray, np.ndarray]:
        return tuple(record.vectors for record in self._records())

    def source(self) -> str:
        """Where the vectors came from (each part's provenance), as JSON."""
        docs, queries = self._records()
        return json.dumps({"docs": docs.provenance, "queries": queries.provenance}, sort_keys=True)

    def _records(self):
        if self._pair is None:
            self._pair = tuple(embed_record(self.collection, self.model, part, progress=self.progress)
                               for part in ("docs", "queries"))
        return self._pair


def search_values(collection: Collection, model: str, name: str, depth: int, vectors: Vectors,
                  published_roots: tuple = (), training: str = "half") -> dict:
    """One search's per-query values: read from the first of ``published_roots`` where it is current
    (:func:`phase2.experiments.published.status_of`), else computed (:func:`cached_search`,
    :func:`phase2.evaluation.metrics.evaluate`). Returns ``judged`` (query ids, qrels order), ``values`` (metric ->
    array over ``judged``, Overlap@10 included), ``sizes`` (code, rescore and fixed bytes) and ``source`` (where the
    vectors came from, as JSON)."""
    identity = published.identity_of(collection, model, name, training, depth) if published_roots else {}
    current = published.find_current(published_roots, identity) if published_roots else None
    if current:
        path, found = current
        rows = published.read_search(path)
        sizes = tuple(found["sizes"][k] for k in ("code_size", "rescore_bytes", "fixed_bytes"))
        source = json.dumps({part: {"source": "published results", "vectors": identity[part]}
                             for part in ("docs", "queries")}, sort_keys=True)
    else:
        docs, queries = vectors.get()
        _, ids, scores, sizes = cached_search(collection, model, name, depth, docs, queries, training)
        reference = ids if name == REFERENCE else cached_search(collection, model, REFERENCE, depth, docs, queries)[1]
        rows, source = metrics.evaluate(collection, ids, scores, reference), vectors.source()
    return {"judged": rows.query_id.tolist(), "values": {m: rows[m].to_numpy() for m in published.EVALUATED},
            "sizes": sizes, "source": source}


def run_collection(dataset: str, model: str, codecs: list[str], depth: int, meta: dict,
                   progress: bool = True, published_roots: tuple = ()) -> pd.DataFrame:
    """Tidy rows (means and per-query values) for one dataset and model, every codec: each search read from the
    published results where current there (``published_roots``, :func:`search_values`), else computed."""
    collection = load_dataset(dataset)
    vectors = Vectors(collection, model, progress)
    depth = min(depth, collection.n_docs)
    dim = get_model_spec(model).dim
    names = [REFERENCE] + [c for c in codecs if c != REFERENCE]
    names = [name for name in names if not inapplicable_reason(name, collection.n_docs, dim)]  # see inapplicable()
    clusters = dict(zip(collection.query_ids, decisions.query_clusters(collection.query_ids, collection.qrels),
                        strict=True))
    blocks = []
    for name in tqdm(names, desc=f"{dataset}/{model}: codecs scored", disable=not progress):
        codec = make_codec(name)
        found = search_values(collection, model, name, depth, vectors, published_roots)
        code_size, rescore_bytes, fixed_bytes = found["sizes"]
        common = {**meta, "suite": "searches", "dataset": dataset, "model": model, "codec": codec.name,
                  "codec_label": codec.label, "family": codec.family, "bytes_per_vector": code_size - rescore_bytes,
                  "rescore_bytes_per_vector": rescore_bytes, "fixed_bytes": fixed_bytes,
                  "n_vectors": collection.n_docs, "embeddings": found["source"]}
        for metric, per_query in found["values"].items():
            if metric != OVERLAP:
                blocks.append((common, metric, found["judged"], per_query))
        overlap = dict(zip(found["judged"], found["values"][OVERLAP].tolist(), strict=True))
        blocks.append((common, OVERLAP, collection.query_ids, np.array([overlap[q] for q in collection.query_ids])))
    return _tidy(blocks, clusters)


def inapplicable(pairs: list[tuple[str, str]], codecs: list[str], training: str = "half") -> pd.DataFrame:
    """The codecs that cannot be fitted on a collection's vectors under ``training``, per (collection, model), from
    the shapes alone: ``dataset``, ``model``, ``name`` and ``reason``. :func:`run_collection` leaves them out; the
    chapters show them with their reason."""
    n_docs = {dataset: load_dataset(dataset).n_docs for dataset in dict.fromkeys(d for d, _ in pairs)}
    rows = [{"dataset": dataset, "model": model, "name": name, "reason": reason}
            for dataset, model in pairs for name in codecs
            if (reason := inapplicable_reason(name, n_docs[dataset], get_model_spec(model).dim, training))]
    return pd.DataFrame(rows, columns=["dataset", "model", "name", "reason"])


def _tidy(blocks: list[tuple[dict, str, list[str], np.ndarray]], clusters: dict[str, str]) -> pd.DataFrame:
    """Rows ``{**common, metric, value, query_id, query_cluster}``: per block, the mean over queries (``query_id``
    and ``query_cluster`` empty), then one row per query; built column by column (the same rows as from one dict
    per row; a default chapter's table has ten million rows). Every text column is categorical, its categories
    sorted: a row filter, a group and a pivot then move integer codes, not ten million strings."""
    lengths = np.array([len(query_ids) + 1 for _, _, query_ids, _ in blocks])
    columns = {}
    for key in blocks[0][0]:
        values = [common[key] for common, _, _, _ in blocks]
        columns[key] = (_repeated_category(values, lengths) if all(isinstance(v, str) for v in values)
                        else pd.Series(values).repeat(lengths).to_numpy())
    columns["metric"] = _repeated_category([metric for _, metric, _, _ in blocks], lengths)
    columns["value"] = np.concatenate([np.r_[np.mean(values) if len(values) else np.nan, values]
                                       for _, _, _, values in blocks]).astype(np.float64)
    lists = {tuple(query_ids): None for _, _, query_ids, _ in blocks}  # a few distinct lists, one per block
    for name, label in (("query_id", lambda q: q), ("query_cluster", lambda q: clusters[q])):
        labelled = {ids: ("", *map(label, ids)) for ids in lists}
        categories = sorted(set().union(*labelled.values()))
        code = {value: i for i, value in enumerate(categories)}
        codes = {ids: np.array([code[v] for v in values], np.int32) for ids, values in labelled.items()}
        columns[name] = pd.Categorical.from_codes(
            np.concatenate([codes[tuple(query_ids)] for _, _, query_ids, _ in blocks]), pd.Index(categories, dtype=str))
    return pd.DataFrame(columns)


def _repeated_category(values: list[str], lengths: np.ndarray) -> pd.Categorical:
    """Block ``i``'s value repeated ``lengths[i]`` times, categorical with sorted categories."""
    per_block = pd.Categorical(values)
    return pd.Categorical.from_codes(np.repeat(per_block.codes, lengths), per_block.categories)


def stack(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Tables of :func:`run_collection` (and rows added to them) concatenated; a column categorical in any of them
    is categorical in the result, over the union of their values, sorted (``pd.concat`` alone turns categories that
    differ into ten million strings). A column only some tables have (a suite's own) is empty on the others' rows."""
    columns = {column for t in tables for column, dtype in t.dtypes.items() if isinstance(dtype, pd.CategoricalDtype)}
    values = {column: set().union(*(t[column].cat.categories if isinstance(t[column].dtype, pd.CategoricalDtype)
                                    else t[column].dropna().unique() for t in tables if column in t))
              for column in columns}
    dtypes = {column: pd.CategoricalDtype(pd.Index(sorted(v), dtype=str)) for column, v in values.items()}
    stacked = pd.concat([t.astype({c: d for c, d in dtypes.items() if c in t}) for t in tables], ignore_index=True)
    lacking = {c: d for c, d in dtypes.items() if not all(c in t for t in tables)}  # concat made them text
    return stacked.astype(lacking) if lacking else stacked


class TieAwareScores:
    """Per-query tie-aware nDCG@10 of published (or computed) searches, each read once, and each collection's query
    clusters: what the learning curve and the dimension comparisons read."""

    def __init__(self, depth: int, published_roots: tuple) -> None:
        self.depth, self.roots, self._collections, self._vectors, self._read = depth, published_roots, {}, {}, {}

    def __call__(self, dataset: str, model: str, name: str, training: str = "half") -> pd.Series:
        key = (dataset, model, name, training)
        if key not in self._read:
            collection = self._collection(dataset)
            vectors = self._vectors.setdefault((dataset, model), Vectors(collection, model, progress=False))
            found = search_values(collection, model, name, min(self.depth, collection.n_docs), vectors, self.roots,
                                  training)
            self._read[key] = pd.Series(found["values"][metrics.TIE_AWARE], index=found["judged"])
        return self._read[key]

    def clusters(self, dataset: str) -> pd.Series:
        collection = self._collection(dataset)
        return pd.Series(decisions.query_clusters(collection.query_ids, collection.qrels), index=collection.query_ids)

    def _collection(self, dataset: str) -> Collection:
        """Each collection loaded (parsed and validated) once, not once per search read."""
        if dataset not in self._collections:
            self._collections[dataset] = load_dataset(dataset)
        return self._collections[dataset]
