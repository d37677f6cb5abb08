"""The sub-interpreter path differs per version, and the record says which one ran."""

from __future__ import annotations

from pathlib import Path

from driver_runs import by_cell, cell, run_driver

from tests.conftest import ok_or_creation_flake

FIB = {"n": 15, "tasks": 2}
LEGACY = {
    "gil": "shared",
    "use_main_obmalloc": True,
    "check_multi_interp_extensions": False,
    "allow_threads": True,
    "allow_daemon_threads": True,
    "allow_fork": True,
    "allow_exec": True,
}


def _apis(python: Path, tmp_path: Path) -> dict[str, str]:
    cells = [
        cell("isolated", "subinterpreters", "fib", workload_params=FIB, repetitions=[0]),
        cell("legacy", "subinterpreters", "fib", workload_params=FIB, repetitions=[0],
             model_config=LEGACY),
        cell("custom", "subinterpreters", "fib", workload_params=FIB, repetitions=[0],
             model_config={"gil": "shared"}),
    ]
    records = by_cell(run_driver(python, cells, tmp_path)[0])
    for (record,) in records.values():
        assert ok_or_creation_flake(record), record["message"]
    return {cell_id: recs[0]["api"] for cell_id, recs in records.items()}


def test_312_uses_xxsubinterpreters_and_testcapi_for_other_configs(
    python312: Path, tmp_path: Path
) -> None:
    assert _apis(python312, tmp_path) == {
        "isolated": "_xxsubinterpreters (3.12)",
        "legacy": "_xxsubinterpreters (3.12)",
        "custom": "_testcapi.run_in_subinterp_with_config (3.12)",
    }


def test_313_uses_interpreters_for_every_config(python313: Path, tmp_path: Path) -> None:
    assert set(_apis(python313, tmp_path).values()) == {"_interpreters (3.13)"}
