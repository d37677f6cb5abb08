"""The run folder, `results/<run-id>/`: the one module that reads and writes it.

- `manifest.json`: the run (a `Manifest`), replaced atomically (temp file, fsync, rename).
- `records.jsonl`: append-only, one record (experiments/records.py) per line, synced per
  record. One rule for every reader and writer: only newline-terminated lines are records.
  Bytes after the last newline are a torn tail (a kill or a full disk mid-write); readers
  ignore it and the writer cuts it off before appending, so a bad line never ends up in
  the middle. A complete line that is not a valid record is *damaged*: it is reported by
  line number and does not count, so `--resume` measures that repetition again.
- `run.lock`: held (flock) by the one process running or resuming the run; it names that
  process. The kernel drops the lock when the process dies, so a stale lock is simply
  taken over.

Every disk failure leaves through GilbenchError with one sentence and the run intact.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from experiments import catalog
from experiments import records as schema
from gilbench.errors import GilbenchError

MANIFEST = "manifest.json"
HARNESS = "harness"  # the run's copy of experiments/
USER_CODE = "userwork"  # the run's copy of the user workloads' code (gilbench/userwork.py)
RECORDS = "records.jsonl"
LOCK = "run.lock"
MANIFEST_SCHEMA_VERSION = 1
RECORD_SCHEMA_VERSION = schema.SCHEMA_VERSION

Record = dict[str, Any]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


class DiskError(GilbenchError):
    """The run folder could not be read or written."""


class DiskFull(DiskError):
    """The disk holding the run folder is full; what is written stays readable."""


def _disk_error(exc: OSError, run_dir: Path, doing: str) -> DiskError:
    """One sentence for an OSError while touching a run folder."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(
            f"The disk holding {run_dir} is full while {doing}; every record up to the last "
            f"complete one is kept: free some space and run `invoke experiment --resume "
            f"{run_dir.name}`."
        )
    return DiskError(f"{doing[0].upper()}{doing[1:]} in {run_dir} failed "
                     f"({exc.strerror or exc}); check the run folder's files and permissions.")


def check_space(run_dir: Path, doing: str) -> None:
    """Raise the full-disk sentence when the run's disk has (almost) no room left: then a
    dying driver is a symptom of the disk (its log could not be written), not a result."""
    try:
        disk = os.statvfs(run_dir)
    except OSError:
        return
    if disk.f_bavail * disk.f_frsize < 64 * 1024:
        raise _disk_error(OSError(errno.ENOSPC, "No space left on device"), run_dir, doing)


# --- finding runs -------------------------------------------------------------------------

def find(results_dir: Path, name: str) -> Path:
    """A run given by id (a folder of results_dir) or by path (as the shell means it)."""
    for candidate in (Path(name).expanduser(), results_dir / name):
        if (candidate / MANIFEST).is_file():
            return candidate
    if Path(name).expanduser().is_dir():
        raise GilbenchError(f"{name} is not a gilbench run (it has no {MANIFEST}).")
    raise GilbenchError(
        f"There is no run {name!r} (looked in {results_dir}); `ls {results_dir}` lists the runs."
    )


def _started(run_dir: Path) -> str:
    try:
        return read_manifest(run_dir).started_at
    except GilbenchError:
        return ""


def newest(results_dir: Path) -> Path:
    """The run under results_dir that started last (by manifest, then by name)."""
    if results_dir.exists() and not results_dir.is_dir():
        raise GilbenchError(
            f"The results folder {results_dir} is a file; move it away or set "
            "gilbench.results_dir to a folder."
        )
    if not results_dir.is_dir():
        raise GilbenchError(
            f"Results folder {results_dir} does not exist; run `invoke experiment` first."
        )
    # A dot-folder is being written (a merge stages there): not a run yet.
    runs = [p for p in results_dir.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).is_file()]
    if not runs:
        raise GilbenchError(
            f"{results_dir} holds no run folders (none has a {MANIFEST}); "
            "run `invoke experiment` first."
        )
    return max(runs, key=lambda p: (_started(p), p.name))


# What a run folder holds before its manifest exists (while the pythons are probed).
_STARTING = {"driver.log", LOCK, "cells-pending.jsonl", HARNESS, USER_CODE}


def _remove_debris(results_dir: Path) -> None:
    """Folders of runs killed before their manifest was written: nothing was measured,
    so they only mislead `ls`. A folder whose lock is held is still starting."""
    with contextlib.suppress(OSError):
        for folder in results_dir.iterdir():
            if (folder.is_dir() and not (folder / MANIFEST).exists()
                    and (folder / LOCK).exists() and holder(folder) is None
                    and {p.name for p in folder.iterdir()} <= _STARTING):
                shutil.rmtree(folder, ignore_errors=True)


def create(results_dir: Path, run_id: str) -> Path:
    run_dir = results_dir / run_id
    _remove_debris(results_dir)
    if results_dir.exists() and not results_dir.is_dir():
        raise GilbenchError(
            f"The results folder {results_dir} is a file; move it away or set "
            "gilbench.results_dir to a folder."
        )
    try:
        run_dir.mkdir(parents=True)
    except OSError as exc:
        raise GilbenchError(
            f"Cannot create the run folder {run_dir} ({exc.strerror or exc}); set "
            "gilbench.results_dir to a writable folder."
        ) from None
    return run_dir


def save_harness(run_dir: Path, experiments_dir: Path) -> None:
    """A copy of the experiments/ tree that measures this run (HARNESS/experiments), so an
    export holds the code that ran even after the checkout moved on. Written before the
    manifest: a run folder with a manifest has its harness."""
    target = run_dir / HARNESS / experiments_dir.name
    try:
        for path in sorted(experiments_dir.rglob("*")):
            if "__pycache__" in path.parts or not path.is_file():
                continue
            copy = target / path.relative_to(experiments_dir)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
    except OSError as exc:  # file by file, so a full disk keeps its errno
        raise _disk_error(exc, run_dir, "copying the harness") from None


def save_user_code(run_dir: Path, files: dict[str, bytes]) -> Path:
    """The user workloads' code (path under USER_CODE -> bytes), written like the harness:
    before the manifest, which names each workload's files and sha256."""
    folder = run_dir / USER_CODE
    try:
        for name, data in sorted(files.items()):
            copy = folder / name
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(data)
    except OSError as exc:
        raise _disk_error(exc, run_dir, "copying the user workloads' code") from None
    return folder


def user_code(run_dir: Path) -> Path | None:
    """The run's copy of its user workloads' code, if it has any."""
    path = run_dir / USER_CODE
    return path if path.is_dir() else None


def harness(run_dir: Path) -> Path | None:
    """The run's copy of experiments/, if it has one (runs before this version do not)."""
    path = run_dir / HARNESS / "experiments"
    return path if path.is_dir() else None


# --- the manifest --------------------------------------------------------------------------

@dataclass
class Manifest:
    """manifest.json (docs/run-format.md). Keys this version does not know are kept."""

    run_id: str
    started_at: str = ""
    finished_at: str | None = None
    resumed_at: list[str] = field(default_factory=list)
    tool_version: str = ""
    experiments_hash: str = ""
    command: str = ""
    matrix: dict[str, Any] = field(default_factory=dict)
    order: dict[str, Any] = field(default_factory=dict)
    cells: list[dict[str, Any]] = field(default_factory=list)  # in run order
    limits: dict[str, Any] = field(default_factory=dict)
    backend: dict[str, Any] = field(default_factory=dict)
    host: dict[str, Any] = field(default_factory=dict)
    pythons: dict[str, Any] = field(default_factory=dict)
    # --target-ci runs: cell_id -> {"stop": reason or None, "repetitions", "ci_half_width",
    # "elapsed_s"} (gilbench.sampling); empty for fixed repetitions.
    sampling: dict[str, Any] = field(default_factory=dict)
    # User workloads (gilbench/userwork.py): name -> {"spec", "kind", "module", "function",
    # "origin", "files", "sha256"}; their code is in USER_CODE. Absent when none ran.
    user_workloads: dict[str, Any] = field(default_factory=dict)
    # A shard's run (gilbench/shards.py): {"index", "count", "matrix_sha256", "seed",
    # "matrix_cells", "cost_s", "cells": the whole matrix's, each with its shard}.
    shard: dict[str, Any] = field(default_factory=dict)
    # A merged run (gilbench/merge.py): {"sources": run_id -> what that run was and where
    # it ran, "hosts", "allow_mixed", "mixed", "missing", ...}. Absent in measured runs.
    merge: dict[str, Any] = field(default_factory=dict)
    schema_version: int = MANIFEST_SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        if not data["sampling"]:  # fixed repetitions: the manifest stays as it was
            del data["sampling"]
        for name in ("user_workloads", "shard", "merge"):  # absent unless used: likewise
            if not data[name]:
                del data[name]
        return {"schema_version": data.pop("schema_version"), **data, **extra}

    @classmethod
    def from_json(cls, data: Any, path: Path) -> Manifest:
        if not isinstance(data, dict):
            raise GilbenchError(f"{path} does not hold a JSON object; restore it or rerun.")
        version = data.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise GilbenchError(f"{path} has no integer schema_version; it is not a gilbench "
                                "manifest.")
        if version > MANIFEST_SCHEMA_VERSION:
            raise GilbenchError(
                f"{path} has schema_version {version}, newer than the "
                f"{MANIFEST_SCHEMA_VERSION} this gilbench reads; use the gilbench that wrote it."
            )
        if version < MANIFEST_SCHEMA_VERSION:
            raise GilbenchError(f"{path} has schema_version {version}, older than any this "
                                "gilbench can read; rerun the experiment.")
        if not isinstance(data.get("run_id"), str) or not data["run_id"]:
            raise GilbenchError(f"{path} has no run_id; restore it or rerun the experiment.")
        for name, value in data.items():
            kind = _MANIFEST_TYPES.get(name)
            if kind is not None and not isinstance(value, kind):
                raise GilbenchError(
                    f"{path}: '{name}' is a {type(value).__name__}, not what a gilbench "
                    "manifest holds there; restore it or rerun the experiment."
                )
        for name in ("cells", "pythons"):
            if name not in data:
                raise GilbenchError(f"{path} has no '{name}'; restore it or rerun the "
                                    "experiment.")
        for i, cell in enumerate(data["cells"]):
            problem = _cell_problem(cell, data["run_id"])
            if problem:
                raise GilbenchError(
                    f"{path}: cells[{i}] is not a cell gilbench can run ({problem.rstrip('.')}"
                    "); restore the manifest or rerun the experiment."
                )
        for pid, entry in data["pythons"].items():
            if not isinstance(entry, dict):
                raise GilbenchError(
                    f"{path}: pythons[{pid!r}] is a {type(entry).__name__}, not an object; "
                    "restore the manifest or rerun the experiment."
                )
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in data.items() if k in known},
                   extra={k: v for k, v in data.items() if k not in known})


def _cell_problem(cell: Any, run_id: str) -> str:
    """Why a planned cell cannot be run as it stands, or "": the catalog's checks and the
    matrix bounds, so a hand-edited manifest cannot plan what a matrix could not."""
    from gilbench.matrix import MAX_TIMEOUT_S, REPETITIONS, WORKERS

    if not isinstance(cell, dict):
        return "it is not an object"
    problems = catalog.validate_cell({**cell, "run_id": run_id})
    if problems:
        return problems[0]
    if not isinstance(cell.get("cell_id"), str) or not isinstance(cell.get("python"), str):
        return "it has no cell_id or python"
    if not WORKERS[0] <= cell["workers"] <= WORKERS[1]:
        return f"'workers' must be from {WORKERS[0]} to {WORKERS[1]}, got {cell['workers']}"
    if not all(0 <= r < REPETITIONS[1] for r in cell["repetitions"]):
        return f"'repetitions' must lie from 0 to {REPETITIONS[1] - 1}"
    if not 0 < cell["timeout_s"] <= MAX_TIMEOUT_S:  # NaN fails this too
        return f"'timeout_s' must be above 0 and at most {MAX_TIMEOUT_S:g}"
    return ""


_MANIFEST_TYPES: dict[str, type | tuple[type, ...]] = {
    "run_id": str, "started_at": str, "finished_at": (str, type(None)), "resumed_at": list,
    "tool_version": str, "experiments_hash": str, "command": str, "matrix": dict,
    "order": dict, "cells": list, "limits": dict, "backend": dict, "host": dict,
    "pythons": dict, "sampling": dict, "user_workloads": dict, "shard": dict, "merge": dict,
    "schema_version": int,
}  # fmt: skip


def read_manifest(run_dir: Path) -> Manifest:
    path = run_dir / MANIFEST
    _require_regular(path, run_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GilbenchError(
            f"{run_dir} has no {MANIFEST}, so it is not a gilbench run folder; pass a folder "
            "written by `invoke experiment`."
        ) from None
    except UnicodeDecodeError:
        raise GilbenchError(f"{path} is not UTF-8 text; restore it or rerun.") from None
    except OSError as exc:
        raise _disk_error(exc, run_dir, f"reading {MANIFEST}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GilbenchError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); restore it or rerun "
            "the experiment."
        ) from None
    return Manifest.from_json(data, path)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace(run_dir: Path, name: str, text: str) -> None:
    """Replace run_dir/name atomically: a reader sees the old file or the new one."""
    tmp = None
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{name}.", dir=run_dir)
        tmp = Path(temporary)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(run_dir / name)
        tmp = None
        _fsync_dir(run_dir)
    except OSError as exc:
        raise _disk_error(exc, run_dir, f"writing {name}") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def write_manifest(run_dir: Path, manifest: Manifest) -> None:
    """Replace manifest.json atomically: a reader sees the old one or the new one."""
    _replace(run_dir, MANIFEST, json.dumps(manifest.to_json(), indent=2, allow_nan=False) + "\n")


def write_new_run(dest: Path, manifest: Manifest, records: list[Record],
                  harness_from: Path | None, user_files: dict[str, bytes] | None = None,
                  if_taken: str = "choose another name with -o, or remove it") -> Path:
    """A new run folder `dest` holding these records and this manifest, from records made
    elsewhere (a merge; a Kubernetes pod's or Swarm task's log), all or nothing: everything
    is written into a dot-folder beside it, manifest last, and renamed into place, so a
    writer killed halfway leaves no folder that looks like a run (`newest` skips
    dot-folders) and an existing `dest` is never touched."""
    if dest.exists():
        raise GilbenchError(f"{dest} already exists; {if_taken}.")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.merging-", dir=dest.parent))
    except OSError as exc:
        raise _disk_error(exc, dest.parent, "creating the merged run's folder") from None
    try:
        _replace(staging, RECORDS, "".join(
            json.dumps(r, sort_keys=True, allow_nan=False) + "\n" for r in records))
        if harness_from is not None:
            save_harness(staging, harness_from)
        if user_files:
            save_user_code(staging, user_files)
        write_manifest(staging, manifest)
        try:
            staging.rename(dest)  # refuses a dest that appeared meanwhile (unless empty)
        except OSError as exc:
            raise _disk_error(exc, dest.parent, f"moving the merged run to {dest.name}") from None
        _fsync_dir(dest.parent)
    except DiskError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        # The staging folder is gone, so the run-folder advice (resume it) would mislead.
        full = isinstance(exc, DiskFull)
        raise type(exc)(
            f"Writing {dest} failed ({'the disk is full' if full else exc}); nothing was "
            f"kept{': free some space and' if full else ';'} run the same command again."
        ) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest


def copy_run(run_dir: Path, dest: Path, pythons: set[str]) -> Path:
    """A run folder at `dest` holding only these pythons' cells and valid records (the
    original untouched): reproduce compares against the part of a run this host can run."""
    manifest = read_manifest(run_dir)
    records = [r for r in read_records(run_dir).records if r["python"] in pythons]
    manifest.cells = [c for c in manifest.cells if c["python"] in pythons]
    manifest.pythons = {k: v for k, v in manifest.pythons.items() if k in pythons}
    manifest.backend = {k: v for k, v in manifest.backend.items() if k in pythons}
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _disk_error(exc, dest, "creating the folder") from None
    _replace(dest, RECORDS, "".join(json.dumps(r, sort_keys=True, allow_nan=False) + "\n"
                                    for r in records))
    write_manifest(dest, manifest)
    return dest


# --- records -------------------------------------------------------------------------------

def _v0_to_v1(record: Record) -> Record:
    """v0 (the draft before docs/contract.md) timed no teardown, so it had no teardown_s
    or total_s, and no transport; end-to-end time is unknown rather than startup + wall."""
    upgraded = dict(record)
    upgraded.setdefault("teardown_s", None)
    upgraded.setdefault("total_s", None)
    upgraded.setdefault("transport", None)
    upgraded["schema_version"] = 1
    return upgraded


def _v1_to_v2(record: Record) -> Record:
    """v1 did not watch the host (whether others used the CPU is unknown, not 'no') and
    ran all repetitions of a cell in one block, not in rounds."""
    upgraded = dict(record)
    for name in (*schema.CONTENTION, "round", "attempt"):
        upgraded.setdefault(name, None)
    upgraded["schema_version"] = 2
    return upgraded


def _v2_to_v3(record: Record) -> Record:
    """v2 did not sample PSS (experiments/memory.py): what the run held is unknown."""
    upgraded = dict(record)
    for name in schema.MEMORY:
        upgraded.setdefault(name, None)
    upgraded["schema_version"] = 3
    return upgraded


# version -> function turning a record of that version into one of the next version.
UPGRADES: dict[int, Callable[[Record], Record]] = {0: _v0_to_v1, 1: _v1_to_v2, 2: _v2_to_v3}


def _oldest_readable() -> int:
    version = RECORD_SCHEMA_VERSION
    while version - 1 in UPGRADES:
        version -= 1
    return version


def _upgraded(record: Any) -> tuple[Record | None, str]:
    """(the record at the current schema version, "") or (None, why it is damaged)."""
    if not isinstance(record, dict):
        return None, "it is not a JSON object"
    version = record.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        return None, "it has no integer schema_version"
    if version > RECORD_SCHEMA_VERSION:
        return None, (f"its schema_version {version} is newer than the {RECORD_SCHEMA_VERSION} "
                      "this gilbench reads")
    if version < _oldest_readable():
        return None, f"its schema_version {version} is older than any this gilbench upgrades"
    while record["schema_version"] < RECORD_SCHEMA_VERSION:
        record = UPGRADES[record["schema_version"]](record)
    record = schema.filled(record)  # late fields of this version (canary): null when absent
    problems = schema.problems(record)
    return (None, "; ".join(problems)) if problems else (record, "")


@dataclass
class Records:
    """What records.jsonl holds: valid records in file order, and what was not one."""

    path: Path
    records: list[Record] = field(default_factory=list)
    damaged: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)
    torn_tail: int = 0  # bytes after the last newline

    def warnings(self) -> list[str]:
        found = []
        if self.damaged:
            shown = "; ".join(f"line {n}: {why}" for n, why in self.damaged[:5])
            more = f" (and {len(self.damaged) - 5} more)" if len(self.damaged) > 5 else ""
            found.append(
                f"{len(self.damaged)} damaged line(s) in {self.path} were left out ({shown}"
                f"{more}); `invoke experiment --resume {self.path.parent.name}` measures "
                "those repetitions again."
            )
        if self.torn_tail:
            found.append(
                f"Ignored an unfinished last line ({self.torn_tail} bytes) of {self.path}: the "
                "run was interrupted while writing it."
            )
        return found


def read_records(run_dir: Path) -> Records:
    path = run_dir / RECORDS
    result = Records(path)
    _require_regular(path, run_dir)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return result
    except OSError as exc:
        raise _disk_error(exc, run_dir, f"reading {RECORDS}") from None
    complete, _, tail = data.rpartition(b"\n")
    result.torn_tail = len(tail)
    if not complete and not data.endswith(b"\n"):
        return result
    for number, raw in enumerate(complete.split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            parsed = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            result.damaged.append((number, "it is not UTF-8 text"))
            continue
        except json.JSONDecodeError as exc:
            result.damaged.append((number, f"it is not valid JSON ({exc.msg})"))
            continue
        record, why = _upgraded(parsed)
        if record is None:
            result.damaged.append((number, why))
        else:
            result.records.append(record)
    return result


def _end_of_last_line(fd: int, size: int, chunk: int = 1 << 20) -> int:
    """The offset just after the file's last newline (0 if it has none), read backwards
    in chunks: a torn tail of any length is cut, never a complete record."""
    end = size
    while end > 0:
        start = max(0, end - chunk)
        block = os.pread(fd, end - start, start)
        newline = block.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        end = start
    return 0


def _require_regular(path: Path, run_dir: Path) -> None:
    """A FIFO or a device in the run folder would block or never end: refuse it."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise GilbenchError(
            f"{path} is not a regular file, so it is not part of a gilbench run; move it away "
            f"and restore the run's {path.name}."
        )


class RecordWriter:
    """Appends records, each made durable before append() returns. Opening it cuts a torn
    tail back to the last complete record, so new records never follow a broken line.
    Unbuffered on purpose: after a failed write nothing may linger in a buffer that a
    later flush (or close) would append as a torn line."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        path = run_dir / RECORDS
        try:
            _require_regular(path, run_dir)
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            size = os.fstat(self.fd).st_size
            keep = _end_of_last_line(self.fd, size)
            if keep != size:
                os.ftruncate(self.fd, keep)
                os.fsync(self.fd)
            self.size = keep
        except OSError as exc:
            raise _disk_error(exc, run_dir, f"opening {RECORDS}") from None

    def append(self, record: Record) -> None:
        line = memoryview((json.dumps(record, sort_keys=True, allow_nan=False) + "\n").encode())
        try:
            written = 0
            while written < len(line):
                written += os.write(self.fd, line[written:])
            os.fsync(self.fd)
        except OSError as exc:
            # Take back the part of the line that reached the file, so the last line on
            # disk is a complete record (best effort: the torn-tail rule covers the rest).
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.size)
                os.fsync(self.fd)
            raise _disk_error(exc, self.run_dir, f"appending to {RECORDS}") from None
        self.size += len(line)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


# --- what is done, what is missing -----------------------------------------------------------

def contended_cells(manifest: Manifest, records: list[Record], retries: int) -> list[dict[
        str, Any]]:
    """Repetitions to measure again: every attempt so far was ok but contended, and fewer
    than 1 + retries attempts were made. One spec per cell and attempt number."""
    attempts: dict[tuple[str, int], list[Record]] = {}
    for record in records:
        attempts.setdefault((record["cell_id"], record["repetition"]), []).append(record)
    again = []
    for cell in manifest.cells:
        by_attempt: dict[int, list[int]] = {}
        for repetition in cell["repetitions"]:
            tried = attempts.get((cell["cell_id"], repetition), [])
            if tried and len(tried) <= retries and all(
                    r["status"] == "ok" and r["contended"] for r in tried):
                by_attempt.setdefault(len(tried), []).append(repetition)
        again += [{**cell, "repetitions": reps, "attempt": attempt}
                  for attempt, reps in sorted(by_attempt.items())]
    return again


@dataclass(frozen=True)
class Samples:
    """A cell's records as the statistics see them (the report's rule, load.py)."""

    quiet: list[float]  # wall_s of each repetition's first quiet ok attempt
    measured: int  # repetitions with at least one record
    any_ok: bool  # some attempt measured ok, contended or not


def samples_by_cell(records: list[Record]) -> dict[str, Samples]:
    """Per cell: a repetition counts once, with its first quiet (not contended) ok attempt,
    the same rule the report applies (report/load.py, _one_record_per_repetition)."""
    attempts: dict[str, dict[int, list[Record]]] = {}
    for record in records:
        attempts.setdefault(record["cell_id"], {}).setdefault(
            record["repetition"], []).append(record)
    samples = {}
    for cell_id, repetitions in attempts.items():
        quiet = []
        for tried in repetitions.values():
            calm = [r for r in tried if r["status"] == "ok" and not r.get("contended")]
            if calm:
                quiet.append(float(min(calm, key=lambda r: r.get("attempt") or 0)["wall_s"]))
        any_ok = any(r["status"] == "ok" for tried in repetitions.values() for r in tried)
        samples[cell_id] = Samples(quiet, len(repetitions), any_ok)
    return samples


def pending_cells(manifest: Manifest, records: list[Record]) -> list[dict[str, Any]]:
    """The manifest's cells, each with only the repetitions that have no valid record."""
    done: dict[str, set[int]] = {}
    for record in records:
        done.setdefault(record["cell_id"], set()).add(record["repetition"])
    pending = []
    for cell in manifest.cells:
        missing = [r for r in cell["repetitions"] if r not in done.get(cell["cell_id"], set())]
        if missing:
            pending.append({**cell, "repetitions": missing})
    return pending


@dataclass(frozen=True)
class Completeness:
    planned: int  # repetitions the manifest plans
    missing: int  # planned repetitions without a valid record
    finished: bool  # the manifest says the run ended
    running: str | None  # who holds the run's lock now, if anyone
    # A merged run's own sentence (gilbench/merge.py): the cells and shards it lacks.
    merged: str = ""

    @property
    def partial(self) -> bool:
        return self.missing > 0 or not self.finished or bool(self.merged)

    def sentence(self, run_id: str) -> str:
        """'' for a complete run; otherwise what is missing and how to finish it."""
        if not self.partial:
            return ""
        if self.merged:  # a merge is not resumed: its sources are
            return self.merged
        if self.running:
            return (f"Run {run_id} is still running ({self.running}); {self.missing} of "
                    f"{self.planned} repetitions have no record yet, so this report is partial.")
        return (f"Run {run_id} is incomplete: {self.missing} of {self.planned} planned "
                f"repetitions have no record, so this report is partial; finish it with "
                f"`invoke experiment --resume {run_id}`.")


def completeness(run_dir: Path, manifest: Manifest, records: list[Record]) -> Completeness:
    missing = sum(len(cell["repetitions"]) for cell in pending_cells(manifest, records))
    planned = sum(len(cell["repetitions"]) for cell in manifest.cells)
    return Completeness(planned, missing, manifest.finished_at is not None, holder(run_dir),
                        str(manifest.merge.get("partial") or ""))


# --- the lock ------------------------------------------------------------------------------

def holder(run_dir: Path) -> str | None:
    """Who holds the run's lock ('process 1234 on host, since ...'), or None."""
    try:
        fd = os.open(run_dir / LOCK, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        with contextlib.suppress(OSError):
            text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
            return text or "another process"
        return "another process"
    finally:
        os.close(fd)
    return None


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold the run for this process; a second one is refused with the holder's PID."""
    try:
        fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise _disk_error(exc, run_dir, f"creating {LOCK}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
            raise GilbenchError(
                f"Run {run_dir.name} is in use by {who}; wait for it to finish, or stop that "
                "process and resume the run."
            ) from None
        me = f"process {os.getpid()} on {os.uname().nodename}, since {now()}"
        with contextlib.suppress(OSError):  # the name is a courtesy; the flock is the lock
            os.ftruncate(fd, 0)
            os.pwrite(fd, me.encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock
