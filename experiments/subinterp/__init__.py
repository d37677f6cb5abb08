"""Sub-interpreter adapters, one per CPython version, behind one small interface.

The low-level modules changed name and shape in every release since 3.12, so each
version gets its own adapter (v312, v313, v314); `adapter()` picks the one for the
running interpreter. Each offers:

- `unsupported(config) -> str | None`, `api(config) -> str`, `TRANSPORT`
- `create_queue() / put(q, obj) / get(q) / destroy_queue(q)` on the main side
- `prelude(out_q, in_q) -> (source, shared)`: source that defines `_put(obj)` and
  `_get()` inside the sub-interpreter, and objects to bind in its `__main__`
- `run(config, source, shared)`: create an interpreter with `config`, run `source`
  in it (blocking this thread), destroy it; raises with CPython's message.
"""

from __future__ import annotations

import importlib
import sys
import threading
from types import ModuleType
from typing import Any

from experiments.catalog import model_config

# Interpreters are created one at a time (each worker thread still creates its own):
# concurrent creation sometimes fails in 3.13 with "Failed to import encodings module",
# seen here on 3.13.0 and 3.13.5t. Creating them in turn is also what a program doing
# `for _ in range(n): interpreters.create()` pays. (3.12's _testcapi path for custom
# configs creates, runs and destroys in one call, so it cannot take the lock.)
CREATE_LOCK = threading.Lock()

# Newest first: the first adapter whose version this interpreter reaches.
_ADAPTERS = (((3, 14), "v314"), ((3, 13), "v313"), ((3, 12), "v312"))


def adapter() -> ModuleType | None:
    """The adapter for this interpreter, or None before 3.12."""
    running = tuple(sys.version_info[:2])
    for version, name in _ADAPTERS:
        if running >= version:
            return importlib.import_module(f"{__name__}.{name}")
    return None


def isolated_config() -> dict[str, Any]:
    """CPython's own "isolated" config, which is also the catalog's default."""
    return model_config("subinterpreters", {})


def flags(config: dict[str, Any]) -> dict[str, Any]:
    """The PyInterpreterConfig fields except `gil`, whose spelling differs per version."""
    return {k: v for k, v in config.items() if k != "gil"}
