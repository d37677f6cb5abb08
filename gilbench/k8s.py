"""Kubernetes: a matrix's shards as one Indexed Job, and their records back as run folders.

`invoke k8s-manifest` writes a bundle (a folder) that a user applies to their cluster:

- `job.yaml`: ConfigMaps holding the target side (experiments/, the same files the Docker
  runner copies into its container) and each shard's cells, and a batch/v1 Job with
  `completionMode: Indexed`. Pod I (JOB_COMPLETION_INDEX, 0-based) runs shard I+1 (gilbench
  shards count from 1) of gilbench.shards' assignment, with the driver reading its cells
  from the ConfigMap and printing records on stdout, where `kubectl logs` finds them. The
  documents are JSON, which is YAML: kubectl reads them and no YAML library is needed.
- `networkpolicy.yaml`: optional; denies all traffic of the job's pods where the network
  plugin enforces NetworkPolicies (the cells need no network).
- `collect.sh`: per index, the logs of the pod that succeeded into logs/, each turned into
  a run folder by `invoke import-records`, then `invoke merge` of those runs.
- `plan.json`: what the host needs to make run folders of the logs: the run id, cells and
  seed of each shard, the matrix, the harness that was shipped and its hash.

The pod is sandboxed like the Docker runner's container (DockerRunner): non-root uid 1000
(the image's gilbench user), read-only root filesystem, a memory-backed /tmp, every
capability dropped, no privilege escalation, seccomp RuntimeDefault, no service account
token. CPU requests equal limits in whole cores, and memory too, so the pod is of the
Guaranteed QoS class and the kubelet's static CPU Manager policy pins whole cores. What
Kubernetes cannot say in a pod spec: a pids limit (the kubelet's podPidsLimit is per node).

Nothing here talks to a cluster; the manifests are checked against Kubernetes' OpenAPI
schema in the tests (kubernetes-validate) and against the API server's own rules that the
schema does not carry (api_problems).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shlex
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gilbench import __version__, runfolder, shards, taskhost
from gilbench import matrix as matrices
from gilbench.errors import GilbenchError
from gilbench.paths import REPO
from gilbench.tasklog import DONE_LINE, POD_LINE, PROBE_LINE, PodLog, parse_log  # noqa: F401

KIND = "kubernetes"  # the backend name runs made here record
PYTHON = "/opt/cpython/bin/python3"  # where `invoke build` installs CPython in the image
UID = 1000  # the image's gilbench user (docker/Dockerfile)
LAB = "/lab"  # the ConfigMaps, mounted read-only: the driver runs here
PLAN_SCHEMA_VERSION = 1
# A ConfigMap's data (keys and values) may hold at most 1 MiB (the API server's
# MaxSecretSize); cells go into as many ConfigMaps as it takes, a shard never split.
CONFIGMAP_LIMIT = 1024 * 1024
TMP_SIZE = "256Mi"  # as the Docker runner's tmpfs; memory-backed, so it counts as memory
RETRIES_PER_INDEX = 1  # a pod that fails (evicted, node lost) is run once more
NAME_MAX = 52  # the Job's name: a label value (63) less "-cells-NN" and room to spare


# What a pod says about where it ran (gilbench/taskhost.py, shipped with hostinfo.py and
# topology.py: standard library only) beside the cells.
POD_INFO = f'''\
import os, sys
sys.path.insert(0, "{LAB}/host")
from gilbench import taskhost
taskhost.report({POD_LINE!r}, os.environ.get("NODE_NAME"), "pod_hostname",
                shard=int(sys.argv[1]), index=os.environ.get("JOB_COMPLETION_INDEX"),
                pod=os.environ.get("POD_NAME"))
'''

# JOB_COMPLETION_INDEX counts from 0, gilbench's shards from 1: the shell maps it, so the
# mapping is visible in the manifest. The driver's exit status is the pod's.
ENTRY = f"""set -eu
shard=$((JOB_COMPLETION_INDEX + 1))
{PYTHON} -I {LAB}/gilbench-pod.py "$shard"
printf '{PROBE_LINE}'
{PYTHON} -E -s -m experiments.driver --probe
status=0
{PYTHON} -E -s -m experiments.driver "{LAB}/cells/shard-$shard.jsonl" || status=$?
echo "{DONE_LINE}$status $(date -u +%Y-%m-%dT%H:%M:%S+00:00)"
exit "$status"
"""

# distribution/reference's grammar (what `docker pull` and the kubelet accept).
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = (r"(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
           r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[0-9a-fA-F:]+\])"
           r"(?::[0-9]+)?")
IMAGE_REFERENCE = re.compile(
    rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?")
# The API server's quantity syntax (k8s.io/apimachinery resource.ParseQuantity).
QUANTITY = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
                      r"(?:Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?")
_MEMORY = re.compile(r"([0-9]+)(Ki|Mi|Gi|Ti|[kMGT])?")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@dataclass(frozen=True)
class Options:
    matrix: str  # a name or a path, as for `invoke experiment`
    shards: int
    image: str
    memory: str = "2Gi"
    cpus: int | None = None  # default: the matrix's largest worker count
    parallelism: int | None = None  # default: every shard at once
    name: str | None = None  # the Job's; default: gilbench-MATRIX-<hash>


@dataclass
class Plan:
    """Everything the bundle is made of; plan.json is its JSON."""

    name: str
    image: str
    python: str  # the cells' python id
    label: str
    shards: int
    parallelism: int
    cpus: int
    memory: str
    matrix: dict[str, Any]
    order: dict[str, Any]
    experiments_hash: str
    harness: dict[str, str]  # path under LAB -> text
    runs: list[dict[str, Any]]  # per shard: index, run_id, cells (run order)
    created_at: str = ""
    command: str = ""
    tool_version: str = __version__
    schema_version: int = PLAN_SCHEMA_VERSION
    all_cells: list[dict[str, Any]] = field(default_factory=list)  # the matrix's, expanded


def check_image(image: str) -> str:
    if len(image) > 255 or not IMAGE_REFERENCE.fullmatch(image):
        raise GilbenchError(
            f"--image {image!r} is not an image reference a cluster can pull; give one like "
            "registry.example.com/gilbench/cpython:3.12-pgo (push the image `invoke build` "
            "made there first).")
    return image


def check_memory(memory: str) -> str:
    match = _MEMORY.fullmatch(memory.strip())
    if not match or int(match.group(1)) == 0:
        raise GilbenchError(f"--memory {memory!r} must be a Kubernetes memory quantity above "
                            "0 in whole units, e.g. --memory 2Gi or --memory 512Mi.")
    return memory.strip()


def _job_name(options: Options, matrix_name: str, digest: str) -> str:
    if options.name is not None:
        if len(options.name) > NAME_MAX or not _DNS_LABEL.fullmatch(options.name):
            raise GilbenchError(
                f"--name {options.name!r} must be lowercase letters, digits and '-', start "
                f"and end with a letter or digit, at most {NAME_MAX} characters.")
        return options.name
    stem = re.sub(r"[^a-z0-9]+", "-", matrix_name.lower()).strip("-")[:NAME_MAX - 16] or "m"
    return f"gilbench-{stem}-{digest[:6]}"


def _harness() -> dict[str, str]:
    """experiments/ as the Docker runner ships it (text files; the matrices come along)."""
    from gilbench.runners import experiments_files

    return {path: data.decode("utf-8") for path, data in experiments_files().items()}


def _tree_hash(files: dict[str, str]) -> str:
    """gilbench.run.experiments_hash of these files, computed from a copy on disk so the
    two can never disagree."""
    from gilbench.run import experiments_hash

    with tempfile.TemporaryDirectory(prefix="gilbench-k8s-") as tmp:
        root = _unpack(files, Path(tmp))
        return experiments_hash(root)


def _unpack(files: dict[str, str], folder: Path) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder / "experiments"


def plan(options: Options, command: str = "") -> Plan:
    """The shards of a matrix for one image, each a future run with its own run id."""
    if options.shards < 1:
        raise GilbenchError(f"--shards {options.shards} must be at least 1: the number of "
                            "pods, each running one shard of the matrix.")
    image = check_image(options.image)
    memory = check_memory(options.memory)
    matrix = matrices.load(options.matrix)
    if matrix.target_ci or matrix.retry_contended:
        raise GilbenchError(
            f"Matrix {matrix.path or matrix.name} asks for adaptive sampling or contended "
            "retries, which need the host between rounds; a Kubernetes Job runs fixed "
            "repetitions, so drop target_ci and retry_contended for it.")
    from gilbench import userwork

    users = [name for name in matrix.workloads if userwork.is_spec(name)]
    if users:
        raise GilbenchError(
            f"Matrix {matrix.path or matrix.name} has the user workload {users[0]!r}; "
            "k8s-manifest ships only the built-in workloads, so run it with `invoke "
            "experiment` (Docker or native) instead.")
    python, label = f"{KIND}:{image}", image
    cells = matrices.expand(matrix, {python: label})
    most = max(cell["workers"] for cell in cells)
    cpus = options.cpus if options.cpus is not None else most
    if cpus < 1:
        raise GilbenchError(f"--cpus {cpus} must be a whole number of cores, at least 1.")
    parallelism = options.parallelism if options.parallelism is not None else options.shards
    if not 1 <= parallelism <= options.shards:
        raise GilbenchError(f"--parallelism {parallelism} must be from 1 to the number of "
                            f"shards ({options.shards}).")
    if options.shards > len(cells):
        raise GilbenchError(
            f"--shards {options.shards} is more than the {len(cells)} cells of matrix "
            f"{matrix.name}; some pods would have nothing to run, so use at most "
            f"{len(cells)}.")
    harness = _harness()
    tree = _tree_hash(harness)
    digest = hashlib.sha256(json.dumps(
        [image, matrix.text, options.shards, tree, runfolder.now()]).encode()).hexdigest()
    name = _job_name(options, matrix.name, digest)
    # One seed for every shard: the order within each is reproducible from the plan.
    seed = int(digest[:8], 16)
    run_ids: list[str] = []
    while len(run_ids) < options.shards:
        run_id = runfolder.new_run_id()
        if run_id not in run_ids:  # four hex digits: shards started together may collide
            run_ids.append(run_id)
    runs = []
    for index, part in enumerate(shards.assign(cells, options.shards), 1):
        mine = [dict(cell) for cell in part]
        if matrix.order == "shuffled":
            random.Random(seed).shuffle(mine)
        runs.append({"index": index, "run_id": run_ids[index - 1], "cells": mine})
    return Plan(
        name=name, image=image, python=python, label=label, shards=options.shards,
        parallelism=parallelism, cpus=cpus, memory=memory,
        matrix={"name": matrix.name, "path": str(matrix.path) if matrix.path else None,
                "text": matrix.text, "description": matrix.description},
        order={"kind": matrix.order, "seed": seed, "batch": matrix.batch,
               "retry_contended": 0},
        experiments_hash=tree, harness=harness, runs=runs, created_at=runfolder.now(),
        command=command, all_cells=cells,
    )


def cell_lines(plan: Plan, run: dict[str, Any]) -> str:
    """A shard's cells file: its rounds (gilbench.run.plan_rounds) in order, each cell with
    the shard's run id, as the Docker runner feeds the driver."""
    from gilbench.run import plan_rounds

    batch = int(plan.order.get("batch") or 1)
    return "".join(json.dumps({**cell, "run_id": run["run_id"]}) + "\n"
                   for _, cells in plan_rounds(run["cells"], batch) for cell in cells)


def _key(path: str) -> str:
    """A ConfigMap key for a file path (keys may not hold '/')."""
    return path.replace("/", ".")


def _host_files() -> dict[str, str]:
    """The host-side metadata functions the pod runs (stdlib only), under host/gilbench."""
    return {f"host/gilbench/{name}": (REPO / "gilbench" / name).read_text(encoding="utf-8")
            for name in taskhost.FILES}


def _size(data: dict[str, str]) -> int:
    return sum(len(key.encode()) + len(value.encode()) for key, value in data.items())


def _labels(plan: Plan) -> dict[str, str]:
    return {"app.kubernetes.io/name": "gilbench", "app.kubernetes.io/instance": plan.name}


def file_groups(plan: Plan) -> list[tuple[str, dict[str, str]]]:
    """(ConfigMap name, files by path under LAB): the harness in one; the pod's script,
    the host-side metadata functions and the cells in as many more as the 1 MiB limit
    takes, a shard never split. A part that cannot fit is one sentence naming the way
    out."""
    size = _size({_key(path): text for path, text in plan.harness.items()})
    if size > CONFIGMAP_LIMIT:
        raise GilbenchError(
            f"experiments/ takes {size} bytes, over the {CONFIGMAP_LIMIT} bytes a ConfigMap "
            "holds, and k8s-manifest cannot ship it in parts; trim experiments/.")
    extra = {"gilbench-pod.py": POD_INFO, **_host_files()}
    groups: list[dict[str, str]] = [dict(extra)]
    for run in plan.runs:
        path, text = f"cells/shard-{run['index']}.jsonl", cell_lines(plan, run)
        alone = _size({_key(path): text})
        if alone > CONFIGMAP_LIMIT - _size(extra):
            raise GilbenchError(
                f"Shard {run['index']} of {plan.shards} has {alone} bytes of cells, over the "
                f"{CONFIGMAP_LIMIT} bytes a ConfigMap holds; split the matrix into more "
                "shards (--shards).")
        if _size({_key(p): t for p, t in groups[-1].items()}) + alone > CONFIGMAP_LIMIT:
            groups.append({})
        groups[-1][path] = text
    return [(f"{plan.name}-harness", dict(plan.harness)),
            *[(f"{plan.name}-cells-{n}", files) for n, files in enumerate(groups)]]


def configmaps(plan: Plan, groups: list[tuple[str, dict[str, str]]]) -> list[dict[str, Any]]:
    return [{"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": name, "labels": _labels(plan)},
             # Immutable: the kubelet stops watching it, and nobody edits a run's input.
             "immutable": True, "data": {_key(path): text for path, text in files.items()}}
            for name, files in groups]


def job(plan: Plan, groups: list[tuple[str, dict[str, str]]]) -> dict[str, Any]:
    """The Indexed Job: pod I runs shard I+1, Guaranteed QoS, sandboxed, never restarted in
    place (a failed pod is replaced, up to RETRIES_PER_INDEX times for its index)."""
    resources = {"cpu": str(plan.cpus), "memory": plan.memory}
    # One read-only folder from several ConfigMaps, each key put back at its path.
    sources = [{"configMap": {"name": name, "items": [
        {"key": _key(path), "path": path} for path in files]}} for name, files in groups]
    container = {
        "name": "driver",
        "image": plan.image,
        "command": ["/bin/sh", "-c", ENTRY],
        "workingDir": LAB,
        "env": [
            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "securityContext": {
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "privileged": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "lab", "mountPath": LAB, "readOnly": True},
                         {"name": "tmp", "mountPath": "/tmp"}],
    }
    pod = {
        "metadata": {"labels": _labels(plan)},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,  # no service addresses in the environment
            "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [container],
            "volumes": [
                {"name": "lab", "projected": {"sources": sources, "defaultMode": 0o444}},
                {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": TMP_SIZE}},
            ],
        },
    }
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": plan.name, "labels": _labels(plan)},
        "spec": {
            "completionMode": "Indexed",
            "completions": plan.shards,
            "parallelism": plan.parallelism,
            # Per index (k8s 1.29+): a failed pod is retried without touching the other
            # indexes; backoffLimit bounds the same total on clusters without it.
            "backoffLimitPerIndex": RETRIES_PER_INDEX,
            "backoffLimit": RETRIES_PER_INDEX * plan.shards,
            "template": pod,
        },
    }


def network_policy(plan: Plan) -> dict[str, Any]:
    """Deny every connection of the job's pods (enforced only by network plugins that
    implement NetworkPolicy)."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": f"{plan.name}-no-network", "labels": _labels(plan)},
            "spec": {"podSelector": {"matchLabels": _labels(plan)},
                     "policyTypes": ["Ingress", "Egress"]}}


def objects(plan: Plan) -> list[dict[str, Any]]:
    """What job.yaml holds: the ConfigMaps, then the Job that mounts them."""
    groups = file_groups(plan)
    return [*configmaps(plan, groups), job(plan, groups)]


def api_problems(obj: dict[str, Any]) -> list[str]:
    """The API server's rules this bundle relies on that the OpenAPI schema does not state
    (it has no enums and no quantity syntax): what `kubectl create` would refuse."""
    found: list[str] = []
    if obj.get("kind") == "ConfigMap":
        for key in obj.get("data") or {}:
            if len(key) > 253 or not re.fullmatch(r"[-._a-zA-Z0-9]+", key):
                found.append(f"ConfigMap key {key!r} is not a valid key")
        if _size(obj.get("data") or {}) > CONFIGMAP_LIMIT:
            found.append("ConfigMap data is over 1 MiB")
    if obj.get("kind") != "Job":
        return found
    spec = obj.get("spec") or {}
    if spec.get("completionMode") not in ("NonIndexed", "Indexed"):
        found.append(f"completionMode {spec.get('completionMode')!r} is not NonIndexed or "
                     "Indexed")
    pod = (spec.get("template") or {}).get("spec") or {}
    if spec.get("backoffLimitPerIndex") is not None and (
            spec.get("completionMode") != "Indexed" or pod.get("restartPolicy") != "Never"):
        found.append("backoffLimitPerIndex needs completionMode Indexed and restartPolicy "
                     "Never")
    if pod.get("restartPolicy") not in ("Never", "OnFailure"):
        found.append(f"a Job's restartPolicy must be Never or OnFailure, not "
                     f"{pod.get('restartPolicy')!r}")
    for container in pod.get("containers") or []:
        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            for resource, value in (resources.get(kind) or {}).items():
                if not (isinstance(value, int | float) or (
                        isinstance(value, str) and QUANTITY.fullmatch(value))):
                    found.append(f"{kind}.{resource} {value!r} is not a quantity")
    return found


def plan_json(plan: Plan) -> dict[str, Any]:
    return {"schema_version": plan.schema_version, "name": plan.name, "image": plan.image,
            "python": plan.python, "label": plan.label, "shards": plan.shards,
            "parallelism": plan.parallelism, "cpus": plan.cpus, "memory": plan.memory,
            "matrix": plan.matrix, "order": plan.order,
            "experiments_hash": plan.experiments_hash, "created_at": plan.created_at,
            "command": plan.command, "tool_version": plan.tool_version,
            "all_cells": plan.all_cells, "runs": plan.runs, "harness": plan.harness}


def read_plan(path: Path) -> Plan:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GilbenchError(f"{path} does not exist; give the plan.json that `invoke "
                            "k8s-manifest` wrote.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GilbenchError(f"{path} cannot be read as a k8s-manifest plan ({exc}); give "
                            "the plan.json that `invoke k8s-manifest` wrote.") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != PLAN_SCHEMA_VERSION:
        raise GilbenchError(f"{path} is not a k8s-manifest plan of schema_version "
                            f"{PLAN_SCHEMA_VERSION} (it says {version!r}); regenerate it "
                            "with this gilbench.")
    try:
        return Plan(**data)
    except TypeError:
        raise GilbenchError(f"{path} lacks fields of a k8s-manifest plan; regenerate it with "
                            "`invoke k8s-manifest`.") from None


def _documents(objs: list[dict[str, Any]]) -> str:
    return "".join(f"---\n{json.dumps(obj, indent=2)}\n" for obj in objs)


def collect_script(plan: Plan) -> str:
    runs = ",".join(run["run_id"] for run in plan.runs)
    selector = f"batch.kubernetes.io/job-name={plan.name}"
    return f"""#!/bin/sh
# Collect the records of Kubernetes Job {plan.name} and merge them into one run.
# Per index: the logs of the pod that succeeded (a retried index has failed pods too,
# whose partial records are left out), else of its newest pod (partial: the import names
# what is missing). Set KUBECTL (e.g. "kubectl -n lab") and GILBENCH (e.g. ./lab, the
# default is gilbench) as your setup needs.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
kubectl=${{KUBECTL:-kubectl}}
gilbench=${{GILBENCH:-gilbench}}
mkdir -p "$here/logs"
for index in $(seq 0 {plan.shards - 1}); do
    shard=$((index + 1))
    pods="-l {selector},batch.kubernetes.io/job-completion-index=$index"
    pod=$($kubectl get pods $pods --field-selector=status.phase=Succeeded -o name | head -n 1)
    if [ -z "$pod" ]; then
        pod=$($kubectl get pods $pods --sort-by=.metadata.creationTimestamp -o name | tail -n 1)
        echo "shard $shard: no pod succeeded; taking what ${{pod:-no pod}} printed" >&2
    fi
    log="$here/logs/shard-$shard.log"
    if [ -n "$pod" ]; then
        $kubectl logs "$pod" > "$log"
    else
        : > "$log"
    fi
    $gilbench import-records --plan "$here/plan.json" --shard "$shard" --log "$log"
done
{f"$gilbench merge {runs} -o {shlex.quote(plan.name)}" if plan.shards > 1 else
  f"echo 'one shard: run {runs} is the whole matrix'"}
"""


@dataclass(frozen=True)
class Written:
    folder: Path
    plan: Plan
    files: list[Path]
    configmaps: int


def write(plan: Plan, folder: Path) -> Written:
    """The bundle in `folder` (created; files of an earlier bundle are replaced)."""
    objs = objects(plan)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        files = {
            "job.yaml": _documents(objs),
            "networkpolicy.yaml": _documents([network_policy(plan)]),
            "collect.sh": collect_script(plan),
            "plan.json": json.dumps(plan_json(plan), indent=1) + "\n",
        }
        paths = []
        for name, text in files.items():
            path = folder / name
            path.write_text(text, encoding="utf-8")
            paths.append(path)
        (folder / "collect.sh").chmod(0o755)
    except OSError as exc:
        raise GilbenchError(f"Cannot write the Kubernetes bundle in {folder} "
                            f"({exc.strerror or exc}); give a writable --output.") from None
    return Written(folder, plan, paths, len(objs) - 1)


# --- from logs to run folders --------------------------------------------------------------

@dataclass(frozen=True)
class Imported:
    run_dir: Path
    records: int
    missing: int  # planned repetitions without a record
    planned: int
    damaged: int
    exit_status: int | None  # the driver's; None: the pod never said (killed, still running)

    def sentence(self, shard: int, count: int) -> str:
        done = f"shard {shard}/{count}: {self.records} of {self.planned} records -> {self.run_dir}"
        if self.missing:
            done += f"; {self.missing} repetitions have no record"
        if self.exit_status is None:
            done += "; the pod did not finish"
        elif self.exit_status:
            done += f"; the driver exited with status {self.exit_status}"
        if self.damaged:
            done += f"; {self.damaged} lines that were not records of this shard were left out"
        return done


def import_shard(plan: Plan, index: int, log_text: str, results_dir: Path) -> Imported:
    """Shard `index`'s pod log as an ordinary run folder, written through gilbench.runfolder
    (the run id the plan gave it, its cells, the harness that was shipped)."""
    from gilbench.run import _python_entry
    from gilbench.targets import Target

    if not 1 <= index <= plan.shards:
        raise GilbenchError(f"--shard {index} is not a shard of job {plan.name}; its shards "
                            f"are 1 to {plan.shards}.")
    run = plan.runs[index - 1]
    expected = {(c["cell_id"], r) for c in run["cells"] for r in c["repetitions"]}
    log = parse_log(log_text, run["run_id"], expected)
    if (results_dir / run["run_id"] / runfolder.MANIFEST).exists():
        raise GilbenchError(f"Shard {index} is already imported as run {run['run_id']} in "
                            f"{results_dir}; remove that folder to import it again.")
    with tempfile.TemporaryDirectory(prefix="gilbench-k8s-") as tmp:
        experiments_dir = _unpack(plan.harness, Path(tmp))
        from gilbench.run import experiments_hash

        if experiments_hash(experiments_dir) != plan.experiments_hash:
            raise GilbenchError("plan.json's harness does not hash to its experiments_hash; "
                                "it was edited, so regenerate the bundle.")
        pod = log.pod
        target = Target(plan.python, plan.label, KIND, PYTHON, plan.image, None)
        manifest = runfolder.Manifest(
            run_id=run["run_id"], started_at=str(pod.get("started_at") or plan.created_at),
            tool_version=plan.tool_version, experiments_hash=plan.experiments_hash,
            command=plan.command, matrix=plan.matrix, order=plan.order, cells=run["cells"],
            limits={"cpuset": pod.get("cpuset") or "", "memory": plan.memory},
            backend={plan.python: {
                "name": KIND, "job": plan.name, "index": index - 1, "pod": pod.get("pod"),
                "node": pod.get("node"), "image": plan.image, "cpuset": pod.get("cpuset"),
                "cgroup_cpu_max": pod.get("cpu_max"), "affinity": pod.get("affinity"),
                "cpu_request": str(plan.cpus), "cpu_limit": str(plan.cpus),
                "memory_request": plan.memory, "memory_limit": plan.memory,
                "user": str(UID), "read_only_rootfs": True, "cap_drop": ["ALL"],
                "tmp": {"medium": "Memory", "sizeLimit": TMP_SIZE}}},
            host=dict(pod.get("host") or {}),
            pythons={plan.python: _python_entry(target, plan.label, log.probe)},
            extra={"shard": shards.manifest_entry(
                plan.all_cells, shards.Shard(index, plan.shards), plan.matrix["text"],
                int(plan.order["seed"])),
                "kubernetes": {"job": plan.name, "index": index - 1, "pod": pod.get("pod"),
                               "node": pod.get("node")}},
        )
        missing = len(expected) - len(log.records)
        if log.done is not None and not missing:
            manifest.finished_at = log.done[1] or runfolder.now()
        run_dir = runfolder.write_new_run(
            results_dir / run["run_id"], manifest, log.records, experiments_dir,
            if_taken="remove it to import the shard again")
    return Imported(run_dir, len(log.records), missing, len(expected),
                    log.damaged, log.done[0] if log.done else None)
