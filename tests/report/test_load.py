"""Reading run folders: types, schema versions and upgrades, and every refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from gilbench.report import ReportError, load_run
from gilbench.report.labels import format_mapping, short_configs
from gilbench.report.schema import RECORD_SCHEMA_VERSION, UPGRADES, upgrade_record

from .helpers import RUN_A, manifest, record, write_run


def test_fixture_run_loads_into_a_typed_tidy_frame() -> None:
    run = load_run(RUN_A)
    frame = run.frame
    assert run.warnings == []
    assert len(frame) == sum(1 for _ in (RUN_A / "records.jsonl").open())
    for column in ("model", "status", "workload", "python_label", "model_config"):
        assert isinstance(frame[column].dtype, pd.CategoricalDtype), column
    assert list(frame["status"].cat.categories) == [
        "ok", "invalid", "crashed", "timeout", "unsupported"
    ]  # fmt: skip
    for column in ("wall_s", "startup_s", "teardown_s", "total_s", "cpu_s"):
        assert frame[column].dtype == "float64", column
    for column in ("workers", "repetition", "peak_rss_kb", "tasks_done"):
        assert str(frame[column].dtype) == "Int64", column
    assert str(frame["gil_enabled"].dtype) == "boolean"
    assert str(frame["timestamp"].dtype).startswith("datetime64")
    # failed repetitions keep their nulls as typed missing values
    crashed = frame[frame["status"] == "crashed"]
    assert crashed["wall_s"].isna().all() and crashed["peak_rss_kb"].isna().all()
    assert set(frame["python_label"].astype(str)) == {"3.13.5-pgo", "3.13.5-ft"}


def test_mappings_become_stable_short_strings() -> None:
    assert format_mapping({}) == "-"
    assert format_mapping({"tasks": 8, "n": 24}) == "n=24,tasks=8"
    assert format_mapping({"gil": "own", "allow_fork": False}) == "allow_fork=false,gil=own"


def test_v0_records_are_upgraded(tmp_path: Path) -> None:
    old = record("sequential", 1, 0, 1.0)
    for name in ("teardown_s", "total_s", "transport"):
        del old[name]
    old["schema_version"] = 0
    assert 0 in UPGRADES
    upgraded = upgrade_record(dict(old))
    assert upgraded["schema_version"] == RECORD_SCHEMA_VERSION
    assert upgraded["teardown_s"] is None and upgraded["total_s"] is None
    run = load_run(write_run(tmp_path / "run", manifest(), [old, record("threads", 2, 0, 0.5)]))
    assert len(run.frame) == 2
    assert run.frame["teardown_s"].isna().sum() == 1


def test_missing_run_folder(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="does not exist"):
        load_run(tmp_path / "nope")


def test_folder_without_manifest(tmp_path: Path) -> None:
    (tmp_path / "records.jsonl").write_text(json.dumps(record("sequential", 1, 0, 1.0)) + "\n")
    with pytest.raises(ReportError, match=r"no manifest\.json"):
        load_run(tmp_path)


def test_empty_records(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", manifest(), [])
    with pytest.raises(ReportError, match="holds no complete records"):
        load_run(run)


def test_missing_records_file(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", manifest(), [])
    (run / "records.jsonl").unlink()
    with pytest.raises(ReportError, match=r"has no records\.jsonl"):
        load_run(run)


def test_truncated_last_line_is_ignored_with_a_warning(tmp_path: Path) -> None:
    run = write_run(
        tmp_path / "run", manifest(), [record("sequential", 1, i, 1.0) for i in range(3)]
    )
    with (run / "records.jsonl").open("a") as handle:
        handle.write(json.dumps(record("sequential", 1, 3, 1.0))[:57])
    loaded = load_run(run)
    assert len(loaded.frame) == 3
    assert len(loaded.warnings) == 1 and "truncated last line (4)" in loaded.warnings[0]


def test_damaged_middle_line_is_an_error(tmp_path: Path) -> None:
    run = write_run(
        tmp_path / "run", manifest(), [record("sequential", 1, i, 1.0) for i in range(2)]
    )
    text = (run / "records.jsonl").read_text()
    (run / "records.jsonl").write_text("{broken\n" + text)
    with pytest.raises(ReportError, match=r"Line 1 .* not valid JSON"):
        load_run(run)


def test_newer_manifest_schema_is_refused(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", manifest(schema_version=2), [record("sequential", 1, 0, 1.0)])
    with pytest.raises(ReportError, match="schema_version 2, newer than the 1"):
        load_run(run)


def test_newer_record_schema_is_refused(tmp_path: Path) -> None:
    records = [record("sequential", 1, 0, 1.0), record("sequential", 1, 1, 1.0, schema_version=2)]
    run = write_run(tmp_path / "run", manifest(), records)
    with pytest.raises(ReportError, match=r"Line 2 .* record schema_version 2, newer"):
        load_run(run)


def test_record_missing_a_field_is_refused(tmp_path: Path) -> None:
    broken = record("sequential", 1, 0, 1.0)
    del broken["wall_s"]
    run = write_run(tmp_path / "run", manifest(), [broken])
    with pytest.raises(ReportError, match="lacks wall_s"):
        load_run(run)


def test_unknown_status_is_refused(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", manifest(), [record("sequential", 1, 0, 1.0, status="meh")])
    with pytest.raises(ReportError, match="status 'meh'"):
        load_run(run)


def test_duplicate_repetitions_keep_the_last_with_a_warning(tmp_path: Path) -> None:
    records = [record("sequential", 1, 0, 1.0), record("sequential", 1, 0, 2.0)]
    loaded = load_run(write_run(tmp_path / "run", manifest(), records))
    assert loaded.frame["wall_s"].tolist() == [2.0]
    assert any("repeat" in warning for warning in loaded.warnings)


def test_error_messages_are_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(ReportError) as caught:
        load_run(tmp_path / "nope")
    message = str(caught.value)
    assert message.endswith(".") and "\n" not in message


def test_expanded_configs_get_short_labels() -> None:
    flags = {"allow_fork": False, "allow_threads": True, "use_main_obmalloc": False}
    own, shared = {"gil": "own", **flags}, {"gil": "shared", **flags}
    swept = {**own, "use_main_obmalloc": True}
    short = short_configs([("subinterpreters", c) for c in (own, shared, swept)]
                          + [("processes", {"start_method": "fork"}), ("threads", {})])  # fmt: skip
    assert (
        short[("subinterpreters", format_mapping(shared))] == "gil=shared,use_main_obmalloc=false"
    )
    assert short[("subinterpreters", format_mapping(swept))] == "gil=own,use_main_obmalloc=true"
    assert short[("processes", "start_method=fork")] == "start_method=fork"  # names the variant
    assert short[("threads", "-")] == "-"
