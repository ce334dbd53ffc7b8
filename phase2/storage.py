"""Atomic files and a checksummed array cache: an interrupted run never leaves a file later read as valid."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from phase2 import PROJECT_ROOT

_UMASK = os.umask(0)
os.umask(_UMASK)


def cache_dir() -> Path:
    """Root of all caches: ``$PHASE2_CACHE_DIR`` or ``data/cache`` in the project."""
    return Path(os.environ.get("PHASE2_CACHE_DIR") or PROJECT_ROOT / "data" / "cache")


def source_digest(names) -> str:
    """sha256 of the named ``phase2`` sources' bytes, in order: each name a file or a subpackage (its ``.py`` files
    by name), relative to the package. The part of a cache key that changes with the code that computed the cached
    thing."""
    h = hashlib.sha256()
    root = Path(__file__).parent
    for name in names:
        path = root / name
        for file in sorted(path.glob("*.py")) if path.is_dir() else [path]:
            h.update(file.read_bytes())
    return h.hexdigest()


def package_digest() -> str:
    """sha256 of every ``phase2`` source file, each with its path in the package: the code a chapter executed (its
    execution key) and a results run was computed by. :func:`source_digest` names the files a cached thing depends
    on."""
    h = hashlib.sha256()
    root = Path(__file__).parent
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def array_digest(array: np.ndarray) -> str:
    """sha256 of an array's bytes in C order (not its shape or type: a key that needs them names them beside it)."""
    return hashlib.sha256(memoryview(np.ascontiguousarray(array)).cast("B")).hexdigest()


def files_digest(paths) -> str:
    """sha256 of files in order, each as its name, a NUL and its bytes: what a collection's fingerprint is."""
    h = hashlib.sha256()
    for path in paths:
        h.update(Path(path).name.encode() + b"\0")
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def tree_digest(root: Path) -> str:
    """sha256 over every file under ``root`` (or of ``root`` itself, a file), in sorted order, each as its path
    relative to ``root``, a NUL and its own sha256: what identifies a model's weights."""
    root = Path(root)
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(root) if root.is_dir() else f.name).encode() + b"\0")
        with f.open("rb") as fh:
            h.update(hashlib.file_digest(fh, "sha256").digest())
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file ordinary permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_array(path: Path, array: np.ndarray, key: str) -> None:
    """Store ``array`` with a sidecar holding its cache key and a checksum of its bytes."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    meta = {"key": key, "sha256": hashlib.sha256(data).hexdigest(), "shape": list(array.shape),
            "dtype": str(array.dtype)}
    atomic_write_bytes(_sidecar(path), json.dumps(meta, indent=1).encode())


def load_array(path: Path, key: str) -> np.ndarray | None:
    """The cached array if it exists, belongs to ``key`` and is intact; otherwise None (recompute)."""
    path = Path(path)
    try:
        meta = json.loads(_sidecar(path).read_text())
        data = path.read_bytes()
    except (OSError, ValueError):
        return None
    if meta.get("key") != key or hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        return None
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError:
        return None
    if list(array.shape) != meta.get("shape") or str(array.dtype) != meta.get("dtype"):
        return None
    return array


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")
