"""compare_runs: real changes are flagged, noise and identical runs are not."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from gilbench.report import ReportError, compare_runs

from .helpers import PYTHON, RUN_A, RUN_B, manifest, record, write_run


def test_regression_between_fixture_runs_is_flagged(tmp_path: Path) -> None:
    result = compare_runs(RUN_A, RUN_B, tmp_path / "cmp")
    changes = result.changes
    assert changes["cell"].tolist() == [
        "fib(n=24,tasks=8) / 3.13.5-pgo / subinterpreters(gil=own) at 2 workers"
    ]
    change = changes.iloc[0]
    assert change["verdict"] == "slower"
    assert 1.25 < change["ratio"] < 1.36 and change["ratio_ci_low"] > 1.0
    assert change["p_value"] < 0.05
    # threads did not move between the runs
    threads = result.cells[result.cells["cell"].str.contains("pgo / threads at 2")].iloc[0]
    assert threads["verdict"] == "no change" and not threads["beyond_noise"]
    assert result.matched_by[0] == "python_label" and result.python_note == ""
    assert result.axes_differ == ["host"]
    assert [(d.name, d.a, d.b) for d in result.differences] == [
        ("host.kernel", "6.1.0-26-amd64", "6.1.0-27-amd64")
    ]
    assert {p.name for p in result.paths} == {"compare.md", "compare.csv"}
    text = (tmp_path / "cmp" / "compare.md").read_text()
    beyond = text.split("## Changes beyond noise")[1].split("##")[0]
    assert "subinterpreters(gil=own) at 2 workers: 3" in beyond and "% slower in B" in beyond
    assert "host.kernel" in text


def test_identical_runs_flag_nothing(tmp_path: Path) -> None:
    copy = shutil.copytree(RUN_A, tmp_path / "copy")
    result = compare_runs(RUN_A, copy, tmp_path / "cmp")
    assert result.changes.empty
    assert result.differences == []
    assert set(result.cells["verdict"]) == {"no change", "not comparable"}
    assert "No matched cell changed beyond noise" in (tmp_path / "cmp" / "compare.md").read_text()


def test_default_output_folder_is_inside_run_b(tmp_path: Path) -> None:
    run_b = shutil.copytree(RUN_B, tmp_path / RUN_B.name)
    result = compare_runs(RUN_A, run_b)
    assert result.paths[0].parent == run_b / f"compare-{RUN_A.name}"


def _single_python_run(folder: Path, label: str, walls: dict[str, Sequence[float | None]],
                       **manifest_changes: Any) -> Path:  # fmt: skip
    info = dict(manifest()["pythons"][PYTHON], label=label, **manifest_changes)
    records = [
        record(model, 1 if model == "sequential" else 2, i, wall)
        for model, values in walls.items()
        for i, wall in enumerate(values)
    ]
    return write_run(folder, manifest(pythons={PYTHON: info}), records)


FIVE = [1.0, 1.01, 0.99, 1.02, 0.98]


def test_different_pythons_match_by_everything_else(tmp_path: Path) -> None:
    a = _single_python_run(tmp_path / "a", "3.12.1", {"sequential": FIVE, "threads": FIVE})
    slower = [w * 1.4 for w in FIVE]
    b = _single_python_run(tmp_path / "b", "3.13.0", {"sequential": FIVE, "threads": slower},
                           config_args="'--enable-optimizations'")  # fmt: skip
    result = compare_runs(a, b, tmp_path / "cmp")
    assert "python_label" not in result.matched_by
    assert "different pythons (3.12.1 in A, 3.13.0 in B)" in result.python_note
    assert result.changes["model"].tolist() == ["threads"]
    assert result.changes.iloc[0]["ratio"] == pytest.approx(1.4)
    assert {"pythons", "config args"} <= set(result.axes_differ)
    assert "matched by everything but python" in (tmp_path / "cmp" / "compare.md").read_text()


def test_status_change_is_a_change(tmp_path: Path) -> None:
    a = _single_python_run(tmp_path / "a", "3.13.0", {"sequential": FIVE, "threads": FIVE})
    b = _single_python_run(tmp_path / "b", "3.13.0",
                           {"sequential": FIVE, "threads": [None] * 5})  # fmt: skip
    result = compare_runs(a, b, tmp_path / "cmp")
    change = result.changes.iloc[0]
    assert (change["status_a"], change["status_b"], change["verdict"]) == (
        "ok", "crashed", "not comparable"
    )  # fmt: skip
    assert "status ok in A, crashed in B" in (tmp_path / "cmp" / "compare.md").read_text()


def test_too_few_repetitions_are_noted(tmp_path: Path) -> None:
    three = FIVE[:3]
    a = _single_python_run(tmp_path / "a", "3.13.0", {"sequential": three})
    b = _single_python_run(tmp_path / "b", "3.13.0", {"sequential": [w * 2 for w in three]})
    result = compare_runs(a, b, tmp_path / "cmp")
    assert result.changes.empty  # 3 vs 3 can never reach p < 0.05 with Mann-Whitney
    assert any("too few ok repetitions" in note for note in result.notes)


def test_unpairable_runs_are_refused(tmp_path: Path) -> None:
    a = _single_python_run(tmp_path / "a", "3.12.1", {"sequential": FIVE})
    with pytest.raises(ReportError, match="cannot be paired"):
        compare_runs(a, RUN_A, tmp_path / "cmp")
    assert not (tmp_path / "cmp").exists()
