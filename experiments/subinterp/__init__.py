"""Sub-interpreter adapters, one per CPython version, behind one small interface.

The low-level modules changed name and shape in every release since 3.12, so each
version gets its own adapter (v312, v313, v314); `adapter(config)` picks the one for the
running interpreter, or v314 (PEP 734's API) wherever the config asks for
`api = "pep734"` (see `experiments.subinterp.pep734` for why that is a choice on 3.13).
Each offers:

- `unsupported(config) -> str | None`, `api(config) -> str`, `transport() -> str`
- `create_queue() / put(q, obj) / get(q) / destroy_queue(q)` on the main side
- `prelude(out_q, in_q) -> (source, shared)`: source that defines `_put(obj)` and
  `_get()` inside the sub-interpreter, and objects to bind in its `__main__`
- `run(config, source, shared)`: create an interpreter with `config`, run `source`
  in it (blocking this thread), destroy it; raises with CPython's message.

`config` is the catalog's subinterpreters config: the PyInterpreterConfig fields plus
`create` (see `creation()`) and `api` (see `adapter()`), which are ours and never reach
CPython.
"""

from __future__ import annotations

import _thread
import importlib
import sys

from experiments.catalog import model_config

TYPE_CHECKING = False  # not typing's: see experiments/catalog.py
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

# create = "serial": interpreters are created one at a time under this lock (each worker
# thread still creates its own), as a program doing `for _ in range(n): create()` pays.
# create = "concurrent" (the default) takes no lock, as applications whose threads each
# create their own interpreter do. Concurrent creation sometimes fails in 3.13 with
# "Failed to import encodings module" (known upstream; seen here on 3.13.0 and
# 3.13.5t): that is a finding, recorded as `invalid` with CPython's message.
# (_thread, not threading: each worker interpreter imports this package too.)
CREATE_LOCK = _thread.allocate_lock()

# Keys of our config that are not PyInterpreterConfig fields.
_OURS = ("api", "create")

# Newest first: the first adapter whose version this interpreter reaches.
_ADAPTERS = (((3, 14), "v314"), ((3, 13), "v313"), ((3, 12), "v312"))


def adapter(config: dict[str, Any] | None = None) -> ModuleType | None:
    """The adapter for this interpreter and config, or None before 3.12.

    `api = "pep734"` always means v314, PEP 734's API from whichever provider exists (its
    `unsupported()` says why where none does); the default, "version", the running
    version's own adapter, so a 3.13 result means the same with or without the backport."""
    running = tuple(sys.version_info[:2])
    if running < (3, 12):
        return None
    if config is not None and config.get("api") == "pep734":
        return importlib.import_module(f"{__name__}.v314")
    for version, name in _ADAPTERS:
        if running >= version:
            return importlib.import_module(f"{__name__}.{name}")
    return None


def isolated_config() -> dict[str, Any]:
    """CPython's own "isolated" config, which is also the catalog's default (with `create`)."""
    return model_config("subinterpreters", {})


def interp_config(config: dict[str, Any]) -> dict[str, Any]:
    """The PyInterpreterConfig fields only, `gil` included: what CPython is given."""
    return {k: v for k, v in config.items() if k not in _OURS}


def flags(config: dict[str, Any]) -> dict[str, Any]:
    """The PyInterpreterConfig fields except `gil`, whose spelling differs per version."""
    return {k: v for k, v in interp_config(config).items() if k != "gil"}


def serial(config: dict[str, Any]) -> bool:
    return config.get("create") == "serial"


class _Unlocked:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_UNLOCKED = _Unlocked()


def creation(config: dict[str, Any]) -> Any:
    """What to hold while creating one interpreter: CREATE_LOCK when create = "serial"."""
    return CREATE_LOCK if serial(config) else _UNLOCKED
