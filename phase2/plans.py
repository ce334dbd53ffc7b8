"""What a searching chapter searches, from its parameters: the chapter's setup cell and precompute read the same
plan, so the tasks computed before the book are exactly the searches the chapters ask for."""

from __future__ import annotations

from dataclasses import dataclass

from phase2 import chapters, codecs, geometry, rescoring
from phase2.datasets import available_datasets
from phase2.embeddings import MODELS

SEARCHING_CHAPTERS = ("quality_vs_memory", "rescoring", "geometry")
"""The chapters whose exhaustive searches precompute runs and the published results hold."""
RESCORE_STORES = ("Flat", "FP16", "BF16", "SQ8", "SQ4")
"""The codecs that may re-rank a first stage's candidates (the rescoring chapter's ``rescore_with``)."""
MIN_DEPTH = 100
"""The least depth of a quality search's ranked lists: Recall@100 needs it."""


@dataclass(frozen=True)
class Plan:
    """A searching chapter's searches: its (collection, model) ``pairs`` (each model on every collection, a stored
    model only where a published store holds it), the line naming the collections no store holds (``missing_stores``,
    empty when none), its ``datasets`` and ``models`` in the order given, the codec factory ``names`` it searches
    (float32 runs beside them as the reference) and the ``depth`` of each ranked list."""

    pairs: list[tuple[str, str]]
    missing_stores: str
    datasets: list[str]
    models: list[str]
    names: list[str]
    depth: int


def chapter_plan(chapter: str, values: dict) -> Plan:
    """The plan of ``chapter`` (one of :data:`SEARCHING_CHAPTERS`) with its parameter ``values``, each checked: an
    unknown collection, model or codec, or a depth below :data:`MIN_DEPTH`, is a ParameterError naming it."""
    datasets = chapters.split_names(values["dataset"], available_datasets(), "dataset")
    models = chapters.split_names(values["model"], list(MODELS), "model")
    stored = chapters.split_names(values["stored_model"], list(MODELS), "stored_model") \
        if values.get("stored_model") else []
    pairs, missing_stores = chapters.collection_model_pairs(datasets, models, stored)
    if chapter == "quality_vs_memory":
        chapters.check_range("k", values["k"], MIN_DEPTH)
        names, depth = codecs.split_codec_names(values["codecs"]), values["k"]
    elif chapter == "rescoring":
        seconds = chapters.split_names(values["rescore_with"], list(RESCORE_STORES), "rescore_with")
        names = rescoring.rescoring_grid(codecs.split_codec_names(values["first_stages"]), seconds,
                                         chapters.split_ints(values["factors"], "factors"))
        depth = MIN_DEPTH
    elif chapter == "geometry":
        names, depth = list(geometry.LOSS_CODECS), MIN_DEPTH
    else:
        raise ValueError(f"{chapter!r} is not a searching chapter ({', '.join(SEARCHING_CHAPTERS)})")
    for name in names:
        codecs.make_codec(name)  # an unknown or malformed factory name fails here, before any search
    return Plan(pairs, missing_stores, datasets, models, names, depth)
