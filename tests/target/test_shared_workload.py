"""shared: a dict every worker updates, in place (threads) or sent back (elsewhere)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ok_or_creation_flake
from tests.target.driver_runs import (
    REPO,
    assert_well_formed,
    by_cell,
    cell,
    import_catalog,
    run_driver,
)

catalog = import_catalog()
from experiments import workloads  # noqa: E402  (after the repo is on sys.path)

SMALL = {"keys": 10, "updates": 1003, "batch": 7, "tasks": 4}


def _local(params: dict[str, int]) -> dict[int, int]:
    """One task's dict of counts, as a worker process or sub-interpreter returns it."""
    return workloads._shared_expected(params["keys"], params["updates"])


def test_expected_counts_are_what_counting_gives() -> None:
    for keys, updates in [(1, 5), (7, 3), (10, 1003), (64, 200), (97, 10_000)]:
        counted: dict[int, int] = {}
        for i in range(updates):
            key = (i * workloads._STEP) % keys
            counted[key] = counted.get(key, 0) + 1
        assert workloads._shared_expected(keys, updates) == counted, (keys, updates)


def test_a_task_here_counts_into_the_shared_dict_and_check_takes_it() -> None:
    tokens = [workloads.run_task("shared", SMALL) for _ in range(SMALL["tasks"])]
    assert tokens == [SMALL["updates"]] * SMALL["tasks"]
    assert sum(workloads._SHARED.values()) == SMALL["tasks"] * SMALL["updates"]
    assert workloads.check("shared", SMALL, tokens) == ""
    assert workloads._SHARED == {}  # the next run starts from zero
    # Tokens and returned dicts mix (no model does, but the check does not care).
    tokens = [workloads.run_task("shared", SMALL) for _ in range(2)]
    assert workloads.check("shared", SMALL, [*tokens, _local(SMALL), _local(SMALL)]) == ""


def test_wrong_totals_are_caught() -> None:
    good = [_local(SMALL) for _ in range(SMALL["tasks"])]
    assert workloads.check("shared", SMALL, good) == ""
    short = [dict(d) for d in good]
    short[2][0] -= 1  # one lost update
    assert "1 shared keys have the wrong count, e.g. key 0: 403, expected 404" in (
        workloads.check("shared", SMALL, short))
    assert "expected 4012" in workloads.check("shared", SMALL, good[:3])  # a task missing
    # Tokens whose increments are not in the shared dict (or a failed run's leftovers).
    assert "the shared dict holds 0 increments, but the 4 tasks" in workloads.check(
        "shared", SMALL, [SMALL["updates"]] * 4)
    workloads._shared(SMALL["keys"], 5, 1)  # leftovers of a run that never got checked
    assert "holds 5 increments" in workloads.check("shared", SMALL, good)
    assert workloads._SHARED == {}
    assert "returned None" in workloads.check("shared", SMALL, [None, *good[1:]])


def test_the_dict_crosses_interpreters_as_text_and_comes_back_whole() -> None:
    counts = _local(SMALL)
    sent = workloads.encode_result("shared", counts)
    assert isinstance(sent, str)
    assert workloads.decode_result("shared", sent) == counts
    assert workloads.decode_result("shared", workloads.encode_result("shared", 5)) == 5


@pytest.mark.parametrize(("param", "value", "problem"), [
    ("keys", 0, "'workload_params.keys' must be from 1 to 100000, got 0."),
    ("keys", -1, "'workload_params.keys' must be from 1 to 100000, got -1."),
    ("updates", 10**8 + 1,
     "'workload_params.updates' must be from 1 to 100000000, got 100000001."),
    ("batch", "8", "'workload_params.batch' must be an integer from 1 to 100000, got '8'."),
    ("batch", True, "'workload_params.batch' must be an integer from 1 to 100000, got True."),
])
def test_out_of_range_params_name_the_range(param: str, value: object, problem: str) -> None:
    spec = cell("c", "threads", "shared", workload_params={param: value})
    assert catalog.validate_cell(spec) == [problem]
    for ok in (1, catalog.WORKLOADS["shared"]["bounds"][param][1]):
        assert catalog.validate_cell(cell("c", "threads", "shared",
                                          workload_params={param: ok})) == []


CELL_PARAMS = {"keys": 64, "updates": 20_000, "tasks": 4}
CELLS = [
    cell("seq", "sequential", "shared", workers=1, warmups=1, workload_params=CELL_PARAMS),
    cell("threads", "threads", "shared", warmups=1, workload_params=CELL_PARAMS),
    cell("fork", "processes", "shared", model_config={"start_method": "fork"},
         workload_params=CELL_PARAMS),
    cell("spawn", "processes", "shared", model_config={"start_method": "spawn"},
         workload_params=CELL_PARAMS),
    cell("sub-own", "subinterpreters", "shared", warmups=1, workload_params=CELL_PARAMS),
]


def test_every_model_runs_it_and_the_totals_check(target_python: Path, tmp_path: Path) -> None:
    records = by_cell(run_driver(target_python, CELLS, tmp_path)[0])
    for spec in CELLS:
        got = records[spec["cell_id"]]
        assert sorted(r["repetition"] for r in got) == spec["repetitions"]
        for record in got:
            assert_well_formed(record)
            if spec["model"] == "subinterpreters":
                assert ok_or_creation_flake(record), record
            else:
                assert record["status"] == "ok", record


# Which branch each model's tasks took, seen from their results in the cell's process.
WHERE = """\
import json, sys
from experiments import catalog
from experiments.models import load
params = catalog.workload_params("shared", {"keys": 16, "updates": 500, "tasks": 4})
out = {}
for name, model, config in [("seq", "sequential", {}), ("threads", "threads", {}),
                            ("fork", "processes", {"start_method": "fork"}),
                            ("spawn", "processes", {"start_method": "spawn"}),
                            ("sub-own", "subinterpreters", {})]:
    phases = load(model).run("shared", params, 2, catalog.model_config(model, config))
    from experiments import workloads
    out[name] = [sorted({type(r).__name__ for r in phases.results}),
                 workloads.check("shared", params, phases.results)]
print(json.dumps(out))
"""


def test_threads_share_the_dict_and_other_workers_send_theirs(target_python: Path) -> None:
    done = subprocess.run([str(target_python), "-E", "-s", "-c", WHERE], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    where = json.loads(done.stdout)
    assert where == {
        "seq": [["int"], ""], "threads": [["int"], ""], "fork": [["dict"], ""],
        "spawn": [["dict"], ""], "sub-own": [["dict"], ""],
    }
