"""Merge: several runs (shards of one matrix, or the same matrix on several hosts) into
one new run folder that `invoke report`, `compare` and `export` read like any other.

Host is an axis. Every source run is mapped to its host (HOST_KEY of its manifest's
host). When the sources ran on more than one host, each python id and cell id of the
merged run is qualified with its host (`native:/usr/bin/python3@laptop`,
`c-0123abcd4567@laptop`) and each python's label gets ` @ host`, so the same cell
measured on two hosts stays two groups in every table, plot and decision, and nothing
downstream needs to know about hosts. Records keep their source's run_id; the merged
manifest's `merge.sources` maps each run_id to its host, shard, limits, cpu quota and
the contention its records measured (docs/run-format.md, "merge").

Refused, naming what differs: fewer than two runs, a run given twice (same folder or
same run_id), a merged or still-running run, two runs that are the same shard of one
matrix, two runs that measured the same cell on the same host, and (unless
allow_mixed, which the manifest records) runs of different matrices or harnesses, or
shards whose pythons expanded the matrix to different cells. A merge that lacks cells (a
shard not given, or one that failed) still writes the merged run, marked partial with the
cells and shards it lacks.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gilbench import runfolder, shards, userwork
from gilbench.errors import GilbenchError

HOST_FINGERPRINT = ("cpu_model", "cores_online", "mem_total_kb", "machine")


@dataclass(frozen=True)
class Source:
    run_dir: Path
    manifest: runfolder.Manifest
    records: list[runfolder.Record]
    warnings: list[str]
    host: str = ""  # the host key, set once every source is known

    @property
    def run_id(self) -> str:
        return self.manifest.run_id

    @property
    def matrix_hash(self) -> str:
        return shards.matrix_hash(str(self.manifest.matrix.get("text") or ""))

    @property
    def shard_name(self) -> str:
        shard = self.manifest.shard
        return f"{shard['index']}/{shard['count']}" if shard else ""

    def describe(self) -> str:
        shard = f" (shard {self.shard_name})" if self.shard_name else ""
        return f"run {self.run_id}{shard}"


def _read(run_dir: Path) -> Source:
    if not run_dir.is_dir():
        raise GilbenchError(f"Run folder {run_dir} does not exist; give run ids or folders "
                            "written by `invoke experiment`.")
    manifest = runfolder.read_manifest(run_dir)
    if manifest.merge:
        raise GilbenchError(f"Run {manifest.run_id} is itself a merge; merge its source runs "
                            f"({', '.join(manifest.merge.get('sources') or {})}) instead.")
    who = runfolder.holder(run_dir)
    if who:
        raise GilbenchError(f"Run {manifest.run_id} is still running ({who}); merge it once "
                            "it has finished.")
    read = runfolder.read_records(run_dir)
    return Source(run_dir, manifest, read.records, read.warnings())


def _host_keys(sources: list[Source]) -> dict[str, str]:
    """run_id -> host key: the hostname, with #2, #3 for machines that share a hostname
    but not a CPU, core count or memory (two containers named `localhost`)."""
    seen: dict[str, list[tuple[Any, ...]]] = {}
    keys = {}
    for source in sources:
        host = source.manifest.host
        name = str(host.get("hostname") or "unknown-host").replace("@", "_")
        prints = seen.setdefault(name, [])
        fingerprint = tuple(host.get(key) for key in HOST_FINGERPRINT)
        if fingerprint not in prints:
            prints.append(fingerprint)
        number = prints.index(fingerprint) + 1
        keys[source.run_id] = name if number == 1 else f"{name}#{number}"
    return keys


def _check_distinct(run_dirs: list[Path], sources: list[Source]) -> None:
    folders = Counter(path.resolve() for path in run_dirs)
    twice = [str(path) for path, n in folders.items() if n > 1]
    if twice:
        raise GilbenchError(f"{twice[0]} is given twice; a run cannot be merged with itself.")
    ids = Counter(source.run_id for source in sources)
    same = [run_id for run_id, n in ids.items() if n > 1]
    if same:
        where = [str(s.run_dir) for s in sources if s.run_id == same[0]]
        raise GilbenchError(f"{' and '.join(where)} are the same run ({same[0]}); a run "
                            "cannot be merged with itself (or a copy of it).")


def _differences(sources: list[Source]) -> list[str]:
    """What differs between the sources that would make their numbers incomparable."""
    first = sources[0]
    found = []
    aspects = (
        ("matrix", lambda s: f"{s.manifest.matrix.get('name')} (sha256 {s.matrix_hash[:12]})"),
        ("harness (experiments/)", lambda s: s.manifest.experiments_hash[:12] or "unknown"),
    )
    for aspect, value in aspects:
        for other in sources[1:]:
            if value(other) != value(first):
                found.append(f"{aspect}: {first.run_id} has {value(first)}, {other.run_id} "
                             f"has {value(other)}")
                break
    shard_cells = [s for s in sources if s.manifest.shard]
    for other in shard_cells[1:]:
        mine = {c["cell_id"] for c in shard_cells[0].manifest.shard.get("cells") or []}
        theirs = {c["cell_id"] for c in other.manifest.shard.get("cells") or []}
        if mine != theirs and other.matrix_hash == shard_cells[0].matrix_hash:
            found.append(f"cells: {shard_cells[0].run_id} and {other.run_id} expanded the "
                         "matrix to different cells (other pythons), so their shards do not "
                         "partition one matrix")
            break
    return found


def _check_shards(sources: list[Source]) -> None:
    taken: dict[tuple[str, int, int], Source] = {}
    for source in sources:
        shard = source.manifest.shard
        if not shard:
            continue
        key = (source.matrix_hash, int(shard["count"]), int(shard["index"]))
        if key in taken:
            raise GilbenchError(
                f"Runs {taken[key].run_id} and {source.run_id} are both shard "
                f"{source.shard_name} of matrix {source.manifest.matrix.get('name')}; keep one "
                "of them (every shard is merged once).")
        taken[key] = source


def _check_overlap(sources: list[Source]) -> None:
    """The same cell twice on one host would pool two runs' repetitions under one
    repetition number: refused (on different hosts it is the host axis)."""
    owner: dict[tuple[str, str], Source] = {}
    for source in sources:
        for cell in source.manifest.cells:
            key = (source.host, cell["cell_id"])
            if key in owner:
                other = owner[key]
                raise GilbenchError(
                    f"{other.describe().capitalize()} and {source.describe()} both planned "
                    f"cell {cell['cell_id']} ({cell['workload']}, {cell['model']}, "
                    f"{cell['workers']} worker(s)) on host {source.host}; merge runs of "
                    "different shards or different hosts.")
            owner[key] = source


def _qualify(text: str, host: str, qualify: bool) -> str:
    return f"{text}@{host}" if qualify else text


def _contention(records: list[runfolder.Record]) -> dict[str, Any]:
    ok = [r for r in records if r["status"] == "ok"]
    return {
        "records": len(records), "ok": len(ok),
        "contended": sum(1 for r in ok if r.get("contended")),
        "others_cpu_s": round(sum(r.get("others_cpu_s") or 0.0 for r in ok), 3),
        "steal_s": round(sum(r.get("steal_s") or 0.0 for r in ok), 3),
        "throttled_s": round(sum(r.get("throttled_s") or 0.0 for r in ok), 3),
    }


def cpu_quota(cpu_max: object) -> float | None:
    """CPUs a cgroup v2 cpu.max ("200000 100000") allows, or None for "max" or unknown."""
    parts = str(cpu_max or "").split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if period > 0 else None


def _cpu_max(manifest: runfolder.Manifest) -> object:
    """The run's cgroup cpu.max: where its runner recorded one (a Kubernetes pod's,
    gilbench/k8s.py), else the host's (hostinfo)."""
    for entry in manifest.backend.values():
        if isinstance(entry, dict) and entry.get("cgroup_cpu_max"):
            return entry["cgroup_cpu_max"]
    return manifest.host.get("cgroup_cpu_max")


def _source_entry(source: Source, qualify: bool) -> dict[str, Any]:
    manifest = source.manifest
    measured = {r["cell_id"] for r in source.records}
    missing = runfolder.pending_cells(manifest, source.records)
    return {
        "folder": str(source.run_dir.resolve()), "host": source.host,
        "shard": ({k: manifest.shard[k] for k in ("index", "count", "matrix_sha256", "seed",
                                                  "matrix_cells", "cost_s")}
                  if manifest.shard else None),
        "matrix": manifest.matrix.get("name"), "matrix_sha256": source.matrix_hash,
        "experiments_hash": manifest.experiments_hash, "tool_version": manifest.tool_version,
        "seed": manifest.order.get("seed"), "command": manifest.command,
        "started_at": manifest.started_at, "finished_at": manifest.finished_at,
        "limits": manifest.limits,
        "cpusets": {_qualify(pid, source.host, qualify): entry.get("cpuset")
                    for pid, entry in manifest.backend.items() if isinstance(entry, dict)},
        "cgroup_cpu_max": _cpu_max(manifest), "cpu_quota": cpu_quota(_cpu_max(manifest)),
        "cells": len(manifest.cells), "cells_measured": len(measured),
        "repetitions_missing": sum(len(c["repetitions"]) for c in missing),
        "contention": _contention(source.records),
        "warnings": source.warnings,
    }


def _matrix_cells(sources: list[Source]) -> dict[str, dict[str, Any]]:
    """cell_id -> {shard, python, model, workload, workers} of every matrix the sources
    ran: a shard's manifest lists its whole matrix; an unsharded run is its own matrix."""
    cells: dict[str, dict[str, Any]] = {}
    for source in sources:
        listed = source.manifest.shard.get("cells") if source.manifest.shard else None
        for cell in listed or source.manifest.cells:
            cells.setdefault(cell["cell_id"], {
                "cell_id": cell["cell_id"], "shard": cell.get("shard"),
                "python": cell["python"], "model": cell["model"],
                "workload": cell["workload"], "workers": cell["workers"]})
    return cells


def _missing_shards(sources: list[Source]) -> list[str]:
    given: dict[tuple[str, int], set[int]] = {}
    for source in sources:
        if source.manifest.shard:
            key = (source.matrix_hash, int(source.manifest.shard["count"]))
            given.setdefault(key, set()).add(int(source.manifest.shard["index"]))
    return [f"{i}/{count}" for (_, count), indices in sorted(given.items())
            for i in range(1, count + 1) if i not in indices]


def _partial(run_id: str, sources: list[Source], missing: list[dict[str, Any]],
             missing_shards: list[str], entries: dict[str, dict[str, Any]]) -> str:
    """The merged run's partial sentence, or "" when every cell has all its records."""
    short = {rid: e["repetitions_missing"] for rid, e in entries.items()
             if e["repetitions_missing"]}
    if not missing and not short:
        return ""
    why = []
    if missing_shards:
        why.append(f"shard{'s' if len(missing_shards) > 1 else ''} "
                   f"{', '.join(missing_shards)} missing")
    why += [f"run {rid} lacks {n} repetition(s)" for rid, n in short.items()]
    named = ", ".join(f"{c['cell_id']} ({c['workload']} {c['model']} x{c['workers']})"
                      for c in missing[:5])
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    cells = (f"{len(missing)} cell(s) of the matrix have no record ({named}{more}); "
             if missing else "")
    return (f"Merged run {run_id} is partial: {cells}{'; '.join(why)}. Run or resume what is "
            "missing and merge again.")


def merge(run_dirs: list[Path], output: Path, allow_mixed: bool = False,
          command: str = "") -> Path:
    """A new run folder `output` (its name is the merged run's id) holding the records of
    every run in run_dirs. Raises GilbenchError, writing nothing, when they cannot merge."""
    if len(run_dirs) < 2:
        raise GilbenchError(f"A merge needs at least two runs; got {len(run_dirs)}.")
    for run_dir in run_dirs:
        if not run_dir.is_dir():
            raise GilbenchError(f"Run folder {run_dir} does not exist; give run ids or "
                                "folders written by `invoke experiment`.")
    _check_distinct(run_dirs, [])  # the same folder twice, before reading anything
    read = [_read(Path(run_dir)) for run_dir in run_dirs]
    _check_distinct(run_dirs, read)
    differences = _differences(read)
    if differences and not allow_mixed:
        raise GilbenchError(f"These runs differ in {differences[0]}"
                            f"{f' (and {len(differences) - 1} more)' if differences[1:] else ''}"
                            "; merge runs of one matrix and harness, or pass --allow-mixed to "
                            "merge them anyway (the manifest records it).")
    _check_shards(read)
    hosts = _host_keys(read)
    sources = [Source(s.run_dir, s.manifest, s.records, s.warnings, hosts[s.run_id])
               for s in read]
    _check_overlap(sources)
    qualify = len(set(hosts.values())) > 1
    run_id = output.name

    first = sources[0].manifest
    merged = runfolder.Manifest(
        run_id=run_id, started_at=min(s.manifest.started_at for s in sources),
        finished_at=runfolder.now(), tool_version=first.tool_version,
        experiments_hash=first.experiments_hash, command=command or "invoke merge",
        matrix=dict(first.matrix), order=dict(first.order),
        limits=dict(first.limits) if all(s.manifest.limits == first.limits for s in sources)
        else {},
        host=dict(first.host) if not qualify else {},
    )
    records: list[runfolder.Record] = []
    user_files: dict[str, bytes] = {}
    for source in sources:
        manifest, host = source.manifest, source.host
        for cell in manifest.cells:
            merged.cells.append({**cell, "cell_id": _qualify(cell["cell_id"], host, qualify),
                                 "python": _qualify(cell["python"], host, qualify)})
        for pid, entry in manifest.pythons.items():
            label = f"{entry.get('label') or pid} @ {host}" if qualify else entry.get("label")
            merged.pythons[_qualify(pid, host, qualify)] = {**entry, "label": label,
                                                             "host": host}
        for pid, entry in manifest.backend.items():  # per python (older runs: one entry)
            merged.backend[_qualify(pid, host, qualify and pid in manifest.pythons)] = entry
        for cell_id, state in manifest.sampling.items():
            merged.sampling[_qualify(cell_id, host, qualify)] = state
        merged.user_workloads.update(manifest.user_workloads)
        folder = runfolder.user_code(source.run_dir)
        if folder is not None:
            for name, data in userwork.read_tree(folder).items():
                user_files.setdefault(name, data)
        records += [{**r, "cell_id": _qualify(r["cell_id"], host, qualify),
                     "python": _qualify(r["python"], host, qualify)} for r in source.records]

    entries = {s.run_id: _source_entry(s, qualify) for s in sources}
    measured = {r["cell_id"] for s in sources for r in s.records}
    missing = [cell for cell_id, cell in _matrix_cells(sources).items()
               if cell_id not in measured]
    missing_shards = _missing_shards(sources)
    merged.merge = {
        "sources": entries,
        "hosts": {s.host: s.manifest.host for s in sources},
        "host_qualified": qualify,
        "allow_mixed": allow_mixed, "mixed": differences,
        "missing": missing, "missing_shards": missing_shards,
        "partial": _partial(run_id, sources, missing, missing_shards, entries),
    }
    harness = next((h for s in sources if (h := runfolder.harness(s.run_dir)) is not None),
                   None)
    return runfolder.write_new_run(output, merged, records, harness, user_files)
