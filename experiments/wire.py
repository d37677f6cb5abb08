"""What crosses a boundary: results between interpreters, JSON between processes.

3.12 channels carry only bytes, str, int and None, so floats travel as tagged
strings; every other result already is one of those.

`loads` and `dumps` are json's own C scanner and encoder (`_json`), driven the way
`json.loads` and `json.dumps` (default arguments) drive them, so the text and values
are the same. They exist because `import json` imports `re` (both json.decoder and
json.encoder compile regular expressions at import), which costs every measurement
process and every sub-interpreter worker several milliseconds of start-up for
patterns the C paths never use. Where `_json` is missing, json itself is used.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: see experiments/catalog.py
if TYPE_CHECKING:
    from collections.abc import Callable
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


_WHITESPACE = " \t\n\r"  # JSON's whitespace, as json.decoder.WHITESPACE matches it


class _Context:
    """The attributes `_json.make_scanner` reads: json.JSONDecoder()'s defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {
        "-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan"),
    }.__getitem__


def _not_serializable(obj: Any) -> Any:
    # json.JSONEncoder.default's words.
    raise TypeError(f"Object of type {obj.__class__.__name__} is not JSON serializable")


_c: Any
try:
    import _json as _c
except ImportError:  # not CPython: json's pure-Python paths
    _c = None
_scan: Callable[[str, int], tuple[Any, int]] | None = (
    None if _c is None else _c.make_scanner(_Context()))


def loads(text: str) -> Any:
    """`json.loads(text)` for a str (errors are ValueErrors, as JSONDecodeError is)."""
    if _scan is None:
        import json

        return json.loads(text)
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as exc:
        raise ValueError(f"Expecting value: char {exc.value}") from None
    if text[end:].strip(_WHITESPACE):
        raise ValueError(f"Extra data: char {end}")
    return value


def dumps(obj: Any) -> str:
    """`json.dumps(obj)` with its default arguments, character for character."""
    if _c is None:
        import json

        return json.dumps(obj)
    # What json.JSONEncoder.iterencode hands the C encoder for json.dumps' defaults:
    # markers (check_circular), default, ensure_ascii's string encoder, indent, the key
    # and item separators, sort_keys, skipkeys, allow_nan. One per call: it holds the
    # circular-reference markers.
    encoder = _c.make_encoder({}, _not_serializable, _c.encode_basestring_ascii, None,
                              ": ", ", ", False, False, True)
    return "".join(encoder(obj, 0))


# `_json` is private: should a future CPython change how it is driven, the C path must
# fail here, once, and fall back to json, not write records json.loads cannot read.
_PROBE = {"a": [1, 2.5, None, True, "x\u00e9\n"], "b": {"c": -0.0}}
_PROBE_TEXT = '{"a": [1, 2.5, null, true, "x\\u00e9\\n"], "b": {"c": -0.0}}'
try:
    _works = dumps(_PROBE) == _PROBE_TEXT and loads(_PROBE_TEXT) == _PROBE
except Exception:
    _works = False
if not _works:
    _c = _scan = None
