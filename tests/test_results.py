"""Results tables: fixed schema, one file per run, never overwritten."""

import pandas as pd
import pytest

from phase2 import results


def one_run(run_meta, value=0.5):
    row = {**run_meta, "dataset": "tiny", "model": "m", "codec": "BIN", "codec_label": "binary", "family": "binary",
           "bytes_per_vector": 48, "rescore_bytes_per_vector": 0, "metric": "nDCG@10", "value": value, "query_id": "",
           "embeddings": ""}
    return pd.DataFrame([row, {**row, "query_id": "q1"}])


def test_metadata_names_software_and_hardware():
    meta = results.run_metadata("smoke", "ch", seed=3)
    assert set(meta) == set(results.COLUMNS[:9])
    assert meta["seed"] == 3 and meta["threads"] >= 1 and '"numpy"' in meta["versions"]


def test_runs_append_and_read_back(tmp_path):
    first, second = results.run_metadata("smoke", "ch", 0), results.run_metadata("smoke", "ch", 0)
    results.write_results(one_run(first, 0.1), tmp_path)
    path = results.write_results(one_run(second, 0.2), tmp_path)
    assert len(list((tmp_path / "ch").glob("*.parquet"))) == 2
    assert list(results.read_results("ch", tmp_path, latest=False).columns) == results.COLUMNS
    assert len(results.read_results("ch", tmp_path, latest=False)) == 4
    assert set(results.read_results("ch", tmp_path).run_id) == {path.stem}


def test_same_run_is_never_overwritten(tmp_path):
    run = one_run(results.run_metadata("smoke", "ch", 0))
    results.write_results(run, tmp_path)
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        results.write_results(run, tmp_path)


def test_schema_is_enforced(tmp_path):
    with pytest.raises(ValueError, match="lacks columns"):
        results.write_results(pd.DataFrame([{"run_id": "x"}]), tmp_path)


def test_missing_results_name_the_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no results for chapter 'nope'"):
        results.read_results("nope", tmp_path)
