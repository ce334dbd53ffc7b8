"""The package's shape: imports among phase2's modules run one way, and modules stay short enough to read."""

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import phase2
from phase2 import pages

PACKAGE = Path(phase2.__file__).parent
LONGEST = 500
"""Lines a module may have."""
LONG_MODULES = {"bench.py": 989, "codecs.py": 898, "kernels.py": 631}
"""Modules still over :data:`LONGEST`, at their present length: the throughput run times their code, so they are split
when it is next measured. None may grow."""


def import_graph(top_level_only: bool) -> dict[str, set[str]]:
    """Module -> the phase2 modules it imports (``from phase2 import x``, ``from phase2.x import y``, ``import
    phase2.x``), at the top level only or anywhere in the module."""
    graph = {}
    for path in sorted(PACKAGE.glob("*.py")):
        imported = graph.setdefault(path.stem, set())
        tree = ast.parse(path.read_text())
        nodes = tree.body if top_level_only else ast.walk(tree)
        for node in nodes:
            if isinstance(node, ast.ImportFrom) and node.module == "phase2":
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("phase2."):
                targets = [node.module.split(".")[1]]
            elif isinstance(node, ast.Import):
                targets = [a.name.split(".")[1] for a in node.names if a.name.startswith("phase2.")]
            else:
                continue
            imported.update(t for t in targets if (PACKAGE / f"{t}.py").is_file())
    return graph


def test_imports_among_the_modules_have_no_cycle():
    for top_level_only in (True, False):  # an import inside a function must not hide a cycle either
        try:
            tuple(TopologicalSorter(import_graph(top_level_only)).static_order())
        except CycleError as error:
            raise AssertionError(f"phase2 imports run in a cycle: {' -> '.join(error.args[1])}") from None


def test_no_module_is_longer_than_a_reader_can_hold():
    lengths = {path.name: len(path.read_text().splitlines()) for path in PACKAGE.glob("*.py")}
    over = {name: n for name, n in lengths.items() if n > LONGEST}
    assert set(over) <= set(LONG_MODULES), over
    assert all(n <= LONG_MODULES[name] for name, n in over.items()), over


def test_the_architecture_page_lists_every_module_from_the_package():
    table = pages.module_table().splitlines()
    modules = sorted(path.stem for path in PACKAGE.glob("*.py"))
    assert [row.split("|")[1].strip() for row in table[2:]] == [f"`phase2.{m}`" for m in modules]
    assert all(row.count("|") == 4 and row.split("|")[3].strip() for row in table[2:])  # one cell each, none empty
    assert f"```{{include}} {pages.MODULE_TABLE}" in (PACKAGE.parent / "book" / "architecture.md").read_text()


def test_the_package_sources_are_hashed_in_one_place():  # storage.package_digest, storage.source_digest
    hashing = sorted(path.name for path in PACKAGE.glob("*.py")
                     if "hashlib" in (text := path.read_text()) and 'glob("*.py")' in text)
    assert hashing == ["storage.py"], hashing
