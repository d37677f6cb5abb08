"""Small, seeded statistics: medians, IQR, bootstrap CIs, noise and significance checks."""

from __future__ import annotations

import math
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


def instability(values: FloatArray) -> str:
    """Why a sample is too noisy to trust, or "" when it looks stable."""
    if values.size < MIN_SAMPLES:
        return f"only {values.size} ok sample(s)"
    reasons = []
    mean = float(np.mean(values))
    if mean > 0:
        spread = float(np.std(values, ddof=1)) / mean
        if spread > UNSTABLE_SPREAD:
            reasons.append(f"stdev {spread:.0%} of mean")
    mid = median(values)
    if mid > 0:
        q1, q3 = quartiles(values)
        if (q3 - q1) / mid > UNSTABLE_SPREAD:
            reasons.append(f"IQR {(q3 - q1) / mid:.0%} of median")
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
