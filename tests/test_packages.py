"""Variants that add pinned pure-Python packages (pgo-pep734): versions, pins, identity."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from gilbench import packages
from gilbench.buildspec import BuildSpec
from gilbench.errors import GilbenchError
from gilbench.versions import VARIANTS, resolve_variant

PEP734 = VARIANTS["pgo-pep734"]


@pytest.mark.parametrize(("version", "why"), [
    ("3.12.15", "the backport needs 3.13's _interpreters"),
    ("3.14.8", "3.14 has PEP 734 in its standard library"),
])
def test_the_backport_variant_is_3_13_only(version: str, why: str) -> None:
    with pytest.raises(GilbenchError) as err:
        resolve_variant("pgo-pep734", version)
    message = str(err.value)
    assert message.startswith("The pgo-pep734 variant needs CPython 3.13 (") and why in message
    assert message.endswith(f"not {version}; use --python 3.13.")
    assert resolve_variant("pgo-pep734", "3.13.5") is PEP734


def test_pins_come_from_the_hash_pinned_file() -> None:
    (pin,) = packages.pins(packages.requirements(PEP734))  # type: ignore[arg-type]
    assert pin["name"] == "interpreters-pep-734" and pin["version"] == "0.5.0"
    assert len(pin["sha256"]) == 64
    assert packages.requirements(VARIANTS["pgo"]) is None and packages.digest(VARIANTS["pgo"]) == ""


def test_a_file_without_hash_pins_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "req.txt"
    bad.write_text("interpreters-pep-734==0.5.0\n")
    with pytest.raises(GilbenchError, match="pins no package as name==version --hash"):
        packages.pins(bad)


def test_packages_are_part_of_the_identity_and_absent_ones_change_nothing() -> None:
    spec = BuildSpec("3.13.5", "a" * 64, "pgo", ("--enable-optimizations",), "r" * 64, "b")
    # A build without packages keeps the name it had before the field existed.
    fields = dataclasses.asdict(spec)
    del fields["packages"]
    before = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]
    assert spec.digest == before
    with_packages = dataclasses.replace(spec, packages=packages.digest(PEP734))
    assert with_packages.digest != spec.digest
    assert dataclasses.replace(with_packages, packages="other").digest != with_packages.digest


def test_cached_wheels_are_checked_against_the_pin(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "interpreters_pep_734-0.5.0-py3-none-any.whl").write_bytes(b"not the wheel")
    # The wrong bytes under the right name are never used: pip fetches the pinned wheel
    # (PyPI is reachable wherever gilbench's own requirements install) over them.
    found = packages.wheels(PEP734, tmp_path)
    (pin,) = packages.pins(packages.requirements(PEP734))  # type: ignore[arg-type]
    assert [packages.sha256_file(w) for w in found] == [pin["sha256"]]
    assert [w.parent for w in found] == [wheels]
