"""Small, seeded statistics: medians, IQR, bootstrap CIs, noise and significance checks."""

from __future__ import annotations

import functools
import math
import time
import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

RESAMPLES = 2000
CONFIDENCE = 0.95
# pyperf warns when the standard deviation exceeds 10% of the mean; the IQR rule is its
# robust sibling, and fewer than 3 samples cannot show noise at all.
UNSTABLE_SPREAD = 0.10
MIN_SAMPLES = 3
# Below a millisecond, 10% is a few microseconds, and a spread that small is the clock and
# the scheduler, not the code: a timing is two perf_counter() reads (each off by up to the
# clock's resolution, 1 ns on Linux, plus the cost of the call, 30-100 ns), and every
# hand-off between threads or processes inside it waits for a wake-up, which Linux may
# defer by the timer slack of a normal thread (50 us by default, prctl(PR_SET_TIMERSLACK))
# and a VM stretches further. So spread counts as instability only when it is above both
# 10% and this many seconds (TIMER_FLOOR_S, or twice resolution + call cost where a clock
# is coarser). From 0.5 ms up, 10% is already more than the floor: nothing changes there.
TIMER_FLOOR_S = 50e-6

FloatArray = np.ndarray


def as_array(values: pd.Series | Sequence[float] | FloatArray) -> FloatArray:
    array = np.asarray(values, dtype="float64")
    return array[np.isfinite(array)]


def seed_for(key: str) -> int:
    """A seed from the group's identity, so a group's CI does not depend on group order."""
    return zlib.crc32(key.encode("utf-8"))


def median(values: FloatArray) -> float:
    return float(np.median(values)) if values.size else math.nan


def quartiles(values: FloatArray) -> tuple[float, float]:
    """Q1 and Q3 with numpy's default (linear) interpolation, as pandas' quantile does."""
    if not values.size:
        return math.nan, math.nan
    q1, q3 = np.percentile(values, [25, 75])
    return float(q1), float(q3)


def _resampled_medians(values: FloatArray, rng: np.random.Generator) -> FloatArray:
    picks = rng.integers(0, values.size, size=(RESAMPLES, values.size))
    return np.median(values[picks], axis=1)


def _interval(samples: FloatArray) -> tuple[float, float]:
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_median_ci(values: FloatArray, seed: int) -> tuple[float, float]:
    """Percentile bootstrap CI of the median; degenerate (or NaN) for tiny samples."""
    if not values.size:
        return math.nan, math.nan
    if values.size == 1:
        return float(values[0]), float(values[0])
    return _interval(_resampled_medians(values, np.random.default_rng(seed)))


def bootstrap_ratio_ci(
    numerator: FloatArray, denominator: FloatArray, seed: int
) -> tuple[float, float]:
    """CI of median(numerator) / median(denominator), each side resampled independently."""
    if not numerator.size or not denominator.size:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    top = _resampled_medians(numerator, rng)
    bottom = _resampled_medians(denominator, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = top / bottom
    ratios = ratios[np.isfinite(ratios)]
    return _interval(ratios) if ratios.size else (math.nan, math.nan)


@functools.cache
def perf_counter_cost() -> float:
    """Seconds one time.perf_counter() call costs here (the best of 5 batches of 1000)."""
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(1000):
            time.perf_counter()
        best = min(best, (time.perf_counter() - start) / 1001)
    return best


def timer_tolerance(resolution_s: float | None = None, call_s: float | None = None) -> float:
    """The spread in seconds a timing may show from the timer and the scheduler alone.

    resolution_s: perf_counter's resolution where the run recorded it, else this host's
    (time.get_clock_info); call_s: the cost of one call, else measured here."""
    if resolution_s is None or not resolution_s > 0:
        resolution_s = time.get_clock_info("perf_counter").resolution
    if call_s is None or not call_s > 0:
        call_s = perf_counter_cost()
    return max(TIMER_FLOOR_S, 2 * (resolution_s + call_s))


def _micro(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs"


def instability(values: FloatArray, tolerance_s: float | None = None) -> str:
    """Why a sample is too noisy to trust, or "" when it looks stable.

    Noisy: stdev above 10% of the mean or IQR above 10% of the median, and (what matters
    below a millisecond) that spread above tolerance_s, by default timer_tolerance()."""
    if values.size < MIN_SAMPLES:
        return f"only {values.size} ok sample(s)"
    tolerance = timer_tolerance() if tolerance_s is None else tolerance_s
    reasons = []
    mean = float(np.mean(values))
    stdev = float(np.std(values, ddof=1))
    if mean > 0 and stdev / mean > UNSTABLE_SPREAD and stdev > tolerance:
        reasons.append(f"stdev {stdev / mean:.0%} of mean" + (
            f" ({_micro(stdev)}, above the timer's {_micro(tolerance)})"
            if UNSTABLE_SPREAD * mean < tolerance else ""))
    mid = median(values)
    q1, q3 = quartiles(values)
    if mid > 0 and (q3 - q1) / mid > UNSTABLE_SPREAD and q3 - q1 > tolerance:
        reasons.append(f"IQR {(q3 - q1) / mid:.0%} of median" + (
            f" ({_micro(q3 - q1)}, above the timer's {_micro(tolerance)})"
            if UNSTABLE_SPREAD * mid < tolerance else ""))
    return "; ".join(reasons)


def mann_whitney_p(a: FloatArray, b: FloatArray) -> float:
    """Two-sided Mann-Whitney U p-value; NaN when either side is empty or all values tie."""
    if not a.size or not b.size:
        return math.nan
    if np.ptp(np.concatenate([a, b])) == 0:
        return 1.0
    return float(scipy_stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)


def smallest_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided p an exact Mann-Whitney test can reach with these sizes."""
    if n_a == 0 or n_b == 0:
        return 1.0
    return min(1.0, 2 / math.comb(n_a + n_b, n_a))
