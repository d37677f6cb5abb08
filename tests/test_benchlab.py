"""Issue 8: `invoke bench-lab` measures the lab against a hand-written reference on a real
interpreter and writes every figure; the reference itself runs every model for real."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from gilbench import benchlab
from tests.conftest import REPO, invoke


@pytest.mark.parametrize("minor", ["python312", "python313"])
def test_the_reference_measures_every_model(minor: str, request: pytest.FixtureRequest) -> None:
    python: Path = request.getfixturevalue(minor)
    spec = json.dumps({"n": 18, "tasks": 4, "workers": 2, "repetitions": 2})
    done = subprocess.run([str(python), "-E", "-s", "-m", "experiments.driver", "--reference",
                           spec], cwd=REPO, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    # interleaved: repetition 0 of every model, then repetition 1
    assert [(r["repetition"], r["model"]) for r in rows] == [
        (k, m) for k in range(2) for m in ("sequential", "threads", "processes", "own", "shared")]
    assert all(r["wall_s"] > 0 for r in rows)


def test_speedups_are_ratios_of_medians() -> None:
    walls = {"sequential": [1.0, 1.2, 1.1], "threads": [1.1], "processes": [0.5, 0.6, 0.55]}
    got = benchlab.speedups(walls)
    assert got == pytest.approx({"threads": 1.0, "processes": 2.0})
    assert benchlab.speedups({"threads": [1.0]}) == {}


def _figures(lab: float, reference: float, cost: float) -> benchlab.Figures:
    figures = benchlab.Figures(settings={}, host={"cores": 2}, python={"label": "x"})
    figures.accuracy = {"processes": {"lab": lab, "reference": reference,
                                      "ratio": lab / reference}}
    figures.process_cost = {"bare_s": 0.01, "cell_s": 0.01 * cost, "ratio": cost}
    figures.efficiency, figures.warmup_share = [0.5], [0.4]
    figures.noise = {"median_cv": 0.01, "ok": 10, "contended": 1, "contended_share": 0.1}
    return figures


def test_rows_judge_each_figure_against_its_goal() -> None:
    rows = {row[0]: row for row in benchlab.rows(_figures(2.0, 1.96, 1.4))}
    assert rows["accuracy, processes: lab / reference"][3] == "met"
    assert rows["process cost: cell / python -c pass"][3] == "met"
    assert rows["matrix efficiency: measured / wall"][3] == "missed"
    off = {row[0]: row for row in benchlab.rows(_figures(2.3, 1.9, 2.5))}
    accuracy = off["accuracy, processes: lab / reference"]
    assert accuracy[3] == "missed" and "above the 2 cores" in accuracy[1]
    assert off["process cost: cell / python -c pass"][3] == "missed"


def test_bench_lab_runs_end_to_end(python313: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench lab"
    result = invoke("bench-lab", "--python", str(python313), "--blocks", "2",
                    "--repetitions", "2", "--burner", "--output", str(out),
                    env={"INVOKE_GILBENCH_RESULTS_DIR": str(tmp_path / "results")})
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads((out / "bench-lab.json").read_text())
    assert len(data["runs"]) == 3 and len(data["block_speedups"]) == 2  # + the burner's
    burner = data["burner"]
    assert burner["affected"] >= 1 and 0 <= burner["flagged"] <= burner["affected"]
    assert set(burner["after_retry_vs_quiet"]) == {"threads", "processes", "own", "shared"}
    assert set(data["reference"]) == {"sequential", "threads", "processes", "own", "shared"}
    assert set(data["lab"]) == set(data["reference"])
    assert set(data["accuracy"]) == {"threads", "processes", "own", "shared"}
    assert data["process_cost"]["ratio"] > 0 and 0 < data["efficiency"][0] <= 1
    assert data["python"]["label"] == "3.13.0 native"
    assert "process cost" in result.stdout and "met" in result.stdout
    assert any("no-op build" in note for note in data["notes"])


def test_bench_lab_refuses_a_bad_count_in_one_sentence(tmp_path: Path) -> None:
    result = invoke("bench-lab", "--blocks", "many",
                    env={"INVOKE_GILBENCH_RESULTS_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert "--blocks 'many' must be a whole number" in result.stderr
    assert "Traceback" not in result.stderr
