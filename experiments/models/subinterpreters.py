"""One sub-interpreter per worker, each created, run and destroyed by its own thread.

Creating the interpreter happens inside the worker thread, so startup_s covers
interpreter creation plus importing the workload, and teardown_s covers
destroying it, as an application would pay them.
"""

from __future__ import annotations

import os
import threading
import time

from experiments import memory, subinterp, workloads
from experiments.failures import WorkerError, describe
from experiments.models.phases import Phases, owner_of_each_task, split_tasks
from experiments.subinterp import worker

TYPE_CHECKING = False  # not typing's: see experiments/catalog.py
if TYPE_CHECKING:
    from typing import Any

# The directory holding the `experiments` package, for the worker's sys.path:
# a new interpreter does not get the main one's `-m` entry. (os.path, not pathlib:
# pathlib costs a measurement process milliseconds of start-up.)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


def unsupported(config: dict[str, Any]) -> str | None:
    adapter = subinterp.adapter(config)
    if adapter is None:
        return "sub-interpreters with their own config need CPython 3.12 or later."
    reason: str | None = adapter.unsupported(config)
    return reason


# api and transport name the path that ran; where nothing runs they stay empty.
def api(config: dict[str, Any]) -> str:
    adapter = subinterp.adapter(config)
    if adapter is None or unsupported(config) is not None:
        return ""
    return str(adapter.api(config))


def transport(config: dict[str, Any]) -> str | None:
    adapter = subinterp.adapter(config)
    if adapter is None or unsupported(config) is not None:
        return None
    return str(adapter.transport())


class _Events:
    """The main side of the control pipes (see experiments.subinterp.worker)."""

    def __init__(self, workers: int) -> None:
        self.events_r, self.events_w = os.pipe()
        self.go_r, self.go_w = os.pipe()
        self.release_r, self.release_w = os.pipe()
        self.errors_r, self.errors_w = os.pipe()
        self.inboxes = [os.pipe() for _ in range(workers)]

    def fds(self, worker_index: int) -> dict[str, int]:
        return {
            "events": self.events_w,
            "go": self.go_r,
            "release": self.release_r,
            "errors": self.errors_w,
            "inbox": self.inboxes[worker_index][0],
        }

    def next(self) -> bytes:
        return os.read(self.events_r, 1)

    def error_line(self) -> str:
        line = bytearray()
        while not line.endswith(b"\n"):
            chunk = os.read(self.errors_r, 1)
            if not chunk:
                break
            line += chunk
        return line.decode("utf-8", "replace").strip()

    def unblock_all(self, workers: int, tasks: int) -> None:
        """After a failure: wake every worker wherever it waits, so all threads end."""
        os.write(self.go_w, b"X" * workers)
        os.write(self.release_w, b"X" * workers)
        for _, inbox_w in self.inboxes:
            os.write(inbox_w, b"X" * tasks)

    def close(self) -> None:
        pairs = [
            (self.events_r, self.events_w),
            (self.go_r, self.go_w),
            (self.release_r, self.release_w),
            (self.errors_r, self.errors_w),
            *self.inboxes,
        ]
        for pair in pairs:
            for fd in pair:
                os.close(fd)


def run(workload: str, params: dict[str, Any], workers: int, config: dict[str, Any]) -> Phases:
    adapter = subinterp.adapter(config)
    assert adapter is not None
    counts = split_tasks(params["tasks"], workers)
    transfer = workloads.needs_payload(workload)
    events = _Events(workers)
    out_q = adapter.create_queue()
    in_qs = [adapter.create_queue() if transfer else out_q for _ in range(workers)]

    def drive(index: int) -> None:
        fds = events.fds(index)
        prelude, shared = adapter.prelude(out_q, in_qs[index])
        source = worker.source(ROOT, prelude, workload, params, counts[index], fds)
        try:
            adapter.run(config, source, shared)
        except BaseException as exc:  # refused config, failed exec: CPython's words
            worker.report_error(fds, describe(exc))

    error = ""
    results: list[Any] = []
    # Made before the clock starts: building the payload is not transferring it.
    payload = workloads.make_payload(params) if transfer else None
    # Every interpreter lives in this process: its PSS is the total.
    mem = memory.Samples()
    start = gate = ready = done = after = time.perf_counter()
    threads = [threading.Thread(target=drive, args=(i,)) for i in range(workers)]
    started: list[threading.Thread] = []
    try:
        for t in threads:
            t.start()
            started.append(t)
        for _ in range(workers):
            if events.next() == b"E":
                error = events.error_line()
                break
        gate = time.perf_counter()  # start-up ends; the sample is in no phase
        if not error:
            mem.take()
        ready = time.perf_counter()
        if not error:
            os.write(events.go_w, b"G" * workers)
            if payload is not None:
                for owner in owner_of_each_task(counts):
                    adapter.put(in_qs[owner], payload)
                    os.write(events.inboxes[owner][1], b"P")
        while not error and len(results) < params["tasks"]:
            if events.next() == b"E":
                error = events.error_line()
            else:
                results.append(workloads.decode_result(workload, adapter.get(out_q)))
        done = after = time.perf_counter()
        if not error:  # the interpreters still exist, waiting to be released
            mem.take()
            after = time.perf_counter()  # teardown starts
    except Exception as exc:  # a failure on the main side (e.g. a queue refused an item)
        error = describe(exc)
    try:
        if error:
            events.unblock_all(workers, params["tasks"])
        else:
            os.write(events.release_w, b"Q" * workers)
        for t in started:  # a thread that could not start has nothing to join
            t.join()
        end = time.perf_counter()
    finally:
        for q in {id(q): q for q in [out_q, *in_qs]}.values():
            adapter.destroy_queue(q)
        events.close()
    if error:
        raise WorkerError(error)
    phases = Phases(gate - start, done - ready, end - after, results)
    phases.memory = mem
    return phases
