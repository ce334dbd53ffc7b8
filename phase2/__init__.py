"""phase2: the thin helper package behind the executable book.

Modules: ``datasets`` (BEIR collections on a search path), ``models`` and
``embeddings`` (named encoders, cached vectors), ``kernels`` (numba Hamming
top-k), ``codecs`` (one interface for every compression scheme), ``metrics``
(trec_eval-compatible), ``results`` (tidy tables with run metadata),
``chapters`` (parameter checks), ``pipeline`` (papermill + Jupyter Book).
"""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

__version__ = "0.1.0"
