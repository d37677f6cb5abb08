"""Every task in a loop in the main thread: the baseline every speedup is over."""

from __future__ import annotations

import time

from experiments import memory, workloads
from experiments.models.phases import Phases

TYPE_CHECKING = False  # not typing's: see experiments/catalog.py
if TYPE_CHECKING:
    from typing import Any


def unsupported(config: dict[str, Any]) -> str | None:
    return None


def api(config: dict[str, Any]) -> str:
    return "sequential"


def transport(config: dict[str, Any]) -> str | None:
    return "direct call"


def run(workload: str, params: dict[str, Any], workers: int, config: dict[str, Any]) -> Phases:
    # `workers` is ignored on purpose: there is exactly one, the main thread.
    payload = workloads.make_payload(params) if workloads.needs_payload(workload) else None
    start = time.perf_counter()
    results = [workloads.run_task(workload, params, payload) for _ in range(params["tasks"])]
    phases = Phases(0.0, time.perf_counter() - start, 0.0, results)
    # No ready gate: one sample, after the last result (and after the clock stopped).
    phases.memory = memory.Samples()
    phases.memory.take()
    return phases
