"""Issue 19, part 2: the host-speed canary. Its flag on injected canary timings (pure
functions, and a real cell process whose canary is replaced by fixed timings), and a real
cell under native 3.12 and 3.13 recording both canaries on every ok record.

Deterministic: no assertion depends on how fast this host is."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from driver_runs import REPO, assert_well_formed, by_cell, cell, run_driver

from experiments import canary, contention

QUIET = contention.Snapshot(busy_s=100.0, steal_s=0.0, throttled_s=None)


@pytest.mark.parametrize(("before", "after", "flagged"), [
    (1.0, 1.0, False),
    (1.0, 1.029, False),
    (1.0, 1.031, True),  # slower after
    (1.031, 1.0, True),  # faster after: the larger over the smaller
    (0.0102, 0.0100, False),
    (0.0100, 0.0104, True),
    (None, 1.0, False),  # no canary (a warmup, an old record): never a flag
    (1.0, None, False),
])
def test_the_flag_is_the_larger_canary_over_the_smaller_beyond_3_percent(
        before: float | None, after: float | None, flagged: bool) -> None:
    assert canary.MARGIN == 0.03
    assert canary.swung(before, after) is flagged


def test_the_difference_is_signed_and_a_margin_can_be_given() -> None:
    assert canary.difference(1.0, 1.5) == pytest.approx(0.5)
    assert canary.difference(1.5, 1.0) == pytest.approx(-0.5)
    assert canary.difference(0.0, 1.0) == 0.0
    assert not canary.swung(1.0, 1.05, margin=0.06)
    assert canary.swung(1.0, 1.07, margin=0.06)


def test_a_swung_canary_is_a_contention_cause_beside_the_others() -> None:
    assert contention.causes(0.0, 0.0, None, 1.0, 1.0, 1.02) == []
    assert contention.causes(0.0, 0.0, None, 1.0, 1.0, 1.05) == ["host-speed"]
    assert contention.causes(0.5, 0.0, 0.01, 1.0, 1.0, 1.05) == [
        "others", "throttling", "host-speed"]
    assert contention.causes(0.0, 0.0, None, 1.0) == []  # no canaries: as before
    quiet = contention.measure(QUIET, QUIET, 0.0, 1.0, 1.0, 1.01)
    swung = contention.measure(QUIET, QUIET, 0.0, 1.0, 1.0, 1.04)
    # recorded and reported, but not (yet) a reason to leave a value out: see
    # contention.HOST_SPEED_CONTENDS
    assert quiet["contended"] is False and swung["contended"] is False
    assert contention.measure(QUIET, QUIET, 0.0, 1.0)["contended"] is False


def test_a_swung_canary_contends_once_switched_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(contention, "HOST_SPEED_CONTENDS", True)
    assert contention.measure(QUIET, QUIET, 0.0, 1.0, 1.0, 1.04)["contended"] is True
    assert contention.measure(QUIET, QUIET, 0.0, 1.0, 1.0, 1.01)["contended"] is False


# Runs a cell as `-m experiments.cell` would, with the canary replaced by fixed timings:
# each value gets the next (before, after) pair.
_INJECTED = """
import io, runpy, sys
from experiments import canary
timings = iter({timings!r})
canary.measure = lambda: next(timings)
canary.cpu = lambda: 3
sys.stdin = io.StringIO({spec!r})
runpy.run_module("experiments.cell", run_name="__main__", alter_sys=True)
"""


def test_a_real_cell_flags_a_value_whose_injected_canaries_swung(target_python: Path) -> None:
    spec = cell("inject", "sequential", "fib", workers=1, warmups=1, repetitions=[0, 1, 2],
                workload_params={"n": 10, "tasks": 1})
    timings = [0.010, 0.0101, 0.010, 0.0110, 0.0110, 0.010]  # 1%, 10% slower, 10% faster
    done = subprocess.run(
        [str(target_python), "-E", "-s", "-c",
         _INJECTED.format(timings=timings, spec=json.dumps(spec))],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    for record in records:
        assert_well_formed(record)
    assert [(r["canary_before_s"], r["canary_after_s"]) for r in records] == [
        (0.010, 0.0101), (0.010, 0.0110), (0.0110, 0.010)]  # warmups take no canary
    assert [r["canary_cpu"] for r in records] == [3, 3, 3]
    # /proc/stat may see the busy host this test runs on: the canary's flag is what counts
    swung = [contention.causes(None, None, None, 1.0, r["canary_before_s"],
                               r["canary_after_s"]) for r in records]
    assert swung == [[], ["host-speed"], ["host-speed"]]


def test_a_real_cell_records_both_canaries_on_every_ok_record(target_python: Path,
                                                              tmp_path: Path) -> None:
    cells = [
        cell("seq", "sequential", "fib", workers=1, warmups=1, repetitions=[0, 1, 2],
             workload_params={"n": 18, "tasks": 2}),
        cell("thr", "threads", "fib", workers=2, repetitions=[0, 1],
             workload_params={"n": 18, "tasks": 2}),
        cell("bad", "threads", "fib", workers=2, repetitions=[0],
             workload_params={"n": -1, "tasks": 2}),
    ]
    found, _ = run_driver(target_python, cells, tmp_path)
    grouped = by_cell(found)
    assert len(grouped["seq"]) == 3 and len(grouped["thr"]) == 2
    for record in grouped["seq"] + grouped["thr"]:
        assert_well_formed(record)
        assert record["status"] == "ok", record
        for name in ("canary_before_s", "canary_after_s"):
            assert isinstance(record[name], float) and record[name] > 0, record
        assert record["canary_cpu"] is None or isinstance(record["canary_cpu"], int)
        causes = contention.causes(
            record["others_cpu_s"], record["steal_s"], record["throttled_s"],
            record["total_s"], record["canary_before_s"], record["canary_after_s"])
        assert record["contended"] is bool(set(causes) - {"host-speed"})
    for record in grouped["bad"]:
        assert_well_formed(record)
        assert record["status"] == "invalid"
        assert record["canary_before_s"] is None and record["canary_after_s"] is None
