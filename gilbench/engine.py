"""The Docker engine connection, with one clear error when there is none.

An engine is the local one (DOCKER_HOST or the default socket, as `docker` finds it) or
a URL the docker SDK can reach: unix://, tcp:// (TLS from DOCKER_CERT_PATH and
DOCKER_TLS_VERIFY, as docker.from_env reads them) or ssh://.
"""

from __future__ import annotations

import os

import docker
import docker.errors
import docker.tls

from gilbench.errors import BackendUnavailable


def _tls(url: str) -> docker.tls.TLSConfig | bool:
    """TLS for a tcp:// engine from the environment `docker` itself reads."""
    certs = os.environ.get("DOCKER_CERT_PATH")
    verify = os.environ.get("DOCKER_TLS_VERIFY", "") not in ("", "0")
    if not url.startswith("tcp://") or not (certs or verify):
        return False
    folder = certs or os.path.join(os.path.expanduser("~"), ".docker")
    return docker.tls.TLSConfig(
        client_cert=(os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")),
        ca_cert=os.path.join(folder, "ca.pem") if verify else None, verify=verify)


def connect(timeout: int = 3600, url: str | None = None) -> docker.DockerClient:
    """A client for the engine at `url` (default: the local one); long timeout because
    builds stream for minutes."""
    try:
        if url:
            client = docker.DockerClient(base_url=url, timeout=timeout, tls=_tls(url),
                                         use_ssh_client=url.startswith("ssh://"))
        else:
            client = docker.from_env(timeout=timeout)
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:
        if url:
            raise BackendUnavailable(
                f"The Docker engine at {url} does not answer ({exc}); check the URL and that "
                f"`docker -H {url} info` works from here.") from exc
        raise BackendUnavailable(
            "No Docker engine answers (start one, e.g. `dockerd &` as root, and check "
            "`docker info`), or use --backend native."
        ) from exc
    return client


def describe(client: docker.DockerClient, url: str | None = None) -> dict[str, object]:
    """What a manifest records about the engine that measured: where it is and what it is."""
    info = client.info()
    return {"url": url or client.api.base_url, "name": info.get("Name"),
            "cpus": info.get("NCPU"), "memory_bytes": info.get("MemTotal"),
            "server_version": info.get("ServerVersion"), "kernel": info.get("KernelVersion")}


def engine_available() -> bool:
    try:
        connect(timeout=5).close()
    except BackendUnavailable:
        return False
    return True
