"""Memory per worker, measured by hand: the check on the lab's `mib_per_worker` (issue 18).

Shares nothing with the lab (no import from experiments/ or gilbench/), so a mistake
there cannot hide here. For each model it starts N workers that each compute fib in a
loop until told to stop, waits until all say they run, sums the PSS (Pss: line of
/proc/PID/smaps_rollup) of this process and every worker process, stops them, and prints
the least-squares slope of that sum over N = 1, 2, 4, in MiB per worker:

- spawn, fork: multiprocessing.Process with that start method, a Pipe each;
- subinterpreters: a sub-interpreter with its own GIL per worker, run by its own thread
  (3.13: `_interpreters.create("isolated")` + `exec`; 3.12:
  `_xxsubinterpreters.create(isolated=True)` + `run_string`);
- threads: threading.Thread (on a free-threaded build, the "no GIL" model).

    python benchmarks/memory_workers.py [--models spawn,fork,...] [--workers 1,2,4] [--json]

Run it with the interpreter under test ($(pyenv root)/versions/3.13.0/bin/python, ...).
`run_under(python, ...)` does that from another interpreter and returns the JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from typing import Any

MODELS = ("spawn", "fork", "subinterpreters", "threads")
FIB_N = 18
SETTLE_S = 0.2  # let every worker run its loop a while before the sample


def pss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    raise ValueError(f"/proc/{pid}/smaps_rollup has no Pss line")


def total_kb(child_pids: list[int]) -> int:
    """This process plus the child processes, sampled three times; the largest sum."""
    sums = []
    for _ in range(3):
        time.sleep(SETTLE_S / 3)
        sums.append(pss_kb(os.getpid()) + sum(pss_kb(pid) for pid in child_pids))
    return max(sums)


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def _process_worker(conn: Any) -> None:
    conn.send("R")
    while not conn.poll():
        fib(FIB_N)
    conn.close()


def _processes(method: str, workers: int) -> int:
    ctx = multiprocessing.get_context(method)
    conns, procs = [], []
    for _ in range(workers):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_process_worker, args=(child,), daemon=True)
        proc.start()
        child.close()
        conns.append(parent)
        procs.append(proc)
    try:
        for conn in conns:
            assert conn.recv() == "R"
        return total_kb([p.pid for p in procs if p.pid is not None])
    finally:
        for conn in conns:
            conn.send("S")
        for proc in procs:
            proc.join()


_SUB_SOURCE = """\
import os
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
os.write({ready}, b"R")
while True:
    fib({n})
    try:
        if os.read({stop}, 1):
            break
    except BlockingIOError:
        pass
"""


def _subinterpreters(workers: int) -> int:
    if sys.version_info >= (3, 13):
        import _interpreters  # type: ignore[import-not-found]

        def create() -> Any:
            return _interpreters.create("isolated")

        def run(interp: Any, source: str) -> None:
            failed = _interpreters.exec(interp, source)
            if failed is not None:
                raise RuntimeError(str(failed))

        destroy = _interpreters.destroy
    else:
        import _xxsubinterpreters  # type: ignore[import-not-found]

        def create() -> Any:
            return _xxsubinterpreters.create(isolated=True)

        run = _xxsubinterpreters.run_string
        destroy = _xxsubinterpreters.destroy
    ready_r, ready_w = os.pipe()
    stop_r, stop_w = os.pipe()
    os.set_blocking(stop_r, False)
    source = _SUB_SOURCE.format(ready=ready_w, stop=stop_r, n=FIB_N)

    def drive() -> None:
        interp = create()  # own GIL: an isolated config
        try:
            run(interp, source)
        finally:
            destroy(interp)

    return _in_process(workers, drive, ready_r, stop_w, (ready_r, ready_w, stop_r, stop_w))


def _threads(workers: int) -> int:
    ready_r, ready_w = os.pipe()
    stop_r, stop_w = os.pipe()
    os.set_blocking(stop_r, False)

    def work() -> None:
        os.write(ready_w, b"R")
        while True:
            fib(FIB_N)
            try:
                if os.read(stop_r, 1):
                    return
            except BlockingIOError:
                pass

    return _in_process(workers, work, ready_r, stop_w, (ready_r, ready_w, stop_r, stop_w))


def _in_process(workers: int, target: Any, ready_r: int, stop_w: int,
                fds: tuple[int, ...]) -> int:
    threads = [threading.Thread(target=target) for _ in range(workers)]
    for t in threads:
        t.start()
    try:
        for _ in range(workers):
            if os.read(ready_r, 1) != b"R":
                raise RuntimeError("a worker failed before it ran")
        return total_kb([])
    finally:
        os.write(stop_w, b"S" * workers)
        for t in threads:
            t.join()
        for fd in fds:
            os.close(fd)


def measure(model: str, workers: int) -> int:
    """PSS in KiB of this process plus its worker processes, `workers` of `model` running."""
    if model in ("spawn", "fork"):
        return _processes(model, workers)
    if model == "subinterpreters":
        return _subinterpreters(workers)
    if model == "threads":
        return _threads(workers)
    raise ValueError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")


def slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of y over x."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    return (sum((x - mx) * (y - my) for x, y in points)
            / sum((x - mx) ** 2 for x, _ in points))


def per_worker(models: list[str], counts: list[int], rounds: int = 1) -> dict[str, Any]:
    """{model: {"totals_kb": {N: KiB}, "mib_per_worker": slope}} plus the read cost.

    Each total is the median of `rounds` measurements, taken in an interleaved order."""
    totals: dict[str, dict[int, list[int]]] = {m: {n: [] for n in counts} for m in models}
    for _ in range(rounds):
        for model in models:
            measure(model, 1)  # a warm-up: imports, the first thread, the arenas
            for n in counts:
                totals[model][n].append(measure(model, n))
    out: dict[str, Any] = {"python": sys.version.split()[0], "counts": counts, "models": {}}
    for model in models:
        med = {n: sorted(v)[len(v) // 2] for n, v in totals[model].items()}
        out["models"][model] = {
            "totals_kb": {str(n): kb for n, kb in med.items()},
            "mib_per_worker": slope([(n, kb) for n, kb in med.items()]) / 1024,
        }
    t0 = time.perf_counter()
    for _ in range(100):
        pss_kb(os.getpid())
    out["read_us"] = (time.perf_counter() - t0) / 100 * 1e6
    return out


def run_under(python: str | os.PathLike[str], models: list[str] | None = None,
              counts: list[int] | None = None, rounds: int = 1,
              timeout: float = 120) -> dict[str, Any]:
    """per_worker() run by another interpreter (the one under test); its JSON."""
    done = subprocess.run(
        [str(python), "-E", "-s", os.path.abspath(__file__), "--json",
         "--models", ",".join(models or MODELS),
         "--workers", ",".join(str(n) for n in counts or [1, 2, 4]),
         "--rounds", str(rounds)],
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    if done.returncode:
        raise RuntimeError(f"{python} {__file__} failed: {done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    result = per_worker(args.models.split(","), counts, args.rounds)
    if args.json:
        print(json.dumps(result))
        return
    print(f"Python {result['python']}: PSS of this process + worker processes, KiB")
    print(f"{'model':<16}" + "".join(f"{'N=' + str(n):>10}" for n in counts)
          + f"{'MiB/worker':>12}")
    for model, row in result["models"].items():
        print(f"{model:<16}" + "".join(f"{row['totals_kb'][str(n)]:>10}" for n in counts)
              + f"{row['mib_per_worker']:>12.2f}")
    print(f"one smaps_rollup read of this process: {result['read_us']:.0f} us")


if __name__ == "__main__":
    main()
