"""Docker Swarm jobs (gilbench/swarm.py).

The real job needs the CPython image tests/test_build_docker.py builds once per CI run,
so its test lives there (test_swarm_job_of_the_built_image) and calls check_swarm_job
here; the refusals below need no image.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from gilbench import matrix as matrices
from gilbench import runfolder, swarm
from gilbench.errors import GilbenchError
from gilbench.targets import Target
from tests.conftest import invoke, require

MATRIX = """\
description = "swarm test: three small cells"
workers = [1, 2]
repetitions = 3
warmups = 0
timeout_s = 60
[models.sequential]
[models.threads]
[workloads.fib]
n = 22
tasks = 8
"""


@contextlib.contextmanager
def swarm_mode(client: docker.DockerClient) -> Iterator[None]:
    """The engine in swarm mode for the test; left again only if the test put it there."""
    state = client.info()["Swarm"]["LocalNodeState"]
    if state != "active":
        client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
    try:
        yield
    finally:
        if state != "active":
            client.swarm.leave(force=True)


def _engine() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except docker.errors.DockerException:
        require(False, "no Docker engine answers (start one: `dockerd &`)")
        raise
    return client


def _killer(client: docker.DockerClient, stop: threading.Event, killed: list[str]) -> None:
    """Kill one task's container once it has printed its first record (slot 0's)."""
    while not stop.is_set() and not killed:
        for container in client.containers.list(filters={"label": swarm.LABEL}):
            with contextlib.suppress(docker.errors.DockerException):
                text = container.logs(stdout=True, stderr=False).decode(errors="replace")
                if any(line.startswith('{"schema_version"') or '"cell_id"' in line
                       for line in text.splitlines() if line.startswith("{")):
                    container.kill()
                    killed.append(container.labels["com.docker.swarm.task.id"])
                    return
        time.sleep(0.2)


def check_swarm_job(target: Target, tmp_path: Path) -> None:
    """A real 2-replica job of the quick matrix on the local engine; one task is killed
    after its first record: Swarm retries it, and the merged run has every record exactly
    once."""
    client = _engine()
    results = tmp_path / "results"
    results.mkdir()
    matrix = matrices.load("quick")
    with swarm_mode(client):
        job = swarm.plan(matrix, target, 2, "1g", command="test")
        stop, killed = threading.Event(), []
        killer = threading.Thread(target=_killer, args=(client, stop, killed), daemon=True)
        killer.start()
        events: list[tuple[str, object]] = []
        try:
            result = swarm.run(job, results, lambda kind, p: events.append((kind, p)),
                               client=client, timeout_s=480)
        finally:
            stop.set()
            killer.join(5)
        # Removed at the end: service, config and network.
        assert not client.services.list(filters={"label": swarm.LABEL})
        assert not client.configs.list(filters={"label": swarm.LABEL})
        assert not client.networks.list(filters={"label": swarm.LABEL})
    assert killed, "the test did not get to kill a task"
    failed = [p for k, p in events if k == "task" and isinstance(p, dict)
              and p["id"] == killed[0] and p["state"] == "failed"]
    assert failed, events
    attempts = {s.index: s.attempts for s in result.shards}
    assert sorted(attempts.values()) == [1, 2], attempts  # the killed slot ran twice
    assert not result.unfinished
    assert sum(s.discarded for s in result.shards) >= 1  # the killed attempt's records
    manifest = runfolder.read_manifest(result.run_dir)
    assert manifest.extra["swarm"]["id"] == result.service
    assert not manifest.merge["missing"] and not manifest.merge["missing_shards"]
    records = runfolder.read_records(result.run_dir).records
    keys = [(r["cell_id"], r["repetition"]) for r in records]
    planned = {(c["cell_id"], rep) for c in manifest.cells for rep in c["repetitions"]}
    assert len(keys) == len(set(keys)) == len(planned) == 66  # 22 cells x 3 repetitions
    assert set(keys) == planned
    # 3.13 has no InterpreterPoolExecutor: those cells say so; every other one is ok.
    assert {r["status"] for r in records if r["model"] != "interpreter-pool"} == {"ok"}, [
        r["message"] for r in records if r["status"] != "ok"]
    for source in manifest.merge["sources"]:
        shard = runfolder.read_manifest(results / source)
        backend = next(iter(shard.backend.values()))
        assert backend["name"] == "swarm" and backend["user"] == "gilbench"
        assert backend["pids_limit"] and backend["memory_bytes"] == 1 << 30
    report = invoke("report", "--run", str(result.run_dir))
    assert report.returncode == 0, report.stderr
    assert (result.run_dir / "report.md").is_file()
    json.dumps(manifest.extra["swarm"])


def test_a_log_stream_that_never_ends_is_asked_again() -> None:
    """Swarm's log stream of a settled job can stay open after its last line (seen in CI):
    it is abandoned after a quiet spell and asked again, and the lines come by task."""
    line = b"com.docker.swarm.task.id=t1 " + b'{"cell_id": "c"}\n'
    hang = threading.Event()

    class Service:
        name, calls = "gilbench-test", 0

        def logs(self, **kwargs: object) -> Iterator[bytes]:
            self.calls += 1
            yield line
            if self.calls == 1:
                hang.wait(30)  # the stuck stream: it sent its line and never ends

    service = Service()
    events: list[tuple[str, object]] = []
    began = time.monotonic()
    lines = swarm._logs(service, lambda kind, p: events.append((kind, p)), idle_s=0.5)
    hang.set()
    assert lines == {"t1": ['{"cell_id": "c"}']} and service.calls == 2
    assert time.monotonic() - began < 5
    assert [k for k, _ in events] == ["warning"] and "try 1 of 3" in str(events[0][1])


# --- refusals (no image needed) ----------------------------------------------------------

def _target() -> Target:
    return Target("c-test", "3.13 test", "docker", "/opt/cpython/bin/python3",
                  "gilbench/cpython:test", None)


def test_replicas_must_be_at_least_one(tmp_path: Path) -> None:
    (tmp_path / "m.toml").write_text(MATRIX)
    with pytest.raises(GilbenchError, match=r"--replicas 0 must be at least 1"):
        swarm.plan(matrices.load(str(tmp_path / "m.toml")), _target(), 0, "1g")
    with pytest.raises(GilbenchError, match=r"--replicas 4 is more than the 3 cells"):
        swarm.plan(matrices.load(str(tmp_path / "m.toml")), _target(), 4, "1g")


def test_plan_covers_every_cell_once_and_fits_a_config(tmp_path: Path) -> None:
    (tmp_path / "m.toml").write_text(MATRIX)
    job = swarm.plan(matrices.load(str(tmp_path / "m.toml")), _target(), 3, "1g")
    ids = [c["cell_id"] for run in job.runs for c in run["cells"]]
    assert sorted(ids) == sorted(c["cell_id"] for c in job.all_cells)
    assert len({run["run_id"] for run in job.runs}) == 3
    assert len(swarm.bundle(job)) < swarm.CONFIG_LIMIT


def test_slot_zero_and_numbers_map_to_shards() -> None:
    import subprocess

    script = swarm.entry("python3").split("\n")[1] + '\necho "$slot"'
    for given, slot in (("xnqh57nr89hvt4ir4l14jeu7r", "0"), ("3", "3"), ("", "0")):
        out = subprocess.run(["sh", "-c", script], env={"GILBENCH_SLOT": given},
                             capture_output=True, text=True, check=True).stdout.strip()
        assert out == slot


def test_an_engine_not_in_swarm_mode_is_one_sentence() -> None:
    class Client:
        def info(self) -> dict[str, object]:
            return {"Swarm": {"LocalNodeState": "inactive"}}

    with pytest.raises(GilbenchError, match=r"not in swarm mode; run `docker swarm init`"):
        swarm.check_swarm(Client())  # type: ignore[arg-type]


def test_the_cli_refuses_replicas_without_swarm_and_swarm_with_shard() -> None:
    out = invoke("experiment", "--replicas", "2")
    assert out.returncode == 1 and "--replicas" in out.stderr and "--swarm" in out.stderr
    out = invoke("experiment", "--swarm", "--replicas", "2", "--shard", "1/2")
    assert out.returncode == 1 and "--shard" in out.stderr, out.stderr
    out = invoke("experiment", "--swarm", "--replicas", "0")
    assert out.returncode == 1 and "--replicas 0" in out.stderr, out.stderr
