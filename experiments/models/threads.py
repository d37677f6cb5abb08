"""One threading.Thread per worker; queue.Queue carries payloads and results.

On a free-threaded build this is the "no GIL" model; the record's gil_enabled says so.
"""

from __future__ import annotations

import queue
import threading
import time

from experiments import memory, workloads
from experiments.failures import WorkerError, describe
from experiments.models.phases import Phases, owner_of_each_task, split_tasks

TYPE_CHECKING = False  # not typing's: see experiments/catalog.py
if TYPE_CHECKING:
    from typing import Any


def unsupported(config: dict[str, Any]) -> str | None:
    return None


def api(config: dict[str, Any]) -> str:
    return "threading"


def transport(config: dict[str, Any]) -> str | None:
    return "queue.Queue"


def _work(
    workload: str,
    params: dict[str, Any],
    count: int,
    inbox: queue.Queue[Any],
    out: queue.Queue[tuple[str, Any]],
    go: threading.Event,
    abort: list[bool],
) -> None:
    try:
        out.put(("R", None))
        go.wait()
        if abort:
            return
        for _ in range(count):
            payload = inbox.get() if workloads.needs_payload(workload) else None
            out.put(("D", workloads.run_task(workload, params, payload)))
    except BaseException as exc:
        out.put(("E", describe(exc)))


def run(workload: str, params: dict[str, Any], workers: int, config: dict[str, Any]) -> Phases:
    counts = split_tasks(params["tasks"], workers)
    out: queue.Queue[tuple[str, Any]] = queue.Queue()
    inboxes: list[queue.Queue[Any]] = [queue.Queue() for _ in range(workers)]
    go = threading.Event()
    abort: list[bool] = []  # non-empty tells waiting workers to leave without working
    # Made before the clock starts: building the payload is not transferring it.
    payload = workloads.make_payload(params) if workloads.needs_payload(workload) else None
    start = time.perf_counter()
    threads = [
        threading.Thread(target=_work, args=(workload, params, n, inboxes[i], out, go, abort))
        for i, n in enumerate(counts)
    ]
    started: list[threading.Thread] = []
    try:
        for t in threads:
            t.start()
            started.append(t)
    except RuntimeError as exc:  # "can't start new thread": release the ones waiting
        abort.append(True)
        go.set()
        for t in started:
            t.join()
        raise WorkerError(f"could start only {len(started)} of {workers} threads "
                          f"({describe(exc)})") from None
    error = ""
    for _ in range(workers):
        kind, value = out.get()
        if kind == "E":
            error = value
            abort.append(True)
            break
    # Every thread lives in this process: its PSS is the total.
    mem = memory.Samples()
    gate = time.perf_counter()  # start-up ends; the sample is in no phase
    if not error:
        mem.take()
    ready = time.perf_counter()
    go.set()
    results: list[Any] = []
    if not error:
        if payload is not None:
            for owner in owner_of_each_task(counts):
                inboxes[owner].put(payload)
        while len(results) < params["tasks"]:
            kind, value = out.get()
            if kind == "E":
                error = value
                break
            results.append(value)
    done = time.perf_counter()
    if not error:
        mem.take()
    after = time.perf_counter()  # teardown starts
    for t in threads:
        t.join()
    end = time.perf_counter()
    if error:
        raise WorkerError(error)
    phases = Phases(gate - start, done - ready, end - after, results)
    phases.memory = mem
    return phases
