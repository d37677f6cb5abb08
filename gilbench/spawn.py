"""Children that start clean, however gilbench itself was started.

A background job of a non-interactive shell (`cmd &`, nohup, a CI step) starts with
SIGINT and SIGQUIT ignored, and an ignored disposition survives exec: CPython's PGO
training then fails (test_generators needs SIGINT), and a cell would run under other
signal dispositions than in a terminal. A Python parent also ignores SIGPIPE and SIGXFSZ
itself. So a child is started through a tiny exec wrapper that puts these back to their
defaults, optionally pins the CPUs and asks to die with its parent, then execs the
command. No preexec_fn: Python code between fork and exec can run a signal handler or a
fork hook in the child, and Popen may be called while other threads run.
"""

from __future__ import annotations

import sys

DEFAULT_SIGNALS = ("SIGINT", "SIGQUIT", "SIGPIPE", "SIGXFZ", "SIGXFSZ")

_WRAPPER = (
    "import os, signal, sys\n"
    "names, cpus, orphan = sys.argv[1].split('|')\n"
    "for name in filter(None, names.split(',')):\n"
    "    if hasattr(signal, name):\n"
    "        signal.signal(getattr(signal, name), signal.SIG_DFL)\n"
    "if cpus:\n"
    "    os.sched_setaffinity(0, {int(cpu) for cpu in cpus.split(',')})\n"
    "if orphan == 'die':\n"
    "    import ctypes\n"
    "    ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def clean(cmd: list[str], cpus: set[int] | None = None, die_with_parent: bool = False,
          ) -> list[str]:
    """`cmd` behind the wrapper: default signals, `cpus` as its affinity, and (Linux)
    SIGKILL when the thread that started it ends, e.g. gilbench killed outright."""
    spec = "|".join((",".join(DEFAULT_SIGNALS), ",".join(map(str, sorted(cpus or ()))),
                     "die" if die_with_parent else "live"))
    return [sys.executable, "-I", "-S", "-c", _WRAPPER, spec, *cmd]
