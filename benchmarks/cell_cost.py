"""What one measurement process costs against a bare interpreter start (issue 8 §5).

Times, interleaved and N times each, `python -E -s -c pass` and a trivial cell run the
way experiments/driver.py runs it (`python -E -s -m experiments.cell` with the cell's
JSON on stdin: sequential, `startup` with one task, one repetition, no warmup), and
prints both medians and their ratio. The goal is a ratio of at most 2.

With --subinterp it measures instead what a sub-interpreter worker's start-up is made
of (issue 8 §6): own-GIL `subinterpreters` fib cells (catalog defaults) at 2 workers
with create = serial and concurrent, interleaved over fresh processes, beside
`sequential` for the end-to-end speedup; and, in fresh interpreters created one after
another, the time to create one and the time the worker's imports take inside it.

    .venv/bin/python benchmarks/cell_cost.py --python ~/.pyenv/versions/3.13.0/bin/python
    .venv/bin/python benchmarks/cell_cost.py --python ~/.pyenv/versions/3.13.0/bin/python \
        --subinterp --runs 6
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

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


def cell_cost(python: str, runs: int) -> None:
    cell = json.dumps(CELL)
    bare_cmd = [python, "-E", "-s", "-c", "pass"]
    cell_cmd = [python, "-E", "-s", "-m", "experiments.cell"]
    for _ in range(3):  # warm the page cache and the .pyc files
        _seconds(bare_cmd)
        _seconds(cell_cmd, cell)
    bare: list[float] = []
    cells: list[float] = []
    for _ in range(runs):  # interleaved, so drift hits both alike
        bare.append(_seconds(bare_cmd))
        cells.append(_seconds(cell_cmd, cell))
    b, c = statistics.median(bare), statistics.median(cells)
    print(f"{python}: python -c pass {b * 1e3:.1f} ms, cell process {c * 1e3:.1f} ms, "
          f"ratio {c / b:.2f} (medians of {runs}, interleaved)")


def _records(python: str, spec: dict[str, object]) -> list[dict[str, object]]:
    done = subprocess.run([python, "-E", "-s", "-m", "experiments.cell"],
                          input=json.dumps(spec), capture_output=True, text=True, cwd=REPO,
                          check=False)
    return [json.loads(line) for line in done.stdout.splitlines()]


# Run in the measured interpreter: N isolated interpreters, one after another; in each,
# the imports worker.SOURCE does (the version's queue module, experiments.subinterp.worker).
_IMPORTS = r"""
import os, sys, time
root, n = sys.argv[1], int(sys.argv[2])
r, w = os.pipe()
body = (
    "import time\nt0 = time.perf_counter()\nimport sys\n"
    f"sys.path.insert(0, {root!r})\nimport QUEUES\n"
    "from experiments.subinterp import worker\nimport os\n"
    f"os.write({w}, repr(time.perf_counter() - t0).encode() + b'\\n')\n"
)
if sys.version_info >= (3, 13):
    import _interpreters as low
    make = lambda: low.create(low.new_config("isolated"))
    run = lambda i: low.exec(i, body.replace("QUEUES", "_interpqueues"))
else:
    import _xxsubinterpreters as low
    make = lambda: low.create(isolated=True)
    run = lambda i: low.run_string(i, body.replace("QUEUES", "_xxinterpchannels"))
creates, imports = [], []
for _ in range(n):
    t0 = time.perf_counter()
    interp = make()
    creates.append(time.perf_counter() - t0)
    run(interp)
    imports.append(float(os.read(r, 100)))
    low.destroy(interp)
creates.sort()
imports.sort()
print(creates[n // 2], imports[n // 2])
"""


def subinterp(python: str, runs: int) -> None:
    from experiments.catalog import model_config, workload_params

    base = {**CELL, "workload": "fib", "workload_params": workload_params("fib", {}),
            "warmups": 1, "repetitions": [0, 1, 2]}
    cells: dict[str, dict[str, object]] = {"sequential": {**base, "model": "sequential"}}
    for create in ("serial", "concurrent"):
        config = model_config("subinterpreters", {"create": create})
        cells[create] = {**base, "model": "subinterpreters", "workers": 2,
                         "model_config": config}
    got: dict[str, list[dict[str, object]]] = {name: [] for name in cells}
    for _ in range(runs):  # interleaved: one process of each, in turn
        for name, spec in cells.items():
            got[name] += _records(python, spec)

    def median(name: str, key: str) -> float:
        # Contended repetitions (another process took CPU meanwhile) are left out, unless
        # every one was: then all are used, and the line says so.
        ok = [r for r in got[name] if r["status"] == "ok"]
        quiet = [r for r in ok if not r["contended"]] or ok
        return statistics.median(float(r[key]) for r in quiet)  # type: ignore[arg-type]

    seq = median("sequential", "total_s")
    print(f"{python}: own-GIL sub-interpreters, fib defaults, 2 workers "
          f"(medians of {runs} processes x 3 repetitions, interleaved)")
    for name in ("serial", "concurrent"):
        bad = [r["message"] for r in got[name] if r["status"] != "ok"]
        print(f"  create={name:10} startup_s {median(name, 'startup_s') * 1e3:6.1f} ms  "
              f"wall_s {median(name, 'wall_s') * 1e3:6.1f} ms  "
              f"total_s {median(name, 'total_s') * 1e3:6.1f} ms  "
              f"end-to-end speedup {seq / median(name, 'total_s'):.2f}"
              + (f"  ({len(bad)} not ok: {bad[0]})" if bad else "")
              + f"  [{sum(1 for r in got[name] if r['contended'])} contended left out]")
    wall = median("sequential", "wall_s")
    print(f"  sequential total_s {seq * 1e3:.1f} ms; steady-state speedup (wall_s) "
          f"serial {wall / median('serial', 'wall_s'):.2f}, "
          f"concurrent {wall / median('concurrent', 'wall_s'):.2f}")
    done = subprocess.run([python, "-E", "-s", "-c", _IMPORTS, str(REPO), "20"],
                          capture_output=True, text=True, cwd=REPO, check=True)
    create_s, import_s = map(float, done.stdout.split())
    print(f"  one isolated interpreter alone: create {create_s * 1e3:.1f} ms, "
          f"the worker's imports inside it {import_s * 1e3:.1f} ms (medians of 20)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", required=True, help="the interpreter to measure")
    parser.add_argument("--runs", type=int, default=40, help="runs of each (default 40)")
    parser.add_argument("--subinterp", action="store_true",
                        help="measure sub-interpreter creation and worker imports instead")
    args = parser.parse_args()
    if args.subinterp:
        subinterp(args.python, args.runs)
    else:
        cell_cost(args.python, args.runs)


if __name__ == "__main__":
    main()
