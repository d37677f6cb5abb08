"""Paths typed on the command line mean what the user's shell means: `./lab` and
`invoke --search-root REPO` run in the caller's directory, not in the repository."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_cli_errors import assert_refused

Runner = Callable[..., subprocess.CompletedProcess[str]]


def lab(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`/path/to/lab ARGS` typed in `cwd`."""
    return subprocess.run([str(REPO / "lab"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, check=False)


def invoke_from(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`invoke -r REPO ARGS` typed in `cwd` (what the README offers besides ./lab)."""
    return subprocess.run([sys.executable, "-m", "invoke", "-r", str(REPO), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A folder outside the repository holding what the user refers to as ./NAME."""
    (tmp_path / "m.toml").write_text("workers = [1]\n[models.greenlets]\n[workloads.fib]\n")
    with tarfile.open(tmp_path / "Python-3.13.5.tar.xz", "w:xz") as tar:
        info = tarfile.TarInfo("Python-3.13.5/README.rst")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    host_python = shutil.which("python3.11") or shutil.which("python3")
    assert host_python is not None
    os.symlink(host_python, tmp_path / "py")  # too old to measure: refused once found
    (tmp_path / "RUN").mkdir()
    return tmp_path


@pytest.mark.parametrize("runner", [lab, invoke_from])
def test_relative_matrix_is_found_where_the_user_stands(runner: Runner, elsewhere: Path) -> None:
    # Found: the matrix's own complaint, not "does not exist".
    assert_refused(runner(elsewhere, "experiment", "--matrix", "./m.toml"),
                   "Matrix m.toml: 'models.greenlets' is unknown")


@pytest.mark.parametrize("runner", [lab, invoke_from])
def test_relative_source_is_found_where_the_user_stands(runner: Runner, elsewhere: Path) -> None:
    result = runner(elsewhere, "build", "--python", "3.12", "--source",
                    "./Python-3.13.5.tar.xz")
    assert_refused(result, f"--source {elsewhere}/Python-3.13.5.tar.xz holds CPython 3.13.5")


def test_relative_python_is_found_where_the_user_stands(elsewhere: Path) -> None:
    result = lab(elsewhere, "experiment", "--model", "threads", "--workload", "fib",
                 "--python", "./py")
    assert "is not an executable file" not in result.stdout + result.stderr
    assert_refused(result, "3.12 or newer")


def test_relative_resume_is_found_where_the_user_stands(elsewhere: Path) -> None:
    result = lab(elsewhere, "experiment", "--resume", "./RUN")
    out = result.stdout + result.stderr
    assert "There is no run" not in out and "Traceback" not in out
    assert result.returncode != 0


def test_results_dir_stays_in_the_repository(tmp_path: Path) -> None:
    assert_refused(lab(tmp_path, "experiment", "--resume", "no-such-run"),
                   f"There is no run 'no-such-run' (looked in {REPO}/results)")


def test_invoke_from_another_folder_lists_the_tasks(tmp_path: Path) -> None:
    result = invoke_from(tmp_path, "--list")
    assert result.returncode == 0, result.stderr
    for name in ("build", "experiment", "report", "all", "doctor"):
        assert f"  {name} " in result.stdout
