"""`invoke doctor`: small best-effort checks, one per concern, each with a way out."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gilbench import engine, hostinfo


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "ok", "warn" or "fail"
    detail: str
    fix: str = ""


def check_docker() -> Check:
    try:
        client = engine.connect(timeout=5)
    except Exception as exc:
        return Check("docker engine", "fail", str(exc),
                     "start it as root (`dockerd &`) or use --backend native")
    info = client.info()
    return Check("docker engine", "ok",
                 f"server {info.get('ServerVersion')}, storage {info.get('Driver')}, "
                 f"root {info.get('DockerRootDir')}")


def check_disk(cache_dir: Path, need_gib: float = 5.0) -> Check:
    probe = cache_dir if cache_dir.exists() else Path.home()
    free = shutil.disk_usage(probe).free / 2**30
    if free < need_gib:
        return Check("disk space", "fail", f"{free:.1f} GiB free at {probe}",
                     f"free at least {need_gib:.0f} GiB: one build needs about 2 GiB")
    return Check("disk space", "ok", f"{free:.1f} GiB free at {probe}")


def check_cores() -> Check:
    cores = len(os.sched_getaffinity(0))
    if cores < 2:
        return Check("cores", "warn", f"{cores} usable core",
                     "parallel models need at least 2 cores to show any speedup")
    return Check("cores", "ok", f"{cores} usable cores")


def check_load() -> Check:
    cores = len(os.sched_getaffinity(0))
    load1 = os.getloadavg()[0]
    if load1 > 0.5 * cores:
        return Check("load", "warn", f"load average {load1:.2f} on {cores} cores",
                     "stop other work before measuring: timings on a busy host are noisy")
    return Check("load", "ok", f"load average {load1:.2f} on {cores} cores")


def check_governor() -> Check:
    governor = hostinfo.cpu_governor()
    if governor in (None, "performance"):
        return Check("cpu governor", "ok", governor or "not exposed (VM or container)")
    return Check("cpu governor", "warn", governor,
                 "set the performance governor for stable timings (cpupower frequency-set -g "
                 "performance)")


def check_mmdebstrap() -> Check:
    if shutil.which("mmdebstrap"):
        return Check("mmdebstrap", "ok", "can make a base image without a registry")
    return Check("mmdebstrap", "warn", "missing",
                 "apt-get install mmdebstrap (needed only where no registry answers)")


def check_source_cache(source_cache: Path) -> Check:
    tarballs = sorted(p.name for p in source_cache.glob("Python-*.tar.*"))
    if not tarballs:
        return Check("source cache", "warn", f"{source_cache} holds no tarballs",
                     "fine if python.org is reachable; otherwise put Python-X.Y.Z.tar.xz there "
                     "or use --source FILE")
    return Check("source cache", "ok", f"{source_cache}: {', '.join(tarballs)}")


def run_all(cache_dir: Path, source_cache: Path) -> list[Check]:
    checks: list[Callable[[], Check]] = [
        check_docker, lambda: check_disk(cache_dir), check_cores, check_load,
        check_governor, check_mmdebstrap, lambda: check_source_cache(source_cache),
    ]
    return [check() for check in checks]
