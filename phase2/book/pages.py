"""What a reader sees around the chapters' results: links and HTML tables for chapter cells, and the reader's view
of an executed notebook (code folded behind "show code", papermill's injected parameters as one line).

The executed notebooks under ``_build/executed`` stay as papermill wrote them (the record of the run); only the
copies the book renders are changed (:func:`phase2.book.pipeline.stage_book`).
"""

from __future__ import annotations

import ast
import copy
import html
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pandas as pd
from IPython.display import HTML, Markdown

from phase2 import LAYERS, PROJECT_ROOT

GLOSSARY = {"codecs": "../book/glossary.html#glossary-codecs", "methods": "../book/glossary.html#glossary-methods",
            "metrics": "../book/glossary.html#glossary-metrics"}
"""Where a chapter page links a name to its glossary entry (chapters render under ``chapters/``)."""
FOLDED = "hide-input"  # Jupyter Book's tag: the cell's code behind a "show code" toggle, its output shown
KEPT_AS_IS = {"remove-input", "remove-cell", FOLDED}
FINDINGS = "findings"  # the tag of a chapter's computed summary cell, repeated in a box under its title
KINDS = {"fig": "Figure", "tab": "Table"}
"""Numbered things a chapter displays, by the prefix of their anchors: ``#fig-<label>``, ``#tab-<label>``."""
_ANCHOR = re.compile(r'id="((?:fig|tab)-[a-z0-9-]+)" data-number="(\d+)"')
_REFERENCE = re.compile(r"\[(Figure|Table)\]\(#((fig|tab)-[a-z0-9-]+)\)")
_LABEL = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


def linked(text: str, target: str) -> str:
    """``text`` as an HTML link to ``target`` (a page and anchor of the book)."""
    return f'<a href="{target}">{text}</a>'


def html_table(frame: pd.DataFrame) -> HTML:
    """A table whose cells may hold HTML (links); missing values shown as a dash."""
    return HTML(frame.to_html(escape=False, na_rep="-"))


def check_label(kind: str, label: str) -> str:
    """``label`` if a figure's or table's anchor can carry it (lower-case words joined by '-'), else ValueError."""
    if kind not in KINDS or not _LABEL.fullmatch(label):
        raise ValueError(f"a {KINDS.get(kind, kind)} label is lower-case words joined by '-', got {label!r}")
    return label


def anchor(kind: str, label: str, number: int) -> str:
    """The HTML attributes that make a numbered figure or table a target: ``#<kind>-<label>``, with its number
    for :func:`resolve_references`."""
    return f'id="{kind}-{check_label(kind, label)}" data-number="{number}"'


@dataclass(frozen=True)
class Table:
    """A table with its number, a caption saying what it holds, and a label the text refers to it by."""

    number: int
    content: pd.DataFrame | HTML
    caption: str
    label: str

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        shown = isinstance(self.content, HTML)
        body = self.content.data if shown else self.content._repr_html_()
        caption = f"<strong>Table {self.number}.</strong> {html.escape(self.caption)}"
        plain = self.content.data if shown else repr(self.content)
        return {"text/html": f'<figure class="phase2-table" {anchor("tab", self.label, self.number)} style="margin: 0">'
                             f"<figcaption>{caption}</figcaption>{body}</figure>",
                "text/plain": f"Table {self.number}. {self.caption}\n{plain}"}


def table(content, caption: str, label: str, number: int) -> Table:
    """Table ``number`` of a chapter (chapters number them through :meth:`phase2.book.context.Chapter.table`); the text
    refers to it as ``[Table](#tab-label)``."""
    check_label("tab", label)  # a bad label fails here, where it is written
    if not isinstance(content, pd.DataFrame | HTML):
        raise TypeError(f"table {label!r}: a DataFrame or an HTML object, got {type(content).__name__}")
    return Table(number, content, caption, label)


def resolve_references(notebook: nbformat.NotebookNode, name: str) -> None:
    """Give the text's ``[Figure](#fig-x)`` and ``[Table](#tab-x)`` links their numbers, from the numbered figures
    and tables the executed chapter displayed. A label its code never writes is a typo and an error; one written
    but not displayed in this run (a figure drawn only when there is something to draw) reads "not shown"."""
    numbers = {target: number for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.get("outputs", [])
               for target, number in _ANCHOR.findall(output.get("data", {}).get("text/html", ""))}
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")

    def numbered(match: re.Match) -> str:
        word, target, kind = match.groups()
        if target in numbers:
            return f'<a href="#{target}">{KINDS[kind]} {numbers[target]}</a>'
        label = target.removeprefix(f"{kind}-")
        if f'"{label}"' not in code:
            raise ValueError(f"{name}: the text refers to #{target}, but no figure or table in the chapter has the "
                             f"label {label!r}")
        return f"the {word.lower()} (not shown in this run)"

    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            cell.source = _REFERENCE.sub(numbered, cell.source)


def codec_table(summary: pd.DataFrame, not_applicable: pd.DataFrame | None = None) -> HTML:
    """One collection's per-codec summary (:func:`phase2.findings.per_pair.summary_table`) as a reader compares it: the
    codec (linked to the glossary), bytes, nDCG@10, % of float32 and the difference with its interval, formatted
    for reading and narrow enough for the page. The full table stays in the downloads and below it. The codecs of
    ``not_applicable`` (:func:`phase2.experiments.searches.inapplicable`) on the same collection and model follow, each
    with its reason in place of results."""
    table = pd.DataFrame({
        "codec": [linked(f"<code>{name}</code>", GLOSSARY["codecs"]) for name in summary["name"]],
        "bytes/vector": summary["bytes/vector"].map("{:,.0f}".format),
        "+ rescore bytes": summary["rescore bytes/vector"].map(lambda b: f"{b:,.0f}" if b else ""),
        "bytes/vector at N": summary["bytes/vector at N"].map("{:,.1f}".format),
        "nDCG@10": summary["nDCG@10"].map("{:.3f}".format),
        "% of float32": summary["% float32 nDCG@10"].map("{:.1f}".format),
        "Δ nDCG@10 [95% CI]": summary["Δ nDCG@10 [95% CI]"]})
    if not_applicable is not None and len(summary):
        here = not_applicable[(not_applicable.dataset == summary.dataset.iloc[0])
                              & (not_applicable.model == summary.model.iloc[0])]
        table = pd.concat([table, pd.DataFrame({
            "codec": [linked(f"<code>{name}</code>", GLOSSARY["codecs"]) for name in here["name"]],
            "Δ nDCG@10 [95% CI]": [f"not applicable: {reason}" for reason in here["reason"]]})],
            ignore_index=True).fillna("")
    return HTML(table.to_html(escape=False, index=False))


def not_applicable_note(not_applicable: pd.DataFrame) -> Markdown:
    """One sentence naming each search left out because its codec cannot be fitted on that collection and model
    (:func:`phase2.experiments.searches.inapplicable`), with the reason; empty when there is none."""
    if not_applicable.empty:
        return Markdown("")
    return Markdown("Not applicable, so left out: " + "; ".join(
        f"`{r.name}` on {r.dataset} with {r.model}: {r.reason}" for r in not_applicable.itertuples()) + ".")


MODULE_TABLE = "module-table.txt"
"""The architecture page's table of the package's modules (:func:`module_table`), written when the book is staged
and included by ``book/architecture.md``."""
_ROLE = re.compile(r":(?:mod|func|class|data|meth|attr):`~?([^`]+)`")


def package_modules() -> list[tuple[str, str, Path]]:
    """Every module of ``phase2`` as (layer, dotted name, path), by layer (:data:`phase2.LAYERS`) and then name."""
    root = PROJECT_ROOT / "phase2"
    found = []
    for rank, (layer, members) in enumerate(LAYERS):
        for member in members:
            folder = root / member
            paths = sorted(folder.glob("*.py")) if folder.is_dir() else [root / f"{member}.py"]
            for path in paths:
                parts = path.relative_to(root).with_suffix("").parts
                name = ".".join(("phase2", *(parts[:-1] if parts[-1] == "__init__" else parts)))
                found.append((rank, name, layer, path))
    return [(layer, name, path) for _, name, layer, path in sorted(found)]


def module_table() -> str:
    """Every module of ``phase2`` as a row of a Markdown table, by layer: its name, its length in lines and the first
    paragraph of its docstring, read from the package when the book is staged, so the architecture page cannot fall
    behind."""
    rows = ["| layer | module | lines | what it is |", "|---|---|---:|---|"]
    for layer, name, path in package_modules():
        text = path.read_text()
        first = (ast.get_docstring(ast.parse(text)) or "").split("\n\n")[0]
        first = _ROLE.sub(r"`\1`", first.replace("``", "`")).replace("\n", " ").replace("|", "\\|")
        rows.append(f"| {layer} | `{name}` | {len(text.splitlines())} | {first} |")
    return "\n".join(rows) + "\n"


SCHEMA_TABLE = "schema-table.txt"
"""The spec page's table of result columns (:func:`phase2.experiments.schema.schema_table`), written when the book is
staged and included by ``book/spec.md``."""


METRIC_TABLE = "metric-table.txt"
"""The glossary's table of search metrics (:func:`phase2.evaluation.metrics.metric_table`), written when the book
is staged and included by ``book/glossary.md``."""


FRONT_PAGE_ANSWERS = "front-page-answers.txt"
"""Written by the conclusion chapter beside its executed notebook, included by the front page
(``book/index.md``) when the book is staged (:func:`phase2.findings.answers.front_page`); ``.txt`` so Sphinx does not
take it for a page of its own."""


def run_line(parameters: dict) -> str:
    """The one line that replaces papermill's injected-parameters cell: what the chapter was run with."""
    shown = [f"{name} {value}" for name, value in parameters.items() if name != "profile" and value != ""]
    return (f"*Run with: profile **{parameters.get('profile', '?')}**"
            + (f"; {'; '.join(shown)}" if shown else "") + ".*")


def findings_box(notebook: nbformat.NotebookNode) -> str | None:
    """A "Findings" admonition holding the Markdown the cells tagged :data:`FINDINGS` displayed, or None."""
    texts = [output["data"]["text/markdown"] for cell in notebook.cells if cell.cell_type == "code"
             and FINDINGS in cell.metadata.get("tags", []) for output in cell.get("outputs", [])
             if "text/markdown" in output.get("data", {})]
    if not texts:
        return None
    return ("````{admonition} Findings\n:class: tip\n\n" + "\n\n".join(texts)
            + "\n\nComputed from this chapter's results; the last section shows how.\n````")


def reader_view(notebook: nbformat.NotebookNode, name: str = "chapter") -> nbformat.NotebookNode:
    """A copy of an executed chapter for the book: its findings repeated in a box under the title
    (:func:`findings_box`), references to figures and tables numbered (:func:`resolve_references`), every code
    cell folded unless a tag already hides it, and the injected-parameters cell replaced by :func:`run_line`."""
    view = copy.deepcopy(notebook)
    resolve_references(view, name)
    box = findings_box(view)
    cells = []
    for cell in view.cells:
        tags = cell.metadata.setdefault("tags", [])
        if cell.cell_type == "code" and "injected-parameters" in tags:
            parameters = view.metadata.get("papermill", {}).get("parameters", {})
            cells.append(nbformat.v4.new_markdown_cell(run_line(parameters), id=cell.get("id", "injected") + "-run"))
            continue
        if cell.cell_type == "code" and not KEPT_AS_IS & set(tags):
            tags.append(FOLDED)
        cells.append(cell)
        if box is not None and len(cells) == 1:  # after the title and question
            cells.append(nbformat.v4.new_markdown_cell(box, id="findings-box"))
    view.cells = cells
    return view
