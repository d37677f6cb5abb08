"""Helpers for the report tests: the checked-in fixture runs, and tiny hand-made runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
RUNS = FIXTURES / "runs"
RUN_A = RUNS / "20261125T130000Z-3f2a"
RUN_B = RUNS / "20261126T090000Z-7c1d"
PYTHON = "native:/usr/bin/python3.13"


def manifest(run_id: str = "20261125T000000Z-test", **overrides: Any) -> dict[str, Any]:
    """A minimal manifest following docs/run-format.md, one GIL build."""
    data: dict[str, Any] = {
        "schema_version": 1,
        "run_id": run_id,
        "tool_version": "0.1.0",
        "experiments_hash": "ab" * 32,
        "started_at": "2026-11-25T00:00:00+00:00",
        "finished_at": "2026-11-25T00:01:00+00:00",
        "resumed_at": [],
        "command": "invoke experiment --matrix tiny",
        "matrix": {"name": "tiny", "path": "experiments/matrices/tiny.toml", "text": "x = 1\n"},
        "cells": [],
        "backend": {"name": "native"},
        "host": {"hostname": "h", "cpu_model": "Test CPU", "cores": 2, "governor": None,
                 "loadavg": [0.0, 0.0, 0.0], "kernel": "6.1.0", "os": "Debian 12",
                 "cgroup_cpu_max": None, "cgroup_memory_max": None, "mem_total_kb": 1000},
        "pythons": {
            PYTHON: {"label": "3.13.0", "kind": "native", "version": "3.13.0", "variant": "native",
                     "gil_disabled": False, "config_args": "'--prefix=/usr'", "cc": "gcc",
                     "sha256": None, "image": None, "executable": "/usr/bin/python3.13",
                     "build": None},
        },
    }  # fmt: skip
    data.update(overrides)
    return data


def record(
    model: str, workers: int, repetition: int, wall: float | None, **overrides: Any
) -> dict[str, Any]:
    """One schema-1 record of fib; ok with plausible measurements unless overridden."""
    ok = wall is not None
    data: dict[str, Any] = {
        "schema_version": 1, "run_id": "20261125T000000Z-test",
        "cell_id": f"c-{model}-{workers}", "python": PYTHON, "model": model,
        "model_config": {"gil": "own"} if model == "subinterpreters" else {},
        "workload": "fib", "workload_params": {"n": 24, "tasks": 8}, "workers": workers,
        "repetition": repetition, "status": "ok" if ok else "crashed",
        "message": "" if ok else "killed by SIGSEGV",
        "wall_s": wall, "startup_s": 0.0 if ok else None, "teardown_s": 0.0 if ok else None,
        "total_s": wall, "cpu_s": wall, "peak_rss_kb": 10000 if ok else None,
        "tasks_done": 8 if ok else None, "gil_enabled": True if ok else None,
        "api": "threading", "transport": None, "python_version": "3.13.0",
        "timestamp": "2026-11-25T00:00:01.000+00:00",
    }  # fmt: skip
    data.update(overrides)
    return data


def write_run(folder: Path, run_manifest: dict[str, Any], records: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps(run_manifest), encoding="utf-8")
    text = "".join(json.dumps(r) + "\n" for r in records)
    (folder / "records.jsonl").write_text(text, encoding="utf-8")
    return folder
