"""PEP 734's API: `concurrent.interpreters` and its `Queue` (3.14+, or the backport on 3.13).

The provider (standard library or the interpreters-pep-734 backport) comes from
`experiments.subinterp.pep734`; the calls are the same on both. Written from the 3.14
sources (Lib/concurrent/interpreters/__init__.py, _queues.py) and run here through the
backport on 3.13, which is those files on top of 3.13's `_interpreters`/`_interpqueues`.

- Config: the public `create()` takes none and gives the "isolated" config. Any other
  config is created the way `create()` does it internally, through private names:
  `_interpreters.create(new_config(...), reqrefs=True)` wrapped in
  `Interpreter(id, _ownsref=True)`. Records of that path say so in `api`; where those
  names are missing the config is `unsupported`, with the reason.
- Queues: created with `unbounditems=UNBOUND_ERROR` (3.14 defaults to UNBOUND, which
  hands back a sentinel in place of an item whose interpreter is gone, so a run could
  lose results and still look fine); `get()` also refuses the sentinel. v313 does the same.
- A Queue can be bound into an interpreter's `__main__` only once that interpreter has
  imported the queue module (3.13's `_interpqueues` refuses with "module not imported
  yet", which surfaces as "failed to apply namespace to __main__"), so `run()` imports it
  first. That import is part of the worker's start-up, as v313's `import _interpqueues` is.
- The backport's `Queue` pickles every item unless `syncobj=True`; 3.14's shares bytes,
  str and int natively. The backport's queues are made with `syncobj=True`, so both carry
  the payloads and results (all shareable) the same way, and `transport()` names which.
"""

from __future__ import annotations

import importlib

from experiments.subinterp import creation, interp_config, isolated_config, pep734

TYPE_CHECKING = False  # not typing's: see experiments/catalog.py
if TYPE_CHECKING:
    from typing import Any

_PRIVATE = "private _interpreters.create(config, reqrefs=True)"


def _low() -> Any:
    return importlib.import_module("_interpreters")


def _isolated(config: dict[str, Any]) -> bool:
    """Whether the PyInterpreterConfig fields (`create`, `api` aside) are the default ones."""
    return interp_config(config) == interp_config(isolated_config())


def _private_path_missing() -> str | None:
    """Why a non-default config cannot be created here, or None when it can."""
    low = _low()
    wanted = [name for name in ("create", "new_config") if not hasattr(low, name)]
    if wanted:
        return (f"a config other than isolated needs the private _interpreters."
                f"{' and '.join(wanted)}(), which this build lacks; the public create() "
                "only makes isolated interpreters.")
    # A builtin's keywords: its docstring's signature line is all it offers cheaply.
    if "reqrefs" not in (low.create.__doc__ or ""):
        return ("a config other than isolated needs _interpreters.create(config, "
                "reqrefs=True), and this build's create() takes no reqrefs.")
    new = getattr(pep734.interpreters().Interpreter.__new__, "__code__", None)
    if new is None or "_ownsref" not in new.co_varnames:
        return ("a config other than isolated needs the private Interpreter(id, "
                "_ownsref=True), which this provider's Interpreter does not take.")
    return None


def unsupported(config: dict[str, Any]) -> str | None:
    reason = pep734.unavailable()
    if reason is not None or _isolated(config):
        return reason
    reason = _private_path_missing()
    if reason is not None:
        return reason
    known = vars(_low().new_config("isolated"))
    missing = [key for key in interp_config(config) if key not in known]
    if missing:
        return f"_interpreters.new_config() has no {', '.join(missing)} field on this version."
    return None


def api(config: dict[str, Any]) -> str:
    if _isolated(config):
        return pep734.label()
    return f"{pep734.label()} + {_PRIVATE}"


def transport() -> str:
    if pep734.is_backport():
        return "interpreters_backport.interpreters.Queue (syncobj)"
    return "concurrent.interpreters.Queue"


def create_queue() -> Any:
    options: dict[str, Any] = {"unbounditems": pep734.queues().UNBOUND_ERROR}
    if pep734.is_backport():
        options["syncobj"] = True  # share, as 3.14 does, instead of pickling every item
    return pep734.interpreters().create_queue(**options)


def put(q: Any, obj: Any) -> None:
    q.put_nowait(obj)


def get(q: Any) -> Any:
    obj = q.get_nowait()  # raises ItemInterpreterDestroyed for an item whose owner is gone
    if obj is getattr(pep734.queues(), "UNBOUND", None):
        raise RuntimeError("queue item lost: its interpreter is gone (UNBOUND)")
    return obj


def destroy_queue(q: Any) -> None:
    pass  # a Queue is released when its last reference in any interpreter goes


def prelude(out_q: Any, in_q: Any) -> tuple[str, dict[str, Any]]:
    # Queue objects are shareable: run() binds them into the worker's __main__.
    return (
        "def _put(obj): _out_q.put_nowait(obj)\n"
        "def _get(): return _in_q.get_nowait()\n",
        {"_out_q": out_q, "_in_q": in_q},
    )


def run(config: dict[str, Any], source: str, shared: dict[str, Any]) -> None:
    interpreters = pep734.interpreters()
    low = _low()
    # `create` and `api` are ours, never PyInterpreterConfig fields (interp_config).
    fields = None if _isolated(config) else low.new_config("isolated", **interp_config(config))
    with creation(config):
        if fields is None:
            interp = interpreters.create()
        else:
            interp = interpreters.Interpreter(low.create(fields, reqrefs=True), _ownsref=True)
    try:
        if shared:
            interp.exec(f"import {pep734.queues_module_name()}")
            interp.prepare_main(shared)
        interp.exec(source)  # raises ExecutionFailed with CPython's text
    finally:
        interp.close()
