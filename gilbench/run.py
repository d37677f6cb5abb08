"""Runs: plan the cells, start one runner per python, stream records to disk, resume."""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from experiments.records import make_record
from gilbench import __version__, backends, hostinfo, runfolder, sampling, shards, userwork
from gilbench.errors import GilbenchError, Interrupted
from gilbench.matrix import Matrix, expand
from gilbench.paths import EXPERIMENTS_DIR
from gilbench.runners import Runner, remove_orphans
from gilbench.targets import Target, unique_labels

# on_event(kind, payload): "start" (records expected), "python" (label), "record" (dict).
RunEvents = Callable[[str, Any], None]

# Set by a signal handler that asked the run to stop (SIGTERM). Its KeyboardInterrupt
# can be swallowed where Python ignores exceptions (a finalizer running at that moment);
# the run then stops at its next record instead of finishing.
STOP = threading.Event()


@dataclass(frozen=True)
class Limits:
    cpuset: str  # docker --cpuset-cpus, native CPU affinity
    memory: str | None  # docker --memory; None: no limit (native runners apply none)


def experiments_hash(root: Path = EXPERIMENTS_DIR) -> str:
    """Identity of the target code (matrices aside): a resumed run must use the same.
    `root` is another copy of the tree (a run's harness, an unpacked export)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def runner_for(target: Target, run_dir: Path, limits: Limits, max_workers: int,
               engine_url: str | None = None) -> Runner:
    backend = backends.for_target(target)
    if backend.applies_memory_limit and limits.memory is None:
        raise GilbenchError(f"A {backend.name} run needs a memory limit; set gilbench.memory "
                            "or give --memory.")
    if engine_url:  # a Docker build on the engine at that URL (gilbench/engines.py)
        from gilbench.runners import DockerRunner

        return DockerRunner(target, run_dir / "driver.log", limits.cpuset, limits.memory,
                            max_workers=max_workers, engine_url=engine_url)
    return backend.runner(target, run_dir / "driver.log", cpuset=limits.cpuset,
                          memory=limits.memory, max_workers=max_workers)


def _python_entry(target: Target, label: str, probe: dict[str, Any]) -> dict[str, Any]:
    build = target.build or {}
    return {
        "label": label,
        "kind": target.kind,
        "version": probe.get("python_version"),
        "variant": build.get("variant", "native"),
        "gil_disabled": probe.get("gil_disabled_build"),
        "config_args": probe.get("config_args"),
        "cc": probe.get("cc"),
        "sha256": build.get("sha256"),
        "image": target.image,
        "executable": target.executable,
        "probe": probe,
        "build": target.build,
    }


def _labelled(target: Target, probe: dict[str, Any]) -> Target:
    """Native paths are named by what they are: '3.12.1 native', '3.13.0t native'."""
    if target.build is not None:
        return target
    free = "t" if probe.get("gil_disabled_build") else ""
    return replace(target, label=f"{probe.get('python_version')}{free} native")


def _check_same_python(target: Target, before: dict[str, Any], now: dict[str, Any]) -> None:
    for key in ("python_version", "config_args", "gil_disabled_build"):
        if before.get(key) != now.get(key):
            raise GilbenchError(
                f"{target.executable} changed since the run started ({key} was "
                f"{before.get(key)!r}, is {now.get(key)!r}); start a new run instead."
            )


def _check_probe(target: Target, probe: dict[str, Any]) -> None:
    version = str(probe.get("python_version", "0"))
    if tuple(int(p) for p in version.split(".")[:2]) < (3, 12):
        raise GilbenchError(
            f"--python {target.executable} is Python {version}; gilbench experiments need "
            "CPython 3.12 or newer."
        )


def start(
    matrix: Matrix, targets: list[Target], results_dir: Path, limits: Limits, command: str,
    on_event: RunEvents, seed: int | None = None, extra: dict[str, Any] | None = None,
    shard: shards.Shard | None = None, engine_url: str | None = None,
    user_code: list[userwork.UserCode] | None = None,
) -> Path:
    """A new run folder with its manifest; then every cell of the matrix, or of `shard`
    of it (gilbench/shards.py). `seed` replays another run's order (reproduce); `extra`
    adds manifest keys (kept on rewrite). `engine_url`: the Docker engine that runs the
    cells, whose machine the manifest's host then describes (gilbench/engines.py)."""
    targets = list({t.id: t for t in targets}.values())  # `--python 3.13 --python 3.13.12`
    if limits.memory is not None and not any(
            backends.for_target(t).applies_memory_limit for t in targets):
        raise GilbenchError(
            "--memory limits Docker containers, and this run has only native pythons, which "
            "run without a memory limit; drop --memory or run a Docker build."
        )
    labels = unique_labels(targets)
    matrix, codes = resolve_user_workloads(matrix, targets, user_code)
    cells = expand(matrix, labels)
    run_id = runfolder.new_run_id()
    # A seeded shuffle: drift of the host over the run spreads over every model instead
    # of landing on whichever ran last; the seed makes the order reproducible.
    if seed is None:
        seed = int(hashlib.sha256(run_id.encode()).hexdigest()[:8], 16)
    shard_entry: dict[str, Any] = {}
    if shard is not None:  # before anything is written: an empty shard is refused
        shard_entry = shards.manifest_entry(cells, shard, matrix.text, seed)
        cells = shards.shard_cells(cells, shard.index, shard.count)
        if not cells:
            raise GilbenchError(
                f"Shard {shard} of matrix {matrix.name} holds no cells: the matrix has only "
                f"{shard_entry['matrix_cells']} cell(s); use at most that many shards.")
    if matrix.order == "shuffled":
        random.Random(seed).shuffle(cells)
    # Within each round (plan_rounds) every python takes its turn, its cells in this order.
    position = {target.id: i for i, target in enumerate(targets)}
    cells.sort(key=lambda cell: position[cell["python"]])
    manifest = runfolder.Manifest(
        run_id=run_id,
        tool_version=__version__,
        experiments_hash=experiments_hash(),
        started_at=runfolder.now(),
        command=command,
        matrix={"name": matrix.name, "path": str(matrix.path) if matrix.path else None,
                "text": matrix.text, "description": matrix.description},
        order={"kind": matrix.order, "seed": seed, "batch": matrix.batch,
               "retry_contended": matrix.retry_contended,
               **({"target_ci": matrix.target_ci, "max_repetitions": matrix.max_repetitions,
                   "cell_budget_s": matrix.cell_budget_s} if matrix.target_ci else {})},
        cells=cells,  # in the order they run
        limits={"cpuset": limits.cpuset, "memory": limits.memory},
        host=hostinfo.collect(),
        user_workloads={code.name: code.manifest_entry() for code in codes},
        shard=shard_entry,
        extra=dict(extra or {}),
    )
    run_dir = runfolder.create(results_dir, run_id)
    try:
        with runfolder.locked(run_dir):
            runfolder.save_harness(run_dir, EXPERIMENTS_DIR)
            if codes:
                runfolder.save_user_code(run_dir, {
                    name: data for code in codes for name, data in code.files.items()})
            _execute(run_dir, manifest, targets, cells, limits, on_event, create=True,
                     engine_url=engine_url)
    except BaseException as exc:
        if not (run_dir / runfolder.MANIFEST).exists():
            # Nothing was measured: leave nothing that looks like a run.
            shutil.rmtree(run_dir, ignore_errors=True)
            if isinstance(exc, runfolder.DiskFull):  # there is no run to resume
                raise GilbenchError(
                    f"The disk holding {results_dir} is full, so run {run_id} could not start "
                    "and nothing was kept; free some space and run the same command again."
                ) from None
        raise
    return run_dir


def resolve_user_workloads(matrix: Matrix, targets: list[Target],
                           recorded: list[userwork.UserCode] | None = None) -> tuple[
        Matrix, list[userwork.UserCode]]:
    """The matrix with each user workload spec replaced by its name (`module:function`),
    and the code of each. File paths in a matrix file are relative to its folder; on the
    command line, to the current directory. Modules are looked up as the target python
    would (gilbench/userwork.py). `recorded`: a rerun's code, read from the run it reruns
    (nothing is looked up). One sentence, and nothing written, when one does not
    resolve."""
    specs = [name for name in matrix.workloads if userwork.is_spec(name)]
    if not specs:
        return matrix, []
    base = matrix.path.parent if matrix.path is not None else None
    natives = [t.executable for t in targets if t.kind == backends.NativeBackend.name]
    codes: dict[str, userwork.UserCode] = {}
    workloads: dict[str, dict[str, list[Any]]] = {}
    for name, axes in matrix.workloads.items():
        if not userwork.is_spec(name):
            workloads[name] = axes
            continue
        code = userwork.from_record(name, recorded) if recorded is not None else \
            userwork.resolve(name, base, natives)
        other = codes.get(code.name)
        if other is not None and other.origin != code.origin:
            raise GilbenchError(
                f"The workloads {other.spec!r} and {code.spec!r} are both imported as "
                f"{code.module} ({other.origin} and {code.origin}); rename one of the files.")
        clash = [c for c in codes.values() if c.origin != code.origin and set(c.files) & set(
            code.files)]
        if clash:
            raise GilbenchError(
                f"The workloads {clash[0].spec!r} and {code.spec!r} come from different "
                f"places ({clash[0].origin} and {code.origin}) under one module name; rename "
                "one of them.")
        codes[code.name] = code
        workloads.setdefault(code.name, {}).update(axes)
    return replace(matrix, workloads=workloads), list(codes.values())


def recorded_user_code(run_dir: Path, manifest: runfolder.Manifest) -> list[userwork.UserCode]:
    """The run's own copy of its user workloads' code, checked against the manifest's
    sha256 (one sentence if missing or changed): what a resume or a rerun must measure."""
    folder = runfolder.user_code(run_dir)
    return userwork.recorded(manifest.user_workloads,
                             userwork.read_tree(folder) if folder is not None else {},
                             run_dir / runfolder.USER_CODE, f"Run {manifest.run_id} ({run_dir})")


def _ship_user_code(runner: Runner, run_dir: Path, manifest: runfolder.Manifest,
                    label: str) -> None:
    """Put the user code where this runner's python imports it, and check there that every
    user workload imports and is callable, before any cell runs."""
    folder = runfolder.user_code(run_dir)
    if not manifest.user_workloads or folder is None:
        return
    runner.ship_user_code(folder)
    for name in manifest.user_workloads:
        problem = runner.check_workload(name)
        if problem:
            raise GilbenchError(
                f"The workload {name} cannot be loaded by {label} "
                f"({problem}); fix the module, or install what it imports into that python "
                "(--requirements FILE for a native one).")


def plan_rounds(cells: list[dict[str, Any]], batch: int) -> list[tuple[int, list[dict[
        str, Any]]]]:
    """Drift-proof order: round k holds repetitions [k*batch, (k+1)*batch) of every cell,
    in run order, and every python's cells take their turn in each round, so no model and
    no build is measured as one block while the host drifts. A round is a property of the
    repetition index, so a resumed run keeps it."""
    rounds: dict[int, list[dict[str, Any]]] = {}
    for cell in cells:
        mine: dict[int, list[int]] = {}
        for repetition in cell["repetitions"]:
            mine.setdefault(repetition // batch, []).append(repetition)
        for number, repetitions in mine.items():
            rounds.setdefault(number, []).append(
                {**cell, "repetitions": repetitions, "round": number})
    return sorted(rounds.items())


def _targets(manifest: runfolder.Manifest, run_dir: Path) -> list[Target]:
    targets = []
    for pid, entry in manifest.pythons.items():
        if not (isinstance(entry, dict) and all(
                isinstance(entry.get(k), str) for k in ("label", "kind", "executable"))):
            raise GilbenchError(
                f"{run_dir}/manifest.json describes python {pid!r} without a label, kind and "
                "executable, so it cannot be resumed; start a new run."
            )
        targets.append(Target(pid, entry["label"], entry["kind"], entry["executable"],
                              entry.get("image"), entry.get("build")))
    return targets


def resume(run_dir: Path, cpuset: str | None, memory: str | None, on_event: RunEvents) -> Path:
    """Finish an interrupted run: only repetitions without a record run again, under the
    same limits, on the same interpreters. The run's lock keeps a second process out.
    A --cpuset or --memory given again must name the limit the run started with."""
    with runfolder.locked(run_dir):
        manifest = runfolder.read_manifest(run_dir)
        if manifest.merge:  # its records came from other runs, pythons and hosts
            raise GilbenchError(
                f"Run {manifest.run_id} is a merge of other runs, so it cannot be resumed; "
                "resume or rerun the run that is missing records, then merge again.")
        if not manifest.experiments_hash:
            raise GilbenchError(
                f"{run_dir}/manifest.json has no experiments_hash, so what ran cannot be "
                "checked and the run cannot be resumed; start a new run."
            )
        stored = Limits(str(manifest.limits.get("cpuset") or ""), manifest.limits.get("memory"))
        if (cpuset is not None and cpuset != stored.cpuset) or (
                memory is not None and memory != stored.memory):
            ran_with = (f"memory {stored.memory!r}" if stored.memory is not None
                        else "no memory limit")
            raise GilbenchError(
                f"Run {manifest.run_id} ran with cpuset {stored.cpuset!r} and {ran_with}; "
                "resume it without --cpuset/--memory so the rest matches."
            )
        recorded_user_code(run_dir, manifest)  # a resume measures the code it started with
        if manifest.experiments_hash != experiments_hash():
            raise GilbenchError(
                f"experiments/ changed since run {manifest.run_id} started, so its records "
                "would mix two versions of the harness; start a new run instead."
            )
        known = runfolder.read_records(run_dir)
        pending = runfolder.pending_cells(manifest, known.records)
        targets = _targets(manifest, run_dir)
        unknown = {c["python"] for c in pending} - {t.id for t in targets}
        if unknown:
            raise GilbenchError(
                f"{run_dir}/manifest.json plans cells for python {sorted(unknown)[0]!r} but does "
                "not describe it, so the run cannot be resumed; start a new run."
            )
        manifest.resumed_at.append(runfolder.now())
        manifest.finished_at = None
        engine_url = (manifest.extra.get("engine") or {}).get("url")
        _execute(run_dir, manifest, targets, pending, stored, on_event, create=False,
                 engine_url=engine_url)
    return run_dir


def _execute(
    run_dir: Path, manifest: runfolder.Manifest, targets: list[Target],
    cells: list[dict[str, Any]], limits: Limits, on_event: RunEvents, create: bool,
    engine_url: str | None = None,
) -> None:
    remove_orphans()
    try:
        with ExitStack() as stack:
            runners: dict[str, Runner] = {}
            probed = []
            for target in targets:
                # Sized by the whole plan, so a resumed run gets the limits it started with.
                most = max((c["workers"] for c in manifest.cells if c["python"] == target.id),
                           default=1)
                runner = stack.enter_context(runner_for(target, run_dir, limits, most,
                                                        engine_url))
                facts = runner.host_facts()
                if facts and create:  # measured on the engine's machine, not this one
                    manifest.host = facts
                probe = runner.probe()
                _check_probe(target, probe)
                _ship_user_code(runner, run_dir, manifest, _labelled(target, probe).label)
                if not create:
                    _check_same_python(target, manifest.pythons[target.id]["probe"], probe)
                runners[target.id] = runner
                probed.append((target, probe))
                # A resume keeps the first description: same limits, a new container id.
                manifest.backend.setdefault(target.id, runner.describe())
            labels = unique_labels([_labelled(target, probe) for target, probe in probed])
            for target, probe in probed:
                manifest.pythons[target.id] = _python_entry(target, labels[target.id], probe)
            runfolder.write_manifest(run_dir, manifest)
            on_event("start", sum(len(cell["repetitions"]) for cell in cells))
            writer = runfolder.RecordWriter(run_dir)
            stack.callback(writer.close)
            batch = int(manifest.order.get("batch") or 1)
            retries = int(manifest.order.get("retry_contended") or 0)
            spent: dict[str, float] = {}  # cell_id -> seconds its processes took

            def measure(todo: list[dict[str, Any]]) -> None:
                for _, round_cells in plan_rounds(todo, batch):
                    for target in targets:
                        mine = [{**cell, "run_id": manifest.run_id} for cell in round_cells
                                if cell["python"] == target.id]
                        if mine:
                            on_event("python", labels[target.id])
                            _stream(runners[target.id], mine, writer, run_dir, on_event,
                                    spent)

            measure(cells)
            policy = _policy(manifest.order)
            while policy is not None:
                more = _sample_more(run_dir, manifest, policy, batch, spent)
                if not more:
                    break
                on_event("start", sum(len(cell["repetitions"]) for cell in more))
                measure(more)
            for _ in range(retries):  # every attempt stays in the records
                again = runfolder.contended_cells(
                    manifest, runfolder.read_records(run_dir).records, retries)
                if not again:
                    break
                on_event("start", sum(len(cell["repetitions"]) for cell in again))
                measure(again)
    except KeyboardInterrupt:
        if not (run_dir / runfolder.MANIFEST).exists():
            raise
        raise Interrupted(
            f"Interrupted: every finished record of run {run_dir.name} is kept; finish it "
            f"with `invoke experiment --resume {run_dir.name}`."
        ) from None
    manifest.finished_at = runfolder.now()
    runfolder.write_manifest(run_dir, manifest)


def _policy(order: dict[str, Any]) -> sampling.Policy | None:
    if not order.get("target_ci"):
        return None
    return sampling.Policy(float(order["target_ci"]), int(order["max_repetitions"]),
                           float(order["cell_budget_s"]))


def _sample_more(run_dir: Path, manifest: runfolder.Manifest, policy: sampling.Policy,
                 batch: int, spent: dict[str, float]) -> list[dict[str, Any]]:
    """Decide, for every cell still sampling, whether it stops; plan one more round of
    `batch` repetitions for the rest. The plan and the decisions reach the manifest before
    anything runs, so a killed run resumes into the same plan."""
    samples = runfolder.samples_by_cell(runfolder.read_records(run_dir).records)
    more = []
    for cell in manifest.cells:
        state = manifest.sampling.setdefault(cell["cell_id"], {})
        state["elapsed_s"] = round(float(state.get("elapsed_s") or 0)
                                   + spent.pop(cell["cell_id"], 0.0), 3)
        if state.get("stop"):
            continue
        got = samples.get(cell["cell_id"]) or runfolder.Samples([], 0, False)
        state["stop"] = sampling.decide(got.quiet, got.measured, got.any_ok,
                                        state["elapsed_s"], policy)
        width = sampling.half_width(got.quiet)
        state["ci_half_width"] = round(width, 5) if math.isfinite(width) else None
        state["repetitions"] = got.measured
        if state["stop"] is None:
            first = max(cell["repetitions"], default=-1) + 1
            added = list(range(first, min(first + batch, policy.max_repetitions)))
            cell["repetitions"].extend(added)
            more.append({**cell, "repetitions": added})
    runfolder.write_manifest(run_dir, manifest)
    return more


def _parse(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None  # not a record: the driver writes diagnostics to driver.log
    return record if isinstance(record, dict) else None


def _stream(
    runner: Runner, cells: list[dict[str, Any]], writer: runfolder.RecordWriter, run_dir: Path,
    on_event: RunEvents, spent: dict[str, float],
) -> None:
    pending = cells
    while pending:
        expected = {(c["cell_id"], r) for c in pending for r in c["repetitions"]}
        got = 0
        # The driver runs cells one after another, so the time up to a record's arrival
        # since the one before went to that record's cell (its budget, with --target-ci).
        last = time.monotonic()
        for line in runner.run_cells(pending):
            record = _parse(line)
            key = (record or {}).get("cell_id"), (record or {}).get("repetition")
            if record is None or key not in expected:
                continue
            expected.discard(key)
            now = time.monotonic()
            spent[str(key[0])] = spent.get(str(key[0]), 0.0) + now - last
            last = now
            writer.append(record)
            on_event("record", record)
            if STOP.is_set():
                raise KeyboardInterrupt
            got += 1
        if not expected:
            return
        # The driver ended with repetitions unreported: it died (OOM kill, a signal), or
        # could not write its log because the disk is full, which is no result of the cell.
        runfolder.check_space(run_dir, "the driver ran")
        if not runner.alive() or (got == 0 and pending is not cells):
            raise GilbenchError(
                f"The driver for {runner.target.label} stopped and cannot go on (see "
                f"{run_dir}/driver.log); finished records are kept: run `invoke experiment "
                f"--resume {run_dir.name}` once the cause is fixed."
            )
        # The first cell still missing records was in flight: that is its result. The
        # rest run again in a fresh driver.
        remaining = [
            {**c, "repetitions": [r for r in c["repetitions"] if (c["cell_id"], r) in expected]}
            for c in pending
        ]
        remaining = [c for c in remaining if c["repetitions"]]
        in_flight, pending = remaining[0], remaining[1:]
        for repetition in in_flight["repetitions"]:
            record = make_record(
                in_flight, repetition, "crashed",
                f"the driver died while this cell ran (see {run_dir}/driver.log)",
                python_version="",
            )
            writer.append(record)
            on_event("record", record)
