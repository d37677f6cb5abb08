"""CPython's own tests as a build check (gilbench/selfcheck.py): the registry, the parsing
of regrtest's junit and summary, and real failing runs: regrtest on a real failing test
file, and a build whose check fails (a tiny python whose `-m test` fails) kept but marked."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from gilbench import backends, build, selfcheck
from gilbench.builders import NativeBuilder
from tests.conftest import invoke

# Captured from real runs of 3.13.0: `-m test -j2 --junit-xml` on test__interpreters (its
# subtests are testcases named only by their parameters), and on a failing file beside
# one that crashed its worker (with --testdir, so their ids lack the "test." prefix).
JUNIT = """<testsuites tests="8" errors="0" failures="1"><testsuite start="2026-11-30 13:10:05"
tests="5" errors="0" failures="0"><testcase
name="test.test__interpreters.CreateTests.test_after_destroy_all" status="run"
result="completed" time="0.045216" /><testcase
name="test.test__interpreters.CreateTests.test_after_destroy_some" status="run"
result="completed" time="0.045756" /><testcase name="36" status="run" result="completed"
time="0.026041" /><testcase name="37" status="run" result="completed" time="0.023196" />
<testcase name="test.test__interpreters.CreateTests.test_unique_id" status="run"
result="completed" time="0.000014"><skipped>enable this test when working on
pystate.c</skipped></testcase></testsuite><testsuite start="2026-11-30 13:12:44" tests="3"
errors="0" failures="1"><testcase name="test_fail.T.test_bad" status="run"
result="completed" time="0.005672"><system-out /><system-err /><failure
type="AssertionError" message="AssertionError: 1 != 2&#10;">Traceback (most recent call
last): AssertionError: 1 != 2</failure></testcase><testcase name="test_fail.T.test_ok"
status="run" result="completed" time="0.000028" /><testcase name="test_fail.T.test_skip"
status="run" result="completed" time="0.000007"><skipped>no</skipped></testcase>
</testsuite></testsuites>"""
OUTPUT = """Using random seed: 1932620222
0:00:00 load avg: 2.23 Run 2 tests in parallel using 2 worker processes
0:00:00 load avg: 2.23 [1/2/1] test_crash worker non-zero exit code (Exit code 3)
0:00:00 load avg: 2.23 [2/2/2] test_fail failed (1 failure)

== Tests result: FAILURE ==

1 test skipped:
    test_other

2 tests failed:
    test_crash test_fail

Total duration: 266 ms
Total tests: run=3 failures=1 skipped=1
Result: FAILURE
"""

FAILING_FILES = {
    "test_fail.py": "import unittest\n"
                    "class T(unittest.TestCase):\n"
                    "    def test_ok(self): pass\n"
                    "    def test_bad(self): self.assertEqual(1, 2)\n",
    "test_crash.py": "import os, unittest\n"
                     "class C(unittest.TestCase):\n"
                     "    def test_die(self): os._exit(3)\n",
    "test_good.py": "import unittest\n"
                    "class G(unittest.TestCase):\n"
                    "    def test_fine(self): pass\n",
}


def _checked(names: list[str]) -> list[dict[str, object]]:
    return [{"name": name, "area": "threads", "match": []} for name in names]


def test_registry_names_the_suites_of_each_version() -> None:
    names = {key: [s.name for s in suites] for key, suites in selfcheck.SUITES.items()}
    assert names["3.12"][:3] == ["test__xxsubinterpreters", "test__xxinterpchannels",
                                 "test_interpreters"]
    assert names["3.13"][:3] == ["test__interpreters", "test__interpchannels",
                                 "test_interpreters"]
    assert "test_concurrent_futures.test_interpreter_pool" in names["3.14"]
    for suites in selfcheck.SUITES.values():
        by_name = {s.name: s for s in suites}
        # the threads and processes suites are subsets, picked by full test ids
        for name in ("test_threading", "test_multiprocessing_forkserver"):
            assert by_name[name].match
            assert all(p.startswith(f"test.{name}.") for p in by_name[name].match)


def test_summary_and_junit_become_per_suite_results() -> None:
    raw = {"missing": ["test_multiprocessing_forkserver"], "junit": JUNIT, "output": OUTPUT,
           "returncode": 2, "seconds": 0.3, "command": "python -m test", "jobs": 2,
           "test_dir": "/x", "registry_key": "3.13", "python_version": "3.13.0"}
    names = ["test__interpreters", "test_fail", "test_crash", "test_other",
             "test_multiprocessing_forkserver"]
    result = selfcheck.summarize(raw, _checked(names))
    suites = {s["name"]: s for s in result["suites"]}
    # subtests count with the file they ran in, as regrtest counts them
    assert (suites["test__interpreters"]["tests"], suites["test__interpreters"]["skipped"],
            suites["test__interpreters"]["status"]) == (5, 1, "passed")
    assert suites["test_fail"]["failures"] == ["test_fail.T.test_bad"]
    assert suites["test_fail"]["status"] == "failed"
    # a worker that died leaves no testcase: the summary names the file
    assert suites["test_crash"]["status"] == "failed" and suites["test_crash"]["failures"]
    assert suites["test_other"]["status"] == "skipped"
    assert suites["test_multiprocessing_forkserver"]["status"] == "missing"
    assert result["status"] == "failed" and result["missing"] == ["test_multiprocessing_forkserver"]
    assert result["totals"] == {"tests": 8, "passed": 5, "failed": 1, "skipped": 2}
    assert result["failed_tests"][0] == "test_fail.T.test_bad"
    assert "test_crash" in result["failed_tests"][1]
    sentence = selfcheck.failure_sentence(result, "the image")
    assert sentence.startswith("CPython's own tests failed on the image: these failed: "
                               "test_fail.T.test_bad, test_crash") and sentence.count(".") >= 1
    assert selfcheck.describe(result).startswith("failed: 4 suites, 8 tests, 1 failed")
    assert selfcheck.describe(None) == "not run"


def test_no_test_package_is_a_failed_check_not_a_pass() -> None:
    raw = {"missing": ["test_threading"], "test_dir": None, "registry_key": "3.13"}
    result = selfcheck.summarize(raw, _checked(["test_threading"]))
    assert result["status"] == "failed" and "no test package" in result["reason"]
    assert selfcheck.summarize({**raw, "output": "", "returncode": 0, "missing": [],
                                "test_dir": "/x"},
                               _checked(["test_threading"]))["status"] == "passed"


def test_a_real_failing_suite_is_named(python313: Path, tmp_path: Path) -> None:
    """Real regrtest on real test files: one fails, one crashes its worker, one passes,
    and a registered suite that does not exist is recorded as missing."""
    for name, text in FAILING_FILES.items():
        (tmp_path / name).write_text(text)
    registry = {"3.12": (selfcheck.Suite("test_fail", "threads"),
                         selfcheck.Suite("test_crash", "processes"),
                         selfcheck.Suite("test_good", "subinterpreters"),
                         selfcheck.Suite("test_absent", "subinterpreters"))}
    target = backends.native().path_target(str(python313))
    log = tmp_path / "check.log"
    result = selfcheck.run(target, 2, log, suites=registry, testdir=str(tmp_path))
    suites = {s["name"]: s for s in result["suites"]}
    assert result["status"] == "failed" and result["returncode"] != 0
    assert suites["test_fail"]["failures"] == ["test_fail.T.test_bad"]
    assert suites["test_crash"]["status"] == "failed"
    assert (suites["test_good"]["status"], suites["test_good"]["passed"]) == ("passed", 1)
    assert suites["test_absent"]["status"] == "missing" and result["missing"] == ["test_absent"]
    assert result["command"].startswith(f"{python313} -m test -j2 ")
    assert "test_fail failed" in log.read_text()


FAKE_PYTHON = """#!/bin/bash
# A python whose `-m test` fails test_threading (regrtest's real output format);
# everything else is the real interpreter.
if [ "$1" = "-m" ] && [ "$2" = "test" ]; then
    while [ $# -gt 0 ]; do
        if [ "$1" = "--junit-xml" ]; then junit=$2; fi
        shift
    done
    cat > "$junit" <<'XML'
<testsuites><testsuite tests="2">
<testcase name="test.test_threading.ThreadTests.test_various_ops" time="0.1">
<failure type="AssertionError" message="boom">Traceback</failure></testcase>
<testcase name="test.test_threading.LockTests.test_acquire" time="0.1" />
</testsuite></testsuites>
XML
    printf '%s\\n' '0:00:01 [1/1/1] test_threading failed (1 failure)' '' \\
        '== Tests result: FAILURE ==' '' '1 test failed:' '    test_threading' '' \\
        'Result: FAILURE'
    exit 2
fi
exec REAL "$@"
"""


def _fake_python(tmp_path: Path, real: Path) -> Path:
    fake = tmp_path / "bin" / "python3"
    fake.parent.mkdir(parents=True)
    fake.write_text(FAKE_PYTHON.replace("REAL", str(real)))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return fake


def test_a_failed_check_keeps_the_build_and_marks_it(python313: Path, tmp_path: Path) -> None:
    """A native build whose check fails: the record says failed, with the names, and is
    stored on the build (its marker file and cache_dir/builds); nothing is removed."""
    cache = tmp_path / "cache"
    name = "3.13.0-pgo-000000000000"
    prefix = cache / "native" / name
    fake = _fake_python(prefix, python313)
    record = {"schema_version": 1, "backend": "native", "name": name, "version": "3.13.0",
              "variant": "pgo", "built_at": "2026-11-30T00:00:00+00:00",
              "executable": str(fake)}
    (prefix / "gilbench-build.json").write_text(json.dumps(record))
    options = build.BuildOptions(python="3.13.0", variant="pgo", backend="native",
                                 cache_dir=cache, source_cache=cache / "sources",
                                 base_image="", jobs=2, check=True)
    result = build._checked(build.BuildResult(record, reused=True, log_path=None),
                            NativeBuilder(cache, 2), options, lambda kind, text: None)
    check = result.record["selfcheck"]
    assert check["status"] == "failed"
    assert check["failed_tests"] == ["test_threading.ThreadTests.test_various_ops"]
    stored = json.loads((prefix / "gilbench-build.json").read_text())
    assert stored == result.record == json.loads((cache / "builds" / f"{name}.json").read_text())
    assert fake.exists()  # the build is kept
    assert "test_threading failed" in build.check_log_path(cache, record).read_text()
    # ... and a report of a run on it says so, once in its warnings
    warnings = selfcheck.report_warnings({"native:x": {"label": "3.13.0-pgo",
                                                       "build": result.record}})
    assert warnings == ["CPython's own tests failed on 3.13.0-pgo: these failed: "
                        "test_threading.ThreadTests.test_various_ops; its results may "
                        "reflect a broken build."]


@pytest.mark.parametrize("args", [("--python",), ("--python", "--jobs", "0")])
def test_doctor_names_the_failing_tests_in_one_sentence(
    python313: Path, tmp_path: Path, args: tuple[str, ...],
) -> None:
    fake = _fake_python(tmp_path, python313)
    cli = [args[0], str(fake), *args[1:]]
    result = invoke("doctor", *cli, env={"GILBENCH_CACHE_DIR": str(tmp_path / "cache")})
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    if "--jobs" in args:
        assert result.stderr.strip() == "error: --jobs 0 must be at least 1, e.g. --jobs 2."
        return
    assert "test_threading *" in result.stdout and "failed" in result.stdout
    assert result.stderr.strip() == (
        f"error: CPython's own tests failed on {fake}: these failed: "
        "test_threading.ThreadTests.test_various_ops.")
    assert os.listdir(tmp_path / "cache" / "logs")  # regrtest's output is kept


def test_the_report_names_the_check_and_warns_when_it_failed(python313: Path,
                                                             tmp_path: Path) -> None:
    """A run on a build marked failed: the manifest carries the check, the report's
    Pythons table names it and its warnings say so once."""
    from gilbench import matrix, run, runfolder
    from gilbench.report.run import report_run

    check = {"status": "failed", "failed_tests": ["test_threading.ThreadTests.test_x"],
             "failed_tests_total": 1, "suites": [], "totals": {"tests": 1, "failed": 1},
             "seconds": 1.0}
    record = {"schema_version": 1, "backend": "native", "name": "3.13.0-pgo-0", "sha256": "0",
              "version": "3.13.0", "variant": "pgo", "built_at": "2026-11-30T00:00:00+00:00",
              "executable": str(python313), "selfcheck": check}
    target = backends.get("native").target(record)
    chosen = matrix.single_cell("threads", "io", [1], {}, {"ms": [5]}, 2, 0, 60.0)
    run_dir = run.start(chosen, [target], tmp_path, run.Limits("0", None), "test",
                        lambda kind, payload: None)
    assert runfolder.read_manifest(run_dir).pythons[target.id]["build"]["selfcheck"] == check
    result = report_run(run_dir)
    said = [w for w in result.warnings if "own tests" in w]
    assert said == ["CPython's own tests failed on 3.13.0-pgo: these failed: "
                    "test_threading.ThreadTests.test_x; its results may reflect a broken "
                    "build."]
    report = (run_dir / "report.md").read_text()
    assert "| CPython's own tests |" in report
    assert "failed: 0 suites, 1 tests, 1 failed" in report
