"""The Docker engine connection, with one clear error when there is none.

An engine is the local one (DOCKER_HOST or the default socket, as `docker` finds it) or
a URL the docker SDK can reach: unix://, tcp:// (TLS from DOCKER_CERT_PATH and
DOCKER_TLS_VERIFY, as docker.from_env reads them) or ssh://.
"""

from __future__ import annotations

import os
import subprocess
import urllib.parse

import docker
import docker.errors
import docker.tls

from gilbench.errors import BackendUnavailable

# The oldest API version engines speak: a TLS client's first request asks the server its.
_FIRST_API = "1.24"


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


def _ssh_reach(url: str, timeout: int) -> None:
    """ssh:// goes through the `ssh` binary (as `docker -H ssh://` does), and the SDK loses
    both ssh's reason and any timeout (it waits on ssh's pipe): reach the engine with ssh
    first, so an unreachable host fails in seconds and the error says why."""
    where = urllib.parse.urlparse(url)
    args = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={timeout}"]
    args += ["-l", where.username] if where.username else []
    args += ["-p", str(where.port)] if where.port else []
    args += ["--", where.hostname or "", "docker", "version", "--format", "{{.Server.Version}}"]
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=2 * timeout + 5,
                              stdin=subprocess.DEVNULL, check=False)
    except FileNotFoundError:
        raise BackendUnavailable(f"The Docker engine at {url} is reached through ssh, and "
                                 "there is no ssh on PATH; install OpenSSH's client.") from None
    except subprocess.TimeoutExpired:
        raise BackendUnavailable(f"The Docker engine at {url} did not answer over ssh within "
                                 f"{2 * timeout + 5} s; check that `docker -H {url} info` works "
                                 "from here.") from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        reason = lines[-1] if lines else f"ssh exit status {done.returncode}"
        raise BackendUnavailable(f"The Docker engine at {url} does not answer ({reason}); "
                                 f"check the URL and that `docker -H {url} info` works from "
                                 "here.")


def _tls_client(url: str, timeout: int, tls: docker.tls.TLSConfig) -> docker.DockerClient:
    """requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE, often set system-wide, replace the
    engine's CA (DOCKER_CERT_PATH/ca.pem), so verification fails against the system bundle;
    `docker` itself uses only the engine's CA. So a TLS client ignores the environment from
    its first request on: the SDK asks the server's API version while constructing, unless
    given one, so ask it with a client that has the oldest version every engine speaks."""
    first = docker.DockerClient(base_url=url, timeout=timeout, tls=tls, version=_FIRST_API)
    first.api.trust_env = False
    try:
        version = str(first.version()["ApiVersion"])
    finally:
        first.close()
    client = docker.DockerClient(base_url=url, timeout=timeout, tls=tls, version=version)
    client.api.trust_env = False
    return client


def connect(timeout: int = 3600, url: str | None = None) -> docker.DockerClient:
    """A client for the engine at `url` (default: the local one); long timeout because
    builds stream for minutes."""
    if url and url.startswith("ssh://"):
        _ssh_reach(url, min(timeout, 15))
    try:
        if url:
            tls = _tls(url)
            if isinstance(tls, docker.tls.TLSConfig):
                client = _tls_client(url, timeout, tls)
            else:
                client = docker.DockerClient(base_url=url, timeout=timeout,
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
