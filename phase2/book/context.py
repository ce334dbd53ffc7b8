"""Checks that run inside a chapter notebook, right after its parameters.

A chapter's first code cell is its ``parameters`` cell: typed literals only,
``name: type = value  # help``. papermill injects new values in a cell that
starts with ``# Parameters``. :func:`check_parameters` compares the two, so a
misspelt name (which papermill would only warn about) or a value of the wrong
type stops the chapter with a clear message, and returns the chapter's
:class:`Chapter`: what numbers its tables and figures and where it writes files.
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import altair as alt
import pandas as pd

from phase2.book import charts, pages
from phase2.errors import ParameterError
from phase2.experiments import params, results
from phase2.storage import atomic_write_bytes

_INJECTED_MARKER = "# Parameters"


def injected_names(source: str) -> list[str]:
    """Names a papermill-injected cell assigns."""
    return [t.id for node in ast.parse(source).body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)]


@dataclass
class Chapter:
    """One run of a chapter: its checked ``parameters`` and the ``folder`` it runs in (its executed notebook's, where
    it writes files), and the counters that number its tables and figures in the order it displays them."""

    parameters: dict
    folder: Path
    parsed: dict = field(default_factory=dict)
    """The values of the parameters whose declaration has a rule, as the rule reads them (lists of names or
    integers): :func:`phase2.experiments.params.parse_value`."""
    _tables: count = field(default_factory=lambda: count(1), repr=False)
    _figures: count = field(default_factory=lambda: count(1), repr=False)

    def table(self, content, caption: str, label: str) -> pages.Table:
        """The chapter's next table: ``display(chapter.table(frame, "What it holds.", "label"))``; the text refers
        to it as ``[Table](#tab-label)``."""
        return pages.table(content, caption, label, next(self._tables))

    def figure(self, chart: alt.TopLevelMixin, caption: str, label: str) -> charts.Figure:
        """The chapter's next figure: ``display(chapter.figure(chart, "What to look at.", "label"))``; the text
        refers to it as ``[Figure](#fig-label)``."""
        return charts.figure(chart, caption, label, next(self._figures))

    def downloads(self, name: str, tables: dict[str, pd.DataFrame]) -> str:
        """The tables behind the chapter's charts, written beside it, as the links it ends with
        (:func:`phase2.experiments.results.chart_downloads`)."""
        return results.chart_downloads(name, tables, self.folder)

    def write(self, name: str, text: str) -> None:
        """A file the book build reads from beside the executed chapter (the front page's answers)."""
        atomic_write_bytes(self.folder / name, text.encode())


def check_parameters(namespace: dict) -> Chapter:
    """Validate names and types of the chapter's parameters, and each value against the rule its declaration ends
    with (:func:`phase2.experiments.params.parse_value`); return the chapter's :class:`Chapter`, which holds them
    (``{name: value}``, and ``parsed`` as the rules read them) and runs in the kernel's working directory
    (papermill's, beside the executed notebook).

    Declared parameters are the annotated names of the notebook's namespace
    (``__annotations__``: only the parameters cell annotates). Injected names are
    read from the kernel's input history where it keeps one (papermill does;
    nbval's re-execution does not, and re-runs an already validated notebook).
    """
    declared = {name: getattr(kind, "__name__", str(kind))
                for name, kind in namespace.get("__annotations__", {}).items()}
    if not declared:
        raise RuntimeError("check_parameters must run in a notebook kernel after the typed parameters cell")
    for source in namespace.get("In", []):
        if source.lstrip().startswith(_INJECTED_MARKER):
            unknown = [n for n in injected_names(source) if n not in declared]
            if unknown:
                raise ParameterError(f"unknown parameter(s) {', '.join(map(repr, unknown))}; "
                                     f"this chapter's parameters are: {', '.join(declared)}")
    values = {}
    for name, type_name in declared.items():
        value = namespace[name]
        expected = getattr(builtins, type_name, None)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if expected is not None and (not isinstance(value, expected) or (expected is int and isinstance(value, bool))):
            raise ParameterError(f"parameter {name!r} must be {type_name}, got {type(value).__name__} {value!r}")
        values[name] = value
    source = next((s for s in namespace.get("In", []) if params.is_parameters_cell(s)), None)
    if source is None:  # a kernel that keeps no history (nbval's): the chapter notebook declaring these names
        source = params.parameters_cell_declaring(list(namespace.get("__annotations__", {})))
    parsed = {name: params.parse_value(name, values[name], rule)
              for name, rule in params.declared_rules(source).items() if name in values}
    return Chapter(values, Path.cwd(), parsed)
