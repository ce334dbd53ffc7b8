"""The chapters' independent units of work as Dask tasks, run before the chapters so that they execute from cache.

A task is one of two kinds: embedding one collection with one model (:class:`EmbedTask`), or fitting and
searching one codec (or a first stage and its rescoring pipelines) on one collection and model at one depth
(:class:`SearchTask`, exactly the :func:`phase2.quality.cached_search` calls a chapter would make). Each
writes the caches under :func:`phase2.storage.cache_dir` that the chapters read, atomically and keyed by
everything that shapes the result, so a task run on any worker leaves what the chapter itself would have
computed: the codecs fit and search on one thread, and their results are bit-identical whichever process
runs them.

The default is a ``LocalCluster`` sized to the machine (one single-threaded worker per core); with a
scheduler address the same tasks run on an existing cluster whose workers see the same cache directory
(``$PHASE2_CACHE_DIR``) and the same collections, and have this package installed at the same commit.
"""

from __future__ import annotations

import ast
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from functools import cache

import pandas as pd
from tqdm import tqdm

from phase2 import chapters, codecs, pipeline
from phase2.datasets import Collection, available_datasets, load_dataset
from phase2.embeddings import MODELS, embed

SEARCHING_CHAPTERS = ("quality_vs_memory", "rescoring", "geometry")
"""Chapters whose exhaustive searches are precomputed; the others read results or time things."""

GPU_RESOURCE = "GPU"
"""Dask worker resource an embedding task asks for when a worker of the cluster declares it
(``dask worker tcp://... --resources GPU=1``); without one, any worker embeds."""


@dataclass(frozen=True)
class EmbedTask:
    """Embed a collection's documents and queries with a model (or verify its published store)."""

    dataset: str
    model: str

    def run(self) -> float:
        start = time.perf_counter()
        collection = _collection(self.dataset)
        for part in ("docs", "queries"):
            embed(collection, self.model, part, progress=False)
        return time.perf_counter() - start


@dataclass(frozen=True)
class SearchTask:
    """Fit codecs on a collection's documents and search its queries to ``depth``, into the search cache: one
    codec, or a first stage with its rescoring pipelines, which then fit it once (``codecs._fitted_once``)."""

    dataset: str
    model: str
    codecs: tuple[str, ...]
    depth: int
    training: str = "halves"  # phase2.quality.TRAINING

    def run(self, *_embedded: float) -> float:
        from phase2.quality import cached_search

        start = time.perf_counter()
        collection = _collection(self.dataset)
        docs = embed(collection, self.model, "docs", progress=False)
        queries = embed(collection, self.model, "queries", progress=False)
        for codec in self.codecs:
            cached_search(collection, self.model, codec, self.depth, docs, queries, self.training)
        return time.perf_counter() - start


@cache
def _collection(name: str) -> Collection:
    return load_dataset(name)


def chapter_values(chapter: str, profile: str) -> dict:
    """Every parameter of a chapter as the book runs it on ``profile``: its declared defaults, then the profile's."""
    notebook = pipeline.CHAPTERS_DIR / f"{chapter}.ipynb"
    declared = pipeline.declared_parameters(notebook)
    values = {name: ast.literal_eval(info["default"]) for name, info in declared.items()}
    values.update(pipeline.chapter_parameters(notebook, profile))
    return values


def _searches(chapter: str, values: dict) -> tuple[list[str], int]:
    """The codec names a chapter searches, float32 first as :func:`phase2.quality.run_collection` adds it, and
    the depth; mirrors the chapter's own setup cell."""
    from phase2 import geometry, quality

    if chapter == "quality_vs_memory":
        names, depth = codecs.split_codec_names(values["codecs"]), values["k"]
    elif chapter == "rescoring":
        firsts = codecs.split_codec_names(values["first_stages"])
        seconds = chapters.split_names(values["rescore_with"], ["Flat", "FP16", "BF16", "SQ8", "SQ4"], "rescore_with")
        names, depth = quality.rescoring_grid(firsts, seconds, chapters.split_ints(values["factors"], "factors")), 100
    else:
        names, depth = list(geometry.LOSS_CODECS), 100
    return [quality.REFERENCE, *(n for n in names if n != quality.REFERENCE)], depth


def plan(profile: str) -> tuple[list[EmbedTask], list[SearchTask]]:
    """The embedding and search tasks of a profile's searching chapters, each search once, largest first."""
    from phase2 import quality

    embeds: dict[EmbedTask, None] = {}
    wanted: dict[tuple[str, str, int, str], dict[str, None]] = {}
    for chapter in SEARCHING_CHAPTERS:
        values = chapter_values(chapter, profile)
        datasets = chapters.split_names(values["dataset"], available_datasets(), "dataset")
        models = chapters.split_names(values["model"], list(MODELS), "model")
        stored = chapters.split_names(values["stored_model"], list(MODELS), "stored_model") \
            if values.get("stored_model") else []
        pairs, _ = chapters.collection_model_pairs(datasets, models, stored)
        names, depth = _searches(chapter, values)
        names = [codecs.make_codec(name).name for name in names]
        for dataset, model in pairs:
            embeds[EmbedTask(dataset, model)] = None
            depth_here = min(depth, _collection(dataset).n_docs)
            wanted.setdefault((dataset, model, depth_here, "halves"), {}).update(dict.fromkeys(names))
            if chapter == "quality_vs_memory" and model == models[0]:  # the chapter's training_flattery section
                wanted.setdefault((dataset, model, depth_here, "corpus"), {}).update(
                    dict.fromkeys(quality.flattered_codecs(names)))
    searches = []
    for (dataset, model, depth, training), names in wanted.items():
        by_first_stage: dict[str, list[str]] = {}
        for name in names:
            by_first_stage.setdefault(re.sub(r"\+R\d+\w+$", "", name), []).append(name)
        searches.extend(SearchTask(dataset, model, tuple(group), depth, training)
                        for group in by_first_stage.values())
    return list(embeds), sorted(searches, key=lambda t: -_cost(t))


def _cost(task: SearchTask) -> float:
    """Rough relative cost, to start the long searches first: trained codecs fit on the documents, and
    every codec scores every query against every document."""
    collection = _collection(task.dataset)
    trained = any(task.codecs[0].startswith(p) for p in ("PQ", "OPQ", "ITQ", "RaBitQ", "LSH", "BINr"))
    return collection.n_docs * (len(task.codecs) * collection.n_queries + (2000 if trained else 0))


def timing_table(done: list[tuple[EmbedTask | SearchTask, float]]) -> pd.DataFrame:
    """One row per task: ``task`` (embed or search), ``dataset``, ``model``, ``codec``, ``training`` (of a search),
    ``seconds`` (wall time in the process that ran it, a cached result included)."""
    return pd.DataFrame([{"task": "embed" if isinstance(t, EmbedTask) else "search", "dataset": t.dataset,
                          "model": t.model, "codec": " ".join(getattr(t, "codecs", ())),
                          "training": getattr(t, "training", ""), "seconds": seconds} for t, seconds in done],
                        columns=["task", "dataset", "model", "codec", "training", "seconds"])


def run_serial(profile: str, progress: bool = True) -> pd.DataFrame:
    """Every task of :func:`plan` in this process, one after another; their :func:`timing_table`."""
    embeds, searches = plan(profile)
    done = [(task, task.run()) for task in tqdm([*embeds, *searches], desc="precompute: embeddings and codec searches",
                                                unit="task", disable=not progress)]
    return timing_table(done)


def default_workers() -> int:
    """One single-threaded worker per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run(profile: str, scheduler: str | None = None, workers: int | None = None,
        progress: bool = True) -> pd.DataFrame:
    """Every task of :func:`plan` on a Dask cluster: the one at ``scheduler`` (``tcp://host:port``), or a
    ``LocalCluster`` of ``workers`` single-threaded workers (default: one per core); their :func:`timing_table`.

    A failed task stops the run with its own error (the tasks already done stay cached).
    """
    from distributed import Client, LocalCluster, as_completed

    embeds, searches = plan(profile)
    if scheduler:
        client = Client(scheduler, timeout="30s")
        cluster = None
    else:
        cluster = LocalCluster(n_workers=workers or default_workers(), threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR,
                               local_directory=os.path.join(tempfile.gettempdir(), "phase2-dask"),
                               env={"NUMBA_NUM_THREADS": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"})
        client = Client(cluster)
    try:
        gpu = any(GPU_RESOURCE in (w.get("resources") or {})
                  for w in client.scheduler_info(n_workers=-1)["workers"].values())
        embedded = {(t.dataset, t.model): client.submit(EmbedTask.run, t, key=f"embed-{t.dataset}-{t.model}",
                                                        priority=1, resources={GPU_RESOURCE: 1} if gpu else None)
                    for t in embeds}
        futures = [client.submit(SearchTask.run, t, embedded[(t.dataset, t.model)],
                                 key=f"search-{t.dataset}-{t.model}-{' '.join(t.codecs)}-{t.depth}-{t.training}",
                                 priority=-i)
                   for i, t in enumerate(searches)]
        task_of = {**{f.key: t for t, f in zip(embeds, embedded.values(), strict=True)},
                   **{f.key: t for t, f in zip(searches, futures, strict=True)}}
        done = []
        with tqdm(total=len(task_of), desc="precompute: embeddings and codec searches", unit="task",
                  disable=not progress) as bar:
            for future in as_completed([*embedded.values(), *futures]):
                done.append((task_of[future.key], future.result()))
                bar.update()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return timing_table(done)
