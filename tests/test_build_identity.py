"""What names a build: the spec hash, extra-flag checks, smoke-check judgement."""

from __future__ import annotations

import dataclasses

import pytest

from gilbench import smoke
from gilbench.buildspec import BuildSpec, PhaseClock, check_extra_args, recipe_hash
from gilbench.errors import GilbenchError

SPEC = BuildSpec("3.13.5", "a" * 64, "pgo", ("--enable-optimizations",), "r" * 64, "sha256:base")


def test_tag_is_stable_and_readable() -> None:
    again = BuildSpec(*dataclasses.astuple(SPEC))
    assert SPEC.name == again.name
    assert SPEC.name.startswith("3.13.5-pgo-") and len(SPEC.digest) == 12


@pytest.mark.parametrize(
    "change",
    [{"version": "3.13.6"}, {"sha256": "b" * 64}, {"variant": "pgo-lto"},
     {"configure_args": ("--enable-optimizations", "--with-lto")},
     {"recipe_hash": "s" * 64}, {"base": "sha256:other"}],
)
def test_every_input_changes_the_tag(change: dict[str, object]) -> None:
    assert dataclasses.replace(SPEC, **change).digest != SPEC.digest  # type: ignore[arg-type]


def test_recipe_hash_covers_the_recipe_files() -> None:
    assert len(recipe_hash()) == 64
    assert recipe_hash() == recipe_hash()


def test_extra_args_must_be_single_flags() -> None:
    assert check_extra_args(["--with-lto", "--with-openssl=/usr"]) == (
        "--with-lto", "--with-openssl=/usr")
    for bad in ["--foo bar", "CFLAGS=-O0", "--x;rm -rf /", "'--quoted'"]:
        with pytest.raises(GilbenchError, match="is not a single --flag"):
            check_extra_args([bad])


def test_phase_clock_reads_markers_even_after_terminal_escapes() -> None:
    events: list[tuple[str, str]] = []
    clock = PhaseClock(lambda kind, text: events.append((kind, text)))
    for line in ["\x1b[0m::gilbench-phase:: extract", "tar output",
                 "::gilbench-warning:: PGO training run failed (test_generators); retrying once",
                 "::gilbench-phase:: configure"]:
        clock.feed(line)
    clock.stop()
    assert events == [("phase", "extract"), ("log", "tar output"),
                      ("warning", "PGO training run failed (test_generators); retrying once"),
                      ("phase", "configure")]
    assert set(clock.durations) == {"extract", "configure"}


def good_info() -> dict[str, object]:
    return {"version": "3.13.5", "config_args": "'--prefix=/opt/cpython' '--enable-optimizations'",
            "gil_disabled": False, "debug": False, "subinterpreters_ok": True,
            "subinterpreters_module": "_interpreters"}


def test_smoke_accepts_what_was_asked() -> None:
    assert smoke.problems(good_info(), "3.13.5", ("--enable-optimizations",)) == []


def test_smoke_rejects_missing_flags_and_wrong_builds() -> None:
    info = good_info()
    assert smoke.problems(info, "3.13.5", ("--enable-optimizations", "--with-lto")) == [
        f"CONFIG_ARGS lacks --with-lto (it is {info['config_args']!r})"]
    assert "not 3.13.6" in smoke.problems(info, "3.13.6", ())[0]
    freethreaded = smoke.problems(info, "3.13.5", ("--enable-optimizations", "--disable-gil"))
    assert any("Py_GIL_DISABLED is False" in p for p in freethreaded)
    broken = {**info, "subinterpreters_ok": False, "subinterpreters_error": "ImportError: x"}
    assert smoke.problems(broken, "3.13.5", ()) == ["_interpreters does not work: ImportError: x"]
