"""Reading a failed build's log: which PGO training test case failed, and why.

`-m test --pgo` only says "test test_generators failed"; docker/build-cpython.sh then runs
the failed modules again verbosely and writes `::gilbench-pgo-training::` lines around
that rerun. This module turns that text into one sentence for the user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MARK = "::gilbench-pgo-training:: "
# unittest's verbose report of a failure: "FAIL: test_x (test.test_mod.Class.test_x)",
# optionally followed by a subtest's parameters.
_HEADER = re.compile(r"^(FAIL|ERROR): (\S+)(?: \(([\w.]+)\))?(.*)$")
# Training tests that fail whenever SIGINT is ignored in the process running them.
NEEDS_SIGINT = frozenset({"test_generators.SignalAndYieldFromTest.test_raise_and_yield_from"})
_MAX_CASES = 3


@dataclass(frozen=True)
class FailedCase:
    test: str  # module.Class.method, e.g. test_generators.SignalAndYieldFromTest.test_x
    error: str  # the exception line, e.g. "AssertionError: 'FAILED' != 'PASSED'"


@dataclass(frozen=True)
class TrainingFailure:
    modules: tuple[str, ...]
    cases: tuple[FailedCase, ...]
    sigint: str  # "ignored", "default" or "unknown", as the training run had it
    rerun: bool  # whether the failed modules were run again to find the cases

    def describe(self) -> str:
        """One sentence fragment: the failing cases with their errors, and the cause if known."""
        if self.cases:
            shown = [f"{case.test}: {case.error}" for case in self.cases[:_MAX_CASES]]
            more = len(self.cases) - _MAX_CASES
            text = "PGO training test failed: " + "; ".join(shown)
            if more > 0:
                text += f" (and {more} more)"
        elif self.modules:
            names = ", ".join(self.modules)
            text = f"PGO training test module {names} failed"
            if self.rerun:
                text += (" but passed when run again alone, so it failed by chance; "
                         "run the build again")
        else:
            text = "the PGO training run failed without naming a test"
        if self.sigint == "ignored":
            needs = any(case.test in NEEDS_SIGINT for case in self.cases)
            text += (" — SIGINT was ignored in the build's process, as in a background job "
                     "(`cmd &`, nohup), " + ("and this test needs it" if needs else
                                            "which some training tests need")
                     + "; run the build in the foreground or under `env --default-signal=INT`")
        return text


def _exception_line(block: list[str]) -> str:
    """The last exception of a traceback block (the one that ended the test), first line."""
    found = ""
    in_traceback = False
    for line in block:
        if line.startswith("Traceback (most recent call last):"):
            in_traceback = True
        elif in_traceback and line.strip() and not line[0].isspace():
            found, in_traceback = line.strip(), False
    # No traceback (a doctest's report, say): its first line says what failed.
    return found or next((line.strip() for line in block if line.strip()), "no details shown")


def _case_name(method: str, test_id: str | None, extra: str) -> str:
    """'test_x', 'test.test_mod.Class.test_x' -> 'test_mod.Class.test_x'."""
    name = test_id or method
    if test_id and not test_id.endswith("." + method):
        name = f"{test_id}.{method}"  # before 3.11 the parentheses held only the class
    name = name.removeprefix("test.")
    return name + extra.rstrip()


def failed_cases(text: str) -> list[FailedCase]:
    """Every FAIL:/ERROR: block of unittest's report in `text`, in order, without repeats."""
    lines = text.splitlines()
    cases: list[FailedCase] = []
    for at, line in enumerate(lines):
        match = _HEADER.match(line.rstrip())
        if not match:
            continue
        _, method, test_id, extra = match.groups()
        # The block runs from the dashes under the header to the next dashes or header.
        block: list[str] = []
        for following in lines[at + 2:]:
            if following.startswith(("-" * 70, "=" * 70)) or _HEADER.match(following):
                break
            block.append(following)
        case = FailedCase(_case_name(method, test_id, extra), _exception_line(block))
        if case not in cases:
            cases.append(case)
    return cases


def training_failure(log: str) -> TrainingFailure | None:
    """What the recipe reported about a failed PGO training run in `log`, or None if the
    log shows none (another phase failed)."""
    if MARK not in log:
        return None
    modules: list[str] = []
    sigint, rerun, rerun_text = "unknown", False, []
    in_rerun = False
    for line in log.splitlines():
        at = line.find(MARK)
        if at < 0:
            if in_rerun:
                rerun_text.append(line)
            continue
        note = line[at + len(MARK):].strip()
        if note.startswith("failed modules:"):
            modules = [name for name in note.partition(":")[2].split() if name.startswith("test")]
        elif note.startswith("SIGINT in the training run:"):
            sigint = note.rpartition(":")[2].strip()
        elif note.startswith("running the failed modules again"):
            in_rerun = rerun = True
        elif note.startswith("rerun done"):
            in_rerun = False
    return TrainingFailure(tuple(modules), tuple(failed_cases("\n".join(rerun_text))),
                           sigint, rerun)
