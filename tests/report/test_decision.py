"""The decision table: break-even job sizes checked by hand, winners and their runner-up."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gilbench.report.aggregate import summarize
from gilbench.report.decision import BreakEven, best_break_even, break_even, decisions
from gilbench.report.load import load_run

from .helpers import manifest, record, write_run


def test_break_even_against_sequential_by_hand() -> None:
    # s = 35 ms, S = 2: 0.035 + W/2 < W  <=>  W > 0.035 / (1 - 1/2) = 0.070 s
    assert break_even(0.035, 2.0) == BreakEven("above", pytest.approx(0.070))
    # s = 60 ms, S = 4: W > 0.060 / 0.75 = 0.080 s
    assert break_even(0.060, 4.0) == BreakEven("above", pytest.approx(0.080))
    # no start-up and S > 1: any job
    assert break_even(0.0, 1.5).kind == "always"
    # S <= 1 never repays a start-up
    assert break_even(0.010, 1.0).kind == "never"
    assert break_even(0.010, 0.8).kind == "never"
    assert break_even(math.nan, 2.0).kind == "unknown"


def test_break_even_against_threads_by_hand() -> None:
    # sub-interpreters s = 50 ms, S = 2; threads s_t = 1 ms, S_t = 1.25
    # 0.050 + W/2 < 0.001 + W/1.25  <=>  W (0.8 - 0.5) > 0.049  <=>  W > 0.1633 s
    assert break_even(0.050, 2.0, 0.001, 1.25) == BreakEven("above", pytest.approx(0.049 / 0.3))
    # starts faster (2 ms vs 5 ms) but scales worse (1.5 vs 2): wins only while
    # 0.002 + W/1.5 < 0.005 + W/2  <=>  W (2/3 - 1/2) < 0.003  <=>  W < 0.018 s
    assert break_even(0.002, 1.5, 0.005, 2.0) == BreakEven("below", pytest.approx(0.018))
    # starts faster and scales better: always
    assert break_even(0.001, 2.0, 0.005, 1.5).kind == "always"
    # starts slower and scales worse: never
    assert break_even(0.009, 1.5, 0.005, 2.0).kind == "never"


def test_the_most_favourable_break_even_is_chosen() -> None:
    above = [BreakEven("above", 0.2), BreakEven("above", 0.07), BreakEven("never")]
    assert best_break_even(above) == BreakEven("above", 0.07)
    assert best_break_even([*above, BreakEven("always")]).kind == "always"
    assert best_break_even([BreakEven("below", 0.01), BreakEven("below", 0.03)]).seconds == 0.03
    assert best_break_even([]).kind == "unknown"
    assert BreakEven("above", 0.1204).text() == "above 120 ms"
    assert BreakEven("below", 2.5).text() == "only below 2.5 s"


def _startup(model: str, workers: int, repetition: int, startup_s: float,
             **config: object) -> dict[str, object]:
    return record(model, workers, repetition, 1e-4, cell_id=f"s-{model}-{workers}",
                  workload="startup", workload_params={"tasks": 8}, startup_s=startup_s,
                  teardown_s=0.0, **config)


def test_decision_table_on_a_small_frame(tmp_path: Path) -> None:
    """fib: sequential 1.0 s; sub-interpreters 0.5 s at 2 workers (S = 2); threads 0.8 s
    (S = 1.25). The startup workload measured s = 50 ms for sub-interpreters and 1 ms for
    threads at 2 workers (the fib cells' own start-up, 0, is not used)."""
    records = [record("sequential", 1, i, 1.0 + i * 1e-3) for i in range(5)]
    records += [record("subinterpreters", 2, i, 0.5 + i * 1e-3) for i in range(5)]
    records += [record("threads", 2, i, 0.8 + i * 1e-3) for i in range(5)]
    records += [_startup("sequential", 1, i, 0.0) for i in range(5)]
    records += [_startup("subinterpreters", 2, i, 0.050, model_config={"gil": "own"})
                for i in range(5)]
    records += [_startup("threads", 2, i, 0.001) for i in range(5)]
    [fib, startup] = decisions(summarize(load_run(write_run(tmp_path / "r", manifest(), records))))

    assert fib.kind == "speedup"
    [winners] = fib.winners.to_dict("records")
    assert winners["workers"] == 2 and winners["winner"] == "subinterpreters(gil=own)"
    assert winners["runner_up"] == "threads"
    assert winners["verdict"] == "significant"  # 5 vs 5 samples, no overlap: p = 0.008
    models = fib.models.set_index("model_label")
    sub = models.loc["subinterpreters(gil=own)"]
    assert sub["startup_s"] == pytest.approx(0.050) and sub["startup_source"] == "startup workload"
    # medians 1.002 / 0.502 = 1.996; W > 0.050 / (1 - 1/1.996) = 0.1002 s
    assert sub["vs_sequential"].kind == "above"
    assert sub["vs_sequential"].seconds == pytest.approx(0.050 / (1 - 0.502 / 1.002))
    # against threads (s_t 1 ms, S_t = 1.002 / 0.802): W > 0.049 / (0.802 - 0.502) / 1.002
    assert sub["vs_threads"].seconds == pytest.approx(0.049 / ((0.802 - 0.502) / 1.002))
    assert "pays off for jobs longer than 100 ms of work" in fib.headline
    assert fib.headline.startswith("fib(n=24,tasks=8) on 3.13.0: subinterpreters(gil=own) 2.00x "
                                   "at 2 workers")
    # the startup workload is a cost table, never a speedup winner
    assert startup.kind == "startup" and startup.winners.empty
    assert "starting and stopping 2 workers costs threads 1 ms" in startup.headline
