"""Where an orchestrated task ran, told by the task itself (a Kubernetes pod, a Swarm task).

Shipped into the task with hostinfo.py and topology.py (standard library only, like this
file) and run there: `report()` prints one POD_LINE of JSON, which gilbench/tasklog.py
reads back on the host.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

from gilbench import hostinfo

# What a task needs of gilbench/ to run report(): shipped under host/gilbench/.
FILES = ("__init__.py", "hostinfo.py", "topology.py", "taskhost.py")


def _read(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return None


def report(prefix: str, node: str | None, renamed: str, **facts: Any) -> None:
    """Print the task's facts after `prefix`. `node` (the machine, where the orchestrator
    says) becomes the hostname merge tells hosts apart by, so shards on one node are one
    host; the container's own hostname is kept as `renamed`."""
    host = hostinfo.collect()
    host[renamed], host["hostname"] = host.get("hostname"), node or host.get("hostname")
    print(prefix + json.dumps({
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **facts, "node": node, "host": host,
        "cpuset": _read("/sys/fs/cgroup/cpuset.cpus.effective")  # cgroup v2, then v1
                  or _read("/sys/fs/cgroup/cpuset/cpuset.effective_cpus"),
        "cpu_max": hostinfo.cgroup_cpu_max(),  # cgroup v2 or v1, as "quota period"
        "affinity": sorted(os.sched_getaffinity(0)),
    }), flush=True)
