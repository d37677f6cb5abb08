"""Bad input through the real command line: one sentence, exit 1, no traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import invoke


def assert_refused(result: object, *fragments: str) -> None:
    out = result.stdout + result.stderr  # type: ignore[attr-defined]
    assert result.returncode == 1, out  # type: ignore[attr-defined]
    assert "Traceback" not in out
    for fragment in fragments:
        assert fragment in out, out


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["build", "--python", "3.11.2"], ["'3.11.2' is not in the version lock", "3.12.15"]),
        (["build", "--python", "3.13.5", "--variant", "turbo"], ["Unknown variant 'turbo'"]),
        (["build", "--python", "3.12", "--variant", "freethreaded"],
         ["needs CPython 3.13 or newer"]),
        (["build", "--python", "3.13.5", "--backend", "podman"], ["Unknown backend 'podman'"]),
        (["build", "--python", "3.13.5", "--configure-arg=--a b"], ["not a single --flag"]),
        (["experiment", "--matrix", "nope"], ["no matrix named 'nope'"]),
        (["experiment", "--model", "greenlets", "--workload", "fib", "--python", "/bin/sh"],
         ["'models.greenlets' is unknown"]),
        (["experiment", "--model", "threads", "--workload", "fib", "--workers", "0",
          "--python", "/bin/sh"], ["'workers' must be an integer from 1 to 1024"]),
        (["experiment", "--resume", "no-such-run"], ["There is no run 'no-such-run'"]),
        (["report", "--run", "no-such-run"], ["There is no run 'no-such-run'"]),
    ],
)
def test_user_mistakes(args: list[str], fragments: list[str]) -> None:
    assert_refused(invoke(*args), *fragments)


def test_no_docker_engine_says_how_to_start_one(tmp_path: Path) -> None:
    result = invoke("build", "--python", "3.13.5",
                    env={"DOCKER_HOST": f"unix://{tmp_path}/none.sock",
                         "GILBENCH_CACHE_DIR": str(tmp_path)})
    assert_refused(result, "No Docker engine answers", "--backend native")


def test_tampered_source_is_refused(tmp_path: Path, cpython_3135_tarball: Path) -> None:
    tampered = tmp_path / "Python-3.13.5.tar.xz"
    shutil.copyfile(cpython_3135_tarball, tampered)
    with tampered.open("r+b") as fh:
        fh.seek(1_000_000)
        byte = fh.read(1)
        fh.seek(1_000_000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    cache = tmp_path / "cache"
    result = invoke("build", "--source", str(tampered), env={"GILBENCH_CACHE_DIR": str(cache)})
    lock_sha = "93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640"
    assert_refused(result, "does not match the lock for CPython 3.13.5",
                   f"expected sha256 {lock_sha}")
    assert not (cache / "sources" / "Python-3.13.5.tar.xz").exists()


def test_non_312_python_is_refused(tmp_path: Path) -> None:
    host_python = shutil.which("python3.11") or shutil.which("python3")
    assert host_python is not None
    result = invoke("experiment", "--model", "threads", "--workload", "fib",
                    "--python", host_python, env={"GILBENCH_CACHE_DIR": str(tmp_path)})
    assert_refused(result, "need CPython 3.12 or newer")
