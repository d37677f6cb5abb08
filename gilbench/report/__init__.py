"""Turn a run folder (records.jsonl + manifest.json) into tables, plots and a report.

Public entry points (wired into `invoke report` / `invoke compare` by tasks.py):
`report_run`, `newest_run`, `compare_runs`, `load_run`; every failure is a `ReportError`.
"""

from __future__ import annotations

from gilbench.report.compare import CompareResult, compare_runs
from gilbench.report.errors import ReportError
from gilbench.report.load import RunData, load_run
from gilbench.report.run import ReportResult, newest_run, report_run

__all__ = [
    "CompareResult",
    "ReportError",
    "ReportResult",
    "RunData",
    "compare_runs",
    "load_run",
    "newest_run",
    "report_run",
]
