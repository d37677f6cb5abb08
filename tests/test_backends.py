"""The backend registry: one class per backend, names in errors come from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gilbench import backends, targets
from gilbench.builders import DockerBuilder, NativeBuilder
from gilbench.errors import BackendUnavailable, GilbenchError
from gilbench.runners import NativeRunner


def test_registry_names_every_backend_once() -> None:
    assert backends.names() == ("docker", "native")
    for name in backends.names():
        backend = backends.get(name)
        assert backend.name == name and backend.summary.startswith(name)
    assert backends.help_text().startswith("docker (") and " or native (" in backends.help_text()
    with pytest.raises(ValueError, match="registered twice"):
        backends.register(type(backends.get("native")))


def test_unknown_backend_lists_the_registry() -> None:
    with pytest.raises(GilbenchError) as err:
        backends.get("podman")
    assert str(err.value) == "Unknown backend 'podman'; choose one of: docker, native."


def test_resolve_refuses_an_unknown_backend_even_for_a_path(python312: Path) -> None:
    with pytest.raises(GilbenchError, match="Unknown backend 'podman'; choose one of"):
        targets.resolve(str(python312), "podman", "pgo", Path("/nonexistent"))
    target = targets.resolve(str(python312), "docker", "pgo", Path("/nonexistent"))
    assert target.kind == "native" and target.build is None  # a path is always native


def _record(backend: str, **extra: str) -> dict[str, str]:
    return {"backend": backend, "version": "3.13.5", "variant": "pgo", "built_at": "2026",
            "executable": "/opt/cpython/bin/python3", **extra}


def test_targets_come_from_the_backend_of_the_build() -> None:
    docker_target = targets._from_build(_record("docker", image="gilbench/cpython:x"))
    assert (docker_target.id, docker_target.kind, docker_target.image) == (
        "docker:gilbench/cpython:x", "docker", "gilbench/cpython:x")
    native_target = targets._from_build(_record("native"))
    assert (native_target.id, native_target.kind, native_target.image) == (
        "native:/opt/cpython/bin/python3", "native", None)
    assert backends.for_target(native_target) is backends.get("native")
    with pytest.raises(GilbenchError, match="Unknown backend 'lxc'"):
        targets._from_build(_record("lxc"))


def test_native_builds_are_listed_by_the_backend(tmp_path: Path) -> None:
    prefix = tmp_path / "native" / "3.13.5-pgo-abc"
    prefix.mkdir(parents=True)
    (prefix / "gilbench-build.json").write_text(json.dumps(_record("native")))
    assert backends.get("native").builds(tmp_path) == [_record("native")]
    target = targets.resolve("3.13", "native", "pgo", tmp_path)
    assert target.kind == "native" and target.build == _record("native")
    with pytest.raises(GilbenchError) as err:
        targets.resolve("3.12", "native", "pgo", tmp_path)
    assert "`invoke build --python 3.12 --variant pgo --backend native` first" in str(err.value)


def test_native_runner_and_builder_come_from_the_registry(
    python312: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    native = backends.get("native")
    target = targets.resolve(str(python312), "native", "pgo", tmp_path)
    with native.runner(target, tmp_path / "driver.log", cpuset="", memory="2g") as runner:
        assert isinstance(runner, NativeRunner)
        assert runner.describe()["memory_bytes"] is None  # not applied, never recorded
    assert not native.applies_memory_limit and backends.get("docker").applies_memory_limit
    assert isinstance(native.builder(tmp_path), NativeBuilder)
    monkeypatch.setenv("PATH", str(tmp_path))  # no toolchain at all
    with pytest.raises(BackendUnavailable) as err:
        native.builder(tmp_path)
    assert "gcc, make, bash, tar are not on PATH" in str(err.value)


def test_docker_backend_without_an_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    docker_backend = backends.get("docker")
    assert not docker_backend.is_available()
    with pytest.raises(BackendUnavailable, match="No Docker engine answers"):
        docker_backend.builder(tmp_path)


def test_docker_builder_from_the_registry(docker_engine: None, tmp_path: Path) -> None:
    builder = backends.get("docker").builder(tmp_path, 2, "debian:base")
    assert isinstance(builder, DockerBuilder) and builder.base_image == "debian:base"
