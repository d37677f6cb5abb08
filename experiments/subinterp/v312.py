"""CPython 3.12: `_xxsubinterpreters` + `_xxinterpchannels`, `_testcapi` for full configs.

3.12's `_xxsubinterpreters.create(isolated=True|False)` offers only two configs
(CPython's "isolated" and "legacy"). Every other PyInterpreterConfig is reachable
only through `_testcapi.run_in_subinterp_with_config(code, **flags, gil=N)`,
which creates the interpreter in the calling thread, runs the code and ends it.
There `gil` is an int: 1 shared, 2 own (0 means the default, shared).

create = "serial" on that `_testcapi` path is reported `unsupported`: the call creates,
runs and destroys the interpreter in one go, so a lock around it would serialise the
workers' whole lives (and deadlock, since every worker waits for all to be ready), and
releasing the lock once the interpreter exists would need a handshake out of the new
interpreter that no other version's path has. The two presets create through
`_xxsubinterpreters.create()`, which takes the lock like 3.13 and 3.14 do.
"""

from __future__ import annotations

import importlib
import importlib.util

from experiments.subinterp import creation, flags, interp_config, isolated_config, serial

TYPE_CHECKING = False  # not typing's: see experiments/catalog.py
if TYPE_CHECKING:
    from typing import Any

TRANSPORT = "_xxinterpchannels"

_LEGACY = {
    "gil": "shared",
    "use_main_obmalloc": True,
    "check_multi_interp_extensions": False,
    "allow_threads": True,
    "allow_daemon_threads": True,
    "allow_fork": True,
    "allow_exec": True,
}
_GIL = {"shared": 1, "own": 2}


def _preset(config: dict[str, Any]) -> bool | None:
    """`isolated=` for `_xxsubinterpreters.create` when config is one of its two presets.

    Compared without `create`, which is how, not what, to create."""
    fields = interp_config(config)
    if fields == interp_config(isolated_config()):
        return True
    if fields == _LEGACY:
        return False
    return None


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def unsupported(config: dict[str, Any]) -> str | None:
    if not _has("_xxsubinterpreters") or not _has("_xxinterpchannels"):
        return "this 3.12 build lacks _xxsubinterpreters or _xxinterpchannels."
    if _preset(config) is None and not _has("_testcapi"):
        return (
            "3.12's _xxsubinterpreters.create() only offers the isolated and legacy "
            "configs, and this build has no _testcapi for the others."
        )
    if _preset(config) is None and serial(config):
        return (
            "create=serial needs creation apart from running, and 3.12's "
            "_testcapi.run_in_subinterp_with_config (the only way to this config) "
            "creates, runs and destroys in one call; use create=concurrent."
        )
    return None


def transport() -> str:
    return TRANSPORT


def api(config: dict[str, Any]) -> str:
    if _preset(config) is None:
        return "_testcapi.run_in_subinterp_with_config (3.12)"
    return "_xxsubinterpreters (3.12)"


def _channels() -> Any:
    return importlib.import_module("_xxinterpchannels")


def create_queue() -> Any:
    return _channels().create()


def put(q: Any, obj: Any) -> None:
    _channels().send(q, obj)


def get(q: Any) -> Any:
    return _channels().recv(q)


def destroy_queue(q: Any) -> None:
    _channels().destroy(q)


def prelude(out_q: Any, in_q: Any) -> tuple[str, dict[str, Any]]:
    # Channel ids cross as plain ints written into the worker's source.
    return (
        "import _xxinterpchannels as _ch\n"
        f"def _put(obj): _ch.send({int(out_q)}, obj)\n"
        f"def _get(): return _ch.recv({int(in_q)})\n",
        {},
    )


def run(config: dict[str, Any], source: str, shared: dict[str, Any]) -> None:
    isolated = _preset(config)
    if isolated is not None:
        interpreters = importlib.import_module("_xxsubinterpreters")
        with creation(config):
            interp = interpreters.create(isolated=isolated)
        try:
            interpreters.run_string(interp, source)
        finally:
            interpreters.destroy(interp)
        return
    testcapi = importlib.import_module("_testcapi")
    # Always concurrent: unsupported() refuses create=serial here (see the docstring).
    rc = testcapi.run_in_subinterp_with_config(source, **flags(config), gil=_GIL[config["gil"]])
    if rc != 0:  # the source reports its own errors; this is only a backstop
        raise RuntimeError(f"run_in_subinterp_with_config returned {rc}")
