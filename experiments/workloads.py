"""The task bodies every model runs, addressed by name so any worker can import them.

Workers (threads, spawned processes, sub-interpreters, pool interpreters) call
`run_task(name, params, payload)`; nothing here is a closure and nothing here
imports a single-phase extension module, so it loads inside an isolated
sub-interpreter too. Results are plain ints, floats or bytes (shareable everywhere),
except `shared`'s dict of counts, which crosses interpreters as text (encode_result).

`shared`: a workload where sharing matters (issue 18). Every task makes `updates`
increments over `keys` int keys of a dict; key i is (i * _STEP) % keys, which visits
every key once per `keys` updates, so the expected count of each key has a closed form.
Where the task runs decides what it counts into:

- in the main interpreter of the cell process (sequential, threads; a free-threaded
  build's threads too), into the one module-level dict `_SHARED`, under `_LOCK`, taken
  once per `batch` increments (the keys of a batch are computed outside it), so threads
  contend on one object in place; the task returns its count, `updates`;
- anywhere else (a worker process, a sub-interpreter, a pool interpreter), into a dict
  of its own, returned as the task's result: the update that must be sent back. The
  models send and receive results inside the timed section, so pickling it over a
  pipe or encoding it for an interpreter queue is part of `wall_s`.

"Where" is decided per task from facts, not from a flag a model must set: same pid
as the process that imported this module (a forked worker is not), the main
interpreter (`_thread._is_main_interpreter`, in 3.12 and 3.13; a sub-interpreter
imports its own copy of this module), and not a multiprocessing worker (a spawned one
imports this module afresh). Wrongly in the shared branch, a worker counts into a dict
nobody reads and check() fails loudly; wrongly local, threads would stop contending
while totals stay right, which is why the facts lean to "shared".

check() runs in the cell's main interpreter after each run (warmups too): it takes
`_SHARED` (leaving it empty, so the next run starts from zero), merges the returned
dicts into it and compares every key with tasks x its expected count. That merge is
outside `wall_s`: with the default 64 keys it is microseconds; with many keys it favours
the models that return dicts by up to tasks x keys dict updates. A run that fails before
its check (a task raised) leaves its increments behind; the next check then says so.
"""

from __future__ import annotations

import _thread
import math
import os
import sys
import time

from experiments import wire

# Neither typing nor collections.abc at run time: every measurement process and every
# sub-interpreter worker imports this module. TYPE_CHECKING is not typing's (see
# experiments/catalog.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def _fib_expected(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


_SOLAR_MASS = 4 * math.pi * math.pi
_DAYS_PER_YEAR = 365.24


def _bodies() -> list[list[float]]:
    # x, y, z, vx, vy, vz, mass: the Sun, Jupiter, Saturn, Uranus, Neptune.
    raw = [
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0),
        (4.84143144246472090e00, -1.16032004402742839e00, -1.03622044471123109e-01,
         1.66007664274403694e-03, 7.69901118419740425e-03, -6.90460016972063023e-05,
         9.54791938424326609e-04),
        (8.34336671824457987e00, 4.12479856412430479e00, -4.03523417114321381e-01,
         -2.76742510726862411e-03, 4.99852801234917238e-03, 2.30417297573763929e-05,
         2.85885980666130812e-04),
        (1.28943695621391310e01, -1.51111514016986312e01, -2.23307578892655734e-01,
         2.96460137564761618e-03, 2.37847173959480950e-03, -2.96589568540237556e-05,
         4.36624404335156298e-05),
        (1.53796971148509165e01, -2.59193146099879641e01, 1.79258772950371181e-01,
         2.68067772490389322e-03, 1.62824170038242295e-03, -9.51592254519715870e-05,
         5.15138902046611451e-05),
    ]
    bodies = []
    for x, y, z, vx, vy, vz, m in raw:
        bodies.append([x, y, z, vx * _DAYS_PER_YEAR, vy * _DAYS_PER_YEAR,
                       vz * _DAYS_PER_YEAR, m * _SOLAR_MASS])
    return bodies


def nbody(steps: int, dt: float = 0.01) -> float:
    """Advance the system `steps` times; return its energy (deterministic)."""
    bodies = _bodies()
    pairs = [(bodies[i], bodies[j]) for i in range(5) for j in range(i + 1, 5)]
    for _ in range(steps):
        for b1, b2 in pairs:
            dx, dy, dz = b1[0] - b2[0], b1[1] - b2[1], b1[2] - b2[2]
            mag = dt * (dx * dx + dy * dy + dz * dz) ** -1.5
            m1, m2 = b1[6] * mag, b2[6] * mag
            b1[3] -= dx * m2
            b1[4] -= dy * m2
            b1[5] -= dz * m2
            b2[3] += dx * m1
            b2[4] += dy * m1
            b2[5] += dz * m1
        for b in bodies:
            b[0] += dt * b[3]
            b[1] += dt * b[4]
            b[2] += dt * b[5]
    energy = 0.0
    for b in bodies:
        energy += 0.5 * b[6] * (b[3] * b[3] + b[4] * b[4] + b[5] * b[5])
    for b1, b2 in pairs:
        dist = ((b1[0] - b2[0]) ** 2 + (b1[1] - b2[1]) ** 2 + (b1[2] - b2[2]) ** 2) ** 0.5
        energy -= b1[6] * b2[6] / dist
    return energy


def alloc(objects: int) -> int:
    """Build and drop `objects` small containers; return how many were built."""
    built = 0
    keep: list[Any] = []
    for i in range(objects):
        item = {"i": i, "pair": (i, str(i)), "list": [i, i + 1]}
        keep.append(item)
        built += 1
        if len(keep) >= 1000:  # drop in batches so the allocator sees churn
            keep = []
    return built


def _sleep_ms(ms: int) -> int:
    time.sleep(ms / 1000)  # releases the GIL: the point of the io workload
    return ms


def _mixed(n: int, ms: int) -> int:
    value = fib(n)
    _sleep_ms(ms)
    return value


def _hash(kib: int, rounds: int) -> str:
    import hashlib  # here, not at the top: only this workload pays for OpenSSL

    buffer = b"\xa5" * (kib * 1024)
    digest = ""
    for _ in range(rounds):
        digest = hashlib.sha256(buffer).hexdigest()
    return digest


def _compressible(kib: int) -> bytes:
    """`kib` KiB of hex text from a seeded generator: compresses to about 57%, unlike
    random bytes (incompressible) or a repeated pattern (trivial for zlib)."""
    import random

    return random.Random(kib).randbytes(kib * 512).hex().encode()


def _compress(kib: int, level: int) -> int:
    import zlib

    # Built in the task, so every model pays the same few milliseconds for it.
    return zlib.crc32(zlib.compress(_compressible(kib), level))


# A prime above the largest `keys` (catalog bounds): i -> (i * _STEP) % keys runs through
# every key once per `keys` consecutive i, in an order that is not simply ascending.
_STEP = 1_000_003
_SHARED: dict[int, int] = {}  # the cell's main interpreter's shared counts (see above)
_LOCK = _thread.allocate_lock()  # _thread, not threading: nothing more to import
_HOME_PID = os.getpid()


def _at_home() -> bool:
    """Whether this task runs where check() reads `_SHARED` (see the module docstring)."""
    if os.getpid() != _HOME_PID:  # forked (fork, forkserver): a copy of the dict
        return False
    is_main = getattr(_thread, "_is_main_interpreter", None)
    if is_main is not None and not is_main():  # a sub-interpreter's own module
        return False
    mp = sys.modules.get("multiprocessing.process")  # set in every multiprocessing worker
    return mp is None or mp.parent_process() is None


def _shared(keys: int, updates: int, batch: int) -> int | dict[int, int]:
    home = _at_home()
    counts: dict[int, int] = _SHARED if home else {}
    step = _STEP % keys
    key = 0
    left = updates
    while left:
        n = batch if batch < left else left
        left -= n
        chunk = []
        for _ in range(n):  # the work between two updates of the dict: outside the lock
            chunk.append(key)
            key += step
            if key >= keys:
                key -= keys
        if home:
            with _LOCK:
                for k in chunk:
                    counts[k] = counts.get(k, 0) + 1
        else:
            for k in chunk:
                counts[k] = counts.get(k, 0) + 1
    return updates if home else counts


def _shared_expected(keys: int, updates: int) -> dict[int, int]:
    """Each key's count after one task: i % keys = r occurs updates // keys times, once
    more for the first updates % keys residues."""
    base, extra = divmod(updates, keys)
    step = _STEP % keys
    return {(r * step) % keys: base + (1 if r < extra else 0) for r in range(keys)
            if base or r < extra}


def _shared_check(params: dict[str, Any], results: list[Any]) -> str:
    with _LOCK:  # take the shared counts: the next run starts from zero
        merged = dict(_SHARED)
        _SHARED.clear()
    updates, tasks = params["updates"], params["tasks"]
    in_place = sum(merged.values())
    tokens = 0
    for result in results:
        if isinstance(result, dict):
            for k, v in result.items():
                merged[k] = merged.get(k, 0) + v
        elif isinstance(result, int) and not isinstance(result, bool) and result == updates:
            tokens += 1
        else:
            return (f"a shared task returned {str(result)[:80]}, expected its count "
                    f"{updates} or its dict of counts")
    if in_place != tokens * updates:
        return (f"the shared dict holds {in_place} increments, but the {tokens} tasks that "
                f"counted into it made {tokens * updates} (a lost update, or a run that "
                "failed before its check)")
    want = {k: c * tasks for k, c in _shared_expected(params["keys"], updates).items()}
    if merged != want:
        wrong = sorted(k for k in set(want) | set(merged) if merged.get(k) != want.get(k))
        k = wrong[0]
        return (f"{len(wrong)} shared keys have the wrong count, e.g. key {k}: "
                f"{merged.get(k, 0)}, expected {want.get(k, 0)} (all keys: "
                f"{sum(merged.values())}, expected {tasks * updates})")
    return ""


def _crash() -> None:
    import ctypes  # imported here: ctypes is not needed by any other task

    ctypes.string_at(0)  # reads address 0: SIGSEGV


def _hang() -> None:
    while True:
        time.sleep(3600)


_TASKS: dict[str, Callable[[dict[str, Any], Any], Any]] = {
    "fib": lambda p, _: fib(p["n"]),
    "nbody": lambda p, _: nbody(p["steps"]),
    "io": lambda p, _: _sleep_ms(p["ms"]),
    "alloc": lambda p, _: alloc(p["objects"]),
    "mixed": lambda p, _: _mixed(p["n"], p["ms"]),
    "hash": lambda p, _: _hash(p["kib"], p["rounds"]),
    "compress": lambda p, _: _compress(p["kib"], p["level"]),
    "transfer": lambda _, payload: payload,
    "shared": lambda p, _: _shared(p["keys"], p["updates"], p["batch"]),
    "startup": lambda p, _: 0,
    "crash": lambda p, _: _crash(),
    "hang": lambda p, _: _hang(),
}


def run_task(name: str, params: dict[str, Any], payload: Any = None) -> Any:
    """Run one task of workload `name`; `payload` is only used by `transfer`. A name with
    a ':' is a user workload (experiments/userwork.py)."""
    task = _TASKS.get(name)
    if task is None and ":" in name:
        from experiments import userwork

        return userwork.call(name, params)
    return _TASKS[name](params, payload)


def prepare(name: str) -> None:
    """Import what a worker needs before it says ready, so the import is start-up, not
    work: a user workload's module (the built-in tasks live here, already imported)."""
    if ":" in name:
        from experiments import userwork

        userwork.load(name)


def encode_result(name: str, value: Any) -> Any:
    """A result as a sub-interpreter worker puts it on its queue (decode_result reverses)."""
    if ":" in name:
        from experiments import userwork

        return userwork.encode(value)
    if name == "shared" and isinstance(value, dict):
        return wire.dumps(list(value.items()))  # 3.12 channels carry str, not dict
    return wire.encode(value)


def decode_result(name: str, value: Any) -> Any:
    if ":" in name:
        from experiments import userwork

        return userwork.decode(value)
    if name == "shared" and isinstance(value, str):
        return dict(wire.loads(value))
    return wire.decode(value)


def needs_payload(name: str) -> bool:
    """Whether the main side sends a payload per task (and expects it back)."""
    return name == "transfer"


def make_payload(params: dict[str, Any]) -> bytes:
    return b"\xa5" * params["bytes"]


def check(name: str, params: dict[str, Any], results: list[Any]) -> str:
    """Why these results are wrong, or an empty string when they are right."""
    if ":" in name:  # a user workload: equal to the sequential result (userwork.expect)
        from experiments import userwork

        return userwork.check(name, results)
    if name in ("fib", "mixed"):
        want = _fib_expected(params["n"])
        bad = [r for r in results if r != want]
        return f"fib({params['n']}) returned {bad[0]!r}, expected {want}" if bad else ""
    if name == "nbody":
        values = {float(r) for r in results}
        if len(values) > 1 or not all(math.isfinite(v) for v in values):
            return f"nbody energies disagree or are not finite: {sorted(values)[:3]}"
        return ""
    if name == "alloc":
        bad = [r for r in results if r != params["objects"]]
        return f"alloc built {bad[0]!r} objects, expected {params['objects']}" if bad else ""
    if name == "hash":
        digest = _hash(params["kib"], 1)
        bad = [r for r in results if r != digest]
        return f"sha256 returned {bad[0]!r}, expected {digest}" if bad else ""
    if name == "compress":
        crc = _compress(params["kib"], params["level"])
        bad = [r for r in results if r != crc]
        return f"zlib output's crc32 was {bad[0]!r}, expected {crc}" if bad else ""
    if name == "shared":
        return _shared_check(params, results)
    if name == "transfer":
        bad = [r for r in results if not isinstance(r, bytes) or len(r) != params["bytes"]]
        return f"transfer returned {len(bad)} payloads of the wrong size" if bad else ""
    return ""
