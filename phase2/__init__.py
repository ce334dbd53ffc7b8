"""phase2: the thin helper package behind the executable book.

Its subpackages follow what the book computes (plan -> tasks -> runs -> evaluator -> rows -> findings -> pages), in
the layers of :data:`LAYERS`; the book's *Architecture* page (``book/architecture.md``) lists each module by layer.
"""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

__version__ = "0.1.0"

LAYERS = (
    ("core", ("__init__", "errors", "storage")),
    ("data", ("data",)),
    ("kernels", ("kernels",)),
    ("codecs", ("codecs",)),
    ("search", ("search",)),
    ("evaluation", ("evaluation",)),
    ("experiments", ("experiments",)),
    ("findings", ("findings",)),
    ("book", ("book",)),
    ("command line", ("demo", "__main__")),
)
"""The package's layers, lowest first, each a name and the top-level modules or subpackages it holds. A module
imports only from its own layer and those below it (a test checks every import, inside functions too)."""
