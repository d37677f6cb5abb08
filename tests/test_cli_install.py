"""`pip install .` into a fresh venv gives a working host side: the packages import, the
recipe files and matrices travel with them, and `gilbench TASK` works like `./lab TASK`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from invoke.config import Config

from tests.conftest import REPO, find_python, require

# Never install from the shared checkout itself: pip would leave build/ and *.egg-info there.
_NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "results", "__pycache__", "*.egg-info",
                                     "build", ".mypy_cache", ".ruff_cache", ".pytest_cache",
                                     ".gilbench")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with `pip install .` of a copy of this checkout; its bin/ folder."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    shutil.copytree(REPO, source, ignore=_NOT_SOURCE)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(root / "venv")], check=True,
                   timeout=300)
    bin_dir = root / "venv" / "bin"
    result = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet",
                             "--disable-pip-version-check", str(source)],
                            capture_output=True, text=True, timeout=1200, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return bin_dir


def run_in(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bin_dir / args[0]), *args[1:]], cwd=cwd, capture_output=True,
                          text=True, timeout=600, check=False)


def test_installed_packages_import_with_their_data(installed: Path, tmp_path: Path) -> None:
    code = (
        "import gilbench, experiments, tasks\n"
        "from gilbench import paths\n"
        "assert 'site-packages' in paths.DOCKER_DIR.parts, paths.DOCKER_DIR\n"
        "assert not paths.IS_CHECKOUT\n"
        "for name in (*paths.RECIPE_FILES, 'make-base.sh', 'versions.toml'):\n"
        "    assert (paths.DOCKER_DIR / name).is_file(), name\n"
        "import docker; assert hasattr(docker, 'from_env')  # the SDK, untouched\n"
        "print(paths.results_dir('results'))\n"
    )
    result = run_in(installed, tmp_path, "python", "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "results")  # not inside site-packages


def test_gilbench_command_lists_and_runs_the_tasks(installed: Path, tmp_path: Path) -> None:
    listed = run_in(installed, tmp_path, "gilbench", "--list")
    assert listed.returncode == 0, listed.stderr
    for name in ("all", "build", "compare", "doctor", "experiment", "report"):
        assert f"  {name} " in listed.stdout
    matrices = run_in(installed, tmp_path, "gilbench", "experiment", "--matrix", "nope")
    assert "known: default, flags, full, quick" in matrices.stdout + matrices.stderr
    lock = run_in(installed, tmp_path, "gilbench", "build", "--python", "3.99")
    assert "known versions: 3.12.10" in lock.stdout + lock.stderr


def test_installed_copy_measures_a_native_python(installed: Path, tmp_path: Path) -> None:
    python = find_python("3.12")
    require(python is not None, "no pyenv Python 3.12 installed")
    run = run_in(installed, tmp_path, "gilbench", "experiment", "--backend", "native",
                 "--python", str(python), "--model", "threads", "--workload", "fib",
                 "--param", "n=12", "--workers", "1", "--repetitions", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    (run_dir,) = (tmp_path / "results").iterdir()
    report = run_in(installed, tmp_path, "gilbench", "report", "--run", run_dir.name)
    assert report.returncode == 0, report.stdout + report.stderr
    assert (run_dir / "report.md").is_file()


def test_task_defaults_match_invoke_yaml() -> None:
    """tasks.DEFAULTS serve the installed `gilbench`; invoke.yaml must say the same."""
    import tasks

    config = Config(project_location=REPO)
    config.load_project()
    assert dict(config.gilbench) == tasks.DEFAULTS
