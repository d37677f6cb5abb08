"""Host metadata for the manifest: small best-effort functions, one per concern.

Each returns None when this host cannot tell (no /sys cpufreq in a VM, no /proc/cpuinfo
model line on some ARM boards, no cgroup v2 files, an unreadable /etc/os-release), and
collect() never fails because one of them did.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gilbench import topology as _topology


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace").strip()
    except (OSError, ValueError):
        return None


def _field(path: str, key: str, sep: str = ":") -> str | None:
    """The value of the first `key<sep>value` line of a file, if there is one."""
    for line in (_read(path) or "").splitlines():
        name, found, value = line.partition(sep)
        if found and name.strip() == key:
            return value.strip()
    return None


def cpu_model() -> str | None:
    return _field("/proc/cpuinfo", "model name") or platform.processor() or None


def cpu_governor() -> str | None:
    return _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")


def os_name() -> str | None:
    value = _field("/etc/os-release", "PRETTY_NAME", "=")
    return value.strip('"') if value else None


def mem_total_kb() -> int | None:
    value = (_field("/proc/meminfo", "MemTotal") or "").split()
    return int(value[0]) if value and value[0].isdigit() else None


def cores() -> int | None:
    """CPUs this process may run on (its affinity), else the online count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def topology() -> dict[str, Any]:
    """The CPUs this process may use as physical cores, SMT and NUMA nodes (sysfs), with
    every core's CPUs, so a report can count the physical cores of any cpuset of the run."""
    try:
        usable: set[int] | None = set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = None
    return _topology.read(cpus=usable).summary()


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def collect() -> dict[str, Any]:
    probes: dict[str, Callable[[], Any]] = {
        "hostname": socket.gethostname,
        "cpu_model": cpu_model,
        "cores": cores,
        "cores_online": os.cpu_count,
        "topology": topology,
        "governor": cpu_governor,
        "loadavg": loadavg,
        "kernel": platform.release,
        "os": os_name,
        "machine": platform.machine,
        "cgroup_cpu_max": lambda: _read("/sys/fs/cgroup/cpu.max"),
        "cgroup_memory_max": lambda: _read("/sys/fs/cgroup/memory.max"),
        "mem_total_kb": mem_total_kb,
    }
    info: dict[str, Any] = dict.fromkeys(probes)
    for key, probe in probes.items():
        with contextlib.suppress(Exception):  # best effort: one odd file costs one field
            info[key] = probe()
    return info
