"""The chapters' independent units of work as Dask tasks, run before the chapters so that they execute from cache.

A task is one of two kinds: embedding one collection with one model (:class:`EmbedTask`), or fitting and
searching one codec (or a first stage and its rescoring pipelines) on one collection and model at one depth
(:class:`SearchTask`, exactly the :func:`phase2.experiments.searches.cached_search` calls a chapter would make). Each
writes the caches under :func:`phase2.storage.cache_dir` that the chapters read, atomically and keyed by
everything that shapes the result, so a task run on any worker leaves what the chapter itself would have
computed: the codecs fit and search on one thread, and their results are bit-identical whichever process
runs them.

The default is a ``LocalCluster`` sized to the machine (one single-threaded worker per core); with a
scheduler address the same tasks run on an existing cluster whose workers see the same cache directory
(``$PHASE2_CACHE_DIR``) and the same collections, and have this package installed at the same commit.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass, replace
from functools import cache

import pandas as pd
from tqdm import tqdm

from phase2 import codecs
from phase2.data.datasets import Collection, load_dataset
from phase2.data.embeddings import MODELS, embed
from phase2.errors import ParameterError
from phase2.evaluation import metrics
from phase2.experiments import plans, published, searches
from phase2.experiments.params import chapter_values, known_datasets

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
    codec, or a first stage with its rescoring pipelines, which then fit it once
    (``phase2.codecs.pipelines._fitted_once``). With ``profile``, each search's per-query rows are also published
    (:mod:`phase2.experiments.published`) unless current there."""

    dataset: str
    model: str
    codecs: tuple[str, ...]
    depth: int
    training: str = "half"  # phase2.codecs.TRAINING
    profile: str = ""  # publish into phase2.experiments.published.published_dir(profile); empty: cache only

    def run(self, *_embedded: float) -> float:
        from phase2.experiments.searches import REFERENCE, cached_search

        published.check_reproducible_blas()  # on every worker: one that loaded numpy before phase2 keeps its own
        start = time.perf_counter()
        collection = _collection(self.dataset)
        docs = embed(collection, self.model, "docs", progress=False)
        queries = embed(collection, self.model, "queries", progress=False)
        root = published.published_dir(self.profile) if self.profile else None
        reference = None  # float32's ids, for Overlap@10: looked up once per task, when a search is published
        for codec in self.codecs:
            began = time.perf_counter()
            fitted, ids, scores, sizes = cached_search(collection, self.model, codec, self.depth, docs, queries,
                                                       self.training)
            seconds = time.perf_counter() - began if fitted.dim is not None else 0.0  # 0: from the cache
            if root is None:
                continue
            identity = published.identity_of(collection, self.model, codec, self.training, self.depth)
            if published.status_of(root, identity)[0] != "current":
                if reference is None:
                    reference = cached_search(collection, self.model, REFERENCE, self.depth, docs, queries)[1]
                published.write_search(root, identity, metrics.evaluate(collection, ids, scores, reference),
                                       sizes, seconds, self.profile)
        return time.perf_counter() - start


@cache
def _collection(name: str) -> Collection:
    return load_dataset(name)


def _chapter_searches(profile: str, only: tuple[str, ...] = ()):
    """Per searching chapter of ``profile``: the chapter, its first model, its (collection, model) pairs, the codec
    names it searches (float32 first, as :func:`phase2.experiments.searches.run_collection` adds it; factory-normalised)
    and the depth, from the chapter's own plan (:func:`phase2.experiments.plans.chapter_plan`); with ``only``
    (:func:`only_filter`), those it keeps."""
    keep = only_filter(only)
    for chapter in plans.SEARCHING_CHAPTERS:
        plan = plans.chapter_plan(chapter, chapter_values(chapter, profile))
        names = [searches.REFERENCE, *(n for n in plan.names if n != searches.REFERENCE)]
        pairs = [(dataset, model) for dataset, model in plan.pairs if keep(chapter, dataset, model)]
        if pairs:
            yield chapter, plan.models[0], pairs, [codecs.make_codec(name).name for name in names], plan.depth


def _learning_searches(profile: str, only: tuple[str, ...] = ()):
    """The quality chapter's learning curve (:func:`phase2.findings.learning.learning_curve`): per collection it names,
    with the chapter's first model, the codecs that can be fitted under each of its training rules."""

    plan = plans.chapter_plan("quality_vs_memory", chapter_values("quality_vs_memory", profile))
    keep = only_filter(only)
    model = plan.models[0]
    names = [codecs.make_codec(name).name for name in plan.learning_codecs]
    for dataset in plan.learning_datasets:
        if not keep("quality_vs_memory", dataset, model):
            continue
        n_docs, dim = _collection(dataset).n_docs, MODELS[model].dim
        depth = min(plan.depth, n_docs)
        for training in plans.learning_trainings(n_docs, plan.learning_sizes):
            fits = [name for name in names if codecs.make_codec(name).trained
                    and not codecs.inapplicable_reason(name, n_docs, dim, training)]
            yield dataset, model, fits, [training], depth
        yield dataset, model, ["Flat", "BIN", "BINa"], ["half"], depth


def _truncation_searches(profile: str, only: tuple[str, ...] = ()):
    """The quality chapter's searches of dimension within one model
    (:func:`phase2.findings.dimension.dimension_within`): per collection and model it searches, float32 and each of its
    ``truncation_codecs`` on the model's first half of dimensions."""

    names = plans.chapter_plan("quality_vs_memory", chapter_values("quality_vs_memory", profile)).truncation_codecs
    if not names:
        return
    for chapter, _, pairs, _, depth in _chapter_searches(profile, only):
        if chapter == "quality_vs_memory":
            for dataset, model in pairs:
                yield dataset, model, plans.truncated_names(model, names), ["half"], min(depth,
                                                                                           _collection(dataset).n_docs)


def only_filter(only: tuple[str, ...]):
    """``keep(chapter, dataset, model)`` for names of searching chapters, collections and models: a search is kept
    when it matches one of the names given of each kind (``cranfield,minilm-l6``: cranfield with MiniLM-L6)."""
    kinds = {"chapter": list(plans.SEARCHING_CHAPTERS), "collection": known_datasets(), "model": list(MODELS)}
    chosen: dict[str, set[str]] = {kind: set() for kind in kinds}
    for name in only:
        kind = next((k for k, valid in kinds.items() if name in valid), None)
        if kind is None:
            raise ParameterError(f"--only: {name!r} is neither a searching chapter ({', '.join(kinds['chapter'])}), "
                                 f"a collection ({', '.join(kinds['collection'])}) nor a model "
                                 f"({', '.join(kinds['model'])})")
        chosen[kind].add(name)
    return lambda chapter, dataset, model: all(not names or value in names for names, value in
                                               zip(chosen.values(), (chapter, dataset, model), strict=True))


def inapplicable(profile: str) -> pd.DataFrame:
    """The searches :func:`plan` leaves out because the codec cannot be fitted on that collection and model:
    ``chapter``, ``dataset``, ``model``, ``name`` and ``reason`` (:func:`phase2.experiments.searches.inapplicable`)."""

    tables = [searches.inapplicable(pairs, names).assign(chapter=chapter)
              for chapter, _, pairs, names, _ in _chapter_searches(profile)]
    return pd.concat(tables, ignore_index=True)[["chapter", "dataset", "model", "name", "reason"]]


def plan(profile: str, only: tuple[str, ...] = ()) -> tuple[list[EmbedTask], list[SearchTask]]:
    """The embedding and search tasks of a profile's searching chapters (those ``only`` keeps, :func:`only_filter`),
    each search once, largest first; a codec that cannot be fitted on a collection and model is left out
    (:func:`inapplicable`)."""

    embeds: dict[EmbedTask, None] = {}
    wanted: dict[tuple[str, str, int, str], dict[str, None]] = {}
    for chapter, first_model, pairs, names, depth in _chapter_searches(profile, only):
        for dataset, model in pairs:
            embeds[EmbedTask(dataset, model)] = None
            n_docs, dim = _collection(dataset).n_docs, MODELS[model].dim
            here = [name for name in names if not codecs.inapplicable_reason(name, n_docs, dim)]
            depth_here = min(depth, n_docs)
            wanted.setdefault((dataset, model, depth_here, "half"), {}).update(dict.fromkeys(here))
            if chapter == "quality_vs_memory" and model == first_model:  # the chapter's training_flattery section
                wanted.setdefault((dataset, model, depth_here, "corpus"), {}).update(
                    dict.fromkeys(plans.flattered_codecs(here)))
    for dataset, model, names, trainings, depth in (*_learning_searches(profile, only),
                                                    *_truncation_searches(profile, only)):
        embeds[EmbedTask(dataset, model)] = None
        for training in trainings:
            wanted.setdefault((dataset, model, depth, training), {}).update(dict.fromkeys(names))
    searches = []
    for (dataset, model, depth, training), names in wanted.items():
        by_first_stage: dict[str, list[str]] = {}
        for name in names:
            by_first_stage.setdefault(re.sub(r"\+R\d+\w+$", "", name), []).append(name)
        searches.extend(SearchTask(dataset, model, tuple(group), depth, training, profile)
                        for group in by_first_stage.values())
    return list(embeds), sorted(searches, key=lambda t: -_cost(t))


def pending(profile: str, embeds: list[EmbedTask], searches: list[SearchTask]) -> tuple[list[EmbedTask],
                                                                                        list[SearchTask]]:
    """The tasks still to run: each search without a current published file under
    :func:`phase2.experiments.published.read_roots` (a task keeps its codecs that lack one), and the embeddings they
    need."""
    roots = published.read_roots(profile)
    left = []
    for task in searches:
        collection = _collection(task.dataset)
        codecs_left = tuple(codec for codec in task.codecs if not published.find_current(
            roots, published.identity_of(collection, task.model, codec, task.training, task.depth)))
        if codecs_left:
            left.append(replace(task, codecs=codecs_left))
    needed = {(t.dataset, t.model) for t in left}
    return [t for t in embeds if (t.dataset, t.model) in needed], left


def published_status(profile: str) -> pd.DataFrame:
    """Every search :func:`plan` holds for ``profile``, against its published results
    (:func:`phase2.experiments.published.status_of`): ``dataset``, ``model``, ``codec``, ``training``, ``status`` and
    the ``seconds`` its published file records (NaN when missing, 0 when it was published from the search cache)."""
    root = published.published_dir(profile)
    rows = []
    for task in plan(profile)[1]:
        collection = _collection(task.dataset)
        for codec in task.codecs:
            identity = published.identity_of(collection, task.model, codec, task.training, task.depth)
            status, found = published.status_of(root, identity)
            rows.append({"dataset": task.dataset, "model": task.model, "codec": codec, "training": task.training,
                         "status": status, "seconds": found["seconds"] if found else float("nan")})
    return pd.DataFrame(rows, columns=["dataset", "model", "codec", "training", "status", "seconds"])


def status_summary(status: pd.DataFrame) -> pd.DataFrame:
    """:func:`published_status` per collection and model: searches in each state, and the recorded wall time of
    those not current (what refreshing them took last time; missing ones have none)."""
    counts = status.pivot_table(index=["dataset", "model"], columns="status", values="codec", aggfunc="count",
                                fill_value=0, sort=False)
    counts = counts.reindex(columns=list(published.STATES), fill_value=0)
    stale = status[status.status != "current"]
    counts["recorded seconds to refresh"] = stale.groupby(["dataset", "model"], sort=False).seconds.sum() \
        .reindex(counts.index, fill_value=0.0)
    counts.columns.name = None
    return counts.reset_index()


def _cost(task: SearchTask) -> float:
    """Rough relative cost, to start the long searches first: trained codecs fit on the documents, and
    every codec scores every query against every document."""
    collection = _collection(task.dataset)
    trained = codecs.make_codec(task.codecs[0]).trained
    return collection.n_docs * (len(task.codecs) * collection.n_queries + (2000 if trained else 0))


def timing_table(done: list[tuple[EmbedTask | SearchTask, float | BaseException]]) -> pd.DataFrame:
    """One row per task: ``task`` (embed or search), ``dataset``, ``model``, ``codec``, ``training`` (of a search),
    ``seconds`` (wall time in the process that ran it, a cached result included; NaN for a failed task) and
    ``error`` (empty, or the failed task's exception)."""
    return pd.DataFrame([{"task": "embed" if isinstance(t, EmbedTask) else "search", "dataset": t.dataset,
                          "model": t.model, "codec": " ".join(getattr(t, "codecs", ())),
                          "training": getattr(t, "training", ""),
                          "seconds": float("nan") if isinstance(outcome, BaseException) else outcome,
                          "error": f"{type(outcome).__name__}: {outcome}" if isinstance(outcome, BaseException)
                          else ""} for t, outcome in done],
                        columns=["task", "dataset", "model", "codec", "training", "seconds", "error"])


def _outcome(run) -> float | BaseException:
    """A task's wall time, or the exception it raised: one failed task does not stop the others (``make -k``)."""
    try:
        return run()
    except Exception as exc:  # noqa: BLE001 - reported with its task once every task has run
        return exc


def run_serial(profile: str, progress: bool = True, only: tuple[str, ...] = ()) -> pd.DataFrame:
    """Every task of :func:`plan` still :func:`pending` in this process, one after another, past any that fails;
    their :func:`timing_table`."""
    embeds, searches = pending(profile, *plan(profile, only))
    done = [(task, _outcome(task.run)) for task in tqdm([*embeds, *searches], unit="task", disable=not progress,
                                                        desc="precompute: embeddings and codec searches")]
    return timing_table(done)


def default_workers() -> int:
    """One single-threaded worker per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run(profile: str, scheduler: str | None = None, workers: int | None = None,
        progress: bool = True, only: tuple[str, ...] = ()) -> pd.DataFrame:
    """Every task of :func:`plan` still :func:`pending` on a Dask cluster: the one at ``scheduler``
    (``tcp://host:port``), or a ``LocalCluster`` of ``workers`` single-threaded workers (default: one per core);
    their :func:`timing_table`.

    A failed task does not stop the others; its row of the table carries its error (and a search that needed a
    failed embedding fails with it).
    """
    from distributed import Client, LocalCluster, as_completed

    embeds, searches = pending(profile, *plan(profile, only))
    if not embeds and not searches:
        return timing_table([])
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
                done.append((task_of[future.key], _outcome(future.result)))
                bar.update()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return timing_table(done)
