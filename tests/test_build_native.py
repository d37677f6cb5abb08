"""The native backend compiles the real 3.13.5 sources with the same recipe as Docker.

It uses the `plain` variant (no PGO) to keep CI short; the PGO path of the one shared
recipe is exercised by the Docker end-to-end test.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gilbench import targets
from gilbench.build import BuildOptions, run_build
from gilbench.buildspec import BuildResult, list_native_builds

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def native_build(
    tmp_path_factory: pytest.TempPathFactory, cpython_3135_tarball: Path
) -> tuple[BuildResult, Path]:
    cache = tmp_path_factory.mktemp("native-cache")
    # --source: the tarball is verified against the lock and copied into the cache.
    result = run_build(
        BuildOptions(python=None, variant="plain", backend="native", cache_dir=cache,
                     source_cache=cache / "sources", base_image="",
                     source=cpython_3135_tarball),
        lambda kind, text: None,
    )
    return result, cache


def test_native_build_runs_and_records(native_build: tuple[BuildResult, Path]) -> None:
    result, cache = native_build
    record = result.record
    assert not result.reused and record["backend"] == "native"
    assert record["version"] == "3.13.5" and record["source_verified"]
    assert "--enable-optimizations" not in record["config_args"]
    python = Path(record["executable"])
    assert python.is_relative_to(cache / "native")
    out = subprocess.run([python, "-c", "import sys, _interpreters; print(sys.version)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.startswith("3.13.5")
    assert (cache / "sources" / "Python-3.13.5.tar.xz").is_file()  # verified, so cached
    assert (python.parent.parent / "gilbench-build.json").is_file()


def test_native_rebuild_is_a_noop_and_resolvable(native_build: tuple[BuildResult, Path]) -> None:
    result, cache = native_build
    again = run_build(
        BuildOptions(python="3.13.5", variant="plain", backend="native", cache_dir=cache,
                     source_cache=cache / "sources", base_image=""),
        lambda kind, text: None,
    )
    assert again.reused and again.record == result.record
    target = targets.resolve("3.13", "native", "plain", cache)
    assert target.kind == "native" and target.executable == result.record["executable"]


def test_incomplete_prefix_is_not_a_build(native_build: tuple[BuildResult, Path]) -> None:
    result, cache = native_build
    prefix = Path(result.record["executable"]).parent.parent
    copy = cache / "native" / "3.13.5-plain-broken0000"
    shutil.copytree(prefix, copy, symlinks=True)
    (copy / "gilbench-build.json").unlink()  # as if killed before the record was written
    names = [r["name"] for r in list_native_builds(cache)]
    assert names == [result.record["name"]]
