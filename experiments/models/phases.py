"""What every model's run returns, and how tasks are shared among workers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Phases:
    """Seconds spent in each phase of one run, and the results it produced."""

    startup_s: float
    wall_s: float
    teardown_s: float
    results: list[Any] = field(default_factory=list)
    # Set by models whose workers are not this process's children to reap
    # (forkserver's are the server's): CPU and peak RSS the workers reported.
    worker_cpu_s: float | None = None
    worker_peak_rss_kb: int | None = None


def split_tasks(tasks: int, workers: int) -> list[int]:
    """Strong scaling: `tasks` in total, as evenly as possible, e.g. 8 over 3 -> 3, 3, 2."""
    base, extra = divmod(tasks, workers)
    return [base + (1 if i < extra else 0) for i in range(workers)]


def owner_of_each_task(counts: list[int]) -> list[int]:
    """The worker index for each task in order, interleaved so payloads reach all early."""
    owners: list[int] = []
    left = list(counts)
    while any(left):
        for worker, n in enumerate(left):
            if n:
                owners.append(worker)
                left[worker] -= 1
    return owners
