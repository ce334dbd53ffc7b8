"""Altair charts for the book: interactive in the browser, static SVG without scripts, no CDN either way.

Every chart is rendered twice into one output (:func:`interactive`): an SVG drawn here by vl-convert, and its
Vega-Lite spec, which the page's local Vega bundle (:data:`SCRIPTS`, shipped in the book's ``_static``) turns
into a live view with tooltips and legend selection once the page loads. Without scripts, in a PDF printer
that does not run them, or before the bundle loads, the SVG is what shows. :func:`figure` numbers a chart
and gives it a caption saying what to look at.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

import altair as alt
import pandas as pd
import vl_convert

from phase2.book import pages

VEGA_BUNDLE = "vega-bundle.js"
CHART_SCRIPT = "phase2-charts.js"
SCRIPTS = (VEGA_BUNDLE, CHART_SCRIPT)  # what every page loads, in this order (_config.yml: html_js_files)
CHART_SCRIPT_SOURCE = """// phase2.book.charts: each static SVG chart becomes a live Vega view (tooltips, legends).
window.addEventListener("DOMContentLoaded", () => {
  for (const box of document.querySelectorAll(".phase2-chart")) {
    const spec = JSON.parse(box.querySelector("script.phase2-spec").textContent);
    vegaEmbed(box.querySelector(".phase2-view"), spec, {renderer: "svg", actions: false})
      .then(() => box.classList.add("phase2-live"))
      .catch((error) => console.error("phase2 chart:", error));
  }
});
"""


def static_files() -> dict[str, str]:
    """The scripts a built book needs beside its pages: the Vega bundle (from vl-convert, offline) and ours."""
    # in a function's scope: its top-level names (such as `_`) would clash with Sphinx's own scripts
    bundle = f"(function () {{\n{vl_convert.javascript_bundle()}\n}})();\n"
    return {VEGA_BUNDLE: bundle, CHART_SCRIPT: CHART_SCRIPT_SOURCE}


def _chart_html(spec: dict, svg: str, caption: str = "", target: str = "") -> str:
    data = json.dumps(spec).replace("</", "<\\/")  # nothing in the JSON may close the script element
    caption = f"<figcaption>{caption}</figcaption>" if caption else ""
    return (f'<figure class="phase2-chart"{" " + target if target else ""}><div class="phase2-view">{svg}</div>'
            f'<script type="application/json" class="phase2-spec">{data}</script>{caption}</figure>')


def interactive(spec: dict, **metadata) -> dict:
    """Altair renderer: the chart as HTML (live view over a static SVG) and as plain SVG for other readers."""
    svg = vl_convert.vegalite_to_svg(spec)  # drawn once: it takes most of a chart's rendering time
    return {"text/html": _chart_html(spec, svg), "image/svg+xml": svg}


alt.renderers.register("phase2", interactive)
alt.renderers.enable("phase2")


@dataclass(frozen=True)
class Figure:
    """A chart with its number, a caption that says what to look at, and a label the text refers to it by."""

    number: int
    chart: alt.TopLevelMixin
    caption: str
    label: str

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        spec = self.chart.to_dict()
        caption = f"<strong>Figure {self.number}.</strong> {html.escape(self.caption)}"
        svg = vl_convert.vegalite_to_svg(spec)
        target = pages.anchor("fig", self.label, self.number)
        return {"text/html": _chart_html(spec, svg, caption, target), "image/svg+xml": svg,
                "text/plain": f"Figure {self.number}. {self.caption}"}


def figure(chart: alt.TopLevelMixin, caption: str, label: str, number: int) -> Figure:
    """Figure ``number`` of a chapter (chapters number them through :meth:`phase2.book.context.Chapter.figure`); the
    text refers to it as ``[Figure](#fig-label)``."""
    return Figure(number, chart, caption, pages.check_label("fig", label))  # a bad label fails here


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


FAMILY_COLORS = {"float": "#000000", "scalar": "#E69F00", "pq": "#56B4E9", "ivf": "#009E73", "graph": "#0072B2",
                 "rabitq": "#CC79A7", "binary": "#D55E00"}
"""One colour per family in every chapter, from Okabe & Ito's palette for colour-blind readers; a refined
family (``<family>+rescore``) keeps its first stage's colour and is drawn with another shape."""
FAMILY_ORDER = [*FAMILY_COLORS, *(f"{family}+rescore" for family in FAMILY_COLORS if family != "float")]


def family_color(family: str) -> str:
    return FAMILY_COLORS.get(family.split("+")[0], "#999999")


def _family_color(title: str = "family") -> alt.Color:
    return alt.Color("family:N", title=title, sort=FAMILY_ORDER,
                     scale=alt.Scale(domain=FAMILY_ORDER, range=[family_color(f) for f in FAMILY_ORDER]))


def _family_shape() -> alt.Shape:
    """Circles for single-stage families, triangles for refined ones: the legend merges it with the colour."""
    return alt.Shape("family:N", title="family", sort=FAMILY_ORDER,
                     scale=alt.Scale(domain=FAMILY_ORDER,
                                     range=["triangle-up" if "+" in f else "circle" for f in FAMILY_ORDER]))


def _legend_pick() -> alt.Parameter:
    """Click a family in the legend to fade the others (shift-click adds one); click again to clear."""
    return alt.selection_point(fields=["family"], bind="legend")


def recall_vs_qps(points: pd.DataFrame) -> alt.FacetChart:
    """Recall@10 against queries/s (log), one line per method through its query settings; one panel per
    corpus size (columns) and thread count (rows). Up and to the right is better."""
    data = points.assign(size=points.data_kind + " n=" + points.n_vectors.map("{:,}".format),
                         threads=points.search_threads.map("{} thread(s)".format))
    pick = _legend_pick()
    base = alt.Chart(data).encode(
        x=alt.X("recall@10:Q", scale=alt.Scale(zero=False), title="recall@10 (vs exact float32)"),
        y=alt.Y("qps:Q", scale=alt.Scale(type="log"), title="queries/s (log scale)"),
        color=_family_color(), detail="method:N",
        opacity=alt.condition(pick, alt.value(0.9), alt.value(0.08)),
    )
    lines = base.mark_line().encode(order="recall@10:Q")
    marks = base.mark_point(filled=True, size=45).add_params(pick).encode(
        shape=_family_shape(),
        tooltip=["method", "query_params", alt.Tooltip("recall@10:Q", format=".3f"),
                 alt.Tooltip("qps:Q", format=",.0f"), alt.Tooltip("bytes_per_vector:Q", format=",.1f")])
    return (lines + marks).properties(width=260, height=210).facet(
        row=alt.Row("threads:N", title=None), column=alt.Column("size:N", title=None, sort=None))


def growth_with_size(points: pd.DataFrame, value: str, title: str) -> alt.Chart:
    """``value`` against corpus size, log-log, one line per method (its first query setting)."""
    data = points.sort_values("n_vectors").drop_duplicates(["data_kind", "n_vectors", "method"])
    pick = _legend_pick()
    return alt.Chart(data).mark_line(point=True).add_params(pick).encode(
        x=alt.X("n_vectors:Q", scale=alt.Scale(type="log"), title="corpus size (log scale)"),
        y=alt.Y(f"{value}:Q", scale=alt.Scale(type="log"), title=title),
        color=_family_color(), detail="method:N", opacity=alt.condition(pick, alt.value(0.9), alt.value(0.08)),
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
    (:func:`phase2.findings.rescoring.rescoring_curves`); each line starts at its first stage alone ("none")."""
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


def learning_curve(curve: pd.DataFrame) -> alt.FacetChart:
    """% of float32 nDCG@10 against training-set size (log), one line per trained code
    (:func:`phase2.findings.learning.learning_curve`), one panel per collection; the training-free codes as dashed
    rules."""
    base = alt.Chart(curve)
    lines = base.transform_filter(alt.datum.training != "none").mark_line(point=True).encode(
        x=alt.X("training vectors:Q", scale=alt.Scale(type="log"), title="training vectors (log scale)"),
        y=alt.Y("% float32 nDCG@10:Q", scale=alt.Scale(zero=False), title="% of float32 nDCG@10"),
        color=alt.Color("codec:N", title="code"),
        tooltip=["dataset", "codec", "training vectors", alt.Tooltip("% float32 nDCG@10:Q", format=".1f")])
    rules = base.transform_filter(alt.datum.training == "none").mark_rule(strokeDash=[4, 3]).encode(
        y="% float32 nDCG@10:Q", color=alt.Color("codec:N"),
        tooltip=["dataset", "codec", alt.Tooltip("% float32 nDCG@10:Q", format=".1f")])
    return alt.layer(lines, rules).properties(width=260, height=200).facet(
        column=alt.Column("dataset:N", title=None, sort=None))


def regimes(grid: pd.DataFrame) -> alt.FacetChart:
    """Which family wins each (corpus size, RAM budget) cell: one panel per recall target (columns) and
    rescoring store (rows). Faded cells are uncertain (a tie with another family, or recall within 0.02
    of the target); cells marked R are won by a refined pipeline (colour: its first stage's family), cells
    marked with a dot are beyond the largest corpus their winner was measured at (extrapolated)."""
    data = grid.assign(size=grid.docs.map(lambda n: f"{n:.0e}".replace("e+0", "e")),
                       budget=grid["memory GB"].map(lambda g: f"{g:g} GB"),
                       certain=~(grid.tie | grid.fragile),
                       measured=grid.extrapolation <= 1)
    sizes = list(dict.fromkeys(data.sort_values("docs")["size"]))
    budgets = list(dict.fromkeys(data.sort_values("memory GB", ascending=False)["budget"]))
    base = alt.Chart().encode(x=alt.X("size:O", sort=sizes, title="documents"),
                              y=alt.Y("budget:O", sort=budgets, title="RAM budget"))
    tooltip = ["docs", "memory GB", "winner", "family", alt.Tooltip("qps:Q", format=",.0f"), "runner_up", "tie",
               "fragile", alt.Tooltip("extrapolation:Q", format=",.0f")]
    cells = base.mark_rect(stroke="white").encode(
        color=alt.Color("family:N", sort=FAMILY_ORDER + ["none"], title="winning family",
                        scale=alt.Scale(domain=FAMILY_ORDER + ["none"],
                                        range=[family_color(f) for f in FAMILY_ORDER] + ["#eeeeee"])),
        opacity=alt.condition("datum.certain", alt.value(1.0), alt.value(0.45)),
        tooltip=tooltip)
    marks = base.mark_text(fontSize=9, dy=0).encode(  # the same tooltip: the text lies over its cell
        text=alt.Text("mark:N"), color=alt.condition("datum.family == 'none'", alt.value("black"), alt.value("white")),
        tooltip=tooltip)
    mark = data.family.str.endswith("+rescore").map({True: "R", False: ""}) + data.measured.map({True: "", False: "·"})
    layered = alt.layer(cells, marks, data=data.assign(mark=mark))
    return layered.properties(width=200, height=170).facet(
        column=alt.Column("target recall@10:O", title="target recall@10"),
        row=alt.Row("rescoring store:N", title="rescoring store"))


def repair_gains(losses: pd.DataFrame) -> alt.Chart:
    """% of float32 nDCG@10 kept by each 1-bit code (:data:`phase2.experiments.plans.LOSS_CODECS`), one row
    per (collection, model) pair (:func:`phase2.findings.geometry.loss_table`)."""
    kept = [column for column in losses if column.startswith("% ")]
    data = losses.assign(pair=losses.dataset + " / " + losses.model).melt(
        id_vars=["pair"], value_vars=kept, var_name="code", value_name="retained")
    data["code"] = data.code.str.removeprefix("% ")
    return alt.Chart(data).mark_point(filled=True, size=80).encode(
        x=alt.X("retained:Q", scale=alt.Scale(zero=False), title="% of float32 nDCG@10 (1 bit per dimension)"),
        y=alt.Y("pair:N", title=None, sort=None),
        color=alt.Color("code:N", title="1-bit code", sort=None), shape=alt.Shape("code:N", sort=None),
        tooltip=["pair", "code", alt.Tooltip("retained:Q", format=".1f")],
    ).properties(width=420, height=alt.Step(22))


def diagnostics_vs_loss(frame: pd.DataFrame, diagnostics: list[str]) -> alt.FacetChart:
    """The 1-bit loss of each (collection, model) pair against each diagnostic, one panel per diagnostic."""
    long = frame.melt(id_vars=["dataset", "model", "1-bit loss"], value_vars=diagnostics,
                      var_name="diagnostic", value_name="value")
    return alt.Chart(long).mark_point(filled=True, size=70).encode(
        x=alt.X("value:Q", scale=alt.Scale(zero=False), title=None),
        y=alt.Y("1-bit loss:Q", title="1-bit loss (points of float32 nDCG@10)"),
        color=alt.Color("dataset:N"), shape=alt.Shape("model:N"),
        tooltip=["dataset", "model", alt.Tooltip("value:Q", format=".3f"), alt.Tooltip("1-bit loss:Q", format=".1f")],
    ).properties(width=170, height=150).facet(facet=alt.Facet("diagnostic:N", title=None, sort=diagnostics),
                                              columns=3).resolve_scale(x="independent")


def predicted_vs_actual(predictions: pd.DataFrame) -> alt.LayerChart:
    """Held-out predictions (:func:`phase2.findings.geometry.held_out_predictions`) against the measured loss;
    points on the dashed diagonal are perfect predictions."""
    ends = [predictions.actual.min(), predictions.actual.max()]
    diagonal = alt.Chart(pd.DataFrame({"x": ends})).mark_line(color="#999999", strokeDash=[4, 4]).encode(
        x="x:Q", y="x:Q")
    points = alt.Chart(predictions).mark_point(filled=True, size=80).encode(
        x=alt.X("actual:Q", title="measured 1-bit loss (points)"),
        y=alt.Y("predicted:Q", title="predicted from the held-out fit (points)"),
        color="dataset:N", shape="model:N",
        tooltip=["dataset", "model", alt.Tooltip("actual:Q", format=".1f"), alt.Tooltip("predicted:Q", format=".1f")])
    return (diagonal + points).properties(width=320, height=260)


def bytes_vs_n(summaries: pd.DataFrame, sizes=(10**3, 10**4, 10**5, 10**6, 10**7)) -> alt.FacetChart:
    """Bytes per vector against N (log-log), trained state included: ``code + fixed / N``, one line per codec
    that has trained state, one panel per model (its dimension sets the state's size)."""
    codecs = summaries[summaries["fixed bytes"] > 0].drop_duplicates(["model", "name"])
    data = pd.DataFrame([{"model": r.model, "name": r.name, "family": r.family, "N": n,
                          "bytes": r["bytes/vector"] + r["fixed bytes"] / n, "fixed": r["fixed bytes"]}
                         for _, r in codecs.iterrows() for n in sizes])
    return alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("N:Q", scale=alt.Scale(type="log"), title="vectors stored, N (log scale)"),
        y=alt.Y("bytes:Q", scale=alt.Scale(type="log"), title="bytes per vector, trained state included (log)"),
        color=_family_color(), detail="name:N",
        tooltip=["model", "name", "N", alt.Tooltip("bytes:Q", format=",.1f"), alt.Tooltip("fixed:Q", format=",")],
    ).properties(width=320, height=240).facet(column=alt.Column("model:N", title=None))


def forest(pooled: pd.DataFrame, title: str = "% of float32 nDCG@10 kept") -> alt.FacetChart:
    """A forest plot: each collection's estimate with its 95% interval, and the random-effects pool (a larger
    diamond) below them, one panel per model (:func:`phase2.evaluation.decisions.pool` rows)."""
    data = pooled.assign(kind=pooled.study.eq("pooled").map({True: "pooled", False: "collection"}))
    base = alt.Chart(data).encode(y=alt.Y("study:N", sort=None, title=None))
    rules = base.mark_rule().encode(x=alt.X("low:Q", scale=alt.Scale(zero=False), title=title), x2="high:Q")
    points = base.mark_point(filled=True).encode(
        x="estimate:Q", shape=alt.Shape("kind:N", scale=alt.Scale(range=["circle", "diamond"]), title=None),
        size=alt.Size("kind:N", scale=alt.Scale(range=[60, 200]), legend=None),
        tooltip=["model", "study", alt.Tooltip("estimate:Q", format=".1f"), alt.Tooltip("low:Q", format=".1f"),
                 alt.Tooltip("high:Q", format=".1f")])
    rows = int(data.groupby("model").size().max())
    return alt.layer(rules, points).properties(width=300, height=max(120, 28 * rows)).facet(
        row=alt.Row("model:N", title=None, sort=None))
