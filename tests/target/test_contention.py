"""Issue 8: a real CPU burner started during a real cell marks its repetitions contended;
the contention fields follow the record definition."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from driver_runs import assert_well_formed, cell, run_driver

BURN = "import time\nwhile True:\n    pass\n"


def test_a_cpu_burner_marks_the_repetitions_contended(target_python: Path,
                                                      tmp_path: Path) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    # One burner per CPU the cell may use: whatever the cell runs on, others take the CPU.
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in cpus]
    try:
        time.sleep(0.5)
        cells = [cell("seq", "sequential", "fib", workers=1, repetitions=list(range(6)),
                      workload_params={"n": 27, "tasks": 2}),
                 cell("thr", "threads", "fib", workers=2, repetitions=list(range(6)),
                      workload_params={"n": 27, "tasks": 2})]
        records, _ = run_driver(target_python, cells, tmp_path)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    assert len(records) == 12
    for record in records:
        assert_well_formed(record)
        assert record["status"] == "ok", record
    flagged = [r for r in records if r["contended"]]
    assert len(flagged) >= 0.95 * len(records), [
        (r["total_s"], r["cpu_s"], r["others_cpu_s"]) for r in records]
    for record in flagged:
        assert record["others_cpu_s"] >= 0.25 * record["total_s"]


def test_contention_fields_are_recorded(target_python: Path, tmp_path: Path) -> None:
    records, _ = run_driver(target_python, [cell("io", "threads", "io", repetitions=[0, 1],
                                                 workload_params={"ms": 20, "tasks": 2})],
                            tmp_path)
    for record in records:
        assert_well_formed(record)
        assert isinstance(record["others_cpu_s"], float) and record["others_cpu_s"] >= 0
        assert isinstance(record["steal_s"], float) and record["steal_s"] >= 0
        assert record["throttled_s"] is None or record["throttled_s"] >= 0
        assert isinstance(record["contended"], bool)
    assert json.dumps(records)  # plain JSON, no NaN
