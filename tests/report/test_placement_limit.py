"""The speedup limit is the physical cores a cell could use: recorded by the runner, else
its cpuset counted on the host's recorded topology, else (old runs) its logical CPUs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gilbench.report import report_run

from .helpers import PYTHON, manifest, record, write_run

SMT_HOST = {"cpus": "0-3", "logical": 4, "physical_cores": 2, "smt": True,
            "threads_per_core": 2, "numa_nodes": 1, "core_cpus": ["0,2", "1,3"],
            "source": "sysfs"}  # fmt: skip


def _processes(tmp_path: Path, backend: dict[str, Any], **host: Any) -> Any:
    records = [record("sequential", 1, i, 1.0) for i in range(4)]
    records += [record("processes", 4, i, 1 / 3, cell_id="c-p") for i in range(4)]  # 3x
    run_manifest = manifest(backend={PYTHON: backend})
    run_manifest["host"].update(cores=4, **host)
    table = report_run(write_run(tmp_path / "run", run_manifest, records)).summary
    return table[table["model"] == "processes"].iloc[0]


def test_recorded_physical_cores_are_the_limit(tmp_path: Path) -> None:
    row = _processes(tmp_path, {"name": "native", "cpuset": "0-3", "physical_cores": 2})
    assert row["cores"] == 2
    assert row["artefact"].startswith("speedup 3.00x is above the 2 usable cores")


def test_the_cpuset_is_counted_on_the_recorded_topology(tmp_path: Path) -> None:
    row = _processes(tmp_path, {"name": "native", "cpuset": "0-3"}, topology=SMT_HOST)
    assert row["cores"] == 2 and row["artefact"] != ""


def test_an_old_run_keeps_its_logical_limit(tmp_path: Path) -> None:
    row = _processes(tmp_path, {"name": "native", "cpuset": "0-3"})
    assert row["cores"] == 4 and row["artefact"] == ""
