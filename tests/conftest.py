"""Shared fixtures: real interpreters and a real Docker engine, never stand-ins.

On a developer's laptop a test whose requirement is missing skips with the reason.
CI sets GILBENCH_REQUIRE_ALL=1, which turns every such skip into a failure.
"""

from __future__ import annotations

import glob
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


def require(condition: bool, reason: str) -> None:
    """Skip locally, fail in CI, when something a test needs is missing."""
    if condition:
        return
    if os.environ.get("GILBENCH_REQUIRE_ALL") == "1":
        pytest.fail(f"missing requirement (GILBENCH_REQUIRE_ALL=1): {reason}")
    pytest.skip(reason)


def _pyenv_root() -> Path:
    try:
        out = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=True)
        return Path(out.stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        return Path.home() / ".pyenv"


def find_python(minor: str) -> Path | None:
    """The newest installed pyenv interpreter of a minor version, e.g. '3.12'."""
    found = sorted(glob.glob(str(_pyenv_root() / "versions" / f"{minor}.*" / "bin" / "python")))
    return Path(found[-1]) if found else None


@pytest.fixture(params=["3.12", "3.13"])
def target_python(request: pytest.FixtureRequest) -> Path:
    """Each installed target interpreter in turn (3.12 and 3.13)."""
    path = find_python(request.param)
    require(path is not None, f"no pyenv Python {request.param} installed")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def python312() -> Path:
    path = find_python("3.12")
    require(path is not None, "no pyenv Python 3.12 installed")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def python313() -> Path:
    path = find_python("3.13")
    require(path is not None, "no pyenv Python 3.13 installed")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def cpython_3135_tarball() -> Path:
    """The real Python-3.13.5.tar.xz (from Debian's archive: see .ci/run)."""
    from gilbench.paths import default_cache_dir

    env = os.environ.get("GILBENCH_TEST_TARBALL")
    path = Path(env) if env else default_cache_dir() / "sources" / "Python-3.13.5.tar.xz"
    require(path.is_file(), f"no CPython 3.13.5 tarball at {path} (.ci/run fetches one)")
    return path


@pytest.fixture(scope="session")
def cpython_31315_tarball() -> Path:
    """The real Python-3.13.15.tar.xz (from Debian testing/unstable: see .ci/run)."""
    from gilbench.paths import default_cache_dir

    path = default_cache_dir() / "sources" / "Python-3.13.15.tar.xz"
    require(path.is_file(), f"no CPython 3.13.15 tarball at {path} (.ci/run fetches one)")
    return path


@pytest.fixture(scope="session")
def docker_engine() -> None:
    from gilbench.engine import engine_available

    require(engine_available(), "no Docker engine answers (.ci/run starts one)")


def invoke(*args: str, env: dict[str, str] | None = None,
           timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """The real command line: `invoke ARGS` in the repo, as a user would type it."""
    import sys

    return subprocess.run(
        [sys.executable, "-m", "invoke", *args], cwd=REPO, capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=timeout, check=False,
    )


# CPython 3.13 sometimes fails to create a sub-interpreter under load ("Failed to import
# encodings module"; seen on 3.13.0 and 3.13.5t). gilbench records it as `invalid`, a
# real result; tests that expect a sub-interpreter to work accept exactly that failure.
CREATION_FLAKE = "Failed to import encodings module"


def ok_or_creation_flake(record: dict[str, object]) -> bool:
    return record["status"] == "ok" or (
        record["status"] == "invalid" and CREATION_FLAKE in str(record["message"]))


def wait_for_records(results: Path, count: int, timeout: float = 120) -> Path:
    """The run folder under `results` once its records.jsonl holds `count` lines (a run
    started in the background; tests kill it there)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in results.glob("*/records.jsonl"):
            if path.read_bytes().count(b"\n") >= count:
                return path.parent
        time.sleep(0.02)
    raise AssertionError(f"no run under {results} reached {count} records")


# The Docker builds that tests share, each made once per session: the GIL 3.13.5 PGO image
# (`pgo_build`, whose checks are tests/test_build_docker.py's) and the free-threaded one
# (`freethreaded_build`). Both carry a test-only extra flag (--with-computed-gotos, gcc's
# default anyway), so they have their own tags: a test never reuses or deletes a user's
# image, and each removes only its own variant's earlier test image, so the order in which
# test files run cannot make either build twice.
TEST_FLAG = "--with-computed-gotos"


def build_options(cache: Path, *extra: str) -> Any:
    """The BuildOptions of a test build of 3.13.5 (PGO) from `cache`."""
    from invoke.config import Config  # the base image the project configures

    from gilbench.build import BuildOptions

    config = Config(project_location=str(REPO))
    config.load_project()
    return BuildOptions(
        python="3.13.5", variant="pgo", backend="docker", cache_dir=cache,
        source_cache=cache / "sources", base_image=config.gilbench.base_image,
        extra_args=(TEST_FLAG, *extra), jobs=None,
    )


def _remove_test_images(freethreaded: bool) -> None:
    """Remove earlier test images: the free-threaded one, or every other variant (pgo and
    what is layered on it, such as pgo-pep734, which must then build again too)."""
    import json

    import docker

    from gilbench.buildspec import IMAGE_REPO

    client = docker.from_env()
    for image in client.images.list(name=IMAGE_REPO):
        record = json.loads(image.labels.get("org.gilbench.build", "{}"))
        if (record.get("variant") == "freethreaded") == freethreaded and \
                TEST_FLAG in record.get("configure_args_requested", []):
            client.images.remove(str(image.id), force=True)


@pytest.fixture(scope="session")
def build_cache(tmp_path_factory: pytest.TempPathFactory, cpython_3135_tarball: Path) -> Path:
    """A cache folder for test builds: the real 3.13.5 tarball and python.org's signature
    beside it, as .ci/run fetches them (the build verifies both)."""
    import shutil

    cache = tmp_path_factory.mktemp("gilbench-build-cache")
    (cache / "sources").mkdir()
    signature = cpython_3135_tarball.with_name(cpython_3135_tarball.name + ".asc")
    require(signature.is_file(), f"no signature at {signature} (.ci/run fetches it)")
    shutil.copyfile(cpython_3135_tarball, cache / "sources" / "Python-3.13.5.tar.xz")
    shutil.copyfile(signature, cache / "sources" / "Python-3.13.5.tar.xz.asc")
    return cache


@pytest.fixture(scope="session")
def pgo_build(docker_engine: None, build_cache: Path) -> tuple[Any, list[tuple[str, str]]]:
    """The GIL 3.13.5 PGO image, built from source (its earlier test image removed, and
    without Docker's layer cache: on a machine that built this recipe before, the cache
    would hand back the old CPython layers). (BuildResult, the build's events)."""
    from dataclasses import replace

    from gilbench.build import run_build

    _remove_test_images(freethreaded=False)
    events: list[tuple[str, str]] = []
    result = run_build(replace(build_options(build_cache), rebuild=True),
                       lambda kind, text: events.append((kind, text)))
    return result, events


@pytest.fixture(scope="session")
def gil_pgo_build(pgo_build: tuple[Any, list[tuple[str, str]]]) -> dict[str, Any]:
    """The build record of the shared GIL 3.13.5 PGO test image."""
    return dict(pgo_build[0].record)


@pytest.fixture(scope="session")
def freethreaded_build(docker_engine: None, build_cache: Path) -> dict[str, Any]:
    """CPython 3.13.5 `--variant freethreaded` (PGO and --disable-gil), built from source
    once per session in the real Docker engine (about 5 minutes on 2 cores) as `pgo_build`
    builds the GIL one. Its build record."""
    from dataclasses import replace

    from gilbench.build import run_build

    _remove_test_images(freethreaded=True)
    result = run_build(replace(build_options(build_cache), variant="freethreaded",
                               rebuild=True), lambda kind, text: None)
    assert not result.reused
    return dict(result.record)
