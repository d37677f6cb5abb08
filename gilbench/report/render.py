"""The report of one run as document blocks: findings first, then tables, failures, provenance."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from experiments.records import STATUSES
from gilbench.report import stats
from gilbench.report.aggregate import Summary
from gilbench.report.document import Block, Bullets, Code, Heading, Image, Paragraph, Table
from gilbench.report.findings import warning_details
from gilbench.report.load import RunData
from gilbench.report.sampling import sampling_blocks

DASH = "-"


@dataclass
class PlotOutcome:
    name: str
    caption: str
    png: Path | None  # None when skipped
    skipped_because: str = ""


def _num(value: Any, digits: int = 4) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return DASH
    return f"{value:.{digits}g}"


def _times(value: float) -> str:
    return DASH if math.isnan(value) else f"{value:.2f}x"


def _statuses(row: pd.Series) -> str:
    parts = [f"{row['n_ok']} ok"] if row["n_ok"] else []
    parts += [f"{row[f'n_{s}']} {s}" for s in STATUSES if s != "ok" and row[f"n_{s}"]]
    return ", ".join(parts)


RESULT_HEADERS = [
    "model", "workers", "status", "wall median s", "IQR s", "95% CI s", "speedup (95% CI)",
    "efficiency", "rel. throughput", "start-up ms (per worker)", "+MiB/worker", "cpu s", "note",
]  # fmt: skip


def _with_interval(value: float, low: float, high: float) -> str:
    if math.isnan(value):
        return DASH
    if math.isnan(low) or low == high:  # the sequential row against itself: exactly 1
        return f"{value:.2f}x"
    return f"{value:.2f}x ({low:.2f}-{high:.2f})"


def _result_row(row: pd.Series) -> list[str]:
    ci = (
        f"{_num(row['wall_ci_low_s'])}-{_num(row['wall_ci_high_s'])}"
        if not math.isnan(row["wall_ci_low_s"])
        else DASH
    )
    startup = _num(row["startup_median_s"] * 1000, 3)
    if startup != DASH:
        startup += f" ({_num(row['startup_per_worker_s'] * 1000, 3)})"
    return [
        str(row["model_label"]), str(row["workers"]), _statuses(row),
        _num(row["wall_median_s"]), _num(row["wall_iqr_s"], 2), ci,
        _with_interval(row["speedup"], row["speedup_ci_low"], row["speedup_ci_high"]),
        _num(row["efficiency"], 2), _times(row["rel_throughput"]), startup,
        _num(row["extra_rss_per_worker_kb"] / 1024, 3), _num(row["cpu_median_s"], 3),
        f"unstable: {row['unstable_reason']}" if row["unstable"] else "",
    ]  # fmt: skip


def _results(summary: Summary) -> list[Block]:
    """One table per workload and python, so each table has a single throughput reference."""
    blocks: list[Block] = [Heading(2, "Results")]
    table = summary.frame
    for (workload, python), group in table.groupby(
        ["workload_label", "python_label"], observed=True, sort=True
    ):
        reference = summary.baselines.get(str(python))
        note = f"rel. throughput against sequential on {reference}" if reference else (
            "no throughput reference"
        )  # fmt: skip
        blocks.append(Heading(3, f"{workload} on {python} ({note})"))
        blocks.append(Table(RESULT_HEADERS, [_result_row(r) for _, r in group.iterrows()]))
    return blocks


def _baselines(summary: Summary) -> list[Block]:
    rows = [[python, reference or "none (no GIL build of its version)"]
            for python, reference in sorted(summary.baselines.items())]  # fmt: skip
    return [
        Heading(2, "Baselines"),
        Paragraph(
            "speedup = median wall time of sequential on the same python and workload divided "
            "by the cell's median wall time (95% CI by bootstrap); efficiency = speedup / "
            "workers. rel. throughput = the cell's median tasks/s divided by that of sequential "
            "on the reference python below (by default the GIL build of the same version), so "
            "it compares builds: a free-threaded build's threads may scale well against their "
            "own slow sequential yet lose to the GIL build."
        ),
        Table(["python", "throughput reference (its sequential)"], rows),
        Paragraph(
            "Timings use ok records only; wall = the parallel section; start-up = creating the "
            "workers until ready; +MiB/worker = (peak RSS - sequential's peak RSS) / workers. "
            "A row is unstable when the stdev or IQR exceeds 10% of the mean or median and, "
            f"for timings under a millisecond, also exceeds {stats.TIMER_FLOOR_S * 1e6:.0f} µs "
            "(what the timer and the scheduler's wake-ups can add on their own), or when it "
            "has fewer than 3 usable samples."
        ),
    ]


DETAIL_HEADERS = ["workload", "python", "model", "workers", "concern", "ok (contended)",
                  "wall median s", "detail"]  # fmt: skip


def _warning_details(table: pd.DataFrame) -> list[Block]:
    """One row per group and concern that a warning counts: the warnings stay one line per
    workload, the names and figures are here."""
    details = warning_details(table)
    if not details:
        return []
    rows = [
        [workload, str(row["python_label"]), str(row["model_label"]), str(row["workers"]),
         concern, f"{row['n_ok']} ({row['n_contended']})", _num(row["wall_median_s"]), detail]
        for workload, row, concern, detail in details
    ]  # fmt: skip
    return [Heading(2, "Warnings in detail"), Table(DETAIL_HEADERS, rows)]


def _failures(table: pd.DataFrame) -> list[Block]:
    failed = table[table["n_ok"] < table["n_records"]]
    blocks: list[Block] = [Heading(2, "Failures")]
    if failed.empty:
        return [*blocks, Paragraph("Every record finished ok.")]
    blocks.append(Paragraph(
        "Configurations CPython refused, crashes, timeouts and models a version lacks are "
        "results too; the messages are CPython's (or the signal / timeout)."
    ))  # fmt: skip
    rows = [
        [str(r["python_label"]), str(r["workload_label"]), str(r["model_label"]),
         str(r["workers"]), str(r["status"]), _statuses(r), str(r["messages"]) or DASH]
        for _, r in failed.iterrows()
    ]  # fmt: skip
    headers = ["python", "workload", "model", "workers", "status", "records", "message"]
    return [*blocks, Table(headers, rows)]


def _plots(outcomes: list[PlotOutcome]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Plots")]
    for outcome in outcomes:
        if outcome.png is None:
            blocks.append(Paragraph(f"{outcome.caption} Skipped: {outcome.skipped_because}"))
        else:
            blocks.append(Image(outcome.png, f"plots/{outcome.png.name}", outcome.caption))
    return blocks


def _text(value: Any) -> str:
    if value is None:
        return DASH
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _provenance(run: RunData) -> list[Block]:
    manifest = run.manifest
    run_rows = [
        [name, _text(getattr(manifest, name))]
        for name in ("run_id", "command", "tool_version", "experiments_hash", "started_at",
                     "finished_at", "resumed_at")
    ]  # fmt: skip
    matrix = manifest.matrix
    run_rows.append(["matrix", f"{_text(matrix.get('name'))} ({_text(matrix.get('path'))})"])
    run_rows.append(["cells", str(len(manifest.cells))])
    backend = manifest.backend
    run_rows += [[f"backend.{key}", _text(value)] for key, value in backend.items()]
    host = manifest.host
    host_rows = [[key, _text(value)] for key, value in host.items()]
    python_rows = [
        [_text(info.get("label")), python, _text(info.get("version")), _text(info.get("variant")),
         _text(info.get("gil_disabled")), _text(info.get("config_args")), _text(info.get("cc")),
         _text(info.get("sha256")), _text(info.get("image") or info.get("executable"))]
        for python, info in manifest.pythons.items()
    ]  # fmt: skip
    blocks: list[Block] = [
        Heading(2, "Provenance"),
        Table(["run", ""], run_rows),
        Heading(3, "Host"),
        Table(["host", ""], host_rows) if host_rows else Paragraph("The manifest names no host."),
        Heading(3, "Pythons"),
        Table(["label", "id", "version", "variant", "gil_disabled", "configure args", "cc",
               "source sha256", "image / executable"], python_rows)
        if python_rows else Paragraph("The manifest describes no pythons."),
    ]  # fmt: skip
    if matrix.get("text"):
        blocks += [Heading(3, "Matrix as given"), Code(str(matrix["text"]), "toml")]
    return blocks


def report_blocks(
    run: RunData,
    summary: Summary,
    findings: list[str],
    warnings: list[str],
    plots: list[PlotOutcome],
) -> list[Block]:
    table = summary.frame
    matrix = run.manifest.matrix.get("name") or "?"
    host = run.manifest.host
    intro = (
        f"Matrix {matrix}: {int(table['n_records'].sum())} records in {len(table)} cell groups "
        f"on {host.get('cpu_model', 'an unnamed CPU')} ({host.get('cores', '?')} cores), "
        f"started {run.manifest.started_at or '?'}."
    )
    partial = run.completeness.sentence(run.run_id)
    title = f"gilbench report: {run.run_id}" + (" (partial)" if partial else "")
    blocks: list[Block] = [
        Heading(1, title),
        *([Paragraph(f"Partial: {partial}")] if partial else []),
        Paragraph(intro),
        Heading(2, "Key findings"),
        Bullets(findings),
    ]
    details = _warning_details(table)
    if warnings:
        blocks += [Heading(2, "Warnings"), Bullets(warnings)]
        if details:
            blocks.append(Paragraph("Each group these warnings count is listed, with its "
                                    "figures, under Warnings in detail."))
    blocks += _plots(plots) + _baselines(summary) + _results(summary) + sampling_blocks(run)
    blocks += details + _failures(table) + _provenance(run)
    return blocks
