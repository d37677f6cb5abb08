"""How much of the host the rest of the world used while a repetition ran.

/proc/stat is host-wide (also inside a container), so the busy ticks of every CPU
during the repetition, minus the repetition's own CPU time, is what other processes
used; its steal column is what the hypervisor took. The cgroup's cpu.stat says how long
a CPU quota (docker --cpus) throttled us. A repetition is *contended* when any of them
is large enough to move its timing:

- others: more than OTHERS_CORES of a core on average, and at least MIN_SECONDS;
- steal: more than STEAL_SHARE of the window, and at least MIN_SECONDS;
- throttling: at least THROTTLED_SECONDS.

MIN_SECONDS is three clock ticks (10 ms each), so the tick granularity of /proc/stat
cannot flag a short repetition by itself. Standard library only (runs in the target).
"""

from __future__ import annotations

import os

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


def measure(before: Snapshot, after: Snapshot, own_cpu_s: float, window_s: float) -> dict[
        str, float | bool | None]:
    """The record's contention fields for one repetition."""
    others = steal = throttled = None
    if before.busy_s is not None and after.busy_s is not None:
        others = max(0.0, after.busy_s - before.busy_s - own_cpu_s)
    if before.steal_s is not None and after.steal_s is not None:
        steal = max(0.0, after.steal_s - before.steal_s)
    if before.throttled_s is not None and after.throttled_s is not None:
        throttled = max(0.0, after.throttled_s - before.throttled_s)
    window = max(window_s, 1e-9)
    contended = (
        (others is not None and others >= MIN_SECONDS and others / window > OTHERS_CORES)
        or (steal is not None and steal >= MIN_SECONDS and steal / window > STEAL_SHARE)
        or (throttled is not None and throttled >= THROTTLED_SECONDS)
    )
    return {"others_cpu_s": others, "steal_s": steal, "throttled_s": throttled,
            "contended": contended}
