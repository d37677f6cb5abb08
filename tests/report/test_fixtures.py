"""The checked-in fixture runs are exactly what tests/fixtures/make_runs.py writes."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from .helpers import FIXTURES, RUNS


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_runs", FIXTURES / "make_runs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fixture_runs_match_their_generator() -> None:
    generator = _generator()
    for run_id in (generator.RUN_A, generator.RUN_B):
        for name, text in generator.render(run_id).items():
            assert (RUNS / run_id / name).read_text(encoding="utf-8") == text, (run_id, name)
