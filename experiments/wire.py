"""What crosses an interpreter boundary: results encoded as shareable values.

3.12 channels carry only bytes, str, int and None, so floats travel as tagged
strings; every other result already is one of those.
"""

from __future__ import annotations

from typing import Any

_FLOAT = "f:"


def encode(value: Any) -> Any:
    if isinstance(value, float):
        return _FLOAT + repr(value)
    if value is None or isinstance(value, (bytes, int, str)):
        return value
    raise TypeError(f"result {type(value).__name__} cannot cross interpreters")


def decode(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FLOAT):
        return float(value[len(_FLOAT):])
    return value
