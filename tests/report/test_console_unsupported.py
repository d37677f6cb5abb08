"""The run's console: a model the build lacks is one line per model and python, not one
per cell (issue 18: 75 identical interpreter-pool lines on a 3.13 run)."""

from __future__ import annotations

from gilbench.console import RunProgress

POOL = "concurrent.futures.InterpreterPoolExecutor needs Python 3.14; this is 3.13."


def test_unsupported_model_is_one_line_per_model_and_python() -> None:
    progress = RunProgress()
    lines = []
    for python, label in (("docker:a", "3.13.5-pgo"), ("docker:b", "3.13.5-freethreaded")):
        progress("python", label)
        for cell in range(25):
            for repetition in range(3):
                record = {"cell_id": f"{python}-{cell}", "python": python, "repetition":
                          repetition, "model": "interpreter-pool", "status": "unsupported",
                          "message": POOL}
                lines.append(progress._problem(record, "unsupported", "cell"))
    shown = [line for line in lines if line]
    assert shown == [
        f"  interpreter-pool on 3.13.5-pgo: unsupported: {POOL} (not run; its other cells too)",
        f"  interpreter-pool on 3.13.5-freethreaded: unsupported: {POOL} (not run; its other "
        "cells too)",
    ]


def test_other_failures_stay_once_per_cell() -> None:
    progress = RunProgress()
    crashed = [{"cell_id": f"c{n}", "python": "p", "model": "subinterpreters",
                "status": "crashed", "message": "killed by SIGSEGV"} for n in (1, 1, 2)]
    shown = [progress._problem(r, "crashed", r["cell_id"]) for r in crashed]
    assert shown == ["  c1: crashed: killed by SIGSEGV", "", "  c2: crashed: killed by SIGSEGV"]
