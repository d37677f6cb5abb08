"""The run folder on disk: manifest.json (replaced atomically) and records.jsonl
(append-only, flushed and synced per record)."""

from __future__ import annotations

import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from gilbench.errors import GilbenchError

MANIFEST_SCHEMA_VERSION = 1
RECORD_SCHEMA_VERSION = 1


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def write_manifest(run_dir: Path, manifest: dict[str, Any]) -> None:
    tmp = run_dir / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    tmp.replace(run_dir / "manifest.json")


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "manifest.json"
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise GilbenchError(f"{run_dir} is not a gilbench run (it has no manifest.json).") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise GilbenchError(f"{path} cannot be read ({exc}).") from exc
    version = manifest.get("schema_version")
    if version != MANIFEST_SCHEMA_VERSION:
        raise GilbenchError(
            f"{path} has schema_version {version!r}; this gilbench reads "
            f"{MANIFEST_SCHEMA_VERSION} (upgrade gilbench to read newer runs)."
        )
    return manifest


def read_records(run_dir: Path) -> list[dict[str, Any]]:
    """Every complete record; a line cut short by a kill is skipped."""
    path = run_dir / "records.jsonl"
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


class RecordWriter:
    """Appends one JSON line per record and makes it durable before returning."""

    def __init__(self, run_dir: Path) -> None:
        path = run_dir / "records.jsonl"
        # A kill mid-line leaves no newline at the end: start on a fresh line.
        needs_newline = path.exists() and path.stat().st_size > 0 and (
            path.read_bytes()[-1:] != b"\n"
        )
        self.file: IO[str] = path.open("a")
        if needs_newline:
            self.file.write("\n")

    def append(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record, sort_keys=True) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()
