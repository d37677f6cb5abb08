"""Issue 11, item 1 on the target: a user's function runs in every worker kind of a real
3.12 and 3.13, its results are checked against the sequential one, and a user module can
neither fake nor lose the harness's records."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from driver_runs import REPO, assert_well_formed, by_cell, cell, run_driver

# Every worker kind: the processes' three start methods, isolated sub-interpreters, the pool.
EVERY_MODEL: list[tuple[str, dict[str, Any]]] = [
    ("sequential", {}), ("threads", {}),
    ("processes", {"start_method": "fork"}), ("processes", {"start_method": "spawn"}),
    ("processes", {"start_method": "forkserver"}),
    ("subinterpreters", {}), ("interpreter-pool", {}),
]

# What a careless user module does: prints (a JSON object even, like a record), moves
# sys.path and the working directory at import and on every call.
GOOD = '''\
import os, sys
print('{"cell_id": "fake", "repetition": 0, "status": "ok"}')
sys.path.insert(0, "/nonexistent")
os.chdir("/")

def work(n, label="x"):
    print('{"cell_id": "fake", "repetition": 1, "status": "ok"}')
    sys.path.clear()
    os.chdir("/tmp")
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return {"fib": a, "label": label, "parts": (n, [1.5, None])}
'''


def _user_cells(code_dir: Path, name: str, params: dict[str, Any],
                models: list[tuple[str, dict[str, Any]]] = EVERY_MODEL) -> list[dict[str, Any]]:
    return [cell(f"{model}-{config.get('start_method', '')}", model, name, model_config=config,
                 workload_params={"tasks": 4, **params}, repetitions=[0],
                 user_path=str(code_dir)) for model, config in models]


def _run(python: Path, cells: list[dict[str, Any]], tmp_path: Path) -> dict[str, dict[str, Any]]:
    records, _ = run_driver(python, cells, tmp_path)
    grouped = by_cell(records)
    assert set(grouped) == {c["cell_id"] for c in cells}  # no fake record got through
    for group in grouped.values():
        assert len(group) == 1
        assert_well_formed(group[0])
    return {cell_id: group[0] for cell_id, group in grouped.items()}


def _pool_ok_or_absent(record: dict[str, Any]) -> bool:
    # The pool needs 3.14, or the interpreters-pep-734 backport on 3.13.
    return record["status"] == "ok" or (record["status"] == "unsupported"
                                        and "InterpreterPoolExecutor" in record["message"])


def test_a_user_function_runs_in_every_worker_kind(target_python: Path, tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "careless.py").write_text(GOOD)
    got = _run(target_python, _user_cells(code, "careless:work", {"n": 30, "label": "y"}),
               tmp_path)
    for cell_id, record in got.items():
        if cell_id.startswith("interpreter-pool"):
            assert _pool_ok_or_absent(record), record
        else:
            assert record["status"] == "ok", record
            assert record["tasks_done"] == 4
    assert got["processes-spawn"]["api"] == "multiprocessing:spawn"


def _statuses(python: Path, tmp_path: Path, source: str, name: str = "mod:work",
              params: dict[str, Any] | None = None,
              models: list[tuple[str, dict[str, Any]]] = EVERY_MODEL) -> dict[str, tuple[str, str]]:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "mod.py").write_text(source)
    got = _run(python, _user_cells(code, name, params or {}, models), tmp_path)
    return {cell_id: (r["status"], r["message"]) for cell_id, r in got.items()}


def test_a_single_phase_extension_is_refused_in_isolated_interpreters_only(
        target_python: Path, tmp_path: Path) -> None:
    source = "import _testsinglephase\n\ndef work():\n    return _testsinglephase.__name__\n"
    legacy = {"gil": "shared", "use_main_obmalloc": True,
              "check_multi_interp_extensions": False}
    models = [*EVERY_MODEL, ("subinterpreters", legacy)]
    cells = _user_cells(tmp_path / "code", "mod:work", {}, models)
    cells[-1]["cell_id"] = "legacy"
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "mod.py").write_text(source)
    got = {k: (r["status"], r["message"]) for k, r in _run(target_python, cells,
                                                           tmp_path).items()}
    refusal = "ImportError: module _testsinglephase does not support loading in subinterpreters"
    assert got["subinterpreters-"][0] == "invalid"
    assert refusal in got["subinterpreters-"][1]
    if got["interpreter-pool-"][0] != "unsupported":
        assert got["interpreter-pool-"][0] == "invalid"
        assert "does not support loading in subinterpreters" in got["interpreter-pool-"][1]
    for cell_id in ("sequential-", "threads-", "processes-fork", "processes-spawn",
                    "processes-forkserver", "legacy"):
        assert got[cell_id] == ("ok", ""), (cell_id, got[cell_id])


def test_a_function_that_raises_is_invalid_with_its_words(target_python: Path,
                                                          tmp_path: Path) -> None:
    got = _statuses(target_python, tmp_path,
                    "def work(n):\n    raise ValueError(f'no good: {n}')\n", params={"n": 3})
    for cell_id, (status, message) in got.items():
        if status != "unsupported":
            assert (status, message) == ("invalid", "ValueError: no good: 3"), cell_id


def test_results_that_differ_from_sequential_are_invalid(target_python: Path,
                                                         tmp_path: Path) -> None:
    # Each process has its own pid: the processes' results differ from the main one's.
    got = _statuses(target_python, tmp_path, "import os\n\ndef work():\n    return os.getpid()\n")
    for method in ("fork", "spawn", "forkserver"):
        status, message = got[f"processes-{method}"]
        assert status == "invalid"
        assert "results differ from sequential" in message
    assert got["threads-"] == ("ok", "") and got["sequential-"] == ("ok", "")
    assert got["subinterpreters-"] == ("ok", "")  # one process: the same pid


def test_an_unpicklable_result_is_invalid_where_results_are_pickled(
        target_python: Path, tmp_path: Path) -> None:
    got = _statuses(target_python, tmp_path,
                    "import threading\n\ndef work():\n    return threading.Lock()\n")
    for cell_id in ("processes-fork", "processes-spawn", "processes-forkserver",
                    "subinterpreters-"):
        status, message = got[cell_id]
        assert status == "invalid"
        assert "cannot be pickled" in message and "lock" in message, message
    # Threads and the main thread hand over the object itself (a new lock is not equal to
    # another one: those differ from sequential, and say so).
    for cell_id in ("threads-", "sequential-"):
        assert "results differ from sequential" in got[cell_id][1]


def test_sys_exit_in_a_workload_is_a_record_not_an_exit(target_python: Path,
                                                         tmp_path: Path) -> None:
    got = _statuses(target_python, tmp_path, "import sys\n\ndef work():\n    sys.exit(3)\n")
    for cell_id, (status, message) in got.items():
        if status != "unsupported":
            assert status == "invalid", cell_id
            assert "the workload called sys.exit(3)" in message


def test_the_driver_checks_a_workload_before_a_run(target_python: Path, tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text("print('noise')\nvalue = 3\n\ndef work():\n    return 1\n")
    (tmp_path / "broken.py").write_text("import no_such_dependency\n")

    def check(name: str) -> str:
        done = subprocess.run(
            [str(target_python), "-E", "-s", "-m", "experiments.driver", "--check-workload",
             str(tmp_path), name], cwd=REPO, capture_output=True, text=True, check=True)
        assert "noise" not in done.stdout
        return str(json.loads(done.stdout)["problem"])

    assert check("mod:work") == ""
    assert check("mod:value") == ("UserWorkloadError: mod:value is not callable: it is of "
                                  "type int")
    assert check("mod:gone") == "UserWorkloadError: module mod has no attribute 'gone'"
    assert check("broken:work") == "ModuleNotFoundError: No module named 'no_such_dependency'"
