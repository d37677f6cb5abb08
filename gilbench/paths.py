"""Where the project's recipe files live and where gilbench keeps its caches."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCKER_DIR = REPO / "docker"
EXPERIMENTS_DIR = REPO / "experiments"
MATRICES_DIR = EXPERIMENTS_DIR / "matrices"
LOCK_FILE = DOCKER_DIR / "versions.toml"

# Files whose content determines an image: any change gives a new tag. (make-base.sh
# determines the base image, whose id is part of the tag too.)
RECIPE_FILES = ("Dockerfile", "build-cpython.sh", "build-deps.txt")


def default_cache_dir() -> Path:
    """GILBENCH_CACHE_DIR, else $XDG_CACHE_HOME/gilbench, else ~/.cache/gilbench."""
    if env := os.environ.get("GILBENCH_CACHE_DIR"):
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "gilbench"
