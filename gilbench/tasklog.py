"""What one orchestrated task printed (a Kubernetes pod, a Swarm task), sorted.

A task runs one shard's driver inside the image and prints, on stdout: a line of facts
about where it ran (POD_LINE), the probe (PROBE_LINE), the driver's records (bare JSON
objects, one a line) and how the driver ended (DONE_LINE). gilbench/k8s.py and
gilbench/swarm.py both read such logs; runfolder.py writes what they find.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from experiments import records as schema

# Prefixes of the lines a task prints besides records (bare JSON objects).
POD_LINE, PROBE_LINE, DONE_LINE = "gilbench-pod ", "gilbench-probe ", "gilbench-done "


@dataclass
class PodLog:
    """What one pod printed, sorted: its facts, the probe, records, and what ended it."""

    pod: dict[str, Any] = field(default_factory=dict)
    probe: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    done: tuple[int, str] | None = None  # the driver's exit status and when it ended
    damaged: int = 0  # JSON lines that were not valid records of this shard
    duplicates: int = 0


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def parse_log(text: str, run_id: str, expected: set[tuple[str, int]]) -> PodLog:
    """The pod's lines; stderr (the driver's diagnostics) is interleaved by `kubectl logs`
    and left out. A record counts once, only if it is of this shard's cells."""
    log = PodLog()
    seen: set[tuple[str, int]] = set()
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(POD_LINE):
            log.pod = _json_object(line.removeprefix(POD_LINE)) or {}
        elif line.startswith(PROBE_LINE):
            log.probe = _json_object(line.removeprefix(PROBE_LINE)) or {}
        elif line.startswith(DONE_LINE):
            status, _, when = line.removeprefix(DONE_LINE).partition(" ")
            log.done = (int(status) if status.lstrip("-").isdigit() else -1, when)
        elif line.startswith("{"):
            record = _json_object(line)
            if record is None or schema.problems(record) or record["run_id"] != run_id:
                log.damaged += record is not None
                continue
            key = (record["cell_id"], record["repetition"])
            if key not in expected:
                log.damaged += 1
            elif key in seen:
                log.duplicates += 1
            else:
                seen.add(key)
                log.records.append(record)
    return log
