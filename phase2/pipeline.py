"""The book pipeline: papermill executes each chapter with a profile's parameters, then
Jupyter Book renders the executed notebooks with its own execution off.

Scratch never goes into the source tree: executed notebooks live in
``_build/executed/<profile>/``, the staged book source in ``_build/src``, the HTML
in ``_build/html``. A chapter is re-executed only when its notebook, its
parameters or the ``phase2`` sources changed (the key is stored in the executed
notebook's metadata).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import papermill
import yaml

from phase2 import PROJECT_ROOT
from phase2.errors import ChapterError, ParameterError
from phase2.storage import atomic_write_bytes

CHAPTERS_DIR = PROJECT_ROOT / "chapters"
PROFILES_DIR = CHAPTERS_DIR / "profiles"
BUILD_DIR = PROJECT_ROOT / "_build"
BOOK_FILES = ("_config.yml", "_toc.yml")
BOOK_DIRS = ("book",)
_PROFILE_KEYS = {"description", "parameters", "chapters"}
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]
"""The kernel's own log at ERROR: ipykernel 7 warns on every start that its local TCP transport is not
encrypted (noise in every chapter's console); the chapters' warnings and errors still reach their outputs."""


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


def chapter_notebooks() -> list[Path]:
    """Chapter notebooks in table-of-contents order."""
    toc = yaml.safe_load((PROJECT_ROOT / "_toc.yml").read_text())
    files = []

    def walk(node):
        if isinstance(node, dict):
            if str(node.get("file", "")).startswith("chapters/"):
                files.append(PROJECT_ROOT / f"{node['file']}.ipynb")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return files


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


def _sources_digest() -> str:
    h = hashlib.sha256()
    for f in sorted((PROJECT_ROOT / "phase2").glob("*.py")):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def execution_key(notebook: Path, parameters: dict, upstream: tuple[str, ...] = ()) -> str:
    """Changes with the notebook, its parameters, the ``phase2`` sources and the keys of the chapters
    whose results it reads (``upstream``)."""
    h = hashlib.sha256(notebook.read_bytes())
    h.update(json.dumps(parameters, sort_keys=True).encode())
    h.update(_sources_digest().encode())
    h.update(json.dumps(list(upstream)).encode())
    return h.hexdigest()[:20]


def upstream_chapters(notebook: Path, before: list[str]) -> list[str]:
    """Chapters whose results this one reads: its metadata ``phase2.reads``, a list of chapter names or
    ``"*"`` for every chapter before it in the table of contents (``before``)."""
    reads = nbformat.read(notebook, as_version=4).metadata.get("phase2", {}).get("reads", [])
    if reads == "*":
        return list(before)
    late = [name for name in reads if name not in before]
    if late:
        raise ChapterError(f"chapter {notebook.stem} reads the results of {late}, which _toc.yml does not "
                           f"place before it")
    return list(reads)


def execute_chapter(notebook: Path, parameters: dict, output: Path, force: bool = False,
                    upstream: tuple[str, ...] = ()) -> bool:
    """Execute with papermill into ``output`` unless an up-to-date result is there; True if it ran."""
    key = execution_key(notebook, parameters, upstream)
    if output.exists() and not force:
        try:
            if nbformat.read(output, as_version=4).metadata.get("phase2", {}).get("key") == key:
                return False
        except (OSError, ValueError):
            pass  # unreadable: execute again
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".partial-{output.name}")
    try:
        papermill.execute_notebook(str(notebook), str(partial), parameters=parameters, cwd=str(output.parent),
                                   progress_bar=False, log_output=True, kernel_name="python3",
                                   extra_arguments=KERNEL_ARGUMENTS)
    except papermill.PapermillExecutionError as exc:
        raise ChapterError(f"chapter {notebook.stem} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}\n"
                           f"the executed notebook, with the error, is at {partial}") from None
    nb = nbformat.read(partial, as_version=4)
    nb.metadata["phase2"] = {"key": key, "parameters": parameters}
    atomic_write_bytes(output, nbformat.writes(nb).encode())
    partial.unlink()
    return True


def executed_dir(profile: str) -> Path:
    return BUILD_DIR / "executed" / profile


def run_chapters(profile_name: str, force: bool = False) -> list[Path]:
    load_profile(profile_name)
    outputs, keys = [], {}
    for notebook in chapter_notebooks():
        parameters = chapter_parameters(notebook, profile_name)
        output = executed_dir(profile_name) / "chapters" / notebook.name
        upstream = tuple(keys[name] for name in upstream_chapters(notebook, list(keys)))
        ran = execute_chapter(notebook, parameters, output, force=force, upstream=upstream)
        keys[notebook.stem] = execution_key(notebook, parameters, upstream)
        print(f"{'executed' if ran else 'up to date'}: {notebook.relative_to(PROJECT_ROOT)} -> "
              f"{output.relative_to(PROJECT_ROOT)}", flush=True)
        outputs.append(output)
    return outputs


def stage_book(profile_name: str) -> Path:
    """Assemble the book source in ``_build/src``: config, pages, executed chapters."""
    src = BUILD_DIR / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    for name in BOOK_FILES:
        shutil.copy2(PROJECT_ROOT / name, src / name)
    for name in BOOK_DIRS:
        shutil.copytree(PROJECT_ROOT / name, src / name)
    (src / "chapters").mkdir()
    for notebook in chapter_notebooks():
        shutil.copy2(executed_dir(profile_name) / "chapters" / notebook.name, src / "chapters" / notebook.name)
    return src


def build_html(src: Path) -> Path:
    """Render with Jupyter Book, strict: warnings are errors, nitpicky references."""
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(src), "--path-output", str(PROJECT_ROOT),
           "--builder", "html", "-W", "-n", "--keep-going"]
    subprocess.run(cmd, check=True)
    return BUILD_DIR / "html" / "index.html"


def build_book(profile_name: str, force: bool = False) -> Path:
    run_chapters(profile_name, force=force)
    index = build_html(stage_book(profile_name))
    print(f"book: {index}")
    return index
