"""Where the project's recipe files live and where gilbench keeps its caches.

Two layouts are supported:

- a checkout (what `./lab` runs): the folder holding `gilbench/` and `experiments/`
  also holds `docker/`, `invoke.yaml` and `results/`;
- an installed copy (`pip install .`): `gilbench/` and `experiments/` sit side by side
  in site-packages and the recipe files travel as package data in `gilbench/recipes/`
  (pyproject.toml maps `docker/` there). Relative results folders then resolve
  against the current directory, since site-packages is no place for results.
"""

from __future__ import annotations

import os
from pathlib import Path

from gilbench.errors import GilbenchError

_PACKAGE = Path(__file__).resolve().parent
# The folder that holds the gilbench and experiments packages: the repository in a
# checkout, site-packages when installed.
REPO = _PACKAGE.parent
_CHECKOUT_RECIPES = REPO / "docker"
IS_CHECKOUT = (_CHECKOUT_RECIPES / "build-cpython.sh").is_file()
DOCKER_DIR = _CHECKOUT_RECIPES if IS_CHECKOUT else _PACKAGE / "recipes"
EXPERIMENTS_DIR = REPO / "experiments"
MATRICES_DIR = EXPERIMENTS_DIR / "matrices"
LOCK_FILE = DOCKER_DIR / "versions.toml"

# Files whose content determines an image: any change gives a new tag. (make-base.sh
# determines the base image, whose id is part of the tag too.)
RECIPE_FILES = ("Dockerfile", "build-cpython.sh", "build-deps.txt")


def default_cache_dir() -> Path:
    """GILBENCH_CACHE_DIR, else $XDG_CACHE_HOME/gilbench, else ~/.cache/gilbench."""
    if env := os.environ.get("GILBENCH_CACHE_DIR"):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "gilbench"


def results_dir(configured: str | None) -> Path:
    """The results folder from config: relative means relative to the repository in a
    checkout (whatever the current directory), else to the current directory."""
    path = Path(configured or "results").expanduser()
    if path.is_absolute():
        return path
    return (REPO if IS_CHECKOUT else Path.cwd()) / path


def dir_problem(path: Path) -> str | None:
    """Why `path` cannot be (or become) a writable folder, or None when it can."""
    probe = path
    while not probe.exists():
        if probe.is_symlink():
            return f"{probe} is a broken symbolic link"
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is a file, not a folder" if probe == path else (
            f"{probe}, on its way, is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable by this user"
    return None


def ensure_dir(path: Path, what: str, setting: str) -> Path:
    """Create `path` (a folder gilbench writes to) or say, in one sentence, why not."""
    problem = dir_problem(path)
    if problem is None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            problem = f"it cannot be created ({exc.strerror or exc})"
    if problem is not None:
        raise GilbenchError(
            f"The {what} {path} cannot be used: {problem}; point {setting} at a folder "
            "you can write to."
        )
    return path
