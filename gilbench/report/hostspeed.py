"""Host speed (issue 19, part 2): what the canaries timed around every value say about the
host's own speed during a run.

Each ok record carries the host-speed canary timed right before and right after its value
(experiments/canary.py). A record alone cannot know the run's typical canary, so
`host_speed` is computed here, when the run is read, from that run's raw canaries:

- `host_speed` = the median canary of the same python over the run (of the same python
  and CPU where the record names its CPU and that CPU has at least MIN_PER_CPU canaries)
  divided by the record's canary (the mean of before and after). 1.0 is the host's usual
  speed for that interpreter; 0.8 means it ran at 80% of it. Pythons are never compared
  with each other: a free-threaded build runs the loop slower by nature.
- The noise floor of a run: per python, the 5th to 95th percentile range of host_speed, in
  percent. Differences between cells smaller than that are not findings.
- The swing rule: a value whose canaries before and after differ by more than
  max(MARGIN, MAD_FACTOR x the median absolute deviation of the relative differences of
  that python's values that no other cause flagged) is swung. The target flags with
  MARGIN alone (it cannot see the run), which is the strictest form of the rule, and its
  flag is part of `contended`: retries and the report's statistics use it as recorded.
  swung() gives the run-wide rule for the report to name how many of those flags stand
  when an interpreter's canary is noisy by nature; it changes no record.

Old records (no canary fields) have host_speed NaN and no noise floor; nothing else
changes for them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from experiments import canary, contention

if TYPE_CHECKING:
    from gilbench.report.load import RunData

MARGIN = canary.MARGIN
MAD_FACTOR = 3.0
MIN_PER_CPU = 5  # canaries one CPU needs to be its own reference
NOISE_QUANTILES = (0.05, 0.95)
# A noise floor above this (percent) is said on the report's first screen.
SWING_PERCENT = 5.0


def record_canary(frame: pd.DataFrame) -> pd.Series:
    """Each record's canary: the mean of before and after, or the one there is; NaN
    without one (old records, failed values)."""
    pair = frame[["canary_before_s", "canary_after_s"]].astype("float64")
    return pair.mean(axis=1, skipna=True)


def host_speed(frame: pd.DataFrame) -> pd.Series:
    """Each record's host_speed (see the module's docstring), NaN without a canary."""
    own = record_canary(frame)
    ok = (frame["status"] == "ok").to_numpy() & own.notna().to_numpy()
    reference = pd.Series(np.nan, index=frame.index, dtype="float64")
    if not ok.any():
        return reference
    python = frame["python"].astype("string")
    cpu = frame["canary_cpu"].astype("Float64")
    by_python = own[ok].groupby(python[ok], observed=True).median()
    reference[ok] = python[ok].map(by_python).astype("float64")
    has_cpu = ok & cpu.notna().to_numpy()
    if has_cpu.any():
        keys = pd.DataFrame({"python": python[has_cpu], "cpu": cpu[has_cpu].astype("float64"),
                             "canary": own[has_cpu]})
        per_cpu = keys.groupby(["python", "cpu"], observed=True)["canary"].transform("median")
        count = keys.groupby(["python", "cpu"], observed=True)["canary"].transform("size")
        enough = count >= MIN_PER_CPU
        reference[enough[enough].index] = per_cpu[enough]
    return (reference / own).where(ok)


def canary_difference(frame: pd.DataFrame) -> pd.Series:
    """Each record's relative canary difference, after against before (canary.difference:
    > 0 when the host got slower during the value); NaN without both canaries."""
    before = frame["canary_before_s"].astype("float64")
    after = frame["canary_after_s"].astype("float64")
    low = np.minimum(before, after)
    return ((after - before) / low).where(low > 0)


def _flagged_by_others(frame: pd.DataFrame) -> pd.Series:
    """Records another cause than the canary flags (others, steal, throttling)."""
    def number(value: float) -> float | None:
        return None if math.isnan(value) else value

    columns = [frame[c].astype("float64").tolist()
               for c in ("others_cpu_s", "steal_s", "throttled_s", "total_s")]
    flags = [bool(contention.causes(number(o), number(s), number(t), number(w) or 0.0))
             for o, s, t, w in zip(*columns, strict=True)]
    return pd.Series(flags, index=frame.index, dtype=bool)


def swing_threshold(frame: pd.DataFrame) -> dict[str, float]:
    """Per python id: max(MARGIN, MAD_FACTOR x MAD of the relative canary differences of
    its ok values that no other cause flagged); MARGIN alone where every value was flagged
    otherwise (a busy host leaves nothing to learn the canary's own noise from). Pythons
    without canaries are left out."""
    difference = canary_difference(frame)
    measured = (frame["status"] == "ok") & difference.notna()
    quiet = measured & ~_flagged_by_others(frame)
    found = dict.fromkeys(frame.loc[measured, "python"].astype("string").astype(str).unique(),
                          MARGIN)
    for python, values in difference[quiet].groupby(
            frame.loc[quiet, "python"].astype("string"), observed=True):
        d = values.to_numpy(dtype="float64")
        mad = float(np.median(np.abs(d - np.median(d))))
        found[str(python)] = max(MARGIN, MAD_FACTOR * mad)
    return found


def swung(frame: pd.DataFrame) -> pd.Series:
    """Records whose host swung by the run-wide rule (swing_threshold of their python)."""
    threshold = frame["python"].astype("string").map(swing_threshold(frame)).astype("float64")
    return (canary_difference(frame).abs() > threshold).fillna(False).astype(bool)


def noise_floor(run: RunData) -> dict[str, float]:
    """Per python label: the 5th to 95th percentile range of the ok records' host_speed,
    in percent (the run's noise floor). Pythons with fewer than two canaries are left out."""
    frame = run.frame
    if "host_speed" not in frame:
        return {}
    speed = frame["host_speed"].astype("float64")
    usable = (frame["status"] == "ok") & speed.notna()
    found = {}
    for label, values in speed[usable].groupby(
            frame.loc[usable, "python_label"].astype("string"), observed=True):
        if len(values) < 2:
            continue
        low, high = np.quantile(values.to_numpy(dtype="float64"), NOISE_QUANTILES)
        found[str(label)] = round(float(high - low) * 100.0, 1)
    return found


def noise_sentence(run: RunData, remeasure: str = "") -> str:
    """One sentence for the report's first screen when the host swung (a noise floor
    above SWING_PERCENT), else "". `remeasure` is the command that adds repetitions
    (default: report.decision.remeasure_command of the run's own command)."""
    floors = {label: value for label, value in noise_floor(run).items()
              if value > SWING_PERCENT}
    if not floors:
        return ""
    worst = max(floors, key=lambda label: floors[label])
    where = "" if len(noise_floor(run)) == 1 else f" under {worst}"
    if not remeasure:
        from gilbench.report.decision import remeasure_command  # decision imports aggregate

        remeasure = remeasure_command(run.manifest.command)
    return (f"The host's own speed swung by {floors[worst]:.0f}% during this run{where} "
            "(canary spread, 5th to 95th percentile); differences smaller than that are not "
            f"findings: rerun on a quieter host or with more repetitions: {remeasure}.")


def add_host_speed(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its host_speed column (float64; NaN without a canary)."""
    return frame.assign(host_speed=host_speed(frame))
