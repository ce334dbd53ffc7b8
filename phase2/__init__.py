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


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (``/proc/cpuinfo``; empty where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


BLAS_ROLES = ("reproducible", "timing")
"""What a process computes, read from ``PHASE2_BLAS`` (default ``reproducible``): results that must be the same on
every machine (codecs, searches, metrics), or timings (``python -m phase2 bench`` and ``scale``, and the chapter
that measures throughput, run in processes of their own with ``PHASE2_BLAS=timing``)."""


def blas_core(role: str, flags: frozenset[str]) -> str | None:
    """The OpenBLAS kernels (``OPENBLAS_CORETYPE``) a process of ``role`` runs on a CPU with ``flags``; None leaves
    OpenBLAS's own choice (a CPU without AVX2 and FMA, where no pinned kernel runs).

    numpy and faiss each bundle an OpenBLAS that picks its kernels by CPU model, and their sums differ in the last
    bits from kernel to kernel: PQ's k-means and float rankings moved between machines. On one Intel Xeon (family 6
    model 207) numpy's 0.3.31 chose SkylakeX and faiss's 0.3.15, which does not know the model, Prescott (SSE3): the
    published searches' behaviour digest differed there, and on a Zen 4, from the one computed on a Zen 5; with
    Haswell (AVX2 and FMA) it was the same. So results run on Haswell everywhere. Timings run on the widest kernels
    the CPU has: there faiss's exhaustive float search of 2*10^5 x 384 took 3.80 s on Prescott, 1.52 on Haswell and
    0.90 on SkylakeX (1,000 queries, 1 thread), so a float baseline on another choice would be unfairly slow."""
    if role == "timing" and {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags:
        return "SkylakeX"
    return "Haswell" if {"avx2", "fma"} <= flags else None


def blas_environment(role: str) -> dict[str, str]:
    """The environment of a process of ``role`` this one starts (a chapter's kernel, a benchmark command): the
    kernels are named there too, since a kernel may load numpy before it imports phase2."""
    core = blas_core(role, cpu_flags())
    return {"PHASE2_BLAS": role, **({"OPENBLAS_CORETYPE": core} if core else {})}


BLAS_ROLE = os.environ.get("PHASE2_BLAS", "reproducible")
if BLAS_ROLE not in BLAS_ROLES:
    raise ValueError(f"PHASE2_BLAS={BLAS_ROLE!r} in the environment: expected one of {', '.join(BLAS_ROLES)}")
BLAS_CORE = blas_core(BLAS_ROLE, cpu_flags())
"""The OpenBLAS kernels this process asks for. OpenBLAS reads them once, when it loads: where numpy was imported
before phase2, it keeps its own choice, which every result records (:func:`phase2.experiments.results.machine`)."""
if BLAS_CORE is not None:
    os.environ["OPENBLAS_CORETYPE"] = BLAS_CORE  # also for the processes this one starts (workers, notebooks)
