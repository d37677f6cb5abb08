"""`invoke doctor`: small best-effort checks, one per concern, each with a way out; with
--python, CPython's own tests against that interpreter (gilbench/selfcheck.py)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gilbench import engine, hostinfo, topology
from gilbench.errors import GilbenchError
from gilbench.paths import dir_problem

if TYPE_CHECKING:
    from rich.table import Table

    from gilbench.targets import Target


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "ok", "warn" or "fail"
    detail: str
    fix: str = ""


def docker_info() -> dict[str, Any] | None:
    try:
        info: dict[str, Any] = engine.connect(timeout=5).info()
    except Exception:
        return None
    return info


def check_docker(info: dict[str, Any] | None) -> Check:
    if info is None:
        return Check("docker engine", "fail", "no Docker engine answers",
                     "start it as root (`dockerd &`) or use --backend native")
    return Check("docker engine", "ok",
                 f"server {info.get('ServerVersion')}, storage {info.get('Driver')}, "
                 f"root {info.get('DockerRootDir')}")


def check_cache_disk(cache_dir: Path, need_gib: float = 5.0) -> Check:
    """The cache folder must be (or become) a writable folder, with room for builds."""
    if (problem := dir_problem(cache_dir)) is not None:
        return Check("disk (cache)", "fail", f"cache folder unusable: {problem}",
                     "point GILBENCH_CACHE_DIR (or gilbench.cache_dir) at a writable folder")
    return check_disk(cache_dir, need_gib, name="disk (cache)")


def check_disk(where: Path, need_gib: float = 5.0, name: str = "disk space") -> Check:
    probe = where
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free / 2**30
    if free < need_gib:
        return Check(name, "fail", f"{free:.1f} GiB free at {where}",
                     f"free at least {need_gib:.0f} GiB: one build needs about 2 GiB")
    return Check(name, "ok", f"{free:.1f} GiB free at {where}")


def check_cores() -> Check:
    cores = len(os.sched_getaffinity(0))
    if cores < 2:
        return Check("cores", "warn", f"{cores} usable core",
                     "parallel models need at least 2 cores to show any speedup")
    return Check("cores", "ok", f"{cores} usable cores")


def check_topology(root: Path = topology.SYSFS, cpus: set[int] | None = None) -> Check:
    """Physical cores, SMT and NUMA nodes of the usable CPUs; SMT siblings among them are
    a warning: two workers on siblings share one core and measure as one."""
    usable = set(os.sched_getaffinity(0)) if cpus is None else cpus
    topo = topology.read(root, cpus=usable)
    siblings = topo.smt_siblings(usable)
    nodes = len(topo.nodes(usable))
    detail = (f"{len(usable)} usable logical CPUs on {topo.physical_cores(usable)} physical "
              f"cores, SMT {'on' if siblings else 'off'}, {nodes} NUMA node"
              f"{'s' if nodes != 1 else ''}")
    if topo.fallback:
        detail += f" ({'; '.join(topo.fallback)})"
    if siblings:
        pairs = ", ".join(topology.format_cpulist(core) for core in siblings[:3])
        more = f" and {len(siblings) - 3} more" if len(siblings) > 3 else ""
        return Check("cpu topology", "warn",
                     f"{detail}; SMT siblings share a core: {pairs}{more}",
                     "gilbench places a run on one logical CPU per physical core unless "
                     "--cpuset names siblings; or turn SMT off (echo off > "
                     "/sys/devices/system/cpu/smt/control)")
    return Check("cpu topology", "ok", detail)


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
    if (problem := dir_problem(source_cache)) is not None:
        return Check("source cache", "fail", f"unusable: {problem}",
                     "point gilbench.source_cache (or GILBENCH_CACHE_DIR) at a writable folder")
    tarballs = sorted(p.name for p in source_cache.glob("Python-*.tar.*"))
    if not tarballs:
        return Check("source cache", "warn", f"{source_cache} holds no tarballs",
                     "fine if python.org is reachable; otherwise put Python-X.Y.Z.tar.xz there "
                     "or use --source FILE")
    return Check("source cache", "ok", f"{source_cache}: {', '.join(tarballs)}")


def _swap_used_kib() -> int | None:
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        return int(info["SwapTotal"].split()[0]) - int(info["SwapFree"].split()[0])
    except (OSError, KeyError, ValueError):
        return None


def check_noise(seconds: float = 1.0) -> Check:
    """The host's noise floor now, by the same rules that mark a repetition contended:
    other processes' CPU, steal and CPU-quota throttling over a quiet second, and swap."""
    import time

    from experiments import contention

    own0 = time.process_time()
    before = contention.snapshot()
    time.sleep(seconds)
    after = contention.snapshot()
    measured = contention.measure(before, after, time.process_time() - own0, seconds)
    others, steal, throttled = (measured["others_cpu_s"], measured["steal_s"],
                                measured["throttled_s"])
    parts = [f"others {others / seconds:.2f} cores" if isinstance(others, float) else
             "others unknown (no /proc/stat)"]
    if isinstance(steal, float):
        parts.append(f"steal {steal / seconds:.0%}")
    if isinstance(throttled, float):
        parts.append(f"throttled {throttled * 1000:.0f} ms")
    swap = _swap_used_kib()
    if swap is not None:
        parts.append(f"swap in use {swap // 1024} MiB")
    detail = ", ".join(parts) + f" over {seconds:g} s"
    if measured["contended"]:
        return Check("noise", "warn", detail + ": repetitions measured now would be contended",
                     "stop other work on this host (or give gilbench its own cores with "
                     "--cpuset) before measuring")
    if swap:
        return Check("noise", "warn", detail, "swapping makes timings lie: free memory")
    return Check("noise", "ok", detail + ": fit for measuring")


def run_all(cache_dir: Path, source_cache: Path) -> list[Check]:
    info = docker_info()
    checks = [check_docker(info), check_cache_disk(cache_dir)]
    if info and info.get("DockerRootDir"):  # where the images go
        checks.append(check_disk(Path(info["DockerRootDir"]), need_gib=10, name="disk (docker)"))
    more: list[Callable[[], Check]] = [
        check_cores, check_topology, check_load, check_noise, check_governor, check_mmdebstrap,
        lambda: check_source_cache(source_cache),
    ]
    return checks + [check() for check in more]


def check_python(spec: str, backend: str, variant: str, cache_dir: Path,
                 jobs: int | None = None) -> tuple[Target, dict[str, Any], Path | None]:
    """CPython's own tests against one interpreter: a build (docker image or native
    prefix) or a path. Only reports: `invoke build --check` stores a result on a build."""
    import re
    from datetime import UTC, datetime

    from gilbench import selfcheck, targets

    if jobs is not None and jobs < 1:
        raise GilbenchError(f"--jobs {jobs} must be at least 1, e.g. --jobs 2.")
    target = targets.resolve(spec, backend, variant, cache_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", target.label)
    # regrtest's output is kept where the cache allows; the check runs either way.
    log = (cache_dir / "logs" / f"selfcheck-doctor-{name}-{stamp}.log"
           if dir_problem(cache_dir) is None else None)
    return target, selfcheck.run(target, jobs, log), log


def selfcheck_table(result: dict[str, Any]) -> Table:
    """A self-check result as a short table: a row per suite, then the totals."""
    from rich import box
    from rich.table import Table

    colours = {"passed": "green", "failed": "red", "missing": "yellow", "skipped": "yellow"}
    table = Table(title=f"CPython's own tests: {result['status']} "
                  f"({result.get('python_version')}, -j{result.get('jobs')}, "
                  f"{result.get('seconds')} s)", box=box.SIMPLE_HEAD, pad_edge=False,
                  caption="* a subset of the suite (gilbench/selfcheck.py names it)")
    table.add_column("suite", no_wrap=True)
    table.add_column("status", no_wrap=True, min_width=7)
    for header in ("tests", "passed", "failed", "skipped"):
        table.add_column(header, justify="right", no_wrap=True, min_width=len(header))
    for suite in result["suites"]:
        colour = colours.get(suite["status"], "white")
        counts = ([str(suite[key]) for key in ("tests", "passed", "failed", "skipped")]
                  if suite["status"] != "missing" else ["-"] * 4)
        table.add_row(suite["name"] + (" *" if suite.get("match") else ""),
                      f"[{colour}]{suite['status']}[/{colour}]", *counts)
    totals = result["totals"]
    table.add_row("total", result["status"],
                  *(str(totals[key]) for key in ("tests", "passed", "failed", "skipped")))
    return table
