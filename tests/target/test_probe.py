"""`python -m experiments.driver --probe` describes the interpreter in one JSON object."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from driver_runs import REPO


def test_probe_describes_the_interpreter(target_python: Path) -> None:
    done = subprocess.run(
        [str(target_python), "-E", "-s", "-m", "experiments.driver", "--probe"],
        cwd=REPO, capture_output=True, text=True, check=True, timeout=60,
    )
    assert len(done.stdout.splitlines()) == 1
    info = json.loads(done.stdout)
    version = subprocess.run(
        [str(target_python), "-c", "import platform; print(platform.python_version())"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert info["python_version"] == version
    assert info["implementation"] == "CPython"
    assert info["gil_disabled_build"] is False and info["gil_enabled"] is True
    assert isinstance(info["config_args"], str) and isinstance(info["cc"], str)
    # No executor on 3.12, nor on a 3.13 without the backport (tests/target/test_backport.py).
    assert info["interpreter_pool"] is False
    assert info["pep734"] is None
    if version.startswith("3.12"):
        assert info["subinterpreter_api"] == "_xxsubinterpreters (3.12)"
        assert info["subinterpreter_transport"] == "_xxinterpchannels"
    else:
        assert info["subinterpreter_api"] == "_interpreters (3.13)"
        assert info["subinterpreter_transport"] == "_interpqueues"


def test_driver_usage_error_is_exit_2(target_python: Path) -> None:
    done = subprocess.run(
        [str(target_python), "-E", "-s", "-m", "experiments.driver"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
