"""experiments.wire drives json's private C accelerator; if a CPython ever drives it
differently, wire must notice at import and use json, never write unreadable records."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import REPO

BROKEN = """
import json  # first: json keeps the real accelerator it captured at import
import _json
_json.make_encoder = lambda *args: (lambda obj, level: ["not json"])
from experiments import wire
assert wire._c is None and wire._scan is None, "the broken accelerator was kept"
assert wire.dumps({"a": [1.5, None]}) == '{"a": [1.5, null]}'
assert wire.loads('{"a": [1.5, null]}') == {"a": [1.5, None]}
print("fell back")
"""


def test_a_changed_accelerator_falls_back_to_json(target_python: Path) -> None:
    done = subprocess.run([str(target_python), "-E", "-s", "-c", BROKEN], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "fell back"


def test_the_accelerator_is_used_where_it_works(target_python: Path) -> None:
    code = "from experiments import wire; print(wire._c is not None)"
    done = subprocess.run([str(target_python), "-E", "-s", "-c", code], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout.strip() == "True", done.stderr
