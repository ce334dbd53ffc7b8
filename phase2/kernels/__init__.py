"""Numba kernels for packed binary codes. Validation lives in the Python wrappers.

Codes are rows of ``uint8`` as ``np.packbits`` writes them (first dimension in the
most significant bit). The Hamming scan reads them as ``uint64`` words in a code-major layout
(:class:`CodeBlocks`: blocks of :data:`LANES` codes, word by word), so the inner loop runs over codes and LLVM
vectorises the popcount for the CPU it compiles on: ``vpopcntq`` on AVX-512 VPOPCNTDQ, a ``vpshufb`` nibble
lookup on AVX2, scalar ``popcnt`` below (:data:`SIMD_LEVEL`, recorded with every timing). A width that is not a
multiple of 64 bits is zero-padded, which leaves every distance unchanged (``0 xor 0 = 0``).

Every top-k here orders by score and then by ascending row (the tie rule), whatever the
thread count. The Hamming top-k keeps, per query, only the rows below a threshold that tightens as it scans
(:func:`hamming_topk`); the other kernels keep exact per-query heaps keyed by ``(score, row)``.
"""

from phase2.kernels.hamming import (
    LANES,
    SEED_SAMPLE,
    SIMD_LEVEL,
    CodeBlocks,
    as_words,
    hamming_kernel,
    hamming_topk,
    scan_assembly,
)
from phase2.kernels.inverted import InvertedBlocks, inverted_assembly, inverted_kernel, inverted_topk
from phase2.kernels.rescore import (
    RESCORE_LEVEL,
    RESCORE_STORES,
    asymmetric_topk,
    int8_query,
    rescore_assembly,
    rescore_topk,
    sign_lookup_tables,
)

__all__ = ["LANES", "RESCORE_LEVEL", "RESCORE_STORES", "SEED_SAMPLE", "SIMD_LEVEL", "CodeBlocks", "InvertedBlocks",
           "as_words", "asymmetric_topk", "hamming_kernel", "hamming_topk", "int8_query", "inverted_assembly",
           "inverted_kernel", "inverted_topk", "rescore_assembly", "rescore_topk", "scan_assembly",
           "sign_lookup_tables"]
