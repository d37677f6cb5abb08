"""What `python -m experiments.driver --probe` reports about this interpreter."""

from __future__ import annotations

import platform
import sys
import sysconfig
from typing import Any

from experiments import subinterp
from experiments.subinterp import pep734


def probe() -> dict[str, Any]:
    adapter = subinterp.adapter()
    isolated = subinterp.isolated_config()
    usable = adapter is not None and not adapter.unsupported(isolated)
    gil_probe = getattr(sys, "_is_gil_enabled", None)
    return {
        "python_version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "version_info": list(sys.version_info[:3]),
        "gil_disabled_build": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "gil_enabled": bool(gil_probe()) if gil_probe is not None else True,
        "config_args": sysconfig.get_config_var("CONFIG_ARGS"),
        "cc": sysconfig.get_config_var("CC"),
        "subinterpreter_api": adapter.api(isolated) if usable and adapter else None,
        "subinterpreter_transport": adapter.transport() if usable and adapter else None,
        # Whether an InterpreterPoolExecutor exists (3.14's, or the backport's on 3.13),
        # and which PEP 734 provider the `api = "pep734"` paths would use (None: none).
        "interpreter_pool": pep734.pool_unavailable() is None,
        "pep734": pep734.label() if pep734.unavailable() is None else None,
    }
