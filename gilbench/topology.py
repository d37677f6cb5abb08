"""The host's CPU topology from sysfs, and where workers should go on it (as BenchExec does).

Linux describes every logical CPU under /sys/devices/system/cpu/cpuN/topology/:
thread_siblings_list (core_cpus_list on newer kernels) names the logical CPUs that share its
physical core (SMT siblings), core_id and physical_package_id name the core and the socket;
/sys/devices/system/node/nodeN/cpulist names the CPUs of each NUMA node.

Two SMT siblings share one core's execution units, so two CPU-bound workers on siblings
run at roughly the speed of one core, and a speedup limit counted in logical CPUs is too
generous. The placement here therefore takes one logical CPU per physical core before any
sibling, and keeps to one NUMA node while that node has cores enough.

Where sysfs says nothing (no /sys in a sandbox, a file missing for one CPU), each logical
CPU counts as its own physical core, and `fallback` says so: the limit is then the old,
logical one rather than a guess.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SYSFS = Path("/sys")
_CPU_DIR = re.compile(r"cpu(\d+)")
_NODE_DIR = re.compile(r"node(\d+)")


def parse_cpulist(text: str) -> set[int]:
    """The kernel's CPU list syntax ("0-3,8-11", "0-15:2" with a stride) as CPU numbers.

    Raises ValueError on anything else."""
    cpus: set[int] = set()
    for part in (p.strip() for p in text.strip().split(",")):
        if not part:
            continue
        span, _, stride = part.partition(":")
        first, dash, last = span.partition("-")
        low, high = int(first), int(last) if dash else int(first)
        if high < low or (stride and int(stride) < 1):
            raise ValueError(f"bad CPU list {text!r}")
        cpus.update(range(low, high + 1, int(stride) if stride else 1))
    return cpus


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, ValueError):
        return None


def _list(path: Path) -> set[int] | None:
    text = _read(path)
    if text is None:
        return None
    try:
        return parse_cpulist(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class Topology:
    """Logical CPU -> its physical core (the sorted tuple of its SMT siblings) and NUMA node."""

    core_of: dict[int, tuple[int, ...]]
    node_of: dict[int, int]
    fallback: list[str] = field(default_factory=list)  # what sysfs did not say, in words

    @property
    def cpus(self) -> set[int]:
        return set(self.core_of)

    def cores(self, cpus: Iterable[int] | None = None) -> list[tuple[int, ...]]:
        """The physical cores a CPU set spans, each as the set's CPUs on it, lowest first.

        A CPU sysfs does not describe counts as its own core."""
        chosen = self.cpus if cpus is None else set(cpus)
        groups: dict[tuple[int, ...], list[int]] = {}
        for cpu in sorted(chosen):
            groups.setdefault(self.core_of.get(cpu, (cpu,)), []).append(cpu)
        return sorted((tuple(members) for members in groups.values()), key=lambda c: c[0])

    def physical_cores(self, cpus: Iterable[int] | None = None) -> int:
        return len(self.cores(cpus))

    def smt_siblings(self, cpus: Iterable[int] | None = None) -> list[tuple[int, ...]]:
        """The cores of which the set holds more than one logical CPU."""
        return [core for core in self.cores(cpus) if len(core) > 1]

    def nodes(self, cpus: Iterable[int] | None = None) -> list[int]:
        chosen = self.cpus if cpus is None else set(cpus)
        return sorted({self.node_of.get(cpu, 0) for cpu in chosen})

    def placement(self, cpus: Iterable[int] | None = None) -> list[int]:
        """The set's logical CPUs in the order workers should take them.

        First one CPU of every physical core, then the second sibling of each, and so on;
        within each round the NUMA node with the most physical cores comes first (ties: the
        lower node), so the first n CPUs stay in one node whenever it has n cores."""
        cores = self.cores(cpus)
        per_node: dict[int, list[tuple[int, ...]]] = {}
        for core in cores:
            per_node.setdefault(self.node_of.get(core[0], 0), []).append(core)
        node_order = sorted(per_node, key=lambda node: (-len(per_node[node]), node))
        order: list[int] = []
        depth = max((len(core) for core in cores), default=0)
        for level in range(depth):
            for node in node_order:
                order += [core[level] for core in per_node[node] if len(core) > level]
        return order

    def one_per_core(self, cpus: Iterable[int] | None = None) -> set[int]:
        """The lowest logical CPU of each physical core the set spans: no two SMT siblings."""
        return {core[0] for core in self.cores(cpus)}

    def choose(self, cpus: Iterable[int] | None, count: int) -> list[int]:
        """count CPUs for count busy workers: the first of placement()."""
        return self.placement(cpus)[:max(0, count)]

    def summary(self, cpus: Iterable[int] | None = None) -> dict[str, Any]:
        """What the manifest records about a CPU set on this topology."""
        chosen = self.cpus if cpus is None else set(cpus)
        cores = self.cores(chosen)
        siblings = self.smt_siblings(chosen)
        return {
            "cpus": format_cpulist(chosen),
            "logical": len(chosen),
            "physical_cores": len(cores),
            "smt": bool(siblings),
            "threads_per_core": max((len(core) for core in cores), default=0),
            "numa_nodes": len(self.nodes(chosen)),
            # every core as its CPUs, so a report can count the cores of any cpuset later
            "core_cpus": [format_cpulist(set(core)) for core in self.cores(self.cpus)],
            "source": "; ".join(self.fallback) if self.fallback else "sysfs",
        }


def format_cpulist(cpus: Iterable[int]) -> str:
    """{0, 1, 2, 5} -> "0-2,5"."""
    parts: list[list[int]] = []
    for cpu in sorted(set(cpus)):
        if parts and cpu == parts[-1][1] + 1:
            parts[-1][1] = cpu
        else:
            parts.append([cpu, cpu])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in parts)


def read(root: Path = SYSFS, cpus: Iterable[int] | None = None) -> Topology:
    """The topology under a sysfs root (a parameter, so tests can build fake trees).

    cpus: the logical CPUs to describe (default: every cpuN folder, else the online list).
    """
    cpu_root = root / "devices" / "system" / "cpu"
    listed: set[int] = set()
    with contextlib.suppress(OSError):
        listed = {int(m.group(1)) for p in cpu_root.iterdir()
                  if (m := _CPU_DIR.fullmatch(p.name))}
    if not listed:
        listed = _list(cpu_root / "online") or set()
    wanted = set(cpus) if cpus is not None else listed
    fallback: list[str] = []
    core_of: dict[int, tuple[int, ...]] = {}
    by_ids: dict[tuple[str, str], set[int]] = {}
    undescribed: set[int] = set()
    for cpu in sorted(wanted):
        topo = cpu_root / f"cpu{cpu}" / "topology"
        siblings = _list(topo / "thread_siblings_list") or _list(topo / "core_cpus_list")
        if siblings and cpu in siblings:
            core_of[cpu] = tuple(sorted(siblings))
            continue
        core_id, package = _read(topo / "core_id"), _read(topo / "physical_package_id")
        if core_id is not None and package is not None:
            by_ids.setdefault((package, core_id), set()).add(cpu)
        else:
            undescribed.add(cpu)
    for members in by_ids.values():  # siblings known only by (package, core_id)
        for cpu in members:
            core_of[cpu] = tuple(sorted(members))
    for cpu in sorted(undescribed):  # a described sibling may still name its core
        named = [core for core in core_of.values() if cpu in core]
        core_of[cpu] = named[0] if named else (cpu,)
        if named:
            undescribed.discard(cpu)
    if undescribed:
        fallback.append(
            f"sysfs does not describe the core of CPU(s) {format_cpulist(undescribed)}, so "
            "each counts as its own physical core"
        )
    node_of: dict[int, int] = {}
    node_root = root / "devices" / "system" / "node"
    try:
        node_dirs = [(int(m.group(1)), p) for p in node_root.iterdir()
                     if (m := _NODE_DIR.fullmatch(p.name))]
    except OSError:
        node_dirs = []
    for node, path in sorted(node_dirs):
        for cpu in _list(path / "cpulist") or set():
            node_of.setdefault(cpu, node)
    if wanted and not node_of:
        fallback.append("sysfs names no NUMA nodes, so all CPUs count as one node")
    for cpu in wanted:
        node_of.setdefault(cpu, min(node_of.values(), default=0))
    if not wanted:
        fallback.append("sysfs lists no CPUs")
    return Topology(core_of, {cpu: node_of[cpu] for cpu in wanted}, fallback)


def from_summary(summary: object) -> Topology | None:
    """A Topology from a recorded summary()'s core_cpus (a manifest's host.topology), so a
    report counts the physical cores of a cpuset as the measuring host had them."""
    if not isinstance(summary, dict) or not isinstance(summary.get("core_cpus"), list):
        return None
    core_of: dict[int, tuple[int, ...]] = {}
    try:
        for text in summary["core_cpus"]:
            members = tuple(sorted(parse_cpulist(str(text))))
            for cpu in members:
                core_of[cpu] = members
    except ValueError:
        return None
    return Topology(core_of, dict.fromkeys(core_of, 0)) if core_of else None
