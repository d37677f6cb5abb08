"""Issue 10: the PEP 734 backport (interpreters-pep-734) as a real provider on real 3.13.

A venv of the installed 3.13 gets exactly the pinned backport (docker/backport-requirements.txt,
by hash), and the real driver runs the PEP 734 paths on it: subinterpreters with
`api = "pep734"` (the v314 adapter: concurrent.interpreters' API and Queue), transfer
through it, and interpreter-pool. `ok` means the cell checked every result
(experiments/cell.py: workloads.check), so ok records are correct results.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from driver_runs import REPO, assert_well_formed, by_cell, cell, run_driver

from tests.conftest import ok_or_creation_flake, require

REQUIREMENTS = REPO / "docker" / "backport-requirements.txt"
BACKPORT_API = "interpreters_backport.interpreters (PEP 734 backport 0.5.0)"
PRIVATE = " + private _interpreters.create(config, reqrefs=True)"
POOL_API = ("interpreters_backport.concurrent.futures.InterpreterPoolExecutor "
            "(PEP 734 backport 0.5.0)")
FIB = {"n": 15, "tasks": 4}
NBODY = {"steps": 100, "tasks": 4}
TRANSFER = {"bytes": 200_000, "tasks": 4}


@pytest.fixture(scope="session")
def backport_python(python313: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv of the installed 3.13 holding only the pinned backport (PyPI, by hash)."""
    venv = tmp_path_factory.mktemp("backport") / "venv"
    subprocess.run([str(python313), "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--require-hashes", "--no-deps", "-r", str(REQUIREMENTS)],
        capture_output=True, text=True, timeout=300, check=False)
    require(done.returncode == 0,
            f"could not install the pinned PEP 734 backport: {done.stderr.strip()[-300:]}")
    return python


def _python(python: Path, code: str) -> Any:
    """Run `code` in `python` with the repo importable; its last stdout line as JSON.

    Run from /, not the repo: `-c` puts the working directory on sys.path, and new
    interpreters inherit it, which would hide a worker that cannot import `experiments`."""
    script = f"import sys\nsys.path.insert(0, {str(REPO)!r})\n{code}"
    done = subprocess.run([str(python), "-E", "-s", "-c", script], cwd="/",
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


CELLS = [
    cell("pep-fib", "subinterpreters", "fib", workload_params=FIB,
         model_config={"api": "pep734"}, warmups=1),
    cell("pep-custom", "subinterpreters", "nbody", workload_params=NBODY,
         model_config={"api": "pep734", "gil": "shared"}),
    cell("pep-serial", "subinterpreters", "fib", workload_params=FIB, workers=3,
         model_config={"api": "pep734", "create": "serial"}),
    cell("pep-transfer", "subinterpreters", "transfer", workload_params=TRANSFER,
         model_config={"api": "pep734"}),
    cell("version-fib", "subinterpreters", "fib", workload_params=FIB, repetitions=[0]),
    cell("pool-fib", "interpreter-pool", "fib", workload_params=FIB, warmups=1),
    cell("pool-serial", "interpreter-pool", "nbody", workload_params=NBODY, workers=3,
         model_config={"create": "serial"}),
    cell("pool-transfer", "interpreter-pool", "transfer", workload_params=TRANSFER),
]


@pytest.fixture(scope="session")
def records(backport_python: Path, tmp_path_factory: pytest.TempPathFactory,
            ) -> dict[str, list[dict[str, Any]]]:
    found, _ = run_driver(backport_python, CELLS, tmp_path_factory.mktemp("cells"))
    return by_cell(found)


def test_the_pin_is_one_exact_version_with_its_hash() -> None:
    lines = [line.strip(" \\") for line in REQUIREMENTS.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "interpreters-pep-734==0.5.0"
    assert lines[1].startswith("--hash=sha256:") and len(lines[1].split(":")[1]) == 64
    assert len(lines) == 2


def test_pep734_subinterpreters_run_through_the_backport(
    records: dict[str, list[dict[str, Any]]],
) -> None:
    expected = {
        "pep-fib": BACKPORT_API,
        "pep-custom": BACKPORT_API + PRIVATE,  # gil=shared: only the private create takes it
        "pep-serial": BACKPORT_API,
        "pep-transfer": BACKPORT_API,
    }
    for cell_id, api in expected.items():
        got = records[cell_id]
        assert [r["repetition"] for r in got] == [0, 1]
        for record in got:
            assert_well_formed(record)
            assert ok_or_creation_flake(record), record["message"]
            assert record["api"] == api
            assert record["transport"] == "interpreters_backport.interpreters.Queue (syncobj)"


def test_the_default_api_keeps_its_313_meaning_with_the_backport_installed(
    records: dict[str, list[dict[str, Any]]],
) -> None:
    (record,) = records["version-fib"]
    assert ok_or_creation_flake(record), record["message"]
    assert "api" not in record["model_config"]  # the default: api = "version"
    assert (record["api"], record["transport"]) == ("_interpreters (3.13)", "_interpqueues")


def test_interpreter_pool_runs_through_the_backport(
    records: dict[str, list[dict[str, Any]]],
) -> None:
    for cell_id in ("pool-fib", "pool-serial", "pool-transfer"):
        for record in records[cell_id]:
            assert_well_formed(record)
            assert record["status"] == "ok", record["message"]
            assert record["api"] == POOL_API
            assert record["transport"] == (
                "pickle in exec'd source (callable, params, payload); result via _interpqueues")
    assert {r["model_config"]["create"] for r in records["pool-serial"]} == {"serial"}


def test_probe_reports_the_backport(backport_python: Path) -> None:
    done = subprocess.run([str(backport_python), "-E", "-s", "-m", "experiments.driver",
                           "--probe"], cwd=REPO, capture_output=True, text=True, check=True,
                          timeout=60)
    info = json.loads(done.stdout)
    assert info["interpreter_pool"] is True
    assert info["pep734"] == BACKPORT_API
    # The probe's sub-interpreter path is the default one (api = version).
    assert info["subinterpreter_api"] == "_interpreters (3.13)"


def test_the_pool_model_measures_imports_before_the_ready_gate(backport_python: Path) -> None:
    """Each worker has imported experiments.workloads when it says ready: the initializer
    imports it; the gate task, which only writes to a pipe, is what `R` comes from."""
    out = _python(backport_python, """
import json
from experiments.pool_tasks import INIT
print(json.dumps({"imports": "import experiments.pool_tasks" in INIT,
                  "before_gate": INIT.index('b"C"') < INIT.index("import experiments")}))
""")
    assert out == {"imports": True, "before_gate": True}
    out = _python(backport_python, """
import json, sys
import experiments.pool_tasks
print(json.dumps("experiments.workloads" in sys.modules))
""")
    assert out is True


def test_a_broken_pool_reports_the_cause_not_only_the_fixed_sentence(
    backport_python: Path,
) -> None:
    # A root the workers cannot import from: every initializer fails with the real error.
    out = _python(backport_python, """
import json
from experiments import catalog
from experiments.failures import WorkerError
from experiments.models import interpreter_pool as model
model.ROOT = "/nonexistent-gilbench-root"
try:
    model.run("fib", {"n": 5, "tasks": 2}, 2, catalog.model_config("interpreter-pool", {}))
except WorkerError as exc:
    print(json.dumps(str(exc)))
""")
    assert out.startswith("ModuleNotFoundError: No module named 'experiments'")
    assert "BrokenInterpreterPool" in out and "\n" not in out


def test_an_item_whose_interpreter_is_gone_is_an_error_not_a_sentinel(
    backport_python: Path,
) -> None:
    out = _python(backport_python, """
import json
from experiments.subinterp import pep734, v314
q = v314.create_queue()
interp = pep734.interpreters().create()
interp.exec(f"import {pep734.queues_module_name()}")
interp.prepare_main({"q": q})
interp.exec("q.put_nowait(b'lost')")
interp.close()
try:
    v314.get(q)
except Exception as exc:
    print(json.dumps(type(exc).__name__))
""")
    assert out == "ItemInterpreterDestroyed"


def test_a_queue_binds_only_after_the_interpreter_imported_the_queue_module(
    backport_python: Path,
) -> None:
    """Why v314.run imports the queue module first: without it 3.13 refuses."""
    out = _python(backport_python, """
import json
from experiments.subinterp import pep734, v314
q = v314.create_queue()
interp = pep734.interpreters().create()
try:
    interp.prepare_main({"q": q})
    first = "bound"
except Exception as exc:
    first = type(exc).__name__
interp.exec(f"import {pep734.queues_module_name()}")
interp.prepare_main({"q": q})
interp.close()
print(json.dumps(first))
""")
    assert out == "InterpreterError"


# Hidden in the real interpreter before the cell runs, as a build without them would be.
_HIDE = {
    "new_config": "import _interpreters\ndel _interpreters.new_config\n",
    "_ownsref": (
        "from experiments.subinterp import pep734\n"
        "mod = pep734.interpreters()\n"
        "real = mod.Interpreter\n"
        "class Interpreter(real):\n"
        "    def __new__(cls, id, /, _whence=None):\n"
        "        return real.__new__(cls, id, _whence=_whence)\n"
        "mod.Interpreter = Interpreter\n"
    ),
}

_RUN_CELL = """
import io, runpy, sys
sys.stdin = io.StringIO({spec!r})
runpy.run_module("experiments.cell", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("hidden", sorted(_HIDE))
def test_a_custom_config_without_the_private_names_is_unsupported(
    backport_python: Path, hidden: str,
) -> None:
    specs = {
        "custom": cell("custom", "subinterpreters", "fib", workload_params=FIB, repetitions=[0],
                       model_config={"api": "pep734", "gil": "shared"}),
    }
    if hidden == "new_config":  # public create() itself calls Interpreter(id, _ownsref=True)
        specs["isolated"] = cell("isolated", "subinterpreters", "fib", workload_params=FIB,
                                 repetitions=[0], model_config={"api": "pep734"})
    got = {}
    for name, spec in specs.items():
        script = (f"import sys\nsys.path.insert(0, {str(REPO)!r})\n" + _HIDE[hidden]
                  + _RUN_CELL.format(spec=json.dumps(spec)))
        done = subprocess.run([str(backport_python), "-E", "-s", "-c", script], cwd=REPO,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        (got[name],) = [json.loads(line) for line in done.stdout.splitlines()]
    custom = got["custom"]
    assert custom["status"] == "unsupported"
    assert hidden in custom["message"] and "isolated" in custom["message"]
    assert (custom["api"], custom["transport"]) == ("", None)
    if "isolated" in got:  # the public create() needs no new_config: isolated still runs
        assert ok_or_creation_flake(got["isolated"]), got["isolated"]["message"]
        assert got["isolated"]["api"] == BACKPORT_API


def test_the_target_side_does_not_need_the_backport() -> None:
    """Stdlib only: no module of experiments/ imports the backport by name at import time."""
    for path in (REPO / "experiments").rglob("*.py"):
        text = path.read_text()
        assert "import interpreters_backport" not in text, path
        assert "from interpreters_backport" not in text, path
