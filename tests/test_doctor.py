"""`invoke doctor` checks the real host and names a fix for what is missing."""

from __future__ import annotations

from pathlib import Path

from gilbench import doctor
from tests.conftest import invoke


def test_doctor_reports_every_concern(docker_engine: None) -> None:
    result = invoke("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("docker engine", "disk (cache)", "disk (docker)", "cores", "load",
                 "cpu governor", "mmdebstrap", "source cache"):
        assert name in result.stdout


def test_doctor_fails_without_an_engine(tmp_path: Path) -> None:
    result = invoke("doctor", env={"DOCKER_HOST": f"unix://{tmp_path}/none.sock"})
    assert result.returncode == 1
    assert "fail  docker engine" in result.stdout and "dockerd" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_disk_and_cache_checks_name_a_fix(tmp_path: Path) -> None:
    full = doctor.check_disk(tmp_path, need_gib=10**9)
    assert full.status == "fail" and "free at least" in full.fix
    empty = doctor.check_source_cache(tmp_path)
    assert empty.status == "warn" and "--source FILE" in empty.fix
    (tmp_path / "Python-3.13.5.tar.xz").write_bytes(b"x")
    assert doctor.check_source_cache(tmp_path).status == "ok"


def test_cache_that_is_a_file_fails_the_cache_disk_check(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    check = doctor.check_cache_disk(cache)
    assert check.status == "fail" and "is a file, not a folder" in check.detail
    assert "GILBENCH_CACHE_DIR" in check.fix
    below = doctor.check_source_cache(cache / "sources")
    assert below.status == "fail" and "on its way, is a file" in below.detail
    assert doctor.check_cache_disk(tmp_path / "new" / "cache").status == "ok"


def test_doctor_command_fails_when_the_cache_is_a_file(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    result = invoke("doctor", env={"GILBENCH_CACHE_DIR": str(cache)})
    assert result.returncode == 1
    assert "fail  disk (cache)" in result.stdout and "is a file" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_noise_check_sees_a_cpu_burner() -> None:
    """Issue 8: doctor measures the noise floor with the rules that mark repetitions."""
    import subprocess
    import sys

    from gilbench.doctor import check_noise

    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        check = check_noise(0.5)
    finally:
        burner.kill()
        burner.wait()
    assert check.name == "noise" and check.status == "warn", check
    assert "would be contended" in check.detail and check.fix


def test_doctor_runs_cpythons_own_tests_on_312(python312: Path, tmp_path: Path) -> None:
    """Issue 10: the sub-interpreter suites and the threading subset of the real 3.12.1;
    its install lacks the test_multiprocessing_forkserver package, recorded as missing."""
    result = invoke("doctor", "--python", str(python312),
                    env={"GILBENCH_CACHE_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()
            if line.strip().startswith(("test_", "total"))}
    for suite in ("test__xxsubinterpreters", "test__xxinterpchannels", "test_interpreters",
                  "test_threading"):
        assert rows[suite][-5] == "passed" and int(rows[suite][-4]) > 0, rows
    forkserver = rows["test_multiprocessing_forkserver"]
    has_forkserver = (python312.parent.parent / "lib" / "python3.12" / "test" /
                      "test_multiprocessing_forkserver").is_dir()
    assert forkserver[1] == ("passed" if has_forkserver else "missing"), rows
    assert rows["total"][0] == "passed" and " -m test -j" in result.stdout


def test_doctor_runs_cpythons_own_tests_on_313(python313: Path, tmp_path: Path) -> None:
    result = invoke("doctor", "--python", str(python313),
                    env={"GILBENCH_CACHE_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()
            if line.strip().startswith(("test_", "total"))}
    for suite in ("test__interpreters", "test__interpchannels", "test_interpreters"):
        assert rows[suite][0] == "passed" and int(rows[suite][1]) > 0, rows
    for suite in ("test_threading", "test_multiprocessing_forkserver"):
        assert rows[suite][0] == "*" and rows[suite][1] == "passed", rows  # subsets
    assert rows["total"][0] == "passed" and int(rows["total"][1]) > 400
    log = next((tmp_path / "logs").glob("selfcheck-doctor-*.log"))
    assert "Result: SUCCESS" in log.read_text()
