"""A minimal hand-written measurement, independent of the lab: `invoke bench-lab` runs it
beside the lab's cells and compares the speedups (`python -E -s -m experiments.reference
'{"n": 27, "tasks": 8, "workers": 2, "repetitions": 3}'`).

It imports nothing from the lab. Each model starts its workers, waits until all are
ready, then times from "go" until every worker has finished its share of fib(n) calls:
the same span as the lab's wall_s. One JSON line per measurement on stdout.

`--cost N` times instead what one measurement process costs: N runs of a trivial lab
cell process against N runs of `python -c pass`, interleaved.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time

FIB = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
exec(FIB)


def _share(tasks: int, workers: int) -> list[int]:
    return [tasks // workers + (1 if i < tasks % workers else 0) for i in range(workers)]


def sequential(n: int, tasks: int, workers: int) -> float:
    start = time.perf_counter()
    for _ in range(tasks):
        fib(n)  # type: ignore[name-defined]  # noqa: F821
    return time.perf_counter() - start


def threads(n: int, tasks: int, workers: int) -> float:
    go = threading.Event()

    def work(count: int) -> None:
        go.wait()
        for _ in range(count):
            fib(n)  # type: ignore[name-defined]  # noqa: F821

    pool = [threading.Thread(target=work, args=(k,)) for k in _share(tasks, workers)]
    for t in pool:
        t.start()
    start = time.perf_counter()
    go.set()
    for t in pool:
        t.join()
    return time.perf_counter() - start


def _process_work(go: object, done: object, n: int, count: int) -> None:
    done.send("ready")  # type: ignore[attr-defined]
    go.wait()  # type: ignore[attr-defined]
    for _ in range(count):
        fib(n)  # type: ignore[name-defined]  # noqa: F821
    done.send("done")  # type: ignore[attr-defined]


def processes(n: int, tasks: int, workers: int) -> float:
    ctx = multiprocessing.get_context("fork")
    go = ctx.Event()
    pipes = [ctx.Pipe(duplex=False) for _ in range(workers)]
    pool = [ctx.Process(target=_process_work, args=(go, w, n, k))
            for (_, w), k in zip(pipes, _share(tasks, workers), strict=True)]
    for p in pool:
        p.start()
    for r, _ in pipes:
        r.recv()
    start = time.perf_counter()
    go.set()
    for r, _ in pipes:
        r.recv()
    elapsed = time.perf_counter() - start
    for p in pool:
        p.join()
    return elapsed


def _interpreters(gil: str) -> tuple[object, object, object]:
    """create(), run(interp, code) and destroy() of this version's low-level module."""
    if sys.version_info >= (3, 13):
        import _interpreters as api

        config = api.new_config("isolated", gil=gil)
        return (lambda: api.create(config)), api.exec, api.destroy
    import _xxsubinterpreters as api  # 3.12: isolated = own GIL, legacy = shared

    return (lambda: api.create(isolated=gil == "own")), api.run_string, api.destroy


def subinterpreters(n: int, tasks: int, workers: int, gil: str) -> float:
    create, run, destroy = _interpreters(gil)
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    interps = [create() for _ in range(workers)]  # type: ignore[operator]
    code = [FIB + f"import os\nos.write({ready_w}, b'R')\nos.read({go_r}, 1)\n"
            f"for _ in range({k}):\n    fib({n})\n" for k in _share(tasks, workers)]
    pool = [threading.Thread(target=run, args=(i, c))  # type: ignore[arg-type]
            for i, c in zip(interps, code, strict=True)]
    for t in pool:
        t.start()
    for _ in pool:
        os.read(ready_r, 1)
    start = time.perf_counter()
    os.write(go_w, b"G" * workers)
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - start
    for i in interps:
        destroy(i)  # type: ignore[operator]
    for fd in (ready_r, ready_w, go_r, go_w):
        os.close(fd)
    return elapsed


MODELS = {
    "sequential": sequential,
    "threads": threads,
    "processes": processes,
    "own": lambda n, t, w: subinterpreters(n, t, w, "own"),
    "shared": lambda n, t, w: subinterpreters(n, t, w, "shared"),
}


def cost(times: int) -> None:
    cell = json.dumps({
        "run_id": "cost", "cell_id": "cost", "python": "cost", "model": "sequential",
        "model_config": {}, "workload": "startup", "workload_params": {"tasks": 1},
        "workers": 1, "warmups": 0, "repetitions": [0], "timeout_s": 60})
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    commands = {"bare": ([sys.executable, "-E", "-s", "-c", "pass"], None),
                "cell": ([sys.executable, "-E", "-s", "-m", "experiments.cell"], cell)}
    for _ in range(times):
        for name, (argv, stdin) in commands.items():
            start = time.perf_counter()
            subprocess.run(argv, input=stdin, capture_output=True, text=True, cwd=root,
                           check=True)
            print(json.dumps({"cost": name, "s": time.perf_counter() - start}), flush=True)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--cost"]:
        cost(int(argv[1]))
        return
    spec = json.loads(argv[0])
    n, tasks, workers = spec["n"], spec["tasks"], spec["workers"]
    models = spec.get("models") or list(MODELS)
    fib(n)  # type: ignore[name-defined]  # noqa: F821  # a warmup, as the lab's
    for repetition in range(spec["repetitions"]):
        for model in models:  # interleaved: repetition k of every model, then k+1
            wall = MODELS[model](n, tasks, workers)
            print(json.dumps({"model": model, "repetition": repetition, "wall_s": wall}),
                  flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
