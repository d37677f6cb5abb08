"""Read a run folder into one tidy, typed pandas DataFrame.

Everything is checked before anything is written elsewhere, so a bad run folder raises
ReportError and leaves no half-written outputs behind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from gilbench.report.errors import ReportError
from gilbench.report.labels import format_mapping, model_label, short_configs, workload_label
from gilbench.report.schema import (
    MANIFEST_SCHEMA_VERSION,
    RECORD_FIELDS,
    RECORD_SCHEMA_VERSION,
    STATUSES,
    Record,
    oldest_readable_record_version,
    upgrade_record,
)

MANIFEST = "manifest.json"
RECORDS = "records.jsonl"

FLOAT_COLUMNS = ("wall_s", "startup_s", "teardown_s", "total_s", "cpu_s")
INT_COLUMNS = ("workers", "repetition", "peak_rss_kb", "tasks_done", "schema_version")
CATEGORY_COLUMNS = (
    "python", "python_label", "model", "model_config", "config_label", "model_label", "workload",
    "workload_params", "workload_label", "api",
)  # fmt: skip
STRING_COLUMNS = ("run_id", "cell_id", "message", "transport", "python_version")


@dataclass
class RunData:
    """A loaded run: the manifest as written, the records as a frame, and reader warnings."""

    run_dir: Path
    manifest: dict[str, Any]
    frame: pd.DataFrame
    warnings: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id") or self.run_dir.name)


def load_manifest(run_dir: Path) -> dict[str, Any]:
    if not run_dir.is_dir():
        raise ReportError(
            f"Run folder {run_dir} does not exist; pass a results/<run-id> folder "
            "written by `invoke experiment`."
        )
    path = run_dir / MANIFEST
    if not path.is_file():
        raise ReportError(
            f"{run_dir} has no {MANIFEST}, so it is not a gilbench run folder; "
            "pass a folder written by `invoke experiment`."
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(
            f"{path} is not valid JSON ({exc}); restore it or rerun the experiment."
        ) from exc
    if not isinstance(manifest, dict):
        raise ReportError(
            f"{path} does not hold a JSON object; restore it or rerun the experiment."
        )
    version = manifest.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ReportError(f"{path} has no integer schema_version; it is not a gilbench manifest.")
    if version > MANIFEST_SCHEMA_VERSION:
        raise ReportError(
            f"{path} has schema_version {version}, newer than the {MANIFEST_SCHEMA_VERSION} "
            "this gilbench reads; report it with the gilbench version that wrote it."
        )
    if version < MANIFEST_SCHEMA_VERSION:
        raise ReportError(
            f"{path} has schema_version {version}, older than any this gilbench can read; "
            "rerun the experiment."
        )
    return manifest


def read_records(path: Path) -> tuple[list[Record], list[str]]:
    """Parse records.jsonl; a truncated last line is dropped with a warning, not an error."""
    if not path.is_file():
        raise ReportError(
            f"{path.parent} has no {RECORDS}; the run recorded nothing, so rerun or resume it."
        )
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    numbered = [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
    records: list[Record] = []
    warnings: list[str] = []
    for index, (number, line) in enumerate(numbered):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if index == len(numbered) - 1:
                # The orchestrator was killed mid-write (docs/run-format.md): skip, say so.
                warnings.append(
                    f"Ignored the truncated last line ({number}) of {path}; "
                    "the run was probably interrupted while writing it."
                )
                continue
            raise ReportError(
                f"Line {number} of {path} is not valid JSON ({exc.msg}); only the last line "
                "may be truncated, so the file is damaged and the run must be rerun."
            ) from exc
        if not isinstance(record, dict):
            raise ReportError(f"Line {number} of {path} is not a JSON object; rerun the run.")
        records.append(_check_record(record, path, number))
    if not records:
        raise ReportError(
            f"{path} holds no complete records; the run produced nothing to report, "
            "so rerun or resume it."
        )
    return records, warnings


def _check_record(record: Record, path: Path, number: int) -> Record:
    version = record.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ReportError(
            f"Line {number} of {path} has no integer schema_version; it is not a gilbench record."
        )
    if version > RECORD_SCHEMA_VERSION:
        raise ReportError(
            f"Line {number} of {path} has record schema_version {version}, newer than the "
            f"{RECORD_SCHEMA_VERSION} this gilbench reads; report it with a newer gilbench."
        )
    if version < oldest_readable_record_version():
        raise ReportError(
            f"Line {number} of {path} has record schema_version {version}, older than any "
            "this gilbench can upgrade; rerun the experiment."
        )
    record = upgrade_record(record)
    missing = [name for name in RECORD_FIELDS if name not in record]
    if missing:
        raise ReportError(
            f"Line {number} of {path} lacks {', '.join(missing)}, so it does not follow "
            "docs/contract.md; fix the driver that wrote it and rerun."
        )
    if record["status"] not in STATUSES:
        raise ReportError(
            f"Line {number} of {path} has status {record['status']!r}, not one of "
            f"{', '.join(STATUSES)}; fix the driver that wrote it and rerun."
        )
    return record


def _typed_frame(records: list[Record], pythons: dict[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records, columns=list(RECORD_FIELDS))
    short = short_configs(list(zip(frame["model"], frame["model_config"], strict=True)))
    frame["model_config"] = [format_mapping(value) for value in frame["model_config"]]
    frame["workload_params"] = [format_mapping(value) for value in frame["workload_params"]]
    frame["config_label"] = [
        short[(m, c)] for m, c in zip(frame["model"], frame["model_config"], strict=True)
    ]
    frame["model_label"] = [
        model_label(m, c) for m, c in zip(frame["model"], frame["config_label"], strict=True)
    ]
    frame["workload_label"] = [
        workload_label(w, p)
        for w, p in zip(frame["workload"], frame["workload_params"], strict=True)
    ]
    frame["python_label"] = [
        str((pythons.get(python) or {}).get("label") or python) for python in frame["python"]
    ]
    frame["gil_disabled_build"] = pd.array(
        [(pythons.get(python) or {}).get("gil_disabled") for python in frame["python"]],
        dtype="boolean",
    )
    for column in FLOAT_COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    for column in INT_COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    frame["gil_enabled"] = pd.array(list(frame["gil_enabled"]), dtype="boolean")
    for column in STRING_COLUMNS:
        frame[column] = frame[column].astype("string")
    frame["message"] = frame["message"].fillna("")
    for column in CATEGORY_COLUMNS:
        frame[column] = frame[column].astype("string").astype("category")
    frame["status"] = pd.Categorical(frame["status"], categories=list(STATUSES))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    return frame


def load_run(run_dir: Path) -> RunData:
    """Load and check a run folder; raises ReportError with one sentence when it cannot."""
    run_dir = Path(run_dir)
    manifest = load_manifest(run_dir)
    records, warnings = read_records(run_dir / RECORDS)
    pythons = manifest.get("pythons") or {}
    unknown = sorted({str(r["python"]) for r in records} - set(pythons))
    if unknown:
        warnings.append(
            f"The manifest does not describe python(s) {', '.join(unknown)}; "
            "they are labelled by their id and have no provenance."
        )
    run_id = manifest.get("run_id")
    foreign = sum(1 for r in records if run_id and r["run_id"] != run_id)
    if foreign:
        warnings.append(
            f"{foreign} record(s) carry a run_id other than the manifest's {run_id}; "
            "they are reported with this run."
        )
    try:
        frame = _typed_frame(records, pythons)
    except (ValueError, TypeError) as exc:
        raise ReportError(
            f"The records in {run_dir / RECORDS} hold a value of the wrong type ({exc}); "
            "fix the driver that wrote them and rerun."
        ) from exc
    duplicated = frame.duplicated(["cell_id", "repetition"], keep="last")
    if duplicated.any():
        warnings.append(
            f"{int(duplicated.sum())} record(s) repeat a (cell, repetition) already recorded; "
            "the last one of each is used."
        )
        frame = frame.loc[~duplicated].reset_index(drop=True)
    return RunData(run_dir=run_dir, manifest=manifest, frame=frame, warnings=warnings)
