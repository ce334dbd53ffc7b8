"""The quality-vs-memory experiment: exhaustive search with every codec, scored against qrels.

Exhaustive search means any quality difference comes from the codes alone, not
from an index. float32 is always run: it is the reference for "% retained" and
for overlap@10.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from functools import cache
from importlib import metadata

import numpy as np
import pandas as pd
from scipy import stats
from tqdm import tqdm

from phase2 import decisions, metrics, published
from phase2.codecs import (
    Codec,
    Float32,
    Rescored,
    checked_training,
    fitted_for_search,
    inapplicable_reason,
    make_codec,
    training_size,
)
from phase2.datasets import Collection, load_dataset
from phase2.embeddings import embed, get_model_spec, provenance, vectors_key
from phase2.errors import NotApplicable
from phase2.storage import atomic_write_bytes, cache_dir, load_array, save_array, source_digest

REFERENCE = Float32.name
OVERLAP = metrics.OVERLAP
SEARCH_CODE = ("codecs.py", "kernels.py")  # the sources whose every edit invalidates cached search results


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


class _Vectors:
    """A collection's document and query vectors, embedded (or read from a store) on first use only: a chapter that
    reads every search from published results never loads them."""

    def __init__(self, collection: Collection, model: str, progress: bool) -> None:
        self.collection, self.model, self.progress, self._pair = collection, model, progress, None

    def get(self) -> tuple[np.ndarray, np.ndarray]:
        if self._pair is None:
            self._pair = tuple(embed(self.collection, self.model, part, progress=self.progress)
                               for part in ("docs", "queries"))
        return self._pair

    def source(self) -> str:
        return json.dumps({part: provenance(self.collection.name, self.model, part) for part in ("docs", "queries")},
                          sort_keys=True)


def search_values(collection: Collection, model: str, name: str, depth: int, vectors: _Vectors,
                  published_roots: tuple = (), training: str = "half") -> dict:
    """One search's per-query values: read from the first of ``published_roots`` where it is current
    (:func:`phase2.published.status_of`), else computed (:func:`cached_search`, :func:`phase2.published.evaluate`).
    Returns ``judged`` (query ids, qrels order), ``values`` (metric -> array over ``judged``, Overlap@10 included),
    ``sizes`` (code, rescore and fixed bytes) and ``source`` (where the vectors came from, as JSON)."""
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
        rows, source = published.evaluate(collection, ids, scores, reference), vectors.source()
    return {"judged": rows.query_id.tolist(), "values": {m: rows[m].to_numpy() for m in published.EVALUATED},
            "sizes": sizes, "source": source}


def run_collection(dataset: str, model: str, codecs: list[str], depth: int, meta: dict,
                   progress: bool = True, published_roots: tuple = ()) -> pd.DataFrame:
    """Tidy rows (means and per-query values) for one dataset and model, every codec: each search read from the
    published results where current there (``published_roots``, :func:`search_values`), else computed."""
    collection = load_dataset(dataset)
    vectors = _Vectors(collection, model, progress)
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
        common = {**meta, "dataset": dataset, "model": model, "codec": codec.name, "codec_label": codec.label,
                  "family": codec.family, "bytes_per_vector": code_size - rescore_bytes,
                  "rescore_bytes_per_vector": rescore_bytes, "fixed_bytes": fixed_bytes,
                  "n_vectors": collection.n_docs, "embeddings": found["source"]}
        for metric, per_query in found["values"].items():
            if metric != OVERLAP:
                blocks.append((common, metric, found["judged"], per_query))
        overlap = dict(zip(found["judged"], found["values"][OVERLAP].tolist(), strict=True))
        blocks.append((common, OVERLAP, collection.query_ids, np.array([overlap[q] for q in collection.query_ids])))
    return _tidy(blocks, clusters)


def cluster_sensitivity(dataset: str, model: str, depth: int = 100, published_roots: tuple = (),
                        codec: str = "BIN") -> dict:
    """How the clustering of queries moves a standard error: the cluster-bootstrap SE of ``codec`` minus float32
    (tie-aware nDCG@10) with every query alone, with queries of an identical relevant set together (the book's
    rule, :func:`phase2.decisions.query_clusters`) and with connected components of shared relevant documents
    (:func:`phase2.decisions.relevance_components`), and the size of the largest component."""
    collection = load_dataset(dataset)
    vectors = _Vectors(collection, model, progress=False)
    depth = min(depth, collection.n_docs)
    values = {name: search_values(collection, model, name, depth, vectors, published_roots)
              for name in (REFERENCE, codec)}
    judged = values[REFERENCE]["judged"]
    diff = values[codec]["values"][metrics.TIE_AWARE] - values[REFERENCE]["values"][metrics.TIE_AWARE]
    position = {q: i for i, q in enumerate(collection.query_ids)}
    by_set = decisions.query_clusters(collection.query_ids, collection.qrels)
    by_component = decisions.relevance_components(collection.query_ids, collection.qrels)
    labels = {"set": [by_set[position[q]] for q in judged], "component": [by_component[position[q]] for q in judged]}
    sizes = pd.Series(labels["component"]).value_counts()
    return {"collection": dataset, "judged queries": len(judged), "identical-set clusters": len(set(labels["set"])),
            "components": len(sizes), "largest component": int(sizes.iloc[0]),
            "SE by query": float(decisions.bootstrap_means(diff).std(ddof=1)),
            "SE by identical set": float(decisions.bootstrap_means(diff, labels["set"]).std(ddof=1)),
            "SE by component": float(decisions.bootstrap_means(diff, labels["component"]).std(ddof=1))}


def cluster_choice(table: pd.DataFrame, min_units: int = 30) -> str:
    """The choice between the clusterings of :func:`cluster_sensitivity`, from its table (indexed by collection):
    components are usable where they leave at least ``min_units`` clusters and none holds half the queries."""
    ratio = table["SE by component"] / table["SE by identical set"]
    unusable = (table.components < min_units) | (table["largest component"] > table["judged queries"] / 2)
    usable = ratio[~unusable]
    text = ""
    if usable.size:
        text = (f"Where components can be resampled ({', '.join(usable.index)}), the standard error by component is "
                f"{usable.min():.2f}x to {usable.max():.2f}x the rule's. ")
    if unusable.any():
        text += ("On " + ", ".join(f"{name} ({int(row.components)} components, the largest "
                                   f"{int(row['largest component'])} of {int(row['judged queries'])} queries)"
                                   for name, row in table[unusable].iterrows())
                 + f" components leave fewer than {min_units} units or one holding most queries: a bootstrap over "
                 "them does not estimate a standard error (it gives "
                 + ", ".join(f"{r:.1f}x" for r in ratio[unusable]) + " the rule's there, from a handful of draws). ")
    return text + ("The book keeps identical relevant sets as its clusters." if unusable.any() or usable.max() < 1.1
                   else "Components widen the intervals where they can be resampled: read the book's intervals as "
                        "that much too narrow there.")


def inapplicable(pairs: list[tuple[str, str]], codecs: list[str], training: str = "half") -> pd.DataFrame:
    """The codecs that cannot be fitted on a collection's vectors under ``training``, per (collection, model), from
    the shapes alone: ``dataset``, ``model``, ``name`` and ``reason``. :func:`run_collection` leaves them out; the
    chapters show them with their reason."""
    n_docs = {dataset: load_dataset(dataset).n_docs for dataset in dict.fromkeys(d for d, _ in pairs)}
    rows = [{"dataset": dataset, "model": model, "name": name, "reason": reason}
            for dataset, model in pairs for name in codecs
            if (reason := inapplicable_reason(name, n_docs[dataset], get_model_spec(model).dim, training))]
    return pd.DataFrame(rows, columns=["dataset", "model", "name", "reason"])


def flattered_codecs(codecs: list[str]) -> list[str]:
    """The trained single-stage codecs among ``codecs``: those whose self-training :func:`training_flattery`
    measures (a rescored pipeline's trained state is its stages', measured on their own)."""
    made = {name: make_codec(name) for name in codecs}
    return [name for name, codec in made.items() if codec.trained and not isinstance(codec, Rescored)]


def training_flattery(dataset: str, model: str, codecs: list[str], depth: int,
                      published_roots: tuple = ()) -> pd.DataFrame:
    """How much fitting each trained codec on every vector it encodes would flatter it.

    Per trained codec that fits both ways: nDCG@10 as the book reports it (fitted on a seeded half of the corpus)
    and fitted on the whole corpus (tie-aware, as every decision), their per-query difference (corpus minus half)
    as % of float32's nDCG@10, with its normal 95% interval from the cluster bootstrap's SE. Searches are read
    from ``published_roots`` where current there.
    """
    collection = load_dataset(dataset)
    vectors = _Vectors(collection, model, progress=False)
    depth = min(depth, collection.n_docs)
    dim = get_model_spec(model).dim
    clusters = dict(zip(collection.query_ids, decisions.query_clusters(collection.query_ids, collection.qrels),
                        strict=True))

    def ndcg(name: str, training: str) -> tuple[list[str], np.ndarray]:
        found = search_values(collection, model, name, depth, vectors, published_roots, training)
        return found["judged"], found["values"][metrics.TIE_AWARE]

    judged, reference = ndcg(REFERENCE, "half")
    scale = 100 / reference.mean()
    rows = []
    for name in flattered_codecs(codecs):
        if inapplicable_reason(name, collection.n_docs, dim, "half"):
            continue
        half, corpus = ndcg(name, "half")[1], ndcg(name, "corpus")[1]
        _, low, high, _ = _mean_interval(corpus - half, [clusters[q] for q in judged])
        rows.append({"dataset": dataset, "model": model, "codec": name, "nDCG@10 (half)": half.mean(),
                     "nDCG@10 (whole corpus)": corpus.mean(),
                     "flattery (% of float32)": scale * (corpus - half).mean(),
                     "CI low": scale * low, "CI high": scale * high})
    return pd.DataFrame(rows)


def learning_trainings(n_docs: int, sizes: list[int]) -> list[str]:
    """The training rules of a learning curve on a corpus of ``n_docs``: ``sample<N>`` for each size below half the
    corpus, then ``half`` and ``corpus``."""
    return [*(f"sample{size}" for size in sorted(sizes) if size < n_docs // 2), "half", "corpus"]


def learning_curve(dataset: str, model: str, codecs: list[str], sizes: list[int], depth: int,
                   published_roots: tuple = ()) -> pd.DataFrame:
    """nDCG@10 (tie-aware) retention of each trained codec against the size of the set it was fitted on, from a
    few hundred vectors to the whole corpus (:func:`learning_trainings`; nested seeded sets), on every judged query;
    beside it, the training-free sign codes (``BIN``, ``BINa``: one value, no curve). Each point: % of float32's
    nDCG@10, and its difference from the whole-corpus fit in % of float32 with a normal 95% interval from the
    cluster bootstrap. Sizes a codec cannot be fitted on are left out."""
    collection = load_dataset(dataset)
    dim = get_model_spec(model).dim
    read = _TieAwareScores(depth, published_roots)

    def scores(name: str, training: str = "half") -> tuple[list[str], np.ndarray]:
        values = read(dataset, model, name, training)
        return list(values.index), values.to_numpy()

    judged, reference = scores(REFERENCE)
    groups = read.clusters(dataset).reindex(judged).tolist()
    scale = 100 / reference.mean()
    rows = []
    for name in codecs:
        trained = make_codec(name).trained
        trainings = [t for t in learning_trainings(collection.n_docs, sizes)
                     if not inapplicable_reason(name, collection.n_docs, dim, t)] if trained else ["half"]
        if not trainings:
            continue
        fitted = {training: scores(name, training)[1] for training in trainings}
        whole = fitted[trainings[-1]]
        for training, values in fitted.items():
            gap, low, high, _ = (scale * v for v in _mean_interval(values - whole, groups))
            rows.append({"dataset": dataset, "model": model, "codec": name,
                         "training vectors": training_size(make_codec(name), collection.n_docs, training)
                         if trained else 0, "training": training if trained else "none",
                         "% float32 nDCG@10": scale * values.mean(), "Δ from whole corpus (% of float32)": gap,
                         "low": low, "high": high})
    return pd.DataFrame(rows)


def learning_verdict(curve: pd.DataFrame) -> str:
    """Per trained codec and collection, the training size from which its retention stays within the equivalence
    margin (:data:`~phase2.decisions.MARGIN_SHARE` of float32's nDCG@10) of the whole-corpus fit, by point
    estimate (the intervals are in the table); and the training-free codes' retention beside them."""
    if curve.empty:
        return "No learning curve was run."
    margin = 100 * decisions.MARGIN_SHARE
    parts = []
    for (dataset, codec), g in curve[curve.training != "none"].groupby(["dataset", "codec"], sort=False):
        g = g.sort_values("training vectors")
        close = (g["Δ from whole corpus (% of float32)"].abs() <= margin)[::-1].cummin()[::-1]  # and all larger
        plateau = g[close]["training vectors"].min()
        parts.append(f"{codec} on {dataset}: {g['% float32 nDCG@10'].iloc[0]:.1f}% of float32 fitted on "
                     f"{g['training vectors'].iloc[0]:,} vectors, {g['% float32 nDCG@10'].iloc[-1]:.1f}% on all "
                     f"{g['training vectors'].iloc[-1]:,}; within ±{margin:g}% of that from {plateau:,} vectors")
    free = curve[curve.training == "none"]
    text = ("Trained codes against the size of their training set (nested seeded sets): " + "; ".join(parts) + ".")
    if len(free):
        text += (" Sign bits need no training: " + "; ".join(
            f"{r.codec} {r['% float32 nDCG@10']:.1f}% on {r.dataset}" for _, r in free.iterrows())
            + ", the same on a corpus of any size or one that streams in.")
    return text


def flattery_verdict(flattery: pd.DataFrame) -> str:
    """One computed paragraph on :func:`training_flattery`'s table."""
    if flattery.empty:
        return "No trained single-stage codec ran, so training on the whole corpus was not measured."
    share = flattery["flattery (% of float32)"]
    above, below = int((flattery["CI low"] > 0).sum()), int((flattery["CI high"] < 0).sum())
    top = flattery.loc[share.idxmax()]
    return (f"Fitted on every vector it encodes instead of on half of them, a trained codec would gain a "
            f"median {share.median():+.2f}% of float32's nDCG@10 (from {share.min():+.2f}% to {share.max():+.2f}% "
            f"over {len(flattery)} codec and collection pairs). The largest gain is {top.codec} on {top.dataset}, "
            f"{top['flattery (% of float32)']:+.2f}% [{top['CI low']:+.2f}, {top['CI high']:+.2f}]. {above} of the "
            f"95% intervals lie above 0 and {below} below it. The book's figures are those fitted on half.")


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
    differ into ten million strings)."""
    columns = {column for t in tables for column, dtype in t.dtypes.items() if isinstance(dtype, pd.CategoricalDtype)}
    values = {column: set().union(*(t[column].cat.categories if isinstance(t[column].dtype, pd.CategoricalDtype)
                                    else t[column].unique() for t in tables)) for column in columns}
    dtypes = {column: pd.CategoricalDtype(pd.Index(sorted(v), dtype=str)) for column, v in values.items()}
    return pd.concat([t.astype(dtypes) for t in tables], ignore_index=True)


def summary_table(results: pd.DataFrame, dataset: str, model: str) -> pd.DataFrame:
    """One row per codec (factory ``name`` and readable ``codec``): bytes, mean metrics, % of float32 retained,
    the difference from float32 with its normal 95% interval from the cluster bootstrap's SE (``Δ se``).
    ``bytes/vector at N`` adds the trained state (``fixed bytes``) spread over the collection's own N vectors to the
    scanned codes. The tie-aware nDCG@10 and the share of queries whose 10th and 11th results tie sit beside the
    row-order nDCG@10; % of float32 and Δ use the tie-aware one (:func:`decision_scores`), and ``ties decide`` marks
    where row order would have moved it by more than the margin."""
    means = _pair_rows(results, dataset, model)
    means = means[means.query_id == ""]
    wide = means.pivot_table(index=["codec", "codec_label", "family", "bytes_per_vector", "rescore_bytes_per_vector",
                                    "fixed_bytes", "n_vectors"],
                             columns="metric", values="value", sort=False).reset_index()
    wide = _plain(wide)
    wide.columns.name = None
    per_query, tie_decided = decision_scores(results, dataset, model)
    clusters = query_cluster_labels(results, dataset, model)
    decided = per_query.mean()
    wide["% float32 nDCG@10"] = 100 * wide.codec.map(decided) / decided[REFERENCE]
    wide["ties decide"] = wide.codec.isin(tie_decided)
    for share in (metrics.TIED_AT_CUTOFF, metrics.TIE_RUN_CUT):
        if share in wide:
            wide[f"% {share}"] = 100 * wide[share]
    deltas = [_difference(per_query, clusters, name) for name in wide.codec]
    wide[["Δ nDCG@10", "Δ low", "Δ high", "Δ se"]] = deltas
    wide["Δ nDCG@10 [95% CI]"] = [f"{_signed(d)} [{_signed(lo)}, {_signed(hi)}]" for d, lo, hi, _ in deltas]
    wide["bytes/vector at N"] = wide.bytes_per_vector + wide.fixed_bytes / wide.n_vectors
    wide = wide.rename(columns={"codec": "name", "codec_label": "codec", "bytes_per_vector": "bytes/vector",
                                "rescore_bytes_per_vector": "rescore bytes/vector", "fixed_bytes": "fixed bytes",
                                "n_vectors": "N"})
    cols = ["name", "codec", "family", "bytes/vector", "rescore bytes/vector", "fixed bytes", "N", "bytes/vector at N",
            "nDCG@10", "Recall@10", "Recall@100", "MRR@10", OVERLAP, metrics.TIE_AWARE,
            f"% {metrics.TIED_AT_CUTOFF}", f"% {metrics.TIE_RUN_CUT}", "ties decide", "% float32 nDCG@10",
            "Δ nDCG@10 [95% CI]", "Δ nDCG@10", "Δ low", "Δ high", "Δ se"]
    cols = [c for c in cols if c in wide]  # hand-made tables may lack the tie columns
    return wide[cols].sort_values("bytes/vector", ascending=False, kind="stable").reset_index(drop=True)


def all_summaries(results: pd.DataFrame) -> pd.DataFrame:
    """:func:`summary_table` for every (dataset, model) in the results, stacked with those two columns.

    Cached by the table's content and this module's, :mod:`phase2.metrics`' and :mod:`phase2.decisions`' code: the
    conclusion
    summarizes the very runs the quality chapter did (minutes of bootstrap on the default profile).
    """
    columns = ["dataset", "model", "codec", "codec_label", "family", "bytes_per_vector", "rescore_bytes_per_vector",
               "fixed_bytes", "n_vectors", "metric", "query_id", "query_cluster", "value"]
    h = hashlib.sha256(pd.util.hash_pandas_object(results[columns], index=False).to_numpy().tobytes())
    h.update(source_digest(("quality.py", "metrics.py", "decisions.py")).encode())
    path = cache_dir() / "summaries" / f"{h.hexdigest()[:20]}.parquet"
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError):
        pass  # not computed yet, or unreadable: compute again
    pairs = results[["dataset", "model"]].drop_duplicates().itertuples(index=False)
    summaries = pd.concat([summary_table(results, d, m).assign(dataset=d, model=m) for d, m in pairs],
                          ignore_index=True)
    buf = io.BytesIO()
    summaries.to_parquet(buf, index=False)
    atomic_write_bytes(path, buf.getvalue())
    return summaries


TIERS = [(99.0, "kept at least 99% of float32's nDCG@10 on every collection"),
         (95.0, "kept 95-99% on every collection"),
         (0.0, "lost more than 5% on at least one collection")]


def verdict(results: pd.DataFrame, summaries: pd.DataFrame) -> str:
    """The summary paragraph in numbers: each codec in one of three tiers by its *worst* collection
    (:data:`TIERS`), cheapest first, with its size and median % of float32 kept; then, within the 1-bit
    codes' size, the best codec of each collection, chosen on one half of the queries and reported on the other
    (:func:`held_out`)."""
    reference = summaries[summaries.name == REFERENCE]
    lines = []
    for model, ref in reference.groupby("model", sort=False):
        n = len(ref)
        ref_bytes = int(ref["bytes/vector"].iloc[0])
        lines.append(f"**{model}**, {n} collection{'s' if n > 1 else ''}, float32 = {ref_bytes} bytes/vector "
                     "(% of float32's nDCG@10: median over the collections, then the worst):")
        rows = summaries[(summaries.model == model) & (summaries.name != REFERENCE)]
        entries = []
        for codec, g in rows.groupby("codec", sort=False):
            kept = g["% float32 nDCG@10"]
            worst = g.loc[kept.idxmin()]
            size, rescore = int(g["bytes/vector"].iloc[0]), int(g["rescore bytes/vector"].iloc[0])
            footprint = f"{size} B + {rescore} B rescore store" if rescore else f"{size} B"
            spread = (f"{kept.iloc[0]:.1f}%" if n == 1 else
                      f"median {kept.median():.1f}%, worst {kept.min():.1f}% on {worst.dataset}")
            entries.append((size, kept.min(), f"{codec} ({footprint}, {spread})"))
        for floor, label in TIERS:
            tier = sorted(e for e in entries if e[1] >= floor)
            entries = [e for e in entries if e[1] < floor]
            if tier:
                lines.append(f"- {len(tier)} {'codes' if len(tier) > 1 else 'code'} {label}: "
                             + "; ".join(text for _, _, text in tier) + ".")
        binary = rows[rows.family == "binary"]
        if len(binary):
            untrained = binary[binary["fixed bytes"] == 0]  # the sign code's d/8 bytes, no trained state
            budget = int((untrained if len(untrained) else binary)["bytes/vector"].min())
            notes = []
            fits = rows[rows["bytes/vector at N"] <= budget * (1 + MEMORY_SLACK)]
            for dataset, g in fits.groupby("dataset", sort=False):
                if not (g.family == "binary").any():
                    continue
                per_query, _, chooses = held_out(results, dataset, model)
                chosen_on, tested = per_query[chooses].mean(), per_query[~chooses].mean()
                kept = 100 * tested / tested[REFERENCE]
                best = g.set_index("name").loc[chosen_on[g.name].idxmax()]
                best_binary = chosen_on[g[g.family == "binary"].name].idxmax()
                extra = int(best["rescore bytes/vector"])
                note = (f"{dataset}: {best.codec}{f' (+{extra} rescore bytes)' if extra else ''} "
                        f"({kept[best.name]:.1f}%")
                notes.append(note + (")" if best.family == "binary" else
                                     f"; best binary {best_binary} {kept[best_binary]:.1f}%)"))
            lines.append(f"- Best codec within {budget} bytes/vector at the collection's own N (trained state "
                         f"included, within {100 * MEMORY_SLACK:g}%; rescore stores beside), by nDCG@10 (chosen on "
                         "one half of the queries, % of float32 on the other): " + "; ".join(notes) + ".")
    return "\n".join(lines)


def headline(summaries: pd.DataFrame, comparison: pd.DataFrame, pooled: pd.DataFrame) -> str:
    """The chapter's findings in three lines, for the box under its title (the summary at its end has every codec):
    what the 1-bit sign code keeps, the cheapest code that keeps 99% everywhere, and binary against the best other
    code at equal memory (``comparison``, :func:`binary_at_budgets` at one N)."""
    lines = []
    sign = pooled[pooled.study == "pooled"] if len(pooled) else pooled
    if len(sign):
        lines.append("- **The 1-bit sign code** (`BIN`, pooled over collections, 95% interval) keeps "
                     + pooled_sign_sentence(pooled) + ".")
    rows = summaries[summaries.name != REFERENCE]
    cheapest = []
    for model, m in rows.groupby("model", sort=False):
        worst = m.groupby("codec", sort=False).agg(kept=("% float32 nDCG@10", "min"), size=("bytes/vector", "first"),
                                                   rescore=("rescore bytes/vector", "first"))
        kept = worst[worst.kept >= TIERS[0][0]].sort_values(["size", "rescore"])
        if len(kept):
            codec, best = kept.index[0], kept.iloc[0]
            extra = f" + {best.rescore:,.0f} B rescore store" if best.rescore else ""
            cheapest.append(f"`{codec}` ({best['size']:,.0f} B{extra}) with {model}")
    if cheapest:
        lines.append("- **The cheapest code keeping at least 99%** of float32's nDCG@10 on every collection: "
                     + "; ".join(cheapest) + ".")
    if len(comparison):
        pooled = pooled_budgets(comparison)
        lines.append(f"- **At equal memory** ({n_label(int(comparison.N.iloc[0]))}), binary minus the best other code "
                     f"in % of float32's nDCG@10, pooled over collections (intervals simultaneous at "
                     f"{decisions.level_label(pooled.level.iloc[0])}; equivalent within "
                     f"±{100 * decisions.MARGIN_SHARE:g}%): " + pooled_budget_sentence(pooled) + ".")
    return "\n".join(lines)


def tie_table(summaries: pd.DataFrame) -> pd.DataFrame:
    """Per collection, model and codec whose 10th and 11th results ever tie: how often, the row-order and
    tie-aware nDCG@10, how often a run of ties reached the search depth, and whether ties decide."""
    columns = ["dataset", "model", "name", f"% {metrics.TIED_AT_CUTOFF}", "nDCG@10", metrics.TIE_AWARE,
               f"% {metrics.TIE_RUN_CUT}", "ties decide"]
    return summaries[summaries[f"% {metrics.TIED_AT_CUTOFF}"] > 0][columns].reset_index(drop=True)


def failure_profile(results: pd.DataFrame, codecs: list[str], tie: float = 1e-9) -> pd.DataFrame:
    """How each codec's loss is spread over queries, per dataset and model.

    For the per-query nDCG@10 change from float32: the share of queries hurt, unchanged and
    helped, the mean change among those hurt, and the share of the total loss carried by the
    worst 10% of queries (1.0 = a few queries carry all of it; 0.1 = spread evenly).
    """
    rows = []
    for (dataset, model), _ in results.groupby(["dataset", "model"], sort=False):
        per_query = per_query_table(results, dataset, model)
        for codec in (c for c in codecs if c in per_query and c != REFERENCE):
            diff = (per_query[codec] - per_query[REFERENCE]).to_numpy()
            hurt = diff < -tie
            losses = np.sort(np.clip(-diff, 0, None))[::-1]
            worst = max(1, int(np.ceil(0.1 * len(diff))))
            rows.append({"dataset": dataset, "model": model, "name": codec, "queries": len(diff),
                         "% hurt": 100 * hurt.mean(), "% unchanged": 100 * (np.abs(diff) <= tie).mean(),
                         "% helped": 100 * (diff > tie).mean(),
                         "mean Δ when hurt": float(diff[hurt].mean()) if hurt.any() else 0.0,
                         "loss share of worst 10%": float(losses[:worst].sum() / max(losses.sum(), tie))})
    return pd.DataFrame(rows)


def worst_queries(results: pd.DataFrame, dataset: str, model: str, codec: str, query_texts: dict[str, str],
                  n: int = 5) -> pd.DataFrame:
    """The ``n`` queries whose nDCG@10 fell most under ``codec``, with their text and both scores."""
    per_query = per_query_table(results, dataset, model)
    overlap = per_query_table(results, dataset, model, OVERLAP)[codec]
    diff = (per_query[codec] - per_query[REFERENCE]).sort_values(kind="stable").head(n)
    return pd.DataFrame({"query": [query_texts[q] for q in diff.index], "float32 nDCG@10": per_query.loc[diff.index,
                         REFERENCE].to_numpy(), f"{codec} nDCG@10": per_query.loc[diff.index, codec].to_numpy(),
                         "overlap@10 with float32": overlap.loc[diff.index].to_numpy()}, index=diff.index)


def rescoring_grid(firsts: list[str], seconds: list[str], factors: list[int]) -> list[str]:
    """Factory names of every two-stage pipeline ``<first>+R<factor><second>`` (a codec is never rescored by
    itself), first stages alone included."""
    return [*firsts, *(f"{f}+R{m}{s}" for f in firsts for s in seconds if s != f for m in factors)]


def rescoring_table(summaries: pd.DataFrame, k: int = 10) -> pd.DataFrame:
    """One row per pipeline: first stage, rescoring codes, factor, quality, and the bytes it needs.

    *RAM bytes/vector* is what every query scans; *disk bytes/vector* the rescoring codes, read only
    for the ``factor * k`` candidates of each query (*bytes read per query*). A factor of 0 is the
    first stage alone.
    """
    pattern = re.compile(r"(\w+)\+R(\d+)(\w+)")
    rows = []
    for row in summaries.to_dict("records"):
        match = pattern.fullmatch(row["name"])
        first, factor, second = (match[1], int(match[2]), match[3]) if match else (row["name"], 0, "")
        rows.append({"dataset": row["dataset"], "model": row["model"], "first stage": first, "rescored with": second,
                     "factor": factor, "candidates": factor * k,
                     **{c: row[c] for c in ("nDCG@10", "Recall@10", "% float32 nDCG@10", "Δ nDCG@10", "Δ low",
                                            "Δ high", "Δ se")},
                     "RAM bytes/vector": row["bytes/vector"], "disk bytes/vector": row["rescore bytes/vector"],
                     "bytes read per query": factor * k * row["rescore bytes/vector"]})
    return pd.DataFrame(rows)


def rescoring_curves(table: pd.DataFrame) -> pd.DataFrame:
    """The rescored rows of :func:`rescoring_table`, each pipeline starting with its first stage alone
    (factor 0), with a ``pipeline`` label: one curve per (dataset, model, pipeline)."""
    rescored = table[table.factor > 0]
    starts = rescored[["dataset", "model", "first stage", "rescored with"]].drop_duplicates().merge(
        table[table.factor == 0].drop(columns="rescored with"), on=["dataset", "model", "first stage"])
    curves = pd.concat([starts, rescored], ignore_index=True)
    curves = curves.assign(pipeline=curves["first stage"] + " + " + curves["rescored with"])
    return curves.sort_values(["dataset", "model", "pipeline", "factor"], kind="stable", ignore_index=True)


def rescoring_verdict(table: pd.DataFrame) -> str:
    """Per pipeline, the smallest factor whose nDCG@10 is equivalent to float32's, per dataset and model, by the
    book's one rule (:func:`phase2.decisions.decide`): every rescored row of the table is one comparison with
    float32, their intervals simultaneous over all of them, equivalent when inside ±
    :data:`~phase2.decisions.MARGIN_SHARE` of float32's nDCG@10."""
    rescored = table[table.factor > 0]
    if rescored.empty:
        return ""
    decided = decisions.decide(pd.DataFrame({
        "mean": rescored["Δ nDCG@10"].to_numpy(), "se": rescored["Δ se"].to_numpy(),
        "margin": (decisions.MARGIN_SHARE * rescored["nDCG@10"] * 100 / rescored["% float32 nDCG@10"]).to_numpy()}))
    rescored = rescored.assign(low=decided.low.to_numpy(), high=decided.high.to_numpy(),
                               outcome=decided.outcome.to_numpy())
    lines = [f"Intervals simultaneous at {decisions.level_label(decided.level.iloc[0])} over the {len(decided)} "
             f"rescored rows; equivalent: inside ±{100 * decisions.MARGIN_SHARE:g}% of float32's nDCG@10."]
    for (first, second), g in rescored.groupby(["first stage", "rescored with"], sort=False):
        parts = []
        for (dataset, model), h in g.groupby(["dataset", "model"], sort=False):
            alone = table[(table.dataset == dataset) & (table.model == model) & (table["first stage"] == first)
                          & (table.factor == 0)]["% float32 nDCG@10"]
            enough = h[h.outcome == "equivalent"].sort_values("factor")
            first_enough = enough.iloc[0] if len(enough) else None
            reached = (f"equivalent to float32 from factor {int(first_enough.factor)} "
                       f"({int(first_enough.candidates)} candidates, {first_enough['% float32 nDCG@10']:.1f}%, "
                       f"Δ nDCG@10 [{first_enough.low:+.3f}, {first_enough.high:+.3f}])"
                       if first_enough is not None else
                       f"not shown equivalent to float32 at any factor (best {h['% float32 nDCG@10'].max():.1f}%)")
            start = f"{alone.iloc[0]:.1f}% alone, " if len(alone) else ""
            parts.append(f"{dataset}/{model}: {start}{reached}")
        lines.append(f"- {first} rescored with {second}: " + "; ".join(parts) + ".")
    return "\n".join(lines)


BUDGETS = (16, 32, 48, 64, 96, 128)
"""Bytes/vector at which the families are compared: the codes every query scans plus the trained state spread over
the N vectors (:func:`amortized_bytes`)."""
MEMORY_SLACK = 0.02
"""A code fits a budget B when its bytes per vector are at most ``B x (1 + MEMORY_SLACK)``: memory within 2% counts
as equal, as nDCG@10 within 2% of float32 counts as equivalent (:data:`phase2.decisions.MARGIN_SHARE`). Without
it, any trained state at all (a 1.5 kB mean) would push a 48-byte code out of the 48-byte budget."""

PUBLISHED = {
    "source": "sentence-transformers embedding-quantization report (Shakir, Aarsen & Lee, 2024; 15 MTEB retrieval "
              "sets)",
    "protocol": "its binary rows rescore: the Hamming top 100 x rescore multiplier 4 are re-scored by the float query "
                "against their binary codes; its int8 rows are a raw dot product on int8 codes",
    "all-MiniLM-L6-v2": "float32 41.66, binary with rescoring 39.07 (93.79%), int8 37.82 (90.79%)",
    "others": "e5-base-v2: binary with rescoring 74.77%; mxbai-embed-large-v1: binary 92.53% without rescoring, "
              "96.45% with it",
}
"""The published rows (nDCG@10 averaged over the report's retrieval sets, % of float32), quoted per model with
the report's protocol beside this study's own numbers."""


def amortized_bytes(summaries: pd.DataFrame, n: int | None = None) -> pd.Series:
    """Bytes per vector kept in memory: the scanned codes plus the trained state spread over N vectors, N the
    collection's own size (``n`` None) or ``n``."""
    return summaries["bytes/vector"] + summaries["fixed bytes"] / (summaries["N"] if n is None else n)


EQUAL_MEMORY_AT = (None, 10**6, 10**7)
"""The N at which equal-memory comparisons are shown: each collection's own size, then 10^6 and 10^7 vectors."""


VERDICT_N = 10**6
"""The N the conclusion's equal-memory verdict holds for: a deployment-sized index, where a 384-d PQ codebook adds
0.4 B per vector (at the collections' own sizes it adds 34-281 B; the quality chapter shows both)."""


def n_label(n: int | None, short: bool = False) -> str:
    """How a table names the N its bytes hold for (``short``: for a file name)."""
    if short:
        return "own-n" if n is None else f"n-{n}"
    return "each collection's own N" if n is None else f"N = {n:,}"


def equal_memory(results: pd.DataFrame, summaries: pd.DataFrame, budgets=BUDGETS,
                 n: int | None = None) -> pd.DataFrame:
    """Per dataset, model and budget, the best codec of each family within that many bytes per vector
    (:data:`MEMORY_SLACK`), counted by :func:`amortized_bytes` at N (``n``, or the collection's own size): chosen
    by nDCG@10 on one half of the queries (:func:`held_out`), reported on the other half (nDCG@10, % of float32's,
    Δ from float32 with its normal 95% interval from the cluster bootstrap), so the choice does not flatter it.

    Rescored pipelines count their first stage only (their rescore bytes may live on disk) and are
    their own family, ``<first family>+rescore``.
    """
    rows = []
    summaries = summaries.assign(**{"bytes/vector at budget N": amortized_bytes(summaries, n)})
    for (dataset, model), g in summaries.groupby(["dataset", "model"], sort=False):
        per_query, clusters, chooses = held_out(results, dataset, model)
        chosen_on, tested = per_query[chooses].mean(), per_query[~chooses]
        reference = tested[REFERENCE].mean()
        for budget in budgets:
            fits = g[(g["bytes/vector at budget N"] <= budget * (1 + MEMORY_SLACK)) & (g.family != "float")]
            for family, f in fits.groupby("family", sort=False):
                best = f.set_index("name").loc[chosen_on[f.name].idxmax()]
                delta, low, high, _ = _difference(tested, clusters[~chooses], best.name)
                rows.append({"dataset": dataset, "model": model, "N": n or int(best["N"]), "budget": budget,
                             "family": family, "name": best.name,
                             **best[["bytes/vector", "fixed bytes", "bytes/vector at budget N",
                                     "rescore bytes/vector"]].to_dict(),
                             "test queries": len(tested), "nDCG@10": tested[best.name].mean(),
                             "% float32 nDCG@10": 100 * tested[best.name].mean() / reference,
                             "Δ nDCG@10": delta, "Δ low": low, "Δ high": high})
    return pd.DataFrame(rows)


def held_out(results: pd.DataFrame, dataset: str, model: str) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    """The decisions' per-query nDCG@10 of one pair (:func:`decision_scores`), its queries' clusters, and which
    queries choose the best codes (True) and which test them (False, :func:`selection_half`)."""
    per_query = decision_scores(results, dataset, model)[0]
    clusters = query_cluster_labels(results, dataset, model).reindex(per_query.index)
    chooses = selection_half(clusters)
    if chooses.sum() < 2 or (~chooses).sum() < 2:
        raise ValueError(f"{dataset}/{model}: {len(per_query)} judged queries in {clusters.nunique()} clusters "
                         "are too few to choose on one half and test on the other")
    return per_query, clusters, chooses


def selection_half(clusters: pd.Series) -> np.ndarray:
    """Which queries choose the best codes (True) and which test them (False): whole clusters, by a hash of their
    label, so the split is fixed and never separates queries that share a source."""
    return np.array([hashlib.sha256(str(c).encode()).digest()[0] % 2 == 0 for c in clusters])


def binary_at_budgets(results: pd.DataFrame, summaries: pd.DataFrame, budgets=BUDGETS,
                      n: int | None = None) -> pd.DataFrame:
    """At each budget (bytes per vector at N, :func:`amortized_bytes`), the best 1-bit-family code against the best
    code of any other family (no rescoring). Both are chosen on one half of the queries (:func:`selection_half`)
    and compared on the other, so the choice does not flatter the test. Each comparison is decided by
    :func:`phase2.decisions.decide` over the whole table: worse, equivalent, better or inconclusive.
    """
    rows = []
    for (dataset, model), g in summaries.groupby(["dataset", "model"], sort=False):
        per_query, clusters, chooses = held_out(results, dataset, model)
        chosen_on, tested = per_query[chooses].mean(), per_query[~chooses]
        test_clusters = clusters[~chooses].to_numpy()
        margin = decisions.MARGIN_SHARE * per_query[REFERENCE].mean()
        cost = amortized_bytes(g, n).set_axis(g.name)
        family = g.set_index("name").family
        for budget in budgets:
            fits = cost.index[cost <= budget * (1 + MEMORY_SLACK)]
            binary = [c for c in fits if family[c] == "binary"]
            others = [c for c in fits if family[c] not in ("float", "binary", "binary+rescore")]
            if not binary or not others:
                continue
            b, o = chosen_on[binary].idxmax(), chosen_on[others].idxmax()
            difference = (tested[b] - tested[o]).to_numpy()
            comparison = decisions.compare(difference, margin, test_clusters)
            sums, _ = decisions.bootstrap_sums(np.column_stack([difference, tested[REFERENCE].to_numpy()]),
                                               test_clusters)
            rows.append({"dataset": dataset, "model": model, "N": n or int(g["N"].iloc[0]), "budget": budget,
                         "best binary": b, "binary nDCG@10": tested[b].mean(), "best other": o,
                         "other nDCG@10": tested[o].mean(), "test queries": len(tested), **comparison,
                         "Δ % of float32": 100 * difference.mean() / tested[REFERENCE].mean(),
                         "se % of float32": float(np.std(100 * sums[:, 0] / sums[:, 1], ddof=1))})
    if not rows:
        return pd.DataFrame(columns=["dataset", "model", "N", "budget", "binary is"])
    table = decisions.decide(pd.DataFrame(rows))
    return table.rename(columns={"mean": "Δ (binary - other)", "low": "Δ low", "high": "Δ high",
                                 "outcome": "binary is"})


def pooled_budgets(comparison: pd.DataFrame) -> pd.DataFrame:
    """Per budget and model, binary minus the best other code as a share of float32's nDCG@10 (100·Δ/float32,
    each collection's with its cluster-bootstrap SE), pooled over the collections by random effects
    (:func:`phase2.decisions.pool`), then decided by :func:`phase2.decisions.decide` over all the table's pooled
    rows: the margin is the declared one, ±:data:`~phase2.decisions.MARGIN_SHARE` of float32."""
    rows = []
    for (budget, model), g in comparison.groupby(["budget", "model"], sort=True):
        pooled = decisions.pool(g["Δ % of float32"], g["se % of float32"] ** 2, g.dataset).iloc[-1]
        rows.append({"budget": budget, "model": model, "collections": len(g), "mean": pooled.estimate,
                     "se": pooled.se, "df": pooled.df, "margin": 100 * decisions.MARGIN_SHARE, "tau2": pooled.tau2,
                     "prediction low": pooled.pi_low, "prediction high": pooled.pi_high,
                     "datasets": ", ".join(g.dataset)})
    if not rows:
        return pd.DataFrame(columns=["budget", "model", "collections", "Δ %", "low", "high", "level", "binary is"])
    table = decisions.decide(pd.DataFrame(rows))
    return table.rename(columns={"mean": "Δ %", "outcome": "binary is"})


def pooled_sign_sentence(pooled: pd.DataFrame) -> str:
    """``91.3% [88.0, 94.1] of float32's nDCG@10 with minilm-l6 (5 collections)`` per model of a
    :func:`pooled_retention` table, naming the collections where the models' sets differ."""
    studies = pooled[pooled.study != "pooled"].groupby("model", sort=False).study.apply(tuple)
    differ = studies.nunique() > 1
    return "; ".join(
        f"{r.estimate:.1f}% [{r.low:.1f}, {r.high:.1f}] of float32's nDCG@10 with {r.model} "
        f"({len(studies[r.model])} collection{'s' if len(studies[r.model]) > 1 else ''}"
        + (f": {', '.join(studies[r.model])})" if differ else ")")
        for r in pooled[pooled.study == "pooled"].itertuples())


def pooled_budget_sentence(pooled: pd.DataFrame) -> str:
    """``48 B: minilm-l6 -3.1% [-5.0, -1.2] worse, ...; 64 B: ...`` from :func:`pooled_budgets`."""
    return "; ".join(f"{budget} B: " + ", ".join(f"{r.model} {_signed(r['Δ %'], 1)}% [{_signed(r.low, 1)}, "
                                                 f"{_signed(r.high, 1)}] {r['binary is']}" for _, r in g.iterrows())
                     for budget, g in pooled.groupby("budget", sort=True))


def budget_verdict(comparison: pd.DataFrame, n: int | None = None) -> str:
    """One line per budget: per model the pooled relative difference (binary - other) over collections with its
    deciding interval and outcome (:func:`pooled_budgets`), then the per-collection outcomes as the detail."""
    if comparison.empty:
        return "No budget had both a binary code and another code within it."
    pooled = pooled_budgets(comparison)
    lines = [f"Bytes per vector at {n_label(n)}, within {100 * MEMORY_SLACK:g}% of the budget; binary minus the best "
             f"other code in % of float32's nDCG@10, pooled over collections by random effects; margin "
             f"±{100 * decisions.MARGIN_SHARE:g}%; intervals simultaneous at "
             f"{decisions.level_label(pooled.level.iloc[0])} over the {len(pooled)} pooled rows (per collection: at "
             f"{decisions.level_label(comparison.level.iloc[0])} over {len(comparison)}); codes chosen on one half "
             "of the queries, compared on the other."]
    for budget, g in comparison.groupby("budget", sort=True):
        rows = pooled[pooled.budget == budget]
        verdicts = "; ".join(f"{r.model} {_signed(r['Δ %'], 1)}% [{_signed(r.low, 1)}, {_signed(r.high, 1)}], "
                             f"{r['binary is']} ({r.collections} collection{'s' if r.collections > 1 else ''})"
                             for _, r in rows.iterrows())
        detail = ", ".join(f"{d}/{m} {o}" for d, m, o in zip(g.dataset, g.model, g["binary is"], strict=True))
        lines.append(f"- {budget} B/vector: {verdicts}. Per collection: {detail}.")
    return "\n".join(lines)


def pooled_retention(results: pd.DataFrame, codec: str = "BIN", model: str | None = None,
                     test_half: bool = False) -> pd.DataFrame:
    """Per model (or for ``model`` only), the % of float32's nDCG@10 that ``codec`` keeps on each collection (a
    ratio of means, its variance from the cluster bootstrap) and their random-effects pool
    (:func:`phase2.decisions.pool`); on the queries that test a choice only (:func:`held_out`) when ``test_half``,
    for a code chosen on the other half."""
    tables = []
    pairs = _plain(results.loc[results.codec == codec, ["dataset", "model"]].drop_duplicates())
    if model is not None:
        pairs = pairs[pairs.model == model]
    for name, datasets in pairs.groupby("model", sort=False):
        effects, variances = [], []
        for dataset in datasets.dataset:
            per_query, clusters, chooses = held_out(results, dataset, name)
            if test_half:
                per_query, clusters = per_query[~chooses], clusters[~chooses]
            sums, _ = decisions.bootstrap_sums(per_query[[codec, REFERENCE]].to_numpy(), clusters.to_numpy())
            effects.append(100 * per_query[codec].mean() / per_query[REFERENCE].mean())
            variances.append(float(np.var(100 * sums[:, 0] / sums[:, 1], ddof=1)))
        tables.append(decisions.pool(effects, variances, datasets.dataset).assign(model=name, codec=codec))
    return pd.concat(tables, ignore_index=True)


BINARY_KINDS = {
    "symmetric Hamming on sign bits": ("BIN", "BINc", "BINr", "ITQ"),
    "the float query against sign bits (asymmetric)": ("BINa", "BIN+R40BINa"),
    "RaBitQ: sign bits with correction factors": ("RaBitQ1",),
}
"""The three kinds of 1-bit-per-dimension code a verdict about "binary" may mean, each by its codes (d/8 bytes,
RaBitQ1 8 more for its factors)."""


def binary_kinds(results: pd.DataFrame, summaries: pd.DataFrame) -> pd.DataFrame:
    """Per kind of 1-bit code (:data:`BINARY_KINDS`) and model: its best code, chosen by the median over the
    collections of its % of float32's nDCG@10 on one half of the queries (:func:`held_out`), and that code's
    random-effects pooled % of float32's nDCG@10 on the other half, with its 95% interval."""
    rows = []
    for kind, names in BINARY_KINDS.items():
        for model, g in summaries[summaries.name.isin(names)].groupby("model", sort=False):
            chosen = {}
            for dataset in g.dataset.unique():
                per_query, _, chooses = held_out(results, dataset, model)
                selected = per_query[chooses].mean()
                chosen[dataset] = 100 * selected[[c for c in names if c in selected]] / selected[REFERENCE]
            best = pd.DataFrame(chosen).median(axis=1).idxmax()
            pooled = pooled_retention(results, best, model, test_half=True).iloc[-1]
            rows.append({"kind": kind, "model": model, "best code": best,
                         "bytes/vector": int(g[g.name == best]["bytes/vector"].iloc[0]),
                         "collections": int((g.name == best).sum()), "pooled % float32": pooled.estimate,
                         "low": pooled.low, "high": pooled.high})
    return pd.DataFrame(rows)


def dimension_table(best: pd.DataFrame, budgets=(48, 96)) -> pd.DataFrame:
    """Per collection and model (with its dimension): the best binary code within each budget and its nDCG@10,
    from :func:`equal_memory`'s ``best`` (equal memory)."""
    rows = []
    for (dataset, model), g in best.groupby(["dataset", "model"], sort=False):
        binary = g[g.family == "binary"].set_index("budget")
        row = {"dataset": dataset, "model": model, "dim": get_model_spec(model).dim}
        for budget in budgets:
            if budget in binary.index:
                row[f"best binary ≤ {budget} B"] = binary.loc[budget, "name"]
                row[f"nDCG@10 at {budget} B"] = binary.loc[budget, "nDCG@10"]
        rows.append(row)
    return pd.DataFrame(rows)


def model_gap(results: pd.DataFrame, codec: str, first: str, second: str) -> pd.DataFrame:
    """``codec``'s % of float32's nDCG@10 with model ``first`` minus with model ``second``, per collection that has
    both (the same queries: one cluster bootstrap draws both models' per-query scores together), pooled by random
    effects (:func:`phase2.decisions.pool`)."""
    effects, variances, names = [], [], []
    for dataset in sorted(set(results.dataset[results.model == first]) & set(results.dataset[results.model == second])):
        a = decision_scores(results, dataset, first)[0]
        b = decision_scores(results, dataset, second)[0].reindex(a.index)
        if codec not in a or codec not in b:
            continue
        clusters = query_cluster_labels(results, dataset, first).reindex(a.index)
        effect, variance = _retention_gap(np.column_stack([a[codec], a[REFERENCE], b[codec], b[REFERENCE]]),
                                          clusters.to_numpy())
        effects.append(effect), variances.append(variance), names.append(dataset)
    if not effects:
        return pd.DataFrame(columns=["study", "estimate", "low", "high"])
    return decisions.pool(effects, variances, names)


def _retention_gap(columns: np.ndarray, clusters: np.ndarray) -> tuple[float, float]:
    """For per-query columns ``[code A, its float32, code B, its float32]`` of the same queries: A's % of its
    float32 (a ratio of means) minus B's, and the variance of that difference over the cluster bootstrap, which
    draws all four columns together."""
    sums, _ = decisions.bootstrap_sums(columns, clusters)
    means = columns.mean(axis=0)
    return (100 * (means[0] / means[1] - means[2] / means[3]),
            float(np.var(100 * (sums[:, 0] / sums[:, 1] - sums[:, 2] / sums[:, 3]), ddof=1)))


def truncated_names(model: str, codecs: list[str]) -> list[str]:
    """The searches that vary dimension within ``model``: float32 and each of ``codecs`` on its first half of
    dimensions, renormalised (``T<d>,<codec>``, :class:`phase2.codecs.Truncated`)."""
    half = get_model_spec(model).dim // 2
    return [f"T{half},{name}" for name in dict.fromkeys([REFERENCE, *codecs])]


def dimension_within(pairs: list[tuple[str, str]], codecs: list[str], depth: int,
                     published_roots: tuple = ()) -> pd.DataFrame:
    """Dimension within one model: per model and code of ``codecs``, its % of float32's nDCG@10 (tie-aware) at the
    model's dimension d and at d/2 (the first d/2 dimensions renormalised, against float32 of the same cut,
    :func:`truncated_names`), per collection and pooled by random effects (:func:`phase2.decisions.pool`); the
    difference (d minus d/2, in points of % float32) is paired on the same queries with a cluster-bootstrap
    variance, so it separates dimension from model, which :func:`model_gap` cannot. Then, where one model's half
    dimension is another's whole (``comparison`` ``equal dimension``): the first model's cut minus the second
    model's whole, on the collections both have."""
    models = list(dict.fromkeys(m for _, m in pairs))
    datasets = {model: [d for d, m in pairs if m == model] for model in models}
    scores = _TieAwareScores(depth, published_roots)
    tables = []
    for model in models:
        dim = get_model_spec(model).dim
        for codec in codecs:
            cut_codec, cut_reference = truncated_names(model, [codec])[::-1]
            tables.append(_pooled_gap(scores, datasets[model], (model, codec, REFERENCE), (model, cut_codec,
                                                                                            cut_reference))
                          .assign(model=model, codec=codec, d=dim, comparison="d against d/2"))
            for other in models:
                if get_model_spec(other).dim == dim // 2 and other != model:
                    shared = [d for d in datasets[model] if d in datasets[other]]
                    tables.append(_pooled_gap(scores, shared, (model, cut_codec, cut_reference),
                                              (other, codec, REFERENCE))
                                  .assign(model=f"{model} cut, against {other}", codec=codec, d=dim // 2,
                                          comparison="equal dimension"))
    columns = ["comparison", "model", "codec", "d", "study", "% float32 (first)", "% float32 (second)", "estimate",
               "low", "high", "pi_low", "pi_high"]
    return pd.concat(tables, ignore_index=True).reindex(columns=columns) if tables else pd.DataFrame(columns=columns)


class _TieAwareScores:
    """Per-query tie-aware nDCG@10 of published (or computed) searches, each read once, and each collection's query
    clusters: what the learning curve and the dimension comparisons read."""

    def __init__(self, depth: int, published_roots: tuple) -> None:
        self.depth, self.roots, self._vectors, self._read = depth, published_roots, {}, {}

    def __call__(self, dataset: str, model: str, name: str, training: str = "half") -> pd.Series:
        key = (dataset, model, name, training)
        if key not in self._read:
            collection = load_dataset(dataset)
            vectors = self._vectors.setdefault((dataset, model), _Vectors(collection, model, progress=False))
            found = search_values(collection, model, name, min(self.depth, collection.n_docs), vectors, self.roots,
                                  training)
            self._read[key] = pd.Series(found["values"][metrics.TIE_AWARE], index=found["judged"])
        return self._read[key]

    @staticmethod
    def clusters(dataset: str) -> pd.Series:
        collection = load_dataset(dataset)
        return pd.Series(decisions.query_clusters(collection.query_ids, collection.qrels), index=collection.query_ids)


def _pooled_gap(scores: _TieAwareScores, datasets: list[str], first: tuple[str, str, str],
                second: tuple[str, str, str]) -> pd.DataFrame:
    """``first`` (model, code, its float32)'s % of its float32's nDCG@10 minus ``second``'s, per collection (paired
    on the same queries, :func:`_retention_gap`) and pooled (:func:`phase2.decisions.pool`), with both shares."""
    shares, effects, variances = [], [], []
    for dataset in datasets:
        columns = pd.concat([scores(dataset, model, name) for model, *names in (first, second) for name in names],
                            axis=1).dropna()
        clusters = scores.clusters(dataset).reindex(columns.index)
        effect, variance = _retention_gap(columns.to_numpy(), clusters.to_numpy())
        means = columns.mean().to_numpy()
        shares.append((100 * means[0] / means[1], 100 * means[2] / means[3]))
        effects.append(effect), variances.append(variance)
    pooled = decisions.pool(effects, variances, datasets)
    pooled["% float32 (first)"] = [*(a for a, _ in shares), np.nan]
    pooled["% float32 (second)"] = [*(b for _, b in shares), np.nan]
    return pooled


def dimension_within_verdict(table: pd.DataFrame) -> str:
    """One computed paragraph on :func:`dimension_within`: per model and code, the pooled difference d minus d/2
    with its 95% interval and what it says (more kept at the higher dimension, less, or no difference this
    precise); then the equal-dimension comparisons across models."""
    if table.empty:
        return "No model was searched at half its dimension."

    def reading(row, more: str, less: str) -> str:
        return more if row.low > 0 else less if row.high < 0 else "no difference this precise"

    def interval(row) -> str:
        return f"{_signed(row.estimate, 1)} points [{_signed(row.low, 1)}, {_signed(row.high, 1)}]"

    within, across = [], []
    for (comparison, model, codec), g in table.groupby(["comparison", "model", "codec"], sort=False):
        studies, row = g[g.study != "pooled"], g[g.study == "pooled"].iloc[0]
        d, over = int(row.d), f"pooled over {len(studies)} collection{'s' if len(studies) > 1 else ''}"
        first, second = studies["% float32 (first)"].median(), studies["% float32 (second)"].median()
        if comparison == "d against d/2":
            within.append(f"{model} {codec}: median {first:.1f}% of float32 at {d} dimensions, {second:.1f}% at its "
                          f"first {d // 2}; {d} minus {d // 2}: {interval(row)} {over} ("
                          + reading(row, f"more kept at {d}", f"less kept at {d}") + ")")
        else:
            large, small = model.split(" cut, against ")
            across.append(f"{large}'s first {d} dimensions against {small}'s {d}, {codec}: median {first:.1f}% "
                          f"against {second:.1f}%, difference {interval(row)} {over} ("
                          + reading(row, f"{large} keeps more", f"{small} keeps more") + ")")
    text = ("Within one model, the same code at the model's dimension and at half of it (the first half of each "
            "vector, renormalised, measured against float32 of the same cut), % of float32's nDCG@10: "
            + "; ".join(within) + ".")
    if across:
        text += (" At equal dimension across models, which asks whether a model's smaller loss is its dimension or "
                 "the model: " + "; ".join(across) + ".")
    return text + (" The cut vectors are a weaker embedding than the whole (no model here was trained to be "
                   "truncated), so this measures how a code's loss moves with dimension, not which embedding to "
                   "deploy.")


def dimension_verdict(results: pd.DataFrame, table: pd.DataFrame, budgets=(48, 96)) -> str:
    """The full sign code's share of float32 with the highest-dimensional model against each lower-dimensional
    one, as a pooled paired difference with its interval (:func:`model_gap`), worded as one model against another:
    the models differ in more than their dimension, so this does not isolate dimension. Then the best binary code
    at equal memory, median over the collections that have both."""
    dims = table.set_index(["dataset", "model"]).dim
    if dims.nunique() < 2:
        return (f"Every model here has {int(dims.iloc[0])} dimensions: a model of another dimension (mpnet-base, "
                "768) is needed to compare.") if len(dims) else "No results."
    lo, hi = int(dims.min()), int(dims.max())
    large = dims[dims == hi].index.get_level_values(1)[0]
    parts = []
    for small in dict.fromkeys(dims[dims == lo].index.get_level_values(1)):
        gap = model_gap(results, "BIN", large, small)
        if len(gap):
            row = gap.iloc[-1]
            parts.append(f"{large} minus {small}: {_signed(row.estimate, 1)} points [{_signed(row.low, 1)}, "
                         f"{_signed(row.high, 1)}] over {len(gap) - 1} collection{'s' if len(gap) > 2 else ''}")
    if not parts:
        return "No collection has both a 384-d and a 768-d model."
    text = (f"The full sign code's share of its own model's float32 nDCG@10 ({hi} bits with {large}, {lo} with the "
            "others), pooled paired difference with its 95% interval: " + "; ".join(parts) + ". These compare one "
            "model with another, which differ in training and architecture as well as dimension: they do not show "
            "what dimension alone does.")
    small, large_index = dims[dims == lo], dims[dims == hi]
    shared = sorted(set(small.index.get_level_values(0)) & set(large_index.index.get_level_values(0)))

    def median(index, column):
        values = table.set_index(["dataset", "model"])[column].reindex(index)
        return values[[d in shared for d in index.get_level_values(0)]].median()

    for budget in budgets:
        column = f"nDCG@10 at {budget} B"
        if column not in table:
            continue
        at_large, at_small = median(large_index.index, column), median(small.index, column)
        if pd.isna(at_large) or pd.isna(at_small):
            missing = f"the {hi}-d model" if pd.isna(at_large) else f"the {lo}-d models"
            text += f" At {budget} B/vector, no binary code of {missing} fits the budget at the collections' own N."
        else:
            text += (f" At {budget} B/vector, the best binary code reached a median nDCG@10 of {at_large:.3f} with "
                     f"the {hi}-d model against {at_small:.3f} with the {lo}-d models.")
    return text


def published_comparison(summaries: pd.DataFrame, flattery: pd.DataFrame, model: str = "minilm-l6") -> str:
    """Our retained share of float32 nDCG@10 for the one model the report also measured, under the report's own
    protocol (``BIN+R40BINa``; ``SQ8raw`` with its ranges from every vector it quantizes, the
    :func:`training_flattery` search) and with this book's codes, beside its rows."""
    ours = summaries[summaries.model == model]

    ndcg = metrics.TIE_AWARE if metrics.TIE_AWARE in ours else "nDCG@10"
    reference = ours[ours.name == REFERENCE].set_index("dataset")[ndcg]

    def described(values: pd.Series, datasets: pd.Series) -> str:
        """Per-collection shares (median and range), and the report's way: the mean nDCG@10 over the collections
        as a share of float32's mean over the same collections."""
        if values.empty:
            return "not run"
        kept = 100 * values.to_numpy() / datasets.map(reference).to_numpy()
        if len(kept) == 1:
            return f"{kept[0]:.1f}% (1 collection, {datasets.iloc[0]})"
        return (f"median {np.median(kept):.1f}% (range {kept.min():.1f}-{kept.max():.1f}%, {len(kept)} collections; "
                f"{100 * values.mean() / datasets.map(reference).mean():.1f}% as a ratio of means, the report's way)")

    def share(codec_name: str) -> str:
        rows = ours[ours.name == codec_name]
        return described(rows[ndcg], rows.dataset)

    protocol = flattery[(flattery.model == model) & (flattery.codec == "SQ8raw")]
    protocol_share = described(protocol["nDCG@10 (whole corpus)"], protocol.dataset)
    return (f"The {PUBLISHED['source']} gives, for all-MiniLM-L6-v2, {PUBLISHED['all-MiniLM-L6-v2']}; "
            f"{PUBLISHED['protocol']}. For other models: {PUBLISHED['others']}. Here, all-MiniLM-L6-v2 ({model}) "
            f"under the report's protocol kept: binary, Hamming top 400 re-scored by the float query against their "
            f"bits (BIN+R40BINa), {share('BIN+R40BINa')}, against the report's 93.79%; int8 as the raw dot product "
            f"of sentence-transformers' int8 codes with their ranges taken from every document they quantize, as "
            f"`quantize_embeddings` does (SQ8raw, no rescoring), {protocol_share}, against 90.79%; the same codes "
            f"with ranges from half of each corpus, as this book fits every trained codec, {share('SQ8raw')}. The "
            f"remaining gap has a known source: the collections (these, not its 15 MTEB retrieval sets). With this "
            f"book's codes: sign bits alone (BIN) {share('BIN')}; the float query against every document's bits "
            f"(BINa) {share('BINa')}; float32 rescoring of the Hamming top 40 (BIN+R4Flat) {share('BIN+R4Flat')}; "
            f"int8 decoded by its per-dimension "
            f"ranges before the dot product (SQ8) {share('SQ8')}.")


def _signed(x: float, digits: int = 3) -> str:
    """``+0.012`` style, without a negative zero."""
    return f"{round(float(x), digits) + 0.0:+.{digits}f}"


_SPLIT: list = [None, {}, {}]  # the table last split, its rows per (dataset, model), what is read from them


def _pair_rows(results: pd.DataFrame, dataset: str, model: str) -> pd.DataFrame:
    """The rows of one (collection, model) of ``results``. A chapter's table holds millions of rows and a dozen
    functions ask for each pair's rows, so the table is split once (one groupby) and the split kept while the same
    table object is asked about (kept referenced here, so its identity cannot pass to another table; no table is
    changed in place after it is read)."""
    if _SPLIT[0] is not results:
        _SPLIT[:] = [results, {key: rows for key, rows in results.groupby(["dataset", "model"], sort=False)}, {}]
    return _SPLIT[1].get((dataset, model), results.iloc[:0])


def _plain(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its categorical columns as text: the tables this module hands on carry plain columns."""
    return table.astype({column: str for column, dtype in table.dtypes.items()
                         if isinstance(dtype, pd.CategoricalDtype)})


def per_query_table(results: pd.DataFrame, dataset: str, model: str, metric: str = "nDCG@10") -> pd.DataFrame:
    """Per-query values of ``metric``: one row per query, one column per codec (factory name)."""
    pair = _pair_rows(results, dataset, model)
    key = (dataset, model, metric)
    if key not in _SPLIT[2]:
        rows = pair[(pair.metric == metric) & (pair.query_id != "")]
        wide = rows.pivot_table(index="query_id", columns="codec", values="value", sort=False)
        _SPLIT[2][key] = wide.set_axis(wide.index.astype(str)).set_axis(wide.columns.astype(str), axis=1)
    return _SPLIT[2][key].copy()


def decision_scores(results: pd.DataFrame, dataset: str, model: str) -> tuple[pd.DataFrame, list[str]]:
    """Per-query nDCG@10 (queries x codecs) as the decisions use it: tie-aware always (identical to row order where
    no tie straddles the cutoff, and free of the arbitrary order of tied rows where one does; hand-made tables
    without tie-aware rows decide on row order). Also the codecs whose row-order mean differs from the tie-aware
    one by more than the equivalence margin (``ties decide``: where row order alone would have moved a verdict)."""
    plain = per_query_table(results, dataset, model)
    if not (results.metric == metrics.TIE_AWARE).any():
        return plain, []
    aware = per_query_table(results, dataset, model, metrics.TIE_AWARE).reindex(index=plain.index,
                                                                                columns=plain.columns)
    margin = decisions.MARGIN_SHARE * aware[REFERENCE].mean()
    return aware, [c for c in plain if abs(aware[c].mean() - plain[c].mean()) > margin]


def query_cluster_labels(results: pd.DataFrame, dataset: str, model: str) -> pd.Series:
    """Each judged query's cluster (:func:`phase2.decisions.query_clusters`), indexed by query id; found once per
    pair of a split table (:func:`_pair_rows`), as every held-out choice asks for it."""
    rows = _pair_rows(results, dataset, model)
    key = (dataset, model, "query_cluster")
    if key not in _SPLIT[2]:
        rows = rows[rows.query_id != ""]
        labels = rows.drop_duplicates("query_id").set_index("query_id")["query_cluster"]
        _SPLIT[2][key] = labels.astype(str).set_axis(labels.index.astype(str))
    return _SPLIT[2][key].copy()


def _difference(per_query: pd.DataFrame, clusters: pd.Series, codec: str,
                baseline: str = REFERENCE) -> tuple[float, float, float, float]:
    """Mean per-query difference, its normal 95% interval from the cluster-bootstrap standard error, and that SE."""
    return _mean_interval((per_query[codec] - per_query[baseline]).to_numpy(),
                          clusters.reindex(per_query.index).to_numpy())


def _mean_interval(diff: np.ndarray, clusters) -> tuple[float, float, float, float]:
    """Mean of per-query differences, its normal 95% interval from the cluster-bootstrap standard error, and that
    SE: the descriptive interval every table prints beside a difference (decisions use :func:`decisions.decide`)."""
    se = float(decisions.bootstrap_means(diff, clusters).std(ddof=1))
    z = stats.norm.isf(decisions.ALPHA / 2)
    return float(diff.mean()), float(diff.mean() - z * se), float(diff.mean() + z * se), se


def paired_difference(results: pd.DataFrame, dataset: str, model: str, codec: str,
                      baseline: str = REFERENCE) -> tuple[float, float, float]:
    """Mean per-query nDCG@10 difference ``codec - baseline`` with its paired cluster-bootstrap 95% CI."""
    return _difference(per_query_table(results, dataset, model), query_cluster_labels(results, dataset, model),
                       codec, baseline)[:3]
