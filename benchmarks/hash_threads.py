"""A hand-written check of the lab's `hash` figure: threads over sequential, side by side.

Imports nothing of the lab and runs under any python 3.12+ (copy it into an image, or
give it a native interpreter). Each repetition times 8 tasks of sha256 over 1 MiB, 32
rounds each (the default matrix's `hash`), once in a loop and once shared by 2 threads,
interleaved so the host's drift hits both alike. Prints the ratio of medians; hashlib
releases the GIL, so on 2 free cores expect close to 2x. Never pass/fail.

Each timed threaded run follows an untimed one, as the lab's follows its cell's warmup.
Straight after the ~190 ms single-threaded loop, Linux mostly wakes both new workers on
the same CPU and moves one 1.5-5 ms later (measured here: 17 of 25 runs), a fixed delay
that read as 1.87x against the lab's 1.97x; after a threaded run both start at once.

    docker run --rm --network none --cpuset-cpus 0,1 -v "$PWD/benchmarks:/b:ro" \\
        gilbench/cpython:3.13.5-pgo-... python3 /b/hash_threads.py
"""

from __future__ import annotations

import hashlib
import statistics
import sys
import threading
import time

TASKS, ROUNDS, WORKERS, REPETITIONS = 8, 32, 2, 9
BUFFER = b"\xa5" * (1024 * 1024)


def task() -> str:
    digest = ""
    for _ in range(ROUNDS):
        digest = hashlib.sha256(BUFFER).hexdigest()
    return digest


def sequential() -> float:
    start = time.perf_counter()
    for _ in range(TASKS):
        task()
    return time.perf_counter() - start


def threaded() -> float:
    go = threading.Event()

    def worker(share: int) -> None:
        go.wait()
        for _ in range(share):
            task()

    workers = [threading.Thread(target=worker, args=(TASKS // WORKERS,))
               for _ in range(WORKERS)]
    for thread in workers:
        thread.start()
    start = time.perf_counter()  # from go to joined (the lab: go to the last result)
    go.set()
    for thread in workers:
        thread.join()
    return time.perf_counter() - start


def main() -> None:
    task()  # warm up: OpenSSL's first call, the buffer in cache
    seq, thr = [], []
    for _ in range(REPETITIONS):
        seq.append(sequential())
        threaded()  # untimed: see the module docstring
        thr.append(threaded())
    print(f"python {sys.version.split()[0]}: sequential median {statistics.median(seq):.4f} s,"
          f" {WORKERS} threads median {statistics.median(thr):.4f} s, threads "
          f"{statistics.median(seq) / statistics.median(thr):.2f}x")


if __name__ == "__main__":
    main()
