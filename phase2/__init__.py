"""phase2: the thin helper package behind the executable book.

Its subpackages follow what the book computes (plan -> tasks -> runs -> evaluator -> rows -> findings -> pages), in
the layers of :data:`LAYERS`; the book's *Architecture* page (``book/architecture.md``) lists each module by layer.
"""

import os
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


OPENMP_SPIN_COUNT = "10000"
"""How long an idle OpenMP thread spins before it sleeps (``GOMP_SPINCOUNT``; libgomp's default, 300,000, is some
milliseconds). faiss and numba each bring their own OpenMP runtime, and with the default the threads one leaves
spinning hold the cores while the other's next parallel region waits for them: at 2 threads, one query's search of
16,384 centroids (faiss) just after a numba kernel took 8.0 ms, against 0.8 ms alone and 1.1 ms with this count
(AMD EPYC, 2 cores). It is set here, before either runtime loads, unless the environment already gives one."""


def _openmp_loaded() -> bool:
    try:
        return "libgomp" in Path("/proc/self/maps").read_text()
    except OSError:
        return False


OPENMP_SPIN = os.environ.get("GOMP_SPINCOUNT") or (
    "libgomp's default (OpenMP was loaded before phase2)" if _openmp_loaded() else OPENMP_SPIN_COUNT)
"""The spin count in effect, which every result records (:func:`phase2.experiments.results.machine`)."""
os.environ.setdefault("GOMP_SPINCOUNT", OPENMP_SPIN_COUNT)
