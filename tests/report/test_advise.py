"""`invoke advise`: the decision in a few terminal lines; bad input is one sentence."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gilbench.report import ReportError
from gilbench.report.run import advise_run
from tests.conftest import invoke

from .helpers import RUN_A, RUN_B, manifest, record, write_run


def test_advice_names_the_winner_and_the_break_even() -> None:
    advice = advise_run(RUN_A)
    assert advice.run_id == RUN_A.name
    assert len(advice.headlines) == 4  # fib and io on two builds
    pgo = next(h for h in advice.headlines if h.startswith("fib(n=24,tasks=8) on 3.13.5-pgo"))
    assert "subinterpreters(gil=own) 1.9" in pgo and "pays off for jobs longer than" in pgo
    assert not list(RUN_A.glob("report.*"))  # advice writes nothing


def test_advice_for_one_workload_by_name_or_label() -> None:
    assert all(h.startswith("io(") for h in advise_run(RUN_A, "io").headlines)
    assert len(advise_run(RUN_A, "fib(n=24,tasks=8)").headlines) == 2
    with pytest.raises(ReportError, match=r"^Workload 'nbody' has no decision in run "
                                          r"20261125T130000Z-3f2a; its workloads are fib, io\.$"):
        advise_run(RUN_A, "nbody")


def test_nothing_to_decide_is_one_sentence(tmp_path: Path) -> None:
    records = [record("sequential", 1, i, None) for i in range(3)]
    run = write_run(tmp_path / "r", manifest(), records)
    with pytest.raises(ReportError, match="has no workload with ok sequential and parallel"):
        advise_run(run)


def test_the_command_line(tmp_path: Path) -> None:
    results = tmp_path / "results"
    shutil.copytree(RUN_A, results / RUN_A.name)
    shutil.copytree(RUN_B, results / RUN_B.name)
    env = {"INVOKE_GILBENCH_RESULTS_DIR": str(results)}
    good = invoke("advise", "--workload", "fib", env=env)
    assert good.returncode == 0, good.stderr
    lines = good.stdout.splitlines()
    assert lines[0] == RUN_B.name  # the newest run
    assert lines[1].startswith("This host has 2 usable cores, so CPU-bound speedups cannot")
    assert lines[2].startswith("fib(n=24,tasks=8) on 3.13.5-ft: ")
    assert any(line.startswith("fib(n=24,tasks=8) across builds: ") for line in lines)
    assert any(line.strip().startswith("it pays off for jobs longer than") for line in lines)
    for args, sentence in [
        (["--workload", "nope"], "error: Workload 'nope' has no decision in run"),
        (["--run", "missing"], "error: There is no run 'missing'"),
    ]:
        bad = invoke("advise", *args, env=env)
        assert bad.returncode == 1 and sentence in bad.stderr and "Traceback" not in bad.stderr
    empty = invoke("advise", env={"INVOKE_GILBENCH_RESULTS_DIR": str(tmp_path / "none")})
    assert empty.returncode == 1 and "Traceback" not in empty.stderr
    assert empty.stderr.startswith("error: ") and empty.stderr.count("\n") == 1
