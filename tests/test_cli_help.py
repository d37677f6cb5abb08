"""`invoke TASK --help` through the real command line, for every task in the collection:
its usage, docstring and flags, exit 0, even for tasks that take positional arguments
(invoke 3.0.3 read --help as their value; tasks.py's _HelpFirst)."""

from __future__ import annotations

import inspect

import pytest

import tasks
from tests.conftest import invoke

NAMES = sorted(tasks.ns.task_names)
CONTEXTS = {context.name: context for context in tasks.ns.to_contexts()}


def assert_help(name: str, *args: str) -> None:
    result = invoke(*args)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert f"[--core-opts] {name} " in result.stdout, out
    first_line = (inspect.getdoc(tasks.ns[name]) or "").splitlines()[0].strip()
    assert first_line and first_line in result.stdout, out
    for flag in CONTEXTS[name].flags:  # every flag, positionals included (as --run=STRING)
        if flag.startswith("--"):
            assert flag in result.stdout, (flag, out)
    assert "error" not in out.lower() and "Traceback" not in out, out


def test_the_walk_covers_the_positional_tasks() -> None:
    positional = {name for name, context in CONTEXTS.items() if context.positional_args}
    assert {"compare", "export", "merge", "reproduce", "import-records"} <= positional


@pytest.mark.parametrize("name", NAMES)
def test_task_help(name: str) -> None:
    assert_help(name, name, "--help")
    assert_help(name, "--help", name)  # invoke's own order keeps working


# -h is experiment's own short flag (--shard), so it cannot also mean help there.
@pytest.mark.parametrize("name", [n for n in NAMES if "-h" not in CONTEXTS[n].flags])
def test_task_dash_h(name: str) -> None:
    assert_help(name, name, "-h")


def test_dash_h_is_help_wherever_no_task_flag_takes_it() -> None:
    assert [n for n in NAMES if "-h" in CONTEXTS[n].flags] == ["experiment"]


def test_help_after_some_positionals() -> None:
    assert_help("compare", "compare", "run-a", "--help")
    assert_help("merge", "merge", "a,b", "--help")
    assert_help("import-records", "import-records", "plan.json", "-h")


def test_missing_positionals_without_help_are_still_refused() -> None:
    result = invoke("compare", "only-one")
    assert result.returncode == 1
    assert "did not receive required positional arguments: 'run_b'" in result.stderr
