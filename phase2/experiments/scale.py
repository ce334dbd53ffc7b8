"""Published results at sizes no book build measures (10^7 vectors), computed once as resumable tasks.

A task is one method at one corpus size. Its rows are the harness's (:func:`~phase2.experiments.harness.run_methods`,
at all threads only) and go to a file of their own, ``<published_dir>/scale/<n>-<method>.parquet``, committed like
every published result, as soon as that method is done: a batch stopped part-way keeps its finished tasks, and the
next one measures only the tasks missing, measured by other code or for other parameters. Chapters read the files;
they never measure them (at 10^7 an inverted file alone takes about half an hour to build on 2 cores).

The corpus is the throughput chapter's synthetic generator drawn further: its first 10^6 rows are the chapter's 10^6
vectors (:func:`~phase2.experiments.synthetic.sample_synthetic`). At 10^7 x 384 float32 it is 15.4 GB, so it is
drawn once into a file in the cache and mapped into memory; the queries' exact top-10 is computed once beside it.
Tasks of one size compare when one machine measured them: every row names its machine.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from phase2.data.embeddings import get_model_spec
from phase2.errors import ParameterError
from phase2.experiments import harness, params, published
from phase2.experiments.synthetic import (
    SyntheticModel,
    fit_synthetic,
    pooled_embeddings,
    sample_synthetic,
    stratified_rows,
)
from phase2.experiments.timing import max_threads, threads
from phase2.search.methods import exact_topk
from phase2.search.registry import REGISTRY
from phase2.storage import array_digest, cache_dir, load_array, save_array, source_digest

CHAPTER = "throughput"  # the chapter whose parameters plan the tasks and whose section renders them
PLAN_PARAMETERS = ("scale_sizes", "scale_methods")
"""The throughput chapter's parameters that say which tasks exist; they do not change its own run."""
TASK_PARAMETERS = ("dataset", "model", "n_queries", "large_repeats", "latency_queries", "latency_budget_s")
"""The throughput chapter's parameters a task is measured with: a task measured with others is not current."""
SOURCES = (*harness.SOURCES, "experiments/scale.py")
"""The code a task measures: the harness's, and this module's corpus and ground truth."""
STATES = ("current", "other code", "other parameters", "missing")
K = 10


def code_digest() -> str:
    return source_digest(SOURCES)[:16]


@dataclass(frozen=True)
class Task:
    """One method measured on ``n`` vectors."""

    n: int
    method: str

    def path(self, profile: str) -> Path:
        return tasks_dir(profile) / f"{self.n}-{self.method}.parquet"


def tasks_dir(profile: str) -> Path:
    return published.published_dir(profile) / "scale"


def plan_values(profile: str) -> dict:
    """The throughput chapter's parameters on ``profile``, lists parsed (its parameters cell's rules)."""
    values = params.chapter_values(CHAPTER, profile)
    rules = params.declared_rules(params.parameters_cell_declaring(list(values)))
    return {name: params.parse_value(name, value, rules[name]) if name in rules else value
            for name, value in values.items()}


def plan(values: dict) -> list[Task]:
    """The tasks of a profile: every ``scale_methods`` at every ``scale_sizes``, smallest size first."""
    return [Task(n, name) for n in sorted(values["scale_sizes"]) for name in values["scale_methods"]]


def task_parameters(values: dict) -> dict:
    return {name: values[name] for name in TASK_PARAMETERS}


def measured_task(task: Task, profile: str, values: dict) -> tuple[str, pd.DataFrame | None]:
    """A task's state (one of :data:`STATES`) and its rows where it was measured: its file is read once."""
    path = task.path(profile)
    if not path.is_file():
        return "missing", None
    rows = pd.read_parquet(path)
    if rows.code.iloc[0] != code_digest():
        return "other code", rows
    return ("current" if harness.recorded_parameters(path) == task_parameters(values) else "other parameters"), rows


def status(profile: str, values: dict | None = None) -> pd.DataFrame:
    """Each planned task's state, and for a measured one its run, machine and measuring time."""
    values = values or plan_values(profile)
    dim = get_model_spec(values["model"][0]).dim
    rows = []
    for task in plan(values):
        state, measured = measured_task(task, profile, values)
        rows.append({"n_vectors": task.n, "method": task.method, "state": state,
                     "not run here": REGISTRY[task.method].not_run_at(task.n, dim) or "",
                     "machine": "" if measured is None else harness.machine_line(measured.machine.iloc[0]),
                     "run_id": "" if measured is None else measured.run_id.iloc[0]})
    return pd.DataFrame(rows, columns=["n_vectors", "method", "state", "not run here", "machine", "run_id"])


def read_tasks(profile: str, values: dict | None = None) -> pd.DataFrame:
    """The rows of every current task of the plan, one table (the harness's columns)."""
    values = values or plan_values(profile)
    measured = (measured_task(task, profile, values) for task in plan(values))
    tables = [rows for state, rows in measured if state == "current"]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=harness.COLUMNS)


def generator_key(generator: SyntheticModel, seed: int = 0) -> str:
    """A key of the fitted generator and the seed its documents are drawn with."""
    text = f"{array_digest(generator.parents)}-{array_digest(generator.cholesky)}-{generator.scale!r}-{seed}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def mapped_corpus(generator: SyntheticModel, n: int, progress: bool = True) -> np.ndarray:
    """``n`` synthetic documents in a file of the cache (``scale/<key>-<n>x<d>.f32``), mapped read-only; drawn
    into a partial file first, so an interrupted draw is never taken for a whole one."""
    d = generator.parents.shape[1]
    path = cache_dir() / "scale" / f"{generator_key(generator)}-{n}x{d}.f32"
    if not path.is_file() or path.stat().st_size != 4 * n * d:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        if progress:
            print(f"drawing {n:,} synthetic documents into {path} ({4 * n * d / 1e9:.1f} GB)")
        out = np.memmap(partial, np.float32, "w+", shape=(n, d))
        sample_synthetic(generator, n, out=out)
        out.flush()
        del out
        os.replace(partial, path)
    return np.memmap(path, np.float32, "r", shape=(n, d))


def ground_truth(corpus: np.ndarray, queries: np.ndarray, key: str) -> np.ndarray:
    """The queries' exact top-:data:`K` over ``corpus``, computed once (kept in the cache beside the corpus)."""
    path = cache_dir() / "scale" / f"{key}-{len(corpus)}-truth-{array_digest(queries)[:16]}.npy"
    truth = load_array(path, f"top{K}")
    if truth is None:
        with threads(max_threads()):
            truth = exact_topk(corpus, queries, K)
        save_array(path, truth, f"top{K}")
    return truth


def run_scale(profile: str, only: list[str] | None = None, progress: bool = True) -> list[Path]:
    """Measure every task of ``profile``'s plan that is not current (``only``: of these methods), each written as
    soon as it is done; returns the files written. A method this machine cannot run at a size is skipped (its
    reason is in :func:`status`)."""
    values = plan_values(profile)
    if only and (unknown := sorted(set(only) - set(values["scale_methods"]))):
        raise ParameterError(f"--only: {unknown} are not in the {profile} profile's scale_methods "
                             f"({', '.join(values['scale_methods'])})")
    datasets, (model,) = values["dataset"], values["model"]
    dim = get_model_spec(model).dim
    tasks = [t for t in plan(values) if (not only or t.method in only) and not REGISTRY[t.method].not_run_at(t.n, dim)
             and measured_task(t, profile, values)[0] != "current"]
    if not tasks:
        return []
    real, all_queries, owner = pooled_embeddings(datasets, model, progress)
    queries = np.ascontiguousarray(all_queries[stratified_rows(owner, values["n_queries"])])
    generator = fit_synthetic(real)
    written = []
    for n in sorted({t.n for t in tasks}):
        corpus = mapped_corpus(generator, n, progress)
        truth = ground_truth(corpus, queries, generator_key(generator))
        for task in (t for t in tasks if t.n == n):
            meta = {**harness.new_run(profile), "code": code_digest()}
            table = harness.run_methods(corpus, queries, f"{'+'.join(datasets)}/{model}", "synthetic", [task.method],
                                        k=K, repeats=values["large_repeats"],
                                        latency_queries=values["latency_queries"],
                                        latency_budget_s=values["latency_budget_s"], thread_counts=[max_threads()],
                                        meta=meta, truth=truth, progress=progress)
            written.append(harness.write_table(table, task.path(profile), task_parameters(values)))
            if progress:
                print(f"task done: {task.method} at {n:,} -> {written[-1]}")
    return written
