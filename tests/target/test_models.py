"""Every model runs a CPU workload to complete, well-typed records on real 3.12 and 3.13."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from driver_runs import assert_well_formed, by_cell, cell, run_driver

from tests.conftest import ok_or_creation_flake

FIB = {"n": 18, "tasks": 4}

CELLS = [
    cell("sequential", "sequential", "fib", workload_params=FIB, workers=1, warmups=1),
    cell("threads", "threads", "fib", workload_params=FIB),
    cell("proc-fork", "processes", "fib", workload_params=FIB,
         model_config={"start_method": "fork"}),
    cell("proc-spawn", "processes", "fib", workload_params=FIB,
         model_config={"start_method": "spawn"}),
    cell("proc-forkserver", "processes", "nbody", workload_params={"steps": 100, "tasks": 4},
         model_config={"start_method": "forkserver"}),
    cell("sub-own", "subinterpreters", "fib", workload_params=FIB, warmups=1),
    cell("sub-shared", "subinterpreters", "nbody", workload_params={"steps": 100, "tasks": 4},
         model_config={"gil": "shared"}),
    cell("sub-3workers", "subinterpreters", "fib", workload_params=FIB, workers=3),
    cell("pool", "interpreter-pool", "fib", workload_params=FIB),
    *[
        cell(f"threads-{w}", "threads", w, workload_params=p, repetitions=[0])
        for w, p in [
            ("io", {"ms": 5, "tasks": 4}),
            ("alloc", {"objects": 2000, "tasks": 4}),
            ("mixed", {"n": 15, "ms": 2, "tasks": 4}),
            ("startup", {"tasks": 4}),
        ]
    ],
    *[
        cell(f"transfer-{m}", m, "transfer", workload_params={"bytes": 200_000, "tasks": 4},
             repetitions=[0])
        for m in ("sequential", "threads", "processes", "subinterpreters")
    ],
    cell("sub-transfer-shared", "subinterpreters", "transfer", repetitions=[0],
         workload_params={"bytes": 1000, "tasks": 6}, model_config={"gil": "shared"}),
]

_cache: dict[str, dict[str, list[dict[str, Any]]]] = {}


@pytest.fixture
def records(target_python: Path, tmp_path: Path) -> dict[str, list[dict[str, Any]]]:
    """One driver run over CELLS per interpreter, shared by the tests in this module."""
    if str(target_python) not in _cache:
        found, _ = run_driver(target_python, CELLS, tmp_path)
        _cache[str(target_python)] = by_cell(found)
    return _cache[str(target_python)]


def test_every_requested_repetition_has_one_well_formed_record(
    records: dict[str, list[dict[str, Any]]],
) -> None:
    for spec in CELLS:
        got = records[spec["cell_id"]]
        assert sorted(r["repetition"] for r in got) == spec["repetitions"], spec["cell_id"]
        for record in got:
            assert_well_formed(record)
            for key in ("run_id", "python", "model", "model_config", "workload",
                        "workload_params", "workers"):
                assert record[key] == spec[key]


@pytest.mark.parametrize(
    "cell_id",
    ["sequential", "threads", "proc-fork", "proc-spawn", "proc-forkserver", "sub-own",
     "sub-shared", "sub-3workers", "threads-io", "threads-alloc", "threads-mixed",
     "threads-startup"],
)
def test_cpu_and_other_workloads_run_ok(
    records: dict[str, list[dict[str, Any]]], cell_id: str
) -> None:
    for record in records[cell_id]:
        assert ok_or_creation_flake(record), record["message"]
        if record["status"] != "ok":
            continue
        assert record["gil_enabled"] is True  # these are the default (GIL) builds
        assert record["startup_s"] >= 0 and record["teardown_s"] >= 0
        assert record["cpu_s"] >= 0 and record["peak_rss_kb"] > 0


def test_api_names_the_path_each_model_took(records: dict[str, list[dict[str, Any]]]) -> None:
    assert records["sequential"][0]["api"] == "sequential"
    assert records["threads"][0]["api"] == "threading"
    assert records["proc-fork"][0]["api"] == "multiprocessing:fork"
    assert records["proc-spawn"][0]["api"] == "multiprocessing:spawn"
    assert records["proc-forkserver"][0]["api"] == "multiprocessing:forkserver"


def test_interpreter_pool_is_unsupported_before_314(
    records: dict[str, list[dict[str, Any]]],
) -> None:
    for record in records["pool"]:
        assert record["status"] == "unsupported"
        assert "3.14" in record["message"]


def test_transfer_records_carry_the_transport(records: dict[str, list[dict[str, Any]]]) -> None:
    version = records["transfer-threads"][0]["python_version"]
    expected_sub = "_xxinterpchannels" if version.startswith("3.12") else "_interpqueues"
    expected = {
        "transfer-sequential": "direct call",
        "transfer-threads": "queue.Queue",
        "transfer-processes": "multiprocessing.Pipe",
        "transfer-subinterpreters": expected_sub,
        "sub-transfer-shared": expected_sub,
    }
    for cell_id, transport in expected.items():
        (record,) = records[cell_id]
        assert ok_or_creation_flake(record), record["message"]
        assert record["transport"] == transport
