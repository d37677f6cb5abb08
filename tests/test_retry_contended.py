"""Issue 8: --retry-contended remeasures contended repetitions, keeps every attempt, and
the report uses the first quiet attempt of each repetition."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gilbench import runfolder
from tests.conftest import invoke
from tests.report.helpers import manifest, record, write_run


def _manifest(reps: int) -> runfolder.Manifest:
    return runfolder.Manifest(run_id="r", cells=[
        {"cell_id": "c-threads-2", "python": "p", "repetitions": list(range(reps))}])


def test_only_repetitions_contended_in_every_attempt_go_again() -> None:
    base = {"cell_id": "c-threads-2", "status": "ok"}
    records = [
        {**base, "repetition": 0, "contended": False},
        {**base, "repetition": 1, "contended": True},
        {**base, "repetition": 2, "contended": True},
        {**base, "repetition": 2, "contended": True},  # attempt 1, contended again
        {**base, "repetition": 3, "contended": True, "status": "crashed"},
    ]
    again = runfolder.contended_cells(_manifest(5), records, retries=2)
    assert [(c["attempt"], c["repetitions"]) for c in again] == [(1, [1]), (2, [2])]
    assert runfolder.contended_cells(_manifest(5), records, retries=1) == [
        {"cell_id": "c-threads-2", "python": "p", "repetitions": [1], "attempt": 1}]


def test_the_report_uses_the_first_quiet_attempt(tmp_path: Path) -> None:
    records = [record("sequential", 1, i, 1.0) for i in range(3)]
    records += [record("threads", 2, 0, 1.0)]
    records += [record("threads", 2, 1, 5.0, contended=True),
                record("threads", 2, 1, 1.1, attempt=1)]
    records += [record("threads", 2, 2, 4.0, contended=True),
                record("threads", 2, 2, 4.5, contended=True, attempt=1)]
    from gilbench.report import load_run

    run = load_run(write_run(tmp_path / "run", manifest(), records))
    threads = run.frame[run.frame["model"] == "threads"].sort_values("repetition")
    assert threads["wall_s"].tolist() == [1.0, 1.1, 4.5]
    assert ("2 contended repetition(s) were measured again (retry_contended); 1 got a quiet "
            "attempt, which is used.") in run.warnings
    assert not any("repeat a (cell, repetition)" in w for w in run.warnings)


def test_a_real_run_with_burners_retries_each_contended_repetition_once(
    python312: Path, tmp_path: Path
) -> None:
    (tmp_path / "m.toml").write_text(
        "repetitions = 3\nwarmups = 0\nworkers = [2]\n[models.sequential]\n[models.threads]\n"
        "[workloads.fib]\nn = 27\ntasks = 2\n")
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
               for _ in os.sched_getaffinity(0)]
    try:
        result = invoke("experiment", "--matrix", str(tmp_path / "m.toml"), "--python",
                        str(python312), "--retry-contended", "1",
                        env={"INVOKE_GILBENCH_RESULTS_DIR": str(tmp_path / "results")})
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = (tmp_path / "results").iterdir()
    assert runfolder.read_manifest(run_dir).order["retry_contended"] == 1
    records = runfolder.read_records(run_dir).records
    first = [r for r in records if r["attempt"] is None]
    retried = [r for r in records if r["attempt"] == 1]
    assert len(first) == 6 and all(r["status"] == "ok" for r in records)
    contended = {(r["cell_id"], r["repetition"]) for r in first if r["contended"]}
    assert len(contended) >= 5  # the burners take the CPU throughout
    assert {(r["cell_id"], r["repetition"]) for r in retried} == contended
    assert len(retried) == len(contended)  # once each: retry_contended = 1
    report = invoke("report", "--run", str(run_dir))
    assert report.returncode == 0, report.stderr
