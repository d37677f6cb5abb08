"""Shards: a deterministic part of a matrix's cells, balanced by expected cost.

`invoke experiment --shard I/N` runs shard I (1..N) of the N shards of the matrix. Every
shard computes the same assignment from the same cells, so N processes on N machines,
each told only its I, together run every cell exactly once, without talking to each
other. The assignment is greedy longest-processing-time: cells sorted by expected cost
(most expensive first, ties by cell id), each given to the shard with the least cost so
far (ties: the lowest index). It depends only on the cells, never on the order they come
in, the clock or the host.

The expected cost is a model, not a measurement: seconds of work per task of each
workload at its catalog defaults (COSTS, data), scaled by the workload's size parameter,
times the tasks, plus the workers' start-up per model (STARTUP_S), per repetition and
warmup, plus the fresh process each repetition gets. It only has to rank cells roughly
right: fib(30) costs about 4x fib(27), a spawn worker about 6x a fork one.

Other orchestrators (Swarm replicas, remote engines, Kubernetes Indexed Jobs) call
`parse` for a shard spec and `shard_cells` for the cells; `assign` gives every shard's.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

from experiments import catalog
from gilbench.errors import GilbenchError


@dataclass(frozen=True)
class Shard:
    index: int  # 1..count
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse(text: str) -> Shard:
    """'2/3' -> Shard(2, 3). The index counts from 1, as people count shards (and as
    `--shard 3/2` and `--shard 0/2` read as mistakes)."""
    left, slash, right = text.strip().partition("/")
    try:
        index, count = int(left), int(right)
    except ValueError:
        index = count = 0
        slash = ""
    if not slash:
        raise GilbenchError(f"--shard {text!r} must look like I/N with whole numbers, e.g. "
                            "--shard 1/2 for the first of two shards.")
    if count < 1:
        raise GilbenchError(f"--shard {text!r} names {count} shards; N must be at least 1.")
    if not 1 <= index <= count:
        raise GilbenchError(f"--shard {text!r} is out of range: I counts from 1 to N, so "
                            f"shards of {count} are 1/{count} to {count}/{count}.")
    return Shard(index, count)


def matrix_hash(text: str) -> str:
    """The identity of a matrix: sha256 of its text as given (the manifest's matrix.text)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Unit:
    """Seconds of one task at the catalog's default parameters, and how the workload's
    size parameter (its catalog "size") scales them: linearly, or by `growth` per step
    (fib(n) costs about 1.618x fib(n-1))."""

    task_s: float
    growth: float | None = None
    waits: bool = False  # sleeping tasks overlap whatever the model: divide by workers


# Per catalog workload (experiments/catalog.py); the defaults' comment there sizes a fib or
# nbody task at 20-50 ms. A workload missing here (a user workload) costs USER_UNIT.
COSTS: dict[str, Unit] = {
    "fib": Unit(0.03, growth=1.618),
    "nbody": Unit(0.03),
    "io": Unit(0.02, waits=True),  # exactly ms / 1000
    "alloc": Unit(0.02),
    "mixed": Unit(0.02, growth=1.618),
    "hash": Unit(0.02),
    "compress": Unit(0.03),
    "transfer": Unit(0.002),
    "shared": Unit(0.045),  # 200000 updates: about 45 ms here
    "startup": Unit(0.0),
    "crash": Unit(0.0),
    "hang": Unit(math.inf),  # costs its timeout
}
USER_UNIT = Unit(0.01)

# Seconds to start one worker, per model (and start method): what a worker costs before
# its first task.
STARTUP_S: dict[str, float] = {
    "sequential": 0.0, "threads": 0.0002, "subinterpreters": 0.015,
    "interpreter-pool": 0.02, "processes:fork": 0.01, "processes:forkserver": 0.03,
    "processes:spawn": 0.06,
}  # fmt: skip
PROCESS_S = 0.05  # the fresh interpreter each repetition runs in


def _task_s(workload: str, params: dict[str, Any]) -> float:
    unit = COSTS.get(workload, USER_UNIT)
    entry = catalog.workload_entry(workload) or {}
    size = entry.get("size")
    default = (entry.get("params") or {}).get(size) if size else None
    value = params.get(size) if size else None
    if not isinstance(value, int | float) or not isinstance(default, int | float) or not default:
        return unit.task_s
    if unit.growth is not None:
        return unit.task_s * unit.growth ** (value - default)
    return unit.task_s * value / default


def cell_cost(cell: dict[str, Any]) -> float:
    """The expected seconds a cell takes: every repetition in its own process, with its
    warmups, each running the workload's tasks after starting the workers."""
    workers = max(1, int(cell.get("workers") or 1))
    params = cell.get("workload_params") or {}
    tasks = params.get("tasks", 1)
    tasks = tasks if isinstance(tasks, int) and tasks > 0 else 1
    unit = COSTS.get(cell["workload"], USER_UNIT)
    work = tasks * _task_s(cell["workload"], params)
    if unit.waits:
        work /= workers
    model = cell["model"]
    method = (cell.get("model_config") or {}).get("start_method")
    startup = STARTUP_S.get(f"{model}:{method}", STARTUP_S.get(model, 0.01)) * workers
    timeout = float(cell.get("timeout_s") or math.inf)
    one = min(work + startup, timeout)  # a hang costs its timeout, not forever
    runs = len(cell.get("repetitions") or [0]) * (1 + int(cell.get("warmups") or 0))
    return runs * one + len(cell.get("repetitions") or [0]) * PROCESS_S


def assign(cells: list[dict[str, Any]], count: int) -> list[list[dict[str, Any]]]:
    """Every shard's cells (shard i at [i-1]), each in the order the cells were given."""
    if count < 1:
        raise GilbenchError(f"A matrix cannot be split into {count} shards; use 1 or more.")
    ranked = sorted(cells, key=lambda cell: (-cell_cost(cell), cell["cell_id"]))
    loads = [0.0] * count
    shard_of: dict[str, int] = {}
    for cell in ranked:
        lightest = min(range(count), key=lambda i: (loads[i], i))
        loads[lightest] += cell_cost(cell)
        shard_of[cell["cell_id"]] = lightest
    parts: list[list[dict[str, Any]]] = [[] for _ in range(count)]
    for cell in cells:
        parts[shard_of[cell["cell_id"]]].append(cell)
    return parts


def shard_cells(cells: list[dict[str, Any]], index: int, count: int) -> list[dict[str, Any]]:
    """The cells of shard `index` (1..count) of these cells."""
    if not 1 <= index <= count:
        raise GilbenchError(f"Shard {index}/{count} does not exist; shards of {count} are "
                            f"1/{count} to {count}/{count}.")
    return assign(cells, count)[index - 1]


def manifest_entry(cells: list[dict[str, Any]], shard: Shard, matrix_text: str,
                   seed: int) -> dict[str, Any]:
    """What a shard's manifest records (docs/run-format.md, "shard"): which shard, of
    which matrix, and the whole matrix's cells with the shard each belongs to, so a merge
    can name the cells of a shard that never came back."""
    parts = assign(cells, shard.count)
    return {
        "index": shard.index, "count": shard.count, "matrix_sha256": matrix_hash(matrix_text),
        "seed": seed, "matrix_cells": len(cells),
        "cost_s": round(sum(cell_cost(c) for c in parts[shard.index - 1]), 3),
        "cells": [{"cell_id": c["cell_id"], "shard": number, "python": c["python"],
                   "model": c["model"], "workload": c["workload"], "workers": c["workers"]}
                  for number, part in enumerate(parts, 1) for c in part],
    }
