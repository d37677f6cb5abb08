"""`invoke experiment` end to end on the installed 3.12 and 3.13 (native backend):
complete run folders, faults recorded as results, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from gilbench import runfolder
from tests.conftest import REPO, invoke, ok_or_creation_flake


def run_folder(results: Path) -> Path:
    """The one run a test made in its own results folder."""
    (run_dir,) = [p for p in results.iterdir() if (p / "manifest.json").exists()]
    return run_dir


def check_complete(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Every repetition of every planned cell has exactly one record."""
    manifest = runfolder.read_manifest(run_dir)
    records = runfolder.read_records(run_dir).records
    planned = Counter((c["cell_id"], r) for c in manifest.cells for r in c["repetitions"])
    got = Counter((r["cell_id"], r["repetition"]) for r in records)
    assert got == planned
    assert manifest.finished_at is not None
    assert all(r["schema_version"] == runfolder.RECORD_SCHEMA_VERSION
               and r["run_id"] == manifest.run_id for r in records)
    return manifest, records


def test_quick_matrix_on_native_312_and_313(
    python312: Path, python313: Path, tmp_path: Path
) -> None:
    env = {"INVOKE_GILBENCH_RESULTS_DIR": str(tmp_path)}
    result = invoke("experiment", "--matrix", "quick", "--python", str(python312),
                    "--python", str(python313), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    manifest, records = check_complete(run_folder(tmp_path))
    labels = sorted(p["label"] for p in manifest.pythons.values())
    assert labels == ["3.12.1 native", "3.13.0 native"]
    assert manifest.host["cores"] >= 1 and manifest.experiments_hash
    # Cells ran in a seeded shuffle, recorded; the manifest lists them in run order.
    assert manifest.order["kind"] == "shuffled" and manifest.order["seed"] > 0
    first_seen = list(dict.fromkeys(r["cell_id"] for r in records))
    assert first_seen == [c["cell_id"] for c in manifest.cells]
    assert manifest.matrix["name"] == "quick" and "[models.threads]" in manifest.matrix[
        "text"]
    by_status = Counter((r["model"], r["status"]) for r in records)
    assert {status for (model, status) in by_status if model == "interpreter-pool"} == {
        "unsupported"}
    others = [r for r in records if r["model"] != "interpreter-pool"]
    assert all(ok_or_creation_flake(r) for r in others), [r["message"] for r in others]
    others = [r for r in others if r["status"] == "ok"]
    assert all(r["gil_enabled"] is True for r in others)  # GIL builds
    apis = {r["python_version"][:4]: r["api"] for r in others if r["model"] == "subinterpreters"}
    assert apis["3.12"] != apis["3.13"]


# Deterministic faults, in an order that proves the matrix goes on after each:
# ok, invalid (CPython refuses the config), crashed (a real SIGSEGV), timeout, ok.
# (gil=own with use_main_obmalloc=true also crashes CPython, but only most of the time,
# so it is a finding of the flags matrix, not a test fixture.)
FAULTS = """
order = "matrix"
workers = [2]
repetitions = 2
warmups = 0
timeout_s = 4

[models.sequential]
[models.subinterpreters]
check_multi_interp_extensions = [true, false]

[workloads.fib]
n = 15
tasks = 2
[workloads.crash]
[workloads.hang]
[workloads.startup]
tasks = 2

[[exclude]]
model = "sequential"
workload = ["fib", "startup"]
[[exclude]]
model = "subinterpreters"
workload = ["crash", "hang"]
[[exclude]]
workload = "startup"
check_multi_interp_extensions = false
"""


@pytest.mark.parametrize("minor", ["3.12", "3.13"])
def test_faults_are_results_and_the_matrix_goes_on(
    minor: str, python312: Path, python313: Path, tmp_path: Path
) -> None:
    python = python312 if minor == "3.12" else python313
    matrix = tmp_path / "faults.toml"
    matrix.write_text(FAULTS)
    result = invoke("experiment", "--matrix", str(matrix), "--python", str(python),
                    env={"INVOKE_GILBENCH_RESULTS_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stdout + result.stderr
    manifest, records = check_complete(run_folder(tmp_path))
    order = [(c["workload"], c["model_config"].get("check_multi_interp_extensions"))
             for c in manifest.cells]
    assert order == [("fib", True), ("fib", False), ("crash", None), ("hang", None),
                     ("startup", True)]
    statuses: dict[tuple[str, bool | None], set[str]] = {}
    messages: dict[tuple[str, bool | None], str] = {}
    for r in records:
        key = (r["workload"], r["model_config"].get("check_multi_interp_extensions"))
        statuses.setdefault(key, set()).add(r["status"])
        messages[key] = r["message"]
    assert statuses == {("fib", True): {"ok"}, ("fib", False): {"invalid"},
                        ("crash", None): {"crashed"}, ("hang", None): {"timeout"},
                        ("startup", True): {"ok"}}
    # CPython's own words for the refused configuration, and the signal of the crash.
    assert "per-interpreter obmalloc does not support single-phase init" in messages[
        ("fib", False)]
    assert "SIGSEGV" in messages[("crash", None)]
    assert "4" in messages[("hang", None)]


SLOW = """
workers = [1, 2]
repetitions = 3
warmups = 0
timeout_s = 30

[models.threads]
[models.processes]
start_method = "fork"

[workloads.io]
ms = 60
tasks = 4
"""


def test_kill_and_resume_loses_nothing(python312: Path, tmp_path: Path) -> None:
    matrix = tmp_path / "slow.toml"
    matrix.write_text(SLOW)
    env = {**os.environ, "INVOKE_GILBENCH_RESULTS_DIR": str(tmp_path / "results")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "experiment", "--matrix", str(matrix), "--python",
         str(python312)], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    records_file: Path | None = None
    while time.monotonic() < deadline:
        found = list((tmp_path / "results").glob("*/records.jsonl"))
        if found and len(found[0].read_text().splitlines()) >= 4:
            records_file = found[0]
            break
        time.sleep(0.05)
    assert records_file is not None, "the run never produced records"
    os.killpg(proc.pid, signal.SIGKILL)  # the orchestrator and everything below it
    proc.wait()
    before = records_file.read_text()
    run_dir = records_file.parent
    assert runfolder.read_manifest(run_dir).finished_at is None

    result = invoke("experiment", "--resume", run_dir.name, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    manifest, records = check_complete(run_dir)
    assert records_file.read_text().startswith(before.rstrip("\n"))  # appended, never rewritten
    assert len(manifest.resumed_at) == 1
    assert {r["status"] for r in records} == {"ok"}


def test_resume_refuses_changed_harness(tmp_path: Path) -> None:
    run_dir = tmp_path / "results" / "old-run"
    run_dir.mkdir(parents=True)
    (run_dir / "manifest.json").write_text(json.dumps({
        "schema_version": 1, "run_id": "old-run", "experiments_hash": "0" * 64, "cells": [],
        "pythons": {}, "resumed_at": [], "limits": {"cpuset": "0", "memory": "1g"}}))
    result = invoke("experiment", "--resume", str(run_dir))
    assert result.returncode == 1 and "experiments/ changed since run old-run" in result.stderr


def test_resume_refuses_other_limits(tmp_path: Path) -> None:
    from gilbench.run import experiments_hash

    run_dir = tmp_path / "results" / "old-run"
    run_dir.mkdir(parents=True)
    (run_dir / "manifest.json").write_text(json.dumps({
        "schema_version": 1, "run_id": "old-run", "experiments_hash": experiments_hash(),
        "cells": [], "pythons": {}, "resumed_at": [], "limits": {"cpuset": "0", "memory": "1g"}}))
    result = invoke("experiment", "--resume", str(run_dir), "--memory", "2g")
    assert result.returncode == 1
    assert "ran with cpuset '0' and memory '1g'" in result.stderr


def test_a_dying_driver_costs_only_the_cell_in_flight(python312: Path, tmp_path: Path) -> None:
    """The driver itself is killed (as an OOM kill would) while a cell runs: that cell is
    recorded as crashed, and the cells after it still run in a fresh driver."""
    from gilbench import matrix as matrices
    from gilbench import run, targets

    (tmp_path / "m.toml").write_text(
        # batch = 2: both repetitions of the hanging cell in the process the test kills
        'order = "matrix"\nworkers = [1]\nrepetitions = 2\nbatch = 2\nwarmups = 0\n'
        "timeout_s = 30\n"
        "[models.threads]\n"
        "[workloads.hang]\n[workloads.io]\nms = 10\ntasks = 2\n")
    chosen = matrices.load(str(tmp_path / "m.toml"))
    target = targets.resolve(str(python312), "native", "pgo", tmp_path)

    def kill_the_driver() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            # This test's driver only: other runs may be going on on this machine.
            pattern = f"experiments.driver .*{tmp_path}/results/.*cells-pending"
            found = subprocess.run(["pgrep", "-f", pattern],
                                   capture_output=True, text=True).stdout.split()
            if found:
                time.sleep(1.0)  # inside the hanging cell by now
                os.kill(int(found[0]), signal.SIGKILL)
                return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_the_driver)
    killer.start()
    run_dir = run.start(chosen, [target], tmp_path / "results", run.Limits("", None), "test",
                        lambda kind, payload: None)
    killer.join()
    manifest, records = check_complete(run_dir)
    hang, io = (c["cell_id"] for c in manifest.cells)
    assert {r["status"] for r in records if r["cell_id"] == hang} == {"crashed"}
    assert all("the driver died while this cell ran" in r["message"]
               for r in records if r["cell_id"] == hang)
    assert {r["status"] for r in records if r["cell_id"] == io} == {"ok"}
    # The hanging cell process did not outlive its killed driver.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _cells_running():
        time.sleep(0.2)
    assert not _cells_running()


def _cells_running() -> bool:
    """Any cell process still alive on this machine (tests run one at a time)."""
    out = subprocess.run(["pgrep", "-f", "-m.experiments.cell"], capture_output=True, text=True)
    return bool(out.stdout.split())
