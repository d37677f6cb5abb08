"""The per-host view of a merged run (gilbench/merge.py): which host measured what, under
which CPU limits, and how busy it was; and the warning for hosts that ran under a CPU
quota, whose throttling distorts parallel timings. Runs that are no merge get neither."""

from __future__ import annotations

from typing import Any

from gilbench.report.document import Block, Heading, Paragraph, Table
from gilbench.report.load import RunData

HEADERS = ["host", "cpu model", "cores", "cpuset", "cpu quota (cpu.max)", "runs (shard)",
           "cells measured", "records", "contended ok records", "throttled s"]  # fmt: skip


def _by_host(run: RunData) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    hosts: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for run_id, entry in (run.manifest.merge.get("sources") or {}).items():
        hosts.setdefault(str(entry.get("host")), []).append((run_id, entry))
    return hosts


def _quota(entries: list[dict[str, Any]]) -> str:
    values = sorted({str(e.get("cgroup_cpu_max")) for e in entries if e.get("cgroup_cpu_max")})
    quotas = sorted({e["cpu_quota"] for e in entries if e.get("cpu_quota")})
    text = ", ".join(values) or "-"
    return text + (f" = {', '.join(f'{q:g}' for q in quotas)} CPUs" if quotas else "")


def host_blocks(run: RunData) -> list[Block]:
    """A table, one row per host, of a merged run; [] for any other run."""
    merge = run.manifest.merge
    if not merge:
        return []
    facts = merge.get("hosts") or {}
    rows = []
    for host, sources in sorted(_by_host(run).items()):
        info = facts.get(host) or {}
        entries = [entry for _, entry in sources]
        contention = [entry.get("contention") or {} for entry in entries]
        ok = sum(int(c.get("ok") or 0) for c in contention)
        contended = sum(int(c.get("contended") or 0) for c in contention)
        cpusets = sorted({str(v) for e in entries for v in (e.get("cpusets") or {}).values()
                          if v})
        runs = ", ".join(f"{run_id}" + (f" ({e['shard']['index']}/{e['shard']['count']})"
                                        if e.get("shard") else "") for run_id, e in sources)
        rows.append([
            host, str(info.get("cpu_model") or "-"),
            f"{info.get('cores', '-')} of {info.get('cores_online', '-')}",
            ", ".join(cpusets) or "-", _quota(entries), runs,
            str(sum(int(e.get("cells_measured") or 0) for e in entries)),
            str(sum(int(c.get("records") or 0) for c in contention)),
            f"{contended} of {ok} ({contended / ok:.0%})" if ok else "-",
            f"{sum(float(c.get('throttled_s') or 0) for c in contention):.3g}",
        ])
    qualified = ("Each python is named with its host (label @ host), so a cell measured on "
                 "two hosts is two groups everywhere in this report, never one average."
                 if merge.get("host_qualified") else "All runs measured on one host.")
    blocks: list[Block] = [
        Heading(2, "Hosts"),
        Paragraph(f"This run merges {len(merge.get('sources') or {})} runs. {qualified} "
                  "Contended records are ok records measured while other processes, steal "
                  "or a CPU quota took the CPU; the statistics leave them out."),
        Table(HEADERS, rows),
    ]
    if merge.get("mixed"):
        blocks.append(Paragraph("Merged with --allow-mixed although they differ: "
                                + "; ".join(merge["mixed"]) + "."))
    return blocks


def quota_warnings(run: RunData) -> list[str]:
    """One line per host of a merged run that ran under a CPU quota (or was throttled)."""
    found = []
    for host, sources in sorted(_by_host(run).items()):
        entries = [entry for _, entry in sources]
        throttled = sum(float((e.get("contention") or {}).get("throttled_s") or 0)
                        for e in entries)
        if not any(e.get("cpu_quota") for e in entries) and not throttled:
            continue
        found.append(
            f"Host {host} ran its shards under a CPU quota (cpu.max {_quota(entries)}; "
            f"{throttled:.3g} s throttled) rather than on an exclusive cpuset: quota "
            "throttling stalls every worker at once and distorts parallel timings; give "
            "each shard whole CPUs (--cpuset; Kubernetes: requests = limits under the CPU "
            "Manager's static policy).")
    return found
