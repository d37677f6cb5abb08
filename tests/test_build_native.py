"""The native backend compiles the real 3.13.5 sources with PGO, with the same recipe as
Docker, started the way that used to break it: as a background job of a non-interactive
shell (`nohup ./lab build ... &`), so with SIGINT ignored and no terminal.

CPython's PGO training test test_generators.SignalAndYieldFromTest.test_raise_and_yield_from
needs SIGINT, and since 3.13 a failing training test stops the build, so this one build
(CI's only native PGO build; the plain ones are in test_build_reproducible.py) also keeps
that failure from coming back.
"""

from __future__ import annotations

import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gilbench import targets
from gilbench.build import BuildOptions, run_build
from gilbench.buildspec import list_native_builds
from tests.conftest import REPO, require

pytestmark = pytest.mark.slow


def ignored_signals(status_line: str) -> set[int]:
    """'SigIgn:\t0000000000000006' -> {2, 3}."""
    mask = int(status_line.split()[1], 16)
    return {bit + 1 for bit in range(64) if mask >> bit & 1}


@pytest.fixture(scope="module")
def native_build(
    tmp_path_factory: pytest.TempPathFactory, cpython_3135_tarball: Path
) -> tuple[dict[str, Any], Path, str]:
    """`invoke build --backend native --variant pgo --source TARBALL` as a background job
    (setsid nohup ... &) of a non-interactive bash, waited for; its record, cache and output."""
    require(shutil.which("setsid") is not None and shutil.which("nohup") is not None,
            "needs setsid and nohup (util-linux, coreutils)")
    require(Path("/proc/self/status").exists(), "needs Linux /proc")
    cache = tmp_path_factory.mktemp("native-cache")
    out, sigign = cache / "build.out", cache / "sigign.txt"
    build = shlex.join([sys.executable, "-m", "invoke", "--search-root", str(REPO), "build",
                        "--backend", "native", "--variant", "pgo",
                        "--source", str(cpython_3135_tarball)])
    # bash without job control starts `&` jobs with SIGINT and SIGQUIT ignored; the job's
    # own disposition is recorded to prove the premise, then waited for.
    script = (f"GILBENCH_CACHE_DIR={shlex.quote(str(cache))} setsid -w nohup {build} "
              f"> {shlex.quote(str(out))} 2>&1 < /dev/null &\n"
              f"job=$!\ngrep SigIgn /proc/$job/status > {shlex.quote(str(sigign))}\n"
              "wait $job")
    done = subprocess.run(["bash", "-c", script], cwd=REPO, timeout=1500, check=False,
                          stdin=subprocess.DEVNULL)
    output = out.read_text()
    assert done.returncode == 0, output[-3000:]
    assert {signal.SIGINT, signal.SIGQUIT} <= ignored_signals(sigign.read_text())
    (record,) = list_native_builds(cache)
    return record, cache, output


def test_native_pgo_build_in_background_runs_and_records(
    native_build: tuple[dict[str, Any], Path, str],
) -> None:
    record, cache, output = native_build
    assert "built " in output and "already built" not in output
    assert record["backend"] == "native" and record["variant"] == "pgo"
    assert record["version"] == "3.13.5" and record["source_verified"]
    assert "--enable-optimizations" in record["config_args"]
    # The training run happened, in its own phase, and passed on the first attempt.
    assert {"instrumented-build", "pgo-training", "final-build"} <= set(record["phases"])
    (log,) = (cache / "logs").glob("build-3.13.5-pgo-*.log")
    text = log.read_text()
    assert "test_generators" in text and "test test_generators failed" not in text
    assert "::gilbench-pgo-training::" not in text  # the recipe's failure report
    python = Path(record["executable"])
    assert python.is_relative_to(cache / "native")
    out = subprocess.run([python, "-c", "import sys, _interpreters; print(sys.version)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.startswith("3.13.5")
    assert (cache / "sources" / "Python-3.13.5.tar.xz").is_file()  # verified, so cached
    assert (python.parent.parent / "gilbench-build.json").is_file()


def test_native_rebuild_is_a_noop_and_resolvable(
    native_build: tuple[dict[str, Any], Path, str],
) -> None:
    record, cache, _ = native_build
    again = run_build(
        BuildOptions(python="3.13.5", variant="pgo", backend="native", cache_dir=cache,
                     source_cache=cache / "sources", base_image=""),
        lambda kind, text: None,
    )
    assert again.reused and again.record == record
    target = targets.resolve("3.13", "native", "pgo", cache)
    assert target.kind == "native" and target.executable == record["executable"]


def test_incomplete_prefix_is_not_a_build(
    native_build: tuple[dict[str, Any], Path, str],
) -> None:
    record, cache, _ = native_build
    prefix = Path(record["executable"]).parent.parent
    copy = cache / "native" / "3.13.5-pgo-broken0000"
    shutil.copytree(prefix, copy, symlinks=True)
    (copy / "gilbench-build.json").unlink()  # as if killed before the record was written
    names = [r["name"] for r in list_native_builds(cache)]
    assert names == [record["name"]]
