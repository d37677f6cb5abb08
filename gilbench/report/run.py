"""Regenerate every derived file of a run folder, all or nothing."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from gilbench.report.aggregate import summarize
from gilbench.report.document import to_html, to_markdown
from gilbench.report.errors import NothingToPlot, ReportError
from gilbench.report.findings import key_findings, unstable_warnings
from gilbench.report.load import MANIFEST, load_run
from gilbench.report.plots import PLOTS
from gilbench.report.render import PlotOutcome, report_blocks

SUMMARY_CSV = "summary.csv"
SUMMARY_PARQUET = "summary.parquet"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
PLOTS_DIR = "plots"


@dataclass
class ReportResult:
    run_dir: Path
    paths: list[Path]  # every file written, final locations
    findings: list[str]  # key findings, most important first
    warnings: list[str]  # reader warnings, unstable groups, baseline notes, skipped plots
    summary: pd.DataFrame = field(repr=False)

    @property
    def report_md(self) -> Path:
        return self.run_dir / REPORT_MD

    @property
    def report_html(self) -> Path:
        return self.run_dir / REPORT_HTML


def _draw_plots(summary: pd.DataFrame, plots_dir: Path, run_id: str) -> list[PlotOutcome]:
    outcomes = []
    for name, (plot, title, caption) in PLOTS.items():
        try:
            written = plot(summary, plots_dir / f"{name}.png", f"{title} ({run_id})")
        except NothingToPlot as skip:
            outcomes.append(PlotOutcome(name, caption, None, str(skip)))
            continue
        outcomes.append(PlotOutcome(name, caption, written[0]))
    return outcomes


def _write_tables(summary: pd.DataFrame, folder: Path) -> None:
    summary.to_csv(folder / SUMMARY_CSV, index=False, float_format="%.6g")
    summary.to_parquet(folder / SUMMARY_PARQUET, index=False)


def _move_into_place(staging: Path, run_dir: Path) -> list[Path]:
    """Plots first, pages last: a reader never finds a report pointing at missing plots."""
    paths: list[Path] = []
    new_plots = staging / PLOTS_DIR
    final_plots = run_dir / PLOTS_DIR
    if final_plots.exists():
        final_plots.rename(staging / "old-plots")  # removed with the staging folder
    new_plots.rename(final_plots)
    paths += sorted(final_plots.iterdir())
    for name in (SUMMARY_CSV, SUMMARY_PARQUET, REPORT_MD, REPORT_HTML):
        os.replace(staging / name, run_dir / name)
        paths.append(run_dir / name)
    return paths


def report_run(run_dir: Path, baseline: str | None = None) -> ReportResult:
    """Regenerate summary.csv/.parquet, report.md/.html and plots/ from records + manifest.

    `baseline` (a python label or id) makes that python's sequential the throughput
    reference for every build; by default each build is compared with the GIL build of its
    version. Raises ReportError, having written nothing, when the run cannot be reported.
    """
    run = load_run(Path(run_dir))
    summary = summarize(run, baseline)
    findings = key_findings(summary)
    warnings = run.warnings + summary.notes + unstable_warnings(summary.frame)
    staging = Path(tempfile.mkdtemp(prefix=".report-", dir=run.run_dir))
    try:
        outcomes = _draw_plots(summary.frame, staging / PLOTS_DIR, run.run_id)
        (staging / PLOTS_DIR).mkdir(exist_ok=True)  # even when every plot was skipped
        warnings += [f"Plot {o.name} skipped: {o.skipped_because}" for o in outcomes if not o.png]
        _write_tables(summary.frame, staging)
        blocks = report_blocks(run, summary, findings, warnings, outcomes)
        (staging / REPORT_MD).write_text(to_markdown(blocks), encoding="utf-8")
        title = f"gilbench report: {run.run_id}"
        (staging / REPORT_HTML).write_text(to_html(blocks, title), encoding="utf-8")
        paths = _move_into_place(staging, run.run_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ReportResult(run.run_dir, paths, findings, warnings, summary.frame)


def _started(run_dir: Path) -> str:
    try:
        manifest = json.loads((run_dir / MANIFEST).read_text(encoding="utf-8"))
        return str(manifest.get("started_at") or "")
    except (OSError, ValueError, AttributeError):
        return ""


def newest_run(results_dir: Path) -> Path:
    """The run folder under results_dir that started last (by manifest, then by name)."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ReportError(
            f"Results folder {results_dir} does not exist; run `invoke experiment` first."
        )
    runs = [p for p in results_dir.iterdir() if p.is_dir() and (p / MANIFEST).is_file()]
    if not runs:
        raise ReportError(
            f"{results_dir} holds no run folders (none has a {MANIFEST}); "
            "run `invoke experiment` first."
        )
    return max(runs, key=lambda p: (_started(p), p.name))
