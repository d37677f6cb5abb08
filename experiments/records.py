"""The record: the one definition of what a line of records.jsonl holds (schema_version 3).

Standard library only, because the driver and cells build records with it inside the
interpreter under test. The host's loader, its column types and the tests derive from
FIELDS, STATUSES and `problems()` here, so writer and reader cannot drift apart.
"""

from __future__ import annotations

import datetime
import math
import sys

from experiments.wire import dumps

# Neither typing nor json nor platform at run time: each measurement process imports
# this module, and those three (json and platform through re) cost it about 12 ms of
# start-up. TYPE_CHECKING is not typing's: see experiments/catalog.py.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

SCHEMA_VERSION = 3

STATUSES = ("ok", "invalid", "crashed", "timeout", "unsupported")


# kind: "str", "int", "float", "bool", "object". source: "cell": copied from the cell
# spec; "measured": set when ok, else null; "contention": null unless ok, and null where
# the host does not expose it (experiments/contention.py); "memory": null unless ok, and
# null where sampling /proc failed, which mem_error then says (experiments/memory.py);
# "canary": the host-speed canary (experiments/canary.py), null unless ok; "record": the
# rest. `late`: added to this schema version after records of it were written (canary
# fields, 2026-12-08): such a record lacks the field, and readers take it as null
# (filled()). Not a version bump: the fields are nullable and extra keys are ignored, so
# readers of either age read records of either age; a bump would make every reader of
# yesterday's v3 refuse today's records for two nullable numbers.
# A plain class, neither a dataclass nor a namedtuple: every cell process imports this,
# and dataclasses pulls in inspect (about 20 ms of start-up per measurement process),
# namedtuple collections (about 2 ms).
class Field:
    __slots__ = ("kind", "late", "name", "nullable", "source")

    def __init__(self, name: str, kind: str, nullable: bool = False,
                 source: str = "record", late: bool = False) -> None:
        self.name = name
        self.kind = kind
        self.nullable = nullable
        self.source = source
        self.late = late

    def __repr__(self) -> str:
        return (f"Field(name={self.name!r}, kind={self.kind!r}, nullable={self.nullable!r}, "
                f"source={self.source!r}, late={self.late!r})")


FIELDS: tuple[Field, ...] = (
    Field("schema_version", "int"),
    Field("run_id", "str", source="cell"),
    Field("cell_id", "str", source="cell"),
    Field("python", "str", source="cell"),
    Field("model", "str", source="cell"),
    Field("model_config", "object", source="cell"),
    Field("workload", "str", source="cell"),
    Field("workload_params", "object", source="cell"),
    Field("workers", "int", source="cell"),
    Field("repetition", "int"),
    Field("round", "int", nullable=True, source="cell"),  # since v2; null: not run in rounds
    Field("attempt", "int", nullable=True, source="cell"),  # since v2; 1+ when remeasured
    Field("status", "str"),
    Field("message", "str"),
    Field("wall_s", "float", nullable=True, source="measured"),
    Field("startup_s", "float", nullable=True, source="measured"),
    Field("teardown_s", "float", nullable=True, source="measured"),
    Field("total_s", "float", nullable=True, source="measured"),
    Field("cpu_s", "float", nullable=True, source="measured"),
    Field("peak_rss_kb", "int", nullable=True, source="measured"),
    Field("mem_total_kb", "int", nullable=True, source="memory"),  # since v3
    Field("mem_before_kb", "int", nullable=True, source="memory"),  # since v3
    Field("mem_error", "str", nullable=True, source="memory"),  # since v3
    Field("tasks_done", "int", nullable=True, source="measured"),
    Field("gil_enabled", "bool", nullable=True, source="measured"),
    Field("others_cpu_s", "float", nullable=True, source="contention"),  # since v2
    Field("steal_s", "float", nullable=True, source="contention"),  # since v2
    Field("throttled_s", "float", nullable=True, source="contention"),  # since v2
    Field("contended", "bool", nullable=True, source="contention"),  # since v2
    # since v3 (late): the host-speed canary before and after the value, seconds per
    # canary unit; the CPU both ran on, null when the process moved between them
    Field("canary_before_s", "float", nullable=True, source="canary", late=True),
    Field("canary_after_s", "float", nullable=True, source="canary", late=True),
    Field("canary_cpu", "int", nullable=True, source="canary", late=True),
    Field("api", "str"),
    Field("transport", "str", nullable=True),
    Field("python_version", "str"),
    Field("timestamp", "str"),
)

NAMES = tuple(f.name for f in FIELDS)
FROM_CELL = tuple(f.name for f in FIELDS if f.source == "cell")
MEASUREMENTS = tuple(f.name for f in FIELDS if f.source == "measured")
CONTENTION = tuple(f.name for f in FIELDS if f.source == "contention")
MEMORY = tuple(f.name for f in FIELDS if f.source == "memory")
CANARY = tuple(f.name for f in FIELDS if f.source == "canary")
LATE = tuple(f.name for f in FIELDS if f.late)


def _fits(value: Any, kind: str) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    if isinstance(value, bool):  # a JSON true is never a count or a time
        return False
    if kind == "int":
        return isinstance(value, int) and value >= 0
    # float: an int is fine (JSON writes 1.0 as 1 in some encoders); NaN and inf are not.
    return isinstance(value, int | float) and math.isfinite(value) and value >= 0


def problems(record: Any) -> list[str]:
    """What makes this object not a valid record of SCHEMA_VERSION; empty when it is one."""
    if not isinstance(record, dict):
        return ["it is not a JSON object"]
    found = []
    for field in FIELDS:
        if field.name not in record and field.late:
            continue  # written before the field was added: null (filled())
        if field.name not in record:
            found.append(f"it lacks {field.name}")
            continue
        value = record[field.name]
        if value is None and field.nullable:
            continue
        if not _fits(value, field.kind):
            null = " or null" if field.nullable else ""
            what = {"int": "a non-negative int", "float": "a non-negative finite float",
                    "object": "an object"}.get(field.kind, f"a {field.kind}")
            found.append(f"{field.name} is {value!r}, not {what}{null}")
    if isinstance(record.get("status"), str) and record["status"] not in STATUSES:
        found.append(f"status {record['status']!r} is not one of {', '.join(STATUSES)}")
    return found


def filled(record: dict[str, Any]) -> dict[str, Any]:
    """The record with every late field it lacks set to null (unknown); itself if none."""
    missing = [name for name in LATE if name not in record]
    if not missing:
        return record
    return {**record, **dict.fromkeys(missing)}


def _python_version() -> str:
    """platform.python_version(): the first word of sys.version, as at least x.y.z."""
    parts = sys.version.split()[0].split(".")
    return ".".join(parts + ["0"] * (3 - len(parts)))


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def make_record(
    cell: dict[str, Any],
    repetition: int,
    status: str,
    message: str = "",
    *,
    api: str = "",
    transport: str | None = None,
    measurements: dict[str, Any] | None = None,
    python_version: str | None = None,
) -> dict[str, Any]:
    """One record; measurements not given are null."""
    measured = measurements or {}
    values: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        **{key: cell.get(key) for key in FROM_CELL},
        "repetition": repetition,
        "status": status,
        "message": message,
        **{key: measured.get(key) for key in MEASUREMENTS + CONTENTION + MEMORY + CANARY},
        "api": api,
        "transport": transport,
        "python_version": (_python_version() if python_version is None
                           else python_version),
        "timestamp": now_iso(),
    }
    return {name: values[name] for name in NAMES}


def emit(record: dict[str, Any], stream: TextIO = sys.stdout) -> None:
    """One JSON line, flushed at once so the reader sees it even if we die next.

    The text is json.dumps(record)'s, character for character (experiments/wire.py)."""
    stream.write(dumps(record) + "\n")
    stream.flush()
