"""What a run holds in memory: the proportional set size (PSS) of the cell process plus
every live worker process, read from /proc (issue 18).

PSS charges each shared page to the processes sharing it in equal parts, so a sum of PSS
counts a page once: forked workers' copy-on-write pages with the parent, spawned workers'
shared libraries. (RSS sums would count them once per process; `ru_maxrss` of the
children is the largest child reaped, never the workers together.) Threads, sub-
interpreters and the interpreter pool live in the cell process: their total is its PSS,
and the cost of a worker is the slope of that total over the worker count (the report's
`mib_per_worker`).

Models sample at two points of each measured run: at the ready gate (every worker started
and waiting for go) and at the end of the parallel section (after the last result, before
teardown). `Phases.memory` keeps the samples; `experiments.cell` records the larger total
as `mem_total_kb`, and why sampling failed as `mem_error` (never a 0). Sampling is kept
out of the timed spans: `Phases.memory_s` is the time it took, which the models leave out
of their phases and the cell out of `total_s`.

Reading /proc/PID/smaps_rollup costs about 0.1 ms per process on a small one (the kernel
walks its page tables): benchmarks/memory_workers.py measures it. Kernels before 4.14 lack
smaps_rollup; there the Pss lines of /proc/PID/smaps are summed (slower, same number).

Standard library only and lean (a cell process imports it): os and time only.
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False  # not typing's: see experiments/catalog.py
if TYPE_CHECKING:
    from collections.abc import Iterable

# Where the process files are: a constant so tests can point it at a path that cannot be
# read, as a sandbox that hides /proc does.
PROC = "/proc"


def pss_kb(pid: int) -> int:
    """The PSS of process `pid`, KiB. Raises OSError (no such process, /proc hidden or
    denied) or ValueError (a file without a Pss line)."""
    try:
        with open(f"{PROC}/{pid}/smaps_rollup", "rb") as f:
            text = f.read()
    except FileNotFoundError:
        if not os.path.isdir(f"{PROC}/{pid}"):
            raise
        text = b""  # a kernel before 4.14: no rollup, sum the mappings below
    for line in text.splitlines():
        if line.startswith(b"Pss:"):
            return int(line.split()[1])
    with open(f"{PROC}/{pid}/smaps", "rb") as f:
        total, seen = 0, False
        for line in f:
            if line.startswith(b"Pss:"):
                total += int(line.split()[1])
                seen = True
    if not seen:
        raise ValueError(f"{PROC}/{pid}/smaps has no Pss line")
    return total


def _why(exc: BaseException, pid: int) -> str:
    text = str(exc) or type(exc).__name__
    return f"reading the PSS of process {pid} failed: {type(exc).__name__}: {text}"


def total_kb(pids: Iterable[int] = ()) -> tuple[int | None, str]:
    """(PSS of this process plus the processes `pids`, KiB, "") or (None, why not)."""
    total = 0
    for pid in (os.getpid(), *pids):
        try:
            total += pss_kb(pid)
        except (OSError, ValueError) as exc:
            return None, _why(exc, pid)
    return total, ""


class Samples:
    """A run's memory samples, kept by its Phases (models/phases.py).

    A plain class with slots, like Phases: no dataclasses in a measurement process."""

    __slots__ = ("error", "seconds", "totals_kb")

    def __init__(self) -> None:
        self.totals_kb: list[int] = []
        self.error = ""
        self.seconds = 0.0  # time spent sampling, left out of the timed spans

    def take(self, pids: Iterable[int] = ()) -> None:
        """Sample this process plus the worker processes `pids` now."""
        t0 = time.perf_counter()
        total, error = total_kb(pids)
        if total is None:
            self.error = self.error or error
        else:
            self.totals_kb.append(total)
        self.seconds += time.perf_counter() - t0

    def peak_kb(self) -> int | None:
        """The largest sampled total; None when a sample failed or none was taken."""
        if self.error or not self.totals_kb:
            return None
        return max(self.totals_kb)


def fields(samples: Samples | None, before: tuple[int | None, str]) -> dict[str, object]:
    """The record's memory fields from a run's samples and the PSS sampled before it."""
    before_kb, before_error = before
    if samples is None:
        error = "the model took no memory sample"
        peak = None
    else:
        peak = samples.peak_kb()
        error = samples.error or ("" if peak is not None else "the model took no memory sample")
    return {
        "mem_total_kb": peak,
        "mem_before_kb": before_kb,
        "mem_error": (error or before_error) or None,
    }
