"""How a failure is told in a record: CPython's own words, `Type: message`."""

from __future__ import annotations


class WorkerError(Exception):
    """A worker failed; the message is already the worker's `Type: message`."""


class WorkerCrashed(WorkerError):
    """A worker process died (signal or abnormal exit): the record says `crashed`."""


def describe(exc: BaseException) -> str:
    """`Type: message`, followed by the chained exceptions CPython attached.

    Sub-interpreter creation failures carry the real reason in the chain, e.g.
    `RuntimeError: sub-interpreter creation failed` caused by the PyStatus text.
    """
    if isinstance(exc, WorkerError):
        return str(exc)
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(parts) < 4:
        seen.add(id(current))
        text = str(current)
        parts.append(f"{type(current).__name__}: {text}" if text else type(current).__name__)
        current = current.__cause__ or current.__context__
    return parts[0] + "".join(f" (from {p})" for p in parts[1:])
