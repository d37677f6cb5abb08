"""The task bodies every model runs, addressed by name so any worker can import them.

Workers (threads, spawned processes, sub-interpreters, pool interpreters) call
`run_task(name, params, payload)`; nothing here is a closure and nothing here
imports a single-phase extension module, so it loads inside an isolated
sub-interpreter too. Results are plain ints, floats or bytes (shareable everywhere).
"""

from __future__ import annotations

import math
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
    return wire.encode(value)


def decode_result(name: str, value: Any) -> Any:
    if ":" in name:
        from experiments import userwork

        return userwork.decode(value)
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
    if name == "transfer":
        bad = [r for r in results if not isinstance(r, bytes) or len(r) != params["bytes"]]
        return f"transfer returned {len(bad)} payloads of the wrong size" if bad else ""
    return ""
