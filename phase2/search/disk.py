"""Re-ranking stores on disk, read with direct I/O, and this machine's random-read cost.

A store larger than RAM is read from the device for every query: :class:`DirectStore` opens its file with
``O_DIRECT``, so no read is served by the page cache and a timed query pays what a cold store costs. The
file is laid out in blocks of whole 4 KiB pages; a row never straddles a block, so each candidate costs one
aligned read (``preadv``) of one block. :data:`IO_THREADS` threads issue the reads of a batch together
(``preadv`` releases the GIL while the device works): the queue depth a synchronous server would reach
without ``io_uring``. :func:`random_read_probe` measures the same reads on a file of random bytes, in the
same run, so the chapter can set each pipeline against the device.
"""

from __future__ import annotations

import mmap
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from phase2.errors import Phase2Error
from phase2.storage import cache_dir

PAGE = 4096  # bytes: the alignment O_DIRECT asks for on Linux file systems, and the unit of a random read
IO_THREADS = 16  # reads in flight at once
READS_PER_TASK = 4  # fewest reads a thread is handed: waking a thread costs about one read here


def store_directory() -> Path:
    """Where on-disk stores and the probe's file live: the cache's disk, not a RAM-backed /tmp."""
    path = cache_dir() / "disk-stores"
    path.mkdir(parents=True, exist_ok=True)
    return path


def direct_io_unavailable(directory: Path | None = None) -> str | None:
    """Why direct I/O cannot be used here (no ``O_DIRECT``, or a file system refusing it), or None."""
    if not hasattr(os, "O_DIRECT"):
        return "this operating system has no O_DIRECT (direct I/O), so a cold store cannot be timed"
    try:
        with tempfile.NamedTemporaryFile(dir=directory or store_directory()) as probe:
            probe.write(b"\0" * PAGE)
            probe.flush()
            fd = os.open(probe.name, os.O_RDONLY | os.O_DIRECT)
            try:
                os.preadv(fd, [mmap.mmap(-1, PAGE)], 0)
            finally:
                os.close(fd)
    except OSError as exc:
        return f"the file system under {directory or store_directory()} refuses O_DIRECT reads ({exc.strerror})"
    return None


def _read_blocks(fd: int, buffer: mmap.mmap, blocks: np.ndarray, block_bytes: int, pool: ThreadPoolExecutor) -> None:
    """Read ``blocks[i]`` of the file into slot ``i`` of ``buffer``, one read in flight per thread of ``pool``."""
    view = memoryview(buffer)

    def read(part: range) -> None:
        for i in part:
            got = os.preadv(fd, [view[i * block_bytes:(i + 1) * block_bytes]], int(blocks[i]) * block_bytes)
            if got != block_bytes:
                raise Phase2Error(f"short direct read: {got} of {block_bytes} bytes at block {blocks[i]}")

    threads = min(pool._max_workers, -(-len(blocks) // READS_PER_TASK))
    parts = [range(start, len(blocks), threads) for start in range(threads)]
    if len(parts) == 1:
        read(parts[0])
    else:
        list(pool.map(read, parts))


class DirectStore:
    """The rows of a 2-D array in a file read with direct I/O: ``read(rows)`` returns exactly those rows."""

    def __init__(self, array: np.ndarray, directory: Path | None = None, threads: int = IO_THREADS):
        if array.ndim != 2 or not len(array):
            raise ValueError(f"a store must be a non-empty 2-D array, got shape {array.shape}")
        if reason := direct_io_unavailable(directory):
            raise Phase2Error(reason)
        self.shape, self.dtype = array.shape, array.dtype
        self.row_bytes = array.dtype.itemsize * array.shape[1]
        self.block_bytes = -(-self.row_bytes // PAGE) * PAGE
        self.rows_per_block = self.block_bytes // self.row_bytes
        n_blocks = -(-len(array) // self.rows_per_block)
        layout = np.zeros((n_blocks, self.block_bytes), np.uint8)
        used = self.rows_per_block * self.row_bytes
        padded = np.zeros((n_blocks * self.rows_per_block, self.row_bytes), np.uint8)
        padded[:len(array)] = np.ascontiguousarray(array).view(np.uint8).reshape(len(array), self.row_bytes)
        layout[:, :used] = padded.reshape(n_blocks, used)
        handle, name = tempfile.mkstemp(prefix="store-", suffix=".bin", dir=directory or store_directory())
        self.path = Path(name)
        with os.fdopen(handle, "wb") as out:
            out.write(layout.tobytes())
            out.flush()
            os.fsync(out.fileno())
        self.nbytes = layout.nbytes
        self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECT)
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="direct-read")
        self.blocks_read = 0  # since creation: the harness divides it by the queries asked

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The rows asked for, in that order (repeats allowed), each block read from the device once."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= self.shape[0]):
            raise ValueError(f"store rows must lie in [0, {self.shape[0]})")
        blocks, slot = np.unique(rows // self.rows_per_block, return_inverse=True)
        buffer = mmap.mmap(-1, max(PAGE, len(blocks) * self.block_bytes))  # page-aligned, as O_DIRECT needs
        _read_blocks(self.fd, buffer, blocks, self.block_bytes, self.pool)
        self.blocks_read += len(blocks)
        raw = np.frombuffer(buffer, np.uint8, len(blocks) * self.block_bytes)
        start = slot * self.block_bytes + (rows % self.rows_per_block) * self.row_bytes
        out = raw[start[:, None] + np.arange(self.row_bytes)]
        return out.view(self.dtype).reshape(len(rows), self.shape[1])

    def close(self) -> None:
        if getattr(self, "fd", None) is not None:
            self.pool.shutdown()
            os.close(self.fd)
            self.fd = None
            self.path.unlink(missing_ok=True)

    def __del__(self):
        self.close()


def random_read_probe(file_bytes: int = 256 << 20, reads: int = 2000, threads: int = IO_THREADS,
                      seed: int = 0, directory: Path | None = None) -> dict[str, float]:
    """This machine's random 4 KiB direct reads on a fresh file of random bytes: latency p50/p99 one read at
    a time (queue depth 1), and reads/s with ``threads`` in flight (the store's queue depth)."""
    if reason := direct_io_unavailable(directory):
        raise Phase2Error(reason)
    rng = np.random.default_rng(seed)
    handle, name = tempfile.mkstemp(prefix="probe-", suffix=".bin", dir=directory or store_directory())
    try:
        with os.fdopen(handle, "wb") as out:
            for _ in range(file_bytes // (16 << 20)):
                out.write(rng.integers(0, 256, 16 << 20, dtype=np.uint8).tobytes())
            out.flush()
            os.fsync(out.fileno())
        fd = os.open(name, os.O_RDONLY | os.O_DIRECT)
        try:
            blocks = rng.integers(0, file_bytes // PAGE, reads)
            buffer = mmap.mmap(-1, PAGE)
            seconds = []
            for block in blocks:
                start = time.perf_counter()
                os.preadv(fd, [buffer], int(block) * PAGE)
                seconds.append(time.perf_counter() - start)
            many = mmap.mmap(-1, reads * PAGE)
            with ThreadPoolExecutor(threads) as pool:
                start = time.perf_counter()
                _read_blocks(fd, many, rng.integers(0, file_bytes // PAGE, reads), PAGE, pool)
                parallel_s = time.perf_counter() - start
        finally:
            os.close(fd)
    finally:
        Path(name).unlink(missing_ok=True)
    return {"p50_ms": 1e3 * float(np.percentile(seconds, 50)), "p99_ms": 1e3 * float(np.percentile(seconds, 99)),
            "iops_qd1": 1 / float(np.mean(seconds)), "iops": reads / parallel_s}
