"""Run backends: where the target driver runs. Both stream the driver's stdout lines.

docker: one container per run and python, sandboxed (no network, non-root, read-only root
filesystem with a tmpfs /tmp, no capabilities, no-new-privileges, a pids limit, CPU set
and memory limit), the experiments/ tree copied in, one `docker exec` of the driver for
all cells.
native: the driver as a subprocess of this host, pinned to the CPU set.

Placement (gilbench/topology.py, as BenchExec does it): without --cpuset a run gets one
logical CPU of every physical core it may use, never two SMT siblings, so two busy workers
cannot share a core; an explicit --cpuset is honoured exactly. Either way the description
records how many physical cores the cells could use, which is the report's speedup limit.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import tarfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import docker
import docker.errors
import docker.utils.socket

from gilbench import backends, engine, spawn, topology
from gilbench.errors import GilbenchError
from gilbench.paths import EXPERIMENTS_DIR, REPO

if TYPE_CHECKING:
    from gilbench.targets import Target

DRIVER = ["-E", "-s", "-m", "experiments.driver"]
CONTAINER_LAB = "/tmp/gilbench-lab"
USER_CODE_DIR = "userwork"  # in the lab: the user workloads' code
OWNER_LABEL = "org.gilbench.owner"
# An interpreter that has not printed its probe by then never will (a real one takes
# well under a second; a cold container start a few).
PROBE_TIMEOUT_S = 60.0
_VERSION = re.compile(r"\d+\.\d+(\.\d+)?\S*")


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
    probe_timeout_s: float = PROBE_TIMEOUT_S

    def __init__(self, target: Target, log_path: Path) -> None:
        self.target = target
        self.log_path = log_path
        # Where this runner's target imports user workloads' code from (ship_user_code).
        self.user_path: str | None = None

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

    def host_facts(self) -> dict[str, Any] | None:
        """The measuring machine's facts when it is not this host (a remote engine's),
        for the manifest's `host`; None: this host (hostinfo.collect)."""
        return None

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What the manifest should record about where the cells ran: the limits as the
        backend reports them applied, not as they were asked for."""

    @abstractmethod
    def driver_lines(self, args: list[str], cells: bytes | None = None) -> Iterator[str]:
        """Run the driver with args; its stdout, line by line, as it comes."""

    def probe(self) -> dict[str, Any]:
        """What the interpreter is (experiments/probe.py), within probe_timeout_s.

        The driver is read in a thread, so a silent interpreter cannot hang gilbench: on
        timeout the runner is closed, which kills the process group or the container.
        """
        lines: list[str] = []
        failed: list[BaseException] = []

        def read() -> None:
            try:
                lines.extend(self.driver_lines(["--probe"]))
            except BaseException as exc:  # handed to the caller's thread below
                failed.append(exc)

        reader = threading.Thread(target=read, name="gilbench-probe", daemon=True)
        reader.start()
        reader.join(self.probe_timeout_s)
        if reader.is_alive():
            self.close()
            reader.join(10)
            raise GilbenchError(
                f"{self.target.executable} did not answer the gilbench probe within "
                f"{self.probe_timeout_s:g} s and was stopped; give a CPython 3.12 or newer "
                "that starts."
            )
        if failed:
            raise failed[0]
        return parse_probe(self.target.executable, lines, self._log_tail())

    def _log_tail(self) -> str:
        try:
            tail = self.log_path.read_text(errors="replace").strip().splitlines()[-1:]
        except OSError:
            tail = []
        return tail[0] if tail else ""

    def ship_user_code(self, folder: Path) -> None:
        """Make the run's copy of the user workloads' code importable by the target: a
        native python reads the run folder itself."""
        self.user_path = str(folder.resolve())

    def check_workload(self, name: str) -> str:
        """Why the target python cannot import and call user workload `name` ('' if it
        can), in a driver process of its own, before any cell runs."""
        assert self.user_path is not None, "ship_user_code first"
        lines = list(self.driver_lines(["--check-workload", self.user_path, name]))
        answers = [line for line in lines if line.startswith("{")]
        try:
            answer = json.loads(answers[-1])
        except (IndexError, json.JSONDecodeError):
            return f"the check ended without an answer ({self._log_tail() or 'no output'})"
        return str(answer.get("problem") or "") if isinstance(answer, dict) else "no answer"

    def run_cells(self, cells: list[dict[str, Any]]) -> Iterator[str]:
        # The user code's folder is where this runner put it: not part of the cell's
        # identity (the manifest's cells do not carry it).
        if self.user_path is not None:
            cells = [{**cell, "user_path": self.user_path} for cell in cells]
        payload = "".join(json.dumps(cell) + "\n" for cell in cells).encode()
        return self.driver_lines([], payload)


def parse_probe(executable: str, lines: list[str], log_tail: str = "") -> dict[str, Any]:
    """The probe's JSON object from the driver's output, or one sentence saying why not."""
    candidates = [line.strip() for line in lines if line.strip().startswith("{")]
    if not candidates:
        raise GilbenchError(
            f"{executable} could not run the gilbench driver ({log_tail or 'no output'}); "
            "it must be CPython 3.12 or newer."
        )
    text = candidates[-1]
    shown = text if len(text) <= 60 else text[:57] + "..."
    try:
        info = json.loads(text)
    except json.JSONDecodeError:
        raise GilbenchError(
            f"{executable} answered the gilbench probe with {shown!r}, which is not JSON; "
            "it must be CPython 3.12 or newer running the gilbench driver."
        ) from None
    version = info.get("python_version") if isinstance(info, dict) else None
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise GilbenchError(
            f"{executable} answered the gilbench probe with {shown!r}, which names no "
            "Python version; it must be CPython 3.12 or newer running the gilbench driver."
        )
    assert isinstance(info, dict)
    return info


def format_cpus(cpus: set[int]) -> str:
    """{0, 1, 2, 5} -> "0-2,5" (Docker's --cpuset-cpus syntax)."""
    parts: list[str] = []
    for cpu in sorted(cpus):
        if parts and cpu == int(parts[-1].rpartition("-")[2]) + 1:
            parts[-1] = f"{parts[-1].partition('-')[0]}-{cpu}"
        else:
            parts.append(str(cpu))
    return ",".join(parts)


def parse_cpuset(cpuset: str, available: set[int] | None = None) -> set[int]:
    """Docker's --cpuset-cpus syntax ("0-2,4") as CPU numbers this process may use.

    Empty means every CPU available (os.sched_getaffinity); a CPU outside that set or a
    backwards range is refused rather than recorded and ignored.
    """
    usable = set(os.sched_getaffinity(0)) if available is None else set(available)
    text = cpuset.strip()
    if not text:
        return usable
    cpus: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        first, dash, last = part.partition("-")
        if not (first.isdigit() and (last.isdigit() or not dash)):
            raise GilbenchError(f"--cpuset {cpuset!r} is not a CPU list like 0-1 or 0,2.")
        low, high = int(first), int(last) if dash else int(first)
        if high < low:
            raise GilbenchError(
                f"--cpuset {cpuset!r} has the range {part}, which runs backwards; "
                f"write {high}-{low}."
            )
        # Only the part up to the highest usable CPU is expanded: 0-999999999 stays small.
        top = max(usable, default=-1)
        outside = format_cpus(set(range(low, min(high, top) + 1)) - usable)
        if high > top:
            beyond = max(low, top + 1)
            outside = ",".join(filter(None, [outside, f"{beyond}-{high}" if high > beyond
                                              else str(high)]))
        if outside:
            plural = "s" if "," in outside or "-" in outside else ""
            raise GilbenchError(
                f"--cpuset {cpuset!r} names CPU{plural} {outside}, which gilbench cannot use "
                f"on this host; choose among CPUs {format_cpus(usable)}."
            )
        cpus.update(range(low, high + 1))
    return cpus


def place(
    cpuset: str, available: set[int] | None = None, topo: topology.Topology | None = None,
    max_workers: int | None = None,
) -> set[int]:
    """The CPUs a run's cells get: an explicit cpuset exactly as given; without one, one
    logical CPU of each physical core (the lowest sibling), and, when max_workers is known
    and one NUMA node has that many physical cores, only that node's (the one with most)."""
    cpus = parse_cpuset(cpuset, available)
    if cpuset.strip():
        return cpus
    topo = topo or topology.read()
    chosen = topo.one_per_core(cpus)
    if max_workers:
        nodes = {node: {cpu for cpu in chosen if topo.node_of.get(cpu, 0) == node}
                 for node in topo.nodes(chosen)}
        roomy = [node for node, members in nodes.items() if len(members) >= max_workers]
        if len(nodes) > 1 and roomy:
            chosen = nodes[max(roomy, key=lambda node: (len(nodes[node]), -node))]
    return chosen or cpus


def placement_facts(cpus: set[int], explicit: bool,
                    topo: topology.Topology | None = None) -> dict[str, Any]:
    """What a runner's description says about its CPUs: the physical cores the cells could
    use (the report's speedup limit), whether the set holds SMT siblings, its NUMA nodes."""
    topo = topo or topology.read()
    return {"physical_cores": topo.physical_cores(cpus),
            "smt_siblings": bool(topo.smt_siblings(cpus)),
            "numa_nodes": len(topo.nodes(cpus)),
            "placement": "as given (--cpuset)" if explicit else "one logical CPU per physical core"}


class NativeRunner(Runner):
    """The driver as a subprocess of this host, pinned to the CPU set (no memory limit)."""

    name = backends.NativeBackend.name

    def __init__(
        self, target: Target, log_path: Path, cpuset: str = "",
        max_workers: int | None = None, topo: topology.Topology | None = None,
    ) -> None:
        super().__init__(target, log_path)
        self.proc: subprocess.Popen[bytes] | None = None
        self.topology = topo or topology.read()
        self.explicit = bool(cpuset.strip())
        self.cpus = place(cpuset, None, self.topology, max_workers)
        self.applied_cpus: set[int] | None = None  # read back from a started driver

    def describe(self) -> dict[str, Any]:
        cpus = self.applied_cpus or self.cpus
        return {"name": self.name, "cpuset": format_cpus(cpus),
                **placement_facts(cpus, self.explicit, self.topology),
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
                # Default signals, this run's CPUs, and death with gilbench even when it
                # is killed outright (SIGKILL) so the driver does not run on.
                proc = subprocess.Popen(
                    spawn.clean([self.target.executable, *DRIVER, *args], cpus=self.cpus,
                                die_with_parent=True),
                    cwd=REPO, stdout=subprocess.PIPE, stderr=log, start_new_session=True,
                )
            except OSError as exc:
                raise GilbenchError(
                    f"Cannot start {self.target.executable} ({exc.strerror}); give an existing "
                    "interpreter with --python."
                ) from exc
            self.proc = proc
            assert proc.stdout is not None
            try:
                for number, line in enumerate(_lines(iter(proc.stdout.readline, b""))):
                    if number == 0:  # the driver speaks: the wrapper has pinned it
                        with contextlib.suppress(OSError):  # it may be gone already
                            self.applied_cpus = set(os.sched_getaffinity(proc.pid))
                    yield line
                proc.wait()
            finally:
                _stop(proc)
                if self.proc is proc:
                    self.proc = None

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End a driver and its process group: SIGTERM first (the driver then kills the cell
    process group it started), SIGKILL after 5 s."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), 0o644, 1000, 1000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _stderr_of(raw: Any) -> bytes:
    """The stderr frames of an exec's multiplexed stream (8-byte headers: stream, 0, 0, 0,
    size), read to its end with plain recv, which keeps the socket's timeout (the SDK's
    reader polls without one)."""
    stream = b"".join(iter(lambda: raw.recv(1 << 16), b""))
    err, at = b"", 0
    while at + 8 <= len(stream):
        kind, size = stream[at], int.from_bytes(stream[at + 4:at + 8], "big")
        if kind == 2:
            err += stream[at + 8:at + 8 + size]
        at += 8 + size
    return err


def experiments_files() -> dict[str, bytes]:
    """The target side as shipped into a container: every file under experiments/."""
    return {
        str(path.relative_to(REPO)): path.read_bytes()
        for path in sorted(EXPERIMENTS_DIR.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


# The container's sandbox. Workers write only to /tmp (a tmpfs, which also holds the lab:
# the experiments/ tree and the cells) and /dev/shm (Docker's own tmpfs, where
# multiprocessing keeps its semaphores); everything else is read-only.
TMPFS = {"/tmp": "rw,nosuid,nodev,noexec,size=256m,mode=1777"}
SECURITY_OPT = ["no-new-privileges"]
CAP_DROP = ["ALL"]
# Every thread counts against the pids cgroup, so the limit is sized for the run's largest
# worker count: per worker at most the worker itself (a thread or a process), the
# parent's feeder thread for it (processes model), one helper thread inside it and one
# spare; plus a fixed part for `sleep infinity`, the driver and its three threads, the
# cell process and its threads, the forkserver, the resource tracker, `docker exec`
# copies and probes, with room to spare.
PIDS_BASE, PIDS_PER_WORKER = 64, 4
DEFAULT_MAX_WORKERS = 256  # when the caller does not say


def pids_limit(max_workers: int) -> int:
    return PIDS_BASE + PIDS_PER_WORKER * max(1, max_workers)


COPY_TIMEOUT_S = 300.0
# Unpacks a tar from stdin into the lab on the tmpfs, as the gilbench user. (Docker's
# put_archive writes into the root filesystem, which is read-only, never into a tmpfs.)
# Length-prefixed, so that it needs no end of input: a TLS connection cannot be half-
# closed (shutting its socket's write side tears TLS down) and an ssh one is a pipe.
_UNPACK = (
    "import io, sys, tarfile\n"
    "size = int(sys.stdin.buffer.readline())\n"
    "data = sys.stdin.buffer.read(size)\n"
    "if len(data) != size:\n"
    "    sys.exit(f'got {len(data)} of {size} bytes')\n"
    "with tarfile.open(fileobj=io.BytesIO(data)) as tar:\n"
    "    tar.extractall(sys.argv[1], filter='data')\n"
)


class DockerRunner(Runner):
    name = backends.DockerBackend.name

    def __init__(
        self, target: Target, log_path: Path, cpuset: str, memory: str | None,
        max_workers: int | None = None, engine_url: str | None = None,
    ) -> None:
        super().__init__(target, log_path)
        # Silent cells (a hang until its timeout) must not trip the socket timeout.
        self.client = engine.connect(timeout=24 * 3600, url=engine_url)
        self.engine_url = engine_url
        self.engine_host: dict[str, Any] | None = None
        available: set[int] | None = None
        assert target.image is not None, "a docker target has an image"
        if engine_url:  # another machine: its CPUs and topology, not this host's
            from gilbench.engines import host_facts

            self.engine_host, topo = host_facts(self.client, engine_url, target.image,
                                                target.executable)
            ncpu = int(self.engine_host.get("cores") or 1)
            self.topology = topo or topology.Topology(
                {cpu: (cpu,) for cpu in range(ncpu)}, dict.fromkeys(range(ncpu), 0),
                ["the engine's CPU topology is unknown, so each CPU counts as a core"])
            available = self.topology.cpus
        else:
            self.topology = topology.read()
        self.explicit = bool(cpuset.strip())
        self.cpuset = format_cpus(place(cpuset, available, self.topology, max_workers))
        self.memory = memory
        self.max_workers = max_workers or DEFAULT_MAX_WORKERS
        _remove_orphans(self.client)
        try:
            self.container = self.client.containers.run(
                target.image, ["sleep", "infinity"], detach=True, network_mode="none",
                user="gilbench", cpuset_cpus=self.cpuset, mem_limit=memory, working_dir="/",
                read_only=True, tmpfs=TMPFS, security_opt=SECURITY_OPT, cap_drop=CAP_DROP,
                pids_limit=pids_limit(self.max_workers),
                labels={OWNER_LABEL: _owner(os.getpid())},
            )
        except docker.errors.ImageNotFound as exc:
            raise GilbenchError(
                f"The image {target.image} is gone; rebuild it with `invoke build`."
            ) from exc
        except docker.errors.DockerException as exc:
            reason = getattr(exc, "explanation", None) or exc
            raise GilbenchError(
                f"Docker refused to start {target.image} with cpuset {self.cpuset!r} and "
                f"memory {memory!r}: {reason}."
            ) from exc
        try:
            self._copy_in(experiments_files())
        except BaseException:
            self.close()
            raise

    def _copy_in(self, files: dict[str, bytes]) -> None:
        """Unpack files into the lab: a tar on the stdin of a `docker exec`."""
        api = self.client.api
        exec_id = api.exec_create(
            self.container.id, [self.target.executable, "-I", "-c", _UNPACK, CONTAINER_LAB],
            stdin=True, user="gilbench", workdir="/",
        )["Id"]
        sock = api.exec_start(exec_id, socket=True)
        raw: Any = getattr(sock, "_sock", sock)  # the socket under the HTTP response
        # The client's timeout is a day (silent cells); a copy that stalls must not be.
        raw.settimeout(COPY_TIMEOUT_S)
        try:
            data = _tar(files)
            raw.sendall(b"%d\n" % len(data) + data)
            err = _stderr_of(raw)
        except TimeoutError:
            raise GilbenchError(
                f"Copying the experiments into the container of {self.target.image} did not "
                f"finish within {COPY_TIMEOUT_S:g} s; check the engine"
                f"{f' at {self.engine_url}' if self.engine_url else ''} (`docker info`)."
            ) from None
        finally:
            # Over ssh the stream is a pipe to `ssh`, which may have exited with the exec:
            # the SDK's close then flushes into a broken pipe (seen in CI).
            with contextlib.suppress(OSError):
                sock.close()
        code = _exit_code(api, exec_id)
        if code != 0:
            tail = (err or b"").decode(errors="replace").strip().splitlines()[-1:]
            raise GilbenchError(
                f"Copying the experiments into the container of {self.target.image} failed "
                f"({tail[0] if tail else f'exit status {code}'}); rebuild the image with "
                "`invoke build`."
            )

    def ship_user_code(self, folder: Path) -> None:
        """Into the container's lab, beside the harness (the run folder is not mounted)."""
        from gilbench.userwork import read_tree

        self._copy_in({f"{USER_CODE_DIR}/{name}": data
                       for name, data in read_tree(folder).items()})
        self.user_path = f"{CONTAINER_LAB}/{USER_CODE_DIR}"

    def describe(self) -> dict[str, Any]:
        """The container as Docker reports it (docker inspect), sandbox included."""
        self.container.reload()
        attrs = self.container.attrs
        host_config = attrs["HostConfig"]
        applied = host_config.get("CpusetCpus") or self.cpuset
        try:
            facts = placement_facts(topology.parse_cpulist(applied), self.explicit,
                                    self.topology)
        except ValueError:
            facts = {}
        return {"name": self.name, "image": self.target.image, "container": attrs["Id"][:12],
                **({"engine": self.engine_url} if self.engine_url else {}),
                "cpuset": host_config.get("CpusetCpus"), **facts,
                "memory_bytes": host_config.get("Memory"),
                "network": host_config.get("NetworkMode"), "user": attrs["Config"]["User"],
                "read_only_rootfs": host_config.get("ReadonlyRootfs"),
                "tmpfs": host_config.get("Tmpfs"), "shm_bytes": host_config.get("ShmSize"),
                "security_opt": host_config.get("SecurityOpt"),
                "cap_drop": host_config.get("CapDrop"), "cap_add": host_config.get("CapAdd"),
                "pids_limit": host_config.get("PidsLimit"),
                "pids_limit_for_workers": self.max_workers}

    def driver_lines(self, args: list[str], cells: bytes | None = None) -> Iterator[str]:
        if cells is not None:
            self._copy_in({"cells-pending.jsonl": cells})
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

    def host_facts(self) -> dict[str, Any] | None:
        return self.engine_host

    def alive(self) -> bool:
        try:
            self.container.reload()
        except docker.errors.DockerException:
            return False
        return bool(self.container.status == "running")

    def close(self) -> None:
        with contextlib.suppress(docker.errors.DockerException):
            self.container.remove(force=True)


def _exit_code(api: Any, exec_id: str) -> int | None:
    """An exec's exit status; Docker may set it a moment after its output ends."""
    for _ in range(100):
        state = api.exec_inspect(exec_id)
        if not state.get("Running"):
            return state.get("ExitCode")
        time.sleep(0.05)
    return None


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
