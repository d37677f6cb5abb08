"""Where PEP 734's API comes from: the standard library (3.14+) or its backport on 3.13.

CPython 3.14 ships `concurrent.interpreters` and `concurrent.futures.InterpreterPoolExecutor`.
On 3.13 the PyPI package `interpreters-pep-734` (pure Python, built on 3.13's own
`_interpreters` and `_interpqueues`) offers the same API as
`interpreters_backport.interpreters` and
`interpreters_backport.concurrent.futures.InterpreterPoolExecutor`. It is optional: the
target side never needs it, and without it those paths are `unsupported`.

How each model chooses (written down here because users will ask):

- `subinterpreters` keeps its meaning on 3.13: `api = "version"` (the default) runs the
  adapter of the running version (3.13: `_interpreters`), whether or not the backport is
  installed. `api = "pep734"` asks for PEP 734's API: the standard library on 3.14+, the
  backport on 3.13 (`unsupported` without it, and on 3.12). On 3.14 both values take the
  same path.
- `interpreter-pool` has only one path per interpreter, so it takes whichever provider
  exists: the standard library's executor on 3.14+, the backport's on 3.13.

Records name the provider in `api` (`label()`), so a backport result is never mistaken
for the standard library's. Nothing here imports the backport until a model runs: finding
it costs two `find_spec` calls and one directory listing (for its version).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

TYPE_CHECKING = False  # not typing's: see experiments/catalog.py
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

STDLIB = "stdlib"
BACKPORT = "backport"

# Module names per provider: the high-level API, its queue module (UNBOUND_ERROR lives
# there, and a sub-interpreter must import it before a Queue can be bound into it), and
# the package holding InterpreterPoolExecutor.
_INTERPRETERS = {STDLIB: "concurrent.interpreters", BACKPORT: "interpreters_backport.interpreters"}
_QUEUES = {STDLIB: "concurrent.interpreters._queues",
           BACKPORT: "interpreters_backport.interpreters.queues"}
_FUTURES = {STDLIB: "concurrent.futures", BACKPORT: "interpreters_backport.concurrent.futures"}

_DIST_PREFIX = "interpreters_pep_734-"  # the backport's .dist-info folder: name-version


def _found(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent package that is missing or broken
        return False


def source() -> str | None:
    """STDLIB, BACKPORT, or None when this interpreter has neither."""
    if _found("concurrent.interpreters"):
        return STDLIB
    # The backport is built on 3.13's low-level modules; 3.12 has none of them.
    if (sys.version_info >= (3, 13) and _found("interpreters_backport")
            and _found("_interpreters") and _found("_interpqueues")):
        return BACKPORT
    return None


def unavailable(what: str = "PEP 734's API", where: str = "concurrent.interpreters") -> str | None:
    """Why PEP 734's API (`what`, in the standard library's `where`) cannot run here, or
    None when it can."""
    if source() is not None:
        return None
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if sys.version_info < (3, 13):
        return (f"{what} is in {where} from Python 3.14, and its backport "
                f"(interpreters-pep-734) needs 3.13's _interpreters; this is {running}.")
    if _found("interpreters_backport"):
        return "the PEP 734 backport needs _interpreters and _interpqueues, which this build lacks."
    return (f"{what} needs Python 3.14 ({where}) or, on 3.13, the interpreters-pep-734 "
            f"backport, which is not installed for this {running} (the pgo-pep734 build "
            "variant has it).")


def backport_version() -> str:
    """The installed backport's version, from its .dist-info folder's name (importlib.metadata
    would cost the cell process email, zipfile and re)."""
    spec = importlib.util.find_spec("interpreters_backport")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        site = os.path.dirname(folder)
        for entry in sorted(os.listdir(site)):
            if entry.startswith(_DIST_PREFIX) and entry.endswith(".dist-info"):
                return entry[len(_DIST_PREFIX):-len(".dist-info")]
    return "unknown version"


def label() -> str:
    """How records name the provider in `api`."""
    if source() == BACKPORT:
        return f"{_INTERPRETERS[BACKPORT]} (PEP 734 backport {backport_version()})"
    return f"{_INTERPRETERS[STDLIB]} ({sys.version_info.major}.{sys.version_info.minor})"


def _provider() -> str:
    found = source()
    if found is None:
        raise RuntimeError(unavailable())
    return found


def interpreters() -> ModuleType:
    return importlib.import_module(_INTERPRETERS[_provider()])


def queues_module_name() -> str:
    return _QUEUES[_provider()]


def queues() -> ModuleType:
    return importlib.import_module(queues_module_name())


def pool_unavailable() -> str | None:
    """Why InterpreterPoolExecutor cannot run here, or None when it can."""
    reason = unavailable("InterpreterPoolExecutor", "concurrent.futures")
    if reason is not None:
        return reason
    if not _found(_FUTURES[_provider()] + ".interpreter"):
        return f"{_FUTURES[_provider()]} has no InterpreterPoolExecutor on this build."
    return None


def pool_name() -> str:
    """The executor's full name as records give it, with the provider."""
    if source() == BACKPORT:
        return (f"{_FUTURES[BACKPORT]}.InterpreterPoolExecutor "
                f"(PEP 734 backport {backport_version()})")
    return (f"{_FUTURES[STDLIB]}.InterpreterPoolExecutor "
            f"({sys.version_info.major}.{sys.version_info.minor})")


def pool_executor() -> Any:
    return importlib.import_module(_FUTURES[_provider()]).InterpreterPoolExecutor


def is_backport() -> bool:
    return source() == BACKPORT
