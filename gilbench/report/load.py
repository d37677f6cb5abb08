"""Read a run folder into one tidy, typed pandas DataFrame.

The folder is read through gilbench.runfolder (the one owner of its format) and the
columns are typed from the one record definition, experiments/records.py. A run that
cannot be reported raises ReportError before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from experiments.catalog import documented_invalid
from experiments.records import FIELDS, NAMES, STATUSES
from gilbench import runfolder
from gilbench.errors import GilbenchError
from gilbench.report.errors import ReportError
from gilbench.report.hostspeed import add_host_speed
from gilbench.report.labels import format_mapping, model_label, short_configs, workload_label

Record = runfolder.Record
FLOAT_COLUMNS = tuple(f.name for f in FIELDS if f.kind == "float")
INT_COLUMNS = tuple(f.name for f in FIELDS if f.kind == "int")
BOOL_COLUMNS = tuple(f.name for f in FIELDS if f.kind == "bool")
STRING_COLUMNS = ("run_id", "cell_id", "message", "transport", "python_version")
CATEGORY_COLUMNS = (
    "python", "python_label", "model", "model_config", "config_label", "model_label", "workload",
    "workload_params", "workload_label", "api",
)  # fmt: skip


@dataclass
class RunData:
    """A loaded run: its manifest, the records as a frame, how complete it is, warnings."""

    run_dir: Path
    manifest: runfolder.Manifest
    frame: pd.DataFrame
    completeness: runfolder.Completeness
    warnings: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.manifest.run_id or self.run_dir.name


def _typed_frame(records: list[Record], pythons: dict[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records, columns=list(NAMES))
    short = short_configs(list(zip(frame["model"], frame["model_config"], strict=True)))
    # From the one rule in the catalog, not from the message: older runs get it too.
    frame["documented_invalid"] = pd.array([
        documented_invalid(str(m), c if isinstance(c, dict) else {})
        for m, c in zip(frame["model"], frame["model_config"], strict=True)
    ], dtype="string")
    frame["model_config"] = [format_mapping(value) for value in frame["model_config"]]
    frame["workload_params"] = [format_mapping(value) for value in frame["workload_params"]]
    frame["config_label"] = [
        short[(m, c)] for m, c in zip(frame["model"], frame["model_config"], strict=True)
    ]
    no_gil = [bool((pythons.get(python) or {}).get("gil_disabled")) for python in frame["python"]]
    frame["model_label"] = [
        model_label(m, c, off)
        for m, c, off in zip(frame["model"], frame["config_label"], no_gil, strict=True)
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
    for column in BOOL_COLUMNS:
        frame[column] = pd.array(list(frame[column]), dtype="boolean")
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
    if not run_dir.is_dir():
        raise ReportError(
            f"Run folder {run_dir} does not exist; pass a results/<run-id> folder "
            "written by `invoke experiment`."
        )
    try:
        manifest = runfolder.read_manifest(run_dir)
        read = runfolder.read_records(run_dir)
    except ReportError:
        raise
    except GilbenchError as exc:
        raise ReportError(str(exc)) from None
    records, warnings = read.records, read.warnings()
    completeness = runfolder.completeness(run_dir, manifest, records)
    if not records:
        raise ReportError(
            f"{read.path} holds no complete records, so there is nothing to report; "
            + (f"resume the run with `invoke experiment --resume {manifest.run_id}`."
               if completeness.missing else "rerun the experiment.")
        )
    pythons = manifest.pythons
    unknown = sorted({str(r["python"]) for r in records} - set(pythons))
    if unknown:
        warnings.append(
            f"The manifest does not describe python(s) {', '.join(unknown)}; "
            "they are labelled by their id and have no provenance."
        )
    # A merged run's records keep the run_id of the run that measured them.
    own = {manifest.run_id, *(manifest.merge.get("sources") or {})}
    foreign = sum(1 for r in records if r["run_id"] not in own)
    if foreign:
        warnings.append(
            f"{foreign} record(s) carry a run_id other than the manifest's {manifest.run_id}; "
            "they are reported with this run."
        )
    # host_speed from every attempt's canaries, before one attempt per repetition is chosen
    frame = add_host_speed(_typed_frame(records, pythons))
    frame, notes = _one_record_per_repetition(frame)
    return RunData(run_dir, manifest, frame, completeness, warnings + notes)


def contended_ok(frame: pd.DataFrame) -> pd.Series:
    """ok records measured while the host was busy (unknown, as in v1 records: not)."""
    return (frame["status"] == "ok") & frame["contended"].fillna(False).astype(bool)


def quiet_ok(frame: pd.DataFrame) -> pd.Series:
    """ok records measured without contention: the ones statistics are made of."""
    return (frame["status"] == "ok") & ~contended_ok(frame)


def _one_record_per_repetition(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """A repetition measured again (--retry-contended) keeps every attempt on disk; the
    report uses its first quiet ok attempt, else its last one. The same attempt twice is
    a duplicate (two writers, before runs had a lock): the first counts."""
    notes = []
    attempt = frame["attempt"].fillna(0)
    twice = frame.assign(_attempt=attempt).duplicated(
        ["cell_id", "repetition", "_attempt"], keep="first")
    if twice.any():
        notes.append(f"{int(twice.sum())} record(s) repeat a (cell, repetition) already "
                     "recorded; only the first of each is used.")
        frame, attempt = frame.loc[~twice], attempt.loc[~twice]
    quiet = quiet_ok(frame)
    # Quiet attempts first, earliest first; without one, the latest attempt.
    ranked = frame.assign(_quiet=quiet, _attempt=attempt.where(quiet, -attempt)).sort_values(
        ["_quiet", "_attempt"], ascending=[False, True], kind="stable")
    retried = frame.duplicated(["cell_id", "repetition"], keep=False)
    chosen = ranked.loc[~ranked.duplicated(["cell_id", "repetition"], keep="first")]
    if retried.any():
        again = frame.loc[retried].drop_duplicates(["cell_id", "repetition"])
        recovered = int(chosen.loc[chosen.index.isin(frame.index[retried]), "_quiet"].sum())
        notes.append(f"{len(again)} contended repetition(s) were measured again "
                     f"(retry_contended); {recovered} got a quiet attempt, which is used.")
    chosen = chosen.drop(columns=["_quiet", "_attempt"]).sort_index().reset_index(drop=True)
    return chosen, notes
