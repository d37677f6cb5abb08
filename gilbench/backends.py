"""Where CPython is built and where experiments run: one class per backend, registered once.

A backend carries its name, whether it can be used on this host, its Builder, its Runner
and the builds it already has. Help texts and errors take the names from REGISTRY, so a
new backend is one new class here, not a string compared in five modules.

Only gilbench.errors is imported at the top: the names must be cheap to read (tasks.py
puts them in help texts), and builders/runners import the docker SDK.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from gilbench.errors import BackendUnavailable, GilbenchError

if TYPE_CHECKING:
    from gilbench.builders import Builder
    from gilbench.runners import Runner
    from gilbench.targets import Target


class Backend(ABC):
    """One place builds happen and cells run (asv-style: a name, availability, run)."""

    name: ClassVar[str]
    summary: ClassVar[str]  # one clause for help texts
    # Whether the runner enforces --memory: run.py refuses a memory limit it cannot apply.
    applies_memory_limit: ClassVar[bool]

    @abstractmethod
    def is_available(self) -> bool:
        """Whether experiments can run here (cheap, never raises)."""

    @abstractmethod
    def require(self) -> None:
        """Raise BackendUnavailable with the reason and the fix, if it is not available."""

    @abstractmethod
    def builder(self, cache_dir: Path, jobs: int | None = None, base_image: str = "",
                engine_url: str | None = None) -> Builder:
        """A Builder ready to use (on the engine at `engine_url`, where the backend has
        engines); BackendUnavailable if it cannot build there."""

    @abstractmethod
    def runner(
        self, target: Target, log_path: Path, *, cpuset: str = "", memory: str | None = None,
        max_workers: int | None = None,
    ) -> Runner:
        """A Runner for one target under these limits (memory ignored where not applied)."""

    @abstractmethod
    def builds(self, cache_dir: Path, engine_url: str | None = None) -> list[dict[str, Any]]:
        """The finished builds this backend has (on the engine at `engine_url`), newest
        first (build records)."""

    @abstractmethod
    def target(self, record: dict[str, Any], engine_url: str | None = None) -> Target:
        """The interpreter under test that a build record of this backend names (found on
        the engine at `engine_url`; None: the local one)."""


REGISTRY: dict[str, Backend] = {}

B = TypeVar("B", bound=type[Backend])


def register(cls: B) -> B:
    """Class decorator: one instance per backend, under its name."""
    if cls.name in REGISTRY:
        raise ValueError(f"backend {cls.name!r} is registered twice")
    REGISTRY[cls.name] = cls()
    return cls


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def help_text() -> str:
    """Every backend with its one-clause summary, for --backend help texts."""
    return " or ".join(backend.summary for backend in REGISTRY.values())


def get(name: str) -> Backend:
    try:
        return REGISTRY[name]
    except KeyError:
        raise GilbenchError(
            f"Unknown backend {name!r}; choose one of: {', '.join(REGISTRY)}."
        ) from None


def for_target(target: Target) -> Backend:
    """The backend a target runs on (Target.kind is a backend name)."""
    return get(target.kind)


def _label(record: dict[str, Any]) -> str:
    return f"{record['version']}-{record['variant']}"


@register
class DockerBackend(Backend):
    """Builds are images (gilbench/cpython:TAG); cells run in one sandboxed container."""

    name = "docker"
    summary = "docker (an image per build; cells run in a locked-down container)"
    applies_memory_limit = True

    def is_available(self) -> bool:
        from gilbench import engine

        return engine.engine_available()

    def require(self) -> None:
        from gilbench import engine

        engine.connect(timeout=5).close()  # raises the specific, helpful error

    def builder(self, cache_dir: Path, jobs: int | None = None, base_image: str = "",
                engine_url: str | None = None) -> Builder:
        from gilbench import engine
        from gilbench.builders import DockerBuilder

        engine.connect(timeout=5, url=engine_url).close()  # the specific, helpful error
        return DockerBuilder(cache_dir, jobs, base_image, engine_url)

    def runner(
        self, target: Target, log_path: Path, *, cpuset: str = "", memory: str | None = None,
        max_workers: int | None = None,
    ) -> Runner:
        from gilbench.runners import DockerRunner

        return DockerRunner(target, log_path, cpuset, memory, max_workers=max_workers)

    def builds(self, cache_dir: Path, engine_url: str | None = None) -> list[dict[str, Any]]:
        from gilbench import buildspec, engine

        client = engine.connect(timeout=30, url=engine_url)
        try:
            return buildspec.list_docker_builds(client)
        finally:
            client.close()

    def target(self, record: dict[str, Any], engine_url: str | None = None) -> Target:
        from gilbench.targets import Target

        return Target(f"{self.name}:{record['image']}", _label(record), self.name,
                      record["executable"], record["image"], record, engine_url)


@register
class NativeBackend(Backend):
    """Builds are prefixes under the cache; cells run as subprocesses of this host."""

    name = "native"
    summary = "native (a prefix under the cache per build; cells run on this host)"
    applies_memory_limit = False

    def is_available(self) -> bool:
        return True  # running an interpreter needs nothing; building needs a toolchain

    def require(self) -> None:
        return None

    def builder(self, cache_dir: Path, jobs: int | None = None, base_image: str = "",
                engine_url: str | None = None) -> Builder:
        from gilbench.builders import NativeBuilder

        if engine_url:
            raise GilbenchError("--engine builds Docker images; drop --backend native or "
                                "--engine.")
        builder = NativeBuilder(cache_dir, jobs)
        missing = builder.missing_tools()
        if missing:
            raise BackendUnavailable(
                f"The native backend builds with gcc, make, bash and tar, and "
                f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not on PATH; "
                "install it or use another backend."
            )
        return builder

    def runner(
        self, target: Target, log_path: Path, *, cpuset: str = "", memory: str | None = None,
        max_workers: int | None = None,
    ) -> Runner:
        from gilbench.runners import NativeRunner

        return NativeRunner(target, log_path, cpuset, max_workers=max_workers)

    def builds(self, cache_dir: Path, engine_url: str | None = None) -> list[dict[str, Any]]:
        from gilbench import buildspec

        return buildspec.list_native_builds(cache_dir)

    def target(self, record: dict[str, Any], engine_url: str | None = None) -> Target:
        from gilbench.targets import Target

        return Target(f"{self.name}:{record['executable']}", _label(record), self.name,
                      record["executable"], None, record)

    def path_target(self, executable: str) -> Target:
        """An interpreter given by path (--python /usr/bin/python3.13): no build record."""
        from gilbench.targets import Target

        return Target(f"{self.name}:{executable}", f"{self.name} {Path(executable).name}",
                      self.name, executable)


def native() -> NativeBackend:
    """The backend that runs interpreters given by path."""
    backend = REGISTRY[NativeBackend.name]
    assert isinstance(backend, NativeBackend)
    return backend
