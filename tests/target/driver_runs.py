"""Running the real driver under a real interpreter, and checking record shapes."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[2]

def import_catalog() -> ModuleType:
    """experiments.catalog as the host imports it (the repo root on sys.path)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module("experiments.catalog")


def cell(cell_id: str, model: str, workload: str, **overrides: Any) -> dict[str, Any]:
    """A small cell spec: few repetitions, small sizes, so tests stay quick."""
    spec: dict[str, Any] = {
        "run_id": "test-run",
        "cell_id": cell_id,
        "python": "native:test",
        "model": model,
        "model_config": {},
        "workload": workload,
        "workload_params": {},
        "workers": 2,
        "warmups": 0,
        "repetitions": [0, 1],
        "timeout_s": 60,
    }
    spec.update(overrides)
    return spec


def run_driver(
    python: Path, cells: list[dict[str, Any]], tmp_path: Path, timeout: float = 600
) -> tuple[list[dict[str, Any]], str]:
    """Run `python -m experiments.driver` on these cells; return its records and stderr."""
    cells_file = tmp_path / "cells.jsonl"
    cells_file.write_text("".join(json.dumps(c) + "\n" for c in cells))
    done = subprocess.run(
        [str(python), "-E", "-s", "-m", "experiments.driver", str(cells_file)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()], done.stderr


def by_cell(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault(record["cell_id"], []).append(record)
    return grouped


def assert_well_formed(record: dict[str, Any]) -> None:
    """Valid by the one record definition (experiments/records.py); measurements present
    when ok, null otherwise."""
    from experiments import records

    assert records.problems(record) == [], (records.problems(record), record)
    assert record["schema_version"] == records.SCHEMA_VERSION
    assert record["timestamp"].endswith("+00:00")
    for key in records.MEASUREMENTS:
        assert (record[key] is not None) == (record["status"] == "ok"), (key, record)
    if record["status"] == "ok":
        assert record["message"] == ""
        assert record["tasks_done"] == record["workload_params"].get("tasks", 8)
        assert record["total_s"] >= record["wall_s"] >= 0
    else:
        assert record["message"]
