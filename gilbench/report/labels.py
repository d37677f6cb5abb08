"""Stable short strings for the dict-valued axes, so they can be grouped, sorted and shown."""

from __future__ import annotations

import json
from typing import Any

from experiments import catalog

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


_ABSENT = object()
# Axes that name the variant even when a run has only one value ("subinterpreters(gil=own)");
# other choices (create, api) appear only when they vary or differ from their default.
ALWAYS_NAMED = ("gil", "start_method")


def short_configs(model_configs: list[tuple[str, Any]]) -> dict[tuple[str, str], str]:
    """(model, full config string) -> the config reduced to what tells it apart.

    The host expands configs with every default (seven sub-interpreter flags), which makes
    labels unreadable. Keep, per model, the keys whose values differ between that model's
    configs in the run, the keys that name the variant (gil, start_method), and other
    choices set away from their default.
    """
    by_model: dict[str, list[dict[str, Any]]] = {}
    for model, config in model_configs:
        config = config if isinstance(config, dict) else {}
        if config not in by_model.setdefault(model, []):
            by_model[model].append(config)
    short: dict[tuple[str, str], str] = {}
    for model, configs in by_model.items():
        keys = {key for config in configs for key in config}
        varying = {
            key for key in keys
            if len({json.dumps(c.get(key, _ABSENT), default=str) for c in configs}) > 1
        }  # fmt: skip
        axes = catalog.MODELS.get(model, {}).get("config", {})
        for config in configs:
            kept = {
                key: value for key, value in config.items()
                if key in varying or key in ALWAYS_NAMED or (
                    not isinstance(value, bool | None)
                    and value != axes.get(key, {}).get("default", _ABSENT))
            }  # fmt: skip
            short[(model, format_mapping(config))] = format_mapping(kept)
    return short


# Models whose `gil` setting names a GIL to own or share: on a free-threaded build there is
# none, so their label says so instead of promising one.
GIL_MODELS = ("subinterpreters", "interpreter-pool")


def model_label(model: str, config: str, no_gil: bool = False) -> str:
    """ "subinterpreters" + "gil=own" -> "subinterpreters(gil=own)"; on a free-threaded
    build "subinterpreters(gil=own, no GIL)"."""
    if no_gil and model in GIL_MODELS and "gil=" in config:
        config = f"{config}, no GIL"
    return model if config == EMPTY else f"{model}({config})"


def workload_label(workload: str, params: str) -> str:
    return workload if params == EMPTY else f"{workload}({params})"
