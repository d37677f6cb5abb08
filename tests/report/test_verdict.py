"""Issue 18: ties are ties, the cheapest of equals is the advice, unresolved comparisons say
"measure more", speedups above the cores are flagged, and `advise --json` follows its
hand-written schema. Constructed runs with hand-computed numbers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from gilbench.report import plots
from gilbench.report.aggregate import summarize
from gilbench.report.decision import decisions, standing
from gilbench.report.load import load_run
from gilbench.report.run import advise_run, report_run
from tests.conftest import REPO, invoke

from .helpers import RUN_B, manifest, record, write_run

SCHEMA = json.loads((REPO / "docs" / "advise.schema.json").read_text(encoding="utf-8"))


def _startup(model: str, workers: int, repetition: int, startup_s: float,
             **config: object) -> dict[str, object]:
    return record(model, workers, repetition, 1e-4, cell_id=f"s-{model}-{workers}",
                  workload="startup", workload_params={"tasks": 8}, startup_s=startup_s,
                  teardown_s=0.0, **config)


def _decide(folder: Path, records: list[dict[str, object]]):  # type: ignore[no-untyped-def]
    return decisions(summarize(load_run(write_run(folder, manifest(), records))))


def test_a_one_percent_difference_is_a_tie_and_the_cheaper_slower_model_is_the_choice(
        tmp_path: Path) -> None:
    io = {"workload": "io", "workload_params": {"ms": 20, "tasks": 8}}
    records = [record("sequential", 1, i, 0.160 + i * 1e-4, cell_id="q", **io) for i in range(5)]
    # sub-interpreters 4.00x, threads 1% slower (3.96x): a tie, and threads start 100x faster
    records += [record("subinterpreters", 4, i, 0.0400 + i * 1e-5, cell_id="si", **io)
                for i in range(5)]
    records += [record("threads", 4, i, 0.0404 + i * 1e-5, cell_id="th", **io)
                for i in range(5)]
    records += [_startup("sequential", 1, i, 0.0) for i in range(5)]
    records += [_startup("subinterpreters", 4, i, 0.050, model_config={"gil": "own"})
                for i in range(5)]
    records += [_startup("threads", 4, i, 0.0005) for i in range(5)]
    [io_decision, _] = _decide(tmp_path / "r", records)
    advice = io_decision.advice
    assert advice["verdict"] == "tie" and "tie" in advice["flags"]
    assert advice["fastest"] == "subinterpreters(gil=own)"
    assert advice["choice"] == "threads" and advice["tied"] == ["subinterpreters(gil=own)"]
    assert advice["startup_s"] == pytest.approx(0.0005)
    assert io_decision.headline.startswith(
        "io(ms=20,tasks=8) on 3.13.0: threads 3.96x at 4 workers")
    assert "(ties subinterpreters(gil=own) 4.00x within " in io_decision.headline
    assert "starts 100x faster" in io_decision.headline


def test_a_ratio_ci_of_0_9_to_1_1_is_unresolved_not_a_win(tmp_path: Path) -> None:
    assert standing("x", 0.99, 0.90, 1.10).kind == "unresolved"
    assert standing("x", 0.99, 0.96, 1.02).kind == "tie"
    assert standing("x", 0.90, 0.85, 0.93).kind == "behind"
    # a constructed frame: two noisy models 1% apart whose ratio CI reaches 0.9 and 1.1
    records = [record("sequential", 1, i, 1.0) for i in range(5)]
    walls = [0.45, 0.48, 0.50, 0.53, 0.56]
    records += [record("processes", 2, i, w, cell_id="p") for i, w in enumerate(walls)]
    records += [record("subinterpreters", 2, i, w * 1.01, cell_id="s")
                for i, w in enumerate(walls)]
    [fib] = _decide(tmp_path / "r", records)
    assert fib.advice["verdict"] == "unresolved" and "unresolved" in fib.advice["flags"]
    assert fib.advice["unresolved_with"] == ["subinterpreters(gil=own)"]
    assert "unresolved between processes" in fib.headline
    assert "measure more: `invoke experiment" in fib.headline and "--target-ci 1%" in fib.headline


def test_a_clear_lead_is_named_with_its_ratio(tmp_path: Path) -> None:
    records = [record("sequential", 1, i, 1.0 + i * 1e-3) for i in range(5)]
    records += [record("processes", 2, i, 0.55 + i * 1e-3, cell_id="p") for i in range(5)]
    records += [record("threads", 2, i, 1.0 + i * 1e-3, cell_id="t") for i in range(5)]
    [fib] = _decide(tmp_path / "r", records)
    assert fib.advice["verdict"] == "clear" and fib.advice["choice"] == "processes"
    assert "; threads 1.00x is 45% slower (95% CI of the ratio" in fib.headline


def test_a_cpu_bound_speedup_above_the_cores_is_flagged_never_headlined(tmp_path: Path) -> None:
    # 2.3x at 4 workers on 2 cores, CI about 1.9-2.5: the CI's low end is below the cores,
    # the median is not
    records = [record("sequential", 1, i, 1.0) for i in range(5)]
    walls = [0.40, 0.40, 0.435, 0.526, 0.526]
    records += [record("processes", 4, i, w, cell_id="p4") for i, w in enumerate(walls)]
    records += [record("processes", 2, i, 0.52 + i * 1e-3, cell_id="p2") for i in range(5)]
    run = write_run(tmp_path / "r", manifest(), records)
    summary = summarize(load_run(run))
    four = summary.frame[summary.frame["workers"] == 4].iloc[0]
    assert four["speedup"] == pytest.approx(2.3, abs=0.01)
    assert four["speedup_ci_low"] < 2 < four["speedup_ci_high"]
    assert four["artefact"] == ("speedup 2.30x is above the 2 usable cores: the baseline "
                                "probably ran slow")
    [fib] = decisions(summary)
    assert fib.advice["workers"] == 2 and "above-cores" in fib.advice["flags"]
    assert fib.headline.startswith("fib(n=24,tasks=8) on 3.13.0: processes 1.92x at 2 workers")
    assert ("processes 2.30x at 4 workers is above the 2 usable cores: the baseline probably "
            "ran slow, so it is not counted") in fib.headline
    # flagged where it is shown: the plot marks the point, the results table's note says why
    figure = plots.speedup_figure(summary.frame, "t")
    marked = [c for ax in figure.axes for c in ax.collections
              if c.get_label() == plots.IMPLAUSIBLE]
    assert len(marked) == 1 and marked[0].get_offsets().tolist() == [[4.0, pytest.approx(2.3,
                                                                                        abs=0.01)]]
    report = report_run(run).report_md.read_text()
    assert "| speedup 2.30x is above the 2 usable cores: the baseline probably ran slow |" \
        in report
    assert "| 0.522 | at the 2-core ceiling |" in report  # 1.92x: within 5% of 2
    advice = advise_run(run)
    assert advice.preamble == [
        "This host has 2 usable cores, so CPU-bound speedups cannot exceed 2; a higher one "
        "means the sequential baseline ran slow and is flagged, never counted."]


def test_no_model_known_to_beat_sequential_means_stay_sequential(tmp_path: Path) -> None:
    records = [record("sequential", 1, i, 1.0 + i * 1e-2) for i in range(5)]
    records += [record("threads", 2, i, 1.01 + i * 1e-2, cell_id="t") for i in range(5)]
    [fib] = _decide(tmp_path / "r", records)
    assert fib.advice["verdict"] == "no gain" and fib.advice["choice"] == "sequential"
    assert fib.advice["fastest"] == "threads" and "no-gain" in fib.advice["flags"]
    assert fib.headline.startswith("fib(n=24,tasks=8) on 3.13.0: stay sequential; no model is "
                                   "clearly faster (the fastest, threads, 0.99x at 2 workers")
    jsonschema.validate(fib.advice, {"$defs": SCHEMA["$defs"], "$ref": "#/$defs/decision"})


def test_a_speedup_within_five_percent_of_the_cores_is_at_the_ceiling(tmp_path: Path) -> None:
    records = [record("sequential", 1, i, 1.0) for i in range(5)]
    records += [record("processes", 2, i, 0.488 + i * 1e-3, cell_id="p") for i in range(5)]
    [fib] = _decide(tmp_path / "r", records)
    assert "at-core-ceiling" in fib.advice["flags"] and "above-cores" not in fib.advice["flags"]
    assert ", at the 2-core ceiling" in fib.headline


def test_advise_json_follows_the_hand_written_schema(tmp_path: Path) -> None:
    document = advise_run(RUN_B).as_json()
    jsonschema.validate(document, SCHEMA)
    pairs = {(d["workload"], d["python"]) for d in document["decisions"]}
    assert len(pairs) == len(document["decisions"]) == 4
    # the free-threaded build of the same version is compared head to head
    [fib] = [a for a in document["across_builds"] if a["workload"].startswith("fib")]
    assert fib["free_threaded"] == "3.13.5-ft" and fib["gil_build"] == "3.13.5-pgo"
    assert fib["text"].startswith("fib(n=24,tasks=8) across builds: fastest is ")
    assert "single-thread cost is" in fib["text"] and "free-threaded threads reach" in fib["text"]
    # ...through the command line too, and a run with no ok records is one sentence
    results = tmp_path / "results"
    shutil.copytree(RUN_B, results / RUN_B.name)
    out = invoke("advise", "--json", env={"INVOKE_GILBENCH_RESULTS_DIR": str(results)})
    assert out.returncode == 0, out.stderr
    jsonschema.validate(json.loads(out.stdout), SCHEMA)
    write_run(results / "20261201T000000Z-none", manifest(run_id="20261201T000000Z-none"),
              [record("sequential", 1, i, None) for i in range(3)])
    bad = invoke("advise", "--json", "--run", "20261201T000000Z-none",
                 env={"INVOKE_GILBENCH_RESULTS_DIR": str(results)})
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.startswith("error: Run 20261201T000000Z-none has no workload with ok")
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_a_free_threaded_build_has_no_gil_to_share(tmp_path: Path) -> None:
    labels = set(summarize(load_run(RUN_B)).frame["model_label"].astype(str))
    assert "subinterpreters(gil=shared, no GIL)" in labels  # on 3.13.5-ft
    assert "subinterpreters(gil=own)" in labels  # on 3.13.5-pgo
