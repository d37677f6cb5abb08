"""The report of one run as document blocks: findings first, then tables, failures, provenance."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from experiments.records import STATUSES
from gilbench import selfcheck, signatures
from gilbench.report import aggregate, stats
from gilbench.report.aggregate import Summary
from gilbench.report.decision import (
    BREAK_EVEN_RULE,
    TIE_RULE,
    BreakEven,
    Decision,
    duration,
)
from gilbench.report.document import Block, Bullets, Code, Heading, Image, Paragraph, Table
from gilbench.report.findings import unsupported_lines, unsupported_mask, warning_details
from gilbench.report.hosts import host_blocks
from gilbench.report.load import RunData
from gilbench.report.plots import MEMORY_LABEL, memory_per_worker
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
    "efficiency", "rel. throughput", "start-up ms (per worker)", MEMORY_LABEL, "cpu s", "note",
]  # fmt: skip


def _with_interval(value: float, low: float, high: float) -> str:
    if math.isnan(value):
        return DASH
    if math.isnan(low) or low == high:  # the sequential row against itself: exactly 1
        return f"{value:.2f}x"
    return f"{value:.2f}x ({low:.2f}-{high:.2f})"


def _result_row(row: pd.Series, mib: float) -> list[str]:
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
        _num(mib, 3), _num(row["cpu_median_s"], 3),
        _note(row),
    ]  # fmt: skip


def _note(row: pd.Series) -> str:
    """What to distrust in a row: a speedup the host cannot produce first (physics), then
    the ceiling it reached, then noise."""
    notes = [str(row.get("artefact") or "")]
    if bool(row.get("at_ceiling", False)):
        notes.append(f"at the {int(row['cores'])}-core ceiling")
    if row["unstable"]:
        notes.append(f"unstable: {row['unstable_reason']}")
    return "; ".join(note for note in notes if note)


def _results(summary: Summary) -> list[Block]:
    """One table per workload and python, so each table has a single throughput reference.
    Models the build does not have are no rows: Failures says so in one line each."""
    blocks: list[Block] = [Heading(2, "Results")]
    table = summary.frame
    mib, label = memory_per_worker(table)
    headers = [label if h == MEMORY_LABEL else h for h in RESULT_HEADERS]
    table = table.assign(_mib=mib)[~unsupported_mask(table)]
    for (workload, python), group in table.groupby(
        ["workload_label", "python_label"], observed=True, sort=True
    ):
        reference = summary.baselines.get(str(python))
        note = f"rel. throughput against sequential on {reference}" if reference else (
            "no throughput reference"
        )  # fmt: skip
        blocks.append(Heading(3, f"{workload} on {python} ({note})"))
        rows = [_result_row(r, r["_mib"]) for _, r in group.iterrows()]
        blocks.append(Table(headers, rows, prose=(len(headers) - 1,)))  # the note wraps
    return blocks


def _memory_sentence(table: pd.DataFrame) -> str:
    _, label = memory_per_worker(table)
    if label == MEMORY_LABEL:
        return f"{label}: what each added worker costs (see Memory below)."
    return (f"{label} = (peak RSS - sequential's peak RSS) / workers, all this run recorded "
            "(see Memory below).")


def _memory_method(table: pd.DataFrame) -> list[Block]:
    # MEMORY_METHOD lands in aggregate.py with the PSS totals; older code has none
    method = getattr(aggregate, "MEMORY_METHOD", None)
    if not method:
        return []
    _, label = memory_per_worker(table)
    blocks: list[Block] = [Heading(3, "Memory"), Paragraph(str(method))]
    if label != MEMORY_LABEL:
        blocks.append(Paragraph(
            f"This run's records have no such totals, so its tables and memory plot show "
            f"the older figure instead, labelled \"{label}\": the extra peak RSS of the cell "
            "process (or of its largest child) per worker, which does not add workers up."
        ))
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
            f"workers until ready; {_memory_sentence(summary.frame)} "
            "A row is unstable when the stdev or IQR exceeds 10% of the mean or median and, "
            f"for timings under a millisecond, also exceeds {stats.TIMER_FLOOR_S * 1e6:.0f} µs "
            "(what the timer and the scheduler's wake-ups can add on their own), or when it "
            "has fewer than 3 usable samples."
        ),
        *_memory_method(summary.frame),
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
    """Models a build does not have, one line per model and python; then every other
    group that did not finish ok, with CPython's messages."""
    unsupported = unsupported_mask(table)
    failed = table[(table["n_ok"] < table["n_records"]) & ~unsupported]
    blocks: list[Block] = [Heading(2, "Failures")]
    lines = unsupported_lines(table)
    if lines:
        blocks += [Paragraph("Not supported by the build, so not run (not counted as failures):"),
                   Bullets(lines)]
    if failed.empty:
        if not lines:
            blocks.append(Paragraph("Every record finished ok."))
        else:
            blocks.append(Paragraph("Every other record finished ok."))
        return blocks
    blocks.append(Paragraph(
        "Configurations CPython refused, crashes and timeouts are "
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
         _text(info.get("sha256")), signatures.describe((info.get("build") or {}).get(
             "signature")), _text(info.get("image") or info.get("executable")),
         selfcheck.describe((info.get("build") or {}).get("selfcheck"))]
        for python, info in manifest.pythons.items()
    ]  # fmt: skip
    blocks: list[Block] = [
        Heading(2, "Provenance"),
        Table(["run", ""], run_rows),
        Heading(3, "Host"),
        Table(["host", ""], host_rows) if host_rows else Paragraph("The manifest names no host."),
        Heading(3, "Pythons"),
        Table(["label", "id", "version", "variant", "gil_disabled", "configure args", "cc",
               "source sha256", "signature", "image / executable", "CPython's own tests"],
              python_rows)
        if python_rows else Paragraph("The manifest describes no pythons."),
    ]  # fmt: skip
    if matrix.get("text"):
        blocks += [Heading(3, "Matrix as given"), Code(str(matrix["text"]), "toml")]
    return blocks


def _speedup_cell(value: float, low: float, high: float, unstable: bool = False) -> str:
    text = _with_interval(value, low, high)
    return f"{text}, unstable" if unstable and text != DASH else text


def _difference(row: pd.Series) -> str:
    if math.isnan(row["p_value"]):
        return str(row["verdict"])
    return f"{row['verdict']} (p={row['p_value']:.2g})"


def _payoff(option: BreakEven, workers: Any) -> str:
    text = option.text()
    return f"{text} ({workers} w)" if option.kind in ("above", "below") else text


def _decision_tables(decision: Decision) -> list[Block]:
    if decision.kind == "startup":
        wide = decision.models
        headers = ["model", *[f"{w} worker{'s' if w != 1 else ''}" for w in wide.columns]]
        rows = [[str(label), *[DASH if pd.isna(v) else duration(float(v)) for v in values]]
                for label, values in wide.iterrows()]  # fmt: skip
        return [Paragraph("Start-up plus teardown (median), cheapest first: this workload's "
                          "tasks are trivial, so its speedup means nothing."),
                Table(headers, rows)]
    winners = [
        [str(r["workers"]), r["winner"],
         _speedup_cell(r["speedup"], r["ci_low"], r["ci_high"], r["unstable"]),
         r["runner_up"] or DASH,
         _speedup_cell(r["runner_speedup"], r["runner_ci_low"], r["runner_ci_high"]),
         _difference(r)]
        for _, r in decision.winners.iterrows()
    ]  # fmt: skip
    models = [
        [r["model_label"], _speedup_cell(r["speedup"], r["ci_low"], r["ci_high"]),
         str(r["workers"]), DASH if math.isnan(r["startup_s"]) else duration(r["startup_s"]),
         _payoff(r["vs_sequential"], r["vs_sequential_workers"]),
         DASH if r["model"] == "threads" else _payoff(r["vs_threads"], r["vs_threads_workers"])]
        for _, r in decision.models.iterrows()
    ]  # fmt: skip
    return [
        Table(["workers", "winner", "speedup (95% CI)", "runner-up (another model)",
               "its speedup", "difference (Mann-Whitney)"], winners),
        Table(["model", "best speedup (95% CI)", "at workers", "start-up + teardown",
               "beats sequential for jobs", "beats threads for jobs"], models),
    ]  # fmt: skip


def decision_blocks(decisions: list[Decision], preamble: list[str] | None = None,
                    across: list[str] | None = None) -> list[Block]:
    """The answer first: what bounds it (the cores), one sentence per workload and python,
    one per workload across builds, then the rules and each decision's two tables."""
    if not decisions:
        return []
    blocks: list[Block] = [
        Heading(2, "Decision"),
        *[Paragraph(line) for line in preamble or []],
        Bullets([d.headline for d in decisions] + list(across or [])),
        Paragraph(
            "Speedup is over sequential on the same python (median wall time, 95% bootstrap "
            "CI). " + TIE_RULE + " In the tables, the runner-up is the best group of another "
            "model at the same worker count; the difference counts as significant when "
            "Mann-Whitney U on the two groups' wall times gives p < 0.05. Groups the host "
            "could not have produced and configs CPython's docs forbid are left out. "
            + BREAK_EVEN_RULE + " Job sizes are seconds of sequential work; \"(2 w)\" is the "
            "worker count the break-even needs. Across builds, throughput is against the GIL "
            "build's sequential, and a free-threaded build's single-thread cost is how much "
            "longer its sequential takes."
        ),
    ]
    for decision in decisions:
        blocks.append(Heading(3, f"{decision.workload} on {decision.python}"))
        blocks += _decision_tables(decision)
    return blocks


def report_blocks(
    run: RunData,
    summary: Summary,
    findings: list[str],
    warnings: list[str],
    plots: list[PlotOutcome],
    decisions: list[Decision] | None = None,
    preamble: list[str] | None = None,
    across: list[str] | None = None,
) -> list[Block]:
    table = summary.frame
    matrix = run.manifest.matrix.get("name") or "?"
    host = run.manifest.host
    hosts = run.manifest.merge.get("hosts") or {}
    where = (f"{len(hosts)} hosts (see Hosts)" if len(hosts) > 1 else
             f"{host.get('cpu_model', 'an unnamed CPU')} ({host.get('cores', '?')} cores)")
    intro = (
        f"Matrix {matrix}: {int(table['n_records'].sum())} records in {len(table)} cell groups "
        f"on {where}, started {run.manifest.started_at or '?'}."
    )
    partial = run.completeness.sentence(run.run_id)
    title = f"gilbench report: {run.run_id}" + (" (partial)" if partial else "")
    blocks: list[Block] = [
        Heading(1, title),
        *([Paragraph(f"Partial: {partial}")] if partial else []),
        Paragraph(intro),
        *decision_blocks(decisions or [], preamble, across),
        Heading(2, "Key findings"),
        Bullets(findings),
        *host_blocks(run),  # a merged run: which host measured what (gilbench/merge.py)
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
