"""Every benchmarked method and its parameter grids, in one place.

``REGISTRY[name]`` gives how to build the method for ``n`` vectors of dimension ``d``
(one entry per build configuration) and which query-time arguments to sweep. Adding a
method is one entry here; the runner and the chapter's charts pick it up by name.

PQ factory strings end in ``np`` (no polysemous training): without it faiss's factory runs
a simulated-annealing code reordering that took three minutes per index on this project's
2-core machine and does not change the results of a plain PQ search.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from phase2.search.disk import direct_io_unavailable
from phase2.search.libraries import (
    MilvusCollection,
    RaBitQLibHNSW,
    RaBitQLibIVF,
    ScaNN,
    USearchExact,
    USearchHNSW,
    missing_package,
)
from phase2.search.methods import FaissBinaryIndex, FaissIndex, HammingFlat, HammingIVF, Method, Refined, nlist


@dataclass(frozen=True)
class Entry:
    """How to build one method for ``(n, d)`` and which query arguments to sweep; ``requires`` names the module a
    library's methods import, and ``max_n`` (with ``why``) the largest corpus this machine builds it for."""

    build: Callable[[int, int], list[Method]]
    query_grid: list[dict] | Callable[[int], list[dict]] = field(default_factory=lambda: [{}])
    requires: str | None = None
    max_n: int | None = None
    why: str = ""
    needs_direct_io: bool = False  # its store is read from disk with O_DIRECT (phase2.search.disk)
    float_copy: bool = False  # it holds the corpus as float32 in RAM: not built where that would not fit

    def grid(self, n: int) -> list[dict]:
        """The query settings swept on ``n`` vectors (a grid of shares of the lists depends on ``n``)."""
        return self.query_grid(n) if callable(self.query_grid) else self.query_grid

    def not_run_at(self, n: int, d: int = 384) -> str | None:
        """Why this entry is not measured on ``n`` vectors of dimension ``d`` here, or None when it is."""
        if self.requires and (reason := missing_package(self.requires)):
            return reason
        if self.needs_direct_io and (reason := direct_io_unavailable()):
            return reason
        if self.max_n is not None and n > self.max_n:
            return f"not built above {self.max_n:,} vectors: {self.why}"
        if self.float_copy and 4 * n * d > MEMORY_SHARE * (ram := physical_memory()):
            return (f"its float32 vectors ({4 * n * d / 2**30:.1f} GiB) exceed {MEMORY_SHARE:.0%} of this machine's "
                    f"{ram / 2**30:.1f} GiB of memory")
        return None


MEMORY_SHARE = 0.75
"""The share of physical memory one float32 copy of the corpus may take: the process, the first stage's codes and
the page cache of the mapped corpus need the rest."""


def physical_memory() -> int:
    """Bytes of physical memory (Linux and macOS ``sysconf``)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


EF_SEARCH = [{"efSearch": e} for e in (16, 32, 64, 128, 256)]
NPROBE = [{"nprobe": p} for p in (1, 4, 16, 64)]
FACTOR = [{"factor": f} for f in (1, 2, 4, 10, 25, 100)]
"""Rescoring factors: the top factor x k of the binary scan are re-ranked; 100 reads 1,000 candidates for k = 10,
far enough for recall@10 of 0.95 (0.957-0.969 at 10^6 synthetic vectors)."""
DEEP_FACTOR = FACTOR + [{"factor": f} for f in (300, 1000)]
"""The binary scan's in-RAM stores go on to 10,000 candidates, to show where recall@10 crosses 0.99, or that the
store itself stops it first (int8 codes rank a little differently from float32: faiss's SQ8 alone reached 0.986)."""
DISK_FACTOR_FROM = 10**7
"""The corpus size from which the stores on disk also read 3,000 candidates (factor 300). Candidates needed grow
with the corpus: at 10^7 synthetic vectors the int8 store in RAM gave recall@10 0.879 at factor 100 and 0.942 at
300. Below it, factor 100 reaches 0.95 (10^6: 0.957-0.969), and a step to 300 would cost a chapter run some minutes
of device reads. Factor 1,000 is not read from disk: its 10,000 reads per query would take about 0.15 s on a device
of 65,000 IOPS; recall is the RAM store's, the same codes ranked the same way."""


def disk_factor(n: int) -> list[dict]:
    """The factor grid of an exhaustive binary scan re-ranked from a store on disk, at ``n`` vectors."""
    return FACTOR + ([{"factor": 300}] if n >= DISK_FACTOR_FROM else [])


LIST_SHARES = (256, 128, 64, 32, 16)
"""The inverted files re-ranked from int8 codes probe 1/256 to 1/16 of their lists at every size: 16 to 256 of the
4,096 lists at 10^6, 64 to 1,024 of the 16,384 at 10^7 (a fixed ``nprobe`` would probe a quarter of the share there,
as lists grow with the square root of the corpus)."""


def ivf_refined(n: int) -> list[dict]:
    """The one grid of every inverted file re-ranked from int8 codes (binary, PQ, RaBitQ), so their comparison at
    equal recall rests on the same settings: :data:`LIST_SHARES` of the lists, up to 10,000 candidates (at 10^7,
    binary IVF's recall@10 is set by its candidates, not its lists: 0.942-0.949 at 3,000 for 64 to 1,024 lists, and
    0.967 at 10,000; 5,000 splits that step, on which the order of the three at 0.95 rested, and 4,000 splits
    3,000-5,000, where it rested again: 0.949 at 3,000, 0.961 at 5,000)."""
    probes = sorted({max(1, nlist(n) // share) for share in LIST_SHARES})  # one list at least, each setting once
    return [{"nprobe": p, "factor": f} for p in probes for f in (10, 25, 100, 300, 400, 500, 1000)]

REGISTRY: dict[str, Entry] = {
    "flat": Entry(lambda n, d: [FaissIndex("flat", "Flat", "float", 4 * d)], float_copy=True),
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
    "bin-ivf-scan": Entry(lambda n, d: [HammingIVF(f"bin-ivf-scan(nlist={nlist(n)})", nlist(n))], NPROBE),
    "bin-rescore-f32": Entry(lambda n, d: [Refined("bin-rescore-f32", "float32")], DEEP_FACTOR),
    "bin-rescore-int8": Entry(lambda n, d: [Refined("bin-rescore-int8", "int8")], DEEP_FACTOR),
    # the same codes against the float query: what rounding the query to int8 costs in recall, and saves in time
    "bin-rescore-int8-float-query": Entry(lambda n, d: [Refined("bin-rescore-int8-float-query", "int8",
                                                                float_query=True)], DEEP_FACTOR),
    "bin-rescore-asym": Entry(lambda n, d: [Refined("bin-rescore-asym", "signs")], FACTOR),
    "bin-rescore-int8-disk": Entry(lambda n, d: [Refined("bin-rescore-int8-disk", "int8", on_disk=True)],
                                   disk_factor, needs_direct_io=True),
    "bin-rescore-f32-disk": Entry(lambda n, d: [Refined("bin-rescore-f32-disk", "float32", on_disk=True)],
                                  disk_factor, needs_direct_io=True),
    "bin-hnsw-rescore-int8": Entry(
        lambda n, d: [Refined("bin-hnsw-rescore-int8(M=32)", "int8",
                                    FaissBinaryIndex("bin-hnsw(M=32)", "BHNSW32", deterministic=False))],
        [{"efSearch": e, "factor": f} for e in (32, 128) for f in (4, 10)]),
    "bin-ivf-rescore-int8": Entry(
        lambda n, d: [Refined(f"bin-ivf-rescore-int8(nlist={nlist(n)})", "int8",
                                    FaissBinaryIndex(f"bin-ivf(nlist={nlist(n)})", f"BIVF{nlist(n)}",
                                                     deterministic=False))],
        [{"nprobe": p, "factor": f} for p in (16, 64) for f in (4, 10)]),
    "bin-ivf-scan-rescore-int8": Entry(
        lambda n, d: [Refined(f"bin-ivf-scan-rescore-int8(nlist={nlist(n)})", "int8",
                              HammingIVF(f"bin-ivf-scan(nlist={nlist(n)})", nlist(n)))], ivf_refined),
    # every other compressed family with the same refinement (int8 store in RAM) and factor grid
    "pq-rescore-int8": Entry(lambda n, d: [Refined(f"pq-rescore-int8(m={d // 8})", "int8",
                                                   FaissIndex(f"pq(m={d // 8})", f"PQ{d // 8}np", "pq", d // 8,
                                                              deterministic=False))], FACTOR),
    "ivf-pq-rescore-int8": Entry(
        lambda n, d: [Refined(f"ivf-pq-rescore-int8(nlist={nlist(n)},m={d // 8})", "int8",
                              FaissIndex(f"ivf-pq(nlist={nlist(n)},m={d // 8})", f"IVF{nlist(n)},PQ{d // 8}np", "ivf",
                                         d // 8, deterministic=False))],
        ivf_refined),
    "hnsw-pq-rescore-int8": Entry(
        lambda n, d: [Refined(f"hnsw-pq-rescore-int8(M=32,m={d // 8})", "int8",
                              FaissIndex(f"hnsw-pq(M=32,m={d // 8})", f"HNSW32,PQ{d // 8}np", "graph", d // 8,
                                         deterministic=False))],
        [{"efSearch": e, "factor": f} for e in (64, 256) for f in (4, 10, 25)]),
    "rabitq-rescore-int8": Entry(lambda n, d: [Refined("rabitq-rescore-int8", "int8",
                                                       FaissIndex("rabitq", "RaBitQ", "rabitq", d / 8 + 8))], FACTOR),
    "ivf-rabitq-rescore-int8": Entry(
        lambda n, d: [Refined(f"ivf-rabitq-rescore-int8(nlist={nlist(n)})", "int8",
                              FaissIndex(f"ivf-rabitq(nlist={nlist(n)})", f"IVF{nlist(n)},RaBitQ", "rabitq", d / 8 + 8,
                                         deterministic=False))],
        ivf_refined),
    "ivf-pq-rescore-int8-disk": Entry(
        lambda n, d: [Refined(f"ivf-pq-rescore-int8-disk(nlist={nlist(n)},m={d // 8})", "int8",
                              FaissIndex(f"ivf-pq(nlist={nlist(n)},m={d // 8})", f"IVF{nlist(n)},PQ{d // 8}np", "ivf",
                                         d // 8, deterministic=False), on_disk=True)],
        [{"nprobe": p, "factor": f} for p in (16, 64) for f in (4, 10, 25)], needs_direct_io=True),
    # the libraries a user would install instead (phase2.search.libraries)
    "usearch-exact": Entry(lambda n, d: [USearchExact("usearch-exact")], requires="usearch"),
    "usearch-exact-b1": Entry(lambda n, d: [USearchExact("usearch-exact-b1", binary=True)], requires="usearch"),
    "usearch-hnsw-f16": Entry(lambda n, d: [USearchHNSW("usearch-hnsw-f16(M=16)", "f16")], EF_SEARCH,
                              requires="usearch"),
    "usearch-hnsw-i8": Entry(lambda n, d: [USearchHNSW("usearch-hnsw-i8(M=16)", "i8")], EF_SEARCH,
                             requires="usearch"),
    "usearch-hnsw-b1": Entry(lambda n, d: [USearchHNSW("usearch-hnsw-b1(M=16)", "b1")], EF_SEARCH,
                             requires="usearch"),
    "usearch-hnsw-b1-rescore-int8": Entry(
        lambda n, d: [Refined("usearch-hnsw-b1-rescore-int8(M=16)", "int8",
                                    USearchHNSW("usearch-hnsw-b1(M=16)", "b1"))],
        [{"efSearch": e, "factor": f} for e in (32, 128) for f in (4, 10)], requires="usearch"),
    "scann": Entry(lambda n, d: [ScaNN("scann(ah2,reorder)")],
                   [*({"leaves_share": s, "reorder": 100} for s in (0.02, 0.05, 0.1, 0.2)),
                    {"leaves_share": 0.2, "reorder": 250}], requires="scann"),
    "rabitqlib-ivf": Entry(lambda n, d: [RaBitQLibIVF(f"rabitqlib-ivf(nbits={b})", b) for b in (1, 4, 9)], NPROBE,
                           requires="rabitqlib"),
    "rabitqlib-hnsw": Entry(lambda n, d: [RaBitQLibHNSW("rabitqlib-hnsw(M=16,nbits=4)", 4)], EF_SEARCH,
                            requires="rabitqlib", max_n=10_000,
                            why="its build took 436 s for 10^5 384-d vectors on 2 cores"),
    "milvus-hnsw": Entry(lambda n, d: [MilvusCollection("milvus-hnsw(M=16)", "HNSW", {"M": 16, "efConstruction": 128},
                                                        "graph", 4)],
                         [{"ef": e} for e in (16, 64, 256)], requires="pymilvus"),
    "milvus-ivf-sq8": Entry(lambda n, d: [MilvusCollection(f"milvus-ivf-sq8(nlist={nlist(n)})", "IVF_SQ8",
                                                           {"nlist": nlist(n)}, "ivf", 1)],
                            [{"nprobe": p} for p in (4, 16, 64)], requires="pymilvus"),
}


def not_measured(names: list[str], sizes: list[int]) -> list[str]:
    """One line per (method, size) the harness skips here, and why: what a chapter states instead of dropping it."""
    lines = []
    for name in names:
        reasons = {n: REGISTRY[name].not_run_at(n) for n in sizes}
        for reason in dict.fromkeys(r for r in reasons.values() if r):
            at = [f"{n:,}" for n, r in reasons.items() if r == reason]
            lines.append(f"`{name}` at {', '.join(at)} vectors: {reason}")
    return lines
