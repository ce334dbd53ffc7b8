"""A chapter's parameters: declared in its notebook's ``parameters`` cell, set by a profile
(``chapters/profiles/<name>.toml``), and parsed and checked here, by the chapter's setup cell and by the plans
that precompute reads alike.

A parameter's declaration is its line in the parameters cell, ``name: type = default  # help [rule]``: the type
papermill and :func:`phase2.book.context.check_parameters` check, the help ``--list`` shows, and, where the help
ends in brackets, the rule its value must follow (:func:`parse_value`): ``at least 10`` or ``0.01 to 1`` for a
number, ``ints from 100`` (``, multiples of 8``) or ``numbers 0.01 to 1.0`` for a comma-separated list, ``names of
methods`` (``, or all``) or ``one of models`` for names from :data:`DOMAINS`; ``, or empty`` lets a list be empty.
The chapter receives the parsed values, so nothing is checked by hand twice. A rule holds no ``=``: papermill's
parameter reader skips a line with two (``--list`` and the parameter table would lose it)."""

from __future__ import annotations

import ast
import io
import re
import tokenize
import tomllib
from collections.abc import Callable
from pathlib import Path

import nbformat
import papermill

from phase2 import PROJECT_ROOT
from phase2.data import embedding_stores
from phase2.data.datasets import KNOWN_DATASETS, available_datasets
from phase2.data.embeddings import MODELS
from phase2.errors import ParameterError
from phase2.search.registry import REGISTRY

CHAPTERS_DIR = PROJECT_ROOT / "chapters"
PROFILES_DIR = CHAPTERS_DIR / "profiles"
_PROFILE_KEYS = {"description", "parameters", "chapters"}


def profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))


def load_profile(name: str) -> dict:
    """A profile file: ``description``, ``[parameters]`` for every chapter, ``[chapters.<name>]`` overrides."""
    path = PROFILES_DIR / f"{name}.toml"
    if not path.is_file():
        raise ParameterError(f"unknown profile {name!r}; profiles in {PROFILES_DIR}: {', '.join(profile_names())}")
    try:
        profile = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ParameterError(f"{path}: invalid TOML ({exc})") from None
    extra = set(profile) - _PROFILE_KEYS
    if extra:
        raise ParameterError(f"{path}: unknown top-level keys {sorted(extra)}; allowed: {sorted(_PROFILE_KEYS)}")
    return profile


def declared_parameters(notebook: Path) -> dict[str, dict]:
    """The parameters a chapter declares, as papermill reads them (name -> type, default, help)."""
    return papermill.inspect_notebook(str(notebook))


def chapter_parameters(notebook: Path, profile_name: str, overrides: dict | None = None) -> dict:
    """Values for the parameters this chapter declares: the profile's name and ``[parameters]``,
    then its ``[chapters.<name>]`` section, then ``overrides``; an undeclared name is an error."""
    profile = load_profile(profile_name)
    declared = declared_parameters(notebook)
    chapter = notebook.stem
    values = {"profile": profile_name} if "profile" in declared else {}
    values.update({k: v for k, v in profile.get("parameters", {}).items() if k in declared})
    for source, extra in ((f"profile section [chapters.{chapter}]", profile.get("chapters", {}).get(chapter, {})),
                          ("command line", overrides or {})):
        unknown = [k for k in extra if k not in declared]
        if unknown:
            raise ParameterError(f"{source}: unknown parameter(s) {', '.join(map(repr, unknown))} for chapter "
                                 f"{chapter!r}; its parameters are: {', '.join(declared)}")
        values.update(extra)
    return values


def chapter_values(chapter: str, profile: str) -> dict:
    """Every parameter of a chapter as the book runs it on ``profile``: its declared defaults, then the profile's."""
    notebook = CHAPTERS_DIR / f"{chapter}.ipynb"
    declared = declared_parameters(notebook)
    values = {name: ast.literal_eval(info["default"]) for name, info in declared.items()}
    values.update(chapter_parameters(notebook, profile))
    return values


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
    of ``stored`` on the collections whose embeddings a published store holds (:mod:`phase2.data.embedding_stores`),
    never embedded here. Also a line naming what no store holds (empty when nothing is missing)."""
    extra = [m for m in stored if m not in models]
    pairs = [(d, m) for d in datasets for m in [*models, *(m for m in extra if embedding_stores.locate(m, d))]]
    missing = {m: [d for d in datasets if (d, m) not in pairs] for m in extra}
    where = ", ".join(str(root) for root in embedding_stores.store_roots())
    line = " ".join(f"No embedding store holds {m} for {', '.join(ds)} (looked in {where}): those collections run "
                    f"without {m}, which takes hours to embed here (`make book PROFILE=full` does it)."
                    for m, ds in missing.items() if ds)
    return pairs, line


def known_datasets() -> list[str]:
    """Collection names a parameter may take: the shared collections, and those found on the search path or provided
    by the hub. Whether one is present here is :func:`~phase2.data.datasets.find_dataset`'s to say when it is
    loaded, naming where it looked: a book rendered from published results, or the advisor, needs none of them."""
    return sorted(set(available_datasets()) | set(KNOWN_DATASETS))


DOMAINS: dict[str, Callable[[], list[str]]] = {
    "collections": known_datasets,
    "models": lambda: list(MODELS),
    "methods": lambda: list(REGISTRY),
    "profiles": lambda: profile_names(),
}
"""The names a ``names of <domain>`` or ``one of <domain>`` rule takes its values from."""
_RULE = re.compile(r"\[([^\[\]]+)\]$")


def is_parameters_cell(source: str) -> bool:
    """Whether a cell's source is a parameters cell: typed assignments and nothing else."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return False
    return bool(body) and all(isinstance(node, ast.AnnAssign) for node in body)


def parameters_cell_declaring(names: list[str]) -> str:
    """The parameters cell of the chapter notebook that declares exactly ``names``, in order ("" if none does)."""
    for notebook in sorted(CHAPTERS_DIR.glob("*.ipynb")):
        cells = [c for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"]
        source = cells[0].source if cells else ""
        if is_parameters_cell(source) and [n.target.id for n in ast.parse(source).body] == names:
            return source
    return ""


def declared_rules(source: str) -> dict[str, str]:
    """``{name: rule}`` of a parameters cell: each parameter whose help comment ends in ``[rule]``."""
    comments = {tok.start[0]: tok.string for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                if tok.type == tokenize.COMMENT}
    rules = {}
    for node in ast.parse(source).body:
        match = _RULE.search(comments.get(node.lineno, "").rstrip())
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and match:
            rules[node.target.id] = match[1]
    return rules


def parse_value(name: str, value, rule: str):
    """``value`` of parameter ``name`` as its ``rule`` reads it (see the module docstring): the number itself, or
    the list of integers or names; a value that breaks the rule is a ParameterError naming the parameter, and a rule
    this grammar does not know is a ValueError (the notebook's declaration is wrong)."""
    body, optional = (rule[: -len(", or empty")], True) if rule.endswith(", or empty") else (rule, False)
    if optional and value == "":
        return []
    if match := re.fullmatch(r"at least (\S+)", body):
        check_range(name, value, _number(match[1]))
        return value
    if match := re.fullmatch(r"(\S+) to (\S+)", body):
        check_range(name, value, _number(match[1]), _number(match[2]))
        return value
    if match := re.fullmatch(r"numbers (\S+) to (\S+)", body):
        return split_floats(value, name, _number(match[1]), _number(match[2]))
    if match := re.fullmatch(r"ints from (\d+)(?:, multiples of (\d+))?", body):
        numbers = split_ints(value, name, low=int(match[1]))
        if match[2] and any(n % int(match[2]) for n in numbers):
            raise ParameterError(f"{name}: expected multiples of {match[2]}, got {value!r}")
        return numbers
    if match := re.fullmatch(r"(names|one) of (\w+)(, or all)?", body):
        if match[2] not in DOMAINS:
            raise ValueError(f"parameter {name!r}: rule [{rule}] names no domain of {', '.join(DOMAINS)}")
        valid = DOMAINS[match[2]]()
        if match[3] and value == "all":
            return valid
        names = split_names(value, valid, name)
        if match[1] == "one" and len(names) != 1:
            raise ParameterError(f"{name}: expected one of {', '.join(valid)}, got {value!r}")
        return names
    raise ValueError(f"parameter {name!r}: unknown rule [{rule}]")


def _number(text: str) -> int | float:
    return int(text) if re.fullmatch(r"-?\d+", text) else float(text)
