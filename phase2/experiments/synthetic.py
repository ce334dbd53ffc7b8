"""Synthetic corpora beyond the real ones: noisy copies of real documents from a model fitted to a real corpus
(:func:`fit_synthetic`), and the stratified query sample every throughput run asks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import faiss
import numpy as np

from phase2.data.datasets import load_dataset
from phase2.data.embeddings import embed
from phase2.errors import ParameterError
from phase2.experiments.timing import threads

EXTRAPOLATED = "extrapolated"  # data_kind of synthetic corpora drawn from a generator fitted to a small real subset


@dataclass(frozen=True)
class SyntheticModel:
    """Synthetic documents as noisy copies of real ones: ``normalize(parent + scale * L z)``.

    ``L`` is the Cholesky factor of the within-topic covariance (residuals around 64 spherical k-means
    centroids of the real corpus); ``scale`` is set so that a synthetic corpus as large as the real one
    has the real corpus's median nearest-neighbour cosine. A plain Gaussian mixture fitted the same way
    lacked the real corpus's local structure: its 1-bit recall@10 was half the real one's.
    """

    parents: np.ndarray  # [n, d] the real documents
    cholesky: np.ndarray  # [d, d] lower
    scale: float


def _median_nn_cosine(corpus: np.ndarray, probes: int = 2000, seed: int = 0) -> float:
    """Median over sampled rows of the cosine to their nearest other row (unit-norm rows)."""
    rows = np.random.default_rng(seed).choice(len(corpus), min(probes, len(corpus)), replace=False)
    with threads(1):
        sims = corpus[rows] @ corpus.T
    sims[np.arange(len(rows)), rows] = -np.inf
    return float(np.median(sims.max(axis=1)))


def _noisy_copies(parents: np.ndarray, cholesky: np.ndarray, scale: float, n: int, rng) -> np.ndarray:
    x = parents[rng.integers(0, len(parents), n)] + scale * (rng.standard_normal((n, len(cholesky))) @ cholesky.T)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def fit_synthetic(corpus: np.ndarray, clusters: int = 64, seed: int = 0, steps: int = 8) -> SyntheticModel:
    """Within-topic covariance (seeded k-means, one thread), then ``scale`` by bisection on the median
    nearest-neighbour cosine."""
    clusters = max(1, min(clusters, len(corpus) // 40))
    with threads(1):
        kmeans = faiss.Kmeans(corpus.shape[1], clusters, niter=20, seed=seed, spherical=True)
        kmeans.train(corpus)
        assign = kmeans.index.search(corpus, 1)[1][:, 0]
    residuals = (corpus - kmeans.centroids[assign]).astype(np.float64)
    covariance = residuals.T @ residuals / max(1, len(corpus) - 1)
    covariance += 1e-8 * np.trace(covariance) / len(covariance) * np.eye(len(covariance))
    cholesky = np.linalg.cholesky(covariance).astype(np.float32)
    target = _median_nn_cosine(corpus, seed=seed)
    low, high = 0.0, 2.0
    for _ in range(steps):
        scale = (low + high) / 2
        copies = _noisy_copies(corpus, cholesky, scale, len(corpus), np.random.default_rng(seed))
        low, high = (scale, high) if _median_nn_cosine(copies, seed=seed) > target else (low, scale)
    return SyntheticModel(corpus, cholesky, (low + high) / 2)


def sample_synthetic(model: SyntheticModel, n: int, seed: int = 0, chunk: int = 100_000,
                     out: np.ndarray | None = None) -> np.ndarray:
    """``n`` unit-norm float32 synthetic documents, generated in seeded chunks, into ``out`` where given (a file
    mapped into memory, for corpora larger than RAM). Draws of different ``n`` agree on the whole chunks they
    share: 10^6 documents are the first 10^6 of 10^7."""
    rng = np.random.default_rng(seed)
    shape = (n, model.parents.shape[1])
    if out is None:
        out = np.empty(shape, np.float32)
    elif out.shape != shape or out.dtype != np.float32:
        raise ParameterError(f"synthetic documents go into a float32 array of shape {shape}, got {out.dtype} "
                             f"{out.shape}")
    for start in range(0, n, chunk):
        out[start:start + chunk] = _noisy_copies(model.parents, model.cholesky, model.scale,
                                                 min(chunk, n - start), rng)
    return out


def pooled_embeddings(datasets: Iterable[str], model: str,
                      progress: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Documents and judged queries of several collections stacked (cached embeddings): the real corpus; and,
    per query, the position of its collection in ``datasets``."""
    docs, queries = [], []
    for name in datasets:
        collection = load_dataset(name)
        docs.append(embed(collection, model, "docs", progress=progress))
        queries.append(embed(collection, model, "queries", progress=progress))
    owner = np.concatenate([np.full(len(q), i) for i, q in enumerate(queries)])
    return np.concatenate(docs), np.concatenate(queries), owner


def stratified_rows(groups: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """A seeded sample of ``n`` row indices, as equal a share from each group as the groups' sizes allow
    (a group smaller than its share gives all its rows, the rest is shared by the others), sorted.

    Pooled queries are 92% SQuAD questions; a plain sample would let one collection decide every recall."""
    labels, sizes = np.unique(groups, return_counts=True)
    quota = np.zeros(len(labels), int)
    left = min(n, len(groups))
    while left:
        open_groups = np.flatnonzero(quota < sizes)
        share = max(1, left // len(open_groups))
        for g in open_groups:
            take = min(share, sizes[g] - quota[g], left)
            quota[g] += take
            left -= take
            if not left:
                break
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(groups == label), count, replace=False)
              for label, count in zip(labels, quota, strict=True)]
    return np.sort(np.concatenate(picked))


def benchmark_corpus(real: np.ndarray, n: int, kind: str, model: SyntheticModel | None = None,
                     seed: int = 0) -> np.ndarray:
    """``n`` vectors: a seeded sample of the real corpus (``kind="real"``, ``n`` at most its size) or documents
    drawn from ``model`` (``synthetic``: fitted to the whole real corpus; ``extrapolated``: fitted to a small
    subset of it, to check the generator where it extrapolates). Without ``model``, one is fitted to ``real``."""
    if kind == "real":
        if n > len(real):
            raise ParameterError(f"the real corpus has {len(real)} vectors, {n} asked; larger sizes are synthetic")
        rows = np.sort(np.random.default_rng(seed).choice(len(real), n, replace=False))
        return np.ascontiguousarray(real[rows])
    if kind in ("synthetic", EXTRAPOLATED):
        return sample_synthetic(model if model is not None else fit_synthetic(real, seed=seed), n, seed=seed)
    raise ParameterError(f"corpus kind must be 'real', 'synthetic' or {EXTRAPOLATED!r}, got {kind!r}")

