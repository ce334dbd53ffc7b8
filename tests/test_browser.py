"""The built book in a real browser: headless Chromium (Debian's package) with networking features off.

Every page loads with no console or page errors and no failed request, every image is decoded with a
size, and every internal link resolves. The charts turn live (the local Vega bundle replaces their static
SVG), each has a numbered caption, and a tooltip appears on hover in every chapter with charts.
Screenshots of each chapter are kept under ``_build/screenshots/``.
"""

import os
import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from phase2 import PROJECT_ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]
PAGES = ["book/index.html", "chapters/method.html", "chapters/quality_vs_memory.html", "book/glossary.html"]
CHAPTERS = ["method", "quality_vs_memory", "rescoring", "throughput", "geometry", "regimes", "conclusion",
            "reproduction"]

if CHROMIUM is None:
    if os.environ.get("CI"):
        pytest.fail("CI needs Debian's chromium: `make test` installs it (apt-get install chromium)",
                    pytrace=False)
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(str(tmp_path_factory.mktemp("profile")), headless=True,
                                                        executable_path=CHROMIUM, args=FLAGS)
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
        yield page, problems
        context.close()


@pytest.mark.parametrize("relative", PAGES)
def test_page_loads_cleanly_with_rendered_images_and_working_links(smoke_book, browser_page, relative):
    page, problems = browser_page
    problems.clear()
    page.goto((smoke_book / relative).resolve().as_uri(), wait_until="load")
    assert problems == []
    images = page.evaluate("Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])")
    assert all(complete and width > 0 for _, complete, width in images), images
    for href in page.evaluate("Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"):
        url = urlparse(href)
        if url.scheme == "file":
            assert Path(unquote(url.path)).exists(), f"broken internal link {href} on {relative}"


def test_quality_chapter_shows_its_chart_and_is_screenshotted(smoke_book, browser_page):
    page, problems = browser_page
    problems.clear()
    page.goto((smoke_book / "chapters/quality_vs_memory.html").resolve().as_uri(), wait_until="load")
    page.wait_for_function("document.querySelectorAll('.phase2-chart').length == "
                           "document.querySelectorAll('.phase2-chart.phase2-live').length")
    charts = page.evaluate("Array.from(document.querySelectorAll('.phase2-live .phase2-view svg'))"
                           ".map(s => [s.getBoundingClientRect().width, s.getBoundingClientRect().height])")
    assert charts and all(w > 100 and h > 100 for w, h in charts), charts
    assert problems == []
    shot = PROJECT_ROOT / "_build" / "screenshots" / "quality_vs_memory.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


CHARTED = ["quality_vs_memory", "rescoring", "throughput", "geometry", "regimes"]


@pytest.mark.parametrize("chapter", CHARTED)
def test_every_chart_is_live_captioned_and_answers_a_hover(smoke_book, browser_page, chapter):
    page, problems = browser_page
    problems.clear()
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto((smoke_book / f"chapters/{chapter}.html").resolve().as_uri(), wait_until="load")
    page.wait_for_function("document.querySelectorAll('.phase2-chart').length == "
                           "document.querySelectorAll('.phase2-chart.phase2-live').length")
    captions = page.evaluate("Array.from(document.querySelectorAll('.phase2-chart'))"
                             ".map(f => (f.querySelector('figcaption') || {}).textContent || '')")
    assert captions and all(re.match(r"Figure \d+\. \w", c) for c in captions), captions
    assert [int(c.split()[1].rstrip(".")) for c in captions] == list(range(1, len(captions) + 1))
    mark = page.locator(".phase2-live svg g.mark-symbol path, .phase2-live svg g.mark-rect path").first
    mark.scroll_into_view_if_needed()
    box = mark.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector("#vg-tooltip-element.visible", timeout=5000)
    assert page.inner_text("#vg-tooltip-element").strip(), f"{chapter}: empty tooltip"
    assert problems == []


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_fits_1280px_folds_its_code_and_is_screenshotted(smoke_book, browser_page, chapter):
    """A reader at 1280 px: the page never scrolls sideways, every code cell sits behind "show code", the run's
    parameters read as one line; a screenshot per chapter lands in _build/screenshots/ for review."""
    page, _ = browser_page
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto((smoke_book / f"chapters/{chapter}.html").resolve().as_uri(), wait_until="load")
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    visible_code = page.evaluate("Array.from(document.querySelectorAll('.cell_input'))"
                                 ".filter(e => !e.closest('details:not([open])')).length")
    assert visible_code == 0, f"{chapter}: {visible_code} code cell(s) shown without 'show code'"
    assert "Run with: profile smoke" in page.inner_text("main")
    shot = PROJECT_ROOT / "_build" / "screenshots" / f"{chapter}.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=False)


def test_front_page_answers_are_the_conclusions(smoke_book, browser_page):
    page, _ = browser_page
    page.goto((smoke_book / "chapters/conclusion.html").resolve().as_uri(), wait_until="load")
    conclusion = " ".join(page.inner_text("main").split())
    page.goto((smoke_book / "book/index.html").resolve().as_uri(), wait_until="load")
    front = " ".join(page.inner_text("main").split()).split("What the study found", 1)[1]
    for rq in ("RQ1", "RQ2", "RQ3", "RQ4"):
        answer = re.search(rf"{rq}\. .*?\?(.*?)\(Evidence:", front)
        assert answer, f"front page: no answer to {rq}"
        assert answer[1].strip()[:300] in conclusion, rq
