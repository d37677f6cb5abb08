"""The Docker engine connection, with one clear error when there is none."""

from __future__ import annotations

import docker
import docker.errors

from gilbench.errors import BackendUnavailable


def connect(timeout: int = 3600) -> docker.DockerClient:
    """A client for the local engine; long timeout because builds stream for minutes."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except docker.errors.DockerException as exc:
        raise BackendUnavailable(
            "No Docker engine answers (start one, e.g. `dockerd &` as root, and check "
            "`docker info`), or use --backend native."
        ) from exc
    return client


def engine_available() -> bool:
    try:
        connect(timeout=5).close()
    except BackendUnavailable:
        return False
    return True
