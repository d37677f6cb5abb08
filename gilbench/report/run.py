"""Regenerate every derived file of a run folder, all or nothing."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from gilbench import runfolder, selfcheck
from gilbench.errors import GilbenchError
from gilbench.report.aggregate import Summary, summarize
from gilbench.report.decision import (
    Decision,
    across_builds,
    preamble,
    remeasure_command,
)
from gilbench.report.decision import decisions as decide
from gilbench.report.document import to_html, to_markdown
from gilbench.report.errors import NothingToPlot, ReportError
from gilbench.report.findings import key_findings, unstable_warnings
from gilbench.report.hosts import quota_warnings
from gilbench.report.hostspeed import noise_floor, noise_sentence
from gilbench.report.load import RunData, load_run
from gilbench.report.plots import PLOTS
from gilbench.report.render import PlotOutcome, report_blocks
from gilbench.report.sampling import sampling_warning

SUMMARY_CSV = "summary.csv"
SUMMARY_PARQUET = "summary.parquet"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
PLOTS_DIR = "plots"


@dataclass
class ReportResult:
    run_dir: Path
    paths: list[Path]  # every file written, final locations
    findings: list[str]  # the decision per workload, then key findings, most important first
    warnings: list[str]  # reader warnings, unstable groups, baseline notes, skipped plots
    summary: pd.DataFrame = field(repr=False)
    partial: str = ""  # why the run is incomplete and how to finish it; "" when complete

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


def _remove_outputs(run_dir: Path) -> None:
    """Derived files that no longer match the records must not look current."""
    for name in (SUMMARY_CSV, SUMMARY_PARQUET, REPORT_MD, REPORT_HTML):
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / PLOTS_DIR, ignore_errors=True)


def report_run(run_dir: Path, baseline: str | None = None) -> ReportResult:
    """Regenerate summary.csv/.parquet, report.md/.html and plots/ from records + manifest.

    `baseline` (a python label or id) makes that python's sequential the throughput
    reference for every build; by default each build is compared with the GIL build of its
    version. Raises ReportError when the run cannot be reported; then no earlier report is
    left behind looking current.
    """
    run_dir = Path(run_dir)
    try:
        return _report(run_dir, baseline)
    except BaseException as exc:
        if run_dir.is_dir() and (run_dir / runfolder.MANIFEST).is_file():
            _remove_outputs(run_dir)
        if isinstance(exc, OSError):
            why = ("the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT)
                   else exc.strerror or str(exc))
            raise ReportError(
                f"Writing the report of {run_dir.name} failed ({why}); the records are "
                "untouched, so run `invoke report` again once that is fixed."
            ) from None
        raise


def _report(run_dir: Path, baseline: str | None) -> ReportResult:
    run = load_run(run_dir)
    summary = summarize(run, baseline)
    command = run.manifest.command or ""
    decisions = decide(summary, remeasure_command(command))
    across = [entry["text"] for entry in across_builds(summary)]
    findings = key_findings(summary)
    partial = run.completeness.sentence(run.run_id)
    warnings = run.warnings + summary.notes + unstable_warnings(summary.frame, command)
    warnings += selfcheck.report_warnings(run.manifest.pythons)  # a build that failed it
    warnings += quota_warnings(run)  # a merged run's hosts under a CPU quota
    short = sampling_warning(run)
    warnings += [short] if short else []
    staging = Path(tempfile.mkdtemp(prefix=".report-", dir=run.run_dir))
    try:
        outcomes = _draw_plots(summary.frame, staging / PLOTS_DIR, run.run_id)
        (staging / PLOTS_DIR).mkdir(exist_ok=True)  # even when every plot was skipped
        warnings += [f"Plot {o.name} skipped: {o.skipped_because}" for o in outcomes if not o.png]
        _write_tables(summary.frame, staging)
        blocks = report_blocks(run, summary, findings, warnings, outcomes, decisions,
                               _first_screen(run, summary), across)
        (staging / REPORT_MD).write_text(to_markdown(blocks), encoding="utf-8")
        title = f"gilbench report: {run.run_id}" + (" (partial)" if partial else "")
        (staging / REPORT_HTML).write_text(to_html(blocks, title), encoding="utf-8")
        paths = _move_into_place(staging, run.run_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    headlines = [d.headline for d in decisions] + across
    return ReportResult(run.run_dir, paths, headlines + findings, warnings, summary.frame, partial)


ADVICE_FORMAT = "gilbench-advise/1"  # docs/advise.md, docs/advise.schema.json


@dataclass
class Advice:
    """The decision of a run in a few sentences, for the terminal (`invoke advise`), and
    the same as data (`invoke advise --json`): the sentences are written from the data."""

    run_id: str
    headlines: list[str]  # one per workload and python, as the report's Decision section
    warnings: list[str]  # one line per concern, as the report's Warnings
    partial: str = ""
    # the host's swing when it moved (noise floor), then the cores that bound every speedup
    preamble: list[str] = field(default_factory=list)
    noise_floor: dict[str, float] = field(default_factory=dict)  # python label -> percent
    decisions: list[Decision] = field(default_factory=list)
    across_builds: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The document `invoke advise --json` prints (docs/advise.md)."""
        return {
            "format": ADVICE_FORMAT, "run": self.run_id, "partial": self.partial or None,
            "preamble": self.preamble, "noise_floor": self.noise_floor,
            "decisions": [d.advice for d in self.decisions if d.kind == "speedup"],
            "startup": [{"workload": d.workload, "python": d.python, "headline": d.headline}
                        for d in self.decisions if d.kind == "startup"],
            "across_builds": self.across_builds, "warnings": self.warnings,
        }  # fmt: skip


def _workload_name(label: str) -> str:
    return label.partition("(")[0]


def _first_screen(run: RunData, summary: Summary) -> list[str]:
    """What to read before the decision lines, in the report and in `advise` alike: how far
    the host's own speed swung (when it did), then the cores that bound every speedup."""
    swing = noise_sentence(run, remeasure_command(run.manifest.command or ""))
    return ([swing] if swing else []) + preamble(summary)


def advise_run(run_dir: Path, workload: str | None = None) -> Advice:
    """The decision per workload (only `workload`, by name or label, when given), computed
    from the records; writes nothing. ReportError when there is nothing to decide."""
    run = load_run(Path(run_dir))
    summary = summarize(run)
    command = run.manifest.command or ""
    found = decide(summary, remeasure_command(command))
    across = across_builds(summary)
    if workload:
        known = sorted({str(w) for w in summary.frame["workload_label"].unique()})
        found = [d for d in found if workload in (d.workload, _workload_name(d.workload))]
        across = [a for a in across
                  if workload in (a["workload"], _workload_name(a["workload"]))]
        if not found:
            names = ", ".join(sorted({_workload_name(k) for k in known}))
            raise ReportError(f"Workload {workload!r} has no decision in run {run.run_id}; "
                              f"its workloads are {names}.")
    if not found:
        raise ReportError(f"Run {run.run_id} has no workload with ok sequential and parallel "
                          "records to decide on; `invoke report` lists what failed.")
    return Advice(run.run_id, [d.headline for d in found],
                  run.warnings + summary.notes + unstable_warnings(summary.frame, command),
                  run.completeness.sentence(run.run_id), _first_screen(run, summary),
                  noise_floor(run), found, across)


def newest_run(results_dir: Path) -> Path:
    """The run folder under results_dir that started last (by manifest, then by name)."""
    try:
        return runfolder.newest(Path(results_dir))
    except GilbenchError as exc:
        raise ReportError(str(exc)) from None
