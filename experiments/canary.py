"""The host-speed canary (issue 19, part 2): a fixed piece of work timed right before and
right after every measured value, in the measuring process, on the CPU the value ran on.

/proc/stat cannot see the physical host under a VM change speed (a vCPU sharing its core
with another tenant some of the time: docs/ENVIRONMENT.md, "Noise on these machines");
only a timing of fixed work shows it. The work: xor, add and mask on small ints (-5..256
are cached objects, and every intermediate stays in 0..256), iterating tuples made once:
no allocation, no I/O, one thread, nothing a garbage collection or the value's own data
can change.

A canary is the median of SUB_RUNS sub-runs, each at least MIN_SUB_RUN_S long. How many
rounds a sub-run needs is calibrated once per process (calibrate(), before anything is
timed), and every canary is given in seconds per UNIT_ROUNDS rounds of the loop, so
canaries of different processes of one interpreter are comparable whatever each process
calibrated. A free-threaded build runs the loop slower by nature: compare canaries only
within one interpreter.

A value whose canaries before and after differ by more than MARGIN (the larger over the
smaller, less one) is flagged: the host changed speed while it ran (swung()). The host
side, which sees the whole run, widens that margin for an interpreter whose canary is
noisy by nature (gilbench/report/hostspeed.py). Standard library only; imports nothing
but os and time (every measurement process imports this module).
"""

from __future__ import annotations

import os
import time

SUB_RUNS = 5
MIN_SUB_RUN_S = 0.002
# Calibrate to this much, so that a host a little faster later still gives >= 2 ms.
TARGET_SUB_RUN_S = 0.00225
MARGIN = 0.03
INNER = tuple(range(256))  # small ints: cached objects, sums masked back into 0..255
UNIT_ROUNDS = 512  # the unit a canary is given in: 512 x 256 = 131072 loop steps

_rounds: tuple[None, ...] = ()


def _spin(rounds: tuple[None, ...]) -> int:
    x = 0
    inner = INNER
    for _ in rounds:
        for i in inner:
            x = ((x ^ i) + 1) & 255  # every intermediate in 0..256: cached ints
    return x


def _time(rounds: tuple[None, ...]) -> float:
    clock = time.perf_counter
    start = clock()
    _spin(rounds)
    return clock() - start


def calibrate() -> int:
    """Choose, once per process, how many rounds make one sub-run >= MIN_SUB_RUN_S even
    at the fastest speed seen now (the least of three timings). Returns the rounds."""
    global _rounds
    n = 16
    while _time((None,) * n) < TARGET_SUB_RUN_S / 8:
        n *= 2
    probe = (None,) * n
    fastest = min(_time(probe) for _ in range(3))
    _rounds = (None,) * max(16, int(n * TARGET_SUB_RUN_S / max(fastest, 1e-9)) + 1)
    return len(_rounds)


def measure() -> float:
    """One canary: the median of SUB_RUNS sub-runs, in seconds per UNIT_ROUNDS rounds."""
    if not _rounds:
        calibrate()
    rounds = _rounds
    times = sorted(_time(rounds) for _ in range(SUB_RUNS))
    return times[SUB_RUNS // 2] * UNIT_ROUNDS / len(rounds)


def cpu() -> int | None:
    """The CPU this process runs on now (Linux), else None."""
    getcpu = getattr(os, "sched_getcpu", None)
    try:
        return int(getcpu()) if getcpu is not None else None
    except OSError:
        return None


def difference(before: float, after: float) -> float:
    """How far apart two canaries are: the larger over the smaller, less one, signed: >0
    when the host got slower (after took longer), <0 when it got faster."""
    low = min(before, after)
    if low <= 0:
        return 0.0
    return (after - before) / low


def swung(before: float | None, after: float | None, margin: float = MARGIN) -> bool:
    """Whether the host's speed changed by more than `margin` across one value."""
    if before is None or after is None:
        return False
    return abs(difference(before, after)) > margin
