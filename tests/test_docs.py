"""The book's reference pages list what the code defines: codec names, result columns, profiles."""

import re

import pytest

from phase2 import PROJECT_ROOT, codecs
from phase2.book import pages
from phase2.evaluation import metrics
from phase2.experiments import params, published
from phase2.findings import answers

SPEC = PROJECT_ROOT / "book" / "spec.md"


def listed(block: str) -> list[str]:
    text = SPEC.read_text()
    body = re.search(rf"<!-- {block} -->(.*?)<!-- /{block} -->", text, re.S)
    assert body, f"{SPEC}: no <!-- {block} --> block"
    return re.findall(r"`([^`]+)`", body[1])


@pytest.mark.parametrize(("block", "defined"), [
    ("codec-patterns", [*codecs.CODECS, *codecs.PATTERNS]),
    ("profiles", params.profile_names()),
])
def test_spec_lists_match_the_code(block, defined):
    assert listed(block) == list(defined)


def test_the_spec_page_includes_the_generated_schema():
    assert f"```{{include}} {pages.SCHEMA_TABLE}" in SPEC.read_text()


def test_the_glossary_includes_the_metric_table_generated_from_the_registry():
    assert f"```{{include}} {pages.METRIC_TABLE}" in (PROJECT_ROOT / "book" / "glossary.md").read_text()
    table = metrics.metric_table()
    names = [line.split("`")[1] for line in table.splitlines()[2:]]
    assert names == list(metrics.REGISTRY) == list(published.EVALUATED)


def test_every_citation_has_a_reference():
    bib = (PROJECT_ROOT / "book" / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    cited = set()
    for page in (PROJECT_ROOT / "book").glob("*.md"):
        for group in re.findall(r"\{cite:[pt]\}`([^`]+)`", page.read_text()):
            cited.update(k.strip() for k in group.split(","))
    assert cited and cited <= keys, sorted(cited - keys)


def test_the_front_page_asks_the_questions_the_conclusion_answers():
    front = " ".join((PROJECT_ROOT / "book" / "index.md").read_text().split())
    for rq, question in answers.QUESTIONS.items():
        assert f"**{rq}.** {question}" in front, rq


def test_the_glossary_names_every_codec_method_and_metric():
    from phase2 import codecs
    from phase2.search import registry

    glossary = (PROJECT_ROOT / "book" / "glossary.md").read_text() + metrics.metric_table()
    names = [*codecs.CODECS, *codecs.PATTERNS, *registry.REGISTRY, *metrics.REGISTRY]
    assert [name for name in names if f"`{name}`" not in glossary] == []
