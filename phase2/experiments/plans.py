"""What a searching chapter searches, from its parameters: the chapter's setup cell and precompute read the same
plan, so the tasks computed before the book are exactly the searches the chapters ask for."""

from __future__ import annotations

from dataclasses import dataclass, field

from phase2 import codecs
from phase2.codecs import Rescored, make_codec
from phase2.data.embeddings import MODELS, get_model_spec
from phase2.experiments import params
from phase2.experiments.searches import REFERENCE

SEARCHING_CHAPTERS = ("quality_vs_memory", "rescoring", "geometry")
"""The chapters whose exhaustive searches precompute runs and the published results hold."""
RESCORE_STORES = ("Flat", "FP16", "BF16", "SQ8", "SQ4")
"""The codecs that may re-rank a first stage's candidates (the rescoring chapter's ``rescore_with``)."""
MIN_DEPTH = 100
"""The least depth of a quality search's ranked lists: Recall@100 needs it."""

LOSS_CODECS = {"BIN": "sign", "BINc": "centred sign", "BINr": "rotated sign", "ITQ": "ITQ"}
"""The 1-bit sign codes the geometry chapter searches and explains (one label each)."""


def rescoring_grid(firsts: list[str], seconds: list[str], factors: list[int]) -> list[str]:
    """Factory names of every two-stage pipeline ``<first>+R<factor><second>`` (a codec is never rescored by
    itself), first stages alone included."""
    return [*firsts, *(f"{f}+R{m}{s}" for f in firsts for s in seconds if s != f for m in factors)]


def learning_trainings(n_docs: int, sizes: list[int]) -> list[str]:
    """The training rules of a learning curve on a corpus of ``n_docs``: ``sample<N>`` for each size below half the
    corpus, then ``half`` and ``corpus``."""
    return [*(f"sample{size}" for size in sorted(sizes) if size < n_docs // 2), "half", "corpus"]


def flattered_codecs(codecs: list[str]) -> list[str]:
    """The trained single-stage codecs among ``codecs``: those whose self-training :func:`training_flattery`
    measures (a rescored pipeline's trained state is its stages', measured on their own)."""
    made = {name: make_codec(name) for name in codecs}
    return [name for name, codec in made.items() if codec.trained and not isinstance(codec, Rescored)]


def truncated_names(model: str, codecs: list[str]) -> list[str]:
    """The searches that vary dimension within ``model``: float32 and each of ``codecs`` on its first half of
    dimensions, renormalised (``T<d>,<codec>``, :class:`phase2.codecs.Truncated`)."""
    half = get_model_spec(model).dim // 2
    return [f"T{half},{name}" for name in dict.fromkeys([REFERENCE, *codecs])]


@dataclass(frozen=True)
class Plan:
    """A searching chapter's searches: its (collection, model) ``pairs`` (each model on every collection, a stored
    model only where a published store holds it), the line naming the collections no store holds (``missing_stores``,
    empty when none), its ``datasets`` and ``models`` in the order given, the codec factory ``names`` it searches
    (float32 runs beside them as the reference) and the ``depth`` of each ranked list. The quality chapter's plan
    also holds its learning curve (the collections, trained codecs and training-set sizes, with the chapter's first
    model) and the codes it searches on each model's first half of dimensions (``truncation_codecs``)."""

    pairs: list[tuple[str, str]]
    missing_stores: str
    datasets: list[str]
    models: list[str]
    names: list[str]
    depth: int
    learning_datasets: list[str] = field(default_factory=list)
    learning_codecs: list[str] = field(default_factory=list)
    learning_sizes: list[int] = field(default_factory=list)
    truncation_codecs: list[str] = field(default_factory=list)


def chapter_plan(chapter: str, values: dict) -> Plan:
    """The plan of ``chapter`` (one of :data:`SEARCHING_CHAPTERS`) with its parameter ``values``, each checked: an
    unknown collection, model or codec, or a depth below :data:`MIN_DEPTH`, is a ParameterError naming it."""
    datasets = params.split_names(values["dataset"], params.known_datasets(), "dataset")
    models = params.split_names(values["model"], list(MODELS), "model")
    stored = params.split_names(values["stored_model"], list(MODELS), "stored_model") \
        if values.get("stored_model") else []
    pairs, missing_stores = params.collection_model_pairs(datasets, models, stored)
    extra = {}
    if chapter == "quality_vs_memory":
        params.check_range("k", values["k"], MIN_DEPTH)
        names, depth = codecs.split_codec_names(values["codecs"]), values["k"]
        extra = {"learning_datasets": params.split_names(values["learning_datasets"], params.known_datasets(),
                                                         "learning_datasets") if values["learning_datasets"] else [],
                 "learning_codecs": codecs.split_codec_names(values["learning_codecs"]),
                 "learning_sizes": params.split_ints(values["learning_sizes"], "learning_sizes"),
                 "truncation_codecs": codecs.split_codec_names(values["truncation_codecs"])
                 if values["truncation_codecs"] else []}
    elif chapter == "rescoring":
        seconds = params.split_names(values["rescore_with"], list(RESCORE_STORES), "rescore_with")
        names = rescoring_grid(codecs.split_codec_names(values["first_stages"]), seconds,
                               params.split_ints(values["factors"], "factors"))
        depth = MIN_DEPTH
    elif chapter == "geometry":
        names, depth = list(LOSS_CODECS), MIN_DEPTH
    else:
        raise ValueError(f"{chapter!r} is not a searching chapter ({', '.join(SEARCHING_CHAPTERS)})")
    for name in names:
        codecs.make_codec(name)  # an unknown or malformed factory name fails here, before any search
    return Plan(pairs, missing_stores, datasets, models, names, depth, **extra)
