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

from phase2 import charts, pages, results, stores
from phase2.errors import ParameterError
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
        (:func:`phase2.results.chart_downloads`)."""
        return results.chart_downloads(name, tables, self.folder)

    def write(self, name: str, text: str) -> None:
        """A file the book build reads from beside the executed chapter (the front page's answers)."""
        atomic_write_bytes(self.folder / name, text.encode())


def check_parameters(namespace: dict) -> Chapter:
    """Validate names and types of the chapter's parameters; return the chapter's :class:`Chapter`, which holds them
    (``{name: value}``) and runs in the kernel's working directory (papermill's, beside the executed notebook).

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
    return Chapter(values, Path.cwd())


def split_names(value: str, valid, what: str) -> list[str]:
    """A comma-separated list of names, each checked against ``valid``."""
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise ParameterError(f"{what}: empty; choose from {', '.join(valid)}")
    bad = [n for n in names if n not in valid]
    if bad:
        raise ParameterError(f"{what}: unknown {', '.join(map(repr, bad))}; valid: {', '.join(valid)}")
    if len(set(names)) != len(names):
        raise ParameterError(f"{what}: {value!r} names an entry twice")
    return names


def check_range(name: str, value: int | float, low: float, high: float | None = None) -> None:
    """``low <= value (<= high)``, or a ParameterError naming the parameter."""
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ParameterError(f"parameter {name!r} must be {bound}, got {value!r}")


def split_ints(value: str, what: str, low: int = 1) -> list[int]:
    """A comma-separated list of integers (``_`` separators allowed), each at least ``low``."""
    try:
        numbers = [int(v.strip().replace("_", "")) for v in value.split(",") if v.strip()]
    except ValueError:
        raise ParameterError(f"{what}: expected comma-separated integers, got {value!r}") from None
    if not numbers or min(numbers) < low:
        raise ParameterError(f"{what}: expected integers >= {low}, got {value!r}")
    return numbers


def split_floats(value: str, what: str, low: float, high: float) -> list[float]:
    """A comma-separated list of numbers, each in ``[low, high]``."""
    try:
        numbers = [float(v.strip().replace("_", "")) for v in value.split(",") if v.strip()]
    except ValueError:
        raise ParameterError(f"{what}: expected comma-separated numbers, got {value!r}") from None
    if not numbers or min(numbers) < low or max(numbers) > high:
        raise ParameterError(f"{what}: expected numbers between {low} and {high}, got {value!r}")
    return numbers


def collection_model_pairs(datasets: list[str], models: list[str],
                           stored: list[str]) -> tuple[list[tuple[str, str]], str]:
    """(collection, model) pairs a chapter runs: every collection with every model of ``models``, and each model
    of ``stored`` on the collections whose embeddings a published store holds (:mod:`phase2.stores`), never
    embedded here. Also a line naming what no store holds (empty when nothing is missing)."""
    extra = [m for m in stored if m not in models]
    pairs = [(d, m) for d in datasets for m in [*models, *(m for m in extra if stores.locate(m, d))]]
    missing = {m: [d for d in datasets if (d, m) not in pairs] for m in extra}
    where = ", ".join(str(root) for root in stores.store_roots())
    line = " ".join(f"No embedding store holds {m} for {', '.join(ds)} (looked in {where}): those collections run "
                    f"without {m}, which takes hours to embed here (`make book PROFILE=full` does it)."
                    for m, ds in missing.items() if ds)
    return pairs, line
