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


# The Docker builds that tests share. The GIL build's owner is tests/test_build_docker.py
# (`pgo_build`: its options() and test-only flag, so a test never reuses or deletes a
# user's image); the fixtures below reuse those helpers, so one place says how a test
# build is made. They build once per session, like `pgo_build`.

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
def gil_pgo_build(docker_engine: None, build_cache: Path) -> dict[str, Any]:
    """The build record of the GIL 3.13.5 PGO image that test_build_docker.py's `pgo_build`
    made earlier in the session: the same options, so the same tag, and this is a no-op
    that returns in seconds. Run without that file, it builds the image (minutes)."""
    from gilbench.build import run_build
    from tests.test_build_docker import options

    return run_build(options(build_cache), lambda kind, text: None).record


@pytest.fixture(scope="session")
def freethreaded_build(docker_engine: None, build_cache: Path) -> dict[str, Any]:
    """CPython 3.13.5 `--variant freethreaded` (PGO and --disable-gil), built from source
    once per session in the real Docker engine (about 5 minutes on 2 cores) as `pgo_build`
    builds the GIL one: its options() with the test-only flag, the previous test image of
    this variant removed first, and no layer cache. Its build record."""
    import json
    from dataclasses import replace

    import docker

    from gilbench.build import run_build
    from gilbench.buildspec import IMAGE_REPO
    from tests.test_build_docker import TEST_FLAG, options

    client = docker.from_env()
    for image in client.images.list(name=IMAGE_REPO):
        record = json.loads(image.labels.get("org.gilbench.build", "{}"))
        if record.get("variant") == "freethreaded" and \
                TEST_FLAG in record.get("configure_args_requested", []):
            client.images.remove(str(image.id), force=True)
    result = run_build(replace(options(build_cache), variant="freethreaded", rebuild=True),
                       lambda kind, text: None)
    assert not result.reused
    return result.record
