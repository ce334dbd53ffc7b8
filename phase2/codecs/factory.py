"""Codecs by factory string (:func:`make_codec`), and the training rules that say what a trained codec is
fitted on."""

from __future__ import annotations

import re
from collections.abc import Callable

import faiss
import numpy as np

from phase2.codecs.base import Codec, check_vectors
from phase2.codecs.binary import (
    AsymmetricBinary,
    IterativeQuantization,
    RaBitQ,
    RandomHyperplaneLSH,
    SignBinary,
    ThermometerBinary,
)
from phase2.codecs.pipelines import Rescored, Truncated
from phase2.codecs.scalar import (
    ClippedScalarQuantizer,
    FaissScalarQuantizer,
    Float16,
    Float32,
    ProductQuantizer,
    RawDotInt8,
)
from phase2.errors import ParameterError

CODECS: dict[str, Callable[[], Codec]] = {
    "Flat": Float32,
    "FP16": Float16,
    "BF16": lambda: FaissScalarQuantizer("BF16", "bfloat16", "float", faiss.ScalarQuantizer.QT_bf16),
    "SQ8": lambda: FaissScalarQuantizer("SQ8", "int8 (per-dim min/max)", "scalar", faiss.ScalarQuantizer.QT_8bit),
    "SQ8u": lambda: FaissScalarQuantizer("SQ8u", "int8 (one global range)", "scalar",
                                         faiss.ScalarQuantizer.QT_8bit_uniform),
    "SQ8p": lambda: ClippedScalarQuantizer(8),
    "SQ8raw": RawDotInt8,
    "SQ4": lambda: FaissScalarQuantizer("SQ4", "int4 (per-dim min/max)", "scalar", faiss.ScalarQuantizer.QT_4bit),
    "SQ4p": lambda: ClippedScalarQuantizer(4),
    "BIN": SignBinary,
    "BINc": lambda: SignBinary(center=True),
    "BINr": lambda: SignBinary(rotate=True),
    "ITQ": IterativeQuantization,
    "BINa": AsymmetricBinary,
    "BIN2t": lambda: ThermometerBinary(2),
    "BIN4t": lambda: ThermometerBinary(4),
}
"""Codecs with a fixed name; the others (``PQ<m>``, ``OPQ<m>,PQ<m>``, ``T<d>,<codec>`` ...) are parsed
(:data:`PATTERNS`)."""

PATTERNS: dict[str, tuple[re.Pattern, Callable[[re.Match], Codec]]] = {
    "PQ<m>": (re.compile(r"PQ(\d+)"), lambda m: ProductQuantizer(int(m[1]))),
    "OPQ<m>,PQ<m>": (re.compile(r"OPQ(\d+),PQ(\1)"), lambda m: ProductQuantizer(int(m[1]), opq=True)),
    "ITQ<bits>": (re.compile(r"ITQ(\d+)"), lambda m: IterativeQuantization(int(m[1]))),
    "LSH<bits>": (re.compile(r"LSH(\d+)"), lambda m: RandomHyperplaneLSH(int(m[1]))),
    "RaBitQ<b>": (re.compile(r"RaBitQ(\d)"), lambda m: RaBitQ(int(m[1]))),
    "<first>+R<factor><second>": (re.compile(r"(\w+)\+R(\d+)(Flat|FP16|BF16|SQ8|SQ4|BINa)"),
                                  lambda m: Rescored(make_codec(m[1]), make_codec(m[3]), int(m[2]))),
    "T<d>,<codec>": (re.compile(r"T(\d+),(.+)"), lambda m: Truncated(int(m[1]), make_codec(m[2]))),
}


def make_codec(name: str) -> Codec:
    """A new, unfitted codec from its factory string."""
    if name in CODECS:
        return CODECS[name]()
    for pattern, build in PATTERNS.values():
        match = pattern.fullmatch(name)
        if match:
            return build(match)
    raise ParameterError(f"unknown codec {name!r}; valid codecs: {', '.join([*CODECS, *PATTERNS])}")


TRAINING = {"half": "fitted on a seeded half of the corpus, encoding all of it",
            "corpus": "fitted on the whole searched corpus",
            "sample<N>": "fitted on N rows of the same seeded order (the learning curve), encoding all of the corpus"}
"""Where a trained codec learns its state. ``half`` is what every chapter reports: one codec per search, fitted
on a seeded half of the corpus (:func:`training_rows`) and encoding every document, as a deployment trains on a
sample of what it stores; its scores are on one scale. ``corpus`` fits on every vector it then encodes (the
published sentence-transformers protocol takes its int8 ranges that way); the quality chapter shows how much it
flatters. ``sample<N>`` (``sample1024``) fits on the first N rows of the seeded order that ``half`` takes its
first n/2 from, so the training sets of a learning curve are nested. An untrained codec is the same codec any
way."""
TRAINING_SEED = 0  # the seeded order of every corpus that trained codecs are fitted on
_SAMPLE = re.compile(r"sample([1-9]\d*)")


def training_rows(n: int, size: int | None = None, seed: int = TRAINING_SEED) -> np.ndarray:
    """The corpus rows a trained codec is fitted on: the first ``size`` (default ``n // 2``, the ``half`` rule)
    rows of a seeded permutation, in corpus order."""
    return np.sort(np.random.default_rng(seed).permutation(n)[: n // 2 if size is None else size])


def checked_training(training: str) -> str:
    if training not in ("half", "corpus") and not _SAMPLE.fullmatch(training):
        raise ParameterError(f"training: {training!r} is not one of half, corpus or sample<N> (sample1024)")
    return training


def training_size(codec: Codec, n: int, training: str = "half") -> int:
    """How many of a corpus's ``n`` vectors ``codec`` is fitted on under ``training``."""
    if not codec.trained:
        return n
    sample = _SAMPLE.fullmatch(checked_training(training))
    return min(int(sample[1]), n) if sample else n // 2 if training == "half" else n


def inapplicable_reason(name: str, n: int, dim: int, training: str = "half") -> str | None:
    """Why codec ``name`` cannot search a corpus of ``n`` vectors of dimension ``dim`` under ``training`` (None
    when it can), from the shapes alone: what a table row says in place of its results."""
    codec = make_codec(name)
    size = training_size(codec, n, training)
    reason = codec.unfit_reason(size, dim)
    where = "all" if size >= n else "half of" if training == "half" else f"{size:,} of"
    return f"{reason} ({where} {n:,} documents)" if reason else None


def fitted_for_search(name: str, corpus: np.ndarray, training: str = "half") -> Codec:
    """Codec ``name`` fitted as ``training`` says (:data:`TRAINING`); it then encodes the whole ``corpus``.
    Raises :class:`phase2.errors.NotApplicable` when the codec cannot be fitted on those vectors."""
    codec = make_codec(name)
    corpus = check_vectors(corpus, f"{name} corpus")
    size = training_size(codec, corpus.shape[0], training)
    return codec.fit(corpus[training_rows(corpus.shape[0], size)] if size < corpus.shape[0] else corpus)


def split_codec_names(value: str) -> list[str]:
    """A comma-separated list of factory strings; ``OPQ<m>,PQ<m>`` and ``T<d>,<codec>`` stay one entry each. Each
    is checked."""
    tokens = [t.strip() for t in value.split(",") if t.strip()]
    names: list[str] = []
    for token in tokens:
        last = names[-1].rsplit(",", 1)[-1] if names else ""
        if re.fullmatch(r"T\d+", last) or (re.fullmatch(r"OPQ\d+", last) and token.startswith("PQ")):
            names[-1] += "," + token
        else:
            names.append(token)
    if not names:
        raise ParameterError(f"codecs: empty; valid codecs: {', '.join([*CODECS, *PATTERNS])}")
    for name in names:
        make_codec(name)
    if len(set(names)) != len(names):
        raise ParameterError(f"codecs: {value!r} names a codec twice")
    return names
