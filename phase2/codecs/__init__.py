"""Compression schemes behind one interface, named by short factory strings.

Every codec is a standalone encoder in the spirit of faiss's ``sa_encode``:
``fit`` on the corpus only, ``encode`` to ``uint8`` codes of exactly ``code_size``
bytes per vector, and ``search`` the codes with float queries for an exhaustive,
exact top-k. Scores are similarities (higher is better); ties are broken by
ascending corpus row, for every codec, so rankings are reproducible.

Factory names (:func:`make_codec`):

- ``Flat`` float32, ``FP16`` float16, ``BF16`` bfloat16 (faiss);
- ``SQ8`` / ``SQ4``: 8 / 4 bits per dimension, each dimension's corpus [min, max] mapped
  linearly to 256 / 16 levels (faiss ``ScalarQuantizer``); ``SQ8u`` one range for all
  dimensions; ``SQ8p`` / ``SQ4p`` per-dimension [1%, 99%] quantiles, values beyond clipped;
  ``SQ8raw`` sentence-transformers' int8 codes scored by their raw integer dot product;
- ``PQ<m>``: product quantization, m sub-vectors of 8 bits (m bytes); ``OPQ<m>,PQ<m>``
  with a learned rotation first (faiss);
- ``BIN``: 1 bit per dimension, the sign; ``BINc`` the sign after subtracting the corpus
  mean; ``BINr`` the sign after a seeded random rotation; ``ITQ`` after a learned rotation
  (iterative quantization); ``BIN2t`` / ``BIN4t`` 2 / 4 bits per dimension, a thermometer code
  over per-dimension quantiles; ``ITQ<bits>`` ITQ on the top ``bits`` principal components;
  ``LSH<bits>`` random hyperplanes at median thresholds (faiss). Binary codes are searched by
  Hamming distance (numba kernel); the others score a float query against decoded vectors,
  ``BINa`` too (sign bits, float query: asymmetric);
- ``RaBitQ<b>``: RaBitQ with b bits per dimension and per-vector correction factors (faiss);
- ``<first>+R<m><second>``: ``first`` finds ``m * 10`` candidates, ``second`` (Flat, FP16,
  BF16, SQ8 or SQ4 codes, which may live on disk, or ``BINa``: the float query against the
  candidates' sign bits) re-ranks them, e.g. ``BIN+R4Flat``; ``BIN+R40BINa`` is the
  sentence-transformers report's binary protocol (Hamming top 100 x 4, then the float query);
- ``T<d>,<codec>``: ``codec`` on the first ``d`` dimensions of each vector, renormalised to unit length
  (``T192,BIN``): the same model at a lower dimension.
"""

from phase2.codecs.base import FAISS_SIMD, Codec, DecodingCodec, check_vectors, random_rotation, topk_by_score
from phase2.codecs.binary import (
    AsymmetricBinary,
    IterativeQuantization,
    RaBitQ,
    RandomHyperplaneLSH,
    SignBinary,
    ThermometerBinary,
)
from phase2.codecs.factory import (
    CODECS,
    PATTERNS,
    TRAINING,
    TRAINING_SEED,
    checked_training,
    fitted_for_search,
    inapplicable_reason,
    make_codec,
    split_codec_names,
    training_rows,
    training_size,
)
from phase2.codecs.pipelines import FITTED_FIRST_STAGES_KEPT, RESCORE_CUTOFF, Rescored, Truncated
from phase2.codecs.scalar import (
    OPQ_ITERATIONS,
    ClippedScalarQuantizer,
    FaissScalarQuantizer,
    Float16,
    Float32,
    ProductQuantizer,
    RawDotInt8,
)

__all__ = ["CODECS", "FAISS_SIMD", "FITTED_FIRST_STAGES_KEPT", "OPQ_ITERATIONS", "PATTERNS", "RESCORE_CUTOFF",
           "TRAINING", "TRAINING_SEED", "AsymmetricBinary", "ClippedScalarQuantizer", "Codec", "DecodingCodec",
           "FaissScalarQuantizer", "Float16", "Float32", "IterativeQuantization", "ProductQuantizer", "RaBitQ",
           "RandomHyperplaneLSH", "RawDotInt8", "Rescored", "SignBinary", "ThermometerBinary", "Truncated",
           "check_vectors", "checked_training", "fitted_for_search", "inapplicable_reason", "make_codec",
           "random_rotation", "split_codec_names", "topk_by_score", "training_rows", "training_size"]
