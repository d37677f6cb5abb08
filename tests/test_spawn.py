"""gilbench.spawn: a native driver (and the build script) starts with default signals,
its CPUs and death-with-parent, however gilbench was started, without preexec_fn."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from gilbench import spawn
from tests.test_build_reproducible import ignored_signals, sigint_ignored  # noqa: F401

REPORT = """
import ctypes, json, os
status = open("/proc/self/status").read()
death = ctypes.c_int()
ctypes.CDLL(None).prctl(2, ctypes.byref(death), 0, 0, 0)  # PR_GET_PDEATHSIG
print(json.dumps({"status": status, "cpus": sorted(os.sched_getaffinity(0)),
                  "death": death.value}))
"""


def _report(cmd: list[str]) -> dict[str, object]:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.mark.usefixtures("sigint_ignored")
def test_a_child_starts_clean_even_from_a_background_job() -> None:
    # Signals as a shell child sees them (a Python child would ignore SIGPIPE and SIGXFSZ
    # itself at start-up, whatever it inherited).
    shell = subprocess.run(spawn.clean(["bash", "-c", "grep SigIgn /proc/self/status"]),
                           capture_output=True, text=True, timeout=60, check=False)
    assert shell.returncode == 0, shell.stderr
    ignored = ignored_signals(shell.stdout)
    assert not ignored & {signal.SIGINT, signal.SIGQUIT, signal.SIGPIPE, signal.SIGXFSZ}
    cpu = min(os.sched_getaffinity(0))
    got = _report(spawn.clean([sys.executable, "-c", REPORT], cpus={cpu},
                              die_with_parent=True))
    assert got["cpus"] == [cpu] and got["death"] == signal.SIGKILL


@pytest.mark.usefixtures("sigint_ignored")
def test_without_options_only_the_signals_change() -> None:
    got = _report(spawn.clean([sys.executable, "-c", REPORT]))
    assert got["cpus"] == sorted(os.sched_getaffinity(0)) and got["death"] == 0
    assert not ignored_signals(str(got["status"])) & {signal.SIGINT, signal.SIGQUIT}
    # the test process itself still ignores it: only the child was reset
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
