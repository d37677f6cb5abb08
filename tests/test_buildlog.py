"""A failed PGO training run is explained by test case and cause, read from real output.

The fixture is the training part of a real log: docker/build-cpython.sh building 3.13.5
with --enable-optimizations as a background job (SIGINT ignored) and with an `env` that
lacks --default-signal (coreutils < 8.31), so nothing put SIGINT back.
"""

from __future__ import annotations

from pathlib import Path

from gilbench import buildlog
from gilbench.builders import _failed
from gilbench.buildspec import PhaseClock

FIXTURE = Path(__file__).parent / "fixtures" / "pgo-training-sigint-ignored.log"
CASE = "test_generators.SignalAndYieldFromTest.test_raise_and_yield_from"

# unittest's verbose report (3.13) of an error with a chained exception and a subtest
# failure, as `python -m unittest -v` printed it here.
UNITTEST_REPORT = """\
======================================================================
ERROR: test_chained (test_demo.Demo.test_chained)
----------------------------------------------------------------------
Traceback (most recent call last):
  File "/tmp/ut/test_demo.py", line 5, in test_chained
    {}["k"]
    ~~^^^^^
KeyError: 'k'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/tmp/ut/test_demo.py", line 7, in test_chained
    raise RuntimeError("lost the key")
RuntimeError: lost the key

======================================================================
FAIL: test_sub (test_demo.Demo.test_sub) (n=2)
----------------------------------------------------------------------
Traceback (most recent call last):
  File "/tmp/ut/test_demo.py", line 11, in test_sub
    self.assertLess(n, 2)
    ~~~~~~~~~~~~~~~^^^^^^
AssertionError: 2 not less than 2

----------------------------------------------------------------------
Ran 2 tests in 0.001s

FAILED (failures=1, errors=1)
"""


def test_real_sigint_failure_names_the_case_and_the_cause() -> None:
    failure = buildlog.training_failure(FIXTURE.read_text(encoding="utf-8"))
    assert failure is not None
    assert failure.modules == ("test_generators",)
    assert failure.sigint == "ignored" and failure.rerun
    assert failure.cases == (
        buildlog.FailedCase(CASE, "AssertionError: 'FAILED' != 'PASSED'"),)
    text = failure.describe()
    assert text.startswith(f"PGO training test failed: {CASE}: AssertionError: ")
    assert "SIGINT was ignored in the build's process" in text
    assert "and this test needs it" in text


def test_the_builders_message_carries_it(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    earlier = "::gilbench-pgo-training:: failed modules: test_other\n"  # another build's
    log.write_text(earlier + FIXTURE.read_text(encoding="utf-8"))
    clock = PhaseClock(lambda kind, text: None)
    clock.start("pgo-training")
    error = _failed(clock, "make: *** [Makefile:1012: profile-run-stamp] Error 2", log,
                    len(earlier))
    message = str(error)
    assert message.startswith(
        f"The CPython build failed during pgo-training (PGO training test failed: {CASE}: "
        "AssertionError: 'FAILED' != 'PASSED' — SIGINT was ignored")
    assert message.endswith(f"; the full log is {log}.")
    assert "test_other" not in message


def test_other_failures_keep_the_last_line(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    log.write_text("::gilbench-phase:: configure\nconfigure: error: no acceptable C compiler\n")
    clock = PhaseClock(lambda kind, text: None)
    clock.start("configure")
    message = str(_failed(clock, "configure: error: no acceptable C compiler", log))
    assert message == ("The CPython build failed during configure (configure: error: no "
                       f"acceptable C compiler); the full log is {log}.")
    assert buildlog.training_failure(log.read_text()) is None


def test_cases_from_unittest_report() -> None:
    assert buildlog.failed_cases(UNITTEST_REPORT) == [
        buildlog.FailedCase("test_demo.Demo.test_chained", "RuntimeError: lost the key"),
        buildlog.FailedCase("test_demo.Demo.test_sub (n=2)",
                            "AssertionError: 2 not less than 2"),
    ]


def test_a_failure_the_rerun_does_not_repeat_is_called_chance() -> None:
    log = ("test test_decimal failed\n"
           "::gilbench-pgo-training:: failed modules: test_decimal\n"
           "::gilbench-pgo-training:: SIGINT in the training run: default\n"
           "::gilbench-pgo-training:: running the failed modules again, verbosely\n"
           "Ran 12 tests in 2.0s\n\nOK\n== Tests result: SUCCESS ==\n"
           "::gilbench-pgo-training:: rerun done\n")
    failure = buildlog.training_failure(log)
    assert failure is not None and failure.cases == () and failure.sigint == "default"
    assert failure.describe() == (
        "PGO training test module test_decimal failed but passed when run again alone, so "
        "it failed by chance; run the build again")


def test_cases_are_capped_and_the_cause_is_general() -> None:
    report = "".join(
        f"{'=' * 70}\nERROR: test_{n} (test.test_x.T.test_{n})\n{'-' * 70}\n"
        "Traceback (most recent call last):\n  File \"x.py\", line 1, in test\n"
        "KeyboardInterrupt\n\n" for n in range(5))
    log = ("::gilbench-pgo-training:: failed modules: test_x\n"
           "::gilbench-pgo-training:: SIGINT in the training run: ignored\n"
           "::gilbench-pgo-training:: running the failed modules again, verbosely\n"
           + report + "::gilbench-pgo-training:: rerun done\n")
    failure = buildlog.training_failure(log)
    assert failure is not None and len(failure.cases) == 5
    text = failure.describe()
    assert "test_x.T.test_2: KeyboardInterrupt (and 2 more)" in text
    assert "test_x.T.test_3" not in text
    assert "which some training tests need" in text
