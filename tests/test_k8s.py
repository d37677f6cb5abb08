"""invoke k8s-manifest: the Indexed Job validated against Kubernetes' OpenAPI schema (the
kubernetes-validate package, its bundled v1.30 schemas, strict: unknown fields refused),
its sandbox and resources, the cells of its shards, and the pod's own script run here on
a real interpreter, its output imported as a run folder."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from gilbench import k8s, runfolder, shards
from gilbench import matrix as matrices
from gilbench.errors import GilbenchError
from gilbench.paths import REPO

K8S_VERSION = "1.30"  # the oldest release we claim, with backoffLimitPerIndex (beta, on)
IMAGE = "registry.example.com/gilbench/cpython:3.12-pgo"
TINY = """\
workers = [1, 2]
repetitions = 2
warmups = 0
timeout_s = 60
[models.sequential]
[models.threads]
[workloads.fib]
n = 12
tasks = 2
"""


def validate(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def documents(path: Path) -> list[dict[str, Any]]:
    """job.yaml's documents, read as YAML (what kubectl does)."""
    import yaml

    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[k8s.Plan, Path]:
    plan = k8s.plan(k8s.Options("quick", 3, IMAGE))
    folder = tmp_path_factory.mktemp("bundle")
    k8s.write(plan, folder)
    return plan, folder


def the_job(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return next(obj for obj in objs if obj["kind"] == "Job")


def test_every_document_validates_against_the_openapi_schema(
        bundle: tuple[k8s.Plan, Path]) -> None:
    _, folder = bundle
    objs = documents(folder / "job.yaml") + documents(folder / "networkpolicy.yaml")
    assert [obj["kind"] for obj in objs] == ["ConfigMap", "ConfigMap", "Job", "NetworkPolicy"]
    for obj in objs:
        validate(obj)
        assert k8s.api_problems(obj) == []


@pytest.mark.parametrize("path, value", [
    (("spec", "backoffLimitPerIndx"), 1),  # a misspelt field: strict schemas refuse it
    (("spec", "completions"), "3"),  # a string where an integer goes
    (("spec", "template", "spec", "containers", 0, "resources", "limits", "cpu"), ["2"]),
    (("spec", "template", "spec", "containers", 0, "securityContext", "runAsNonRoot"), "yes"),
])
def test_the_schema_refuses_a_wrong_field(bundle: tuple[k8s.Plan, Path], path: tuple[Any, ...],
                                          value: Any) -> None:
    job = the_job(documents(bundle[1] / "job.yaml"))
    where: Any = job
    for step in path[:-1]:
        where = where[step]
    where[path[-1]] = value
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(job)


@pytest.mark.parametrize("path, value, problem", [
    (("spec", "completionMode"), "Sideways", "completionMode 'Sideways'"),
    (("spec", "template", "spec", "containers", 0, "resources", "limits", "cpu"), "two cores",
     "is not a quantity"),
    (("spec", "template", "spec", "restartPolicy"), "Always", "restartPolicy"),
])
def test_api_rules_the_schema_lacks_are_checked(bundle: tuple[k8s.Plan, Path],
                                                path: tuple[Any, ...], value: Any,
                                                problem: str) -> None:
    """The OpenAPI schema has no enums and no quantity syntax (the API server's code checks
    them), so a Sideways completion mode passes it: api_problems is what catches it."""
    job = the_job(documents(bundle[1] / "job.yaml"))
    where: Any = job
    for step in path[:-1]:
        where = where[step]
    where[path[-1]] = value
    if problem != "restartPolicy":
        validate(job)  # the schema alone lets it through
    assert any(problem in found for found in k8s.api_problems(job))


def test_resources_are_guaranteed_whole_cores_and_the_pod_is_sandboxed(
        bundle: tuple[k8s.Plan, Path]) -> None:
    _, folder = bundle
    job = the_job(documents(folder / "job.yaml"))
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == (
        "Indexed", 3, 3)
    assert spec["backoffLimitPerIndex"] == 1
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000
    [container] = pod["containers"]
    resources = container["resources"]
    assert resources["requests"] == resources["limits"]
    assert resources["limits"] == {"cpu": "2", "memory": "2Gi"}  # quick: up to 2 workers
    assert re.fullmatch(r"[1-9][0-9]*", resources["limits"]["cpu"])
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["runAsNonRoot"] is True and security["runAsUser"] == 1000
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["tmp"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "256Mi"}
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    assert mounts["/lab"]["readOnly"] is True and mounts["/tmp"]["name"] == "tmp"
    # The index mapping: JOB_COMPLETION_INDEX 0 is gilbench's shard 1.
    script = container["command"][-1]
    assert "shard=$((JOB_COMPLETION_INDEX + 1))" in script
    assert '/lab/cells/shard-$shard.jsonl' in script
    assert container["workingDir"] == "/lab"


def test_flags_set_cores_memory_and_parallelism() -> None:
    plan = k8s.plan(k8s.Options("default", 4, IMAGE, memory="3Gi", cpus=8, parallelism=2,
                                name="bench-1"))
    job = the_job(k8s.objects(plan))
    assert job["metadata"]["name"] == "bench-1"
    assert job["spec"]["parallelism"] == 2
    limits = job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {"cpu": "8", "memory": "3Gi"}


def test_the_shards_cells_together_are_exactly_the_matrix(bundle: tuple[k8s.Plan, Path]) -> None:
    plan, folder = bundle
    cell_maps = [obj for obj in documents(folder / "job.yaml")
                 if obj["kind"] == "ConfigMap" and "-cells-" in obj["metadata"]["name"]]
    data = {key: value for obj in cell_maps for key, value in obj["data"].items()}
    expected = matrices.expand(matrices.load("quick"), {plan.python: plan.label})
    parts = shards.assign(expected, 3)
    seen: list[str] = []
    for index, run in enumerate(plan.runs, 1):
        lines = [json.loads(line) for line in data[f"cells.shard-{index}.jsonl"].splitlines()]
        assert {cell["run_id"] for cell in lines} == {run["run_id"]}
        # One line per cell and round (batch 1: a repetition a line), as the Docker runner
        # feeds the driver: every repetition of the shard's cells once.
        pairs = sorted((cell["cell_id"], rep) for cell in lines for rep in cell["repetitions"])
        assert pairs == sorted((cell["cell_id"], rep) for cell in parts[index - 1]
                               for rep in cell["repetitions"])
        seen += sorted({cell["cell_id"] for cell in lines})
    assert sorted(seen) == sorted(cell["cell_id"] for cell in expected)  # none twice
    assert len({run["run_id"] for run in plan.runs}) == 3
    # Every projected path is a key of its ConfigMap.
    job = the_job(documents(folder / "job.yaml"))
    keys = {obj["metadata"]["name"]: set(obj["data"]) for obj in documents(folder / "job.yaml")
            if obj["kind"] == "ConfigMap"}
    for source in job["spec"]["template"]["spec"]["volumes"][0]["projected"]["sources"]:
        items = source["configMap"]["items"]
        assert {item["key"] for item in items} == keys[source["configMap"]["name"]]


@pytest.mark.parametrize("options, sentence", [
    (k8s.Options("quick", 0, IMAGE), "--shards 0 must be at least 1"),
    (k8s.Options("no-such-matrix", 2, IMAGE), "There is no matrix named 'no-such-matrix'"),
    (k8s.Options("quick", 2, "Registry/Bad::tag"), "is not an image reference"),
    (k8s.Options("quick", 2, "ubuntu:"), "is not an image reference"),
    (k8s.Options("quick", 2, IMAGE, memory="2 GB"), "must be a Kubernetes memory quantity"),
    (k8s.Options("quick", 2, IMAGE, cpus=0), "--cpus 0"),
    (k8s.Options("quick", 2, IMAGE, parallelism=3), "--parallelism 3"),
    (k8s.Options("quick", 23, IMAGE), "more than the 22 cells"),
    (k8s.Options("quick", 2, IMAGE, name="Not_A_Name"), "--name 'Not_A_Name'"),
])
def test_bad_input_is_one_sentence(options: k8s.Options, sentence: str) -> None:
    with pytest.raises(GilbenchError, match=re.escape(sentence)):
        k8s.plan(options)


@pytest.mark.parametrize("image", ["python", "localhost:5000/gilbench/cpython:3.13.5-pgo",
                                   "gilbench/cpython@sha256:" + "a" * 64,
                                   "[::1]:5000/x/y:tag"])
def test_valid_image_references_are_accepted(image: str) -> None:
    assert k8s.check_image(image) == image


def test_a_manifest_over_the_configmap_limit_is_refused() -> None:
    """The full matrix's cells in one shard take about 1.4 MB, over the real 1 MiB."""
    plan = k8s.plan(k8s.Options("full", 1, IMAGE))
    with pytest.raises(GilbenchError, match=r"Shard 1 of 1 has \d+ bytes of cells, over the "
                       r"1048576 bytes a ConfigMap holds; split the matrix into more shards"):
        k8s.objects(plan)
    k8s.objects(k8s.plan(k8s.Options("full", 2, IMAGE)))  # two shards fit


def test_big_matrices_spread_their_cells_over_more_configmaps(
        monkeypatch: pytest.MonkeyPatch) -> None:
    plan = k8s.plan(k8s.Options("full", 8, IMAGE))
    monkeypatch.setattr(k8s, "CONFIGMAP_LIMIT", 400_000)  # two shards a ConfigMap
    maps = [obj for obj in k8s.objects(plan) if obj["kind"] == "ConfigMap"]
    cell_maps = [m for m in maps if "-cells-" in m["metadata"]["name"]]
    assert len(cell_maps) > 1
    for configmap in cell_maps:
        assert sum(len(k) + len(v.encode()) for k, v in configmap["data"].items()) <= 400_000


def test_the_cli_exits_non_zero_with_one_sentence(tmp_path: Path) -> None:
    run = subprocess.run(
        [str(REPO / ".venv" / "bin" / "invoke"), "--search-root", str(REPO), "k8s-manifest",
         "--shards", "abc", "--image", IMAGE, "--output", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 1
    assert run.stderr.strip() == "error: --shards 'abc' must be a whole number, e.g. --shards 4."


def test_collect_script_reads_each_index_and_merges(bundle: tuple[k8s.Plan, Path]) -> None:
    plan, folder = bundle
    script = (folder / "collect.sh").read_text()
    assert os.access(folder / "collect.sh", os.X_OK)
    assert f"batch.kubernetes.io/job-name={plan.name}" in script
    assert "batch.kubernetes.io/job-completion-index=$index" in script
    assert "$kubectl logs" in script and "import-records" in script
    runs = ",".join(run["run_id"] for run in plan.runs)
    assert f"$gilbench merge {runs} -o {plan.name}" in script
    subprocess.run(["sh", "-n", str(folder / "collect.sh")], check=True)


# --- the pod, run here ---------------------------------------------------------------------

def lay_out_lab(plan: k8s.Plan, lab: Path) -> None:
    """The projected volume as the kubelet lays it out: every ConfigMap key at its path."""
    for _, files in k8s.file_groups(plan):
        for path, text in files.items():
            (lab / path).parent.mkdir(parents=True, exist_ok=True)
            (lab / path).write_text(text)


def run_pod(plan: k8s.Plan, lab: Path, python: Path, index: int) -> str:
    """The container's command with /lab and the image's python pointed at this host's,
    stdout and stderr together as `kubectl logs` gives them."""
    script = k8s.ENTRY.replace(k8s.LAB, str(lab)).replace(k8s.PYTHON, str(python))
    (lab / "gilbench-pod.py").write_text(k8s.POD_INFO.replace(k8s.LAB, str(lab)))
    env = {"PATH": os.environ["PATH"], "JOB_COMPLETION_INDEX": str(index),
           "NODE_NAME": "node-a", "POD_NAME": f"{plan.name}-{index}-xyz"}
    done = subprocess.run(["/bin/sh", "-c", script], cwd=lab, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    # Interleave as the runtime's log does: line by line, stderr lines in between.
    return "".join(f"{out}\n{err}\n" for out, err in itertools.zip_longest(
        done.stdout.splitlines(), done.stderr.splitlines(), fillvalue=""))


def test_a_pod_output_becomes_a_run_folder(tmp_path: Path, python312: Path) -> None:
    matrix = tmp_path / "tiny.toml"
    matrix.write_text(TINY)
    plan = k8s.plan(k8s.Options(str(matrix), 2, IMAGE))
    lab = tmp_path / "lab"
    lay_out_lab(plan, lab)
    text = run_pod(plan, lab, python312, 1)  # JOB_COMPLETION_INDEX 1: shard 2
    run = plan.runs[1]
    results = tmp_path / "results"
    imported = k8s.import_shard(plan, 2, text, results)
    planned = sum(len(cell["repetitions"]) for cell in run["cells"])
    assert (imported.records, imported.missing, imported.exit_status) == (planned, 0, 0)
    assert imported.run_dir == results / run["run_id"]
    manifest = runfolder.read_manifest(imported.run_dir)
    records = runfolder.read_records(imported.run_dir)
    assert len(records.records) == planned and not records.damaged
    assert {r["status"] for r in records.records} == {"ok"}
    assert manifest.finished_at is not None
    assert manifest.host["hostname"] == "node-a"
    assert manifest.pythons[plan.python]["version"].startswith("3.12")
    assert manifest.backend[plan.python]["pod"] == f"{plan.name}-1-xyz"
    assert manifest.to_json()["shard"]["index"] == 2
    assert runfolder.harness(imported.run_dir) is not None
    # A second import of the same shard is refused rather than doubling its records.
    with pytest.raises(GilbenchError, match="already imported"):
        k8s.import_shard(plan, 2, text, results)
    # Shard 2's output is no record of shard 1's (another run id).
    assert k8s.import_shard(plan, 1, text, results).records == 0
    # A pod killed halfway: what it printed is kept, what it did not is counted missing,
    # and a record printed twice (a torn, retried write) counts once.
    lines = text.splitlines()
    records_at = [i for i, line in enumerate(lines) if line.startswith("{")]
    cut = [*lines[:records_at[1] + 1], lines[records_at[0]]]
    partial = k8s.import_shard(plan, 2, "\n".join(cut), tmp_path / "partial")
    assert (partial.records, partial.missing, partial.exit_status) == (2, planned - 2, None)
    assert runfolder.read_manifest(partial.run_dir).finished_at is None
