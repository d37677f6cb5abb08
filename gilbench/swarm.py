"""Docker Swarm: a matrix's shards as one replicated job, its records back as one run.

`invoke experiment --swarm --replicas N` creates one service in `replicated-job` mode with
N replicas, all allowed at once. Task slot S runs shard S+1 of gilbench.shards'
assignment: swarmkit numbers a job's slots from 0 (not from 1 as for replicated
services), and `{{.Task.Slot}}` of slot 0 renders as the node id, so the task's script
maps a slot that is not a number to 0. The host checks the slot each task reports
against the slot Swarm gave it.

What goes in: one Docker config (at most 500 KB; a gzipped tar of about 40 KB today)
holding experiments/ as the Docker runner ships it, the host-side metadata functions and
every shard's cells; each task unpacks it into its tmpfs /tmp and runs the driver there.
What comes back: the task's stdout through the service's logs, each line tagged by
Swarm with its task id (`details`), read as gilbench/tasklog.py reads a pod's log.

Exactly once: a slot's task that fails (killed, OOM, node lost) is retried by Swarm
(restart condition on-failure, RETRIES more attempts). Each attempt reruns the whole
shard, so per shard the records of one attempt are kept: the attempt that completed,
else the newest (partial, and the merge names its missing cells); the records of the
other attempts are counted and left out, never mixed in. A slot with no completed task
when the job ends is named. Each shard becomes an ordinary run folder (runfolder.py) and
the shards are merged (merge.py) into one run that records the service.

The sandbox, as close to the Docker runner's as a service allows: user gilbench,
read-only root, tmpfs /tmp, every capability dropped, a pids limit, a memory limit, a CPU
limit (a quota: Swarm has no cpuset). Not available to services: `--network none`
(Swarm refuses it; the tasks get an internal overlay network of their own instead, with
no route out of it), no-new-privileges and a cpuset. The manifest records all of it.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.models.services
import docker.types

from gilbench import __version__, engine, merge, runfolder, shards, taskhost, tasklog
from gilbench.errors import GilbenchError
from gilbench.matrix import Matrix, expand
from gilbench.paths import EXPERIMENTS_DIR, REPO
from gilbench.targets import Target

KIND = "swarm"
LABEL = "org.gilbench.swarm"  # on the service, config and network a job creates
BUNDLE = "/gilbench/bundle.tgz"  # where the config is mounted in each task
LAB = "/tmp/gilbench-lab"  # the tmpfs folder each task unpacks the bundle into
CONFIG_LIMIT = 500 * 1024  # Docker's limit on one config's data
RETRIES = 2  # more attempts per slot after a failure
POLL_S = 1.0
LOG_IDLE_S, LOG_TRIES = 30.0, 3  # a log stream silent this long is asked again (_logs)
TERMINAL = {"complete", "failed", "shutdown", "rejected", "orphaned", "remove"}
TMPFS_BYTES = 256 * 1024 * 1024  # as the Docker runner's tmpfs

# What a task says about where it ran: the node's hostname (so shards on one node are
# one host to merge, not one host per container), cgroup limits, affinity.
TASK_INFO = f'''\
import os, sys
sys.path.insert(0, "{LAB}/host")
from gilbench import taskhost
taskhost.report({tasklog.POD_LINE!r}, os.environ.get("GILBENCH_NODE"), "container_hostname",
                shard=int(sys.argv[1]), slot=int(sys.argv[2]),
                task=os.environ.get("GILBENCH_TASK"))
'''

_UNPACK = ("import sys, tarfile\n"
           "with tarfile.open(sys.argv[1], 'r:gz') as tar:\n"
           "    tar.extractall(sys.argv[2], filter='data')\n")


def entry(python: str) -> str:
    """The task's shell script: slot -> shard, unpack, facts, probe, driver, exit status."""
    return f"""set -eu
case "${{GILBENCH_SLOT:-}}" in ''|*[!0-9]*) slot=0 ;; *) slot=$GILBENCH_SLOT ;; esac
shard=$((slot + 1))
{python} -I -c "{_UNPACK}" {BUNDLE} {LAB}
cd {LAB}
{python} -I gilbench-task.py "$shard" "$slot"
printf '{tasklog.PROBE_LINE}'
{python} -E -s -m experiments.driver --probe
status=0
{python} -E -s -m experiments.driver "cells/shard-$shard.jsonl" || status=$?
echo "{tasklog.DONE_LINE}$status $(date -u +%Y-%m-%dT%H:%M:%S+00:00)"
exit "$status"
"""


@dataclass
class Job:
    """One matrix's shards for one image, each a future run with its own run id."""

    name: str
    target: Target
    label: str
    replicas: int
    matrix: Matrix
    seed: int
    all_cells: list[dict[str, Any]]
    runs: list[dict[str, Any]]  # per shard: index, run_id, cells (run order)
    memory: str | None
    cpus: float
    command: str = ""
    created_at: str = field(default_factory=runfolder.now)


@dataclass
class ShardResult:
    index: int
    run_dir: Path | None
    records: int
    planned: int
    attempts: int  # tasks Swarm started for the slot
    completed: int  # of them, those that completed
    discarded: int  # records of the attempts not kept
    exit_status: int | None

    def sentence(self, count: int) -> str:
        text = f"shard {self.index}/{count}: {self.records} of {self.planned} records"
        text += f" from {self.attempts} attempt{'s' if self.attempts != 1 else ''}"
        if self.discarded:
            text += f" ({self.discarded} records of failed attempts left out)"
        if not self.completed:
            text += "; it never completed"
        return text


@dataclass
class Result:
    run_dir: Path  # the merged run (or the one shard's run when replicas is 1)
    service: str
    shards: list[ShardResult]

    @property
    def unfinished(self) -> list[int]:
        return [s.index for s in self.shards if not s.completed]


def check_swarm(client: docker.DockerClient) -> dict[str, Any]:
    """The engine's info, or one sentence when it cannot run a Swarm job."""
    info: dict[str, Any] = client.info()
    swarm = info.get("Swarm") or {}
    if swarm.get("LocalNodeState") != "active":
        raise GilbenchError("This Docker engine is not in swarm mode; run `docker swarm init` "
                            "(or join it to a swarm) first, or drop --swarm.")
    if not swarm.get("ControlAvailable"):
        raise GilbenchError("This Docker engine is a swarm worker; run --swarm against a "
                            "manager node (`docker node ls` there lists the swarm).")
    return info


def plan(matrix: Matrix, target: Target, replicas: int, memory: str | None,
         command: str = "", node_cpus: int | None = None) -> Job:
    if replicas < 1:
        raise GilbenchError(f"--replicas {replicas} must be at least 1: the number of Swarm "
                            "tasks, each running one shard of the matrix.")
    if target.image is None:
        raise GilbenchError(f"--swarm runs Docker images, and {target.label} is a native "
                            "python; give a Docker build with --python.")
    if matrix.target_ci or matrix.retry_contended:
        raise GilbenchError(
            f"Matrix {matrix.path or matrix.name} asks for adaptive sampling or contended "
            "retries, which need the host between rounds; a Swarm job runs fixed "
            "repetitions, so drop target_ci and retry_contended for it.")
    from gilbench import userwork

    users = [name for name in matrix.workloads if userwork.is_spec(name)]
    if users:
        raise GilbenchError(f"Matrix {matrix.path or matrix.name} has the user workload "
                            f"{users[0]!r}; --swarm ships only the built-in workloads, so "
                            "run it without --swarm.")
    cells = expand(matrix, {target.id: target.label})
    if replicas > len(cells):
        raise GilbenchError(f"--replicas {replicas} is more than the {len(cells)} cells of "
                            f"matrix {matrix.name}; some tasks would have nothing to run, so "
                            f"use at most {len(cells)}.")
    digest = hashlib.sha256(json.dumps(
        [target.id, matrix.text, replicas, runfolder.now()]).encode()).hexdigest()
    seed = int(digest[:8], 16)
    run_ids: list[str] = []
    while len(run_ids) < replicas:
        run_id = runfolder.new_run_id()
        if run_id not in run_ids:
            run_ids.append(run_id)
    runs = []
    for index, part in enumerate(shards.assign(cells, replicas), 1):
        mine = [dict(cell) for cell in part]
        if matrix.order == "shuffled":
            random.Random(seed).shuffle(mine)
        runs.append({"index": index, "run_id": run_ids[index - 1], "cells": mine})
    most = max(cell["workers"] for cell in cells)
    cpus = float(min(most, node_cpus) if node_cpus else most)
    return Job(name=f"gilbench-{digest[:10]}", target=target, label=target.label,
               replicas=replicas, matrix=matrix, seed=seed, all_cells=cells, runs=runs,
               memory=memory, cpus=cpus, command=command)


def _cell_lines(job: Job, run: dict[str, Any]) -> bytes:
    from gilbench.run import plan_rounds

    return "".join(json.dumps({**cell, "run_id": run["run_id"]}) + "\n"
                   for _, cells in plan_rounds(run["cells"], job.matrix.batch)
                   for cell in cells).encode()


def bundle(job: Job) -> bytes:
    """The config's data: a gzipped tar of the harness, metadata functions and cells."""
    from gilbench.runners import _tar, experiments_files

    files = dict(experiments_files())
    files["gilbench-task.py"] = TASK_INFO.encode()
    for name in taskhost.FILES:
        files[f"host/gilbench/{name}"] = (REPO / "gilbench" / name).read_bytes()
    for run in job.runs:
        files[f"cells/shard-{run['index']}.jsonl"] = _cell_lines(job, run)
    data = gzip.compress(_tar(files), mtime=0)
    if len(data) > CONFIG_LIMIT:
        raise GilbenchError(f"The Swarm job's bundle (harness and cells) takes {len(data)} "
                            f"bytes gzipped, over the {CONFIG_LIMIT} a Docker config holds; "
                            "run fewer cells per job (a smaller matrix).")
    return data


def _memory_bytes(memory: str | None) -> int | None:
    if memory is None:
        return None
    from docker.utils import parse_bytes

    try:
        return int(parse_bytes(memory))
    except docker.errors.DockerException:
        raise GilbenchError(f"--memory {memory!r} is not a size like 2g or 512m.") from None


def _task_template(job: Job, config: Any, network: str | None) -> docker.types.TaskTemplate:
    from gilbench.runners import CAP_DROP, DEFAULT_MAX_WORKERS, pids_limit

    most = max((cell["workers"] for cell in job.all_cells), default=DEFAULT_MAX_WORKERS)
    spec = docker.types.ContainerSpec(
        job.target.image or "", command=["/bin/sh", "-c", entry(job.target.executable)],
        env=["GILBENCH_SLOT={{.Task.Slot}}", "GILBENCH_TASK={{.Task.ID}}",
             "GILBENCH_NODE={{.Node.Hostname}}"],
        user="gilbench", workdir="/", read_only=True, cap_drop=list(CAP_DROP),
        mounts=[docker.types.Mount("/tmp", None, type="tmpfs", tmpfs_size=TMPFS_BYTES)],
        configs=[docker.types.ConfigReference(config.id, config.name, filename=BUNDLE,
                                              uid="1000", gid="1000", mode=0o444)],
        labels={LABEL: job.name},
    )
    resources = docker.types.Resources(cpu_limit=int(job.cpus * 1e9),
                                       mem_limit=_memory_bytes(job.memory))
    resources.setdefault("Limits", {})["Pids"] = pids_limit(most)  # API 1.41
    return docker.types.TaskTemplate(
        spec, resources=resources,
        restart_policy=docker.types.RestartPolicy("on-failure", delay=1_000_000_000,
                                                  max_attempts=RETRIES),
        networks=[docker.types.NetworkAttachmentConfig(network)] if network else None)


def _slot(task: dict[str, Any]) -> int:
    return int(task.get("Slot") or 0)  # the API leaves slot 0 out


def _settled(tasks: list[dict[str, Any]], replicas: int) -> bool:
    """Every slot completed, or failed every attempt Swarm will make."""
    for slot in range(replicas):
        mine = [t for t in tasks if _slot(t) == slot]
        states = [t["Status"]["State"] for t in mine]
        if "complete" in states:
            continue
        if len(mine) < 1 + RETRIES or any(s not in TERMINAL for s in states):
            return False
    return True


def _logs(service: Any, emit: Events, idle_s: float = LOG_IDLE_S,
          tries: int = LOG_TRIES) -> dict[str, list[str]]:
    """The service's stdout lines by task id (Swarm's `details` tag each line).

    A non-follow log request made as the job settles can stay open after every line came
    (seen in CI on Docker 20.10: it never ended, while the same request a moment later
    answers at once), and the SDK reads streams without a timeout. So a stream that sends
    nothing for `idle_s` is abandoned and asked again; after `tries`, the most complete
    answer is used and the check that follows names any missing records."""
    best: list[bytes] = []
    for attempt in range(1, tries + 1):
        frames, ended = _read_frames(service, idle_s)
        if ended:
            return _by_task(frames)
        best = max(best, frames, key=len)
        emit("warning", f"Swarm's log stream of {service.name} stopped without ending "
                        f"(try {attempt} of {tries}, {len(frames)} lines)")
    return _by_task(best)


def _read_frames(service: Any, idle_s: float) -> tuple[list[bytes], bool]:
    """One log request read in a thread: (its frames, whether the stream ended) once it
    ended or sent nothing for `idle_s` (the thread is left to the abandoned stream)."""
    frames: list[bytes] = []
    ended = threading.Event()

    def read() -> None:
        with contextlib.suppress(Exception):  # the stream's end, or its abandonment
            frames.extend(service.logs(stdout=True, stderr=False, details=True,
                                       timestamps=False))
        ended.set()

    threading.Thread(target=read, daemon=True, name="gilbench-swarm-logs").start()
    seen, quiet_since = -1, time.monotonic()
    while not ended.wait(0.5):
        if len(frames) != seen:
            seen, quiet_since = len(frames), time.monotonic()
        elif time.monotonic() - quiet_since > idle_s:
            return list(frames), False
    return list(frames), True


def _by_task(frames: list[bytes]) -> dict[str, list[str]]:
    by_task: dict[str, list[str]] = {}
    pending: dict[str, str] = {}
    for frame in frames:
        text = frame.decode(errors="replace")
        tags, _, message = text.partition(" ")
        task = ""
        for tag in tags.split(","):
            key, _, value = tag.partition("=")
            if key == "com.docker.swarm.task.id":
                task = value
        # A frame is one message; a long line may come in several (Docker splits at 16 KB).
        joined = pending.pop(task, "") + message
        if not joined.endswith("\n"):
            pending[task] = joined
            continue
        by_task.setdefault(task, []).append(joined.rstrip("\n"))
    for task, rest in pending.items():
        by_task.setdefault(task, []).append(rest)
    return by_task


def _import(job: Job, run: dict[str, Any], log: tasklog.PodLog, task: dict[str, Any] | None,
            results_dir: Path, service: dict[str, Any]) -> Path:
    from gilbench.run import _python_entry, experiments_hash

    facts = log.pod
    index = run["index"]
    spec = (((task or {}).get("Spec") or {}).get("Resources") or {}).get("Limits") or {}
    backend = {
        "name": KIND, "service": service, "slot": index - 1,
        "task": (task or {}).get("ID"), "node": facts.get("node"), "image": job.target.image,
        "cpuset": facts.get("cpuset"), "cgroup_cpu_max": facts.get("cpu_max"),
        "affinity": facts.get("affinity"), "nano_cpus": spec.get("NanoCPUs"),
        "memory_bytes": spec.get("MemoryBytes"), "pids_limit": spec.get("Pids"),
        "user": "gilbench", "read_only_rootfs": True, "cap_drop": ["ALL"],
        "tmpfs": {"/tmp": TMPFS_BYTES},
        "network": "an internal overlay network of the job's own (Swarm refuses none)",
        "not_applied": ["cpuset", "no-new-privileges", "network none"],
    }
    manifest = runfolder.Manifest(
        run_id=run["run_id"], started_at=str(facts.get("started_at") or job.created_at),
        tool_version=__version__, experiments_hash=experiments_hash(), command=job.command,
        matrix={"name": job.matrix.name,
                "path": str(job.matrix.path) if job.matrix.path else None,
                "text": job.matrix.text, "description": job.matrix.description},
        order={"kind": job.matrix.order, "seed": job.seed, "batch": job.matrix.batch,
               "retry_contended": 0},
        cells=run["cells"],
        limits={"cpuset": facts.get("cpuset") or "", "memory": job.memory},
        backend={job.target.id: backend},
        host=dict(facts.get("host") or {}),
        pythons={job.target.id: _python_entry(job.target, job.label, log.probe)},
        shard=shards.manifest_entry(job.all_cells, shards.Shard(index, job.replicas),
                                    job.matrix.text, job.seed),
        extra={"swarm": {"service": service, "slot": index - 1,
                         "task": (task or {}).get("ID"), "node": facts.get("node")}},
    )
    got = {(x["cell_id"], x["repetition"]) for x in log.records}
    if log.done is not None and all((c["cell_id"], r) in got
                                    for c in run["cells"] for r in c["repetitions"]):
        manifest.finished_at = log.done[1] or runfolder.now()
    return runfolder.write_new_run(results_dir / run["run_id"], manifest, log.records,
                                   EXPERIMENTS_DIR, if_taken="remove it and run the job again")


def _collect(job: Job, tasks: list[dict[str, Any]], logs: dict[str, list[str]],
             results_dir: Path, service: dict[str, Any]) -> list[ShardResult]:
    results = []
    for run in job.runs:
        slot = run["index"] - 1
        mine = sorted((t for t in tasks if _slot(t) == slot),
                      key=lambda t: t.get("CreatedAt", ""))
        expected = {(c["cell_id"], r) for c in run["cells"] for r in c["repetitions"]}
        parsed = [(t, tasklog.parse_log("\n".join(logs.get(t["ID"], [])), run["run_id"],
                                        expected)) for t in mine]
        # A task's own report of its slot must agree with Swarm's (the slot -> shard map).
        parsed = [(t, log) for t, log in parsed
                  if not log.pod or log.pod.get("slot") in (None, slot)]
        done = [(t, log) for t, log in parsed if t["Status"]["State"] == "complete"]
        chosen = done[-1] if done else (parsed[-1] if parsed else None)
        discarded = sum(len(log.records) for t, log in parsed
                        if chosen is None or t is not chosen[0])
        log = chosen[1] if chosen else tasklog.PodLog()
        run_dir = _import(job, run, log, chosen[0] if chosen else None, results_dir,
                          service)
        results.append(ShardResult(run["index"], run_dir, len(log.records), len(expected),
                                   len(mine), len(done), discarded,
                                   log.done[0] if log.done else None))
    return results


Events = Callable[[str, Any], None]


def run(job: Job, results_dir: Path, on_event: Events | None = None,
        client: docker.DockerClient | None = None, timeout_s: float = 24 * 3600) -> Result:
    """Run the job on the swarm `client` manages, wait for it, import and merge its shards.
    The service, its config and network are removed at the end, whatever happens."""
    emit = on_event or (lambda kind, payload: None)
    client = client or engine.connect(timeout=600)
    check_swarm(client)
    data = bundle(job)
    labels = {LABEL: job.name}
    created: list[Any] = []
    try:
        config = client.configs.create(name=f"{job.name}-bundle", data=data, labels=labels)
        created.append(config)
        network: str | None = None
        try:
            net = client.networks.create(f"{job.name}-net", driver="overlay", internal=True,
                                         labels=labels)
            created.append(net)
            network = net.id
        except docker.errors.APIError as exc:  # no overlay driver: Swarm's default network
            emit("warning", f"no internal overlay network ({exc.explanation}); the tasks "
                            "get Swarm's default network")
        template = _task_template(job, config, network)
        answer = client.api.create_service(
            template, name=job.name, labels=labels,
            mode=docker.types.ServiceMode("replicated-job", replicas=job.replicas,
                                          concurrency=job.replicas))
        service = client.services.get(answer["ID"])
        created.append(service)
        emit("service", {"id": service.id, "name": job.name})
        deadline = time.monotonic() + timeout_s
        seen: dict[str, str] = {}
        while True:
            tasks = service.tasks()
            for task in tasks:
                state = task["Status"]["State"]
                if seen.get(task["ID"]) != state:
                    seen[task["ID"]] = state
                    emit("task", {"id": task["ID"], "slot": _slot(task), "state": state})
            if _settled(tasks, job.replicas) or time.monotonic() > deadline:
                break
            time.sleep(POLL_S)
        info = {"id": service.id, "name": job.name, "mode": "replicated-job",
                "replicas": job.replicas, "restart_attempts": RETRIES,
                "config": config.id, "network": network}
        results = _collect(job, tasks, _logs(service, emit), results_dir, info)
        run_dirs = [r.run_dir for r in results if r.run_dir is not None]
        if len(run_dirs) == 1:
            return Result(run_dirs[0], service.id, results)
        merged = merge.merge(run_dirs, results_dir / runfolder.new_run_id(),
                             command=job.command)
        manifest = runfolder.read_manifest(merged)
        manifest.extra["swarm"] = {**info, "shards": {
            str(r.index): {"attempts": r.attempts, "completed": r.completed,
                           "records": r.records, "planned": r.planned,
                           "discarded": r.discarded, "exit_status": r.exit_status}
            for r in results}}
        runfolder.write_manifest(merged, manifest)
        return Result(merged, service.id, results)
    finally:
        # The service first: its tasks hold the network and config until they are gone.
        for thing in reversed(created):
            with contextlib.suppress(docker.errors.DockerException):
                thing.remove()
            if thing is service_of(created):
                _wait_gone(client, thing.id)


def service_of(created: list[Any]) -> Any:
    return next((t for t in created if isinstance(t, docker.models.services.Service)), None)


def _wait_gone(client: docker.DockerClient, service_id: str, timeout_s: float = 30) -> None:
    """A removed service's tasks still hold its network and config for a moment."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not client.containers.list(all=True, filters={
                "label": f"com.docker.swarm.service.id={service_id}"}):
            return
        time.sleep(0.5)
