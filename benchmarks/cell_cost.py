"""What one measurement process costs against a bare interpreter start (issue 8 §5).

Times, interleaved and N times each, `python -E -s -c pass` and a trivial cell run the
way experiments/driver.py runs it (`python -E -s -m experiments.cell` with the cell's
JSON on stdin: sequential, `startup` with one task, one repetition, no warmup), and
prints both medians and their ratio. The goal is a ratio of at most 2.

    .venv/bin/python benchmarks/cell_cost.py --python ~/.pyenv/versions/3.13.0/bin/python
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CELL = {
    "run_id": "bench", "cell_id": "c-bench", "python": "bench", "model": "sequential",
    "model_config": {}, "workload": "startup", "workload_params": {"tasks": 1}, "workers": 1,
    "warmups": 0, "repetitions": [0], "timeout_s": 60,
}


def _seconds(args: list[str], stdin: str | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, input=stdin, capture_output=True, text=True, cwd=REPO,
                          check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {done.stderr.strip()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", required=True, help="the interpreter to measure")
    parser.add_argument("--runs", type=int, default=40, help="runs of each (default 40)")
    parser.add_argument("--model", default="sequential",
                        help="the trivial cell's model (default sequential)")
    args = parser.parse_args()
    cell = json.dumps({**CELL, "model": args.model})
    bare_cmd = [args.python, "-E", "-s", "-c", "pass"]
    cell_cmd = [args.python, "-E", "-s", "-m", "experiments.cell"]
    for _ in range(3):  # warm the page cache and the .pyc files
        _seconds(bare_cmd)
        _seconds(cell_cmd, cell)
    bare: list[float] = []
    cells: list[float] = []
    for _ in range(args.runs):  # interleaved, so drift hits both alike
        bare.append(_seconds(bare_cmd))
        cells.append(_seconds(cell_cmd, cell))
    b, c = statistics.median(bare), statistics.median(cells)
    print(f"{args.python}: python -c pass {b * 1e3:.1f} ms, cell process {c * 1e3:.1f} ms, "
          f"ratio {c / b:.2f} (medians of {args.runs}, interleaved)")


if __name__ == "__main__":
    main()
