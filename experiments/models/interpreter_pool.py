"""concurrent.futures.InterpreterPoolExecutor (3.14+): a pool of isolated interpreters.

Startup is measured by submitting one `ready` task per worker that signals over
a pipe and blocks until go: each occupies a worker, which forces the pool to
create all of them before the real tasks run. Written from the 3.14 sources.
"""

from __future__ import annotations

import concurrent.futures
import os
import select
import sys
import time

from experiments import workloads
from experiments.failures import WorkerError, describe
from experiments.models.phases import Phases
from experiments.pool_tasks import ready_then_wait

TYPE_CHECKING = False  # not typing's: see experiments/catalog.py
if TYPE_CHECKING:
    from typing import Any

# The directory holding the `experiments` package (os.path: see models/subinterpreters.py).
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


def unsupported(config: dict[str, Any]) -> str | None:
    if not hasattr(concurrent.futures, "InterpreterPoolExecutor"):
        return (
            "concurrent.futures.InterpreterPoolExecutor needs Python 3.14; "
            f"this is {sys.version_info.major}.{sys.version_info.minor}."
        )
    return None


def api(config: dict[str, Any]) -> str:
    # The pool's worker threads each create their interpreter as they start, with no
    # lock between them: creation is concurrent (no `create` axis to choose it here).
    return "concurrent.futures.InterpreterPoolExecutor (concurrent creation)"


def transport(config: dict[str, Any]) -> str | None:
    return "InterpreterPoolExecutor (pickle)"


def run(workload: str, params: dict[str, Any], workers: int, config: dict[str, Any]) -> Phases:
    pool_cls: Any = concurrent.futures.InterpreterPoolExecutor  # type: ignore[attr-defined]
    events_r, events_w = os.pipe()
    go_r, go_w = os.pipe()
    payload = workloads.make_payload(params) if workloads.needs_payload(workload) else None
    try:
        start = time.perf_counter()
        # exec is picklable by reference, so it can put our package on sys.path in
        # each new interpreter before any task of ours is unpickled there.
        pool = pool_cls(
            max_workers=workers,
            initializer=exec,
            initargs=(f"import sys; sys.path.insert(0, {ROOT!r})",),
        )
        try:
            gates = [pool.submit(ready_then_wait, events_w, go_r) for _ in range(workers)]
            pending = workers
            while pending:
                # select's timeout only matters when a worker failed to start: then
                # its gate future finishes with the error and no byte ever comes.
                if select.select([events_r], [], [], 0.05)[0]:
                    os.read(events_r, 1)
                    pending -= 1
                for gate in gates:
                    if gate.done():
                        gate.result()  # raises the worker's error
            ready = time.perf_counter()
            futures = [
                pool.submit(workloads.run_task, workload, params, payload)
                for _ in range(params["tasks"])
            ]
            os.write(go_w, b"G" * workers)
            results = [f.result() for f in futures]
            done = time.perf_counter()
            for gate in gates:
                gate.result()
        except BaseException as exc:
            os.write(go_w, b"X" * workers)
            raise WorkerError(describe(exc)) from exc
        finally:
            pool.shutdown(wait=True)
        end = time.perf_counter()
    finally:
        for fd in (events_r, events_w, go_r, go_w):
            os.close(fd)
    return Phases(ready - start, done - ready, end - done, results)
