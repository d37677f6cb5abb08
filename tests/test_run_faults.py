"""Issue 7 end to end: faults around a real run (native 3.12) through the real command line.
Each leaves a run that `--resume` finishes and `report` reads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from gilbench import runfolder
from tests.conftest import REPO, invoke, wait_for_records
from tests.test_runfolder import fill, mounted_tmpfs

# Small and steady: 12 repetitions of 50-80 ms each, so a test can act mid-run.
MATRIX = """
order = "matrix"
workers = [2]
repetitions = 6
warmups = 0
timeout_s = 60
[models.sequential]
[models.threads]
[workloads.io]
ms = 40
tasks = 2
"""


def _start(tmp_path: Path, python: Path, results: Path, ms: int = 40) -> subprocess.Popen[str]:
    (tmp_path / "m.toml").write_text(MATRIX.replace("ms = 40", f"ms = {ms}"))
    return subprocess.Popen(
        [sys.executable, "-m", "invoke", "experiment", "--matrix", str(tmp_path / "m.toml"),
         "--python", str(python)], cwd=REPO, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, start_new_session=True,
        # A user's Ctrl-C works even when this suite itself runs as a background job
        # (which starts with SIGINT ignored, and Python keeps an ignored SIGINT ignored).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        env={**os.environ, "INVOKE_GILBENCH_RESULTS_DIR": str(results)},
    )


def _killed_run(tmp_path: Path, python: Path, after: int = 3, ms: int = 40) -> Path:
    results = tmp_path / "results"
    proc = _start(tmp_path, python, results, ms)
    run_dir = wait_for_records(results, after)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    return run_dir


def _env(run_dir: Path) -> dict[str, str]:
    return {"INVOKE_GILBENCH_RESULTS_DIR": str(run_dir.parent)}


def _assert_complete(run_dir: Path) -> None:
    manifest = runfolder.read_manifest(run_dir)
    read = runfolder.read_records(run_dir)
    planned = Counter((c["cell_id"], r) for c in manifest.cells for r in c["repetitions"])
    assert Counter((r["cell_id"], r["repetition"]) for r in read.records) == planned
    assert not read.damaged and not read.torn_tail and manifest.finished_at is not None


def _one_sentence(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_torn_write_then_resume_then_report(python312: Path, tmp_path: Path) -> None:
    run_dir = _killed_run(tmp_path, python312)
    with (run_dir / "records.jsonl").open("a") as handle:  # a kill in the middle of a write
        handle.write('{"schema_version": 1, "run_id": "')

    partial = invoke("report", "--run", str(run_dir), env=_env(run_dir))
    assert partial.returncode == 0, partial.stderr
    assert f"finish it with `invoke experiment --resume {run_dir.name}`" in partial.stdout
    assert "(partial)" in (run_dir / "report.html").read_text()
    assert "is incomplete:" in (run_dir / "report.md").read_text()

    resumed = invoke("experiment", "--resume", run_dir.name, env=_env(run_dir))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    _assert_complete(run_dir)
    final = invoke("report", "--run", run_dir.name, env=_env(run_dir))
    assert final.returncode == 0, final.stderr
    assert "partial" not in final.stdout and "unfinished" not in final.stdout
    assert "is incomplete" not in (run_dir / "report.md").read_text()


def test_concurrent_resumes_cannot_duplicate_a_record(python312: Path, tmp_path: Path) -> None:
    # Slow cells (9 repetitions of 300 ms left), so the two resumes surely overlap.
    run_dir = _killed_run(tmp_path, python312, ms=300)
    command = [sys.executable, "-m", "invoke", "experiment", "--resume", run_dir.name]
    env = {**os.environ, **_env(run_dir)}
    procs = [subprocess.Popen(command, cwd=REPO, env=env, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for _ in range(2)]
    results = [subprocess.CompletedProcess(p.args, p.wait(), *p.communicate()) for p in procs]
    assert sorted(r.returncode for r in results) == [0, 1], results
    refused = next(r for r in results if r.returncode == 1)
    assert _one_sentence(refused).startswith(f"error: Run {run_dir.name} is in use by process ")
    _assert_complete(run_dir)


def test_resume_of_a_live_run_is_refused(python312: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    proc = _start(tmp_path, python312, results, ms=500)  # about 8 s in all
    run_dir = wait_for_records(results, 1)
    second = invoke("experiment", "--resume", run_dir.name, env=_env(run_dir))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    assert f"in use by process {proc.pid} on " in _one_sentence(second)
    _assert_complete(run_dir)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_names_the_run_to_resume(python312: Path, tmp_path: Path, signum: int) -> None:
    results = tmp_path / "results"
    proc = _start(tmp_path, python312, results, ms=200)
    run_dir = wait_for_records(results, 2)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"invoke experiment --resume {run_dir.name}" in err and "Traceback" not in err


def test_disk_full_mid_run_then_free_resume_report(python312: Path, tmp_path: Path) -> None:
    """A real full disk: a tmpfs holds the results; it fills up after a few records."""
    with mounted_tmpfs(tmp_path / "disk", "4m") as disk:
        proc = _start(tmp_path, python312, disk)
        run_dir = wait_for_records(disk, 2)
        filler = fill(disk)
        out, err = proc.communicate(timeout=120)
        done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        sentence = _one_sentence(done)
        assert f"The disk holding {run_dir} is full" in sentence
        assert sentence.endswith(f"`invoke experiment --resume {run_dir.name}`.")
        kept = runfolder.read_records(run_dir)
        assert kept.records and not kept.damaged
        # A full disk is not a crash: no record may blame the cell for it.
        assert {r["status"] for r in kept.records} == {"ok"}, kept.records
        assert (run_dir / "records.jsonl").read_bytes().endswith(b"\n")

        filler.unlink()
        resumed = invoke("experiment", "--resume", run_dir.name, env=_env(run_dir))
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        _assert_complete(run_dir)
        report = invoke("report", "--run", run_dir.name, env=_env(run_dir))
        assert report.returncode == 0, report.stderr
        assert json.loads((run_dir / "manifest.json").read_text())["finished_at"]


def test_an_empty_resume_is_a_mistake_not_a_new_run(tmp_path: Path) -> None:
    result = invoke("experiment", "--resume", "",
                    env={"INVOKE_GILBENCH_RESULTS_DIR": str(tmp_path)})
    assert _one_sentence(result).startswith("error: --resume was given an empty value")
    assert list(tmp_path.iterdir()) == []


def test_a_start_killed_while_probing_leaves_no_debris(python312: Path, tmp_path: Path) -> None:
    """A run killed before its manifest exists measured nothing: the next run removes its
    folder, which only held the driver log and a dead lock."""
    results = tmp_path / "results"
    debris = results / "20261130T000000Z-dead"
    debris.mkdir(parents=True)
    (debris / "driver.log").write_text("")
    (debris / "run.lock").write_text("process 1 on gone, since then")
    (debris / "harness" / "experiments").mkdir(parents=True)  # copied before the manifest
    keep = results / "not-a-run"  # a user's own folder is never touched
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    proc = _start(tmp_path, python312, results)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    assert not debris.exists() and (keep / "notes.txt").read_text() == "mine"


def test_disk_full_before_the_manifest_says_start_again(python312: Path, tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "disk", "1m") as disk:
        filler = fill(disk)
        proc = _start(tmp_path, python312, disk)
        out, err = proc.communicate(timeout=120)
        sentence = _one_sentence(subprocess.CompletedProcess(proc.args, proc.returncode, out,
                                                             err))
        assert "is full, so run " in sentence and sentence.endswith(
            "free some space and run the same command again.")
        assert [p.name for p in disk.iterdir()] == [filler.name]
