"""Rendering for the command line (rich). Library modules return data; this shows it."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.status import Status

console = Console(highlight=False, soft_wrap=True)  # never break paths
err_console = Console(stderr=True, highlight=False)


class PhaseProgress:
    """Shows each build phase with its elapsed time; a spinner with the latest log line."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.phase: str | None = None
        self.phase_started = self.started = time.monotonic()
        self.status: Status | None = None

    def __enter__(self) -> PhaseProgress:
        self.started = time.monotonic()
        if console.is_terminal:
            self.status = console.status(self.title)
            self.status.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._finish_phase(failed=exc_type is not None)
        if self.status is not None:
            self.status.stop()

    def __call__(self, kind: str, text: str) -> None:
        if kind == "phase":
            self._finish_phase(failed=False)
            self.phase, self.phase_started = text, time.monotonic()
            self._update("")
        elif kind == "warning":
            console.print(f"[yellow]! {text}[/yellow]")
        elif kind == "log":
            self._update(text)

    def _update(self, line: str) -> None:
        if self.status is not None and self.phase:
            elapsed = time.monotonic() - self.phase_started
            self.status.update(
                f"[bold]{self.phase}[/bold] {elapsed:5.0f} s  [dim]{line[:90]}[/dim]"
            )

    def _finish_phase(self, failed: bool) -> None:
        if self.phase is None:
            return
        elapsed = time.monotonic() - self.phase_started
        mark = "[red]✗[/red]" if failed else "[green]✓[/green]"
        total = time.monotonic() - self.started
        console.print(f"{mark} {self.phase:<20} {elapsed:7.1f} s   (total {total:6.1f} s)")
        self.phase = None


class RunProgress:
    """A progress bar over the run's records, with an ETA and the status counts."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console,
            transient=False,
        )
        self.task: Any = None
        self.python = ""
        self.counts: dict[str, int] = {}
        self.shown: set[tuple[str, str]] = set()
        self.announced: set[str] = set()

    def __enter__(self) -> RunProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, kind: str, payload: Any) -> None:
        if kind == "start" and self.task is not None:  # retries, adaptive rounds: more work
            total = self.progress.tasks[-1].total or 0
            self.progress.update(self.task, total=total + payload)
        elif kind == "start":
            self.task = self.progress.add_task("records", total=payload)
        elif kind == "python":
            self.python = str(payload)
            if self.python not in self.announced:  # once each, not every round
                self.announced.add(self.python)
                console.print(f"running cells on [bold]{escape(self.python)}[/bold]")
        elif kind == "record" and self.task is not None:
            status = payload.get("status", "?")
            self.counts[status] = self.counts.get(status, 0) + 1
            counts = " ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
            cell = f"{payload.get('model')} {payload.get('workload')} x{payload.get('workers')}"
            self.progress.update(self.task, advance=1, description=f"{cell:<32} {counts}")
            line = self._problem(payload, status, cell)
            if line:
                self.progress.console.print(line, markup=False)

    def _problem(self, record: dict[str, Any], status: str, cell: str) -> str:
        """The line for a record that did not finish ok, the first time only: once per cell
        (not per repetition); a model the build does not have once per model and python,
        since every cell of it says the same."""
        if status == "ok":
            return ""
        message = record.get("message", "")
        if status == "unsupported":
            model = str(record.get("model"))
            key = (f"unsupported:{model}", str(record.get("python")))
            where = f" on {self.python}" if self.python else ""
            text = f"  {model}{where}: unsupported: {message} (not run; its other cells too)"
        else:
            key = (str(record.get("cell_id")), status)
            text = f"  {cell}: {status}: {message}"
        if key in self.shown:
            return ""
        self.shown.add(key)
        return text


def render_compare(result: Any) -> None:
    """What differs between two runs, then the cells that moved beyond noise."""
    from rich.table import Table

    console.print(f"A: {result.run_a}\nB: {result.run_b}")
    console.print(f"cells matched on: {', '.join(result.matched_by)}")
    if result.python_note:
        console.print(f"[yellow]{result.python_note}[/yellow]")
    for diff in result.differences:
        console.print(f"  differs [{diff.axis}] {diff.name}: {diff.a} -> {diff.b}")
    for note in result.notes:
        console.print(f"  note: {note}")
    changes = result.changes
    if changes.empty:
        console.print("[green]no cell changed beyond noise[/green]")
    else:
        table = Table(title=f"{len(changes)} cell(s) changed beyond noise (B vs A)")
        for column in ("cell", "A median s", "B median s", "B/A", "95% CI", "p", "status"):
            table.add_column(column)
        for _, row in changes.iterrows():
            table.add_row(
                str(row["cell"]), f"{row['median_a_s']:.4f}", f"{row['median_b_s']:.4f}",
                f"{row['ratio']:.3f}", f"{row['ratio_ci_low']:.3f}-{row['ratio_ci_high']:.3f}",
                f"{row['p_value']:.3g}", f"{row['status_a']} -> {row['status_b']}",
            )
        console.print(table)
    for path in result.paths:
        console.print(f"written: {path}")
