"""Fixtures for the report tests."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

# `pytest` (unlike `python -m pytest`) does not put the repository root on sys.path, and
# gilbench is not installed into .venv; without this, `import gilbench` fails here.
REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from .helpers import RUN_A, RUN_B  # noqa: E402


@pytest.fixture
def run_a(tmp_path: Path) -> Path:
    """A private copy of fixture run A (reports write into the run folder)."""
    return Path(shutil.copytree(RUN_A, tmp_path / RUN_A.name))


@pytest.fixture
def run_b(tmp_path: Path) -> Path:
    return Path(shutil.copytree(RUN_B, tmp_path / RUN_B.name))
