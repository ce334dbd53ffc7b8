"""The chapters as a user meets them: clean sources, papermill runs, nbval re-runs, the CLI, the built book."""

import ast
import json
import os
import re
import subprocess
import sys

import nbformat
import pandas as pd
import papermill
import pytest

import phase2
from phase2.__main__ import main
from phase2.book import charts, pipeline
from phase2.experiments import harness, params

from conftest import cold_cache

CHAPTERS = pipeline.chapter_notebooks()
QUALITY = params.CHAPTERS_DIR / "quality_vs_memory.ipynb"
THROUGHPUT = params.CHAPTERS_DIR / "throughput.ipynb"
RESCORING = params.CHAPTERS_DIR / "rescoring.ipynb"
GEOMETRY = params.CHAPTERS_DIR / "geometry.ipynb"
REGIMES = params.CHAPTERS_DIR / "regimes.ipynb"
CONCLUSION = params.CHAPTERS_DIR / "conclusion.ipynb"
REPRODUCTION = params.CHAPTERS_DIR / "reproduction.ipynb"


def markdown_outputs(path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "".join(o.get("data", {}).get("text/markdown", "") + o.get("data", {}).get("text/html", "")
                   + o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.stem)
def test_source_notebook_carries_no_outputs(notebook):
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{notebook.name}: strip outputs"


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.stem)
def test_parameters_cell_is_first_and_holds_typed_literals_with_help(notebook):
    nb = nbformat.read(notebook, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "parameters" in first.metadata.get("tags", [])
    for node in ast.parse(first.source).body:
        assert isinstance(node, ast.AnnAssign) and isinstance(node.value, ast.Constant), ast.unparse(node)
    for line in first.source.splitlines():
        assert re.match(r"^\w+: (str|int|float|bool) = .+  # \S", line), line


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.stem)
def test_every_numbered_table_and_figure_is_displayed(notebook):
    """``chapter.table(...)`` numbers a table and returns it; only a cell's last expression is shown without
    ``display``, so one anywhere else would take a number and never appear (the book would skip from Table 7 to 10)."""
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        body = ast.parse(cell.source).body
        for node in ast.walk(ast.Module(body=body[:-1] + [s for s in body[-1:] if not isinstance(s, ast.Expr)],
                                        type_ignores=[])):
            call = node.value if isinstance(node, ast.Expr) else None
            assert not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                        and call.func.attr in ("table", "figure") and ast.unparse(call.func.value) == "chapter"), (
                f"{notebook.name}: {ast.unparse(node)[:80]} is never displayed; wrap it in display()")


@pytest.fixture(scope="module")
def executed(smoke_build):
    """Every chapter executed by papermill on the smoke profile (by the smoke book build), and its results."""
    return smoke_build.results, [smoke_build.executed / nb.name for nb in CHAPTERS]


def test_smoke_profile_executes_every_chapter_and_writes_results(executed):
    results, paths = executed
    assert all(p.is_file() for p in paths)
    chapters = paths[0].parent
    assert len(list((results / "quality_vs_memory").glob("*.parquet"))) == 1
    text = markdown_outputs(chapters / QUALITY.name)
    assert "codes lost more than 5% on at least one collection: " in text
    assert "binary (1-bit sign) (48 B, 80.4%)" in text  # tie-aware nDCG@10 (80.5% in row order)
    assert "**At equal memory**" in text and ("- 48 B/vector: minilm-l6 -7.2% [-15.8, +1.3], inconclusive (1 "
                                              "collection). Per collection: cranfield/minilm-l6 inconclusive.") \
        in text and "Bytes per vector at N = 1,000,000, within 2% of the budget" in text
    assert "binary with rescoring 39.07 (93.79%), int8 37.82 (90.79%)" in text
    assert "(BIN+R40BINa), 88.2% (1 collection, cranfield), against the report's 93.79%" in text
    assert "as `quantize_embeddings` does (SQ8raw, no rescoring), 92.4% (1 collection, cranfield), against 90.79%" \
        in text  # an independent computation of sentence-transformers' protocol gave 92.4% too
    assert "as this book fits every trained codec, 92.0% (1 collection, cranfield)" in text
    assert "**Training on the whole corpus:** Fitted on every vector it encodes instead of on half of them" in text
    assert len(list((results / "rescoring").glob("*.parquet"))) == 1
    text = markdown_outputs(chapters / RESCORING.name)
    assert ("- BIN rescored with Flat: cranfield/minilm-l6: 80.4% alone, equivalent to float32 from "
            "factor") in text
    (throughput_run,) = (results / "throughput").glob("*.parquet")
    run = pd.read_parquet(throughput_run)
    assert harness.KERNEL_DATA in set(run.data_kind)  # the kernel comparison is kept too
    widest = phase2.blas_core("timing", phase2.cpu_flags())  # the chapter that measures speed runs the widest
    assert widest is None or all(entry.endswith(" " + widest) for entry in  # OpenBLAS kernels the CPU has
                                 json.loads(run.machine.iloc[0])["blas"].split(", "))
    text = markdown_outputs(chapters / THROUGHPUT.name)
    assert "this project's Hamming scan ran at" in text and "of the scan's arithmetic roof" in text
    assert "Recall@10 >= 0.9" in text
    assert "the generator fitted to the whole real corpus gave recall@10 within" in text  # the generator check ran
    assert "the generator fitted to a small real subset, then drawn at this size" in text  # and its extrapolation
    assert "This disk answered a random 4 KiB direct read in" in text and "Embedding one query took" in text
    assert len(list((results / "geometry").glob("*.parquet"))) == 1
    text = markdown_outputs(chapters / GEOMETRY.name)
    assert "The plain sign code loses between 19.6 and 19.6 points" in text
    assert "correlations and held-out predictions need at least three" in text
    text = markdown_outputs(chapters / REGIMES.name)
    assert "a binary scheme wins" in text and ("choose" in text or "no measured scheme meets" in text)
    assert "EXTRAPOLATED" in text  # smoke measures 2,000 vectors at most
    text = markdown_outputs(chapters / CONCLUSION.name)
    assert "Quality at equal memory" in text and 'href="quality_vs_memory.html#equal-memory"' in text
    assert 'href="regimes.html#which-scheme-wins-where"' in text
    answers = text[text.index("**RQ1."):]
    assert "The 1-bit sign code (48 B/vector" in answers and "Exhaustive 1-bit search answered" in answers
    assert "Pooled over collections (random effects, 95% interval), it kept 80.4% [" in answers
    # pinned: every machine reads the same embeddings (the published store); the old cell counts at 10^6 (worse 3,
    # inconclusive 2 of 5) are the same outcomes as these pooled rows of the one collection
    assert ("binary minus the best other code in % of float32's nDCG@10, pooled over collections by random effects, "
            "was 32 B: minilm-l6 -6.2% [-16.0, +3.6] inconclusive; 48 B: minilm-l6 -7.2% [-15.8, +1.3] inconclusive; "
            "64 B: minilm-l6 -11.3% [-19.6, -3.0] worse; 96 B: minilm-l6 -11.0% [-19.0, -3.0] worse") in answers
    assert " cells" not in answers[:answers.index("**RQ2.")]  # the quality answer pools; it does not count cells
    assert "Results read: quality_vs_memory run " in text and "; throughput run " in text
    assert "this project's Hamming scan ran at" in answers
    assert "The plain sign code loses between 19.6 and 19.6 points" in answers
    assert "Asking for recall@10 >= 0.9 of exact search, over 36" in answers
    text = markdown_outputs(chapters / REPRODUCTION.name)
    assert "default" in text and "smoke" in text


def test_the_smoke_build_prints_one_line_as_each_chapter_starts_and_ends(smoke_build):
    lines = smoke_build.console.splitlines()
    chapters = [line for line in lines if re.match(r"\d+/\d+ \w+: ", line)]
    assert len(chapters) == 2 * len(CHAPTERS) and all(line.strip() for line in lines), smoke_build.console[-3000:]
    others = [line for line in lines if line not in chapters]
    assert all(re.match(r"precompute: |html: |book \(smoke profile\) built in ", line) for line in others), others
    for notebook in CHAPTERS:  # what the kernels printed (progress, faiss's native warnings) went to each log
        assert pipeline.chapter_log(smoke_build.executed / notebook.name).is_file()
    assert "please provide at least" in pipeline.chapter_log(smoke_build.executed / "throughput.ipynb").read_text()


def test_nbval_reexecution_reproduces_checked_tables(executed, tmp_path):
    """nbval re-runs every executed chapter in a new cache (only embeddings and compiled kernels copied in) and an
    empty published-results folder, so the checked outputs are recomputed, not read back from the searches the
    first run cached or from the committed results."""
    _, paths = executed
    cache = cold_cache(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q",
                           *map(str, paths)], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PHASE2_RESULTS_DIR": str(tmp_path / "results"),
                               "PHASE2_CACHE_DIR": str(cache), "PHASE2_PUBLISHED_DIR": str(tmp_path / "published")})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert len(list((cache / "search").glob("*.ids.npy"))) >= 36  # the quality chapter searched every codec again


@pytest.mark.parametrize(("notebook", "parameters", "message"), [
    (QUALITY, {"dataset": "nosuchset"}, "dataset: unknown 'nosuchset'; valid: "),
    (QUALITY, {"model": "bert"}, "model: unknown 'bert'; valid: minilm-l6"),
    (QUALITY, {"codecs": "Flat,XYZ"}, "unknown codec 'XYZ'; valid codecs: Flat, FP16, BF16, SQ8"),
    (QUALITY, {"k": 0}, "parameter 'k' must be >= 100, got 0"),
    (QUALITY, {"k": "ten"}, "parameter 'k' must be int, got str 'ten'"),
    (QUALITY, {"datset": "scifact"}, "unknown parameter(s) 'datset'; this chapter's parameters are: dataset, model"),
    (THROUGHPUT, {"sizes": "1000,lots"}, "sizes: expected comma-separated integers, got '1000,lots'"),
    (THROUGHPUT, {"sizes": "10"}, "sizes: expected integers >= 100, got '10'"),
    (THROUGHPUT, {"methods": "flat,nope"}, "methods: unknown 'nope'; valid: flat, sq8, pq"),
    (THROUGHPUT, {"kernel_bits": "384,20"}, "kernel_bits: expected multiples of 8, got '384,20'"),
    (THROUGHPUT, {"model": "minilm-l6,minilm-l6"}, "model: 'minilm-l6,minilm-l6' names an entry twice"),
    (RESCORING, {"rescore_with": "Flat,ITQ"}, "rescore_with: unknown 'ITQ'; valid: Flat, FP16, BF16, SQ8, SQ4"),
    (RESCORING, {"factors": "1,0"}, "factors: expected integers >= 1, got '1,0'"),
    (RESCORING, {"first_stages": "BIN,NOPE"}, "unknown codec 'NOPE'"),
    (GEOMETRY, {"sample": 5}, "parameter 'sample' must be >= 20, got 5"),
    (REGIMES, {"memory_budgets": "1GB,4XB"}, "memory: expected a size such as 4GB"),
    (REGIMES, {"target_recalls": "0.9,1.5"}, "target_recalls: expected numbers between 0.01 and 1.0, got '0.9,1.5'"),
    (CONCLUSION, {"latency_targets": "fast"}, "latency_targets: expected comma-separated integers, got 'fast'"),
    (REPRODUCTION, {"profile": "nope"}, "profile: unknown 'nope'; valid: default, full, smoke"),
], ids=lambda v: v.stem if hasattr(v, "stem") else None)
def test_papermill_with_a_bad_parameter_stops_with_a_clear_message(tmp_path, notebook, parameters, message):
    extra = {"kernel_n": 1000} if notebook == THROUGHPUT else {}  # never reached: parameters fail first
    with pytest.raises(papermill.PapermillExecutionError) as err:
        papermill.execute_notebook(str(notebook), str(tmp_path / "out.ipynb"), parameters={**extra, **parameters},
                                   cwd=str(tmp_path), progress_bar=False)
    assert message in str(err.value)


def test_cli_rejects_unknown_parameter_before_running(capsys):
    assert main(["chapter", "quality_vs_memory", "-p", "datset", "scifact"]) == 2
    assert "unknown parameter(s) 'datset'" in capsys.readouterr().err
    assert main(["chapter", "nochapter"]) == 2
    err = capsys.readouterr().err
    assert ("unknown chapter 'nochapter'; chapters: method, quality_vs_memory, rescoring, throughput, geometry, "
            "regimes, conclusion, reproduction") in err


def test_cli_reports_a_failing_chapter_briefly(capsys, tmp_path):
    args = ["chapter", "quality_vs_memory", "-p", "dataset", "nosuchset", "--output", str(tmp_path / "o.ipynb")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "chapter quality_vs_memory failed in cell" in err and "ParameterError: dataset: unknown 'nosuchset'" in err
    assert "the executed notebook, with the error, is at" in err


def test_a_chapter_run_prints_no_kernel_transport_warning(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "phase2", "chapter", "method", "--output", str(tmp_path / "m.ipynb")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "WARNING" not in proc.stderr and "without encryption" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stdout.strip() == f"executed: {tmp_path / 'm.ipynb'}"


def test_cli_lists_parameters(capsys):
    assert main(["chapter", "quality_vs_memory", "--list"]) == 0
    assert 'k: int = 100  # depth of each ranked list' in capsys.readouterr().out


def test_another_profiles_book_never_replaces_the_reports():
    report = {builder: pipeline.rendered("default", builder) for builder in ("html", "singlehtml", "pdf")}
    assert report["html"] == pipeline.BUILD_DIR / "html" and report["pdf"] == pipeline.BUILD_DIR / "pdf"  # README's
    for builder, path in report.items():
        smoke = pipeline.rendered("smoke", builder)
        assert smoke.is_relative_to(pipeline.BUILD_DIR / "profiles" / "smoke") and not smoke.is_relative_to(path)


def test_smoke_book_builds_strictly_with_visible_offline_charts(smoke_book):
    html = smoke_book
    assert html == pipeline.rendered("smoke", "html")
    for page in ["book/index.html", *(f"chapters/{nb.stem}.html" for nb in CHAPTERS),
                 *(f"book/{name}.html" for name in ("design_space", "architecture", "spec", "literature", "roadmap"))]:
        assert (html / page).is_file(), page
    literature = (html / "book" / "literature.html").read_text()
    assert "Gong and Lazebnik, 2011" in literature and "Iterative quantization" in literature  # bibliography
    for chapter in ("quality_vs_memory", "rescoring", "throughput", "geometry", "regimes"):
        page = (html / "chapters" / f"{chapter}.html").read_text()
        assert not re.findall(r'<script[^>]+src="https?://', page), "the book must not load scripts from the network"
        figures = re.findall(r'<figure class="phase2-chart" id="fig-[a-z0-9-]+" data-number="\d+">(.*?)</figure>',
                             page, re.S)
        assert figures, f"{chapter}: no chart"
        for chart in figures:  # a static SVG with marks (no scripts needed), its live spec, a numbered caption
            assert '<svg' in chart and 'role="graphics-symbol"' in chart, f"{chapter}: chart without marks"
            assert re.search(r'<script type="application/json" class="phase2-spec">\{', chart), chapter
            assert re.search(r"<figcaption><strong>Figure \d+\.</strong> \w", chart), f"{chapter}: no caption"
        tables = [int(n) for n in re.findall(r'<figure class="phase2-table" id="tab-[a-z0-9-]+" data-number="(\d+)"',
                                             page)]
        assert tables == list(range(1, len(tables) + 1)), f"{chapter}: tables numbered {tables}"
        anchors = set(re.findall(r'id="((?:fig|tab)-[a-z0-9-]+)"', page))
        references = re.findall(r'href="#((?:fig|tab)-[a-z0-9-]+)">(?:Figure|Table) \d+</a>', page)
        assert references and set(references) <= anchors, f"{chapter}: a reference without target"
        assert "](#fig-" not in page and "](#tab-" not in page, f"{chapter}: an unresolved reference"
        for script in charts.SCRIPTS:  # the local Vega bundle and ours, on every page
            assert f'src="../_static/{script}' in page and (html / "_static" / script).is_file(), script
