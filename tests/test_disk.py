"""The direct-I/O store returns exactly the rows asked for, whatever their layout; the probe measures reads."""

import numpy as np
import pytest

from phase2.search import disk


@pytest.fixture(autouse=True)
def stores_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setattr(disk, "store_directory", lambda: tmp_path)
    if reason := disk.direct_io_unavailable(tmp_path):
        pytest.skip(reason)


@pytest.mark.parametrize(("dtype", "dim"), [(np.uint8, 384), (np.float32, 384), (np.float32, 1100), (np.int8, 4096),
                                            (np.uint8, 7)])
def test_read_returns_exactly_the_rows_asked_for(dtype, dim):
    rng = np.random.default_rng(dim)
    array = rng.integers(-100, 100, (1001, dim)).astype(dtype)  # 1,001 rows: the last block is part-filled
    array[0] = 0
    array[1] = array[2]
    store = disk.DirectStore(array)
    assert store.block_bytes % disk.PAGE == 0 and store.rows_per_block * store.row_bytes <= store.block_bytes
    rows = np.concatenate([[1000, 0, 1000, 2, 1], rng.integers(0, 1001, 300)])  # repeats, both ends
    out = store.read(rows)
    assert out.dtype == array.dtype and out.shape == (len(rows), dim)
    np.testing.assert_array_equal(out, array[rows])
    assert store.blocks_read == len(np.unique(rows // store.rows_per_block))
    assert store.read(np.array([], np.int64)).shape == (0, dim)
    with pytest.raises(ValueError, match=r"store rows must lie in \[0, 1001\)"):
        store.read(np.array([1001]))
    store.close()
    store.close()  # closing twice is harmless


def test_a_store_must_be_a_non_empty_matrix():
    with pytest.raises(ValueError, match="non-empty 2-D array"):
        disk.DirectStore(np.zeros((0, 4), np.float32))


def test_probe_reports_latency_and_reads_per_second(tmp_path):
    probe = disk.random_read_probe(file_bytes=16 << 20, reads=200, threads=4)
    assert set(probe) == {"p50_ms", "p99_ms", "iops_qd1", "iops"}
    assert 0 < probe["p50_ms"] <= probe["p99_ms"] and probe["iops"] > 0
    assert not list(tmp_path.iterdir())  # the probe's file is gone
