"""The export archive, `<run-id>.gilbench.tar.gz`: the one module that writes and reads it.

One gzip-compressed tar holding, under one top folder `<run-id>.gilbench/`
(docs/archive-format.md):

- `EXPORT.json`: what the archive is (kind, schema_version) and, per python, whether the
  archive can rebuild it;
- `run/`: the run folder as runfolder reads it (manifest, records, report outputs), with
  `run/userwork/`, the code of its user workloads, checked against the manifest's sha256;
- `experiments/`: the target code that measured the run (its hash is the manifest's);
- `recipes/<name>/`: the build recipe of every python that gilbench built from a recipe
  this checkout still has, with its build record and version-lock entry;
- `matrix.toml`: the matrix as given;
- `SHA256SUMS`: `<sha256>  <path>` for every other member (`sha256sum -c` reads it).

The writer and the reader share the names and the rules below. `unpack` verifies the
whole archive before it writes anything, then extracts into a temporary folder inside
the destination and renames it into place, so a refusal leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from gilbench import __version__, runfolder
from gilbench.errors import GilbenchError
from gilbench.paths import DOCKER_DIR, EXPERIMENTS_DIR, RECIPE_FILES

SCHEMA_VERSION = 1
KIND = "gilbench-export"
SUFFIX = ".gilbench.tar.gz"
EXPORT = "EXPORT.json"
SUMS = "SHA256SUMS"
RUN = "run"
EXPERIMENTS = "experiments"
RECIPES = "recipes"
MATRIX = "matrix.toml"
BUILD = "build.json"
LOCK_ENTRY = "lock-entry.json"
# The run folder's files that travel (run.lock and cells-pending.jsonl do not: they
# describe a process on this host), and its folders of derived files.
RUN_FILES = (runfolder.MANIFEST, runfolder.RECORDS, "driver.log", "report.md",
             "report.html", "summary.csv", "summary.parquet")
RUN_FOLDERS = ("plots",)
# Beside the files that make the recipe hash: the base image's recipe (the base image's
# id, also part of a build's identity, is in the build record).
BASE_RECIPE = "make-base.sh"

_SUM_LINE = re.compile(r"^([0-9a-f]{64})  (.+)$")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Unpacked:
    root: Path  # the folder it was unpacked into (dest/<top folder>)
    run_dir: Path  # root / "run": a run folder runfolder.read_manifest/read_records read
    experiments_dir: Path  # root / "experiments"
    experiments_hash: str  # recomputed from experiments_dir; equals the manifest's
    recipes: dict[str, Path]  # python id -> recipe folder (only rebuildable pythons)
    export: dict[str, Any]  # EXPORT.json


@dataclass(frozen=True)
class Exported:
    """What `export_run` wrote, for the task to tell."""

    path: Path
    partial: str  # the completeness sentence; "" for a complete run
    not_rebuildable: dict[str, str] = field(default_factory=dict)  # python label -> why


# --- hashes shared by writer and reader ------------------------------------------------------

def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree_hash(files: dict[str, bytes]) -> str:
    """gilbench.run.experiments_hash() over in-memory files (path relative to the tree ->
    bytes): the same digest, so an archive's experiments/ is checked before extraction.
    Sorted as this Python's pathlib sorts paths, as experiments_hash does."""
    digest = hashlib.sha256()
    chosen = [(PurePosixPath(name), data) for name, data in files.items()
              if name.endswith(".py") and "__pycache__" not in PurePosixPath(name).parts]
    for path, data in sorted(chosen, key=lambda item: item[0]):
        digest.update(str(path).encode() + b"\0" + data + b"\0")
    return digest.hexdigest()


def recipe_digest(files: dict[str, bytes]) -> str:
    """gilbench.buildspec.recipe_hash() over in-memory recipe files (name -> bytes)."""
    digest = hashlib.sha256()
    for name in RECIPE_FILES:
        digest.update(name.encode() + b"\0" + files[name] + b"\0")
    return digest.hexdigest()


def sums_text(members: dict[str, bytes]) -> str:
    """SHA256SUMS: one `<sha256>  <path>` line per member, sorted by path."""
    return "".join(f"{_sha256(data)}  {name}\n" for name, data in sorted(members.items()))


# --- export --------------------------------------------------------------------------------

def default_name(run_id: str) -> str:
    return f"{run_id}{SUFFIX}"


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise GilbenchError(f"Cannot read {path} for the export ({exc.strerror or exc}); "
                            f"check the {what}'s files and permissions.") from None


def _regular(path: Path) -> bool:
    """A regular file, not followed through a link (a FIFO would block the export)."""
    return path.is_file() and not path.is_symlink()


def _tree_files(root: Path) -> dict[str, bytes]:
    """Every regular file under root (bytecode caches aside), by relative POSIX path."""
    files = {}
    for path in sorted(root.rglob("*")):
        if "__pycache__" in path.parts or path.suffix == ".pyc" or not _regular(path):
            continue
        files[path.relative_to(root).as_posix()] = _read(path, "experiments tree")
    return files


def _run_files(run_dir: Path) -> dict[str, bytes]:
    files = {}
    for name in RUN_FILES:
        path = run_dir / name
        if _regular(path):
            data = _read(path, "run folder")
            if name == runfolder.RECORDS:
                # Only newline-terminated lines are records (docs/run-format.md): a torn
                # tail of a killed or running run stays behind.
                data = data[:data.rfind(b"\n") + 1]
            files[name] = data
    for folder in RUN_FOLDERS:
        if (run_dir / folder).is_dir() and not (run_dir / folder).is_symlink():
            for path in sorted((run_dir / folder).rglob("*")):
                if _regular(path):
                    files[path.relative_to(run_dir).as_posix()] = _read(path, "run folder")
    return files


def _experiments(run_dir: Path, manifest: runfolder.Manifest) -> tuple[dict[str, bytes], str]:
    """The experiments/ tree that measured the run, and where it came from."""
    from gilbench.run import experiments_hash

    harness = runfolder.harness(run_dir)
    if harness is not None:
        if experiments_hash(harness) != manifest.experiments_hash:
            raise GilbenchError(
                f"Run {manifest.run_id}'s copy of experiments/ ({harness}) no longer hashes to "
                "the manifest's experiments_hash, so it was changed after the run; restore "
                "it, or rerun the experiment and export the new run."
            )
        return _tree_files(harness), "run folder"
    if experiments_hash() == manifest.experiments_hash:
        return _tree_files(EXPERIMENTS_DIR), "checkout"
    raise GilbenchError(
        f"Run {manifest.run_id} has no copy of the experiments/ tree that measured it and "
        "this checkout's experiments/ has changed since, so its code cannot be exported; "
        "export it from a checkout of the commit that ran it, or rerun the experiment."
    )


def _user_workload_files(manifest: runfolder.Manifest, files: dict[str, bytes],
                         where: str) -> dict[str, bytes]:
    """The files of each user workload the manifest names, checked against its sha256."""
    from gilbench.userwork import recorded

    codes = recorded(manifest.user_workloads, files, Path(runfolder.USER_CODE), where)
    return {name: data for code in codes for name, data in code.files.items()}


def _user_code(run_dir: Path, manifest: runfolder.Manifest) -> dict[str, bytes]:
    """The run's copy of its user workloads' code (run/userwork/ in the archive)."""
    if not manifest.user_workloads:
        return {}
    folder = runfolder.user_code(run_dir)
    files = _tree_files(folder) if folder is not None else {}
    return _user_workload_files(manifest, files, f"Run {manifest.run_id}")


def _lock_entry(build: dict[str, Any]) -> dict[str, Any]:
    """The version lock's entry for the build's version, as docker/versions.toml has it."""
    from gilbench.versions import Lock

    with contextlib.suppress(GilbenchError):
        release = Lock.load(DOCKER_DIR / "versions.toml").get(str(build.get("version")))
        if release is not None and release.sha256 == build.get("sha256"):
            return {"version": release.version, "url": release.url,
                    "sha256": release.sha256, "in_lock": True}
    # Built from a tarball the lock does not list (--source): the build record's SHA-256
    # still names the one source that rebuilds it.
    return {"version": build.get("version"), "url": None, "sha256": build.get("sha256"),
            "in_lock": False}


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()


def _recipe_files() -> dict[str, bytes]:
    files = {name: _read(DOCKER_DIR / name, "recipe") for name in RECIPE_FILES}
    if _regular(DOCKER_DIR / BASE_RECIPE):
        files[BASE_RECIPE] = _read(DOCKER_DIR / BASE_RECIPE, "recipe")
    return files


def _pythons(manifest: runfolder.Manifest) -> tuple[dict[str, Any], dict[str, bytes]]:
    """EXPORT.json's pythons and the recipes/ members."""
    current = _recipe_files()
    current_hash = recipe_digest(current)
    pythons: dict[str, Any] = {}
    members: dict[str, bytes] = {}
    used: set[str] = set()
    for python_id, entry in manifest.pythons.items():
        entry = entry if isinstance(entry, dict) else {}
        build = entry.get("build")
        build = build if isinstance(build, dict) else None
        info: dict[str, Any] = {
            "kind": entry.get("kind"), "label": entry.get("label"),
            "version": entry.get("version"), "variant": entry.get("variant"),
            "gil_disabled": entry.get("gil_disabled"), "config_args": entry.get("config_args"),
            "executable": entry.get("executable"), "image": entry.get("image"),
            "sha256": entry.get("sha256"),
        }
        if build is None:
            info.update(rebuildable=False, reason=(
                f"{entry.get('executable')} is an interpreter given by path, not built by "
                "gilbench, so no recipe rebuilds it; reproduce needs the same interpreter "
                "on the other host"))
            pythons[python_id] = info
            continue
        info.update({
            "backend": build.get("backend"), "recipe_hash": build.get("recipe_hash"),
            "base": build.get("base"), "base_image": build.get("base_image"),
            "configure_args_requested": build.get("configure_args_requested"),
        })
        if build.get("recipe_hash") != current_hash:
            info.update(rebuildable=False, reason=(
                f"the recipe that built it (recipe hash {str(build.get('recipe_hash'))[:12]}) "
                f"is not the one in this checkout's docker/ ({current_hash[:12]}), so the "
                "archive does not hold it"))
            pythons[python_id] = info
            continue
        name = _SAFE_NAME.sub("_", str(build.get("name") or python_id)).strip("._") or "python"
        folder, n = name, 1
        while folder in used:
            n += 1
            folder = f"{name}-{n}"
        used.add(folder)
        prefix = f"{RECIPES}/{folder}/"
        members.update({prefix + file: data for file, data in current.items()})
        members[prefix + BUILD] = _json_bytes(build)
        members[prefix + LOCK_ENTRY] = _json_bytes(_lock_entry(build))
        info.update(rebuildable=True, recipe=f"{RECIPES}/{folder}")
        pythons[python_id] = info
    return pythons, members


def destination(out: Path | None, run_dir: Path, name: str, looks_right: Any) -> Path:
    """out as given: None -> beside the run folder; an existing folder -> name inside it.
    An existing file is replaced only when it is an export of the same kind."""
    target = run_dir.parent / name if out is None else out
    if target.is_dir():
        target = target / name
    if target.exists() and not (target.is_file() and looks_right(target)):
        raise GilbenchError(
            f"{target} already exists and is not an export gilbench wrote, so it is left "
            "alone; give another -o or move it away."
        )
    from gilbench.paths import ensure_dir

    ensure_dir(target.parent, "export folder", "-o")
    return target


def write_atomically(target: Path, write: Any) -> None:
    """write(handle) into a temp file beside target, fsync, rename: a reader sees the old
    file or the new one, and a failure leaves neither half of one nor a temp file."""
    tmp = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                        dir=target.parent)
        tmp = Path(tmp_name)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(target)
        tmp = None
        with contextlib.suppress(OSError):
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except OSError as exc:
        raise GilbenchError(f"Writing {target} failed ({exc.strerror or exc}); free some space "
                            "or choose another place with -o.") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _write_tar(handle: Any, top: str, members: dict[str, bytes], mtime: int) -> None:
    with gzip.GzipFile(fileobj=handle, mode="wb", mtime=mtime, filename="") as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mtime, info.mode = len(data), mtime, 0o644
            tar.addfile(info, io.BytesIO(data))


def export_run(run_dir: Path, out: Path | None = None) -> Exported:
    """Write the run as one archive (module docstring); return where and what to tell."""
    manifest = runfolder.read_manifest(run_dir)
    loaded = runfolder.read_records(run_dir)
    state = runfolder.completeness(run_dir, manifest, loaded.records)
    partial = state.sentence(manifest.run_id)
    members: dict[str, bytes] = {
        f"{RUN}/{name}": data for name, data in _run_files(run_dir).items()}
    tree, origin = _experiments(run_dir, manifest)
    members.update({f"{EXPERIMENTS}/{name}": data for name, data in tree.items()})
    members.update({f"{RUN}/{runfolder.USER_CODE}/{name}": data
                    for name, data in _user_code(run_dir, manifest).items()})
    matrix_text = manifest.matrix.get("text")
    if isinstance(matrix_text, str):
        members[MATRIX] = matrix_text.encode()
    pythons, recipes = _pythons(manifest)
    members.update(recipes)
    for name in members:
        if "\n" in name or "\\" in name:
            raise GilbenchError(f"{run_dir / name} has a newline or backslash in its name, "
                                "which SHA256SUMS cannot list; rename it and export again.")
    export = {
        "schema_version": SCHEMA_VERSION, "kind": KIND, "run_id": manifest.run_id,
        "tool_version": __version__, "run_tool_version": manifest.tool_version,
        "created_at": runfolder.now(), "experiments_hash": manifest.experiments_hash,
        "experiments_from": origin, "complete": not state.partial, "completeness": partial,
        "records": {"valid": len(loaded.records), "damaged": len(loaded.damaged)},
        "pythons": pythons,
    }
    members = {EXPORT: _json_bytes(export), **dict(sorted(members.items()))}
    members[SUMS] = sums_text(members).encode()
    name = default_name(manifest.run_id)
    target = destination(out, run_dir, name, is_archive)
    top = f"{manifest.run_id}.gilbench"
    write_atomically(target, lambda handle: _write_tar(handle, top, members, int(time.time())))
    reasons = {str(info.get("label") or pid): info["reason"]
               for pid, info in pythons.items() if not info["rebuildable"]}
    return Exported(target, partial, reasons)


def export(run_dir: Path, out: Path | None = None) -> Path:
    """The archive of run_dir, at out (a file, or a folder to hold <run-id>.gilbench.tar.gz;
    default: beside the run folder). Returns its path."""
    return export_run(run_dir, out).path


# --- reading -------------------------------------------------------------------------------

def is_archive(path: Path) -> bool:
    """A file that looks like a gilbench export: gzip, and a tar whose first member is
    <top>/EXPORT.json. Reads only the start of the file; proves nothing (unpack verifies)."""
    try:
        if not path.is_file():
            return False
        with path.open("rb") as handle:
            if handle.read(2) != _GZIP_MAGIC:
                return False
        with tarfile.open(path, "r:gz") as tar:
            first = tar.next()
    except (OSError, tarfile.TarError, EOFError, zlib.error):
        return False
    return first is not None and first.isreg() and first.name.count("/") == 1 \
        and first.name.endswith("/" + EXPORT)


@dataclass
class _Scan:
    """An archive read once, nothing written: its top folder, each file member's SHA-256,
    and the bytes of the members unpack checks (EXPORT.json, SHA256SUMS, the manifest,
    the experiments' .py files, the recipes)."""

    top: str = ""
    hashes: dict[str, str] = field(default_factory=dict)
    kept: dict[str, bytes] = field(default_factory=dict)


def _keep(name: str) -> bool:
    return (name in (EXPORT, SUMS, f"{RUN}/{runfolder.MANIFEST}")
            or (name.startswith(f"{EXPERIMENTS}/") and name.endswith(".py"))
            or name.startswith(f"{RUN}/{runfolder.USER_CODE}/")
            or name.startswith(f"{RECIPES}/"))


def _member_name(archive: Path, member: tarfile.TarInfo) -> list[str]:
    """The member's path parts, or a refusal when it could land outside its folder."""
    name = member.name
    if member.issym() or member.islnk():
        kind = "symbolic" if member.issym() else "hard"
        raise GilbenchError(
            f"{archive} is refused: member {name} is a {kind} link (to {member.linkname}), "
            "which a gilbench export never holds; nothing was unpacked.")
    if not (member.isreg() or member.isdir()):
        raise GilbenchError(
            f"{archive} is refused: member {name} is a device, FIFO or other special file, "
            "which a gilbench export never holds; nothing was unpacked.")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise GilbenchError(
            f"{archive} is refused: member {name} has an absolute path, which would unpack "
            "outside its folder; nothing was unpacked.")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts or "\\" in name:
        raise GilbenchError(
            f"{archive} is refused: member {name} climbs out of its folder ('..'), which a "
            "gilbench export never does; nothing was unpacked.")
    if not parts:
        raise GilbenchError(f"{archive} is refused: it has a member with an empty name; "
                            "nothing was unpacked.")
    return parts


def _not_an_export(archive: Path, why: str) -> GilbenchError:
    return GilbenchError(f"{archive} is not a gilbench export ({why}); give a file written by "
                         "`invoke export RUN`.")


def _scan(archive: Path) -> _Scan:
    if not archive.exists():
        raise GilbenchError(f"There is no file {archive}; give the path of an archive written "
                            "by `invoke export RUN`.")
    if archive.is_dir():
        raise _not_an_export(archive, "it is a folder")
    scan = _Scan()
    damaged = _not_an_export(archive, "it is not a complete gzip-compressed tar archive: "
                                      "not one at all, or truncated or damaged")
    try:
        with archive.open("rb") as handle:
            if handle.read(2) != _GZIP_MAGIC:
                raise _not_an_export(archive, "it is not gzip-compressed")
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                parts = _member_name(archive, member)
                if scan.top and parts[0] != scan.top:
                    raise GilbenchError(
                        f"{archive} is refused: member {member.name} is outside its one top "
                        f"folder {scan.top}/; nothing was unpacked.")
                scan.top = parts[0]
                if member.isdir():
                    continue
                if len(parts) == 1:
                    raise GilbenchError(
                        f"{archive} is refused: member {member.name} lies outside a top "
                        "folder; nothing was unpacked.")
                name = "/".join(parts[1:])
                if name in scan.hashes:
                    raise GilbenchError(
                        f"{archive} is refused: member {member.name} appears twice, so one "
                        "copy would hide the other; nothing was unpacked.")
                source = tar.extractfile(member)
                assert source is not None  # a regular file
                digest, keep = hashlib.sha256(), _keep(name)
                chunks = []
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    if keep:
                        chunks.append(chunk)
                scan.hashes[name] = digest.hexdigest()
                if keep:
                    scan.kept[name] = b"".join(chunks)
            # Read to the end of the gzip stream, so its length and CRC are checked too.
            assert tar.fileobj is not None
            while tar.fileobj.read(_CHUNK):
                pass
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile):
        raise damaged from None
    except OSError as exc:
        raise GilbenchError(f"Cannot read {archive} ({exc.strerror or exc}); check the file "
                            "and its permissions.") from None
    if not scan.hashes:
        raise _not_an_export(archive, "it holds no files")
    return scan


def _json_member(archive: Path, scan: _Scan, name: str) -> Any:
    try:
        return json.loads(scan.kept[name].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise GilbenchError(f"{archive} is refused: its {name} is not valid JSON; nothing was "
                            "unpacked.") from None


def _check_export(archive: Path, scan: _Scan) -> dict[str, Any]:
    if EXPORT not in scan.kept:
        raise _not_an_export(archive, f"it has no {EXPORT}")
    export = _json_member(archive, scan, EXPORT)
    if not isinstance(export, dict) or export.get("kind") != KIND:
        raise _not_an_export(archive, f"its {EXPORT} is not of kind {KIND}")
    version = export.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _not_an_export(archive, f"its {EXPORT} has no valid schema_version")
    if version > SCHEMA_VERSION:
        raise GilbenchError(
            f"{archive} is an export of schema_version {version}, newer than the "
            f"{SCHEMA_VERSION} this gilbench reads; unpack it with the newer gilbench that "
            "wrote it.")
    if not isinstance(export.get("pythons"), dict):
        raise _not_an_export(archive, f"its {EXPORT} has no pythons")
    return export


def _check_sums(archive: Path, scan: _Scan) -> dict[str, str]:
    if SUMS not in scan.kept:
        raise GilbenchError(f"{archive} is refused: it has no {SUMS}, so its members cannot be "
                            "verified; nothing was unpacked.")
    listed: dict[str, str] = {}
    for number, line in enumerate(scan.kept[SUMS].decode("utf-8", "replace").splitlines(), 1):
        match = _SUM_LINE.match(line)
        if not match:
            raise GilbenchError(f"{archive} is refused: line {number} of its {SUMS} is not "
                                "'<sha256>  <path>'; nothing was unpacked.")
        listed[match.group(2)] = match.group(1)
    for name in scan.hashes:
        if name != SUMS and name not in listed:
            raise GilbenchError(
                f"{archive} is refused: member {scan.top}/{name} is not listed in {SUMS} (an "
                "extra member, added after the export); nothing was unpacked.")
    for name, digest in listed.items():
        if name not in scan.hashes:
            raise GilbenchError(
                f"{archive} is refused: {SUMS} lists {scan.top}/{name}, which the archive "
                "does not hold; nothing was unpacked.")
        if scan.hashes[name] != digest:
            raise GilbenchError(
                f"{archive} is refused: member {scan.top}/{name} does not match its SHA-256 in "
                f"{SUMS}, so it was changed after the export; nothing was unpacked.")
    return listed


def _check_contents(archive: Path, scan: _Scan, export: dict[str, Any]) -> str:
    """The manifest reads, the experiments hash to it, each recipe hashes to its build."""
    manifest_name = f"{RUN}/{runfolder.MANIFEST}"
    if manifest_name not in scan.kept:
        raise _not_an_export(archive, f"it has no {manifest_name}")
    manifest = runfolder.Manifest.from_json(_json_member(archive, scan, manifest_name),
                                            Path(scan.top) / manifest_name)
    prefix = f"{EXPERIMENTS}/"
    found = tree_hash({name[len(prefix):]: data for name, data in scan.kept.items()
                       if name.startswith(prefix)})
    if found != manifest.experiments_hash or found != export.get("experiments_hash"):
        raise GilbenchError(
            f"{archive} is refused: its experiments/ tree does not hash to the run's "
            f"experiments_hash ({manifest.experiments_hash[:12]}), so it is not the code that "
            "measured the run; nothing was unpacked.")
    prefix = f"{RUN}/{runfolder.USER_CODE}/"
    _user_workload_files(manifest, {name[len(prefix):]: data for name, data in
                                    scan.kept.items() if name.startswith(prefix)},
                         f"{archive} is refused (nothing was unpacked)")
    for python_id, info in export["pythons"].items():
        if not (isinstance(info, dict) and info.get("rebuildable")):
            continue
        folder = str(info.get("recipe", ""))
        files = {name[len(folder) + 1:]: data for name, data in scan.kept.items()
                 if name.startswith(folder + "/")}
        try:
            build = json.loads(files[BUILD])
            matches = recipe_digest(files) == build.get("recipe_hash")
        except (KeyError, ValueError, AttributeError):
            matches = False
        if not folder.startswith(f"{RECIPES}/") or not matches:
            raise GilbenchError(
                f"{archive} is refused: the recipe of {python_id} ({folder or 'none named'}) "
                f"is missing or does not hash to its {BUILD}'s recipe_hash; nothing was "
                "unpacked.")
    return found


def verify(archive: Path) -> tuple[_Scan, dict[str, Any], str]:
    """Everything unpack checks, reading the archive only: (scan, EXPORT.json, hash)."""
    scan = _scan(archive)
    export = _check_export(archive, scan)
    _check_sums(archive, scan)
    return scan, export, _check_contents(archive, scan, export)


def _check_extracted(archive: Path, root: Path, scan: _Scan) -> None:
    """What landed on disk is what was verified (the file could change between reads)."""
    on_disk = {path.relative_to(root).as_posix(): path for path in root.rglob("*")
               if not path.is_dir()}
    if set(on_disk) != set(scan.hashes) or any(
            path.is_symlink() or _file_sha256(path) != scan.hashes[name]
            for name, path in on_disk.items()):
        raise GilbenchError(f"{archive} changed while it was unpacked; nothing was unpacked, "
                            "unpack it again.")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def unpack(archive: Path, dest: Path) -> Unpacked:
    """Verify the archive in full, then unpack it into dest/<top folder>. Any refusal is one
    GilbenchError sentence and leaves nothing in dest."""
    from gilbench.run import experiments_hash

    scan, export, digest = verify(archive)
    final = dest / scan.top
    if final.exists() or final.is_symlink():
        raise GilbenchError(f"{final} already exists; unpack {archive.name} into another "
                            "folder or move that one away.")
    created = not dest.exists()
    tmp: Path | None = None
    try:
        dest.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".gilbench-unpack-", dir=dest))
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(tmp, filter="data")
        _check_extracted(archive, tmp / scan.top, scan)
        if experiments_hash(tmp / scan.top / EXPERIMENTS) != digest:
            raise GilbenchError(f"{archive} changed while it was unpacked; nothing was "
                                "unpacked, unpack it again.")
        (tmp / scan.top).rename(final)
    except (OSError, tarfile.TarError, EOFError, zlib.error) as exc:
        raise GilbenchError(f"Unpacking {archive} into {dest} failed ({exc}); nothing was "
                            "unpacked: free some space or choose another folder.") from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if created and not final.exists():
            with contextlib.suppress(OSError):
                dest.rmdir()
    recipes = {python_id: final / info["recipe"]
               for python_id, info in export["pythons"].items()
               if isinstance(info, dict) and info.get("rebuildable")}
    return Unpacked(final, final / RUN, final / EXPERIMENTS, digest, recipes, export)
