"""Issue 10 §4: a record of a path that never ran claims no api and no transport.

On real 3.12, and on real 3.13 without the PEP 734 backport, interpreter-pool and the
subinterpreters model's `api = "pep734"` are `unsupported`: api empty, transport null, and
a reason that says what is missing.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from driver_runs import assert_well_formed, by_cell, cell, run_driver

from tests.conftest import require

FIB = {"n": 10, "tasks": 2}


def test_paths_that_never_ran_leave_api_and_transport_empty(
    target_python: Path, tmp_path: Path,
) -> None:
    has_backport = subprocess.run(
        [str(target_python), "-E", "-s", "-c", "import interpreters_backport"],
        capture_output=True, check=False).returncode == 0
    require(not has_backport, f"{target_python} has the PEP 734 backport installed; this "
            "test needs an interpreter without it")
    cells = [
        cell("pool", "interpreter-pool", "fib", workload_params=FIB),
        cell("pool-serial", "interpreter-pool", "fib", workload_params=FIB,
             model_config={"create": "serial"}, repetitions=[0]),
        cell("pep734", "subinterpreters", "fib", workload_params=FIB,
             model_config={"api": "pep734"}, repetitions=[0]),
        cell("pep734-custom", "subinterpreters", "fib", workload_params=FIB,
             model_config={"api": "pep734", "gil": "shared"}, repetitions=[0]),
    ]
    records = by_cell(run_driver(target_python, cells, tmp_path)[0])
    version = records["pool"][0]["python_version"]
    for spec in cells:
        got = records[spec["cell_id"]]
        assert [r["repetition"] for r in got] == spec["repetitions"]
        for record in got:
            assert_well_formed(record)
            assert record["status"] == "unsupported"
            assert (record["api"], record["transport"]) == ("", None)
            assert "3.14" in record["message"]
            if version.startswith("3.12"):
                assert "this is 3.12" in record["message"]
            else:
                assert "interpreters-pep-734 backport" in record["message"]
                assert "not installed" in record["message"]
    assert records["pool"][0]["message"].startswith("InterpreterPoolExecutor needs")\
        or records["pool"][0]["message"].startswith("InterpreterPoolExecutor is in")


def test_the_default_path_still_names_itself(target_python: Path, tmp_path: Path) -> None:
    """What did run keeps its api and transport (only paths that never ran lose them)."""
    (record,) = run_driver(target_python, [
        cell("sub", "subinterpreters", "fib", workload_params=FIB, repetitions=[0])],
        tmp_path)[0]
    assert record["api"] in ("_xxsubinterpreters (3.12)", "_interpreters (3.13)")
    assert record["transport"] in ("_xxinterpchannels", "_interpqueues")
