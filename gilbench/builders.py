"""The two places builds happen, behind one base class: the Docker engine (an image per
build) and this host (a prefix per build). Both run docker/build-cpython.sh."""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors

from gilbench import backends, baseimage, buildlog, engine, smoke, spawn
from gilbench.buildspec import (
    BUILD_SCHEMA_VERSION,
    IMAGE_REPO,
    LABEL,
    STAGING_REPO,
    BuildSpec,
    PhaseClock,
    parse_record,
)
from gilbench.errors import BackendUnavailable, GilbenchError
from gilbench.paths import DOCKER_DIR, RECIPE_FILES
from gilbench.sources import Source

# What docker/build-cpython.sh does so that two builds of one spec install the same
# bytes (its header says why each matters); recorded in every build record.
REPRO_MEASURES = (
    "fixed build path",
    "-ffile-prefix-map=<build path>=/usr/src/cpython",
    "SOURCE_DATE_EPOCH (the tarball's date)",
    "checked-hash .pyc (py_compile under SOURCE_DATE_EPOCH)",
    "PYTHONHASHSEED=0",
    "ar deterministic mode (ARFLAGS=rcsD)",
)
DOCKER_BUILD_DIR = "/usr/src/cpython"
# pip on the built python, from verified local wheels only: no index, no dependencies
# (each pin lists everything), no .pyc written (a byte-stable build).
PIP_OFFLINE = ("--no-index", "--no-deps", "--no-compile", "--no-cache-dir",
               "--disable-pip-version-check")

def script_process(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """How the native builder starts the build script: default signals (gilbench.spawn:
    PGO training needs SIGINT, which a background job starts with ignored), output merged."""
    return subprocess.Popen(
        spawn.clean(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env=env, errors="replace",
    )


def source_date_epoch(tarball: Path) -> int:
    """The tarball's own date: the mtime of its first member (the top folder, which the
    release tooling stamps), read without unpacking the rest."""
    try:
        with tarfile.open(tarball) as archive:
            first = archive.next()
    except (OSError, tarfile.TarError) as exc:
        raise GilbenchError(f"The source tarball {tarball} cannot be read ({exc}).") from exc
    if first is None:
        raise GilbenchError(f"The source tarball {tarball} is empty.")
    return int(first.mtime)


def reproducibility(tarball: Path, build_dir: str) -> dict[str, Any]:
    """The reproducibility part of a build record."""
    return {"measures": list(REPRO_MEASURES), "build_dir": build_dir,
            "source_date_epoch": source_date_epoch(tarball)}


class Builder(ABC):
    """A place builds happen: the Docker engine or this host."""

    name: str
    rebuilds = False  # whether a rebuild keeps the old build until the new one is done

    def __init__(self, cache_dir: Path, jobs: int | None = None) -> None:
        self.cache_dir = cache_dir
        self.jobs = jobs or os.cpu_count() or 2
        self.no_cache = False  # build every step again (a rebuild)
        # The variant's pinned pure-Python packages: verified wheels, installed after
        # CPython, and their pins for the record (gilbench/packages.py).
        self.wheels: list[Path] = []
        self.package_pins: list[dict[str, str]] = []

    @abstractmethod
    def is_available(self) -> bool: ...

    @abstractmethod
    def prepare(self, clock: PhaseClock, log_path: Path) -> str:
        """Ready the build environment; returns its identity for the BuildSpec."""

    @abstractmethod
    def find(self, spec: BuildSpec) -> dict[str, Any] | None:
        """The build record of a finished build of this spec, if there is one."""

    @abstractmethod
    def build(self, spec: BuildSpec, source: Source, clock: PhaseClock, log_path: Path) -> dict[
        str, Any
    ]: ...

    @abstractmethod
    def store(self, record: dict[str, Any]) -> None:
        """Replace a finished build's record (e.g. with its self-check result added)."""

    def record(
        self, spec: BuildSpec, source: Source, info: dict[str, Any], clock: PhaseClock,
        started: float, **extra: Any,
    ) -> dict[str, Any]:
        return {
            "schema_version": BUILD_SCHEMA_VERSION,
            "backend": self.name,
            "name": spec.name,
            "version": spec.version,
            "variant": spec.variant,
            "sha256": spec.sha256,
            "source_verified": source.verified,
            "source_origin": source.origin,
            "signature": source.signature,
            "configure_args_requested": list(spec.configure_args),
            "config_args": info["config_args"],
            "cc": info["cc"],
            "compiler": info["compiler"],
            "gil_disabled": info["gil_disabled"],
            "debug": info["debug"],
            "recipe_hash": spec.recipe_hash,
            "base": spec.base,
            "build_seconds": round(time.monotonic() - started, 1),
            "phases": clock.durations,
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "smoke": info,
            "packages": self.package_pins,
            **extra,
        }


class DockerBuilder(Builder):
    name = backends.DockerBackend.name
    rebuilds = True  # the new image is tagged only once it passed its smoke check

    def __init__(self, cache_dir: Path, jobs: int | None = None, base_image: str = "",
                 engine_url: str | None = None) -> None:
        super().__init__(cache_dir, jobs)
        self.base_image = base_image
        self.engine_url = engine_url  # None: the local engine (DOCKER_HOST or the socket)
        self._client: docker.DockerClient | None = None
        self._base: baseimage.BaseImage | None = None

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = engine.connect(url=self.engine_url)
        return self._client

    def is_available(self) -> bool:
        return engine.engine_available()

    def prepare(self, clock: PhaseClock, log_path: Path) -> str:
        clock.start("base")
        if self.engine_url:
            self._send_base(lambda text: clock.on_event("log", text))
        self._base = baseimage.ensure(
            self.client, self.base_image, lambda text: clock.on_event("log", text), log_path
        )
        return self._base.image_id

    def find(self, spec: BuildSpec) -> dict[str, Any] | None:
        try:
            image = self.client.images.get(f"{IMAGE_REPO}:{spec.name}")
        except docker.errors.ImageNotFound:
            return None
        return parse_record(image.labels.get(LABEL, ""))

    def build(self, spec: BuildSpec, source: Source, clock: PhaseClock, log_path: Path) -> dict[
        str, Any
    ]:
        assert self._base is not None, "prepare() first"
        started = time.monotonic()
        # A unique staging tag: two builds of one spec must not remove each other's image.
        staging = f"{STAGING_REPO}:{spec.name}-{os.getpid()}"
        final = f"{IMAGE_REPO}:{spec.name}"
        try:
            self._docker_build(spec, source, staging, clock, log_path)
            clock.start("smoke-check")
            try:
                output = self.client.containers.run(
                    staging, ["python3", "-c", smoke.SCRIPT], remove=True,
                    network_disabled=True,
                )
                info = smoke.parse(output.decode())
            except (docker.errors.ContainerError, ValueError) as exc:
                raise GilbenchError(
                    f"The built CPython {spec.version} failed its smoke check ({exc}); it was "
                    f"discarded (build log: {log_path})."
                ) from exc
            _require_smoke(info, spec, log_path)
            clock.stop()
            where = {"engine": engine.describe(self.client, self.engine_url)} \
                if self.engine_url else {}
            record = self.record(
                spec, source, info, clock, started, **where,
                image=final, base_image=self._base.ref, base_origin=self._base.origin,
                executable="/opt/cpython/bin/python3",
                reproducibility=reproducibility(source.path, DOCKER_BUILD_DIR),
            )
            # The final tag is a one-line image on top of the smoke-checked one, carrying
            # the provenance as labels: it only exists once everything passed.
            errors = [
                chunk["error"] for chunk in self.client.api.build(
                    fileobj=io.BytesIO(f"FROM {staging}\n".encode()), tag=final, rm=True,
                    labels=_labels(record), decode=True,
                ) if "error" in chunk
            ]
            if errors or self.find(spec) is None:
                raise GilbenchError(
                    f"Tagging the finished image {final} failed ({'; '.join(errors)}); "
                    "nothing was kept, run the build again."
                )
        finally:
            self._remove(staging)
        return record

    def store(self, record: dict[str, Any]) -> None:
        # Labels are part of the image config, so a new record is a new one-line image
        # over the same layers, FROM the smoke-checked image below the label steps (so
        # re-labels do not stack). The build moves the tag only once it exists; the old
        # image and its label steps then go, unless a container still uses them.
        final = record["image"]
        old = self.client.images.get(final)
        old_id = str(old.id)
        base = old
        while base.attrs.get("Parent") and any(k.startswith("org.gilbench.")
                                               for k in base.labels):
            base = self.client.images.get(base.attrs["Parent"])
        errors = [
            chunk["error"] for chunk in self.client.api.build(
                fileobj=io.BytesIO(f"FROM {base.id}\n".encode()), tag=final, rm=True,
                labels=_labels(record), decode=True,
            ) if "error" in chunk
        ]
        if errors:
            raise GilbenchError(f"Re-labelling {final} failed ({'; '.join(errors)}); the "
                                "image and its old record are unchanged.")
        if self.client.images.get(final).id != old_id:
            with contextlib.suppress(docker.errors.APIError):
                self.client.images.remove(old_id)

    def _docker_build(
        self, spec: BuildSpec, source: Source, tag: str, clock: PhaseClock, log_path: Path
    ) -> None:
        log_start = _log_size(log_path)
        with tempfile.TemporaryDirectory(prefix="gilbench-ctx-") as ctx, log_path.open("a") as log:
            for name in RECIPE_FILES:
                shutil.copy2(DOCKER_DIR / name, ctx)
            shutil.copyfile(source.path, Path(ctx) / "Python.tar.xz")
            (Path(ctx) / "wheels").mkdir()  # empty unless the variant adds packages
            for wheel in self.wheels:
                shutil.copy2(wheel, Path(ctx) / "wheels")
            clock.start("image-setup")
            stream = self.client.api.build(
                path=ctx, tag=tag, rm=True, forcerm=True, pull=False, decode=True,
                nocache=self.no_cache,
                buildargs={
                    "BASE_IMAGE": self._base.ref if self._base else "",
                    "PYTHON_VERSION": spec.version,
                    "PYTHON_SHA256": spec.sha256,
                    "CONFIGURE_ARGS": " ".join(spec.configure_args),
                    "JOBS": str(self.jobs),
                    "SOURCE_DATE_EPOCH": str(source_date_epoch(source.path)),
                },
            )
            pending, error = "", ""
            for chunk in stream:
                if "error" in chunk:
                    error = str(chunk["error"]).strip()
                    log.write(f"ERROR: {error}\n")
                text = chunk.get("stream", "")
                log.write(text)
                log.flush()
                pending += text
                *lines, pending = pending.split("\n")
                for line in lines:
                    clock.feed(line)
        if error:
            raise _failed(clock, error, log_path, log_start)

    def _remove(self, tag: str) -> None:
        with contextlib.suppress(docker.errors.ImageNotFound):
            self.client.images.remove(tag, force=True)

    def _send_base(self, log: Callable[[str], None]) -> None:
        """A build on another engine starts from the local engine's base image, sent by
        save | load (same image id, so the same build spec and tag as a local build),
        when that engine lacks it and a local engine has it; otherwise the engine gets a
        base of its own (pulled, or made with mmdebstrap here and imported there)."""
        from gilbench import engines

        assert self.engine_url is not None
        refs = [r for r in (self.base_image, baseimage.local_tag()) if r]
        if any(baseimage.image_id(self.client, ref) for ref in refs):
            return
        try:
            local = engine.connect(timeout=3600)
        except BackendUnavailable:
            return
        try:
            for ref in refs:
                if baseimage.image_id(local, ref):
                    log(f"sending the base image {ref} to {self.engine_url}")
                    engines.send(local, self.client, self.engine_url, ref)
                    return
        finally:
            local.close()


class NativeBuilder(Builder):
    """Builds into a prefix under the cache, for hosts where Docker is not allowed."""

    name = backends.NativeBackend.name

    TOOLS = ("gcc", "make", "bash", "tar")

    def missing_tools(self) -> list[str]:
        return [tool for tool in self.TOOLS if not shutil.which(tool)]

    def is_available(self) -> bool:
        return not self.missing_tools()

    def prefix(self, spec: BuildSpec) -> Path:
        return self.cache_dir / self.name / spec.name

    def build_dir(self, spec: BuildSpec) -> Path:
        """Where the recipe unpacks and builds: fixed per spec (it lands in the installed
        Makefile and _sysconfigdata), so a rebuild into the same prefix repeats it."""
        return self.cache_dir / "native-build" / spec.name

    def prepare(self, clock: PhaseClock, log_path: Path) -> str:
        clock.start("base")
        try:
            gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True, check=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise BackendUnavailable("The native backend needs gcc on PATH; install it.") from exc
        return f"{platform.machine()} {gcc.stdout.splitlines()[0]}"

    def find(self, spec: BuildSpec) -> dict[str, Any] | None:
        marker = self.prefix(spec) / "gilbench-build.json"
        if not marker.exists():
            return None
        return parse_record(marker.read_text())

    def build(self, spec: BuildSpec, source: Source, clock: PhaseClock, log_path: Path) -> dict[
        str, Any
    ]:
        started = time.monotonic()
        prefix = self.prefix(spec)
        shutil.rmtree(prefix, ignore_errors=True)  # an earlier, unfinished attempt
        prefix.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._run_script(spec, source, prefix, clock, log_path)
            python = prefix / "bin" / "python3"
            if self.wheels:
                clock.start("packages")
                out = subprocess.run([str(python), "-m", "pip", "install", *PIP_OFFLINE,
                                      *map(str, self.wheels)],
                                     capture_output=True, text=True, check=False)
                if out.returncode != 0:
                    raise GilbenchError(
                        f"Installing {', '.join(w.name for w in self.wheels)} into the build "
                        f"failed ({out.stderr.strip()[-300:]}); it was discarded.")
            clock.start("smoke-check")
            out = subprocess.run(
                [str(python), "-c", smoke.SCRIPT], capture_output=True, text=True, check=False
            )
            if out.returncode != 0:
                raise GilbenchError(
                    f"The built interpreter {python} failed its smoke check: "
                    f"{out.stderr.strip()[-300:]}; the build log is {log_path}."
                )
            info = smoke.parse(out.stdout)
            _require_smoke(info, spec, log_path)
            clock.stop()
            record = self.record(
                spec, source, info, clock, started, executable=str(python),
                reproducibility=reproducibility(source.path, str(self.build_dir(spec))),
            )
            # Written last, atomically: its presence is what marks the prefix complete.
            tmp = prefix / "gilbench-build.json.tmp"
            tmp.write_text(json.dumps(record, indent=2))
            tmp.replace(prefix / "gilbench-build.json")
        except BaseException:
            shutil.rmtree(prefix, ignore_errors=True)
            raise
        return record

    def store(self, record: dict[str, Any]) -> None:
        marker = self.cache_dir / self.name / record["name"] / "gilbench-build.json"
        tmp = marker.with_name(marker.name + ".tmp")
        tmp.write_text(json.dumps(record, indent=2))
        tmp.replace(marker)

    def _run_script(
        self, spec: BuildSpec, source: Source, prefix: Path, clock: PhaseClock, log_path: Path
    ) -> None:
        cmd = ["bash", str(DOCKER_DIR / "build-cpython.sh"), str(source.path), str(prefix),
               *spec.configure_args]
        env = {**os.environ, "JOBS": str(self.jobs), "BUILD_DIR": str(self.build_dir(spec)),
               "SOURCE_DATE_EPOCH": str(source_date_epoch(source.path))}
        log_start = _log_size(log_path)
        with log_path.open("a") as log, script_process(cmd, env) as proc:
            assert proc.stdout is not None
            last = ""
            for line in proc.stdout:
                log.write(line)
                log.flush()
                clock.feed(line.rstrip("\n"))
                last = line.strip() or last
        if proc.returncode != 0:
            raise _failed(clock, last, log_path, log_start)


def _log_size(log_path: Path) -> int:
    """Where this build's part of the (appended-to) log starts."""
    return log_path.stat().st_size if log_path.exists() else 0


def _failed(clock: PhaseClock, error: str, log_path: Path, log_start: int = 0) -> GilbenchError:
    """The build's failure as one sentence: the failing PGO training test cases and the
    cause where the recipe's report in this build's part of the log names them, else the
    last line of output."""
    phase = clock.current or "setup"
    try:
        with log_path.open("rb") as log:
            log.seek(log_start)
            text = log.read().decode(errors="replace")
    except OSError:
        text = ""
    training = buildlog.training_failure(text)
    detail = training.describe() if training is not None else error[-200:]
    return GilbenchError(
        f"The CPython build failed during {phase} ({detail}); the full log is {log_path}."
    )


def _require_smoke(info: dict[str, Any], spec: BuildSpec, log_path: Path) -> None:
    found = smoke.problems(info, spec.version, spec.configure_args)
    if found:
        raise GilbenchError(
            f"The built CPython {spec.version} failed its smoke check: {'; '.join(found)}; "
            f"it was discarded (build log: {log_path})."
        )


def _labels(record: dict[str, Any]) -> dict[str, str]:
    flat = {
        f"org.gilbench.{key}": str(record[key])
        for key in ("version", "variant", "sha256", "config_args", "cc", "base_image",
                    "recipe_hash", "build_seconds", "built_at")
    }
    return {**flat, LABEL: json.dumps(record, sort_keys=True)}

