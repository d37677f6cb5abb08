"""`./lab all` passes --python, --backend and --matrix to the tasks it chains."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import invoke
from tests.test_cli_errors import assert_refused


def test_all_documents_its_flags() -> None:
    result = invoke("all", "--help")
    assert result.returncode == 0, result.stderr
    for flag in ("--python", "--backend", "--matrix", "skipped"):
        assert flag in result.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--python", "3.99"], "CPython '3.99' is not in the version lock"),
        (["--python", "3.12/freethreaded"], "The freethreaded variant needs CPython 3.13"),
        (["--python", "3.13.5", "--backend", "podman"], "Unknown backend 'podman'"),
    ],
)
def test_all_passes_python_and_backend_to_build(args: list[str], fragment: str,
                                                tmp_path: Path) -> None:
    assert_refused(invoke("all", *args, env={"GILBENCH_CACHE_DIR": str(tmp_path)}), fragment)


def test_all_with_a_native_python_skips_the_build(python312: Path, tmp_path: Path) -> None:
    tiny = tmp_path / "tiny.toml"
    tiny.write_text("workers = [1]\nrepetitions = 1\nwarmups = 0\n[models.sequential]\n"
                    "[workloads.fib]\nn = 12\ntasks = 1\n")
    results = tmp_path / "results"
    result = invoke("all", "--backend", "native", "--python", str(python312), "--matrix",
                    str(tiny), env={"INVOKE_GILBENCH_RESULTS_DIR": str(results),
                                    "DOCKER_HOST": f"unix://{tmp_path}/none.sock",
                                    "GILBENCH_CACHE_DIR": str(tmp_path / "cache")})
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "skipping the build" in out and "Traceback" not in out
    (run_dir,) = results.iterdir()
    assert (run_dir / "records.jsonl").read_text().count("\n") == 1
    assert (run_dir / "report.md").is_file()
