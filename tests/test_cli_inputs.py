"""User input at the command line and on the build side: one sentence, exit 1, no
traceback, and nothing fetched, built or run before the refusal."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from tests.conftest import invoke
from tests.test_cli_errors import assert_refused

SINGLE = ["experiment", "--model", "threads", "--workload", "fib", "--python", "/bin/sh"]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        # Numbers that are not numbers (invoke's own int/float coercion used to raise).
        (["build", "--jobs", "abc"], ["--jobs 'abc' must be a whole number"]),
        (["build", "--jobs", "0"], ["make jobs (--jobs, or gilbench.jobs) must be a whole number"]),
        ([*SINGLE, "--repetitions", "abc"], ["--repetitions 'abc' must be a whole number"]),
        ([*SINGLE, "--warmups", "abc"], ["--warmups 'abc' must be a whole number"]),
        ([*SINGLE, "--timeout", "abc"], ["--timeout 'abc' must be a number"]),
        ([*SINGLE, "--workers", "abc"], ["--workers 'abc' must be integers"]),
        # Bounds, NaN and infinity.
        ([*SINGLE, "--repetitions", "1000000000"],
         ["'repetitions' must be an integer from 1 to 10000, got 1000000000"]),
        ([*SINGLE, "--warmups", "-1"], ["'warmups' must be an integer from 0 to 1000"]),
        ([*SINGLE, "--workers", "100000"], ["'workers' must be an integer from 1 to 1024"]),
        ([*SINGLE, "--timeout", "nan"], ["'timeout_s' must be a number of seconds", "got nan"]),
        ([*SINGLE, "--timeout", "inf"], ["'timeout_s' must be a number of seconds", "got inf"]),
        ([*SINGLE, "--timeout", "0"], ["'timeout_s' must be a number of seconds above 0"]),
        # Contradictory flags are refused, naming them, before the run is looked up.
        (["experiment", "--resume", "any-run", "--matrix", "quick"],
         ["--matrix cannot be given with --resume", "drop it"]),
        (["experiment", "--resume", "any-run", "--matrix"], ["--matrix cannot be given"]),
        (["experiment", "--resume", "any-run", "--python", "3.12", "--model", "threads"],
         ["--python and --model cannot be given with --resume", "drop them"]),
        (["experiment", "--resume", "any-run", "--workload", "fib", "--config", "gil=own",
          "--param", "n=3", "--backend", "native"],
         ["--backend, --workload, --config and --param cannot be given with --resume"]),
        (["experiment", "--resume", "any-run", "--workers", "1,2", "--repetitions", "3",
          "--warmups", "0", "--timeout", "5"],
         ["--workers, --repetitions, --warmups and --timeout cannot be given with --resume"]),
        (["experiment", "--matrix", "quick", "--model", "threads", "--workload", "fib"],
         ["--matrix cannot be given with --model/--workload"]),
        (["experiment", "--matrix", "quick", "--repetitions", "3"],
         ["--repetitions only applies to a single-cell run", "a matrix sets it in its file"]),
        (["experiment", "--workers", "1,2", "--timeout", "9"],
         ["--workers and --timeout only apply to a single-cell run"]),
        # Configure flags that move the install are refused, abbreviations included.
        (["build", "--python", "3.13.5", "--configure-arg=--prefix=/etc"],
         ["'--prefix=/etc' is refused: --prefix would move where the build installs"]),
        (["build", "--python", "3.13.5", "--configure-arg=--pref=/etc"],
         ["--prefix would move where the build installs"]),
        (["build", "--python", "3.13.5", "--configure-arg=--with-lto",
          "--configure-arg=--libdir=/usr/lib"], ["--libdir would move where the build"]),
        (["build", "--python", "3.13.5", "--configure-arg=--exec-prefix=/usr"],
         ["--exec-prefix would move"]),
        # configure reads '_' as '-' in option names (found by a hostile test)
        (["build", "--python", "3.13.5", "--configure-arg=--exec_prefix=/etc"],
         ["--exec-prefix would move"]),
        (["build", "--python", "3.13.5", "--configure-arg=--srcdir=/tmp"],
         ["--srcdir would build other sources than the verified tarball"]),
    ],
)
def test_user_mistakes(args: list[str], fragments: list[str], tmp_path: Path) -> None:
    # An engine that does not answer and an empty cache: a refusal that came too late
    # (after a backend or source was touched) would say something else.
    env = {"DOCKER_HOST": f"unix://{tmp_path}/none.sock",
           "GILBENCH_CACHE_DIR": str(tmp_path / "cache")}
    assert_refused(invoke(*args, env=env), *fragments)


def fake_tarball(path: Path, top: str) -> Path:
    with tarfile.open(path, "w:xz") as tar:
        info = tarfile.TarInfo(f"{top}/README.rst")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    return path


@pytest.mark.parametrize("python", ["3.12", "3.99", "3.13.4"])
def test_source_contradicting_python_is_refused(tmp_path: Path, python: str) -> None:
    tarball = fake_tarball(tmp_path / "Python-3.13.5.tar.xz", "Python-3.13.5")
    result = invoke("build", "--python", python, "--source", str(tarball),
                    env={"GILBENCH_CACHE_DIR": str(tmp_path / "cache")})
    assert_refused(result, f"holds CPython 3.13.5 but --python asks for {python}")


def test_source_alone_takes_the_tarball_version(tmp_path: Path) -> None:
    # The default python (3.12) does not count against a 3.13.5 tarball: the lock check
    # (this tarball is not the real one) is what stops it.
    tarball = fake_tarball(tmp_path / "Python-3.13.5.tar.xz", "Python-3.13.5")
    result = invoke("build", "--source", str(tarball),
                    env={"GILBENCH_CACHE_DIR": str(tmp_path / "cache")})
    assert_refused(result, "does not match the lock for CPython 3.13.5")


def test_source_matching_python_goes_on(tmp_path: Path) -> None:
    tarball = fake_tarball(tmp_path / "Python-3.13.5.tar.xz", "Python-3.13.5")
    result = invoke("build", "--python", "3.13", "--source", str(tarball),
                    env={"GILBENCH_CACHE_DIR": str(tmp_path / "cache")})
    assert_refused(result, "does not match the lock for CPython 3.13.5")


@pytest.mark.parametrize("content", [b"hello", b""])
def test_source_that_is_no_tarball_at_all(tmp_path: Path, content: bytes) -> None:
    # A text file under a tarball's name: one sentence naming it, not every decompressor
    # tarfile tried; refused before the engine (which does not answer) or the cache.
    text = tmp_path / "Python-3.13.99.tar.xz"
    text.write_bytes(content)
    cache = tmp_path / "cache"
    result = invoke("build", "--source", str(text),
                    env={"DOCKER_HOST": f"unix://{tmp_path}/none.sock",
                         "GILBENCH_CACHE_DIR": str(cache)})
    assert_refused(result, f"--source {text} is not a CPython source tarball (not an xz, "
                           "gzip or bzip2 tar archive)")
    out = result.stdout + result.stderr
    assert "method" not in out and "ReadError" not in out and out.count("\n") == 1, out
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_matrix_not_utf8_or_a_folder(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('description = "caf\u00e9"\n'.encode("latin-1"))
    assert_refused(invoke("experiment", "--matrix", str(latin1)), "is not UTF-8 text")
    assert_refused(invoke("experiment", "--matrix", str(tmp_path) + "/"),
                   "is a folder; give a .toml file")


def test_cache_dir_that_is_a_file(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.write_text("a file")
    result = invoke("build", "--python", "3.13.5", env={"GILBENCH_CACHE_DIR": str(cache)})
    assert_refused(result, f"The cache folder {cache} cannot be used", "is a file, not a folder",
                   "GILBENCH_CACHE_DIR")
    below = invoke("build", "--python", "3.13.5",
                   env={"GILBENCH_CACHE_DIR": str(cache / "sub")})
    assert_refused(below, "on its way, is a file")


def test_results_dir_that_is_a_file(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.write_text("a file")
    result = invoke(*SINGLE, env={"INVOKE_GILBENCH_RESULTS_DIR": str(results)})
    assert_refused(result, f"The results folder {results} cannot be used", "is a file",
                   "gilbench.results_dir")


def test_results_dir_that_cannot_be_created() -> None:
    # /proc refuses new folders even to root, so this runs as any user.
    result = invoke(*SINGLE, env={"INVOKE_GILBENCH_RESULTS_DIR": "/proc/gilbench-results"})
    assert_refused(result, "The results folder /proc/gilbench-results cannot be used",
                   "it cannot be created")
