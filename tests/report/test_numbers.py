"""Aggregates checked against numbers computed by hand."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from gilbench.report import stats
from gilbench.report.aggregate import summarize
from gilbench.report.load import load_run

from .helpers import PYTHON, manifest, record, write_run


@pytest.fixture
def small(tmp_path: Path) -> pd.DataFrame:
    records = [
        record("sequential", 1, i, wall, peak_rss_kb=10000)
        for i, wall in enumerate([1.0, 1.2, 1.1])
    ]
    records += [
        record("threads", 2, i, wall, startup_s=startup, peak_rss_kb=12000)
        for i, (wall, startup) in enumerate([(0.6, 0.01), (0.5, 0.03), (0.55, 0.02)])
    ]
    records.append(record("threads", 2, 3, None))  # one crashed repetition
    records += [record("subinterpreters", 2, i, wall) for i, wall in enumerate([0.5, 0.52])]
    run = load_run(write_run(tmp_path / "run", manifest(), records))
    return summarize(run).frame.set_index("model")


def test_median_iqr_and_ci_by_hand(small: pd.DataFrame) -> None:
    sequential = small.loc["sequential"]
    assert sequential["wall_median_s"] == pytest.approx(1.1)
    # sorted 1.0, 1.1, 1.2: linear interpolation puts Q1 at 1.05 and Q3 at 1.15
    assert sequential["wall_q1_s"] == pytest.approx(1.05)
    assert sequential["wall_q3_s"] == pytest.approx(1.15)
    assert sequential["wall_iqr_s"] == pytest.approx(0.1)
    assert sequential["wall_ci_low_s"] <= 1.1 <= sequential["wall_ci_high_s"]
    assert sequential["wall_ci_low_s"] >= 1.0 and sequential["wall_ci_high_s"] <= 1.2
    threads = small.loc["threads"]
    assert threads["wall_median_s"] == pytest.approx(0.55)
    assert threads["wall_iqr_s"] == pytest.approx(0.05)


def test_speedup_efficiency_throughput_by_hand(small: pd.DataFrame) -> None:
    threads = small.loc["threads"]
    assert threads["speedup"] == pytest.approx(1.1 / 0.55)  # 2.0
    assert threads["efficiency"] == pytest.approx(1.0)
    assert threads["speedup_ci_low"] <= 2.0 <= threads["speedup_ci_high"]
    # throughput: 8 tasks / wall; median of 8/0.6, 8/0.5, 8/0.55 is 8/0.55
    assert threads["throughput_median"] == pytest.approx(8 / 0.55)
    assert threads["rel_throughput"] == pytest.approx((8 / 0.55) / (8 / 1.1))
    assert threads["baseline_python"] == "3.13.0"
    sequential = small.loc["sequential"]
    assert sequential["speedup"] == 1.0
    assert (sequential["speedup_ci_low"], sequential["speedup_ci_high"]) == (1.0, 1.0)


def test_costs_and_status_counts_by_hand(small: pd.DataFrame) -> None:
    threads = small.loc["threads"]
    assert threads["startup_median_s"] == pytest.approx(0.02)
    assert threads["startup_per_worker_s"] == pytest.approx(0.01)
    assert threads["rss_per_worker_kb"] == pytest.approx(6000)
    assert threads["extra_rss_per_worker_kb"] == pytest.approx((12000 - 10000) / 2)
    assert (threads["n_records"], threads["n_ok"], threads["n_crashed"]) == (4, 3, 1)
    assert threads["status"] == "crashed"
    assert threads["messages"] == "killed by SIGSEGV"
    assert threads["cpu_median_s"] == pytest.approx(0.55)


def test_unstable_flags(small: pd.DataFrame) -> None:
    # stdev/mean and IQR/median are both ~9.1% here: just under pyperf's 10% line
    assert not small.loc["sequential", "unstable"]
    assert not small.loc["threads", "unstable"]
    assert small.loc["subinterpreters", "unstable"]
    assert small.loc["subinterpreters", "unstable_reason"] == "only 2 ok sample(s)"
    noisy = stats.as_array([1.0, 1.5, 1.0, 1.6])
    assert "stdev" in stats.instability(noisy)


def test_bootstrap_is_seeded() -> None:
    values = stats.as_array([1.0, 1.2, 1.1, 1.3, 0.9])
    assert stats.bootstrap_median_ci(values, 7) == stats.bootstrap_median_ci(values, 7)
    low, high = stats.bootstrap_median_ci(values, 7)
    assert 0.9 <= low <= 1.1 <= high <= 1.3


def test_frame_types(small: pd.DataFrame) -> None:
    assert isinstance(small["status"].dtype, pd.CategoricalDtype)
    assert str(small["workers"].dtype) == "Int64"
    assert small["wall_median_s"].dtype == "float64"
    assert small.loc["threads", "workload_params"] == "n=24,tasks=8"
    assert small.loc["threads", "model_config"] == "-"
    assert small.loc["subinterpreters", "model_config"] == "gil=own"


def test_free_threaded_build_with_the_gil_back_is_a_finding(tmp_path: Path) -> None:
    from gilbench.report.findings import key_findings

    run_manifest = manifest()
    info = run_manifest["pythons"][PYTHON]
    info.update(label="3.13.0t", gil_disabled=True)
    records = [record("sequential", 1, i, 1.0, gil_enabled=True) for i in range(3)]
    findings = key_findings(summarize(load_run(write_run(tmp_path / "r", run_manifest, records))))
    assert any("On 3.13.0t, a free-threaded build, the GIL was enabled" in f for f in findings)
    # no GIL build of 3.13.0 in the run: no cross-build reference, and the report says so
    assert summarize(load_run(tmp_path / "r")).notes == [
        "No GIL build of 3.13.0 is in this run, so 3.13.0t has no cross-build throughput reference."
    ]
