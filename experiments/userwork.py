"""User workloads on the target: `module:function`, imported from the run's copy of the code.

A workload name with a ':' is the user's (gilbench/userwork.py resolves it on the host and
copies the code into the run folder). Every interpreter that runs a task (the cell's main
interpreter, a spawned process, a sub-interpreter, a pool interpreter) imports the module
itself, by name, from the copy's folder on its sys.path (`activate`); nothing is pickled
but the name. The function gets the cell's workload params as keyword arguments, except
`tasks`, which stays the lab's task count.

Guards, so a user module cannot break the harness's records: a call or import that
changes sys.path or the working directory has them restored afterwards, and sys.exit()
becomes an exception (the record says so) instead of ending the worker. Printing is
handled by the cell, which keeps the records off the user's stdout (experiments/cell.py).

Standard library only, and light: sub-interpreter workers import this module.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing's: see experiments/catalog.py
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

SEPARATOR = ":"
# The folders activate() put on this interpreter's sys.path: handed to sub-interpreters and
# pool interpreters, which start with a sys.path of their own.
_PATHS: list[str] = []
_FUNCTIONS: dict[str, Callable[..., Any]] = {}
# name -> the value the function returned in the cell's main interpreter (cell.py sets it).
_EXPECTED: dict[str, Any] = {}


class UserWorkloadError(Exception):
    """The user's workload cannot run as given; the message is one sentence."""


def is_user(name: str) -> bool:
    return SEPARATOR in name


def split(name: str) -> tuple[str, str]:
    """'pkg.mod:func' -> ('pkg.mod', 'func')."""
    module, _, function = name.rpartition(SEPARATOR)
    return module, function


def activate(path: str) -> None:
    """Make the run's copy of the user's code importable in this interpreter (first on
    sys.path: the copy, not whatever else of that name is installed, is what was hashed)."""
    if path not in _PATHS:
        _PATHS.append(path)
    if path not in sys.path:
        sys.path.insert(0, path)


def search_path() -> list[str]:
    """What activate() added, for interpreters that start with their own sys.path."""
    return list(_PATHS)


class _Guard:
    """Restore sys.path (the list object and its items) and the working directory after
    user code ran; turn sys.exit() into UserWorkloadError."""

    __slots__ = ("cwd", "path", "path_items")

    def __enter__(self) -> None:
        self.path = sys.path
        self.path_items = list(sys.path)
        self.cwd = os.getcwd()

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if sys.path is not self.path or sys.path != self.path_items:
            self.path[:] = self.path_items
            sys.path = self.path
        if os.getcwd() != self.cwd:
            os.chdir(self.cwd)
        if isinstance(exc, SystemExit):
            raise UserWorkloadError(
                f"the workload called sys.exit({exc.code!r}); a workload must return a value"
            ) from None


def load(name: str) -> Callable[..., Any]:
    """The user's function (imported once per interpreter). Import errors are CPython's
    own (e.g. a single-phase extension refused in an isolated sub-interpreter)."""
    function = _FUNCTIONS.get(name)
    if function is not None:
        return function
    module_name, attribute = split(name)
    import importlib  # here: only user workloads pay for it

    with _Guard():
        module = importlib.import_module(module_name)
    function = getattr(module, attribute, None)
    if function is None:
        raise UserWorkloadError(f"module {module_name} has no attribute {attribute!r}")
    if not callable(function):
        raise UserWorkloadError(
            f"{name} is not callable: it is of type {type(function).__name__}")
    _FUNCTIONS[name] = function
    return function


def call(name: str, params: dict[str, Any]) -> Any:
    """One task: the function with the params (all but `tasks`) as keyword arguments."""
    function = load(name)
    kwargs = {key: value for key, value in params.items() if key != "tasks"}
    with _Guard():
        return function(**kwargs)


def expect(name: str, value: Any) -> None:
    """The sequential result every task's result must equal (set once per cell process)."""
    _EXPECTED[name] = value


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    try:
        if a == b:
            return True
    except Exception:  # an __eq__ that raises (e.g. an array's truth value)
        pass
    # NaN is not equal to itself, and a copy that crossed a process is not the same object.
    return repr(a) == repr(b)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check(name: str, results: list[Any]) -> str:
    """'' when every result equals the sequential one, else one sentence saying which not."""
    if name not in _EXPECTED:
        return "no sequential result to compare with (the cell computes it first)"
    want = _EXPECTED[name]
    for index, got in enumerate(results):
        if not _same(got, want):
            return (f"results differ from sequential: task {index} returned {_short(got)}, "
                    f"the sequential run {_short(want)}")
    return ""


def encode(value: Any) -> bytes:
    """A result as it crosses between interpreters: pickled (what a user's own code would
    do for anything but str, bytes, int, float and None; and 3.12's channels carry bytes)."""
    import pickle

    return pickle.dumps(value)


def decode(data: Any) -> Any:
    import pickle

    return pickle.loads(data)
