"""Execution models, one module each, loaded by name.

Every model module offers the same four functions:
`unsupported(config) -> str | None`, `api(config) -> str`,
`transport(config) -> str | None` and
`run(workload, params, workers, config) -> Phases`.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # not typing's: see experiments/catalog.py
if TYPE_CHECKING:
    from types import ModuleType

_MODULES = {
    "sequential": "sequential",
    "threads": "threads",
    "processes": "processes",
    "subinterpreters": "subinterpreters",
    "interpreter-pool": "interpreter_pool",
}


def load(model: str) -> ModuleType:
    """The module implementing `model` (imported on demand: each pulls in different stdlib)."""
    return importlib.import_module(f"{__name__}.{_MODULES[model]}")
