"""ssh:// engines (gilbench/engine.py) through a real sshd and the real ssh client.

The run of an experiment over ssh needs the CPython image tests/test_build_docker.py builds,
so it is check_ssh_engine here, called from there; the tests below need no image.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import docker
import pytest

from gilbench import engine, runfolder
from gilbench.errors import BackendUnavailable
from tests.conftest import invoke
from tests.sshd import free_port, ssh_engine


def test_an_ssh_engine_answers_as_the_local_one(
        docker_engine: None, monkeypatch: pytest.MonkeyPatch) -> None:
    local = docker.from_env().info()
    with ssh_engine() as (url, env):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        client = engine.connect(timeout=30, url=url)
        try:
            described = engine.describe(client, url)
        finally:
            client.close()
    # Over ssh to 127.0.0.1 the remote `docker system dial-stdio` reaches this engine.
    assert described["url"] == url
    assert (described["name"], described["server_version"]) == (
        local["Name"], local["ServerVersion"])


def test_an_ssh_engine_that_does_not_answer_is_one_sentence(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with ssh_engine() as (_, env):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        url = f"ssh://root@127.0.0.1:{free_port()}"  # nothing listens there
        # ssh's own reason is in the sentence (the SDK's error would not carry it).
        with pytest.raises(BackendUnavailable, match=rf"The Docker engine at {url} does not "
                           r"answer \(.*Connection refused\); check the URL and that "
                           r"`docker -H .* info` works"):
            engine.connect(timeout=10, url=url)
        # A port that accepts but never speaks: ssh's timeout ends it (the SDK alone hangs).
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen()
            url = f"ssh://root@127.0.0.1:{silent.getsockname()[1]}"
            began = time.monotonic()
            with pytest.raises(BackendUnavailable, match=rf"The Docker engine at {url} does not "
                               r"answer \(.*timed out.*\)"):
                engine.connect(timeout=3, url=url)
            assert time.monotonic() - began < 15


def check_ssh_engine(image_tag: str, version: str, tmp_path: Path) -> None:
    """`invoke experiment --engine ssh://...` runs a small cell on the engine behind sshd
    (the local one, which has `image_tag`) and records that URL in its manifest."""
    assert docker.from_env().images.get(image_tag)
    results = tmp_path / "ssh-results"
    results.mkdir()
    with ssh_engine() as (url, env):
        out = invoke("experiment", "--python", version, "--backend", "docker",
                     "--engine", url, "--model", "threads", "--workload", "fib",
                     "--param", "n=18", "--param", "tasks=2", "--workers", "1",
                     "--repetitions", "2", "--warmups", "0",
                     env={**env, "INVOKE_GILBENCH_RESULTS_DIR": str(results)})
    assert out.returncode == 0, out.stdout + out.stderr
    [run] = [path.parent for path in results.glob(f"*/{runfolder.MANIFEST}")]
    manifest = json.loads((run / runfolder.MANIFEST).read_text())
    assert manifest["engine"]["url"] == url, manifest["engine"]
    records = runfolder.read_records(run).records
    assert records and all(r["status"] == "ok" for r in records), records
