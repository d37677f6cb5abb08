"""InterpreterPoolExecutor: a pool of isolated interpreters, `max_workers = workers`.

The executor is 3.14's `concurrent.futures.InterpreterPoolExecutor`, or on 3.13 the
interpreters-pep-734 backport's (experiments/subinterp/pep734.py); `api` names which.

Phases as in the other models (models/phases.py): `startup_s` runs from creating the pool
until every worker is ready, which here means its interpreter exists, has imported the
workload module (the pool's initializer, `experiments.pool_tasks.INIT`) and sits blocked
in a `ready_then_wait` gate, one per worker (each gate occupies a worker, which forces the
pool to start all of them before any task). `wall_s` runs from go to the last result.

`create` (catalog) as for subinterpreters: "concurrent" submits every gate at once, so the
pool's worker threads create their interpreters at the same time, which is what the pool
does on its own; "serial" submits the next gate only once the previous worker's
interpreter exists (the initializer's first act is to say so), so creations do not
overlap while the imports after them may, like the subinterpreters model's lock.

Transport (`transport()`), read from the sources, since the executors differ:
- 3.14: each task is `Interpreter.call(do_call, results, fn, args, kwargs)`; the callable
  and every argument go as cross-interpreter data with pickle as the fallback, per item:
  bytes, str, int and float are shared natively, our task function and its params dict
  are pickled; the result comes back the same way (natively for our results).
- backport 0.5.0: `pickle.dumps((fn, args, kwargs))`, payload included, is written into
  the source that `_interpreters.exec` compiles in the worker; the result comes back
  through an `_interpqueues` queue, natively when shareable.

When a worker's initializer fails the executor logs the cause ("Exception in
initializer") and fails every pending future with BrokenInterpreterPool and a fixed
sentence; the record's message gives the logged cause first.
"""

from __future__ import annotations

import os
import select
import time

from experiments import memory, workloads
from experiments.failures import WorkerError
from experiments.models.phases import Phases
from experiments.pool_tasks import init_source, ready_then_wait
from experiments.subinterp import pep734

TYPE_CHECKING = False  # not typing's: see experiments/catalog.py
if TYPE_CHECKING:
    import logging
    from concurrent.futures import Future
    from typing import Any

# The directory holding the `experiments` package (os.path: see models/subinterpreters.py).
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


def unsupported(config: dict[str, Any]) -> str | None:
    return pep734.pool_unavailable()


# api and transport name the path that ran; where nothing runs they stay empty.
def api(config: dict[str, Any]) -> str:
    return "" if unsupported(config) else pep734.pool_name()


def transport(config: dict[str, Any]) -> str | None:
    if unsupported(config):
        return None
    if pep734.is_backport():
        return "pickle in exec'd source (callable, params, payload); result via _interpqueues"
    return "Interpreter.call (payload and result shared; callable and params pickled)"


def _told(exc: BaseException) -> str:
    """describe()'s `Type: message (from Cause: ...)`, one line per exception: a worker's
    exception comes with its cause, ExecutionFailed, whose text adds the traceback from
    inside the interpreter."""
    parts: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(parts) < 4:
        text = str(current).strip().split("\n", 1)[0]
        parts.append(f"{type(current).__name__}: {text}" if text else type(current).__name__)
        current = current.__cause__ or current.__context__
    return parts[0] + "".join(f" (from {p})" for p in parts[1:])


def _logged_failures() -> tuple[logging.Logger, logging.Handler, list[str]]:
    """A handler on the executor's logger that keeps what it logs about failed workers.

    logging is already loaded: concurrent.futures._base imports it."""
    import logging

    found: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            exc = record.exc_info[1] if record.exc_info else None
            found.append(_told(exc) if exc is not None else record.getMessage())

    logger = logging.getLogger("concurrent.futures")
    handler = Keep()
    logger.addHandler(handler)  # also keeps logging's last-resort print off stderr
    return logger, handler, found


class _Workers:
    """The gates' futures and the events pipe they write `C` (created) and `R` (ready) to."""

    def __init__(self, events_r: int, logged: list[str]) -> None:
        self.events_r = events_r
        self.logged = logged
        self.gates: list[Future[Any]] = []
        self.seen = {b"C": 0, b"R": 0}

    def wait_for(self, event: bytes, count: int) -> None:
        while self.seen[event] < count:
            # The timeout only matters when a worker failed: then its gate's future ends
            # with the error and no byte ever comes.
            if select.select([self.events_r], [], [], 0.05)[0]:
                for byte in os.read(self.events_r, 64):
                    self.seen[bytes((byte,))] += 1
            for gate in self.gates:
                if gate.done():
                    self.result(gate)

    def result(self, future: Future[Any]) -> Any:
        """The future's result, or a WorkerError that starts with the cause the pool logged."""
        try:
            return future.result()
        except BaseException as exc:
            said = _told(exc)
            if self.logged and self.logged[0] not in said:
                said = f"{self.logged[0]} (then {said})"
            raise WorkerError(said) from exc


def run(workload: str, params: dict[str, Any], workers: int, config: dict[str, Any]) -> Phases:
    pool_cls = pep734.pool_executor()
    serial = config.get("create") == "serial"
    events_r, events_w = os.pipe()
    go_r, go_w = os.pipe()
    logger, handler, logged = _logged_failures()
    state = _Workers(events_r, logged)
    mem = memory.Samples()
    # Made before the clock starts: building the payload is not transferring it.
    payload = workloads.make_payload(params) if workloads.needs_payload(workload) else None
    try:
        start = time.perf_counter()
        # exec(source, {}): picklable by reference, and a fresh namespace for its names.
        pool = pool_cls(max_workers=workers, initializer=exec,
                        initargs=(init_source(events_w, ROOT, workload), {}))
        try:
            for n in range(workers):
                state.gates.append(pool.submit(ready_then_wait, events_w, go_r))
                if serial:
                    state.wait_for(b"C", n + 1)
            state.wait_for(b"R", workers)
            # Every pool interpreter lives in this process: its PSS is the total.
            all_ready = time.perf_counter()  # start-up ends; the sample is in no phase
            mem.take()
            ready = time.perf_counter()
            futures = [pool.submit(workloads.run_task, workload, params, payload)
                       for _ in range(params["tasks"])]
            os.write(go_w, b"G" * workers)
            results = [state.result(f) for f in futures]
            done = time.perf_counter()
            mem.take()  # the pool's interpreters still exist
            after = time.perf_counter()  # teardown starts
            for gate in state.gates:
                state.result(gate)
        except BaseException:
            os.write(go_w, b"X" * workers)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        end = time.perf_counter()
    finally:
        logger.removeHandler(handler)
        for fd in (events_r, events_w, go_r, go_w):
            os.close(fd)
    phases = Phases(all_ready - start, done - ready, end - after, results)
    phases.memory = mem
    return phases
