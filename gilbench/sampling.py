"""Adaptive sampling: add repetitions to a cell until its median is known well enough.

`--target-ci 2%` asks for the 95% confidence interval of each cell's median wall time to
be at most ±2% of the median. After the planned repetitions, every cell that has not
stopped gets `batch` more, in a new round shared by all such cells (so the drift-proof
interleaving holds), until it stops for one of the reasons in STOPS.

The interval is the distribution-free one for a median, from order statistics: with n
samples it is [x(j), x(n-j+1)] for the largest j whose binomial coverage is still at
least 95%. It needs no assumption about the timing distribution (timings are skewed and
sometimes bimodal), and it exists only from 6 samples on, so no cell can "reach" the
target on a lucky 3 samples, as a bootstrap of 3 values would let it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy.stats import binom

CONFIDENCE = 0.95

# Why a cell stopped; recorded per cell in the manifest's "sampling" object.
STOPS = {
    "target": "reached the target",
    "budget": "ran out of their time budget first",
    "max": "reached the most repetitions allowed first",
    "failed": "measured nothing ok, which more repetitions would not change",
}


@dataclass(frozen=True)
class Policy:
    target_ci: float  # wanted CI half-width as a fraction of the median, e.g. 0.02
    max_repetitions: int  # per cell, retried attempts not counted
    budget_s: float  # per cell: wall time its processes may take, warmups included


def median_ci(values: Sequence[float]) -> tuple[float, float] | None:
    """The order-statistic 95% CI of the median, or None below 6 samples."""
    ordered = sorted(values)
    n = len(ordered)
    # P(j <= B <= n-j) for B ~ Binomial(n, 1/2) is the coverage of [x(j), x(n-j+1)].
    best = 0
    for j in range(1, n // 2 + 1):
        coverage = binom.cdf(n - j, n, 0.5) - binom.cdf(j - 1, n, 0.5)
        if coverage < CONFIDENCE:
            break
        best = j
    if best == 0:
        return None
    return ordered[best - 1], ordered[n - best]


def half_width(values: Sequence[float]) -> float:
    """The CI's half-width as a fraction of the median; infinity when it cannot be known."""
    interval = median_ci(values)
    if interval is None:
        return math.inf
    ordered = sorted(values)
    n = len(ordered)
    middle = (ordered[(n - 1) // 2] + ordered[n // 2]) / 2
    if middle <= 0:
        return math.inf
    return (interval[1] - interval[0]) / 2 / middle


def decide(quiet: Sequence[float], measured: int, any_ok: bool, elapsed_s: float,
           policy: Policy) -> str | None:
    """Why the cell stops now, or None to give it another round.

    quiet: its usable wall times (ok, not contended); measured: repetitions with a record;
    any_ok: whether any attempt measured ok (contended ones included)."""
    if measured and not any_ok:
        return "failed"
    if half_width(quiet) <= policy.target_ci:
        return "target"
    if measured >= policy.max_repetitions:
        return "max"
    if elapsed_s >= policy.budget_s:
        return "budget"
    return None
