"""The catalog is plain data the host (Python 3.11, this venv) can import and reuse."""

from __future__ import annotations

import subprocess
import sys

from driver_runs import REPO, import_catalog

catalog = import_catalog()

GOOD = {
    "run_id": "r", "cell_id": "c", "python": "p", "model": "subinterpreters",
    "model_config": {"gil": "own"}, "workload": "fib", "workload_params": {"n": 20, "tasks": 4},
    "workers": 2, "warmups": 1, "repetitions": [0, 1], "timeout_s": 60,
}


def test_imports_on_the_host_python_without_side_effects() -> None:
    code = (
        "import sys, experiments.catalog;"
        "print(sorted(m for m in sys.modules if m.startswith('experiments')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "['experiments', 'experiments.catalog']"
    assert out.stderr == ""


def test_every_model_and_workload_has_defaults() -> None:
    for model in catalog.MODELS.values():
        assert tuple(model["min_python"]) >= (3, 12)
        for axis in model["config"].values():
            assert axis["default"] in axis["values"]
    for workload in catalog.WORKLOADS.values():
        assert workload["kind"] in (
            "cpu", "cpu-nogil", "io", "mixed", "alloc", "transfer", "contended", "startup",
            "diagnostic")
        assert workload["params"]["tasks"] >= 1
        assert workload["size"] is None or workload["size"] in workload["params"]


def test_valid_cell_has_no_problems() -> None:
    assert catalog.validate_cell(GOOD) == []


def test_problems_name_the_key() -> None:
    bad = {**GOOD, "workers": 0, "model_config": {"gil": "mine", "turbo": True},
           "workload_params": {"n": -1, "colour": 3}}
    del bad["timeout_s"]
    assert catalog.validate_cell(bad) == ["'timeout_s' is missing."]
    bad["timeout_s"] = 5
    problems = " ".join(catalog.validate_cell(bad))
    for key in ("'workers'", "'model_config.gil'", "'model_config.turbo'",
                "'workload_params.n'", "'workload_params.colour'"):
        assert key in problems


def test_bool_is_not_accepted_as_a_count_nor_an_int_as_a_flag() -> None:
    assert catalog.validate_cell({**GOOD, "workers": True})
    assert catalog.validate_cell({**GOOD, "model_config": {"allow_fork": 1}})


def test_defaults_fill_in_what_is_not_given() -> None:
    assert catalog.model_config("processes", {}) == {"start_method": "spawn"}
    assert catalog.workload_params("fib", {"tasks": 2}) == {"n": 27, "tasks": 2}
