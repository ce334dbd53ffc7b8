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
import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat
import papermill
import yaml

from phase2 import PROJECT_ROOT, blas_environment
from phase2.book import charts, pages
from phase2.errors import ChapterError
from phase2.evaluation import metrics
from phase2.experiments import results, schema
from phase2.experiments.harness import CHAPTER
from phase2.experiments.params import chapter_parameters, load_profile
from phase2.storage import atomic_write_bytes, package_digest

BUILD_DIR = PROJECT_ROOT / "_build"
REPORT_PROFILE = "default"
"""The profile whose book is the report, rendered at ``_build/html`` (:func:`rendered`)."""
BOOK_FILES = ("_config.yml", "_toc.yml")
BOOK_DIRS = ("book",)
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]
"""The kernel's own log at ERROR: ipykernel 7 warns on every start that its local TCP transport is not
encrypted (noise in every chapter's console); the chapters' warnings and errors still reach their outputs."""


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


def execution_parts(notebook: Path, parameters: dict, upstream: tuple[str, ...] = ()) -> dict[str, str]:
    """What a chapter's result depends on, each as a digest: the notebook, its parameters, the ``phase2``
    sources and the keys of the chapters whose results it reads (``upstream``)."""
    return {"notebook": hashlib.sha256(notebook.read_bytes()).hexdigest()[:20],
            "parameters": hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()[:20],
            "sources": package_digest()[:20],
            "upstream": hashlib.sha256(json.dumps(list(upstream)).encode()).hexdigest()[:20]}


def execution_key(notebook: Path, parameters: dict, upstream: tuple[str, ...] = ()) -> str:
    """Changes with any of :func:`execution_parts`."""
    return _key(execution_parts(notebook, parameters, upstream))


def _key(parts: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


_CHANGED = {"notebook": "its notebook changed", "parameters": "its parameters changed",
            "sources": "the phase2 sources changed", "upstream": "a chapter whose results it reads changed"}


def stale_reason(notebook: Path, parameters: dict, output: Path, upstream: tuple[str, ...] = ()) -> str | None:
    """Why the executed notebook at ``output`` must be executed again, in words; None when it is up to date."""
    try:
        stored = nbformat.read(output, as_version=4).metadata.get("phase2", {})
    except FileNotFoundError:
        return "never executed"
    except (OSError, ValueError):
        return "its executed copy is unreadable"
    parts = execution_parts(notebook, parameters, upstream)
    if stored.get("key") == _key(parts):
        return None
    changed = [_CHANGED[name] for name, digest in parts.items() if stored.get("parts", {}).get(name) != digest]
    return ", ".join(changed) if stored.get("parts") else "executed by an older version of the pipeline"


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


@contextmanager
def _stderr_into(stream) -> Iterator[None]:
    """File descriptor 2 of this process into ``stream`` while a kernel starts and runs: the kernel inherits it, and
    native code (faiss's C++ warnings) writes there, past the kernel's own streams."""
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(stream.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def chapter_log(output: Path) -> Path:
    """Where a chapter's run writes what its kernel printed (progress, warnings of the libraries and of native code),
    beside its executed notebook: the console keeps one line per chapter."""
    return output.with_suffix(".log")


TIMING_CHAPTERS = (CHAPTER,)
"""Chapters that measure speed: their kernels run in the timing role (:data:`phase2.BLAS_ROLES`), with the widest
OpenBLAS kernels the CPU has; every other chapter's kernel runs the reproducible ones."""


@contextmanager
def _blas_role(role: str) -> Iterator[None]:
    """The environment of a process of ``role`` (:func:`phase2.blas_environment`) for the processes started inside
    the block (a chapter's kernel), this process's restored after."""
    changed = blas_environment(role)
    before = {name: os.environ.get(name) for name in (*changed, "OPENBLAS_CORETYPE")}
    os.environ.pop("OPENBLAS_CORETYPE", None)
    os.environ.update(changed)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def execute_chapter(notebook: Path, parameters: dict, output: Path, force: bool = False,
                    upstream: tuple[str, ...] = ()) -> bool:
    """Execute with papermill into ``output`` unless an up-to-date result is there; True if it ran."""
    if not force and stale_reason(notebook, parameters, output, upstream) is None:
        return False
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".partial-{output.name}")
    log = chapter_log(output)
    role = "timing" if notebook.stem in TIMING_CHAPTERS else "reproducible"
    try:
        with open(log, "w") as console, _stderr_into(console), _blas_role(role):  # the log: progress bars and
            # warnings of libraries and native code
            papermill.execute_notebook(str(notebook), str(partial), parameters=parameters, cwd=str(output.parent),
                                       progress_bar=False, log_output=False, stdout_file=console,
                                       stderr_file=console, kernel_name="python3", extra_arguments=KERNEL_ARGUMENTS)
    except papermill.PapermillExecutionError as exc:
        raise ChapterError(f"chapter {notebook.stem} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}\n"
                           f"the executed notebook, with the error, is at {partial}; what it printed is in {log}"
                           ) from None
    nb = nbformat.read(partial, as_version=4)
    parts = execution_parts(notebook, parameters, upstream)
    nb.metadata["phase2"] = {"key": _key(parts), "parts": parts, "parameters": parameters}
    atomic_write_bytes(output, nbformat.writes(nb).encode())
    partial.unlink()
    return True


def executed_dir(profile: str) -> Path:
    return BUILD_DIR / "executed" / profile


def duration(seconds: float) -> str:
    """``2 h 03 min``, ``4 min 05 s`` or ``12.3 s``."""
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s" if seconds >= 60 else f"{seconds:.1f} s"


def run_chapters(profile_name: str, force: bool = False) -> list[Path]:
    """Execute the chapters that are not up to date, in table-of-contents order; one console line as each
    starts (with the reason) and one as it ends (with its time)."""
    load_profile(profile_name)
    outputs, keys = [], {}
    notebooks = chapter_notebooks()
    for number, notebook in enumerate(notebooks, 1):
        parameters = chapter_parameters(notebook, profile_name)
        output = executed_dir(profile_name) / "chapters" / notebook.name
        upstream = tuple(keys[name] for name in upstream_chapters(notebook, list(keys)))
        reason = "--force" if force else stale_reason(notebook, parameters, output, upstream)
        head = f"{number}/{len(notebooks)} {notebook.stem}"
        if reason is None:
            print(f"{head}: up to date ({output.relative_to(PROJECT_ROOT)})", flush=True)
        else:
            print(f"{head}: executing, {reason}", flush=True)
            start = time.perf_counter()
            execute_chapter(notebook, parameters, output, force=True, upstream=upstream)
            print(f"{head}: done in {duration(time.perf_counter() - start)} -> {output.relative_to(PROJECT_ROOT)}",
                  flush=True)
        keys[notebook.stem] = execution_key(notebook, parameters, upstream)
        outputs.append(output)
    return outputs


def stage_book(profile_name: str) -> Path:
    """Assemble the book source in ``_build/src``: config, pages, executed chapters in the reader's view
    (:func:`phase2.book.pages.reader_view`), and the scripts that make the charts live (``_static``)."""
    src = BUILD_DIR / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    for name in BOOK_FILES:
        shutil.copy2(PROJECT_ROOT / name, src / name)
    for name in BOOK_DIRS:
        shutil.copytree(PROJECT_ROOT / name, src / name)
    (src / "chapters").mkdir()
    for notebook in chapter_notebooks():
        executed = nbformat.read(executed_dir(profile_name) / "chapters" / notebook.name, as_version=4)
        nbformat.write(pages.reader_view(executed, notebook.stem), src / "chapters" / notebook.name)
    (src / "_static").mkdir()
    for name, text in charts.static_files().items():
        (src / "_static" / name).write_text(text)
    (src / "book" / pages.MODULE_TABLE).write_text(pages.module_table())
    (src / "book" / pages.SCHEMA_TABLE).write_text(schema.schema_table())
    (src / "book" / pages.METRIC_TABLE).write_text(metrics.metric_table())
    answers = executed_dir(profile_name) / "chapters" / pages.FRONT_PAGE_ANSWERS
    (src / "book" / pages.FRONT_PAGE_ANSWERS).write_text(
        answers.read_text() if answers.is_file() else "*The answers appear once the conclusion chapter has run.*\n")
    return src


def _jupyter_book(src: Path, profile_name: str, builder: str) -> Path:
    """Render the staged book ``src`` with ``builder``, strict (warnings are errors, nitpicky references) and quiet;
    on failure, its whole output and an error naming the build. Returns :func:`rendered`."""
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(src), "--path-output",
           str(site_dir(profile_name)), "--builder", builder, "-W", "-n", "--keep-going", "-q"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stdout, proc.stderr, sep="\n", file=sys.stderr)
        raise ChapterError(f"jupyter-book build failed (strict: warnings are errors, see above): {' '.join(cmd)}")
    return rendered(profile_name, builder)


def site_dir(profile_name: str) -> Path:
    """Jupyter Book's ``--path-output`` for a profile's book (it renders into ``_build/<builder>`` there): the
    project for :data:`REPORT_PROFILE`, ``_build/profiles/<profile>`` for any other, so building or testing the smoke
    book never replaces the report."""
    return PROJECT_ROOT if profile_name == REPORT_PROFILE else BUILD_DIR / "profiles" / profile_name


def rendered(profile_name: str, builder: str) -> Path:
    """Where a profile's book is rendered by ``builder`` (``html``, ``singlehtml``) or printed (``pdf``)."""
    return site_dir(profile_name) / "_build" / builder


def build_html(src: Path, profile_name: str) -> Path:
    """Render with Jupyter Book, strict: warnings are errors, nitpicky references."""
    return _jupyter_book(src, profile_name, "html") / "index.html"


def build_book(profile_name: str, force: bool = False) -> Path:
    """Execute the chapters, render the HTML and copy each chapter's downloadable tables beside its page."""
    run_chapters(profile_name, force=force)
    start = time.perf_counter()
    index = build_html(stage_book(profile_name), profile_name)
    downloads = executed_dir(profile_name) / "chapters" / results.DOWNLOADS_URL
    if downloads.is_dir():
        shutil.copytree(downloads, index.parent / "chapters" / results.DOWNLOADS_URL, dirs_exist_ok=True)
    print(f"html: built in {duration(time.perf_counter() - start)}", flush=True)
    return index


PRINT_CSS = """
.bd-header, .bd-sidebar-primary, .bd-sidebar-secondary, .skip-link, .header-article, .prev-next-area, footer,
.headerlink, #pst-back-to-top, .search-button, .bd-footer, .bd-footer-article, .bd-footer-content,
#jb-print-docs-body, details.above-input, details.below-input, .cell_input, .toggle-details, button, .copybtn,
.admonition-title::before, .admonition-title::after, .admonition::before { display: none !important; }
html, body, .bd-article, p, li, td, th, caption {
  font-family: var(--pst-font-family-base, "Liberation Sans", "DejaVu Sans", Arial, sans-serif) !important; }
body { font-size: 10pt; line-height: 1.45; color: #1f2328; }
h1, h2, h3, h4 { font-family: var(--pst-font-family-heading, "Liberation Sans", "DejaVu Sans", Arial, sans-serif)
  !important; color: #1f2328;
  break-after: avoid; }
h1 { font-size: 20pt; } h2 { font-size: 14pt; margin-top: 1.2em; } h3 { font-size: 12pt; }
pre, code, kbd { font-family: var(--pst-font-family-monospace, "DejaVu Sans Mono", monospace) !important;
  font-size: 0.85em; }
.bd-main .bd-content .bd-article-container { max-width: 100% !important; padding: 0 !important; }
.bd-page-width { max-width: 100% !important; }
.cell_output, .output, .output_area { overflow: visible !important; max-height: none !important; }
section.phase2-document { break-before: page; }
#phase2-title { break-after: page; text-align: center; padding-top: 30vh; }
#phase2-contents { break-after: page; }
#phase2-contents ol { list-style: none; padding-left: 0; }
#phase2-contents li { display: flex; align-items: baseline; margin: 0.35em 0; }
#phase2-contents li a { color: inherit; text-decoration: none; }
#phase2-contents .leader { flex: 1; border-bottom: 1px dotted #888; margin: 0 0.4em; }
table { font-size: 0.72em; border-collapse: collapse !important; border: none !important; margin: 0.6em 0; }
th, td { border: none !important; padding: 1px 6px !important; background: none !important; }
thead tr:first-child th { border-top: 1.2px solid #1f2328 !important; }
thead tr:last-child th { border-bottom: 0.8px solid #1f2328 !important; }
tbody tr:last-child td, tbody tr:last-child th { border-bottom: 1.2px solid #1f2328 !important; }
caption { caption-side: top; text-align: left; font-size: 1.1em; padding-bottom: 0.3em; }
.admonition { border: 0.8px solid #999 !important; border-left-width: 3px !important; box-shadow: none !important;
  background: none !important; }
.admonition-title { background: none !important; font-weight: bold; padding-left: 0.6em !important; }
tr, img, svg, figure { break-inside: avoid; }
svg { max-width: 100%; height: auto; }
a { color: inherit; }
"""

PRINT_WIDTH_PX = 688
"""The printed text width in CSS pixels: A4 (210 mm) less the 14 mm side margins, at 96 px per inch. The page is
laid out at this width before printing, so wide tables and figures can be fitted to it."""

_PREPARE_PRINT = """([css, subtitle]) => {
  const style = document.createElement('style'); style.textContent = css; document.head.appendChild(style);
  const article = document.querySelector('article.bd-article');
  const entries = [];
  for (const span of document.querySelectorAll('span[id^="document-"]')) {
    const section = span.nextElementSibling;
    const heading = section && section.querySelector('h1, h2');
    if (!heading) continue;
    section.classList.add('phase2-document');
    entries.push(`<li><a href="#${section.id}">${heading.firstChild.textContent.trim()}</a>` +
                 `<span class="leader"></span><span class="page"></span></li>`);
  }
  const title = document.querySelector('article h1').firstChild.textContent.trim();
  article.insertAdjacentHTML('afterbegin', `<div id="phase2-title"><h1>${title}</h1><p>${subtitle}</p></div>` +
    `<div id="phase2-contents"><h2>Contents</h2><ol>${entries.join('')}</ol></div>`);
  let fitted = 0;
  for (const wide of document.querySelectorAll('table, svg, img')) {
    const room = wide.parentElement.clientWidth;
    const width = wide.scrollWidth || wide.getBoundingClientRect().width;
    if (room > 0 && width > room + 1) { wide.style.zoom = room / width; fitted += 1; }
  }
  return [entries.length, fitted];
}"""

_NUMBER_CONTENTS = """(pages) => {
  document.querySelectorAll('#phase2-contents li .page').forEach((cell, i) => { cell.textContent = pages[i]; });
}"""

FOOTER = ('<div style="width: 100%; font-size: 8px; font-family: DejaVu Sans, sans-serif; color: #555; '
          'text-align: center;"><span class="pageNumber"></span></div>')
"""Chromium's page footer: the page number, centred."""


def contents_pages(pdf: bytes, titles: list[str]) -> list[str]:
    """The page (1-based) on which each of ``titles`` starts, read from the PDF's outline (Chromium writes one
    bookmark per heading); ``?`` for a title the outline lacks."""
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(pdf))
    found: dict[str, int] = {}

    def walk(items):
        for item in items:
            if isinstance(item, list):
                walk(item)
            else:
                found.setdefault(" ".join(str(item.title).split()), reader.get_destination_page_number(item) + 1)

    walk(reader.outline)
    return [str(found.get(" ".join(t.split()), "?")) for t in titles]


def build_pdf(profile_name: str) -> Path:
    """``book.pdf`` (:func:`rendered`) from the executed chapters: Jupyter Book's single-page HTML, with a title page
    and a table of contents added, printed by headless Chromium (text stays text, the SVG charts vectors)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise ChapterError("the PDF is printed by headless Chromium, which is not installed: apt-get install chromium "
                           "(`make pdf` does it)")
    executed = executed_dir(profile_name) / "chapters"
    missing = [nb.name for nb in chapter_notebooks() if not (executed / nb.name).exists()]
    if missing:
        raise ChapterError(f"no executed {', '.join(missing)} for profile {profile_name!r}: build the book first "
                           f"(python -m phase2 book --profile {profile_name})")
    from playwright.sync_api import sync_playwright

    start = time.perf_counter()
    src = stage_book(profile_name)
    page_path = _jupyter_book(src, profile_name, "singlehtml") / "book" / "index.html"
    pdf = rendered(profile_name, "pdf") / "book.pdf"
    pdf.parent.mkdir(parents=True, exist_ok=True)
    commit = results.run_metadata(profile_name, "pdf", seed=0)["git_commit"]
    subtitle = (f"An empirical study of quality-memory-throughput trade-offs<br><br>{profile_name} profile, "
                f"git {commit}, printed {time.strftime('%Y-%m-%d')}")
    options = {"format": "A4", "print_background": True, "outline": True, "tagged": True,
               "display_header_footer": True, "header_template": "<span></span>", "footer_template": FOOTER,
               "margin": {"top": "16mm", "bottom": "18mm", "left": "14mm", "right": "14mm"}}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": PRINT_WIDTH_PX, "height": 1000})
        page.goto(page_path.resolve().as_uri(), wait_until="load")
        page.emulate_media(media="print")
        chapters, fitted = page.evaluate(_PREPARE_PRINT, [PRINT_CSS, subtitle])
        titles = page.evaluate("() => [...document.querySelectorAll('#phase2-contents li a')].map(a => a.textContent)")
        page.evaluate(_NUMBER_CONTENTS, contents_pages(page.pdf(**options), titles))  # pass 1 finds the pages
        partial = pdf.with_name(f".partial-{pdf.name}")
        page.pdf(path=str(partial), **options)
        browser.close()
    partial.replace(pdf)
    print(f"pdf: {chapters} chapters printed ({fitted} wide tables and figures fitted to the page) in "
          f"{duration(time.perf_counter() - start)} -> "
          f"{pdf.relative_to(PROJECT_ROOT)}", flush=True)
    return pdf
