"""One multiprocessing.Process per worker, each with a duplex Pipe to the parent."""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import resource
import signal
import threading
import time
from multiprocessing.connection import wait

from experiments import memory, workloads
from experiments.failures import WorkerCrashed, WorkerError, describe
from experiments.models.phases import Phases, split_tasks

TYPE_CHECKING = False  # not typing's: see experiments/catalog.py
if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from typing import Any

# The module each start method imports on its first Process.start(): imported before
# the clock starts, so the first measured repetition does not pay for it.
_POPEN = {
    "fork": "multiprocessing.popen_fork",
    "spawn": "multiprocessing.popen_spawn_posix",
    "forkserver": "multiprocessing.popen_forkserver",
}


def unsupported(config: dict[str, Any]) -> str | None:
    method = config["start_method"]
    if method not in multiprocessing.get_all_start_methods():
        return f"start method {method!r} is not available on this platform."
    return None


def api(config: dict[str, Any]) -> str:
    return f"multiprocessing:{config['start_method']}"


def transport(config: dict[str, Any]) -> str | None:
    return "multiprocessing.Pipe"


def _work(workload: str, params: dict[str, Any], count: int, conn: Connection) -> None:
    """The child's whole life: say ready, wait for go, run its share, report each result."""
    try:
        workloads.prepare(workload)  # a user workload's import is start-up, before ready
        conn.send(("R", None))
        if conn.recv() != "G":
            return
        for _ in range(count):
            payload = conn.recv() if workloads.needs_payload(workload) else None
            if payload == "X":  # the parent gave up after a failure elsewhere
                return
            conn.send(("D", workloads.run_task(workload, params, payload)))
        if conn.recv() == "T":  # the parent asks for our own resource usage
            times = os.times()
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            conn.send(("T", (times.user + times.system, peak)))
    except EOFError:
        pass  # the parent closed our pipe after a failure elsewhere: just leave
    except BaseException as exc:
        with contextlib.suppress(OSError):
            conn.send(("E", describe(exc)))
    finally:
        conn.close()


def _feed(conn: Connection, payload: bytes, count: int) -> None:
    # A thread per worker: a payload larger than the pipe buffer blocks until the
    # child reads it, and the child may be blocked sending a result back.
    for _ in range(count):
        conn.send(payload)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _receive(conn: Connection, procs: dict[Connection, Any]) -> tuple[str, Any]:
    try:
        kind, value = conn.recv()
    except EOFError:
        proc = procs[conn]
        proc.join(1.0)
        code = proc.exitcode
        how = f"killed by {_signal_name(-code)}" if code and code < 0 else f"exit code {code}"
        raise WorkerCrashed(f"worker process {proc.pid} died ({how})") from None
    return kind, value


def run(workload: str, params: dict[str, Any], workers: int, config: dict[str, Any]) -> Phases:
    ctx = multiprocessing.get_context(config["start_method"])
    importlib.import_module(_POPEN[config["start_method"]])
    counts = split_tasks(params["tasks"], workers)
    # Made before the clock starts: building the payload is not transferring it.
    payload = workloads.make_payload(params) if workloads.needs_payload(workload) else None
    start = time.perf_counter()
    procs: dict[Connection, Any] = {}
    for n in counts:
        parent, child = ctx.Pipe(duplex=True)
        proc = ctx.Process(target=_work, args=(workload, params, n, child), daemon=True)
        proc.start()
        child.close()  # so the parent sees EOF when the child dies
        procs[parent] = proc
    conns = list(procs)
    pids = [proc.pid for proc in procs.values()]  # forkserver's too: their real pids
    mem = memory.Samples()
    error = ""
    usage: list[tuple[float, int]] | None = None
    try:
        waiting = set(conns)
        while waiting and not error:
            for conn in wait(list(waiting)):
                kind, value = _receive(conn, procs)  # type: ignore[arg-type]
                if kind == "E":
                    error = value
                waiting.discard(conn)
        gate = time.perf_counter()  # start-up ends; the sample is in no phase
        if not error:
            mem.take(pids)
        ready = time.perf_counter()
        for conn in conns:
            with contextlib.suppress(OSError):  # a child that failed has already left
                conn.send("X" if error else "G")
        results: list[Any] = []
        feeders: list[threading.Thread] = []
        if not error and payload is not None:
            feeders = [
                threading.Thread(target=_feed, args=(conn, payload, n), daemon=True)
                for conn, n in zip(conns, counts, strict=True)
            ]
            for t in feeders:
                t.start()
        # Only wait on children still owing results: a finished child's EOF is no error.
        owed = {c: n for c, n in zip(conns, counts, strict=True) if n}
        while owed and not error:
            for conn in wait(list(owed)):
                kind, value = _receive(conn, procs)  # type: ignore[arg-type]
                if kind == "E":
                    error = value
                    break
                results.append(value)
                owed[conn] -= 1  # type: ignore[index]
                if not owed[conn]:  # type: ignore[index]
                    del owed[conn]  # type: ignore[arg-type]
        done = time.perf_counter()
        if not error:  # the workers are still alive, waiting to be asked for their usage
            mem.take(pids)
        after = time.perf_counter()  # teardown starts
        for t in feeders:
            t.join()
        usage = _collect_usage(conns, error)
    finally:
        if usage is None:
            # Something failed: tell every child to leave wherever it waits, so the
            # joins below cannot hang. (Closing our end is not enough: a forked child
            # holds copies of the parent ends created before it.)
            for conn in conns:
                with contextlib.suppress(OSError):
                    conn.send("X")
        for conn, proc in procs.items():
            proc.join()
            conn.close()
    end = time.perf_counter()
    if error:
        raise WorkerError(error)
    phases = Phases(gate - start, done - ready, end - after, results)
    phases.memory = mem
    if config["start_method"] == "forkserver":
        # Forkserver workers are the server's children, so RUSAGE_CHILDREN never
        # sees them; use what they reported instead.
        phases.worker_cpu_s = sum(cpu for cpu, _ in usage or [])
        phases.worker_peak_rss_kb = max((peak for _, peak in usage or []), default=0)
    return phases


def _collect_usage(conns: list[Connection], error: str) -> list[tuple[float, int]] | None:
    """Each worker's own CPU seconds and peak RSS (KiB), asked for after the last result."""
    if error:
        return None
    for conn in conns:
        conn.send("T")
    usage = []
    for conn in conns:
        kind, value = conn.recv()
        if kind == "T":
            usage.append((float(value[0]), int(value[1])))
    return usage
