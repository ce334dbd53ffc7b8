"""The reader's view of a chapter: code folded behind "show code", the injected parameters as one line."""

from pathlib import Path

import nbformat
import pandas as pd

from phase2.book import context, pages


def executed_chapter() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"parameters": {"dataset": "cranfield,scifact", "stored_model": "", "profile": "smoke"}}
    nb.cells = [nbformat.v4.new_markdown_cell("# Title", id="title"),
                nbformat.v4.new_code_cell('dataset: str = "cranfield"  # help', id="params",
                                          metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell('# Parameters\ndataset = "cranfield,scifact"', id="injected",
                                          metadata={"tags": ["injected-parameters"]}),
                nbformat.v4.new_code_cell("import pandas", id="setup"),
                nbformat.v4.new_code_cell("verdict()", id="verdict", metadata={"tags": ["remove-input"]})]
    return nb


def test_reader_view_folds_code_and_states_the_run_in_one_line():
    nb = executed_chapter()
    view = pages.reader_view(nb)
    assert [c.get("id") for c in view.cells] == ["title", "params", "injected-run", "setup", "verdict"]
    assert view.cells[2].cell_type == "markdown"
    assert view.cells[2].source == "*Run with: profile **smoke**; dataset cranfield,scifact.*"
    assert view.cells[1].metadata.tags == ["parameters", "hide-input"] and view.cells[3].metadata.tags == ["hide-input"]
    assert view.cells[4].metadata.tags == ["remove-input"]  # already hidden: left alone
    assert [c.get("id") for c in nb.cells][2] == "injected" and "hide-input" not in nb.cells[3].metadata.get(
        "tags", [])  # the executed record is not changed
    nbformat.validate(view)


def test_tables_keep_their_links():
    html = pages.html_table(pd.DataFrame({"a": [pages.linked("worse", "quality.html#x"), None]})).data
    assert '<a href="quality.html#x">worse</a>' in html and "<td>-</td>" in html


def test_codec_tables_show_what_a_reader_compares_and_link_the_glossary():
    summary = pd.DataFrame({"name": ["Flat", "BIN+R4Flat"], "bytes/vector": [1536, 48],
                            "rescore bytes/vector": [0, 1536], "bytes/vector at N": [1536.0, 48.25],
                            "nDCG@10": [0.41234, 0.4], "% float32 nDCG@10": [100.0, 97.04],
                            "Δ nDCG@10 [95% CI]": ["+0.000", "-0.012 [-0.02, -0.01]"]})
    html = pages.codec_table(summary).data
    assert '<a href="../book/glossary.html#glossary-codecs"><code>BIN+R4Flat</code></a>' in html
    for cell in ("1,536", "48.2", "0.412", "97.0", "-0.012 [-0.02, -0.01]"):
        assert f"<td>{cell}</td>" in html
    assert html.count("<th>") == 7


def test_the_findings_box_repeats_the_computed_summary_under_the_title():
    nb = executed_chapter()
    nb.cells[4].metadata.tags.append("findings")
    nb.cells[4].outputs = [nbformat.v4.new_output("display_data", data={"text/markdown": "- binary is **worse**"})]
    view = pages.reader_view(nb)
    assert view.cells[1].get("id") == "findings-box"
    assert view.cells[1].source.startswith("````{admonition} Findings\n:class: tip\n\n- binary is **worse**")
    assert pages.findings_box(executed_chapter()) is None


def test_charts_carry_their_spec_a_static_svg_and_a_numbered_caption():
    import json
    import re

    import altair as alt
    import pandas as pd
    import yaml

    from phase2 import PROJECT_ROOT
    from phase2.book import charts

    chart = alt.Chart(pd.DataFrame({"a": [1, 2], "b": ["</script>", "x"]})).mark_point().encode(
        x="a:Q", tooltip=["b:N"])
    chapter = context.Chapter({}, Path("."))
    first, second = chapter.figure(chart, "Look <here>.", "first"), chapter.figure(chart, "Then here.", "second")
    assert (first.number, second.number) == (1, 2)  # numbered by the chapter, in the order it displays them
    page = first._repr_mimebundle_()["text/html"]
    assert page.count("</script>") == 1  # the data's own "</script>" is escaped inside the spec
    spec = re.search(r'class="phase2-spec">(.*?)</script>', page, re.S)[1]
    assert json.loads(spec)["mark"]["type"] == "point"
    assert "<svg" in page and f"<strong>Figure {first.number}.</strong> Look &lt;here&gt;." in page
    assert f'<figure class="phase2-chart" id="fig-first" data-number="{first.number}">' in page
    config = yaml.safe_load((PROJECT_ROOT / "_config.yml").read_text())["sphinx"]["config"]
    assert config["html_js_files"] == list(charts.SCRIPTS) and config["html_static_path"] == ["_static"]
    assert set(charts.static_files()) == set(charts.SCRIPTS)


def test_tables_are_numbered_captioned_and_anchored():
    import pytest

    frame = pd.DataFrame({"bytes": [48, 1536]}, index=["BIN", "Flat"])
    chapter = context.Chapter({}, Path("."))
    first = chapter.table(frame, "Bytes <per> vector.", "bytes")
    second = chapter.table(pages.html_table(frame), "The same as HTML.", "bytes-html")
    assert (first.number, second.number) == (1, 2)
    assert context.Chapter({}, Path(".")).table(frame, "Another chapter's first.", "bytes").number == 1
    bundle = first._repr_mimebundle_()
    assert bundle["text/html"].startswith(f'<figure class="phase2-table" id="tab-bytes" data-number="{first.number}"')
    assert f"<strong>Table {first.number}.</strong> Bytes &lt;per&gt; vector." in bundle["text/html"]
    assert "<td>1536</td>" in bundle["text/html"] and bundle["text/plain"].startswith(f"Table {first.number}. Bytes")
    assert "<td>1536</td>" in second._repr_mimebundle_()["text/html"]
    with pytest.raises(ValueError, match="Table label"):
        chapter.table(frame, "x", "Bad Label")
    with pytest.raises(TypeError, match="'bytes'"):
        chapter.table([1, 2], "x", "bytes")


def test_the_text_refers_to_figures_and_tables_by_number():
    import pytest

    nb = executed_chapter()
    shown = pages.table(pd.DataFrame({"a": [1]}), "Shown.", "shown", 3)._repr_mimebundle_()
    nb.cells[4].source = 'pages.table(frame, "Shown.", "shown")\nif many:\n    figure(chart, "Pairs.", "pairs")'
    nb.cells[4].outputs = [nbformat.v4.new_output("display_data", data=shown)]
    nb.cells[0].source = "# Title\n\n[Table](#tab-shown) holds it; [Figure](#fig-pairs) draws the pairs."
    view = pages.reader_view(nb)
    number = pages._ANCHOR.search(shown["text/html"])[2]
    assert view.cells[0].source == (f'# Title\n\n<a href="#tab-shown">Table {number}</a> holds it; '
                                    "the figure (not shown in this run) draws the pairs.")
    assert "[Table]" in nb.cells[0].source  # the executed record is not changed
    nb.cells[0].source = "See [Figure](#fig-typo)."
    with pytest.raises(ValueError, match=r"quality: the text refers to #fig-typo"):
        pages.reader_view(nb, "quality")
