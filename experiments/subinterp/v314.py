"""CPython 3.14+: `concurrent.interpreters` (PEP 734) and its `Queue`.

The public `concurrent.interpreters.create()` takes no config, so any config
other than the default ("isolated") is created the way that function does it
internally: `_interpreters.create(new_config(...), reqrefs=True)` wrapped in
`Interpreter(id, _ownsref=True)`. Written from the 3.14 sources; not run here.
"""

from __future__ import annotations

import importlib
import importlib.util

from experiments.subinterp import creation, interp_config, isolated_config

TYPE_CHECKING = False  # not typing's: see experiments/catalog.py
if TYPE_CHECKING:
    from typing import Any

TRANSPORT = "concurrent.interpreters.Queue"


def _interpreters() -> Any:
    return importlib.import_module("concurrent.interpreters")


def _low() -> Any:
    return importlib.import_module("_interpreters")


def unsupported(config: dict[str, Any]) -> str | None:
    if importlib.util.find_spec("concurrent.interpreters") is None:
        return "this build lacks concurrent.interpreters."
    known = vars(_low().new_config("isolated"))
    missing = [key for key in interp_config(config) if key not in known]
    if missing:
        return f"_interpreters.new_config() has no {', '.join(missing)} field on this version."
    return None


def _isolated(config: dict[str, Any]) -> bool:
    """Whether the PyInterpreterConfig fields (`create` aside) are the default ones."""
    return interp_config(config) == interp_config(isolated_config())


def api(config: dict[str, Any]) -> str:
    if _isolated(config):
        return "concurrent.interpreters (3.14)"
    return "concurrent.interpreters+_interpreters.new_config (3.14)"


def create_queue() -> Any:
    return _interpreters().create_queue()


def put(q: Any, obj: Any) -> None:
    q.put_nowait(obj)


def get(q: Any) -> Any:
    return q.get_nowait()


def destroy_queue(q: Any) -> None:
    pass  # a Queue is released when its last reference in any interpreter goes


def prelude(out_q: Any, in_q: Any) -> tuple[str, dict[str, Any]]:
    # Queue objects are shareable: bind them into the worker's __main__.
    return (
        "def _put(obj): _out_q.put_nowait(obj)\n"
        "def _get(): return _in_q.get_nowait()\n",
        {"_out_q": out_q, "_in_q": in_q},
    )


def run(config: dict[str, Any], source: str, shared: dict[str, Any]) -> None:
    interpreters = _interpreters()
    low = _low()
    # `create` is ours, not a PyInterpreterConfig field: never passed to new_config.
    fields = None if _isolated(config) else low.new_config("isolated", **interp_config(config))
    with creation(config):
        if fields is None:
            interp = interpreters.create()
        else:
            interp_id = low.create(fields, reqrefs=True)
            interp = interpreters.Interpreter(interp_id, _ownsref=True)
    try:
        if shared:
            interp.prepare_main(shared)
        interp.exec(source)  # raises ExecutionFailed with CPython's text
    finally:
        interp.close()
