"""The one exception the report package raises."""

from __future__ import annotations

from gilbench.errors import GilbenchError


class ReportError(GilbenchError, ValueError):
    """A run or comparison cannot be reported; the message is one sentence saying what to do."""


class NothingToPlot(ReportError):
    """A plot has no data to show; the report notes the skip instead of failing."""
