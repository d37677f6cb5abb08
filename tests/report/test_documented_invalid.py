"""The report names the documented rule a config breaks: in the table, findings and sweep."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from gilbench.report import report_run
from gilbench.report.load import load_run
from gilbench.report.plots import sweep_figure

from .helpers import RUN_A


def test_documented_invalid_configs_are_annotated(tmp_path: Path) -> None:
    run_dir = Path(shutil.copytree(RUN_A, tmp_path / RUN_A.name))
    frame = load_run(run_dir).frame
    marked = frame[frame["documented_invalid"] != ""]
    # The fixture sweeps gil=own with use_main_obmalloc=true: those records and no others.
    assert len(marked) and set(marked["model"]) == {"subinterpreters"}
    assert set(marked["model_config"].astype(str)) == {"gil=own,use_main_obmalloc=true"}

    result = report_run(run_dir)
    text = result.report_md.read_text()
    assert "that break a documented rule did not finish ok (use_main_obmalloc=1 must not" in text
    summary = pd.read_csv(run_dir / "summary.csv")
    assert (summary["documented_invalid"].fillna("") != "").sum() == len(
        marked.groupby(["python", "workload", "workers", "model_config"], observed=True))
    figure = sweep_figure(frame, "sweep")
    (ax,) = figure.axes
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert [label for label in labels if label.startswith("\u2021 ")] == [
        "\u2021 gil=own main_obmalloc=T"]
    assert ax.get_xlabel().startswith("\u2021 documented invalid: use_main_obmalloc=1")
    assert (run_dir / "plots" / "sweep.png").stat().st_size > 0
