"""Module-level helpers the interpreter pool can pickle by reference."""

from __future__ import annotations

import os


def ready_then_wait(events_fd: int, go_fd: int) -> None:
    """Occupy one pool worker: say ready, then block until the main side says go."""
    os.write(events_fd, b"R")
    os.read(go_fd, 1)
