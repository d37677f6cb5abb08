"""Issue 19, part 2, host side: host_speed, the swing rule and the noise floor, from
constructed records; old records without canaries still load and report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from experiments import records as schema
from gilbench.report import load_run, report_run
from gilbench.report.hostspeed import (
    MIN_PER_CPU,
    noise_floor,
    noise_sentence,
    swing_threshold,
    swung,
)
from gilbench.runfolder import _upgraded

from .helpers import PYTHON, manifest, record, write_run

FT = "native:/usr/bin/python3.13t"


def v3(model: str, workers: int, repetition: int, wall: float | None,
       canaries: tuple[float, float] | None = None, cpu: int | None = None,
       **overrides: Any) -> dict[str, Any]:
    """A schema-3 record with canaries (before, after), or a v3 record written before the
    canary fields existed when canaries is None."""
    data = record(model, workers, repetition, wall, **overrides)
    data.update(schema_version=3, round=None, attempt=None, others_cpu_s=0.0, steal_s=0.0,
                throttled_s=None, contended=False, mem_total_kb=None, mem_before_kb=None,
                mem_error=None)
    if canaries is not None:
        data.update(canary_before_s=canaries[0], canary_after_s=canaries[1], canary_cpu=cpu)
    data.update(overrides)
    return data


def two_pythons() -> dict[str, Any]:
    return manifest(pythons={
        PYTHON: {"label": "3.13.0", "version": "3.13.0", "gil_disabled": False},
        FT: {"label": "3.13.0t", "version": "3.13.0", "gil_disabled": True},
    })


def test_host_speed_is_against_the_median_canary_of_the_same_python(tmp_path: Path) -> None:
    gil = [v3("sequential", 1, r, 1.0, (0.010, 0.010)) for r in range(7)]
    gil += [v3("sequential", 1, 7, 1.2, (0.0125, 0.0125)),  # host at 80%
            v3("sequential", 1, 8, 0.8, (0.008, 0.008))]  # host at 125%
    # A free-threaded build's canary is slower by nature: its own median is its reference.
    ft = [v3("sequential", 1, r, 1.5, (0.016, 0.016), python=FT, cell_id="c-ft")
          for r in range(5)]
    run = load_run(write_run(tmp_path / "run", two_pythons(), gil + ft))
    frame = run.frame.set_index(["python", "repetition"])
    speed = frame["host_speed"]
    assert str(run.frame["host_speed"].dtype) == "float64"
    assert [speed[(PYTHON, r)] for r in range(7)] == [1.0] * 7
    assert speed[(PYTHON, 7)] == pytest.approx(0.8)
    assert speed[(PYTHON, 8)] == pytest.approx(1.25)
    assert [speed[(FT, r)] for r in range(5)] == [1.0] * 5
    assert str(run.frame["canary_cpu"].dtype) == "Int64"


def test_a_cpu_with_enough_canaries_is_its_own_reference(tmp_path: Path) -> None:
    records = [v3("sequential", 1, r, 1.0, (0.010, 0.010), cpu=0) for r in range(MIN_PER_CPU)]
    records += [v3("sequential", 1, 10 + r, 1.0, (0.012, 0.012), cpu=1)
                for r in range(MIN_PER_CPU)]
    # Too few canaries on CPU 2, and one record that moved: the python's median.
    records += [v3("sequential", 1, 20, 1.0, (0.011, 0.011), cpu=2),
                v3("sequential", 1, 21, 1.0, (0.011, 0.011), cpu=None)]
    run = load_run(write_run(tmp_path / "run", manifest(), records))
    speed = run.frame.set_index("repetition")["host_speed"]
    assert [speed[r] for r in range(MIN_PER_CPU)] == [1.0] * MIN_PER_CPU
    assert [speed[10 + r] for r in range(MIN_PER_CPU)] == [1.0] * MIN_PER_CPU
    assert speed[20] == pytest.approx(1.0) and speed[21] == pytest.approx(1.0)  # median 0.011


def test_the_noise_floor_of_a_host_with_two_speeds_is_said_on_the_first_screen(
        tmp_path: Path) -> None:
    # The 2026-12-07 host: half the values at one speed, half 1.6x slower.
    records = [v3("sequential", 1, r, 0.11, (0.010, 0.010)) for r in range(10)]
    records += [v3("sequential", 1, 10 + r, 0.18, (0.016, 0.016)) for r in range(10)]
    quiet_ft = [v3("sequential", 1, r, 0.2, (0.020, 0.020), python=FT, cell_id="c-ft")
                for r in range(10)]
    run = load_run(write_run(tmp_path / "run", two_pythons(), records + quiet_ft))
    # median 0.013: speeds 1.3 and 0.8125; the 5th-95th percentile range is 48.75%
    assert noise_floor(run) == {"3.13.0": 48.8, "3.13.0t": 0.0}
    sentence = noise_sentence(run, "`invoke experiment --matrix m --target-ci 1%`")
    assert sentence == (
        "The host's own speed swung by 49% during this run under 3.13.0 (canary spread, 5th "
        "to 95th percentile); differences smaller than that are not findings: rerun on a "
        "quieter host or with more repetitions: `invoke experiment --matrix m --target-ci "
        "1%`.")
    assert "--target-ci" in noise_sentence(run)  # the run's own command by default


def test_a_quiet_host_says_nothing(tmp_path: Path) -> None:
    records = [v3("sequential", 1, r, 0.1, (0.010 + 0.0001 * (r % 3), 0.010))
               for r in range(10)]
    run = load_run(write_run(tmp_path / "run", manifest(), records))
    assert noise_floor(run)["3.13.0"] < 5.0
    assert noise_sentence(run) == ""


def test_the_swing_threshold_widens_for_a_python_whose_canary_is_noisy(tmp_path: Path) -> None:
    # 3.13.0: differences 0, +1%, -1% -> MAD 1% -> threshold max(3%, 3%) = 3%.
    steady = [v3("sequential", 1, r, 0.1, (0.0100, 0.0100 * (1 + [0, 0.01, -0.01][r % 3])))
              for r in range(9)]
    # 3.13.0t: differences 0, +2.5%, -2.5% -> MAD 2.5% -> threshold 7.5%.
    noisy = [v3("sequential", 1, r, 0.1, (0.0100, 0.0100 * (1 + [0, 0.025, -0.025][r % 3])),
                python=FT, cell_id="c-ft") for r in range(9)]
    # A 5% swing in each, and one value that others' CPU use flagged with a huge swing:
    # it counts in neither python's deviation.
    steady.append(v3("sequential", 1, 9, 0.1, (0.0100, 0.0105), contended=True))
    noisy.append(v3("sequential", 1, 9, 0.1, (0.0100, 0.0105), python=FT, cell_id="c-ft",
                    contended=True))
    noisy.append(v3("sequential", 1, 10, 0.1, (0.0100, 0.0300), python=FT, cell_id="c-ft",
                    others_cpu_s=0.5, total_s=0.1, contended=True))
    frame = load_run(write_run(tmp_path / "run", two_pythons(), steady + noisy)).frame
    threshold = swing_threshold(frame)
    assert threshold[PYTHON] == pytest.approx(0.03)
    assert threshold[FT] == pytest.approx(0.075)
    flagged = frame.loc[swung(frame), ["python", "repetition"]]
    # On a busy host every value is flagged by others: the margin alone is left.
    busy = frame.assign(others_cpu_s=0.5, total_s=0.1)
    assert swing_threshold(busy) == {PYTHON: 0.03, FT: 0.03}
    assert int(swung(busy).sum()) == 3  # the two 5% swings and the 200% one
    assert sorted(zip(flagged["python"].astype(str), flagged["repetition"].astype(int),
                      strict=True)) == [(PYTHON, 9), (FT, 10)]


def test_old_records_without_canaries_still_load_and_report(tmp_path: Path) -> None:
    # v1 records (no canary fields) and a v3 record written today before the canary existed.
    earlier_v3 = v3("threads", 2, 1, 0.5)
    assert "canary_before_s" not in earlier_v3
    assert schema.problems(earlier_v3) == []
    upgraded, why = _upgraded(dict(earlier_v3))
    assert upgraded is not None, why
    assert upgraded["canary_before_s"] is None and upgraded["canary_cpu"] is None
    records = [record("sequential", 1, r, 1.0) for r in range(3)]
    records += [record("threads", 2, 0, 0.5), earlier_v3,
                v3("threads", 2, 2, 0.5, (0.010, 0.010))]
    run_dir = write_run(tmp_path / "run", manifest(), records)
    run = load_run(run_dir)
    assert run.warnings == []
    assert run.frame["host_speed"].isna().sum() == 5
    assert noise_floor(run) == {}  # one canary is no spread
    assert noise_sentence(run) == ""
    result = report_run(run_dir)
    assert result.report_md.exists()


def test_a_canary_of_the_wrong_kind_is_damage(tmp_path: Path) -> None:
    bad = v3("sequential", 1, 0, 1.0, (0.010, 0.010))
    bad["canary_after_s"] = -1.0
    assert schema.problems(bad) == [
        "canary_after_s is -1.0, not a non-negative finite float or null"]
