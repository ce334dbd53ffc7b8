"""phase2: the thin helper package behind the executable book.

Each module and its one job are listed, by layer, on the book's *Architecture* page (``book/architecture.md``).
"""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

__version__ = "0.1.0"
