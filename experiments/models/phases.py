"""What every model's run returns, and how tasks are shared among workers."""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: see experiments/catalog.py
if TYPE_CHECKING:
    from typing import Any

    from experiments.memory import Samples


class Phases:
    """Seconds spent in each phase of one run, and the results it produced.

    A plain class, not a dataclass: dataclasses imports inspect, about 8 ms of every
    measurement process's start-up.
    """

    __slots__ = ("memory", "results", "startup_s", "teardown_s", "wall_s", "worker_cpu_s",
                 "worker_peak_rss_kb")

    def __init__(self, startup_s: float, wall_s: float, teardown_s: float,
                 results: list[Any] | None = None) -> None:
        self.startup_s = startup_s
        self.wall_s = wall_s
        self.teardown_s = teardown_s
        self.results: list[Any] = [] if results is None else results
        # Set by models whose workers are not this process's children to reap
        # (forkserver's are the server's): CPU and peak RSS the workers reported.
        self.worker_cpu_s: float | None = None
        self.worker_peak_rss_kb: int | None = None
        # PSS samples at the ready gate and the end of the parallel section
        # (experiments/memory.py); their cost is in none of the phases above.
        self.memory: Samples | None = None

    def __repr__(self) -> str:
        return (f"Phases(startup_s={self.startup_s!r}, wall_s={self.wall_s!r}, "
                f"teardown_s={self.teardown_s!r}, results={self.results!r})")


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
