"""Adaptive sampling (--target-ci) in the report: why each cell stopped.

The decisions are the run's own (manifest "sampling", written by gilbench.run); the
report only tells them, so a reader sees which medians are known to the target and which
ran out of budget or repetitions first.
"""

from __future__ import annotations

import pandas as pd

from gilbench.report.document import Block, Heading, Paragraph, Table
from gilbench.report.load import RunData
from gilbench.sampling import STOPS

HEADERS = ["Python", "Model", "Workload", "Workers", "Repetitions", "95% CI of the median",
           "Stopped because"]


def _target(run: RunData) -> float | None:
    value = run.manifest.order.get("target_ci")
    return float(value) if isinstance(value, int | float) and value > 0 else None


def _counts(run: RunData) -> dict[str, int]:
    counts: dict[str, int] = {}
    for state in run.manifest.sampling.values():
        reason = str(state.get("stop") or "unfinished")
        counts[reason] = counts.get(reason, 0) + 1
    return counts


def sampling_warning(run: RunData) -> str | None:
    """One line when some cells stopped before their median reached the target."""
    target = _target(run)
    if target is None:
        return None
    counts = _counts(run)
    short = {k: v for k, v in counts.items() if k != "target"}
    if not short:
        return None
    total = sum(counts.values())
    why = ", ".join(f"{reason} {n}" for reason, n in sorted(short.items()))
    return (f"{sum(short.values())} of {total} cells stopped before their median was known to "
            f"±{target:.1%} ({why}); they are listed under Adaptive sampling.")


def sampling_blocks(run: RunData) -> list[Block]:
    target = _target(run)
    if target is None:
        return []
    order = run.manifest.order
    counts = _counts(run)
    rank = {reason: i for i, reason in enumerate(STOPS)}  # target first, as STOPS lists
    summary = "; ".join(f"{n} {STOPS.get(reason, 'were still sampling')}"
                        for reason, n in sorted(counts.items(),
                                                key=lambda item: rank.get(item[0], 99)))
    blocks: list[Block] = [
        Heading(2, "Adaptive sampling"),
        Paragraph(f"Each cell got rounds of repetitions until the 95% CI of its median wall "
                  f"time was within ±{target:.1%}, at most {order.get('max_repetitions')} "
                  f"repetitions and {order.get('cell_budget_s')} s per cell. Cells: "
                  f"{summary}."),
    ]
    labels = _labels(run.frame)
    rows = []
    for cell_id, state in sorted(run.manifest.sampling.items(),
                                 key=lambda item: str(item[1].get("stop"))):
        if state.get("stop") == "target":
            continue
        python, model, workload, workers = labels.get(cell_id, ("?", cell_id, "?", "?"))
        width = state.get("ci_half_width")
        rows.append([python, model, workload, workers, str(state.get("repetitions", "?")),
                     f"±{width:.1%}" if isinstance(width, int | float) else "not yet known",
                     str(state.get("stop") or "unfinished")])
    if rows:
        blocks += [Paragraph("Cells whose median did not reach the target:"),
                   Table(HEADERS, rows)]
    return blocks


def _labels(frame: pd.DataFrame) -> dict[str, tuple[str, str, str, str]]:
    first = frame.drop_duplicates("cell_id")
    return {
        str(row.cell_id): (str(row.python_label), str(row.model_label),
                           str(row.workload_label), str(row.workers))
        for row in first.itertuples()
    }
