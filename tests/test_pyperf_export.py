"""Results other tools read: a run's cells as pyperf benchmarks, checked with the real
(pinned) pyperf, and docs/records.md, the record schema for other tools, checked
against experiments/records.py so the two cannot drift."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyperf
import pytest

from experiments import records as schema
from gilbench import pyperf_export, runfolder
from gilbench.errors import GilbenchError
from tests.conftest import REPO, find_python, invoke, require
from tests.report import helpers
from tests.test_archive import _real_run


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two real runs of the same small matrix, each in its own results folder."""
    python = find_python("3.12")
    require(python is not None, "no pyenv Python 3.12 installed")
    assert python is not None
    return [_real_run(tmp_path_factory.mktemp(f"results{n}"), python) for n in (1, 2)]


def _pyperf(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pyperf", *args], capture_output=True,
                          text=True, check=False, timeout=120)


def _names(run_dir: Path) -> list[str]:
    manifest = runfolder.read_manifest(run_dir)
    return sorted(pyperf_export.cell_name(cell, manifest.pythons[cell["python"]]["label"])
                  for cell in manifest.cells)


def test_pyperf_reads_the_export_of_real_runs(two_runs: list[Path]) -> None:
    files = []
    for run_dir in two_runs:
        result = invoke("export", run_dir.name, "--format", "pyperf",
                        env={"INVOKE_GILBENCH_RESULTS_DIR": str(run_dir.parent)})
        assert result.returncode == 0, result.stdout + result.stderr
        path = run_dir.parent / f"{run_dir.name}.pyperf.json"
        # threads at 1 and 2 workers, and the sequential baseline every run gets
        assert path.is_file() and "wrote 3 benchmarks" in result.stdout
        files.append(path)
    names = _names(two_runs[0])
    assert names == _names(two_runs[1]) == sorted(
        f"{runfolder.read_manifest(two_runs[0]).pythons[p]['label']} / {m} / "
        f"io(ms=2, tasks=2) / {w}"
        for p in runfolder.read_manifest(two_runs[0]).pythons
        for m, w in (("sequential", "1 worker"), ("threads", "1 worker"),
                     ("threads", "2 workers")))

    suite = pyperf.BenchmarkSuite.load(str(files[0]))
    assert sorted(suite.get_benchmark_names()) == names
    manifest = runfolder.read_manifest(two_runs[0])
    samples = runfolder.samples_by_cell(runfolder.read_records(two_runs[0]).records)
    for cell in manifest.cells:
        python = manifest.pythons[cell["python"]]
        bench = suite.get_benchmark(pyperf_export.cell_name(cell, python["label"]))
        assert list(bench.get_values()) == samples[cell["cell_id"]].quiet
        metadata = bench.get_metadata()
        assert metadata["gilbench_run_id"] == manifest.run_id
        assert metadata["gilbench_cell_id"] == cell["cell_id"]
        assert metadata["gilbench_workers"] == cell["workers"]
        assert metadata["gilbench_workload_params"] == '{"ms": 2, "tasks": 2}'
        assert metadata["python_version"] == python["version"]
        assert metadata["gilbench_python_config_args"] == " ".join(
            python["config_args"].split())

    for args in (["stats", str(files[0])], ["hist", str(files[0])],
                 ["compare_to", str(files[0]), str(files[1])]):
        shown = _pyperf(*args)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        if args[0] != "compare_to":
            assert all(name in shown.stdout for name in names), shown.stdout
    compared = _pyperf("compare_to", "--table", str(files[0]), str(files[1]))
    assert compared.returncode == 0, compared.stderr
    # compare_to pairs the cells by name; a table names each (or says none differ).
    assert all(name in compared.stdout for name in names) or \
        "Benchmark hidden because not significant" in compared.stdout, compared.stdout


def _cell(model: str, workers: int) -> dict[str, Any]:
    return {"cell_id": f"c-{model}-{workers}", "python": helpers.PYTHON, "model": model,
            "model_config": {"gil": "own"} if model == "subinterpreters" else {},
            "workload": "fib", "workload_params": {"n": 24, "tasks": 8}, "workers": workers,
            "warmups": 0, "repetitions": [0, 1, 2], "timeout_s": 60.0}


def _v2(record: dict[str, Any], attempt: int | None = None, contended: bool = False
        ) -> dict[str, Any]:
    return {**record, "schema_version": 2, "round": 0, "attempt": attempt,
            "others_cpu_s": 0.5 if contended else 0.0, "steal_s": 0.0, "throttled_s": 0.0,
            "contended": contended}


def test_the_attempt_rule_and_cells_left_out(tmp_path: Path) -> None:
    cells = [_cell("threads", 2), _cell("subinterpreters", 2), _cell("processes", 2)]
    records = [
        # threads: repetition 0 was contended, remeasured quiet; the quiet value counts
        _v2(helpers.record("threads", 2, 0, 9.0), attempt=None, contended=True),
        _v2(helpers.record("threads", 2, 0, 1.0), attempt=1),
        _v2(helpers.record("threads", 2, 1, 1.1)),
        _v2(helpers.record("threads", 2, 2, 1.2)),
        # subinterpreters: a crash is no value
        _v2(helpers.record("subinterpreters", 2, 0, 2.0)),
        _v2(helpers.record("subinterpreters", 2, 1, None)),
        # processes: nothing usable at all -> left out
        _v2(helpers.record("processes", 2, 0, None)),
        _v2(helpers.record("processes", 2, 1, 3.0), contended=True),
    ]
    run_dir = helpers.write_run(tmp_path / "run", helpers.manifest(cells=cells), records)
    written = pyperf_export.export(run_dir, tmp_path)
    assert written.path == tmp_path / "20261125T000000Z-test.pyperf.json"
    assert (written.benchmarks, written.left_out, written.cells) == (2, 1, 3)
    assert written.note() == ("1 of 3 cells were left out: they have no usable repetition "
                              "(no quiet ok one), so pyperf has no value to show.")
    suite = pyperf.BenchmarkSuite.load(str(written.path))
    assert suite.get_benchmark("3.13.0 / threads / fib(n=24, tasks=8) / 2 workers"
                               ).get_values() == (1.0, 1.1, 1.2)
    assert suite.get_benchmark("3.13.0 / subinterpreters(gil=own) / fib(n=24, tasks=8) / "
                               "2 workers").get_values() == (2.0,)
    shown = _pyperf("stats", str(written.path))
    assert shown.returncode == 0, shown.stderr

    result = invoke("export", str(run_dir), "--format", "pyperf", "-o",
                    str(tmp_path / "again.json"))
    assert result.returncode == 0, result.stderr
    assert "1 of 3 cells were left out" in result.stdout


def test_a_run_with_nothing_usable_is_refused(tmp_path: Path) -> None:
    run_dir = helpers.write_run(tmp_path / "run", helpers.manifest(cells=[_cell("threads", 2)]),
                                [_v2(helpers.record("threads", 2, 0, None))])
    with pytest.raises(GilbenchError, match="no cell with a usable repetition") as refused:
        pyperf_export.export(run_dir, tmp_path / "out.json")
    assert "\n" not in str(refused.value)
    assert not (tmp_path / "out.json").exists()
    result = invoke("export", str(run_dir), "--format", "pyperf")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no cell with a usable repetition" in result.stderr
    assert not list(tmp_path.glob("**/*.json.tmp")) and not list(tmp_path.glob("*.pyperf.json"))


def test_an_existing_file_that_is_no_pyperf_file_is_left_alone(tmp_path: Path) -> None:
    run_dir = helpers.write_run(tmp_path / "run", helpers.manifest(cells=[_cell("threads", 2)]),
                                [_v2(helpers.record("threads", 2, 0, 1.0))])
    precious = tmp_path / "precious.json"
    precious.write_text('{"mine": true}')
    with pytest.raises(GilbenchError, match="already exists and is not an export"):
        pyperf_export.export(run_dir, precious)
    assert precious.read_text() == '{"mine": true}'
    first = pyperf_export.export(run_dir, tmp_path / "p.json").path
    assert pyperf_export.export(run_dir, first).path == first  # its own file is replaced


# --- docs/records.md: the schema for other tools -----------------------------------------

RECORDS_DOC = REPO / "docs" / "records.md"


def _doc_rows() -> list[list[str]]:
    """The rows of the field table: | `name` | kind | nullable | source | meaning |."""
    rows = []
    text = RECORDS_DOC.read_text(encoding="utf-8")
    for line in text.split("\n## Fields\n", 1)[1].splitlines():
        match = re.match(r"^\| `([a-z_0-9]+)` \|(.*)\|$", line)
        if match:
            rows.append([match.group(1), *(cell.strip() for cell in match.group(2).split("|"))])
    return rows


def test_records_doc_lists_every_field_as_records_py_defines_it() -> None:
    rows = _doc_rows()
    assert [row[0] for row in rows] == list(schema.NAMES), (
        "docs/records.md's field table must list experiments/records.py's FIELDS, in order")
    for field, row in zip(schema.FIELDS, rows, strict=True):
        name, kind, nullable, source, meaning = row
        assert kind == field.kind, name
        assert nullable == ("yes" if field.nullable else "no"), name
        assert source == field.source, name
        assert meaning, f"{name} has no meaning in docs/records.md"
    text = RECORDS_DOC.read_text(encoding="utf-8")
    assert f"schema_version {schema.SCHEMA_VERSION}" in text
    for status in schema.STATUSES:
        assert f"`{status}`" in text


def test_docs_name_the_archive_constants() -> None:
    from gilbench import archive

    text = (REPO / "docs" / "archive-format.md").read_text(encoding="utf-8")
    for name in (archive.EXPORT, archive.SUMS, archive.KIND, archive.MATRIX, archive.BUILD,
                 archive.LOCK_ENTRY, *archive.RUN_FILES, archive.BASE_RECIPE):
        assert name in text, name
    assert f'"schema_version": {archive.SCHEMA_VERSION}' in text
    assert shutil.which("sha256sum") is None or "sha256sum -c" in text
