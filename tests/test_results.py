"""Results tables: fixed schema, one file per run, never overwritten."""

import json
import subprocess

import pandas as pd
import pytest

from phase2.experiments import results, schema


def one_run(run_meta, value=0.5):
    row = {**run_meta, "suite": "searches", "dataset": "tiny", "model": "m", "codec": "BIN", "codec_label": "binary",
           "family": "binary",
           "bytes_per_vector": 48, "rescore_bytes_per_vector": 0, "fixed_bytes": 0, "n_vectors": 100,
           "metric": "nDCG@10", "value": value, "query_id": "", "query_cluster": "", "embeddings": ""}
    return pd.DataFrame([row, {**row, "query_id": "q1"}])


def test_metadata_names_software_and_hardware():
    meta = results.run_metadata("smoke", "ch", seed=3)
    assert set(meta) == set(schema.RUN_COLUMNS) - {"suite"}
    assert json.loads(meta["machine"])["cores"] >= 1
    assert meta["seed"] == 3 and meta["threads"] >= 1 and '"numpy"' in meta["versions"]


def test_runs_append_and_read_back(tmp_path):
    first, second = results.run_metadata("smoke", "ch", 0), results.run_metadata("smoke", "ch", 0)
    results.write_results(one_run(first, 0.1), ("searches",), tmp_path)
    path = results.write_results(one_run(second, 0.2), ("searches",), tmp_path)
    assert len(list((tmp_path / "ch").glob("*.parquet"))) == 2
    assert list(results.read_results("ch", tmp_path, latest=False).columns) == schema.columns(("searches",))
    assert len(results.read_results("ch", tmp_path, latest=False)) == 4
    assert set(results.read_results("ch", tmp_path).run_id) == {path.stem}


def test_same_run_is_never_overwritten(tmp_path):
    run = one_run(results.run_metadata("smoke", "ch", 0))
    results.write_results(run, ("searches",), tmp_path)
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        results.write_results(run, ("searches",), tmp_path)


def test_schema_is_enforced(tmp_path):
    run = one_run(results.run_metadata("smoke", "ch", 0))
    with pytest.raises(ValueError, match="lacks columns"):
        results.write_results(pd.DataFrame([{"run_id": "x", "suite": "searches"}]), ("searches",), tmp_path)
    with pytest.raises(ValueError, match=r"lacks columns \['data_kind'"):
        results.write_results(run, ("searches", "methods"), tmp_path)  # every column of every suite named
    with pytest.raises(ValueError, match=r"rows of suite\(s\) \['searches'\], expected diagnostics"):
        results.write_results(run, ("diagnostics",), tmp_path)
    with pytest.raises(ValueError, match="unknown results suite"):
        results.write_results(run, ("timings",), tmp_path)
    assert not (tmp_path / "ch").exists()  # nothing written by a refused table


def test_the_schema_table_lists_every_column_of_every_suite():
    table = schema.schema_table()
    for suite in schema.SUITES.values():
        assert f"**Suite `{suite.name}`**" in table
        assert all(f"| `{column}` |" in table for column in suite.columns)
    assert all(f"| `{column}` |" in table for column in schema.RUN_COLUMNS)


def test_missing_results_name_the_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no results for chapter 'nope'"):
        results.read_results("nope", tmp_path)


def test_reading_by_profile_never_takes_another_profiles_newer_run(tmp_path):
    smoke = results.write_results(one_run(results.run_metadata("smoke", "ch", 0), 0.1), ("searches",), tmp_path)
    results.write_results(one_run(results.run_metadata("default", "ch", 0), 0.2), ("searches",), tmp_path)
    assert set(results.read_results("ch", tmp_path, profile="smoke").run_id) == {smoke.stem}
    assert set(results.read_results("ch", tmp_path).value) == {0.2}
    with pytest.raises(FileNotFoundError, match="no results of profile 'full' for chapter 'ch'"):
        results.read_results("ch", tmp_path, profile="full")


@pytest.mark.parametrize("fmt", results.EXPORT_FORMATS)
def test_export_round_trip_keeps_every_column_row_and_digit(tmp_path, fmt):
    meta = results.run_metadata("smoke", "ch", 0)
    table = pd.concat([one_run(meta, 0.1 + 1e-17), one_run(meta, float("nan"))], ignore_index=True)
    table.loc[1, "codec_label"] = 'sign bits, "quoted", naïve\nsecond line'
    table.loc[2, "value"] = 1 / 3
    table["codec"] = pd.Categorical(["BIN", None, "Flat", "BIN"], categories=["Flat", "BIN"])
    table["deterministic"] = pd.Series([True, None, False, None], dtype=object)
    results.write_results(table, ("searches",), tmp_path / "results")
    results.write_results(one_run(results.run_metadata("default", "ch", 0)), ("searches",), tmp_path / "results")
    (written,) = results.export_results("smoke", fmt, tmp_path / "out", tmp_path / "results")
    assert written == tmp_path / "out" / f"ch.{fmt}"
    back = results.read_export(written)
    pd.testing.assert_frame_equal(back, results.read_results("ch", tmp_path / "results", profile="smoke"),
                                  check_exact=True)


def test_csv_export_refuses_text_it_would_read_back_as_missing(tmp_path):
    table = one_run(results.run_metadata("smoke", "ch", 0))
    table.loc[0, "codec_label"] = "NaN"
    with pytest.raises(ValueError, match="codec_label hold the string 'NaN'.*export as JSON"):
        results.write_export(table, tmp_path / "ch.csv")
    assert not list(tmp_path.iterdir())


def test_export_of_a_profile_without_results_says_so(tmp_path):
    results.write_results(one_run(results.run_metadata("smoke", "ch", 0)), ("searches",), tmp_path)
    with pytest.raises(FileNotFoundError, match="no results of profile 'default'"):
        results.export_results("default", "csv", tmp_path / "out", tmp_path)
    with pytest.raises(ValueError, match="unknown export format 'xml'"):
        results.export_results("smoke", "xml", tmp_path / "out", tmp_path)


def test_reading_current_results_skips_runs_of_other_code_and_says_how_to_redo_them(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "code_digest", lambda: "old-code")
    results.write_results(one_run(results.run_metadata("default", "ch", 0), 0.1), ("searches",), tmp_path)
    monkeypatch.setattr(results, "code_digest", lambda: "new-code")
    assert results.read_results("ch", tmp_path, profile="default").value.iloc[0] == 0.1  # without current: any code
    stale = r"present phase2 code .*from code old-code, now new-code\): run it again: python -m phase2 chapter ch "
    with pytest.raises(FileNotFoundError, match=stale + "--profile default"):
        results.read_results("ch", tmp_path, profile="default", current=True)
    results.write_results(one_run(results.run_metadata("default", "ch", 0), 0.2), ("searches",), tmp_path)
    current = results.read_results("ch", tmp_path, profile="default", current=True)
    assert current.value.iloc[0] == 0.2 and current.code.iloc[0] == "new-code"
    assert results.describe_run(current).startswith(f"ch run {current.run_id.iloc[0]} (default profile, git ")


def test_the_commit_is_dirty_for_edited_code_not_for_committed_results_a_batch_writes(tmp_path, monkeypatch):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / results.COMMITTED_RESULTS / "default").mkdir(parents=True)
    (tmp_path / results.COMMITTED_RESULTS / "default" / "task.parquet").write_bytes(b"old")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    monkeypatch.setattr(results, "PROJECT_ROOT", tmp_path)
    clean = results.git_commit()
    assert len(clean) == 12 and not clean.endswith("+dirty")
    (tmp_path / results.COMMITTED_RESULTS / "default" / "task.parquet").write_bytes(b"a task that landed")
    assert results.git_commit() == clean
    (tmp_path / "code.py").write_text("x = 2\n")
    assert results.git_commit() == clean + "+dirty"
