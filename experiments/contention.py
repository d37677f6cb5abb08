"""How much of the host the rest of the world used while a repetition ran.

/proc/stat is host-wide (also inside a container), so the busy ticks of every CPU
during the repetition, minus the repetition's own CPU time, is what other processes
used; its steal column is what the hypervisor took. The cgroup's cpu.stat says how long
a CPU quota (docker --cpus) throttled us. A repetition is *contended* when any of them
is large enough to move its timing:

- others: more than OTHERS_CORES of a core on average, and at least MIN_SECONDS;
- steal: more than STEAL_SHARE of the window, and at least MIN_SECONDS;
- throttling: at least THROTTLED_SECONDS;
- host-speed: the host-speed canaries timed right before and after the repetition differ
  by more than experiments/canary.py's MARGIN (3%): the physical host changed speed, which
  none of the counters above sees. The target knows only this fixed margin; the report
  widens it for an interpreter whose canary is noisy by nature (gilbench/report/hostspeed.py)
  but keeps `contended` as recorded, so retries and statistics choose the same records.
  Named by causes(), but not yet part of `contended`: see HOST_SPEED_CONTENDS.

MIN_SECONDS is three clock ticks (10 ms each), so the tick granularity of /proc/stat
cannot flag a short repetition by itself. Standard library only (runs in the target).
"""

from __future__ import annotations

import os

from experiments import canary

# Whether a swung canary alone makes a repetition contended (left out and retried). Not
# yet: on the shared 2-vCPU development hosts the 3% margin flagged 25 of 30 values under
# load, which would mark every run busy. Until the margin is calibrated on a quiet host
# and values are paired with their baseline (issue 19, parts 1 and 2), the canaries are
# recorded and the report gives their spread as the run's noise floor.
HOST_SPEED_CONTENDS = False
TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
OTHERS_CORES = 0.25
STEAL_SHARE = 0.10
# Three ticks, less a hair: tick sums are floats, and three of them must count as three.
MIN_SECONDS = 3 * TICK_S - 1e-6
THROTTLED_SECONDS = 0.001


class Snapshot:
    """Neither a dataclass nor a typing.NamedTuple: every measurement process imports
    this module, and dataclasses (inspect) or typing would cost it milliseconds."""

    __slots__ = ("busy_s", "steal_s", "throttled_s")

    def __init__(self, busy_s: float | None, steal_s: float | None,
                 throttled_s: float | None) -> None:
        self.busy_s = busy_s  # host-wide busy CPU seconds (user+nice+system+irq+softirq+steal)
        self.steal_s = steal_s
        self.throttled_s = throttled_s  # this cgroup's throttled time, under a CPU quota


def _proc_stat() -> tuple[float | None, float | None]:
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = handle.readline().split()
    except OSError:
        return None, None
    if not fields or fields[0] != "cpu" or len(fields) < 9:
        return None, None
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
    return (user + nice + system + irq + softirq + steal) * TICK_S, steal * TICK_S


def _cpu_stat_file() -> str | None:
    """This process's cgroup cpu.stat: v2 (unified) or v1 (cpu controller). os.path, not
    pathlib: every measurement process imports this module, so it stays cheap."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            candidate = os.path.join("/sys/fs/cgroup", path.lstrip("/"), "cpu.stat")
        elif "cpu" in controllers.split(","):
            candidate = os.path.join("/sys/fs/cgroup", controllers, path.lstrip("/"), "cpu.stat")
        else:
            continue
        if os.path.isfile(candidate):
            return candidate
    return None


_CPU_STAT = _cpu_stat_file()


def _throttled() -> float | None:
    if _CPU_STAT is None:
        return None
    try:
        with open(_CPU_STAT, encoding="utf-8") as handle:
            values = dict(line.split() for line in handle.read().splitlines() if " " in line)
    except (OSError, ValueError):
        return None
    if "throttled_usec" in values:  # cgroup v2
        return int(values["throttled_usec"]) / 1e6
    if "throttled_time" in values:  # cgroup v1, nanoseconds
        return int(values["throttled_time"]) / 1e9
    return None


def snapshot() -> Snapshot:
    busy, steal = _proc_stat()
    return Snapshot(busy, steal, _throttled())


def causes(others_cpu_s: float | None, steal_s: float | None, throttled_s: float | None,
           window_s: float, canary_before_s: float | None = None,
           canary_after_s: float | None = None) -> list[str]:
    """Why a repetition counts as contended: some of "others", "steal", "throttling" and
    "host-speed", in that order; empty when quiet. The host calls it on a record's fields
    to name the cause (the window is the record's total_s)."""
    window = max(window_s, 1e-9)
    found = []
    if others_cpu_s is not None and others_cpu_s >= MIN_SECONDS and (
            others_cpu_s / window > OTHERS_CORES):
        found.append("others")
    if steal_s is not None and steal_s >= MIN_SECONDS and steal_s / window > STEAL_SHARE:
        found.append("steal")
    if throttled_s is not None and throttled_s >= THROTTLED_SECONDS:
        found.append("throttling")
    if canary.swung(canary_before_s, canary_after_s):
        found.append("host-speed")
    return found


def measure(before: Snapshot, after: Snapshot, own_cpu_s: float, window_s: float,
            canary_before_s: float | None = None, canary_after_s: float | None = None,
            ) -> dict[str, float | bool | None]:
    """The record's contention fields for one repetition (the canaries' own fields are
    the caller's: experiments/cell.py)."""
    others = steal = throttled = None
    if before.busy_s is not None and after.busy_s is not None:
        others = max(0.0, after.busy_s - before.busy_s - own_cpu_s)
    if before.steal_s is not None and after.steal_s is not None:
        steal = max(0.0, after.steal_s - before.steal_s)
    if before.throttled_s is not None and after.throttled_s is not None:
        throttled = max(0.0, after.throttled_s - before.throttled_s)
    found = causes(others, steal, throttled, window_s, canary_before_s, canary_after_s)
    contended = bool(found) and (HOST_SPEED_CONTENDS or found != ["host-speed"])
    return {"others_cpu_s": others, "steal_s": steal, "throttled_s": throttled,
            "contended": contended}
