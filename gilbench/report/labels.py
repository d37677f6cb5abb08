"""Stable short strings for the dict-valued axes, so they can be grouped, sorted and shown."""

from __future__ import annotations

import json
from typing import Any

EMPTY = "-"


def _value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)  # true / false / null, as written in the matrix
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def format_mapping(mapping: Any) -> str:
    """{"n": 24, "tasks": 8} -> "n=24,tasks=8"; keys sorted so equal dicts give equal strings."""
    if mapping is None or mapping == {}:
        return EMPTY
    if not isinstance(mapping, dict):
        return _value(mapping)
    return ",".join(f"{key}={_value(mapping[key])}" for key in sorted(mapping))


def model_label(model: str, config: str) -> str:
    """ "subinterpreters" + "gil=own" -> "subinterpreters(gil=own)"."""
    return model if config == EMPTY else f"{model}({config})"


def workload_label(workload: str, params: str) -> str:
    return workload if params == EMPTY else f"{workload}({params})"
