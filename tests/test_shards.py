"""Issue 12, shards: a deterministic split of a matrix's cells, balanced by expected cost;
bad shard specs are one sentence and write nothing."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from gilbench import matrix, shards
from gilbench.errors import GilbenchError
from tests.conftest import invoke

PYTHONS = {"native:/usr/bin/python3.12": "3.12 native", "native:/usr/bin/python3.13": "3.13"}


def _cells(name: str) -> list[dict[str, Any]]:
    return matrix.expand(matrix.load(name), PYTHONS)


def _cost(cells: list[dict[str, Any]]) -> float:
    return sum(shards.cell_cost(cell) for cell in cells)


@pytest.mark.parametrize("name", ["quick", "default"])
@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_every_cell_lands_in_exactly_one_shard_whatever_the_order(name: str,
                                                                  count: int) -> None:
    cells = _cells(name)
    parts = [shards.shard_cells(cells, i, count) for i in range(1, count + 1)]
    ids = [cell["cell_id"] for part in parts for cell in part]
    assert sorted(ids) == sorted(cell["cell_id"] for cell in cells)
    assert len(ids) == len(set(ids))
    shuffled = list(cells)
    random.Random(7).shuffle(shuffled)  # the order cells come in does not matter
    for i, part in enumerate(parts, 1):
        again = shards.shard_cells(shuffled, i, count)
        assert {c["cell_id"] for c in again} == {c["cell_id"] for c in part}


@pytest.mark.parametrize("name", ["quick", "default"])
@pytest.mark.parametrize("count", [2, 3, 4])
def test_shards_are_balanced_by_cost(name: str, count: int) -> None:
    costs = [_cost(part) for part in shards.assign(_cells(name), count)]
    assert max(costs) / min(costs) < 1.25, costs


def test_cost_balancing_beats_count_balancing_on_a_skewed_matrix() -> None:
    skewed = matrix.parse({
        "models": {"sequential": {}, "threads": {}, "processes": {"start_method": "spawn"}},
        "workloads": {"fib": {"n": [20, 30]}, "io": {"ms": 1}},
        "workers": [1, 2, 4, 8], "repetitions": 3}, name="skewed")
    cells = matrix.expand(skewed, PYTHONS)
    by_cost = [_cost(part) for part in shards.assign(cells, 3)]
    size = -(-len(cells) // 3)  # the same number of cells each, in matrix order
    by_count = [_cost(cells[i * size:(i + 1) * size]) for i in range(3)]
    assert max(by_cost) / min(by_cost) < 1.1
    assert max(by_cost) / min(by_cost) < max(by_count) / min(by_count)
    assert max(by_cost) < max(by_count)  # the slowest shard, which the merge waits for


def test_bigger_workloads_and_spawned_workers_cost_more() -> None:
    base = {"cell_id": "c-x", "python": "p", "model": "processes", "model_config":
            {"start_method": "fork"}, "workload": "fib", "workload_params": {"n": 27, "tasks": 8},
            "workers": 2, "warmups": 1, "repetitions": [0, 1, 2], "timeout_s": 120.0}
    assert shards.cell_cost({**base, "workload_params": {"n": 30, "tasks": 8}}) > 3 * (
        shards.cell_cost(base) - 3 * shards.PROCESS_S)
    assert shards.cell_cost({**base, "model_config": {"start_method": "spawn"}}) > (
        shards.cell_cost(base))
    hang = {**base, "workload": "hang", "workload_params": {"tasks": 1}, "timeout_s": 5.0}
    assert shards.cell_cost(hang) == pytest.approx(3 * 2 * 5.0 + 3 * shards.PROCESS_S)


@pytest.mark.parametrize(("spec", "words"), [
    ("3/2", "out of range"), ("0/2", "out of range"), ("x/2", "I/N"), ("2", "I/N"),
    ("1/0", "at least 1"), ("-1/2", "out of range"),
])
def test_bad_shard_specs_are_refused(spec: str, words: str) -> None:
    with pytest.raises(GilbenchError, match=words):
        shards.parse(spec)


def test_a_shard_spec_parses() -> None:
    assert shards.parse(" 2/3 ") == shards.Shard(2, 3)
    assert str(shards.Shard(1, 4)) == "1/4"


@pytest.mark.parametrize(("args", "words"), [
    (["--shard", "3/2"], "out of range"),
    (["--shard", "0/2"], "out of range"),
    (["--shard", "x/2"], "must look like I/N"),
    (["--shard", "1/2", "--resume", "somerun"], "--shard cannot be given with --resume"),
    (["--shard", "40/40"], "holds no cells"),
])
def test_bad_shards_on_the_command_line_are_one_sentence(
        args: list[str], words: str, tmp_path: Path, python312: Path) -> None:
    results = tmp_path / "results"
    done = invoke("experiment", "--matrix", "quick", "--python", str(python312),
                  "--backend", "native", *args,
                  env={"INVOKE_GILBENCH_RESULTS_DIR": str(results)}, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert words in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not results.exists() or not any(results.iterdir())  # nothing half-written


def test_a_killed_shard_resumes_as_the_same_shard(python312: Path, tmp_path: Path) -> None:
    """A shard is an ordinary run: killed, it resumes into its own cells only."""
    import os
    import signal
    import subprocess
    import sys

    from gilbench import runfolder
    from tests.conftest import REPO, wait_for_records

    results = tmp_path / "results"
    env = {"INVOKE_GILBENCH_RESULTS_DIR": str(results)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "experiment", "--matrix", "quick", "--python",
         str(python312), "--backend", "native", "--shard", "2/3"],
        cwd=REPO, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True)
    killed = wait_for_records(results, 4)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert runfolder.read_manifest(killed).finished_at is None
    done = invoke("experiment", "--resume", str(killed), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = runfolder.read_manifest(killed)
    assert (manifest.shard["index"], manifest.shard["count"]) == (2, 3)
    planned = {c["cell_id"] for c in manifest.shard["cells"] if c["shard"] == 2}
    assert {c["cell_id"] for c in manifest.cells} == planned
    records = runfolder.read_records(killed).records
    assert {r["cell_id"] for r in records} == planned
    assert not runfolder.completeness(killed, manifest, records).partial
