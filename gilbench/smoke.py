"""The smoke check every build must pass: the interpreter reports what we asked for."""

from __future__ import annotations

import json
from typing import Any

# Runs inside the freshly built interpreter (stdlib only). It also creates and destroys
# one sub-interpreter through the API of that version, proving the module works.
SCRIPT = r"""
import importlib, json, platform, sys, sysconfig
info = {
    "version": platform.python_version(),
    "executable": sys.executable,
    "config_args": sysconfig.get_config_var("CONFIG_ARGS") or "",
    "cc": sysconfig.get_config_var("CC") or "",
    "compiler": platform.python_compiler(),
    "gil_disabled": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    "debug": hasattr(sys, "gettotalrefcount"),
    "pgo_use_flag": sysconfig.get_config_var("PGO_PROF_USE_FLAG") or "",
    "lto": "--with-lto" in (sysconfig.get_config_var("CONFIG_ARGS") or ""),
}
name = {(3, 12): "_xxsubinterpreters", (3, 13): "_interpreters"}.get(
    sys.version_info[:2], "concurrent.interpreters")
info["subinterpreters_module"] = name
try:
    mod = importlib.import_module(name)
    if name == "concurrent.interpreters":
        mod.create().close()
    else:
        mod.destroy(mod.create())
    info["subinterpreters_ok"] = True
except Exception as exc:
    info["subinterpreters_ok"] = False
    info["subinterpreters_error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(info))
"""


def parse(output: str) -> dict[str, Any]:
    """The JSON object the script printed (the last line; compilers may chatter)."""
    lines = [line for line in output.strip().splitlines() if line.startswith("{")]
    if not lines:
        raise ValueError(f"smoke check printed no JSON: {output[-300:]!r}")
    info: dict[str, Any] = json.loads(lines[-1])
    return info


def problems(info: dict[str, Any], version: str, configure_args: tuple[str, ...]) -> list[str]:
    """Everything the interpreter reports that contradicts the build we asked for."""
    found = []
    if info.get("version") != version:
        found.append(f"it reports version {info.get('version')}, not {version}")
    reported = str(info.get("config_args", ""))
    for arg in configure_args:
        if f"'{arg}'" not in reported and arg not in reported.split():
            found.append(f"CONFIG_ARGS lacks {arg} (it is {reported!r})")
    if ("--disable-gil" in configure_args) != bool(info.get("gil_disabled")):
        found.append(f"Py_GIL_DISABLED is {info.get('gil_disabled')}")
    if ("--with-pydebug" in configure_args) != bool(info.get("debug")):
        found.append(f"debug build is {info.get('debug')}")
    if not info.get("subinterpreters_ok"):
        found.append(
            f"{info.get('subinterpreters_module')} does not work: "
            f"{info.get('subinterpreters_error')}"
        )
    return found
