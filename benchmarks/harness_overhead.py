"""Per-cell overhead of the harness: what a cell costs beyond what it measures.

Runs N trivial cells (sequential `startup` with 1..N tasks, one repetition, no warmup:
distinct cells, so each gets its own fresh process) and compares the interval between
consecutive records arriving at the orchestrator with the time each cell reports
(total_s). The difference is the fresh process, imports, JSON and the record's fsync;
container start-up and the probe happen once per run and are not included.

    .venv/bin/python benchmarks/harness_overhead.py --python 3.13.5 --cells 40
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gilbench import backends, matrix, run, runfolder, targets
from gilbench.paths import default_cache_dir


class Arrivals:
    """Run events -> the moment each record reached the orchestrator."""

    def __init__(self, times: list[float]) -> None:
        self.times = times

    def __call__(self, kind: str, payload: Any) -> None:
        if kind == "record":
            self.times.append(time.perf_counter())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", default=[], help="build spec or path")
    parser.add_argument("--backend", default="docker", choices=backends.names())
    parser.add_argument("--cells", type=int, default=40)
    args = parser.parse_args()

    data = {"repetitions": 1, "warmups": 0, "timeout_s": 60, "models": {"sequential": {}},
            "workloads": {"startup": {"tasks": list(range(1, args.cells + 1))}}}
    chosen = matrix.parse(data, name="overhead")
    for spec in args.python or ["3.12"]:
        target = targets.resolve(spec, args.backend, "pgo", default_cache_dir())
        arrivals: list[float] = []
        with tempfile.TemporaryDirectory() as results:
            limits = run.Limits(
                "", "2g" if backends.for_target(target).applies_memory_limit else None)
            run_dir = run.start(chosen, [target], Path(results), limits,
                                "benchmarks/harness_overhead.py", Arrivals(arrivals))
            measured = [r["total_s"] for r in runfolder.read_records(run_dir).records]
            label = runfolder.read_manifest(run_dir).pythons[target.id]["label"]
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        per_cell = statistics.median(gaps)
        inside = statistics.median(measured)
        print(f"{label:<16} ({target.kind}): {per_cell * 1000:6.1f} ms per cell, of which "
              f"the cell measured {inside * 1000:5.2f} ms -> harness overhead "
              f"{(per_cell - inside) * 1000:6.1f} ms per cell ({args.cells} cells)")


if __name__ == "__main__":
    main()
