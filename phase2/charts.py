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
