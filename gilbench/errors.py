"""The one exception family that reaches users: its message is a complete sentence."""


class GilbenchError(Exception):
    """A user-facing failure: bad input, a missing prerequisite, a failed build.

    tasks.py turns it into `invoke.Exit(message, code=1)`; no traceback is shown.
    """


class BackendUnavailable(GilbenchError):
    """A backend (Docker engine, native toolchain) cannot be used on this host."""


class Interrupted(GilbenchError):
    """The user stopped a run (Ctrl-C, SIGTERM); the message says how to finish it."""
