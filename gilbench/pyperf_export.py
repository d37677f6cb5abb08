"""A run's cells as pyperf benchmarks: one BenchmarkSuite JSON file that `python -m pyperf
stats | hist | compare_to` read.

Each cell is one benchmark, named by a readable label that stays the same across runs of
the same python, model, workload and workers (so compare_to pairs them). Its values are
the wall_s (the parallel section) of the cell's usable repetitions, counted as the report
counts them (runfolder.samples_by_cell: each repetition's first quiet ok attempt), one
pyperf run per repetition. The file is built with pyperf's own classes, not by hand.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyperf

from gilbench import archive, runfolder
from gilbench.errors import GilbenchError

SUFFIX = ".pyperf.json"


@dataclass(frozen=True)
class PyperfExport:
    path: Path
    benchmarks: int  # cells written
    left_out: int  # cells without a usable repetition
    cells: int  # cells the run planned

    def note(self) -> str:
        """'' when every cell was written; else how many were left out and why."""
        if not self.left_out:
            return ""
        return (f"{self.left_out} of {self.cells} cells were left out: they have no usable "
                "repetition (no quiet ok one), so pyperf has no value to show.")


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _args(params: dict[str, Any]) -> str:
    if not params:
        return ""
    return "(" + ", ".join(f"{key}={_value(params[key])}" for key in sorted(params)) + ")"


def cell_name(cell: dict[str, Any], python_label: str) -> str:
    """'3.13.5-pgo / subinterpreters(gil=own) / fib(n=24, tasks=8) / 4 workers'."""
    workers = cell.get("workers")
    return (f"{python_label} / {cell.get('model')}{_args(cell.get('model_config') or {})} / "
            f"{cell.get('workload')}{_args(cell.get('workload_params') or {})} / "
            f"{workers} worker{'' if workers == 1 else 's'}")


def _metadata(cell: dict[str, Any], python: dict[str, Any], manifest: runfolder.Manifest,
              name: str) -> dict[str, Any]:
    host = manifest.host
    values: dict[str, Any] = {
        "name": name,
        "unit": "second",
        "gilbench_run_id": manifest.run_id,
        "gilbench_cell_id": cell.get("cell_id"),
        "gilbench_python_id": cell.get("python"),
        "gilbench_python_label": python.get("label"),
        "gilbench_python_kind": python.get("kind"),
        "gilbench_python_variant": python.get("variant"),
        "gilbench_python_config_args": python.get("config_args"),
        "gilbench_gil_disabled": python.get("gil_disabled"),
        "gilbench_model": cell.get("model"),
        "gilbench_model_config": cell.get("model_config"),
        "gilbench_workload": cell.get("workload"),
        "gilbench_workload_params": cell.get("workload_params"),
        "gilbench_workers": cell.get("workers"),
        "gilbench_experiments_hash": manifest.experiments_hash,
        # pyperf's own names, so its tools show them where they show their own.
        "python_version": python.get("version"),
        "python_executable": python.get("executable"),
        "hostname": host.get("hostname"),
        "cpu_model_name": host.get("cpu_model"),
        "cpu_count": host.get("cores"),
        "platform": host.get("os"),
        "date": manifest.started_at,
    }
    metadata = {}
    for key, value in values.items():
        if value is None or value == "" or value == {}:
            continue  # pyperf refuses empty values
        if isinstance(value, bool | dict | list):
            value = json.dumps(value, sort_keys=True)
        if isinstance(value, str):
            value = " ".join(value.split())  # no newlines in pyperf metadata
        metadata[key] = value
    return metadata


def suite(run_dir: Path) -> tuple[pyperf.BenchmarkSuite, int, int]:
    """(the suite, cells left out, cells planned) of the run in run_dir."""
    manifest = runfolder.read_manifest(run_dir)
    samples = runfolder.samples_by_cell(runfolder.read_records(run_dir).records)
    benchmarks, left_out, names = [], 0, set()
    for cell in manifest.cells:
        found = samples.get(cell["cell_id"])
        values = [v for v in (found.quiet if found else []) if v > 0]  # pyperf: > 0 only
        if not values:
            left_out += 1
            continue
        python = manifest.pythons.get(str(cell.get("python")), {})
        name = cell_name(cell, str(python.get("label") or cell.get("python")))
        if name in names:  # two cells that read the same: the id tells them apart
            name = f"{name} [{cell['cell_id']}]"
        names.add(name)
        metadata = _metadata(cell, python, manifest, name)
        runs = [pyperf.Run([value], metadata=metadata, collect_metadata=False)
                for value in values]
        benchmarks.append(pyperf.Benchmark(runs))
    if not benchmarks:
        raise GilbenchError(
            f"Run {manifest.run_id} has no cell with a usable repetition (a quiet ok one), so "
            "there is nothing to write in pyperf's format; `invoke report --run "
            f"{manifest.run_id}` shows what happened.")
    benchmarks.sort(key=lambda bench: bench.get_name())
    return pyperf.BenchmarkSuite(benchmarks), left_out, len(manifest.cells)


def _is_pyperf_file(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and "benchmarks" in data and "version" in data


def export(run_dir: Path, out: Path | None = None) -> PyperfExport:
    """Write the run's cells as a pyperf BenchmarkSuite JSON file at out (a file, or a
    folder to hold <run-id>.pyperf.json; default: beside the run folder)."""
    built, left_out, cells = suite(run_dir)
    run_id = runfolder.read_manifest(run_dir).run_id
    target = archive.destination(out, run_dir, f"{run_id}{SUFFIX}", _is_pyperf_file)

    def write(handle: Any) -> None:
        text = io.StringIO()
        built.dump(text, compact=True)  # pyperf writes its own format
        handle.write(text.getvalue().encode("utf-8"))

    archive.write_atomically(target, write)
    return PyperfExport(target, len(built), left_out, cells)
