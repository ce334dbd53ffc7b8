"""Views of a chapter's results table, per (collection, model): per-query scores as the decisions use them, the
queries' clusters, the held-out split, paired differences with their intervals, and one summary row per codec."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pandas as pd
from scipy import stats

from phase2.evaluation import decisions, metrics
from phase2.evaluation.metrics import OVERLAP
from phase2.experiments.searches import REFERENCE
from phase2.storage import atomic_write_bytes, cache_dir, source_digest


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
    wide = plain(wide)
    wide.columns.name = None
    per_query, tie_decided = decision_scores(results, dataset, model)
    clusters = query_cluster_labels(results, dataset, model)
    decided = per_query.mean()
    wide["% float32 nDCG@10"] = 100 * wide.codec.map(decided) / decided[REFERENCE]
    wide["ties decide"] = wide.codec.isin(tie_decided)
    for share in (metrics.TIED_AT_CUTOFF, metrics.TIE_RUN_CUT):
        if share in wide:
            wide[f"% {share}"] = 100 * wide[share]
    deltas = [difference_interval(per_query, clusters, name) for name in wide.codec]
    wide[["Δ nDCG@10", "Δ low", "Δ high", "Δ se"]] = deltas
    wide["Δ nDCG@10 [95% CI]"] = [f"{signed(d)} [{signed(lo)}, {signed(hi)}]" for d, lo, hi, _ in deltas]
    wide["bytes/vector at N"] = wide.bytes_per_vector + wide.fixed_bytes / wide.n_vectors
    wide = wide.rename(columns={"codec": "name", "codec_label": "codec", "bytes_per_vector": "bytes/vector",
                                "rescore_bytes_per_vector": "rescore bytes/vector", "fixed_bytes": "fixed bytes",
                                "n_vectors": "N"})
    cols = ["name", "codec", "family", "bytes/vector", "rescore bytes/vector", "fixed bytes", "N", "bytes/vector at N",
            *metrics.METRICS, OVERLAP, metrics.TIE_AWARE,
            f"% {metrics.TIED_AT_CUTOFF}", f"% {metrics.TIE_RUN_CUT}", "ties decide", "% float32 nDCG@10",
            "Δ nDCG@10 [95% CI]", "Δ nDCG@10", "Δ low", "Δ high", "Δ se"]
    cols = [c for c in cols if c in wide]  # hand-made tables may lack the tie columns
    return wide[cols].sort_values("bytes/vector", ascending=False, kind="stable").reset_index(drop=True)


def all_summaries(results: pd.DataFrame) -> pd.DataFrame:
    """:func:`summary_table` for every (dataset, model) in the results, stacked with those two columns.

    Cached by the table's content and this module's, :mod:`phase2.evaluation.metrics`' and
    :mod:`phase2.evaluation.decisions`' code: the conclusion
    summarizes the very runs the quality chapter did (minutes of bootstrap on the default profile).
    """
    columns = ["dataset", "model", "codec", "codec_label", "family", "bytes_per_vector", "rescore_bytes_per_vector",
               "fixed_bytes", "n_vectors", "metric", "query_id", "query_cluster", "value"]
    h = hashlib.sha256(pd.util.hash_pandas_object(results[columns], index=False).to_numpy().tobytes())
    h.update(source_digest(("findings/per_pair.py", "evaluation/metrics.py", "evaluation/decisions.py")).encode())
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


def signed(x: float, digits: int = 3) -> str:
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


def plain(table: pd.DataFrame) -> pd.DataFrame:
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
    row_order = per_query_table(results, dataset, model)  # splits this table (_SPLIT) if it is not the last one split
    if "tie-aware" not in _SPLIT[2]:  # asked of the whole table once, not on every call
        _SPLIT[2]["tie-aware"] = bool((results.metric == metrics.TIE_AWARE).any())
    if not _SPLIT[2]["tie-aware"]:
        return row_order, []
    aware = per_query_table(results, dataset, model, metrics.TIE_AWARE).reindex(index=row_order.index,
                                                                                columns=row_order.columns)
    margin = decisions.MARGIN_SHARE * aware[REFERENCE].mean()
    return aware, [c for c in row_order if abs(aware[c].mean() - row_order[c].mean()) > margin]


def query_cluster_labels(results: pd.DataFrame, dataset: str, model: str) -> pd.Series:
    """Each judged query's cluster (:func:`phase2.evaluation.decisions.query_clusters`), indexed by query id; found once
    per pair of a split table (:func:`_pair_rows`), as every held-out choice asks for it."""
    rows = _pair_rows(results, dataset, model)
    key = (dataset, model, "query_cluster")
    if key not in _SPLIT[2]:
        rows = rows[rows.query_id != ""]
        labels = rows.drop_duplicates("query_id").set_index("query_id")["query_cluster"]
        _SPLIT[2][key] = labels.astype(str).set_axis(labels.index.astype(str))
    return _SPLIT[2][key].copy()


def difference_interval(per_query: pd.DataFrame, clusters: pd.Series, codec: str,
                        baseline: str = REFERENCE) -> tuple[float, float, float, float]:
    """Mean per-query difference, its normal 95% interval from the cluster-bootstrap standard error, and that SE."""
    return mean_interval((per_query[codec] - per_query[baseline]).to_numpy(),
                         clusters.reindex(per_query.index).to_numpy())


def mean_interval(diff: np.ndarray, clusters) -> tuple[float, float, float, float]:
    """Mean of per-query differences, its normal 95% interval from the cluster-bootstrap standard error, and that
    SE: the descriptive interval every table prints beside a difference (decisions use :func:`decisions.decide`)."""
    se = float(decisions.bootstrap_means(diff, clusters).std(ddof=1))
    z = stats.norm.isf(decisions.ALPHA / 2)
    return float(diff.mean()), float(diff.mean() - z * se), float(diff.mean() + z * se), se


def paired_difference(results: pd.DataFrame, dataset: str, model: str, codec: str,
                      baseline: str = REFERENCE) -> tuple[float, float, float]:
    """Mean per-query nDCG@10 difference ``codec - baseline`` with its paired cluster-bootstrap 95% CI."""
    return difference_interval(per_query_table(results, dataset, model),
                               query_cluster_labels(results, dataset, model), codec, baseline)[:3]
