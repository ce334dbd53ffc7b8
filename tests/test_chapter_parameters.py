"""Parameter checks that run inside chapters, and profile resolution, without a kernel."""

import ast
import re
from pathlib import Path

import nbformat
import papermill
import pytest

from phase2.book import context, pipeline
from phase2.errors import ParameterError
from phase2.experiments import params

PARAMS_CELL = 'dataset: str = "cranfield"  # names\nk: int = 100  # depth\nscale: float = 1.0  # factor'


def namespace(injected: str = "", **values):
    """A kernel namespace as IPython leaves it: annotations from the parameters cell, input history."""
    ns = {}
    exec(PARAMS_CELL, ns)  # noqa: S102 - the parameters cell, as the kernel runs it
    ns.update(values)
    ns["In"] = ["", PARAMS_CELL] + ([injected] if injected else []) + ["context.check_parameters(globals())"]
    return ns


def test_valid_values_pass_and_ints_widen_to_float():
    ns = namespace('# Parameters\nk = 200\nscale = 2\n', k=200, scale=2)
    chapter = context.check_parameters(ns)
    assert chapter.parameters == {"dataset": "cranfield", "k": 200, "scale": 2.0} and chapter.folder == Path.cwd()


def test_unknown_injected_name_is_named_with_the_valid_ones():
    with pytest.raises(ParameterError, match=r"unknown parameter\(s\) 'datset'; .* dataset, k, scale"):
        context.check_parameters(namespace('# Parameters\ndatset = "scifact"\n', datset="scifact"))


@pytest.mark.parametrize(("name", "value", "message"), [
    ("k", "ten", "parameter 'k' must be int, got str 'ten'"),
    ("k", True, "parameter 'k' must be int, got bool True"),
    ("dataset", 3, "parameter 'dataset' must be str, got int 3"),
])
def test_wrong_type_is_named(name, value, message):
    with pytest.raises(ParameterError, match=message):
        context.check_parameters(namespace(f"# Parameters\n{name} = {value!r}\n", **{name: value}))


def test_without_input_history_types_are_still_checked():
    ns = namespace(k="ten")
    del ns["In"]
    with pytest.raises(ParameterError, match="parameter 'k' must be int"):
        context.check_parameters(ns)


def test_outside_a_kernel_it_says_so():
    with pytest.raises(RuntimeError, match="notebook kernel"):
        context.check_parameters({})


def test_split_names():
    assert params.split_names(" a, b ", ["a", "b", "c"], "dataset") == ["a", "b"]
    with pytest.raises(ParameterError, match="dataset: unknown 'x'; valid: a, b"):
        params.split_names("a,x", ["a", "b"], "dataset")
    with pytest.raises(ParameterError, match="names an entry twice"):
        params.split_names("a,a", ["a"], "dataset")
    with pytest.raises(ParameterError, match="empty"):
        params.split_names(" , ", ["a"], "dataset")


def test_check_range():
    params.check_range("k", 100, 100)
    with pytest.raises(ParameterError, match="parameter 'k' must be >= 100, got 0"):
        params.check_range("k", 0, 100)


def test_profiles_only_name_parameters_some_chapter_declares():
    declared = {name for nb in pipeline.chapter_notebooks() for name in params.declared_parameters(nb)}
    for name in params.profile_names():
        profile = params.load_profile(name)
        assert set(profile["parameters"]) <= declared, name
        for nb in pipeline.chapter_notebooks():
            assert params.chapter_parameters(nb, name)["profile"] == name


def test_unknown_profile_and_override_are_named():
    with pytest.raises(ParameterError, match="unknown profile 'huge'; profiles in .*: default, full, smoke"):
        params.load_profile("huge")
    notebook = params.CHAPTERS_DIR / "quality_vs_memory.ipynb"
    with pytest.raises(ParameterError, match="command line: unknown parameter.*'depth'.*its parameters are: dataset"):
        params.chapter_parameters(notebook, "smoke", {"depth": 5})


def test_split_floats():
    assert params.split_floats("0.8, 0.9,1", "targets", 0.01, 1.0) == [0.8, 0.9, 1.0]
    for bad, message in [("0.9,x", "expected comma-separated numbers"), ("", "expected numbers between"),
                         ("1.5", "expected numbers between 0.01 and 1.0, got '1.5'")]:
        with pytest.raises(ParameterError, match=message):
            params.split_floats(bad, "targets", 0.01, 1.0)


def write_notebook(path, reads=None):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x: int = 1  # x")])
    if reads is not None:
        nb.metadata["phase2"] = {"reads": reads}
    nbformat.write(nb, path)
    return path


def test_chapters_that_read_results_rerun_when_their_sources_change(tmp_path):
    plain = write_notebook(tmp_path / "plain.ipynb")
    reader = write_notebook(tmp_path / "reader.ipynb", ["throughput"])
    everything = write_notebook(tmp_path / "appendix.ipynb", "*")
    assert pipeline.upstream_chapters(plain, ["throughput"]) == []
    assert pipeline.upstream_chapters(reader, ["method", "throughput"]) == ["throughput"]
    assert pipeline.upstream_chapters(everything, ["method", "throughput"]) == ["method", "throughput"]
    with pytest.raises(pipeline.ChapterError, match=r"reads the results of \['throughput'\], which _toc.yml"):
        pipeline.upstream_chapters(reader, ["method"])
    key = pipeline.execution_key(reader, {}, ("aaa",))
    assert key != pipeline.execution_key(reader, {}, ("bbb",)) and key == pipeline.execution_key(reader, {}, ("aaa",))


def test_the_report_chapters_declare_what_they_read():
    order = [nb.stem for nb in pipeline.chapter_notebooks()]
    for notebook in pipeline.chapter_notebooks():
        pipeline.upstream_chapters(notebook, order[:order.index(notebook.stem)])  # each reads only earlier ones
    regimes = params.CHAPTERS_DIR / "regimes.ipynb"
    assert pipeline.upstream_chapters(regimes, order) == ["throughput"]


RULED_CELL = ('sizes: str = "1000,2000"  # corpus sizes [ints from 100]\n'
              'bits: str = "384"  # widths, a comment # with a hash [ints from 8, multiples of 8]\n'
              'extra: str = ""  # more sizes, or empty [ints from 100, or empty]\n'
              'model: str = "minilm-l6"  # one model [one of models]\n'
              'methods: str = "all"  # methods [names of methods, or all]\n'
              'share: float = 0.5  # a share [0.01 to 1]\n'
              'n: int = 10  # count [at least 10]\n'
              'note: str = "[not a rule] here"  # free text\n')


def test_rules_at_the_end_of_a_declaration_are_read_and_parsed():
    assert params.is_parameters_cell(RULED_CELL) and not params.is_parameters_cell("x = 1\n")
    rules = params.declared_rules(RULED_CELL)
    assert rules == {"sizes": "ints from 100", "bits": "ints from 8, multiples of 8",
                     "extra": "ints from 100, or empty", "model": "one of models",
                     "methods": "names of methods, or all", "share": "0.01 to 1", "n": "at least 10"}
    ns = {}
    exec(RULED_CELL, ns)  # noqa: S102 - the parameters cell, as the kernel runs it
    ns["In"] = ["", RULED_CELL, "context.check_parameters(globals())"]
    parsed = context.check_parameters(ns).parsed
    assert parsed["sizes"] == [1000, 2000] and parsed["bits"] == [384] and parsed["extra"] == []
    assert parsed["model"] == ["minilm-l6"] and parsed["methods"] == list(params.DOMAINS["methods"]())
    assert parsed["share"] == 0.5 and parsed["n"] == 10 and "note" not in parsed


@pytest.mark.parametrize(("name", "value", "rule", "message"), [
    ("bits", "384,20", "ints from 8, multiples of 8", "bits: expected multiples of 8, got '384,20'"),
    ("sizes", "10", "ints from 100", "sizes: expected integers >= 100, got '10'"),
    ("sizes", "", "ints from 100", "sizes: expected integers >= 100, got ''"),
    ("model", "minilm-l6,minilm-l3", "one of models", "model: expected one of minilm-l6"),
    ("methods", "flat,nope", "names of methods", "methods: unknown 'nope'"),
    ("share", 1.5, "0.01 to 1", "parameter 'share' must be between 0.01 and 1, got 1.5"),
    ("n", 9, "at least 10", "parameter 'n' must be >= 10, got 9"),
])
def test_a_value_that_breaks_its_rule_is_named(name, value, rule, message):
    with pytest.raises(ParameterError, match=re.escape(message)):
        params.parse_value(name, value, rule)


def test_a_rule_the_grammar_does_not_know_is_the_declarations_error():
    with pytest.raises(ValueError, match=r"parameter 'x': unknown rule \[ints > 3\]"):
        params.parse_value("x", "4", "ints > 3")
    with pytest.raises(ValueError, match="names no domain"):
        params.parse_value("x", "a", "names of planets")


@pytest.mark.parametrize("profile", params.profile_names())
def test_every_chapter_follows_its_declared_rules_on_every_profile(profile, no_collections):
    """Papermill reads every declaration too (a line with two ``=`` it skips, so a rule never holds one). A profile's
    collections are names, valid on a machine that lacks them: loading one says where it looked."""
    for notebook in pipeline.chapter_notebooks():
        source = next(c.source for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code")
        assert params.is_parameters_cell(source), notebook.name
        read = list(papermill.inspect_notebook(str(notebook)))
        assert read == [n.target.id for n in ast.parse(source).body], notebook.name
        values = params.chapter_values(notebook.stem, profile)
        for name, rule in params.declared_rules(source).items():
            params.parse_value(name, values[name], rule)  # a ParameterError names what breaks its rule
