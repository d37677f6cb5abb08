"""Building records (schema_version 1), by the cell and by the driver alike."""

from __future__ import annotations

import datetime
import json
import platform
import sys
from typing import Any, TextIO

SCHEMA_VERSION = 1

FROM_CELL = (
    "run_id",
    "cell_id",
    "python",
    "model",
    "model_config",
    "workload",
    "workload_params",
    "workers",
)

MEASUREMENTS = (
    "wall_s",
    "startup_s",
    "teardown_s",
    "total_s",
    "cpu_s",
    "peak_rss_kb",
    "tasks_done",
    "gil_enabled",
)


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def make_record(
    cell: dict[str, Any],
    repetition: int,
    status: str,
    message: str = "",
    *,
    api: str = "",
    transport: str | None = None,
    measurements: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One record; measurements not given are null."""
    record: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    record.update({key: cell.get(key) for key in FROM_CELL})
    record["repetition"] = repetition
    record["status"] = status
    record["message"] = message
    measured = measurements or {}
    record.update({key: measured.get(key) for key in MEASUREMENTS})
    record["api"] = api
    record["transport"] = transport
    record["python_version"] = platform.python_version()
    record["timestamp"] = now_iso()
    return record


def emit(record: dict[str, Any], stream: TextIO = sys.stdout) -> None:
    """One JSON line, flushed at once so the reader sees it even if we die next."""
    stream.write(json.dumps(record, sort_keys=False) + "\n")
    stream.flush()
