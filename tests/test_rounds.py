"""Issue 8: drift-proof order. Repetition k of every cell, on every python, runs before
repetition k+1 of any; each round is recorded and survives a resume."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from gilbench import runfolder
from gilbench.run import plan_rounds
from tests.conftest import invoke


def _cell(cell_id: str, python: str, repetitions: list[int]) -> dict[str, object]:
    return {"cell_id": cell_id, "python": python, "repetitions": repetitions}


def test_rounds_interleave_cells_and_pythons() -> None:
    cells = [_cell("a", "p1", [0, 1, 2]), _cell("b", "p2", [0, 1, 2]), _cell("c", "p1", [1, 2])]
    plan = [(n, [(c["cell_id"], c["python"], c["repetitions"], c["round"]) for c in cells_])
            for n, cells_ in plan_rounds(cells, 1)]
    assert plan == [
        (0, [("a", "p1", [0], 0), ("b", "p2", [0], 0)]),
        (1, [("a", "p1", [1], 1), ("b", "p2", [1], 1), ("c", "p1", [1], 1)]),
        (2, [("a", "p1", [2], 2), ("b", "p2", [2], 2), ("c", "p1", [2], 2)]),
    ]


def test_a_batch_keeps_repetitions_together_and_a_resume_keeps_rounds() -> None:
    cells = [_cell("a", "p1", [0, 1, 2, 3, 4])]
    assert [(n, c[0]["repetitions"]) for n, c in plan_rounds(cells, 2)] == [
        (0, [0, 1]), (1, [2, 3]), (2, [4])]
    resumed = [_cell("a", "p1", [3, 4])]  # what a resume still owes
    assert [(n, c[0]["repetitions"]) for n, c in plan_rounds(resumed, 2)] == [
        (1, [3]), (2, [4])]


def test_a_run_over_two_pythons_goes_in_rounds(
    python312: Path, python313: Path, tmp_path: Path
) -> None:
    (tmp_path / "m.toml").write_text(
        "repetitions = 3\nwarmups = 0\nworkers = [2]\n[models.sequential]\n[models.threads]\n"
        "[workloads.io]\nms = 5\ntasks = 2\n")
    result = invoke("experiment", "--matrix", str(tmp_path / "m.toml"), "--python",
                    str(python312), "--python", str(python313),
                    env={"INVOKE_GILBENCH_RESULTS_DIR": str(tmp_path / "results")})
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = (tmp_path / "results").iterdir()
    records = runfolder.read_records(run_dir).records
    assert runfolder.read_manifest(run_dir).order["batch"] == 1
    # In file order: all of round 0 (4 cells over 2 pythons), then round 1, then round 2.
    assert [r["round"] for r in records] == [0] * 4 + [1] * 4 + [2] * 4
    assert all(r["round"] == r["repetition"] for r in records)
    for number in range(3):
        in_round = [r for r in records if r["round"] == number]
        assert Counter(r["python_version"][:4] for r in in_round) == {"3.12": 2, "3.13": 2}
