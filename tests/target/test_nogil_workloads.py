"""hash and compress: C code that releases the GIL, so threads can scale with it."""

from __future__ import annotations

import hashlib
import random
import zlib
from pathlib import Path

import pytest

from tests.target.driver_runs import assert_well_formed, by_cell, cell, import_catalog, run_driver

catalog = import_catalog()
from experiments import workloads  # noqa: E402  (after the repo is on sys.path)

SMALL = {"hash": {"kib": 64, "rounds": 4, "tasks": 4},
         "compress": {"kib": 64, "level": 6, "tasks": 4}}  # fmt: skip


def test_results_are_what_the_libraries_give_by_hand() -> None:
    assert workloads.run_task("hash", SMALL["hash"]) == hashlib.sha256(
        b"\xa5" * 64 * 1024).hexdigest()
    text = random.Random(64).randbytes(32 * 1024).hex().encode()
    assert len(text) == 64 * 1024
    assert workloads.run_task("compress", SMALL["compress"]) == zlib.crc32(zlib.compress(text, 6))
    # The text is neither incompressible nor trivial for zlib.
    assert 0.4 < len(zlib.compress(text, 6)) / len(text) < 0.7


def test_wrong_results_are_caught() -> None:
    assert "sha256 returned 'x'" in workloads.check("hash", SMALL["hash"], ["x"])
    assert "crc32 was 1" in workloads.check("compress", SMALL["compress"], [1])
    good = [workloads.run_task(name, SMALL[name]) for name in ("hash", "compress")]
    assert workloads.check("hash", SMALL["hash"], good[:1] * 4) == ""
    assert workloads.check("compress", SMALL["compress"], good[1:] * 4) == ""


def test_compression_level_is_bounded() -> None:
    spec = {**cell("c", "threads", "compress", workload_params={"level": 10}), "run_id": "r"}
    assert catalog.validate_cell(spec) == [
        "'workload_params.level' must be from 0 to 9, got 10."]


@pytest.mark.parametrize("workload", ["hash", "compress"])
def test_every_model_runs_them_and_checks_the_results(
    target_python: Path, tmp_path: Path, workload: str
) -> None:
    cells = [
        cell("seq", "sequential", workload, workers=1, workload_params=SMALL[workload]),
        cell("thr", "threads", workload, workload_params=SMALL[workload]),
        cell("fork", "processes", workload, model_config={"start_method": "fork"},
             workload_params=SMALL[workload]),
        cell("sub", "subinterpreters", workload, workload_params=SMALL[workload]),
    ]
    records = by_cell(run_driver(target_python, cells, tmp_path)[0])
    for spec in cells:
        for record in records[spec["cell_id"]]:
            assert_well_formed(record)
            assert record["status"] == "ok", record
