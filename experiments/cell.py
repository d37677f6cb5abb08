"""Run one cell in this (fresh) process: `python -E -s -m experiments.cell < cell.json`.

Warmups first (not recorded), then one record per repetition on stdout.
"""

from __future__ import annotations

import _thread
import os
import resource
import sys
import time

from experiments import canary, catalog, contention, memory, workloads
from experiments.failures import WorkerCrashed, describe
from experiments.models import load
from experiments.records import emit, make_record
from experiments.wire import loads

# A lean process (issue 8): its start-up is paid once per cell, and more often once
# repetitions get their own process. So no typing (TYPE_CHECKING is not typing's: see
# experiments/catalog.py), no json (it imports re: experiments.wire uses json's own C
# scanner and encoder), no threading and no signal (enum) unless the model needs them,
# and only the cell's own model (experiments.models.load).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _cpu_seconds() -> tuple[float, float]:
    """(this process, its reaped children): user + system seconds."""
    t = os.times()
    return t.user + t.system, t.children_user + t.children_system


def _peak_rss_kb(workers_reported: int | None) -> int:
    # ru_maxrss is KiB on Linux; children's is the largest child reaped so far.
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return int(max(own, children, workers_reported or 0))


def _gil_enabled() -> bool:
    probe = getattr(sys, "_is_gil_enabled", None)
    return bool(probe()) if probe is not None else True


def measure(model: Any, cell: dict[str, Any], config: dict[str, Any],
            params: dict[str, Any], canaries: bool = True) -> dict[str, Any]:
    """Run the model once and return the record's measurements; raises on failure. The
    host-speed canary (experiments/canary.py) runs right before and right after, outside
    every timed span and outside the CPU and /proc/stat windows; warmups skip it."""
    workers = 1 if cell["model"] == "sequential" else cell["workers"]
    before = memory.total_kb()  # this process alone, before any worker exists
    canary_before = canary.measure() if canaries else None
    cpu_before = canary.cpu() if canaries else None
    own0, children0 = _cpu_seconds()
    host0 = contention.snapshot()
    start = time.perf_counter()
    phases = model.run(cell["workload"], params, workers, config)
    total = time.perf_counter() - start
    if phases.memory is not None:  # the models' PSS sampling is in none of the spans
        total -= phases.memory.seconds
    host1 = contention.snapshot()
    own1, children1 = _cpu_seconds()
    canary_after = canary.measure() if canaries else None
    cpu_after = canary.cpu() if canaries else None
    if phases.worker_cpu_s is None:
        cpu = (own1 - own0) + (children1 - children0)
    else:  # workers we cannot reap reported their own (forkserver)
        cpu = (own1 - own0) + phases.worker_cpu_s
    if len(phases.results) != params["tasks"]:
        raise RuntimeError(f"{len(phases.results)} of {params['tasks']} tasks returned a result")
    problem = workloads.check(cell["workload"], params, phases.results)
    if problem:
        raise RuntimeError(f"result check failed: {problem}")
    return {
        "wall_s": phases.wall_s,
        "startup_s": phases.startup_s,
        "teardown_s": phases.teardown_s,
        "total_s": total,
        "cpu_s": cpu,
        "peak_rss_kb": _peak_rss_kb(phases.worker_peak_rss_kb),
        **memory.fields(phases.memory, before),
        "tasks_done": len(phases.results),
        "gil_enabled": _gil_enabled(),
        "canary_before_s": canary_before,
        "canary_after_s": canary_after,
        # Null when the process moved between the two canaries (or the OS cannot say).
        "canary_cpu": cpu_before if cpu_before == cpu_after else None,
        **contention.measure(host0, host1, cpu, total, canary_before, canary_after),
    }


# Models whose results cross to the main interpreter pickled (a user workload's always are;
# threads and sequential hand over the object itself).
_PICKLED = {"processes": "to send it back from a worker process",
            "subinterpreters": "to send it back from a sub-interpreter",
            "interpreter-pool": "to send it back from a pool interpreter"}


def _records_stream(cell: dict[str, Any]) -> Any:
    """Where this cell's records go. Records are JSON lines on stdout, and a user's module
    may print: for a user workload the records get a private copy of stdout and fd 1
    becomes stderr, so whatever the user's code (or its worker processes and
    sub-interpreters, which share or inherit fd 1) prints lands in the driver's log."""
    if not catalog.is_user_workload(str(cell.get("workload", ""))):
        return sys.stdout
    sys.stdout.flush()
    private = os.dup(1)  # not inheritable: spawned workers never get it
    os.dup2(2, 1)
    # Never closed: it lives as long as the cell process.
    return open(private, "w", encoding="utf-8", closefd=True)


def _user_setup(cell: dict[str, Any], model: str, params: dict[str, Any]) -> str:
    """Make the user's code importable and compute the sequential result every task must
    equal, once, in this main interpreter, before and outside any timed span. Returns
    why the cell cannot run (every record is then invalid), or ''."""
    from experiments import userwork

    name = cell["workload"]
    path = cell.get("user_path")
    if not isinstance(path, str) or not path:
        return f"the cell names no folder holding the code of the user workload {name}."
    userwork.activate(path)
    try:
        expected = userwork.call(name, params)
    except BaseException as exc:  # the user's exception, in the user's words
        return describe(exc)
    if model in _PICKLED:
        import pickle

        try:
            pickle.dumps(expected)
        except BaseException as exc:
            return (f"the workload's result ({type(expected).__name__}) cannot be pickled, "
                    f"which the {model} model needs {_PICKLED[model]}: {describe(exc)}")
    userwork.expect(name, expected)
    return ""


def run_cell(cell: dict[str, Any]) -> None:
    reps: list[int] = list(cell.get("repetitions") or [])
    out = _records_stream(cell)
    problems = catalog.validate_cell(cell)
    if problems:
        for rep in reps:
            emit(make_record(cell, rep, "invalid", " ".join(problems)), out)
        return
    name = cell["model"]
    model = load(name)
    config = catalog.model_config(name, cell["model_config"])
    params = catalog.workload_params(cell["workload"], cell["workload_params"])
    tags = {"api": model.api(config), "transport": model.transport(config)}
    need = catalog.MODELS[name]["min_python"]
    reason = model.unsupported(config)
    if sys.version_info[:2] < tuple(need):
        reason = reason or f"model {name} needs Python {need[0]}.{need[1]} or later."
    if reason:
        for rep in reps:
            emit(make_record(cell, rep, "unsupported", reason, **tags), out)
        return
    if catalog.is_user_workload(cell["workload"]):
        problem = _user_setup(cell, name, params)
        if problem:
            for rep in reps:
                emit(make_record(cell, rep, "invalid", problem, **tags), out)
            return
    canary.calibrate()  # once per process, before anything is timed
    try:
        for _ in range(cell["warmups"]):
            measure(model, cell, config, params, canaries=False)
    except Exception as exc:  # a refused config fails the warmup the same way
        status = "crashed" if isinstance(exc, WorkerCrashed) else "invalid"
        for rep in reps:
            emit(make_record(cell, rep, status, describe(exc), **tags), out)
        return
    for rep in reps:
        try:
            measured = measure(model, cell, config, params)
        except WorkerCrashed as exc:
            emit(make_record(cell, rep, "crashed", describe(exc), **tags), out)
        except Exception as exc:
            emit(make_record(cell, rep, "invalid", describe(exc), **tags), out)
        else:
            emit(make_record(cell, rep, "ok", measurements=measured, **tags), out)


def _watch_parent(parent: int) -> None:
    # The driver killed outright (SIGKILL, OOM) cannot stop us: when our parent changes,
    # take this cell's whole process group (its worker processes too) down with it.
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            import signal  # only now: signal imports enum

            os.killpg(0, signal.SIGKILL)


def main() -> None:
    # A bare _thread (daemon-like: never joined at exit), not threading.Thread: threading
    # is not imported unless the model needs it.
    _thread.start_new_thread(_watch_parent, (os.getppid(),))
    run_cell(loads(sys.stdin.read()))


if __name__ == "__main__":
    main()
