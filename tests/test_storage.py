"""The array cache: a truncated, foreign or stale file is never returned; writes are atomic."""

import numpy as np
import pytest

from phase2 import storage


@pytest.fixture
def stored(tmp_path):
    path = tmp_path / "x.npy"
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    storage.save_array(path, array, key="k1")
    return path, array


def test_round_trip(stored):
    path, array = stored
    np.testing.assert_array_equal(storage.load_array(path, "k1"), array)


def test_other_key_is_a_miss(stored):
    assert storage.load_array(stored[0], "k2") is None


def test_truncated_file_is_a_miss(stored):
    path, _ = stored
    path.write_bytes(path.read_bytes()[:-7])
    assert storage.load_array(path, "k1") is None


def test_foreign_file_with_a_copied_sidecar_is_a_miss(stored):
    path, _ = stored
    np.save(path, np.zeros((3, 4), np.float32))
    assert storage.load_array(path, "k1") is None


def test_missing_or_corrupt_sidecar_is_a_miss(stored):
    path, _ = stored
    sidecar = path.with_name(path.name + ".json")
    sidecar.write_text("{not json")
    assert storage.load_array(path, "k1") is None
    sidecar.unlink()
    assert storage.load_array(path, "k1") is None


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    storage.atomic_write_bytes(path, b"old")

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(storage.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        storage.atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
