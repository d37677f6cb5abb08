"""A second real CPython release, 3.13.15 (from Debian testing/unstable's orig tarball),
built natively (`plain`, to keep CI short) from `--source`, measured with the quick
matrix through the build's name, and reported: the whole path a user takes, end to end."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from gilbench import runfolder
from gilbench.buildspec import list_native_builds
from tests.conftest import invoke, ok_or_creation_flake

pytestmark = pytest.mark.slow


def test_31315_builds_natively_runs_the_quick_matrix_and_reports(
    cpython_31315_tarball: Path, tmp_path: Path
) -> None:
    cache, results = tmp_path / "cache", tmp_path / "results"
    env = {"GILBENCH_CACHE_DIR": str(cache), "INVOKE_GILBENCH_RESULTS_DIR": str(results)}
    built = invoke("build", "--backend", "native", "--variant", "plain",
                   "--source", str(cpython_31315_tarball), env=env, timeout=1200)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (record,) = list_native_builds(cache)
    assert record["version"] == "3.13.15" and record["variant"] == "plain"
    assert record["source_verified"] and "--enable-optimizations" not in record["config_args"]
    assert record["smoke"]["version"].startswith("3.13.15")

    # The build by its name, looked up in the native cache like any build.
    ran = invoke("experiment", "--matrix", "quick", "--python", "3.13.15/plain",
                 "--backend", "native", env=env, timeout=900)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    (run_dir,) = [p for p in results.iterdir() if (p / "manifest.json").exists()]
    manifest = runfolder.read_manifest(run_dir)
    records = runfolder.read_records(run_dir).records
    planned = Counter((c["cell_id"], r) for c in manifest.cells for r in c["repetitions"])
    assert Counter((r["cell_id"], r["repetition"]) for r in records) == planned
    (python,) = manifest.pythons.values()
    assert python["version"] == "3.13.15" and python["executable"] == record["executable"]
    assert {r["python_version"].split()[0] for r in records} == {"3.13.15"}
    # 3.13 has no InterpreterPoolExecutor: a result, not an error.
    assert {r["status"] for r in records if r["model"] == "interpreter-pool"} == {"unsupported"}
    others = [r for r in records if r["model"] != "interpreter-pool"]
    assert others and all(ok_or_creation_flake(r) for r in others), [
        r["message"] for r in others if r["status"] != "ok"]
    assert all(r["gil_enabled"] is True for r in others if r["status"] == "ok")

    reported = invoke("report", "--run", str(run_dir), env=env)
    assert reported.returncode == 0, reported.stdout + reported.stderr
    assert "3.13.15" in (run_dir / "report.md").read_text()
    assert (run_dir / "report.html").is_file()
