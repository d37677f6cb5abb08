"""Fixtures for the report tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .helpers import RUN_A, RUN_B


@pytest.fixture
def run_a(tmp_path: Path) -> Path:
    """A private copy of fixture run A (reports write into the run folder)."""
    return Path(shutil.copytree(RUN_A, tmp_path / RUN_A.name))


@pytest.fixture
def run_b(tmp_path: Path) -> Path:
    return Path(shutil.copytree(RUN_B, tmp_path / RUN_B.name))
