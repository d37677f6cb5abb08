"""Engines by URL (gilbench/engine.py, gilbench/engines.py): issue 12, item 2.

The real two-engine run needs the CPython image tests/test_build_docker.py builds once per
CI run, so its test lives there (test_shards_on_two_engines_of_the_built_image) and calls
check_two_engines here; the refusals below need no image.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gilbench import engine, engines, runfolder
from gilbench.errors import BackendUnavailable, GilbenchError
from gilbench.targets import Target
from tests.conftest import invoke, require

MATRIX = """\
description = "engines test: three small cells"
workers = [1, 2]
repetitions = 2
warmups = 0
timeout_s = 60
[models.sequential]
[models.threads]
[workloads.fib]
n = 20
tasks = 4
"""
LOCAL = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


@dataclass(frozen=True)
class Engine:
    """A second engine: its unix socket, and the same daemon over tcp:// with TLS."""

    url: str
    tls_url: str
    tls_env: dict[str, str]  # what a client of tls_url needs (as `docker` reads it)


def _tls_certs(folder: Path) -> tuple[Path, Path]:
    """A throw-away CA, a server certificate for 127.0.0.1 and a client certificate:
    (server folder, client folder), each with ca.pem, cert.pem and key.pem."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def issue(name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
              signer: ec.EllipticCurvePrivateKey, *extensions: tuple[x509.ExtensionType, bool]
              ) -> x509.Certificate:
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .issuer_name(issuer).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1)))
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(signer, hashes.SHA256())

    # Python 3.13's ssl verifies strictly (VERIFY_X509_STRICT): the CA needs key usage and
    # key identifiers, as a real one has.
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gilbench test CA")])
    ca = issue("gilbench test CA", ca_key, ca_name, ca_key,
               (x509.BasicConstraints(ca=True, path_length=None), True),
               (x509.KeyUsage(digital_signature=False, content_commitment=False,
                              key_encipherment=False, data_encipherment=False,
                              key_agreement=False, key_cert_sign=True, crl_sign=True,
                              encipher_only=False, decipher_only=False), True),
               (x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False))
    authority = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    pem = serialization.Encoding.PEM
    for role, usage, extra in (
            ("server", ExtendedKeyUsageOID.SERVER_AUTH,
             [(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
               False)]),
            ("client", ExtendedKeyUsageOID.CLIENT_AUTH, [])):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = issue(role, key, ca_name, ca_key, (x509.ExtendedKeyUsage([usage]), False),
                     (authority, False), *extra)
        (folder / role).mkdir()
        (folder / role / "ca.pem").write_bytes(ca.public_bytes(pem))
        (folder / role / "cert.pem").write_bytes(cert.public_bytes(pem))
        (folder / role / "key.pem").write_bytes(key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return folder / "server", folder / "client"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def second_engine() -> Iterator[Engine]:
    """A second dockerd of its own (socket, data root, exec root, pidfile, bridge; no
    iptables: experiments run without a network), also listening on tcp://127.0.0.1 with
    TLS client verification; stopped and removed afterwards, also when the test fails.
    Its folder is short: a unix socket path has at most 107 bytes."""
    require(shutil.which("dockerd") is not None and os.geteuid() == 0,
            "a second dockerd needs dockerd on PATH and root")
    require(shutil.which("ip") is not None, "a second dockerd's bridge needs ip (iproute2)")
    folder = Path(tempfile.mkdtemp(prefix="gb-d2-", dir="/tmp"))
    url = f"unix://{folder}/docker.sock"
    server, client = _tls_certs(folder)
    tls_url = f"tcp://127.0.0.1:{_free_port()}"
    log = (folder / "dockerd.log").open("wb")
    # A bridge of its own: with `--bridge none` a second dockerd deletes the host's docker0,
    # which takes the first engine's networking (every RUN of a build) down with it.
    bridge = f"gbd2{os.getpid() % 100000}"
    for command in (["link", "add", bridge, "type", "bridge"],
                    ["addr", "add", "10.213.7.1/24", "dev", bridge], ["link", "set", bridge, "up"]):
        subprocess.run(["ip", *command], check=True, capture_output=True)
    proc = subprocess.Popen(
        ["dockerd", "--host", url, "--host", tls_url, "--tlsverify",
         "--tlscacert", str(server / "ca.pem"), "--tlscert", str(server / "cert.pem"),
         "--tlskey", str(server / "key.pem"), "--data-root", str(folder / "root"),
         "--exec-root", str(folder / "exec"), "--pidfile", str(folder / "docker.pid"),
         "--bridge", bridge, "--iptables=false", "--ip6tables=false"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                engine.connect(timeout=5, url=url).close()
                break
            except BackendUnavailable:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("the second dockerd did not start: " + (
                        folder / "dockerd.log").read_text(errors="replace")[-2000:]) from None
                time.sleep(0.5)
        # A system-wide CA bundle in REQUESTS_CA_BUNDLE (common) must not replace the
        # engine's CA: requests would let it, gilbench must not.
        import requests.certs

        yield Engine(url, tls_url, {"DOCKER_CERT_PATH": str(client), "DOCKER_TLS_VERIFY": "1",
                                    "REQUESTS_CA_BUNDLE": requests.certs.where()})
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # dockerd stops its containerd and unmounts
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        for mount in reversed(Path("/proc/mounts").read_text().splitlines()):
            point = mount.split()[1]
            if point.startswith(str(folder)):
                subprocess.run(["umount", "-l", point], check=False)
        shutil.rmtree(folder, ignore_errors=True)
        subprocess.run(["ip", "link", "delete", bridge], check=False, capture_output=True)


def _manifest(path: Path) -> dict[str, object]:
    data = json.loads((path / runfolder.MANIFEST).read_text())
    assert isinstance(data, dict)
    return data


def check_two_engines(target: Target, tmp_path: Path) -> None:
    """On a second dockerd:
    1. the quick matrix's shards on both engines at once: the image is sent there by
       save | load (checked by image id), and the shards merge into one run that report
       reads;
    2. with a third engine that does not answer: its shard fails in one sentence, the
       others merge, partial;
    3. over tcp:// with TLS: `invoke build --engine` builds CPython (plain, no PGO: the
       cheapest real build) on that engine from the local base image, sent along, and a
       run there finds that build on the engine and uses it, nothing sent."""
    import docker

    assert target.image is not None
    (tmp_path / "m.toml").write_text(MATRIX)
    results = tmp_path / "results"
    results.mkdir()
    env = {"INVOKE_GILBENCH_RESULTS_DIR": str(results)}
    version = str((target.build or {})["version"])
    args = ["experiment", "--python", version, "--backend", "docker", "--shard", "auto"]
    with second_engine() as second:
        url = second.url
        began = time.monotonic()
        out = invoke(*args, "--matrix", "quick", "--engine", LOCAL, "--engine", url, env=env)
        took = time.monotonic() - began
        assert out.returncode == 0, out.stdout + out.stderr
        assert "sent gilbench/cpython:" in out.stdout, out.stdout
        merged = Path(out.stdout.split("run complete: ")[1].split()[0])
        manifest = _manifest(merged)
        merge = manifest["merge"]
        assert isinstance(merge, dict)
        assert not merge["missing"] and list(merge["hosts"]) == [
            docker.from_env().info()["Name"]]  # one machine: one host, not two
        sources = [_manifest(results / run_id) for run_id in merge["sources"]]
        by_url = {s["engine"]["url"]: s for s in sources}  # type: ignore[index]
        assert set(by_url) == {LOCAL, url}
        there = by_url[url]["engine"]["images"][0]  # type: ignore[index]
        # `--python 3.13.5` resolves as users' runs do: on a machine with older builds of
        # 3.13.5 too, that may be another image than the fixture's, so compare with the
        # image the run used.
        local_id = docker.from_env().images.get(there["image"]).id
        assert there["transferred"] and there["image_id"] == local_id
        assert there["image"] in str(by_url[url]["pythons"])
        assert not by_url[LOCAL]["engine"]["images"][0]["transferred"]  # type: ignore[index]
        other = docker.DockerClient(base_url=url)
        assert other.images.get(there["image"]).id == local_id
        for source in sources:  # the engine's machine, from docker info and its probe
            host = source["host"]
            assert isinstance(host, dict) and host["engine"] in (LOCAL, url)
            assert host["cores"] == other.info()["NCPU"] and host["cpu_model"]
        records = runfolder.read_records(merged).records
        keys = {(r["cell_id"], r["repetition"]) for r in records}
        assert len(records) == len(keys) == 66, len(records)  # quick: 22 cells x 3
        # 3.13 has no InterpreterPoolExecutor: those cells say so; every other one is ok.
        assert {r["status"] for r in records if r["model"] != "interpreter-pool"} == {"ok"}
        report = invoke("report", "--run", str(merged), env=env)
        assert report.returncode == 0, report.stderr
        assert (merged / "report.md").is_file()
        print(f"quick matrix on two engines, image sent: {took:.1f} s")

        # A third engine that does not answer: its shard fails, the other two merge.
        gone = f"unix://{tmp_path}/gone.sock"
        out = invoke(*args, "--matrix", str(tmp_path / "m.toml"), "--engine", LOCAL,
                     "--engine", url, "--engine", gone, env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"shard 3/3 on {gone} failed" in out.stdout and "does not answer" in out.stdout
        partial = Path(out.stdout.split("run complete: ")[1].split()[0])
        merge = _manifest(partial)["merge"]
        assert isinstance(merge, dict) and len(merge["missing"]) == 1, merge
        assert merge["missing_shards"] and merge["partial"]

        # Build on the engine over TLS, then run there: found there, nothing sent.
        tls = {**env, **second.tls_env}
        began = time.monotonic()
        out = invoke("build", "--python", version, "--variant", "plain", "--engine",
                     second.tls_url, env=tls)
        built_in = time.monotonic() - began
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"engine {second.tls_url}:" in out.stdout and "built" in out.stdout, out.stdout
        plain = [r for r in (json.loads(i.labels["org.gilbench.build"])
                             for i in other.images.list(name="gilbench/cpython"))
                 if r["variant"] == "plain"]
        assert len(plain) == 1 and plain[0]["engine"]["url"] == second.tls_url, plain
        base = plain[0]["base_image"]
        assert other.images.get(base).id == docker.from_env().images.get(base).id  # sent
        out = invoke("experiment", "--python", f"{version}/plain", "--backend", "docker",
                     "--engine", second.tls_url, "--model", "threads", "--workload", "fib",
                     "--param", "n=18", "--param", "tasks=2", "--workers", "1,2",
                     "--repetitions", "2", "--warmups", "0", env=tls)
        assert out.returncode == 0, out.stdout + out.stderr
        run_dir = Path(out.stdout.split("run complete: ")[1].split()[0])
        manifest = _manifest(run_dir)
        used = manifest["engine"]["images"][0]  # type: ignore[index]
        assert manifest["engine"]["url"] == second.tls_url  # type: ignore[index]
        assert used["image"] == plain[0]["image"] and not used["transferred"], used
        assert used["image_id"] == other.images.get(plain[0]["image"]).id
        records = runfolder.read_records(run_dir).records
        # threads at 1 and 2 workers and the sequential baseline every run gets, 2 each
        assert len(records) == 6 and all(r["status"] == "ok" for r in records), records
        other.close()
        print(f"plain build on the second engine over TLS: {built_in:.1f} s")


def test_auto_shards_need_two_engines() -> None:
    out = invoke("experiment", "--shard", "auto", "--engine", "unix:///nowhere.sock")
    assert out.returncode == 1 and "--shard auto runs one shard per engine, so it needs two " \
        "or more --engine URLs." in out.stderr, out.stderr
    out = invoke("experiment", "--shard", "auto")
    assert out.returncode == 1 and "two or more --engine" in out.stderr, out.stderr
    out = invoke("experiment", "--engine", "unix:///a.sock", "--engine", "unix:///b.sock")
    assert out.returncode == 1 and "need --shard auto" in out.stderr, out.stderr
    with pytest.raises(GilbenchError, match="the same --engine twice"):
        engines.run_shards(["unix:///a", "unix:///a"], [], lambda *a: Path(), Path(), "",
                           print)


def test_a_native_python_is_refused_on_an_engine() -> None:
    target = Target("native:/usr/bin/python3", "3 native", "native", "/usr/bin/python3")
    with pytest.raises(GilbenchError, match=r"--engine runs Docker builds; /usr/bin/python3 "
                       r"is a native python"):
        engines.prepare("unix:///nowhere.sock", [target])


def test_an_unreachable_engine_is_one_sentence(tmp_path: Path) -> None:
    url = f"unix://{tmp_path}/no-such.sock"
    with pytest.raises(BackendUnavailable, match=r"The Docker engine at unix://.* does not "
                       r"answer .*; check the URL and that `docker -H .* info` works"):
        engine.connect(timeout=2, url=url)
    with pytest.raises(BackendUnavailable, match=r"tcp://127.0.0.1:9 does not answer"):
        engine.connect(timeout=2, url="tcp://127.0.0.1:9")


def test_tls_comes_from_the_environment_for_tcp_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("x")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path))
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    tls = engine._tls("tcp://example:2376")
    assert not isinstance(tls, bool)
    assert tls.cert == (str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    assert tls.verify is True and tls.ca_cert == str(tmp_path / "ca.pem")
    assert engine._tls("unix:///var/run/docker.sock") is False
    monkeypatch.delenv("DOCKER_CERT_PATH")
    monkeypatch.delenv("DOCKER_TLS_VERIFY")
    assert engine._tls("tcp://example:2375") is False


class _Image:
    def __init__(self, image_id: str, record: dict[str, object]) -> None:
        self.id, self.labels = image_id, {"org.gilbench.build": json.dumps(record)}


class _Images:
    def __init__(self, held: dict[str, _Image]) -> None:
        self.held = held

    def get(self, tag: str) -> _Image:
        import docker.errors

        if tag not in self.held:
            raise docker.errors.ImageNotFound(tag)
        return self.held[tag]


class _Client:
    def __init__(self, held: dict[str, _Image]) -> None:
        self.images = _Images(held)


def test_an_image_is_sent_only_when_it_is_the_resolved_build() -> None:
    record = {"name": "3.13.5-pgo-0123456789ab", "version": "3.13.5", "variant": "pgo",
              "built_at": "now", "backend": "docker", "executable": "/opt/cpython/bin/python3"}
    tag = "gilbench/cpython:test"
    target = Target("docker:" + tag, "3.13.5", "docker", "/opt/cpython/bin/python3", tag,
                    record)
    local = _Client({tag: _Image("sha256:" + "a" * 64, record)})
    same = _Client({tag: _Image("sha256:" + "a" * 64, record)})
    assert engines.ensure_image(local, same, "unix:///b", target) == {  # type: ignore[arg-type]
        "image": tag, "image_id": "sha256:" + "a" * 64, "transferred": False}
    # The same spec built on that engine (`invoke build --engine`): its own image, named.
    built = _Client({tag: _Image("sha256:" + "b" * 64, {**record, "built_at": "there"})})
    assert engines.ensure_image(local, built, "unix:///b", target) == {  # type: ignore[arg-type]
        "image": tag, "image_id": "sha256:" + "b" * 64, "transferred": False,
        "built_there": True, "built_at": "there", "source_image_id": "sha256:" + "a" * 64}
    other = _Client({tag: _Image("sha256:" + "b" * 64, {**record, "name": "3.13.5-pgo-x"})})
    with pytest.raises(GilbenchError, match=r"The engine at unix:///b holds gilbench/cpython:"
                       r"test as image bbbbbbbbbbbb, not the build's aaaaaaaaaaaa; remove it"):
        engines.ensure_image(local, other, "unix:///b", target)  # type: ignore[arg-type]
    changed = _Client({tag: _Image("sha256:" + "a" * 64, {**record, "built_at": "later"})})
    with pytest.raises(GilbenchError, match=r"carries another build record"):
        engines.ensure_image(changed, _Client({}), "unix:///b", target)  # type: ignore[arg-type]
    with pytest.raises(GilbenchError, match=r"is not on the local engine"):
        engines.ensure_image(_Client({}), _Client({}), "unix:///b", target)  # type: ignore[arg-type]
    elsewhere = Target(target.id, target.label, target.kind, target.executable, tag, record,
                       "ssh://build-box")
    with pytest.raises(GilbenchError, match=r"is not on the engine at ssh://build-box"):
        engines.ensure_image(_Client({}), _Client({}), "unix:///b", elsewhere)  # type: ignore[arg-type]


def test_a_run_on_engines_finds_its_build_on_the_first_engine_else_locally(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from gilbench import backends, targets

    record = {"name": "3.13.5-pgo-0123456789ab", "version": "3.13.5", "variant": "pgo",
              "built_at": "now", "backend": "docker", "executable": "/opt/cpython/bin/python3",
              "image": "gilbench/cpython:3.13.5-pgo-0123456789ab"}
    held: dict[str | None, list[dict[str, object]]] = {"tcp://a:2376": [record], None: []}

    def builds(self: object, cache_dir: Path, engine_url: str | None = None) -> list[object]:
        return list(held.get(engine_url, []))

    monkeypatch.setattr(backends.DockerBackend, "builds", builds)
    found = targets.resolve_for_engines("3.13", "docker", "pgo", tmp_path,
                                        ["tcp://a:2376", "tcp://b:2376"])
    assert found.engine == "tcp://a:2376" and found.image == record["image"]
    held = {"tcp://a:2376": [], None: [record]}  # only the local engine has it: sent from there
    assert targets.resolve_for_engines("3.13", "docker", "pgo", tmp_path,
                                       ["tcp://a:2376"]).engine is None
    held = {}
    with pytest.raises(GilbenchError, match=r"No docker build of CPython 3.13 \[pgo\] exists "
                       r"on the engine at tcp://a:2376; run `invoke build --python 3.13 "
                       r"--variant pgo --backend docker --engine tcp://a:2376` first."):
        targets.resolve_for_engines("3.13", "docker", "pgo", tmp_path, ["tcp://a:2376"])


def test_build_engine_flags_are_checked_first() -> None:
    out = invoke("build", "--engine", " ")
    assert out.returncode == 1 and "--engine needs a URL" in out.stderr, out.stderr
    out = invoke("build", "--engine", "unix:///a.sock", "--engine", "unix:///a.sock")
    assert out.returncode == 1 and "each engine once" in out.stderr, out.stderr
    out = invoke("build", "--engine", "unix:///a.sock", "--check-reproducible")
    assert out.returncode == 1 and "drop --engine" in out.stderr, out.stderr
    out = invoke("build", "--engine", "unix:///nowhere/a.sock")
    assert out.returncode == 1 and "The Docker engine at unix:///nowhere/a.sock does not " \
        "answer" in out.stderr, out.stderr
    out = invoke("build", "--engine", "unix:///a.sock", "--backend", "native")
    assert out.returncode == 1 and "--engine builds Docker images" in out.stderr, out.stderr
