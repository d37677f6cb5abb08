"""Memory per worker in the summary (issue 18): mem_total_median_kb, mib_per_worker and
mem_method, computed by hand from constructed records."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from gilbench.report.aggregate import MEMORY_METHOD, memory_per_worker, summarize
from gilbench.report.load import load_run

from .helpers import manifest, record, write_run


def _summary(tmp_path: Path, records: list[dict]) -> pd.DataFrame:
    return summarize(load_run(write_run(tmp_path / "run", manifest(), records))).frame


def test_slope_over_worker_counts_and_the_sequential_fallback(tmp_path: Path) -> None:
    records = [record("sequential", 1, i, 1.0, mem_total_kb=10_000) for i in range(3)]
    # threads: 10000, 12048, 16144 KiB at 1, 2, 4 workers: exactly 2048 KiB = 2 MiB each
    for workers, total in [(1, 10_000), (2, 12_048), (4, 16_144)]:
        records += [record("threads", workers, i, 0.5, mem_total_kb=total + jitter)
                    for i, jitter in enumerate([-7, 0, 7])]
    # one worker count only: (30000 - 10000) / 2 workers
    records += [record("subinterpreters", 2, i, 0.5, mem_total_kb=30_000) for i in range(2)]
    table = _summary(tmp_path, records)
    threads = table[table["model"] == "threads"]
    assert list(threads["mem_total_median_kb"]) == [10_000, 12_048, 16_144]
    assert list(threads["mib_per_worker"]) == pytest.approx([2.0] * 3)
    assert set(threads["mem_method"]) == {"slope over 3 worker counts"}
    (sub,) = table[table["model"] == "subinterpreters"].itertuples()
    assert sub.mib_per_worker == pytest.approx(20_000 / 2 / 1024)
    assert sub.mem_method == "vs sequential"
    (seq,) = table[table["model"] == "sequential"].itertuples()
    assert math.isnan(seq.mib_per_worker) and seq.mem_method == ""
    # the old columns stay
    assert {"rss_per_worker_kb", "extra_rss_per_worker_kb"} <= set(table.columns)


def test_least_squares_slope_of_uneven_points() -> None:
    frame = pd.DataFrame({
        "python": "p", "workload": "fib", "workload_params": "n=1", "model": "processes",
        "model_config": "start_method=spawn", "workers": [1, 2, 4],
        "mem_total_median_kb": [1024.0 * 10, 1024.0 * 21, 1024.0 * 39],
    })
    mib, method = memory_per_worker(frame)
    # x 1, 2, 4 (mean 7/3), y 10, 21, 39 (mean 70/3): dx -4/3, -1/3, 5/3; dy -40/3,
    # -7/3, 47/3; sum dx*dy / sum dx^2 = (402/9) / (42/9)
    assert mib == pytest.approx([402 / 42] * 3)
    assert method == ["slope over 3 worker counts"] * 3


def test_failed_samples_are_left_out_and_unknown_is_nan(tmp_path: Path) -> None:
    records = [record("sequential", 1, 0, 1.0)]  # an old record: no memory fields
    records += [record("threads", 2, 0, 0.5, mem_total_kb=None, mem_error="denied"),
                record("threads", 2, 1, 0.5, mem_total_kb=12_000)]
    records += [record("threads", 4, 0, 0.5, mem_total_kb=None, mem_error="denied")]
    table = _summary(tmp_path, records).set_index("workers")
    assert table.loc[2, "mem_total_median_kb"] == 12_000
    assert math.isnan(table.loc[4, "mem_total_median_kb"])
    # one worker count with a total, and no sequential total to subtract: unknown
    threads = table[table["model"] == "threads"]
    assert threads["mib_per_worker"].isna().all() and set(threads["mem_method"]) == {""}


def test_a_v2_record_without_memory_fields_loads_with_them_null(tmp_path: Path) -> None:
    old = record("sequential", 1, 0, 1.0, schema_version=2, round=None, attempt=None,
                 others_cpu_s=None, steal_s=None, throttled_s=None, contended=None)
    folder = write_run(tmp_path / "run", manifest(), [old])
    assert "mem_total_kb" not in json.loads((folder / "records.jsonl").read_text())
    run = load_run(folder)
    assert not run.warnings
    assert run.frame["mem_total_kb"].isna().all() and run.frame["mem_error"].isna().all()


def test_the_method_is_one_paragraph() -> None:
    assert "\n" not in MEMORY_METHOD and "PSS" in MEMORY_METHOD and "slope" in MEMORY_METHOD
