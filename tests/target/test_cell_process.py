"""Issue 8 §5: a lean measurement process. The cell process imports only what its own
model and workload need, and what it writes is what json would have written.

Deterministic: which modules are loaded, and text compared character for character;
how long start-up takes is a benchmark's job (benchmarks/cell_cost.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from driver_runs import REPO, cell

# Heavy modules a sequential cell does not need (each costs milliseconds of start-up).
HEAVY = ("typing", "json", "re", "dataclasses", "inspect", "threading", "signal", "platform",
         "pathlib", "collections", "enum", "contextlib", "multiprocessing", "queue")
OTHER_MODELS = ("experiments.models.threads", "experiments.models.processes",
                "experiments.models.subinterpreters", "experiments.models.interpreter_pool",
                "experiments.subinterp")

# Runs the cell exactly as `-m experiments.cell` would, then reports what got imported
# (read before this script imports json to report it).
_RUN = """
import io, runpy, sys
sys.stdin = io.StringIO({spec!r})
out = io.StringIO()
real, sys.stdout = sys.stdout, out
runpy.run_module("experiments.cell", run_name="__main__", alter_sys=True)
sys.stdout = real
modules = sorted(sys.modules)
import json
print(json.dumps({{"modules": modules, "records": out.getvalue()}}))
"""


def _loaded_by(python: Path, spec: dict[str, object]) -> tuple[set[str], list[dict[str, object]]]:
    # What a bare interpreter has already, so only the cell's own imports count.
    bare = subprocess.run([str(python), "-E", "-s", "-c",
                           "import sys; print('\\n'.join(sys.modules))"],
                          capture_output=True, text=True, check=True).stdout.split()
    done = subprocess.run([str(python), "-E", "-s", "-c", _RUN.format(spec=json.dumps(spec))],
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    records = [json.loads(line) for line in out["records"].splitlines()]
    return set(out["modules"]) - set(bare), records


def test_a_sequential_cell_imports_nothing_heavy(target_python: Path) -> None:
    spec = cell("lean", "sequential", "startup", workers=1, repetitions=[0],
                workload_params={"tasks": 1})
    loaded, records = _loaded_by(target_python, spec)
    assert [r["status"] for r in records] == ["ok"]
    assert "experiments.models.sequential" in loaded
    assert sorted(loaded & set(HEAVY)) == []
    assert sorted(loaded & set(OTHER_MODELS)) == []


def test_a_threads_cell_imports_only_its_own_model(target_python: Path) -> None:
    spec = cell("lean-threads", "threads", "fib", workers=2, repetitions=[0],
                workload_params={"n": 10, "tasks": 2})
    loaded, records = _loaded_by(target_python, spec)
    assert [r["status"] for r in records] == ["ok"]
    assert "experiments.models.threads" in loaded
    assert sorted(loaded & {"typing", "json", "re", "dataclasses", "inspect"}) == []
    assert sorted(loaded & (set(OTHER_MODELS) - {"experiments.models.threads"})) == []


_SAME_TEXT = """
import json, math, platform, sys
from experiments import records, wire
values = [
    {"a": 1, "b": [1.5, None, True, False, "\\u00e9\\u2603\\n\\"x\\\\", 1e300, -0.0, 0.1, 2**70]},
    {"nested": {"k": {"z": []}}, "f": 123456789.123456789, "s": "\\x00\\x1f\\ud83d"},
    {"inf": math.inf, "nan": math.nan}, [], "text", 3.0,
    records.make_record({"run_id": "r", "cell_id": "c", "model_config": {"create": "serial"}},
                        0, "invalid", "RuntimeError: Failed to import encodings module \\u2014"),
]
for value in values:
    text = json.dumps(value)
    assert wire.dumps(value) == text, (wire.dumps(value), text)
    back, expected = wire.loads("  " + text + "\\n"), json.loads(text)
    assert repr(back) == repr(expected), (back, expected)
for bad in ("", "{", "{} x", '{"a": }', "[1,]"):
    try:
        wire.loads(bad)
    except ValueError:
        pass
    else:
        raise AssertionError(bad)
assert records.make_record({}, 0, "ok")["python_version"] == platform.python_version()
print("same")
"""


def test_records_are_the_text_json_writes(target_python: Path) -> None:
    """experiments.wire drives json's own C scanner and encoder: identical text and values,
    and the record's python_version is platform.python_version()'s."""
    done = subprocess.run([str(target_python), "-E", "-s", "-c", _SAME_TEXT], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "same"
