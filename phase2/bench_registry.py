"""Every benchmarked method and its parameter grids, in one place.

``REGISTRY[name]`` gives how to build the method for ``n`` vectors of dimension ``d``
(one entry per build configuration) and which query-time arguments to sweep. Adding a
method is one entry here; the runner and the chapter's charts pick it up by name.

PQ factory strings end in ``np`` (no polysemous training): without it faiss's factory runs
a simulated-annealing code reordering that took three minutes per index on this project's
2-core machine and does not change the results of a plain PQ search.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from phase2.ann import BinaryRescore, FaissBinaryIndex, FaissIndex, HammingFlat, Method, nlist


@dataclass(frozen=True)
class Entry:
    """How to build one method for ``(n, d)`` and which query arguments to sweep."""

    build: Callable[[int, int], list[Method]]
    query_grid: list[dict] = field(default_factory=lambda: [{}])


EF_SEARCH = [{"efSearch": e} for e in (16, 32, 64, 128, 256)]
NPROBE = [{"nprobe": p} for p in (1, 4, 16, 64)]
FACTOR = [{"factor": f} for f in (1, 2, 4, 10)]

REGISTRY: dict[str, Entry] = {
    "flat": Entry(lambda n, d: [FaissIndex("flat", "Flat", "float", 4 * d)]),
    "sq8": Entry(lambda n, d: [FaissIndex("sq8", "SQ8", "scalar", d)]),
    "pq": Entry(lambda n, d: [FaissIndex(f"pq(m={m})", f"PQ{m}np", "pq", m, deterministic=False)
                              for m in (d // 8, d // 4)]),
    "ivf-pq": Entry(lambda n, d: [FaissIndex(f"ivf-pq(nlist={nlist(n)},m={d // 8})", f"IVF{nlist(n)},PQ{d // 8}np",
                                             "ivf", d // 8, deterministic=False)], NPROBE),
    "ivf-pq-refine": Entry(lambda n, d: [FaissIndex(f"ivf-pq-refine(nlist={nlist(n)},m={d // 8})",
                                                    f"IVF{nlist(n)},PQ{d // 8}np,RFlat", "ivf", d // 8,
                                                    deterministic=False)],
                           [{"nprobe": p, "k_factor_rf": 4} for p in (4, 16, 64)]),
    "hnsw-flat": Entry(lambda n, d: [FaissIndex("hnsw-flat(M=32)", "HNSW32", "graph", 4 * d, deterministic=False)],
                       EF_SEARCH),
    "hnsw-sq8": Entry(lambda n, d: [FaissIndex("hnsw-sq8(M=32)", "HNSW32,SQ8", "graph", d, deterministic=False)],
                      EF_SEARCH),
    "hnsw-pq": Entry(lambda n, d: [FaissIndex(f"hnsw-pq(M=32,m={d // 8})", f"HNSW32,PQ{d // 8}np", "graph", d // 8,
                                              deterministic=False)], EF_SEARCH),
    "rabitq": Entry(lambda n, d: [FaissIndex("rabitq", "RaBitQ", "rabitq", d / 8 + 8)]),
    "ivf-rabitq": Entry(lambda n, d: [FaissIndex(f"ivf-rabitq(nlist={nlist(n)})", f"IVF{nlist(n)},RaBitQ", "rabitq",
                                                 d / 8 + 8, deterministic=False)], NPROBE),
    "bin-flat-faiss": Entry(lambda n, d: [FaissBinaryIndex("bin-flat-faiss", "BFlat")]),
    "bin-flat": Entry(lambda n, d: [HammingFlat("bin-flat")]),
    "bin-hnsw": Entry(lambda n, d: [FaissBinaryIndex("bin-hnsw(M=32)", "BHNSW32", deterministic=False)], EF_SEARCH),
    "bin-ivf": Entry(lambda n, d: [FaissBinaryIndex(f"bin-ivf(nlist={nlist(n)})", f"BIVF{nlist(n)}",
                                                    deterministic=False)], NPROBE),
    "bin-rescore-f32": Entry(lambda n, d: [BinaryRescore("bin-rescore-f32", "float32")], FACTOR),
    "bin-rescore-int8": Entry(lambda n, d: [BinaryRescore("bin-rescore-int8", "int8")], FACTOR),
    "bin-hnsw-rescore-int8": Entry(
        lambda n, d: [BinaryRescore("bin-hnsw-rescore-int8(M=32)", "int8",
                                    FaissBinaryIndex("bin-hnsw(M=32)", "BHNSW32", deterministic=False))],
        [{"efSearch": e, "factor": f} for e in (32, 128) for f in (4, 10)]),
    "bin-ivf-rescore-int8": Entry(
        lambda n, d: [BinaryRescore(f"bin-ivf-rescore-int8(nlist={nlist(n)})", "int8",
                                    FaissBinaryIndex(f"bin-ivf(nlist={nlist(n)})", f"BIVF{nlist(n)}",
                                                     deterministic=False))],
        [{"nprobe": p, "factor": f} for p in (16, 64) for f in (4, 10)]),
}
