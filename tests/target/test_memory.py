"""Memory per worker (issue 18): the PSS the models sample, checked against /proc by hand.

The lab's figure (records' mem_total_kb, the report's mib_per_worker) is compared with
benchmarks/memory_workers.py, which shares no code with the lab, both run by the native
3.13 interpreter. Print both for every model with
`.venv/bin/pytest tests/target/test_memory.py -s -k figures`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from driver_runs import REPO, assert_well_formed, by_cell, cell, run_driver

from benchmarks import memory_workers
from gilbench.report.aggregate import summarize
from gilbench.report.load import load_run
from tests.report.helpers import PYTHON, manifest, write_run

FIB = {"n": 15, "tasks": 4}
COUNTS = [1, 2, 4]
# model name in the hand-written check -> (lab model, model_config)
LAB = {
    "spawn": ("processes", {"start_method": "spawn"}),
    "fork": ("processes", {"start_method": "fork"}),
    "subinterpreters": ("subinterpreters", {"gil": "own"}),
    "threads": ("threads", {}),
}


def lab_per_worker(python: Path, models: list[str], tmp_path: Path) -> dict[str, Any]:
    """Run each model at COUNTS workers (plus sequential) through the real driver, load the
    records as a run and summarize it: {model: summary rows} and the records."""
    cells = [cell("seq", "sequential", "fib", workload_params=FIB, workers=1, warmups=1,
                  repetitions=[0, 1, 2], python=PYTHON)]
    for name in models:
        model, config = LAB[name]
        cells += [cell(f"{name}-{n}", model, "fib", workload_params=FIB, workers=n,
                       model_config=config, warmups=1, repetitions=[0, 1, 2], python=PYTHON)
                  for n in COUNTS]
    found, _ = run_driver(python, cells, tmp_path)
    for record in found:
        record["run_id"] = "20261125T000000Z-test"
    run = load_run(write_run(tmp_path / "run", manifest(), found))
    table = summarize(run).frame
    rows = {}
    for name in models:
        model, config = LAB[name]
        picked = table[table["model"] == model]
        if model == "processes":
            picked = picked[picked["model_config"].astype(str).str.contains(
                config["start_method"])]
        rows[name] = picked.sort_values("workers")
    return {"rows": rows, "records": by_cell(found)}


def test_spawn_per_worker_matches_a_hand_written_proc_sum(python313: Path,
                                                          tmp_path: Path) -> None:
    lab = lab_per_worker(python313, ["spawn"], tmp_path)
    for n in COUNTS:
        for record in lab["records"][f"spawn-{n}"]:
            assert_well_formed(record)
            assert record["status"] == "ok", record["message"]
            assert record["mem_error"] is None
            assert record["mem_total_kb"] > record["mem_before_kb"] > 0
    rows = lab["rows"]["spawn"]
    assert list(rows["workers"]) == COUNTS
    assert set(rows["mem_method"]) == {"slope over 3 worker counts"}
    mib = float(rows["mib_per_worker"].iloc[0])
    by_hand = memory_workers.run_under(python313, ["spawn"], COUNTS)
    expected = by_hand["models"]["spawn"]["mib_per_worker"]
    assert expected == pytest.approx(mib, rel=0.25), (mib, by_hand)


def test_figures_for_every_model(python313: Path, tmp_path: Path) -> None:
    """Not a timing claim: prints the lab's and the hand-written figure side by side and
    checks only what must hold whatever the host: each spawned worker costs more than a
    forked one, and both more than a thread."""
    models = list(LAB)
    lab = lab_per_worker(python313, models, tmp_path)
    by_hand = memory_workers.run_under(python313, models, COUNTS)
    figures = {}
    print(f"\nnative {by_hand['python']}: MiB per worker over {COUNTS} workers")
    print(f"{'model':<16}{'lab':>8}{'by hand':>10}   lab median totals (KiB)")
    for name in models:
        rows = lab["rows"][name]
        mib = float(rows["mib_per_worker"].iloc[0])
        hand = by_hand["models"][name]["mib_per_worker"]
        figures[name] = mib
        totals = ", ".join(f"{int(v)}" for v in rows["mem_total_median_kb"])
        print(f"{name:<16}{mib:>8.2f}{hand:>10.2f}   {totals}")
    assert figures["spawn"] > figures["fork"] > figures["threads"]
    assert figures["subinterpreters"] > figures["threads"]


def test_failed_sampling_is_null_with_its_reason(target_python: Path) -> None:
    """/proc unreadable (as in a sandbox that hides it): no total, never a 0, and why."""
    spec = cell("denied", "processes", "fib", workload_params=FIB, workers=2,
                model_config={"start_method": "fork"}, repetitions=[0])
    code = ("import sys; from experiments import memory, cell; "
            "memory.PROC = '/nonexistent/proc'; cell.run_cell(" + repr(spec) + ")")
    done = subprocess.run([str(target_python), "-E", "-s", "-c", code], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=True)
    (record,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert record["status"] == "ok", record["message"]
    assert record["mem_total_kb"] is None and record["mem_before_kb"] is None
    assert "FileNotFoundError" in record["mem_error"]
    assert "/nonexistent/proc" in record["mem_error"]
    assert record["peak_rss_kb"] > 0  # the old field is untouched


def test_every_model_records_its_memory(target_python: Path, tmp_path: Path) -> None:
    cells = [cell(name, LAB[name][0], "fib", workload_params=FIB, workers=2,
                  model_config=LAB[name][1], repetitions=[0]) for name in LAB]
    cells.append(cell("seq", "sequential", "fib", workload_params=FIB, workers=1,
                      repetitions=[0]))
    found, _ = run_driver(target_python, cells, tmp_path)
    for record in found:
        assert_well_formed(record)
        assert record["status"] == "ok", record["message"]
        assert record["mem_error"] is None, record["mem_error"]
        assert record["mem_total_kb"] >= record["mem_before_kb"] * 0.9 > 0
