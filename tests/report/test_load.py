"""Reading run folders: types, schema versions and upgrades, and every refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from gilbench.report import ReportError, load_run
from gilbench.report.labels import format_mapping, short_configs
from gilbench.runfolder import RECORD_SCHEMA_VERSION, UPGRADES, _upgraded

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
    upgraded, why = _upgraded(dict(old))
    assert upgraded is not None, why
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
    with pytest.raises(ReportError, match="holds no complete records"):
        load_run(run)


def test_torn_last_line_is_ignored_with_a_warning(tmp_path: Path) -> None:
    run = write_run(
        tmp_path / "run", manifest(), [record("sequential", 1, i, 1.0) for i in range(3)]
    )
    with (run / "records.jsonl").open("a") as handle:
        handle.write(json.dumps(record("sequential", 1, 3, 1.0))[:57])
    loaded = load_run(run)
    assert len(loaded.frame) == 3
    assert len(loaded.warnings) == 1 and "unfinished last line (57 bytes)" in loaded.warnings[0]


def _damaged(tmp_path: Path, bad: object, match: str) -> None:
    """A complete line that is not a valid record: left out and named by line number; the
    valid records around it are reported."""
    good = [record("sequential", 1, i, 1.0) for i in range(2)]
    run = write_run(tmp_path / "run", manifest(), good)
    text = (run / "records.jsonl").read_text().splitlines(keepends=True)
    line = bad if isinstance(bad, str) else json.dumps(bad)
    (run / "records.jsonl").write_text(text[0] + line + "\n" + text[1])
    loaded = load_run(run)
    assert loaded.frame["repetition"].tolist() == [0, 1]
    (warning,) = loaded.warnings
    assert "1 damaged line(s)" in warning and "line 2:" in warning, warning
    assert match in warning, warning


def test_damaged_middle_line_is_left_out_by_line_number(tmp_path: Path) -> None:
    _damaged(tmp_path, "{broken", "not valid JSON")


def test_newer_record_schema_is_damaged(tmp_path: Path) -> None:
    _damaged(tmp_path, record("sequential", 1, 5, 1.0, schema_version=4),
             "schema_version 4 is newer than the 3")


def test_record_missing_a_field_is_damaged(tmp_path: Path) -> None:
    broken = record("sequential", 1, 5, 1.0)
    del broken["wall_s"]
    _damaged(tmp_path, broken, "lacks wall_s")


def test_unknown_status_is_damaged(tmp_path: Path) -> None:
    _damaged(tmp_path, record("sequential", 1, 5, 1.0, status="meh"), "status 'meh'")


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [("wall_s", "fast", "wall_s is 'fast', not a non-negative finite float"),
     ("wall_s", -1.0, "wall_s is -1.0"),
     ("peak_rss_kb", 1.5, "peak_rss_kb is 1.5, not a non-negative int"),
     ("tasks_done", True, "tasks_done is True"),
     ("gil_enabled", "yes", "gil_enabled is 'yes', not a bool"),
     ("model_config", "gil=own", "model_config is 'gil=own', not an object")],
)
def test_bad_values_are_damaged_not_coerced(
    tmp_path: Path, field: str, value: object, match: str
) -> None:
    _damaged(tmp_path, record("sequential", 1, 5, 1.0, **{field: value}), match)


def test_nan_in_a_record_is_damaged(tmp_path: Path) -> None:
    bad = json.dumps(record("sequential", 1, 5, 1.0)).replace('"wall_s": 1.0', '"wall_s": NaN')
    _damaged(tmp_path, bad, "wall_s is nan")


def test_newer_manifest_schema_is_refused(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", manifest(schema_version=2), [record("sequential", 1, 0, 1.0)])
    with pytest.raises(ReportError, match="schema_version 2, newer than the 1"):
        load_run(run)


def test_duplicate_repetitions_keep_the_first_with_a_warning(tmp_path: Path) -> None:
    records = [record("sequential", 1, 0, 1.0), record("sequential", 1, 0, 2.0)]
    loaded = load_run(write_run(tmp_path / "run", manifest(), records))
    assert loaded.frame["wall_s"].tolist() == [1.0]
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
