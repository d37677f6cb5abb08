"""Issue 8: --target-ci adds repetitions until a cell's median is known well enough, and
records why each cell stopped; a killed adaptive run resumes into the same plan."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gilbench import matrix, runfolder, sampling
from gilbench.errors import GilbenchError
from tests.conftest import REPO, invoke, wait_for_records
from tests.report.helpers import manifest, record, write_run

POLICY = sampling.Policy(target_ci=0.02, max_repetitions=20, budget_s=60.0)


def test_the_median_ci_needs_six_samples_and_widens_with_coverage() -> None:
    assert sampling.median_ci([1.0] * 5) is None
    assert sampling.half_width([1.0, 1.0, 1.0]) == math.inf
    # n = 6: only [x(1), x(6)] covers 95% (96.9%); n = 9: [x(2), x(8)] (96.1%).
    assert sampling.median_ci([6.0, 1.0, 5.0, 2.0, 4.0, 3.0]) == (1.0, 6.0)
    assert sampling.median_ci([float(v) for v in range(1, 10)]) == (2.0, 8.0)
    # half-width (8 - 2) / 2 over the median 5
    assert sampling.half_width([float(v) for v in range(1, 10)]) == pytest.approx(0.6)


def test_decide_names_each_reason() -> None:
    tight = [1.0, 1.001, 0.999, 1.002, 0.998, 1.0]
    loose = [1.0, 1.3, 0.8, 1.2, 0.9, 1.1]
    assert sampling.decide(tight, 6, True, 1.0, POLICY) == "target"
    assert sampling.decide(tight[:5], 5, True, 1.0, POLICY) is None  # no CI yet
    assert sampling.decide(loose, 6, True, 1.0, POLICY) is None
    assert sampling.decide(loose, 6, True, 60.0, POLICY) == "budget"
    assert sampling.decide(loose, 20, True, 1.0, POLICY) == "max"
    assert sampling.decide([], 3, False, 1.0, POLICY) == "failed"
    # every repetition contended: measured ok, so more rounds may find quiet moments
    assert sampling.decide([], 3, True, 1.0, POLICY) is None
    assert set(sampling.STOPS) == {"target", "budget", "max", "failed"}


def test_samples_follow_the_reports_rule(tmp_path: Path) -> None:
    records = [record("sequential", 1, i, 1.0) for i in range(3)]
    records += [record("threads", 2, 0, 1.0),
                record("threads", 2, 1, 5.0, contended=True),
                record("threads", 2, 1, 1.1, attempt=1),
                record("threads", 2, 2, 4.0, contended=True)]
    from gilbench.report import load_run
    from gilbench.report.load import quiet_ok

    run = load_run(write_run(tmp_path / "run", manifest(), records))
    threads = run.frame[(run.frame["model"] == "threads") & quiet_ok(run.frame)]
    (cell_id,) = set(threads["cell_id"])
    got = runfolder.samples_by_cell(runfolder.read_records(run.run_dir).records)[cell_id]
    assert sorted(got.quiet) == sorted(threads["wall_s"]) == [1.0, 1.1]
    assert (got.measured, got.any_ok) == (3, True)


@pytest.mark.parametrize("text, fraction", [("2%", 0.02), (" 0.5% ", 0.005), (0.03, 0.03)])
def test_target_ci_reads_percentages(text: object, fraction: float) -> None:
    assert matrix.target_ci("here", text) == pytest.approx(fraction)


@pytest.mark.parametrize("text", ["2", "0.02", "abc%", "0%", "60%", "nan%", True])
def test_a_bad_target_ci_is_one_sentence(text: object) -> None:
    with pytest.raises(GilbenchError, match=r"must be a percentage from 0\.1% to 50%"):
        matrix.target_ci("here", text)


def test_matrix_keys_that_need_target_ci_are_refused_without_it() -> None:
    base: dict[str, Any] = {"models": {"threads": {}}, "workloads": {"io": {}}}
    with pytest.raises(GilbenchError, match="'max_repetitions' only applies with 'target_ci'"):
        matrix.parse({**base, "max_repetitions": 9}, name="m")
    with pytest.raises(GilbenchError, match="'max_repetitions' must be an integer from 5"):
        matrix.parse({**base, "target_ci": "2%", "max_repetitions": 4}, name="m")
    chosen = matrix.parse({**base, "target_ci": "5%", "cell_budget_s": 30}, name="m")
    assert (chosen.target_ci, chosen.max_repetitions, chosen.cell_budget_s) == (0.05, 50, 30.0)


def test_sampling_flags_without_target_ci_are_refused(tmp_path: Path) -> None:
    result = invoke("experiment", "--model", "threads", "--workload", "io",
                    "--max-repetitions", "9",
                    env={"INVOKE_GILBENCH_RESULTS_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert "--max-repetitions only applies with --target-ci" in result.stderr
    assert "Traceback" not in result.stderr and not list(tmp_path.iterdir())


def _adaptive_run(python: Path, results: Path, extra: str) -> subprocess.Popen[str]:
    (results.parent / "m.toml").write_text(
        "repetitions = 3\nwarmups = 0\nworkers = [2]\n" + extra +
        "[models.sequential]\n[models.threads]\n[workloads.io]\nms = 2\ntasks = 2\n")
    return subprocess.Popen(
        [sys.executable, "-m", "invoke", "experiment", "--matrix",
         str(results.parent / "m.toml"), "--python", str(python)],
        cwd=REPO, env={**os.environ, "INVOKE_GILBENCH_RESULTS_DIR": str(results)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _check_invariants(run_dir: Path, target: float, most: int) -> dict[str, dict[str, object]]:
    """What must hold whatever the host's noise: one record per planned repetition, and
    each cell's recorded stop agrees with its own records."""
    plan = runfolder.read_manifest(run_dir)
    records = runfolder.read_records(run_dir).records
    samples = runfolder.samples_by_cell(records)
    assert len(records) == len({(r["cell_id"], r["repetition"]) for r in records})
    assert not runfolder.pending_cells(plan, records)
    for cell in plan.cells:
        state, got = plan.sampling[cell["cell_id"]], samples[cell["cell_id"]]
        assert state["stop"] in sampling.STOPS
        assert cell["repetitions"] == list(range(got.measured)) and state["repetitions"] == \
            got.measured
        assert 3 <= got.measured <= most
        if state["stop"] == "target":
            assert got.measured >= 6 and sampling.half_width(got.quiet) <= target
        if state["stop"] == "max":
            assert got.measured == most
    return plan.sampling


def test_a_real_adaptive_run_records_why_each_cell_stopped(python312: Path,
                                                           tmp_path: Path) -> None:
    results = tmp_path / "results"
    proc = _adaptive_run(python312, results, 'target_ci = "10%"\nmax_repetitions = 12\n')
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    (run_dir,) = results.iterdir()
    stops = _check_invariants(run_dir, 0.10, 12)
    assert len(stops) == 2
    report = invoke("report", "--run", str(run_dir))
    assert report.returncode == 0, report.stderr


def test_a_killed_adaptive_run_resumes_into_the_same_plan(python312: Path,
                                                          tmp_path: Path) -> None:
    results = tmp_path / "results"
    # A target no timing reaches: both cells sample up to the ceiling, so the kill lands
    # in the middle of the adaptive rounds.
    proc = _adaptive_run(python312, results, 'target_ci = "0.1%"\nmax_repetitions = 16\n')
    run_dir = wait_for_records(results, 10)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    killed = runfolder.read_manifest(run_dir)
    assert killed.finished_at is None and killed.sampling  # a round was planned
    resumed = invoke("experiment", "--resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    stops = _check_invariants(run_dir, 0.001, 16)
    assert {state["stop"] for state in stops.values()} <= {"max", "target", "budget"}
    assert runfolder.read_manifest(run_dir).finished_at is not None


def test_the_report_tells_why_cells_stopped(tmp_path: Path) -> None:
    from gilbench.report import load_run
    from gilbench.report.document import to_markdown
    from gilbench.report.sampling import sampling_blocks, sampling_warning

    records = [record("sequential", 1, i, 1.0) for i in range(6)]
    records += [record("threads", 2, i, 1.0 + i / 10) for i in range(3)]
    ids = sorted({r["cell_id"] for r in records})
    sequential = next(r["cell_id"] for r in records if r["model"] == "sequential")
    threads = next(i for i in ids if i != sequential)
    data = manifest(order={"kind": "matrix", "seed": 1, "batch": 1, "target_ci": 0.02,
                           "max_repetitions": 3, "cell_budget_s": 60.0},
                    sampling={sequential: {"stop": "target", "repetitions": 6,
                                           "ci_half_width": 0.0, "elapsed_s": 1.0},
                              threads: {"stop": "max", "repetitions": 3,
                                        "ci_half_width": None, "elapsed_s": 1.0}})
    run = load_run(write_run(tmp_path / "run", data, records))
    assert sampling_warning(run) == ("1 of 2 cells stopped before their median was known to "
                                     "±2.0% (max 1); they are listed under Adaptive sampling.")
    text = to_markdown(sampling_blocks(run))
    assert "1 reached the target; 1 reached the most repetitions allowed first" in text
    assert "| 3.13.0 | threads | " in text and "| 3 | not yet known | max |" in text
    fixed = load_run(write_run(tmp_path / "fixed", manifest(), records))
    assert sampling_warning(fixed) is None and sampling_blocks(fixed) == []
