"""Record and manifest schema versions, and the upgrades from older record versions.

Like pyperf's file formats: a reader accepts its own version and every older one it has
an upgrade for, and refuses anything newer, because it cannot know what a newer field means.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

RECORD_SCHEMA_VERSION = 1
MANIFEST_SCHEMA_VERSION = 1

STATUSES = ("ok", "invalid", "crashed", "timeout", "unsupported")

# Fields every record of the current version carries (docs/contract.md).
RECORD_FIELDS = (
    "schema_version", "run_id", "cell_id", "python", "model", "model_config", "workload",
    "workload_params", "workers", "repetition", "status", "message", "wall_s", "startup_s",
    "teardown_s", "total_s", "cpu_s", "peak_rss_kb", "tasks_done", "gil_enabled", "api",
    "transport", "python_version", "timestamp",
)  # fmt: skip

Record = dict[str, Any]


def _v0_to_v1(record: Record) -> Record:
    """v0 (the draft before docs/contract.md) timed no teardown, so it had no teardown_s
    or total_s, and no transport; end-to-end time is unknown rather than startup + wall."""
    upgraded = dict(record)
    upgraded.setdefault("teardown_s", None)
    upgraded.setdefault("total_s", None)
    upgraded.setdefault("transport", None)
    upgraded["schema_version"] = 1
    return upgraded


# version -> function turning a record of that version into one of the next version.
UPGRADES: dict[int, Callable[[Record], Record]] = {0: _v0_to_v1}


def upgrade_record(record: Record) -> Record:
    """Bring a record of an older, known schema version up to RECORD_SCHEMA_VERSION."""
    version = record["schema_version"]
    while version < RECORD_SCHEMA_VERSION:
        record = UPGRADES[version](record)
        version = record["schema_version"]
    return record


def oldest_readable_record_version() -> int:
    """The oldest version from which an unbroken chain of upgrades reaches the current one."""
    version = RECORD_SCHEMA_VERSION
    while version - 1 in UPGRADES:
        version -= 1
    return version
