"""The package's shape: imports among phase2's modules run one way, down its layers, and modules stay short enough
to read."""

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import phase2
from phase2 import LAYERS
from phase2.book import pages

PACKAGE = Path(phase2.__file__).parent
LONGEST = 500
"""Lines a module may have."""
MODULES = {name: path for _, name, path in pages.package_modules()}


def _resolved(node: ast.ImportFrom | ast.Import) -> list[str]:
    """The phase2 modules an import statement names (a name imported from a package counts as its module when
    there is one, else as the package)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.startswith("phase2.") and a.name in MODULES]
    if not (node.module or "").startswith("phase2"):
        return []
    found = []
    for alias in node.names:
        candidate = f"{node.module}.{alias.name}"
        found.append(candidate if candidate in MODULES else node.module)
    return [name for name in found if name in MODULES]


def import_graph(top_level_only: bool) -> dict[str, set[str]]:
    """Module -> the phase2 modules it imports, at the top level only or anywhere in the module."""
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        nodes = tree.body if top_level_only else ast.walk(tree)
        imported = graph.setdefault(name, set())
        for node in nodes:
            if isinstance(node, ast.ImportFrom | ast.Import):
                imported.update(t for t in _resolved(node) if t != name and not name.startswith(t + "."))
    return graph


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    return next(rank for rank, (_, members) in enumerate(LAYERS) if top in members)


def test_every_module_belongs_to_a_layer():
    on_disk = {path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")}
    listed = {path.relative_to(PACKAGE).as_posix() for path in MODULES.values()}
    assert on_disk == listed, on_disk ^ listed


def test_imports_among_the_modules_have_no_cycle():
    for top_level_only in (True, False):  # an import inside a function must not hide a cycle either
        try:
            tuple(TopologicalSorter(import_graph(top_level_only)).static_order())
        except CycleError as error:
            raise AssertionError(f"phase2 imports run in a cycle: {' -> '.join(error.args[1])}") from None


def test_imports_run_down_the_layers():
    upward = [f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
              for module, targets in import_graph(top_level_only=False).items() for target in sorted(targets)
              if layer_of(target) > layer_of(module)]
    assert not upward, upward


def test_no_module_is_longer_than_a_reader_can_hold():
    over = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > LONGEST}
    assert not over, over


def test_the_architecture_page_lists_every_module_by_layer():
    table = pages.module_table().splitlines()
    assert [row.split("|")[2].strip() for row in table[2:]] == [f"`{name}`" for name in MODULES]
    assert all(row.count("|") == 5 and row.split("|")[4].strip() for row in table[2:])  # one cell each, none empty
    assert [row.split("|")[1].strip() for row in table[2:]] == [LAYERS[layer_of(name)][0] for name in MODULES]
    assert f"```{{include}} {pages.MODULE_TABLE}" in (PACKAGE.parent / "book" / "architecture.md").read_text()


def test_the_package_sources_are_hashed_in_one_place():  # storage.package_digest, storage.source_digest
    hashing = sorted(path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")
                     if "hashlib" in (text := path.read_text()) and 'glob("*.py")' in text)
    assert hashing == ["storage.py"], hashing
