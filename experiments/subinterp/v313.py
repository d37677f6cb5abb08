"""CPython 3.13: `_interpreters` (new_config/create/exec/destroy) + `_interpqueues`.

3.13 takes every PyInterpreterConfig field through `_interpreters.new_config()`;
`gil` is spelled "own" / "shared". `_interpqueues.create(maxsize, fmt, unboundop)`
and `put(qid, obj, fmt, unboundop)`; `get` returns `(obj, fmt, unboundop)`.
"""

from __future__ import annotations

import importlib
import importlib.util

from experiments.subinterp import creation, interp_config

TYPE_CHECKING = False  # not typing's: see experiments/catalog.py
if TYPE_CHECKING:
    from typing import Any

TRANSPORT = "_interpqueues"

_UNBOUND_ERROR = 2  # an item whose interpreter is gone raises instead of vanishing


def unsupported(config: dict[str, Any]) -> str | None:
    for module in ("_interpreters", "_interpqueues"):
        if importlib.util.find_spec(module) is None:
            return f"this 3.13 build lacks {module}."
    known = vars(_interpreters().new_config("isolated"))
    missing = [key for key in interp_config(config) if key not in known]
    if missing:
        return f"_interpreters.new_config() has no {', '.join(missing)} field on this version."
    return None


def transport() -> str:
    return TRANSPORT


def api(config: dict[str, Any]) -> str:
    return "_interpreters (3.13)"


def _interpreters() -> Any:
    return importlib.import_module("_interpreters")


def _queues() -> Any:
    return importlib.import_module("_interpqueues")


def create_queue() -> Any:
    return _queues().create(0, 0, _UNBOUND_ERROR)


def put(q: Any, obj: Any) -> None:
    _queues().put(q, obj, 0, _UNBOUND_ERROR)


def get(q: Any) -> Any:
    obj, _fmt, unbound = _queues().get(q)
    if unbound is not None:  # its interpreter was destroyed before we took it
        raise RuntimeError(f"queue item lost: its interpreter is gone (unboundop {unbound})")
    return obj


def destroy_queue(q: Any) -> None:
    _queues().destroy(q)


def prelude(out_q: Any, in_q: Any) -> tuple[str, dict[str, Any]]:
    return (
        "import _interpqueues as _q\n"
        f"def _put(obj): _q.put({int(out_q)}, obj, 0, {_UNBOUND_ERROR})\n"
        f"def _get(): return _q.get({int(in_q)})[0]\n",
        {},
    )


class ExecFailed(RuntimeError):
    """The source raised inside the sub-interpreter; CPython's formatted text."""


def run(config: dict[str, Any], source: str, shared: dict[str, Any]) -> None:
    interpreters = _interpreters()
    # `create` is ours, not a PyInterpreterConfig field: never passed to new_config.
    fields = interpreters.new_config("isolated", **interp_config(config))
    with creation(config):
        interp = interpreters.create(fields)
    try:
        if shared:
            interpreters.set___main___attrs(interp, shared)
        excinfo = interpreters.exec(interp, source)
        if excinfo is not None:
            raise ExecFailed(excinfo.formatted)
    finally:
        interpreters.destroy(interp)
