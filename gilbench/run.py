"""Runs: plan the cells, start one runner per python, stream records to disk, resume."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gilbench import __version__, hostinfo, store
from gilbench.errors import GilbenchError
from gilbench.matrix import Matrix, expand
from gilbench.paths import EXPERIMENTS_DIR
from gilbench.runners import DockerRunner, NativeRunner, Runner
from gilbench.targets import Target, unique_labels

# on_event(kind, payload): "start" (records expected), "python" (label), "record" (dict).
RunEvents = Callable[[str, Any], None]


@dataclass(frozen=True)
class Limits:
    cpuset: str  # docker --cpuset-cpus
    memory: str  # docker --memory


def experiments_hash() -> str:
    """Identity of the target code: a resumed run must use the same."""
    digest = hashlib.sha256()
    for path in sorted(EXPERIMENTS_DIR.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(EXPERIMENTS_DIR)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _runner(target: Target, run_dir: Path, limits: Limits) -> Runner:
    log = run_dir / "driver.log"
    if target.kind == "docker":
        return DockerRunner(target, log, limits.cpuset, limits.memory)
    return NativeRunner(target, log)


def _python_entry(target: Target, label: str, probe: dict[str, Any]) -> dict[str, Any]:
    build = target.build or {}
    return {
        "label": label,
        "kind": target.kind,
        "version": probe.get("python_version"),
        "variant": build.get("variant", "native"),
        "gil_disabled": probe.get("gil_disabled_build"),
        "config_args": probe.get("config_args"),
        "cc": probe.get("cc"),
        "sha256": build.get("sha256"),
        "image": target.image,
        "executable": target.executable,
        "probe": probe,
        "build": target.build,
    }


def _labelled(target: Target, probe: dict[str, Any]) -> Target:
    """Native paths are named by what they are: '3.12.1 native', '3.13.0t native'."""
    if target.kind != "native" or target.build is not None:
        return target
    free = "t" if probe.get("gil_disabled_build") else ""
    return replace(target, label=f"{probe.get('python_version')}{free} native")


def _check_probe(target: Target, probe: dict[str, Any]) -> None:
    version = str(probe.get("python_version", "0"))
    if tuple(int(p) for p in version.split(".")[:2]) < (3, 12):
        raise GilbenchError(
            f"--python {target.executable} is Python {version}; gilbench experiments need "
            "CPython 3.12 or newer."
        )


def start(
    matrix: Matrix, targets: list[Target], results_dir: Path, limits: Limits, command: str,
    on_event: RunEvents,
) -> Path:
    """A new run folder with its manifest; then every cell of the matrix."""
    labels = unique_labels(targets)
    cells = expand(matrix, labels)
    run_id = store.new_run_id()
    run_dir = results_dir / run_id
    manifest: dict[str, Any] = {
        "schema_version": store.MANIFEST_SCHEMA_VERSION,
        "run_id": run_id,
        "tool_version": __version__,
        "experiments_hash": experiments_hash(),
        "started_at": store.now(),
        "finished_at": None,
        "resumed_at": [],
        "command": command,
        "matrix": {"name": matrix.name, "path": str(matrix.path) if matrix.path else None,
                   "text": matrix.text, "description": matrix.description},
        "cells": cells,
        "limits": {"cpuset": limits.cpuset, "memory": limits.memory},
        "backend": {},
        "host": hostinfo.collect(),
        "pythons": {},
    }
    _execute(run_dir, manifest, targets, cells, limits, on_event, create=True)
    return run_dir


def pending_cells(manifest: dict[str, Any], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cells of a run with the repetitions that have no record yet."""
    done: dict[str, set[int]] = {}
    for record in records:
        done.setdefault(record.get("cell_id", ""), set()).add(record.get("repetition", -1))
    pending = []
    for cell in manifest["cells"]:
        missing = [r for r in cell["repetitions"] if r not in done.get(cell["cell_id"], set())]
        if missing:
            pending.append({**cell, "repetitions": missing})
    return pending


def resume(run_dir: Path, limits: Limits, on_event: RunEvents) -> Path:
    """Finish an interrupted run: only repetitions without a record run again."""
    manifest = store.read_manifest(run_dir)
    if manifest["experiments_hash"] != experiments_hash():
        raise GilbenchError(
            f"experiments/ changed since run {manifest['run_id']} started, so its records "
            "would mix two versions of the harness; start a new run instead."
        )
    pending = pending_cells(manifest, store.read_records(run_dir))
    targets = [
        Target(pid, entry["label"], entry["kind"], entry["executable"], entry.get("image"),
               entry.get("build"))
        for pid, entry in manifest["pythons"].items()
    ]
    manifest["resumed_at"].append(store.now())
    manifest["finished_at"] = None
    _execute(run_dir, manifest, targets, pending, limits, on_event, create=False)
    return run_dir


def _execute(
    run_dir: Path, manifest: dict[str, Any], targets: list[Target],
    cells: list[dict[str, Any]], limits: Limits, on_event: RunEvents, create: bool,
) -> None:
    with ExitStack() as stack:
        runners: dict[str, Runner] = {}
        if create:
            run_dir.mkdir(parents=True)
        try:
            probed = []
            for target in targets:
                runner = stack.enter_context(_runner(target, run_dir, limits))
                probe = runner.probe()
                _check_probe(target, probe)
                runners[target.id] = runner
                probed.append((target, probe))
                manifest["backend"][target.id] = runner.describe()
            labels = unique_labels([_labelled(target, probe) for target, probe in probed])
            for target, probe in probed:
                manifest["pythons"][target.id] = _python_entry(target, labels[target.id], probe)
        except BaseException:
            if create:  # no manifest yet: leave nothing that looks like a run
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        store.write_manifest(run_dir, manifest)
        on_event("start", sum(len(cell["repetitions"]) for cell in cells))
        writer = store.RecordWriter(run_dir)
        stack.callback(writer.close)
        run_id = manifest["run_id"]
        for target in targets:
            mine = [{**cell, "run_id": run_id} for cell in cells if cell["python"] == target.id]
            if not mine:
                continue
            on_event("python", labels[target.id])
            _stream(runners[target.id], mine, writer, run_dir, on_event)
    manifest["finished_at"] = store.now()
    store.write_manifest(run_dir, manifest)


def _stream(
    runner: Runner, cells: list[dict[str, Any]], writer: store.RecordWriter, run_dir: Path,
    on_event: RunEvents,
) -> None:
    expected = {(c["cell_id"], r): c for c in cells for r in c["repetitions"]}
    for line in runner.run_cells(cells):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # not a record: the driver writes diagnostics to driver.log
        key = (record.get("cell_id"), record.get("repetition"))
        if not isinstance(record, dict) or key not in expected:
            continue
        del expected[key]
        writer.append(record)
        on_event("record", record)
    # The driver ended on its own with repetitions unreported: it died. Those are results.
    for (_, repetition), cell in expected.items():
        record = _driver_died(cell, repetition, run_dir)
        writer.append(record)
        on_event("record", record)


def _driver_died(cell: dict[str, Any], repetition: int, run_dir: Path) -> dict[str, Any]:
    keys = ("run_id", "cell_id", "python", "model", "model_config", "workload",
            "workload_params", "workers")
    return {
        "schema_version": store.RECORD_SCHEMA_VERSION, **{k: cell[k] for k in keys},
        "repetition": repetition, "status": "crashed",
        "message": f"the driver stopped before this repetition ran (see {run_dir}/driver.log)",
        "wall_s": None, "startup_s": None, "teardown_s": None, "total_s": None, "cpu_s": None,
        "peak_rss_kb": None, "tasks_done": None, "gil_enabled": None, "api": "",
        "transport": None, "python_version": "", "timestamp": store.now(),
    }
