"""Altair charts rendered to static SVG (vl-convert), so the book needs no CDN to show them."""

from __future__ import annotations

import altair as alt
import pandas as pd

alt.renderers.enable("svg")


def retained_vs_bytes(summary: pd.DataFrame) -> alt.FacetChart:
    """% of float32 nDCG@10 retained against bytes/vector (log axis), one panel per collection."""
    data = summary.rename(columns={"bytes/vector": "bytes_per_vector", "% float32 nDCG@10": "retained"})
    base = alt.Chart(data).encode(
        x=alt.X("bytes_per_vector:Q", scale=alt.Scale(type="log", base=2), title="bytes per vector (log scale)"),
        y=alt.Y("retained:Q", scale=alt.Scale(zero=False), title="% of float32 nDCG@10"),
    )
    lines = base.mark_line(color="#bbbbbb").encode(detail="model:N", order="bytes_per_vector:Q")
    points = base.mark_point(filled=True, size=90).encode(
        color=alt.Color("name:N", title="codec", scale=alt.Scale(scheme="tableau20"), sort=None),
        shape=alt.Shape("model:N", title="model"),
        tooltip=["dataset", "model", "name", "codec", "bytes_per_vector", alt.Tooltip("retained:Q", format=".1f")],
    )
    return (lines + points).properties(width=230, height=190).facet(
        facet=alt.Facet("dataset:N", title=None), columns=3)


FAMILY_ORDER = ["float", "scalar", "pq", "ivf", "graph", "rabitq", "binary", "binary+rescore"]


def _family_color(title: str = "family") -> alt.Color:
    return alt.Color("family:N", title=title, sort=FAMILY_ORDER, scale=alt.Scale(scheme="tableau10"))


def recall_vs_qps(points: pd.DataFrame) -> alt.FacetChart:
    """Recall@10 against queries/s (log), one line per method through its query settings; one panel per
    corpus size (columns) and thread count (rows). Up and to the right is better."""
    data = points.assign(size=points.data_kind + " n=" + points.n_vectors.map("{:,}".format),
                         threads=points.search_threads.map("{} thread(s)".format))
    base = alt.Chart(data).encode(
        x=alt.X("recall@10:Q", scale=alt.Scale(zero=False), title="recall@10 (vs exact float32)"),
        y=alt.Y("qps:Q", scale=alt.Scale(type="log"), title="queries/s (log scale)"),
        color=_family_color(), detail="method:N",
    )
    lines = base.mark_line(opacity=0.6).encode(order="recall@10:Q")
    marks = base.mark_point(filled=True, size=45).encode(
        shape=alt.Shape("family:N", sort=FAMILY_ORDER, legend=None),
        tooltip=["method", "query_params", alt.Tooltip("recall@10:Q", format=".3f"),
                 alt.Tooltip("qps:Q", format=",.0f"), alt.Tooltip("bytes_per_vector:Q", format=",.1f")])
    return (lines + marks).properties(width=260, height=210).facet(
        row=alt.Row("threads:N", title=None), column=alt.Column("size:N", title=None, sort=None))


def growth_with_size(points: pd.DataFrame, value: str, title: str) -> alt.Chart:
    """``value`` against corpus size, log-log, one line per method (its first query setting)."""
    data = points.sort_values("n_vectors").drop_duplicates(["data_kind", "n_vectors", "method"])
    return alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("n_vectors:Q", scale=alt.Scale(type="log"), title="corpus size (log scale)"),
        y=alt.Y(f"{value}:Q", scale=alt.Scale(type="log"), title=title),
        color=_family_color(), detail="method:N",
        strokeDash=alt.StrokeDash("data_kind:N", title="data"),
        tooltip=["method", "data_kind", "n_vectors", alt.Tooltip(f"{value}:Q", format=",.2f")],
    ).properties(width=420, height=260)


def real_vs_synthetic(pairs: pd.DataFrame) -> alt.Chart:
    """Recall@10 of each operating point on real data against the same point on synthetic data."""
    diagonal = alt.Chart(pd.DataFrame({"x": [0.0, 1.0]})).mark_line(color="#999999", strokeDash=[4, 4]).encode(
        x="x:Q", y="x:Q")
    points = alt.Chart(pairs).mark_point(filled=True, size=50).encode(
        x=alt.X("real:Q", title="recall@10, real embeddings", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("synthetic:Q", title="recall@10, synthetic (noisy copies)", scale=alt.Scale(domain=[0, 1])),
        color=_family_color(), tooltip=["method", "query_params", "real", "synthetic"])
    return (diagonal + points).properties(width=300, height=300)


def equal_memory(best: pd.DataFrame) -> alt.FacetChart:
    """Δ nDCG@10 from float32 of each family's best code within each budget, with its 95% CI as a band;
    one panel per collection (columns) and model (rows)."""
    data = best.rename(columns={"Δ nDCG@10": "delta", "Δ low": "low", "Δ high": "high",
                                "bytes/vector": "bytes_per_vector"})
    base = alt.Chart(data).encode(
        x=alt.X("budget:Q", scale=alt.Scale(type="log", base=2, nice=False),
                axis=alt.Axis(values=sorted(best.budget.unique().tolist())),
                title="budget: bytes per vector scanned (log)"),
        color=_family_color())
    band = base.mark_area(opacity=0.18).encode(y=alt.Y("low:Q", title="Δ nDCG@10 vs float32 (95% CI)"), y2="high:Q")
    line = base.mark_line(point=True).encode(
        y="delta:Q", tooltip=["dataset", "model", "budget", "family", "name", "bytes_per_vector",
                              alt.Tooltip("delta:Q", format="+.3f"), alt.Tooltip("low:Q", format="+.3f"),
                              alt.Tooltip("high:Q", format="+.3f")])
    zero = alt.Chart(data).mark_rule(color="#999999", strokeDash=[4, 4]).encode(y=alt.datum(0))
    return alt.layer(band, line, zero).properties(width=200, height=170).facet(
        column=alt.Column("dataset:N", title=None, sort=None), row=alt.Row("model:N", title=None, sort=None))


def rescoring(curves: pd.DataFrame) -> alt.FacetChart:
    """% of float32 nDCG@10 against the rescoring factor, one line per pipeline
    (:func:`phase2.quality.rescoring_curves`); each line starts at its first stage alone ("none")."""
    data = curves.assign(step=curves.factor.map(lambda f: f"x{f}" if f else "none"))
    order = ["none", *(f"x{f}" for f in sorted(curves.factor.unique()) if f)]
    return alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("step:O", sort=order, title="rescoring factor (candidates = factor x 10)"),
        y=alt.Y("% float32 nDCG@10:Q", scale=alt.Scale(zero=False), title="% of float32 nDCG@10"),
        color=alt.Color("pipeline:N", title="first stage + rescoring"),
        tooltip=["dataset", "model", "pipeline", "factor", "candidates",
                 alt.Tooltip("% float32 nDCG@10:Q", format=".1f"), "RAM bytes/vector", "disk bytes/vector"],
    ).properties(width=200, height=180).facet(column=alt.Column("dataset:N", title=None, sort=None),
                                              row=alt.Row("model:N", title=None, sort=None))
