"""Run backends: where the target driver runs. Both stream the driver's stdout lines.

docker: one container per run and python (no network, non-root, CPU set and memory
limit), the experiments/ tree copied in, one `docker exec` of the driver for all cells.
native: the driver as a subprocess of this host.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import tarfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import docker
import docker.errors

from gilbench import engine
from gilbench.errors import GilbenchError
from gilbench.paths import EXPERIMENTS_DIR, REPO
from gilbench.targets import Target

DRIVER = ["-E", "-s", "-m", "experiments.driver"]
CONTAINER_LAB = "/tmp/gilbench-lab"
OWNER_LABEL = "org.gilbench.owner"


def _lines(chunks: Iterator[bytes]) -> Iterator[str]:
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.decode(errors="replace")
    if pending.strip():
        yield pending.decode(errors="replace")


class Runner(ABC):
    name: str

    def __init__(self, target: Target, log_path: Path) -> None:
        self.target = target
        self.log_path = log_path

    def __enter__(self) -> Runner:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @abstractmethod
    def close(self) -> None:
        """Release what the runner holds (containers, processes)."""

    def alive(self) -> bool:
        """Whether a new driver can still be started here."""
        return True

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What the manifest should record about where the cells ran."""

    @abstractmethod
    def driver_lines(self, args: list[str], cells: bytes | None = None) -> Iterator[str]:
        """Run the driver with args; its stdout, line by line, as it comes."""

    def probe(self) -> dict[str, Any]:
        lines = [line for line in self.driver_lines(["--probe"]) if line.startswith("{")]
        if not lines:
            tail = self.log_path.read_text(errors="replace").strip().splitlines()[-1:]
            raise GilbenchError(
                f"{self.target.executable} could not run the gilbench driver "
                f"({tail[0] if tail else 'no output'}); it must be CPython 3.12 or newer."
            )
        info: dict[str, Any] = json.loads(lines[-1])
        return info

    def run_cells(self, cells: list[dict[str, Any]]) -> Iterator[str]:
        payload = "".join(json.dumps(cell) + "\n" for cell in cells).encode()
        return self.driver_lines([], payload)


def parse_cpuset(cpuset: str) -> set[int]:
    """Docker's --cpuset-cpus syntax ("0-2,4") as a set of CPU numbers."""
    cpus: set[int] = set()
    for part in filter(None, cpuset.split(",")):
        first, _, last = part.partition("-")
        if not (first.isdigit() and (last.isdigit() or not last)):
            raise GilbenchError(f"--cpuset {cpuset!r} is not a CPU list like 0-1 or 0,2.")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


class NativeRunner(Runner):
    """The driver as a subprocess of this host, pinned to the CPU set (no memory limit)."""

    name = "native"

    def __init__(self, target: Target, log_path: Path, cpuset: str = "") -> None:
        super().__init__(target, log_path)
        self.proc: subprocess.Popen[bytes] | None = None
        self.cpus = parse_cpuset(cpuset) or os.sched_getaffinity(0)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "cpuset": ",".join(map(str, sorted(self.cpus))),
                "memory_bytes": None, "network": "host",
                "user": os.environ.get("USER") or str(os.getuid())}

    def driver_lines(self, args: list[str], cells: bytes | None = None) -> Iterator[str]:
        cells_file = self.log_path.parent / "cells-pending.jsonl"
        if cells is not None:
            cells_file.write_bytes(cells)
            args = [*args, str(cells_file)]
        with self.log_path.open("ab") as log:
            # Own session: an interrupt kills the driver and every cell process below it.
            try:
                self.proc = subprocess.Popen(
                    [self.target.executable, *DRIVER, *args], cwd=REPO,
                    stdout=subprocess.PIPE, stderr=log, start_new_session=True,
                    preexec_fn=lambda: os.sched_setaffinity(0, self.cpus),
                )
            except OSError as exc:
                raise GilbenchError(
                    f"Cannot start {self.target.executable} ({exc.strerror}); give an existing "
                    "interpreter with --python."
                ) from exc
            assert self.proc.stdout is not None
            try:
                yield from _lines(iter(lambda: self.proc.stdout.readline(), b""))  # type: ignore[union-attr]
                self.proc.wait()
            finally:
                self.close()

    def close(self) -> None:
        # SIGTERM first: the driver then kills the cell process group it started.
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), 0o644, 1000, 1000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def experiments_files() -> dict[str, bytes]:
    """The target side as shipped into a container: every file under experiments/."""
    return {
        str(path.relative_to(REPO)): path.read_bytes()
        for path in sorted(EXPERIMENTS_DIR.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


class DockerRunner(Runner):
    name = "docker"

    def __init__(self, target: Target, log_path: Path, cpuset: str, memory: str) -> None:
        super().__init__(target, log_path)
        # Silent cells (a hang until its timeout) must not trip the socket timeout.
        self.client = engine.connect(timeout=24 * 3600)
        self.cpuset, self.memory = cpuset, memory
        _remove_orphans(self.client)
        assert target.image is not None, "a docker target has an image"
        try:
            self.container = self.client.containers.run(
                target.image, ["sleep", "infinity"], detach=True, network_mode="none",
                user="gilbench", cpuset_cpus=cpuset, mem_limit=memory, working_dir=CONTAINER_LAB,
                labels={OWNER_LABEL: _owner(os.getpid())},
            )
        except docker.errors.ImageNotFound as exc:
            raise GilbenchError(
                f"The image {target.image} is gone; rebuild it with `invoke build`."
            ) from exc
        except docker.errors.DockerException as exc:
            reason = getattr(exc, "explanation", None) or exc
            raise GilbenchError(
                f"Docker refused to start {target.image} with cpuset {cpuset!r} and memory "
                f"{memory!r}: {reason}."
            ) from exc
        self.container.exec_run(["mkdir", "-p", CONTAINER_LAB], user="gilbench")
        self.container.put_archive(CONTAINER_LAB, _tar(experiments_files()))

    def describe(self) -> dict[str, Any]:
        self.container.reload()
        attrs = self.container.attrs
        host_config = attrs["HostConfig"]
        return {"name": self.name, "image": self.target.image, "container": attrs["Id"][:12],
                "cpuset": host_config.get("CpusetCpus"), "memory_bytes": host_config.get("Memory"),
                "network": host_config.get("NetworkMode"), "user": attrs["Config"]["User"]}

    def driver_lines(self, args: list[str], cells: bytes | None = None) -> Iterator[str]:
        if cells is not None:
            self.container.put_archive(CONTAINER_LAB, _tar({"cells-pending.jsonl": cells}))
            args = [*args, f"{CONTAINER_LAB}/cells-pending.jsonl"]
        api = self.client.api
        exec_id = api.exec_create(
            self.container.id, [self.target.executable, *DRIVER, *args], user="gilbench",
            workdir=CONTAINER_LAB,
        )["Id"]
        with self.log_path.open("ab") as log:
            def stdout_chunks() -> Iterator[bytes]:
                for out, err in api.exec_start(exec_id, stream=True, demux=True):
                    if err:
                        log.write(err)
                        log.flush()
                    if out:
                        yield out
            yield from _lines(stdout_chunks())

    def alive(self) -> bool:
        try:
            self.container.reload()
        except docker.errors.DockerException:
            return False
        return bool(self.container.status == "running")

    def close(self) -> None:
        with contextlib.suppress(docker.errors.DockerException):
            self.container.remove(force=True)


def _owner(pid: int) -> str:
    """host:pid:start-time, so a reused pid is not mistaken for the owner."""
    try:
        start = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        start = "?"
    return f"{os.uname().nodename}:{pid}:{start}"


def _remove_orphans(client: docker.DockerClient) -> None:
    """Containers left by an orchestrator that was killed: their owner is gone."""
    host = os.uname().nodename
    for container in client.containers.list(all=True, filters={"label": OWNER_LABEL}):
        owner = container.labels[OWNER_LABEL]
        owner_host, _, rest = owner.partition(":")
        pid = rest.partition(":")[0]
        if owner_host == host and pid.isdigit() and _owner(int(pid)) != owner:
            container.remove(force=True)


def remove_orphans() -> None:
    """Best effort, before any run: a killed run's container would still be running cells."""
    with contextlib.suppress(Exception):
        client = engine.connect(timeout=5)
        _remove_orphans(client)
