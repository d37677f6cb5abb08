"""Issue 8 §6: sub-interpreter creation is a config axis, `create = concurrent | serial`.

Real cells on real 3.12 and 3.13 record the axis; `create` is ours and never reaches
CPython's PyInterpreterConfig (new_config on 3.13+, the preset comparison on 3.12).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from driver_runs import REPO, assert_well_formed, cell, import_catalog

FIB = {"n": 15, "tasks": 4}


def _run_cell(python: Path, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The cell process alone, fed the way experiments/driver.py feeds it."""
    done = subprocess.run(
        [str(python), "-E", "-s", "-m", "experiments.cell"], cwd=REPO, input=json.dumps(spec),
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.mark.parametrize("create", ["concurrent", "serial"])
def test_create_is_recorded_and_both_ways_work(target_python: Path, create: str) -> None:
    spec = cell(f"create-{create}", "subinterpreters", "fib", workload_params=FIB,
                model_config={"create": create}, repetitions=[0, 1])
    records = _run_cell(target_python, spec)
    assert [r["repetition"] for r in records] == [0, 1]
    for record in records:
        assert_well_formed(record)
        assert record["status"] == "ok", record["message"]
        assert record["model_config"]["create"] == create
        assert record["tasks_done"] == FIB["tasks"]


def test_concurrent_is_the_default() -> None:
    catalog = import_catalog()
    assert catalog.model_config("subinterpreters", {})["create"] == "concurrent"
    spec = cell("c", "subinterpreters", "fib", model_config={"create": "sometimes"})
    assert any("'model_config.create'" in p for p in catalog.validate_cell(spec))


def test_312_refuses_serial_creation_on_the_testcapi_path(python312: Path) -> None:
    spec = cell("serial-custom", "subinterpreters", "fib", workload_params=FIB,
                model_config={"create": "serial", "gil": "shared"}, repetitions=[0])
    (record,) = _run_cell(python312, spec)
    assert record["status"] == "unsupported"
    assert "create=serial" in record["message"]


# What each adapter hands CPython, checked inside the real interpreter: 3.13's
# new_config is wrapped to record its keywords; 3.12's preset choice ignores `create`.
_PROBE = """
import json, sys
from experiments import catalog, subinterp
adapter = subinterp.adapter()
seen = []
out = {}
if sys.version_info >= (3, 13):
    low = adapter._interpreters()
    real = low.new_config
    class Spy:
        def __getattr__(self, name):
            return getattr(low, name)
        def new_config(self, *args, **kwargs):
            seen.append(sorted(kwargs))
            return real(*args, **kwargs)
    adapter._interpreters = lambda: Spy()
else:
    out["presets"] = [adapter._preset(catalog.model_config("subinterpreters", c))
                      for c in ({"create": "serial"}, {"create": "concurrent"})]
    out["flags"] = sorted(subinterp.flags(catalog.model_config("subinterpreters", {})))
for create in ("concurrent", "serial"):
    config = catalog.model_config("subinterpreters", {"create": create})
    out.setdefault("unsupported", []).append(adapter.unsupported(config))
    adapter.run(config, "pass", {})
out["seen"] = seen
print(json.dumps(out))
"""


def test_create_never_reaches_the_interpreter_config(target_python: Path) -> None:
    done = subprocess.run([str(target_python), "-E", "-s", "-c", _PROBE], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["unsupported"] == [None, None]
    fields = sorted(k for k in import_catalog().model_config("subinterpreters", {})
                    if k not in ("create", "api"))
    if "presets" in out:  # 3.12: the isolated preset, whatever `create` says
        assert out["presets"] == [True, True]
        assert out["flags"] == [f for f in fields if f != "gil"]
    else:
        # unsupported() asks new_config("isolated") with no keywords for the known fields.
        assert [keys for keys in out["seen"] if keys] == [fields, fields]
