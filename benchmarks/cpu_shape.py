"""The known shape on CPU-bound work, measured side by side in one run.

Expectation on a multi-core host: threads about 1x (the GIL), own-GIL sub-interpreters
and processes clearly above 1x, shared-GIL sub-interpreters about 1x. Prints speedups
over `sequential` (ratio of medians) for the parallel section and end to end. Never
pass/fail: timings on shared machines are noisy.

    .venv/bin/python benchmarks/cpu_shape.py --python 3.13.5 \\
        --python ~/.pyenv/versions/3.12.1/bin/python
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gilbench import backends, matrix, run, runfolder, targets
from gilbench.paths import REPO, default_cache_dir


class Medians:
    """Median of one field over the ok records of one model (and GIL setting)."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    def __call__(self, model: str, gil: str | None, key: str) -> float:
        return statistics.median(
            r[key] for r in self.records
            if r["model"] == model and (gil is None or r["model_config"].get("gil") == gil)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", default=[], help="build spec or path")
    parser.add_argument("--backend", default="docker", choices=backends.names())
    parser.add_argument("--n", type=int, default=27, help="fib(n) per task")
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repetitions", type=int, default=5)
    args = parser.parse_args()

    data = {
        "workers": [args.workers], "repetitions": args.repetitions, "warmups": 1,
        "timeout_s": 300,
        "models": {"sequential": {}, "threads": {}, "processes": {"start_method": "fork"},
                   "subinterpreters": {"gil": ["own", "shared"]}},
        "workloads": {"fib": {"n": args.n, "tasks": args.tasks}},
    }
    chosen = matrix.parse(data, name="cpu-shape")
    resolved = [targets.resolve(spec, args.backend, "pgo", default_cache_dir())
                for spec in args.python or ["3.12"]]
    limited = any(backends.for_target(t).applies_memory_limit for t in resolved)
    limits = run.Limits(cpuset="", memory="8g" if limited else None)
    run_dir = run.start(chosen, resolved, REPO / "results", limits, "benchmarks/cpu_shape.py",
                        lambda kind, payload: None)
    manifest = runfolder.read_manifest(run_dir)
    ok = [r for r in runfolder.read_records(run_dir).records if r["status"] == "ok"]
    records = [r for r in ok if not r["contended"]]  # as the report does
    print(f"run: {run_dir}   fib({args.n}) x {args.tasks} tasks, {args.workers} workers, "
          f"median of {args.repetitions} in rounds; {len(ok) - len(records)} of {len(ok)} "
          "repetitions contended (left out)")
    for pid, entry in manifest.pythons.items():
        mine = [r for r in records if r["python"] == pid]
        median = Medians(mine)
        seq_wall, seq_total = median("sequential", None, "wall_s"), median(
            "sequential", None, "total_s")
        print(f"\n{entry['label']}  (sequential: {seq_wall:.3f} s)")
        print(f"  {'model':<28} {'wall s':>8} {'speedup':>8} {'end-to-end':>11} {'startup s':>10}")
        for model, gil in [("threads", None), ("processes", None),
                           ("subinterpreters", "own"), ("subinterpreters", "shared")]:
            wall, total = median(model, gil, "wall_s"), median(model, gil, "total_s")
            name = f"{model} (gil={gil})" if gil else model
            print(f"  {name:<28} {wall:8.3f} {seq_wall / wall:7.2f}x {seq_total / total:10.2f}x"
                  f" {median(model, gil, 'startup_s'):10.4f}")


if __name__ == "__main__":
    main()
