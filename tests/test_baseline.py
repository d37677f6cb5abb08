"""Issue 18: every model is measured against sequential. A run that names parallel models
without `sequential` gets its sequential cells and says so; --no-baseline opts out and is
refused beside a sequential model."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from gilbench import matrix as matrices
from gilbench.errors import GilbenchError
from gilbench.report.run import advise_run
from tests.conftest import invoke
from tests.test_cli_errors import assert_refused


def _single(models: list[str]) -> matrices.Matrix:
    return matrices.single_cell(models, "fib", [1, 2], {}, {"n": [18]}, 3, 0, 60.0)


def test_parallel_models_get_their_sequential_baseline() -> None:
    chosen, note = matrices.with_baseline(_single(["threads"]))
    assert list(chosen.models) == ["sequential", "threads"]
    assert note.startswith("Added the sequential baseline for the same workloads and pythons")
    cells = matrices.expand(chosen, {"native:/p": "p"})
    assert [(c["model"], c["workers"]) for c in cells] == [
        ("sequential", 1), ("threads", 1), ("threads", 2)]
    # nothing to add when sequential is there; --no-baseline keeps the matrix as given
    same, note = matrices.with_baseline(_single(["sequential", "threads"]))
    assert list(same.models) == ["sequential", "threads"] and note == ""
    kept, note = matrices.with_baseline(_single(["threads"]), no_baseline=True)
    assert list(kept.models) == ["threads"] and note == ""
    with pytest.raises(GilbenchError, match=r"^--no-baseline asks for no sequential cells, but "
                                            r"command-line names the sequential model; drop"):
        matrices.with_baseline(_single(["sequential", "threads"]), no_baseline=True)


def test_no_baseline_with_a_sequential_model_is_one_sentence(tmp_path: Path) -> None:
    results = tmp_path / "results"
    env = {"INVOKE_GILBENCH_RESULTS_DIR": str(results),
           "DOCKER_HOST": f"unix://{tmp_path}/none.sock"}
    assert_refused(invoke("experiment", "--model", "sequential,threads", "--workload", "fib",
                          "--python", "/bin/sh", "--no-baseline", env=env),
                   "--no-baseline asks for no sequential cells")
    assert_refused(invoke("experiment", "--matrix", "quick", "--no-baseline", env=env),
                   "quick.toml names the sequential model")
    assert not results.exists() or not any(results.iterdir())


def test_a_one_model_experiment_gets_a_speedup(python313: Path, tmp_path: Path) -> None:
    """`invoke experiment --workload io --model threads --workers 1,2`, for real: the
    sequential cells are added, so the run has a decision with a speedup."""
    results = tmp_path / "results"
    out = invoke("experiment", "--workload", "io", "--param", "ms=10", "--model", "threads",
                 "--workers", "1,2", "--repetitions", "3", "--warmups", "0",
                 "--python", str(python313),
                 env={"INVOKE_GILBENCH_RESULTS_DIR": str(results)})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Added the sequential baseline" in out.stdout
    [run] = list(results.iterdir())
    models = {json.loads(line)["model"]
              for line in (run / "records.jsonl").read_text().splitlines()}
    assert models == {"sequential", "threads"}
    [decision] = advise_run(run).decisions
    # sleeping threads overlap: about 2x at 2 workers
    assert decision.advice["choice"] == "threads" and decision.advice["speedup"] > 1.5


def test_the_added_baseline_is_in_the_matrix_text_that_reproduce_plans_from() -> None:
    """`invoke reproduce` plans the cells again from the manifest's matrix text, so the
    sequential cells added here must be in it: as JSON for a single-cell run, as a TOML
    table for a matrix file."""
    single, _ = matrices.with_baseline(_single(["threads"]))
    assert list(json.loads(single.text)["models"]) == ["sequential", "threads"]
    quick = matrices.load("quick")
    parallel = matrices.parse({**tomllib.loads(quick.text),
                               "models": {"threads": {}, "processes": {}}},
                              "quick", text="workers = [1, 2]\n[models.threads]\n"
                              "[models.processes]\n[workloads.fib]\n")
    added, _ = matrices.with_baseline(parallel)
    assert "sequential" in tomllib.loads(added.text)["models"]
