"""The report outside the HTML: every results table as CSV and JSON, the chapters' downloads, and the PDF."""

import os
import re
import shutil
import subprocess
import sys

import nbformat
import pandas as pd
import pytest

from phase2 import PROJECT_ROOT
from phase2.book import pipeline
from phase2.experiments import results

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.parametrize("fmt", results.EXPORT_FORMATS)
def test_results_export_of_the_smoke_book_round_trips_every_table(smoke_build, tmp_path, fmt):
    env = {**os.environ, "PHASE2_RESULTS_DIR": str(smoke_build.results)}
    proc = subprocess.run([sys.executable, "-m", "phase2", "results", "export", "--profile", "smoke", "--format", fmt,
                           "--to", str(tmp_path)], capture_output=True, text=True, cwd=PROJECT_ROOT, env=env)
    assert proc.returncode == 0, proc.stderr
    chapters = sorted(p.name for p in smoke_build.results.iterdir() if any(p.glob("*.parquet")))
    assert chapters == ["geometry", "quality_vs_memory", "rescoring", "throughput"]
    for chapter in chapters:
        original = results.read_results(chapter, smoke_build.results, profile="smoke")
        pd.testing.assert_frame_equal(results.read_export(tmp_path / f"{chapter}.{fmt}"), original, check_exact=True)
        assert f"exported: {tmp_path / f'{chapter}.{fmt}'}" in proc.stdout


def test_every_chart_chapter_links_its_tables_and_they_are_in_the_book(smoke_build):
    for chapter in ("quality_vs_memory", "rescoring", "throughput", "geometry", "regimes"):
        page = (smoke_build.html / "chapters" / f"{chapter}.html").read_text()
        links = re.findall(rf'href="{results.DOWNLOADS_URL}/({chapter}-[\w-]+\.(csv|json))"', page)
        assert {fmt for _, fmt in links} == set(results.EXPORT_FORMATS), chapter
        for name, _ in links:
            table = results.read_export(smoke_build.html / "chapters" / results.DOWNLOADS_URL / name)
            assert len(table) > 0, name


def test_pdf_has_a_page_for_every_chapter_and_the_conclusions_verdict_table(smoke_build):
    if CHROMIUM is None:
        message = "the PDF is printed by Debian's chromium (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"CI needs {message}", pytrace=False)
        pytest.skip(message)
    from pypdf import PdfReader

    env = {**os.environ, "PHASE2_RESULTS_DIR": str(smoke_build.results)}
    proc = subprocess.run([sys.executable, "-m", "phase2", "pdf", "--profile", "smoke"], capture_output=True,
                          text=True, cwd=PROJECT_ROOT, env=env)
    assert proc.returncode == 0, proc.stderr
    reader = PdfReader(pipeline.rendered("smoke", "pdf") / "book.pdf")
    pages = [" ".join(page.extract_text().split()) for page in reader.pages]
    text = " ".join(pages)
    titles = [_title(notebook) for notebook in pipeline.chapter_notebooks()]
    assert 2 + len(titles) <= len(pages) <= 200
    assert "Binary Retrieval with LLM Embeddings" in pages[0] and "smoke profile" in pages[0]
    assert pages[1].startswith("Contents") and all(title in pages[1] for title in titles)
    for title in titles:
        assert text.count(title) >= 2, f"chapter {title!r} is missing from the PDF's body"
    assert "\ufffd" not in text
    conclusion = text[text.rindex(_title(PROJECT_ROOT / "chapters" / "conclusion.ipynb")):]
    executed = nbformat.read(smoke_build.executed / "conclusion.ipynb", as_version=4)
    table = next(o["data"]["text/html"] for c in executed.cells for o in c.get("outputs", [])
                 if "text/html" in o.get("data", {}) and "B/vector" in o["data"]["text/html"])
    cells = [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", table, re.S)]
    assert cells and all(" ".join(cell.split()) in conclusion for cell in cells if cell), cells


def _title(notebook) -> str:
    first = nbformat.read(notebook, as_version=4).cells[0].source
    return first.splitlines()[0].lstrip("# ").strip()
