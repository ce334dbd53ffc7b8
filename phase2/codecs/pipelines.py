"""Codecs built from others: a first stage re-ranked by a second (``<first>+R<m><second>``) and a codec on the
first ``d`` dimensions (``T<d>,<codec>``)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from phase2.codecs.base import Codec, one_thread, topk_by_score
from phase2.codecs.binary import AsymmetricBinary
from phase2.errors import ParameterError
from phase2.storage import array_digest

RESCORE_CUTOFF = 10  # the rescored head is factor x 10 candidates: the cutoff of nDCG@10, MRR@10, Recall@10


class Rescored(Codec):
    """Two-stage search: ``first`` ranks everything, ``second`` re-ranks the top ``factor * 10``.

    That head is what a top-10 search with a rescoring multiplier of ``factor`` reads; below
    it the first stage's order is kept (so Recall@100 still reflects the first stage). Both
    codes are stored side by side; only ``first``'s bytes are scanned for every query,
    ``second``'s are read for the head alone (they may live on disk). Returned scores are the
    second stage's for the head; the tail gets the head's lowest score minus 1, 2, 3, ..., keeping the list
    sorted without inventing ties (a tie at the 10th result is reported).
    ``BIN`` re-ranked by ``BINa`` (the float query against the same sign bits, the sentence-transformers
    report's second stage) stores the bits once and reads no second store.
    """

    def __init__(self, first: Codec, second: Codec, factor: int) -> None:
        super().__init__()
        if factor < 1:
            raise ParameterError(f"rescoring factor must be >= 1, got {factor}")
        self.first, self.second, self.factor = first, second, factor
        self.name = f"{first.name}+R{factor}{second.name}"
        self.label = f"{first.label} + {second.label} rescoring of top {factor * RESCORE_CUTOFF}"
        self.family = first.family + "+rescore"
        self.trained = first.trained or second.trained
        self._shares_codes = first.name == "BIN" and isinstance(second, AsymmetricBinary)  # both: packbits(x > 0)

    def unfit_reason(self, n, dim):
        return self.first.unfit_reason(n, dim) or self.second.unfit_reason(n, dim)

    def _fit(self, corpus):
        self.first = _fitted_once(self.first, corpus)
        self.second.fit(corpus)

    def _code_size(self):
        return self.first.code_size + self.rescore_bytes

    @property
    def rescore_bytes(self) -> int:
        return 0 if self._shares_codes else self.second.code_size

    def _fixed_bytes(self):
        return self.first.fixed_bytes + self.second.fixed_bytes

    def _encode(self, x):
        if self._shares_codes:
            return self.first.encode(x)
        return np.hstack([self.first.encode(x), self.second.encode(x)])

    def _search(self, codes, queries, k):
        split = self.first.code_size
        depth = self.first_stage_depth(k, len(codes))
        _, ranked = self.first.search(np.ascontiguousarray(codes[:, :split]), queries, depth)
        second = codes if self._shares_codes else codes[:, split:]
        return self.rerank(ranked, queries, k, lambda rows, query: self.second.rescore(second[rows], query))

    def first_stage_depth(self, k: int, n: int) -> int:
        """How deep the first stage ranks: the rescored head or ``k``, whichever is longer."""
        return max(k, min(self.factor * RESCORE_CUTOFF, n))

    def rerank(self, ranked: np.ndarray, queries: np.ndarray, k: int,
               rescore_rows: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Re-rank the head of each first-stage list ``ranked`` by ``rescore_rows(rows, query)``; the tail
        keeps its order."""
        head = min(self.factor * RESCORE_CUTOFF, ranked.shape[1])
        scores = np.empty((len(queries), k), np.float32)
        ids = np.empty((len(queries), k), np.int64)
        with one_thread():
            for i, (query, rows) in enumerate(zip(queries, ranked, strict=True)):
                candidates = np.sort(rows[:head])  # ties fall back to corpus order, as everywhere
                head_scores, order = topk_by_score(rescore_rows(candidates, query)[None, :], head)
                ids[i] = np.concatenate([candidates[order[0]], rows[head:]])[:k]
                tail = head_scores[0, -1] - np.arange(1, max(k - head, 0) + 1, dtype=np.float32)
                scores[i] = np.concatenate([head_scores[0], tail])[:k]
        return scores, ids


class Truncated(Codec):
    """``inner``'s code of the first ``d`` dimensions of each vector, renormalised to unit length (an all-zero head
    stays zero); queries are cut the same way. It varies the dimension within one model, which comparing models
    cannot: neither MiniLM nor mpnet was trained to be truncated, so the cut float32 is itself a weaker
    embedding, and a code's loss is measured against that float32 (``T<d>,Flat``)."""

    def __init__(self, d: int, inner: Codec) -> None:
        super().__init__()
        if d < 1:
            raise ParameterError(f"T<d>: d must be at least 1, got {d}")
        self.d, self.inner = d, inner
        self.name, self.label = f"T{d},{inner.name}", f"{inner.label}, first {d} dimensions"
        self.family, self.trained = inner.family, inner.trained

    def unfit_reason(self, n, dim):
        if dim < self.d:
            return f"cuts to {self.d} dimensions, the vectors have {dim}"
        return self.inner.unfit_reason(n, self.d)

    def _cut(self, x: np.ndarray) -> np.ndarray:
        head = np.ascontiguousarray(x[:, : self.d])
        norms = np.sqrt(np.einsum("ij,ij->i", head, head))[:, None]  # no BLAS: the same bits on any thread count
        return head / np.where(norms > 0, norms, np.float32(1))

    def _fit(self, corpus):
        self.inner.fit(self._cut(corpus))

    def _code_size(self):
        return self.inner.code_size

    @property
    def rescore_bytes(self) -> int:
        return self.inner.rescore_bytes

    def _fixed_bytes(self):
        return self.inner.fixed_bytes

    def _encode(self, x):
        return self.inner.encode(self._cut(x))

    def _search(self, codes, queries, k):
        return self.inner.search(codes, self._cut(queries), k)

    def rescore(self, codes, query):
        return self.inner.rescore(codes, self._cut(query[None, :])[0])


FITTED_FIRST_STAGES_KEPT = 4
"""First stages a process keeps fitted (:func:`_fitted_once`): a rescoring grid re-ranks one first stage with
several codes and factors, and ITQ or PQ fits take seconds to minutes each."""
_fitted_first_stages: OrderedDict[tuple[str, str, str], Codec] = OrderedDict()


def _fitted_once(codec: Codec, corpus: np.ndarray) -> Codec:
    """``codec`` fitted on ``corpus``, or the same codec (class and constructor state) fitted on the same bytes
    earlier in this process: fits are deterministic, so its codes are those a new fit would give."""
    key = (type(codec).__qualname__, repr(sorted(vars(codec).items())),
           array_digest(corpus) + str(corpus.shape) + str(corpus.dtype))
    fitted = _fitted_first_stages.pop(key, None) or codec.fit(corpus)
    _fitted_first_stages[key] = fitted
    while len(_fitted_first_stages) > FITTED_FIRST_STAGES_KEPT:
        _fitted_first_stages.popitem(last=False)
    return fitted
