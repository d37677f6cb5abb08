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


CGROUP = Path("/sys/fs/cgroup")
SELF_CGROUP = "/proc/self/cgroup"


def _cgroup_dirs(controller: str) -> list[tuple[int, Path]]:
    """(cgroup version, folder) of this process's cgroup and its ancestors, innermost
    first, in the v2 hierarchy and in v1's `controller` hierarchy where the host has it:
    a limit on any of them (a systemd slice's CPUQuota=, a pod's) applies. In a container
    with its own cgroup namespace the path is "/", the container's own cgroup."""
    paths: dict[str, str] = {}
    for line in (_read(SELF_CGROUP) or "").splitlines():
        _, names, path = [*line.split(":", 2), "", ""][:3]
        for name in names.split(",") if names else [""]:
            paths[name] = path
    found = []
    for version, root, where in ((2, CGROUP, paths.get("")),
                                 (1, CGROUP / controller, paths.get(controller))):
        if where:
            folder = root / where.lstrip("/")
            found += [(version, f) for f in [folder, *folder.parents][:len(Path(where).parts)]]
    return found


def cgroup_cpu_max() -> str | None:
    """The tightest CPU quota over this cgroup and its ancestors as cgroup v2's cpu.max
    ("quota period", v1's cfs_quota_us/cfs_period_us alike); "max" where none limits;
    None where the host has no such files."""
    tightest: tuple[float, str] | None = None
    for version, folder in _cgroup_dirs("cpu"):
        if version == 2:
            text = _read(str(folder / "cpu.max"))
        else:
            quota, period = (_read(str(folder / f"cpu.cfs_{n}_us")) for n in ("quota", "period"))
            text = f"{'max' if quota == '-1' else quota} {period}" if quota and period else None
        if text is None:
            continue
        quota, _, period = text.partition(" ")
        cpus = float(quota) / float(period) if quota != "max" else float("inf")
        if tightest is None or cpus < tightest[0]:
            tightest = (cpus, text)
    return tightest[1] if tightest else None


def cgroup_memory_max() -> str | None:
    """The tightest memory limit in bytes over this cgroup and its ancestors (v2
    memory.max, v1 memory.limit_in_bytes, whose "unlimited" is a number near 2**63)."""
    values = [_read(str(folder / ("memory.max" if version == 2 else "memory.limit_in_bytes")))
              for version, folder in _cgroup_dirs("memory")]
    limits = [int(v) for v in values if v and v.isdigit() and int(v) < 1 << 62]
    if limits:
        return str(min(limits))
    return "max" if any(values) else None


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
        "cgroup_cpu_max": cgroup_cpu_max,
        "cgroup_memory_max": cgroup_memory_max,
        "mem_total_kb": mem_total_kb,
    }
    info: dict[str, Any] = dict.fromkeys(probes)
    for key, probe in probes.items():
        with contextlib.suppress(Exception):  # best effort: one odd file costs one field
            info[key] = probe()
    return info
