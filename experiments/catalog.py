"""What the target can run: models, workloads, their knobs and defaults.

Pure data and tiny helpers. The host imports this module (on Python 3.11) to
validate matrices, so it must import cleanly there and do nothing on import.
"""

from __future__ import annotations

# Not `from typing import TYPE_CHECKING`: every measurement process imports this module,
# and typing costs it about 3 ms of start-up. Type checkers treat the name the same way.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    # A model's config axis: the values it accepts and the one used when omitted.
    Axis = dict[str, Any]

_BOOL = [False, True]

MODELS: dict[str, dict[str, Any]] = {
    "sequential": {
        "min_python": (3, 12),
        "description": "every task in a loop in the main thread; workers is ignored (always 1)",
        "config": {},
    },
    "threads": {
        "min_python": (3, 12),
        "description": "one threading.Thread per worker; on a free-threaded build the GIL is off",
        "config": {},
    },
    "processes": {
        "min_python": (3, 12),
        "description": "one multiprocessing.Process per worker, talking over a Pipe",
        "config": {
            "start_method": {"values": ["fork", "spawn", "forkserver"], "default": "spawn"},
        },
    },
    "subinterpreters": {
        "min_python": (3, 12),
        "description": "one sub-interpreter per worker, each driven from its own thread",
        # `create`: how the workers' interpreters come to be. "concurrent" (the default,
        # as applications do it): each worker thread creates its own at the same time;
        # "serial": one at a time, under a lock. Not a PyInterpreterConfig field: the
        # adapters keep it out of the config they hand CPython.
        # `api`: "version" (the default) is the running version's own API (3.12
        # _xxsubinterpreters, 3.13 _interpreters, 3.14 concurrent.interpreters); "pep734"
        # is PEP 734's concurrent.interpreters, on 3.13 through the interpreters-pep-734
        # backport when installed (experiments/subinterp/pep734.py). Also ours.
        # The rest are the PyInterpreterConfig fields; defaults are CPython's "isolated".
        "config": {
            "api": {"values": ["version", "pep734"], "default": "version"},
            "create": {"values": ["concurrent", "serial"], "default": "concurrent"},
            "gil": {"values": ["own", "shared"], "default": "own"},
            "use_main_obmalloc": {"values": _BOOL, "default": False},
            "check_multi_interp_extensions": {"values": _BOOL, "default": True},
            "allow_threads": {"values": _BOOL, "default": True},
            "allow_daemon_threads": {"values": _BOOL, "default": False},
            "allow_fork": {"values": _BOOL, "default": False},
            "allow_exec": {"values": _BOOL, "default": False},
        },
    },
    "interpreter-pool": {
        # 3.14's concurrent.futures; on 3.13 only with the interpreters-pep-734 backport
        # (its model says `unsupported` without it).
        "min_python": (3, 13),
        "description": "concurrent.futures.InterpreterPoolExecutor with max_workers=workers",
        # `create` as for subinterpreters: "concurrent" is what the pool does on its own
        # (every worker thread creates its interpreter as it starts); "serial" starts the
        # next worker only once the previous one's interpreter exists.
        "config": {
            "create": {"values": ["concurrent", "serial"], "default": "concurrent"},
        },
    },
}

# Defaults are sized so one fib or nbody task takes roughly 20-50 ms on a current
# x86 core with CPython 3.12; `tasks` is the fixed total shared by the workers
# (strong scaling), so more workers means fewer tasks each.
WORKLOADS: dict[str, dict[str, Any]] = {
    "fib": {
        "kind": "cpu",
        "description": "naive recursive Fibonacci",
        "size": "n",
        "params": {"n": 27, "tasks": 8},
    },
    "nbody": {
        "kind": "cpu",
        "description": "the classic five-body simulation, floats and lists",
        "size": "steps",
        "params": {"steps": 4000, "tasks": 8},
    },
    "io": {
        "kind": "io",
        "description": "a blocking sleep of `ms` milliseconds (releases the GIL)",
        "size": "ms",
        "params": {"ms": 20, "tasks": 8},
    },
    "alloc": {
        "kind": "alloc",
        "description": "build and drop many small dicts, lists and tuples",
        "size": "objects",
        "params": {"objects": 50000, "tasks": 8},
    },
    "mixed": {
        "kind": "mixed",
        "description": "fib(n) then a sleep of `ms` milliseconds",
        "size": "n",
        "params": {"n": 25, "ms": 10, "tasks": 8},
    },
    # C code that releases the GIL while it works (hashlib over 2 KiB, zlib always): the
    # workloads where threads do scale with the GIL, the answer "threads are fine" needs.
    "hash": {
        "kind": "cpu-nogil",
        "description": "sha256 of a `kib` KiB buffer, `rounds` times (hashlib releases the GIL)",
        "size": "rounds",
        "params": {"kib": 1024, "rounds": 32, "tasks": 8},
    },
    "compress": {
        "kind": "cpu-nogil",
        "description": "zlib at `level` over `kib` KiB of hex text (zlib releases the GIL)",
        "size": "kib",
        "params": {"kib": 1024, "level": 6, "tasks": 8},
        "bounds": {"level": (0, 9)},  # zlib's levels
    },
    "transfer": {
        "kind": "transfer",
        "description": "send a payload of `bytes` bytes to a worker and back, per task",
        "size": "bytes",
        "params": {"bytes": 1000000, "tasks": 8},
    },
    # Sharing matters (issue 18): a dict every worker updates. Threads (free-threaded or
    # not) increment one dict in place under a lock taken per `batch` increments; worker
    # processes and sub-interpreters count into their own and send it back as the task's
    # result, inside the timed section. "contended": CPU-bound, but the workers also
    # contend for one object or pay to send their updates (experiments/workloads.py).
    "shared": {
        "kind": "contended",
        "description": "`updates` increments over `keys` keys of a dict shared by every "
                       "worker (sent back where memory is not shared)",
        "size": "updates",
        "params": {"keys": 64, "updates": 200000, "batch": 64, "tasks": 8},
        "bounds": {"keys": (1, 100000), "updates": (1, 10**8), "batch": (1, 100000)},
    },
    "startup": {
        "kind": "startup",
        "description": "trivial tasks: the record's startup_s and teardown_s are the point",
        "size": None,
        "params": {"tasks": 8},
    },
    "crash": {
        "kind": "diagnostic",
        "description": "segfaults the process (reads address 0 through ctypes)",
        "size": None,
        "params": {"tasks": 1},
    },
    "hang": {
        "kind": "diagnostic",
        "description": "never finishes; proves timeouts are enforced",
        "size": None,
        "params": {"tasks": 1},
    },
}

# A user workload (`module:function`, experiments/userwork.py) looks to the rest of the lab
# like a catalog entry: this one, whatever its name. Its params are the function's keyword
# arguments, any names and any scalar values; `tasks` is the lab's as everywhere.
USER_WORKLOAD: dict[str, Any] = {
    "kind": "user",
    "description": "your function, called with the params as keyword arguments",
    "size": None,
    "params": {"tasks": 8},
}


def is_user_workload(name: str) -> bool:
    """A name with a ':' is `module:function`; the built-in names have none."""
    return ":" in name


def workload_entry(name: str) -> dict[str, Any] | None:
    """The catalog entry of a workload (USER_WORKLOAD for any user one), or None."""
    if name in WORKLOADS:
        return WORKLOADS[name]
    return USER_WORKLOAD if is_user_workload(name) else None


def workload_kind(name: str) -> str:
    """The workload's kind ("cpu", "io", "user", ...), or "" for a name nothing knows."""
    entry = workload_entry(name)
    return str(entry["kind"]) if entry else ""


# Configurations CPython's documentation forbids but CPython does not refuse: they still
# run (that they crash is a finding), and every record and plot of them names the rule.
# model -> (the config values that make it, the rule in the documentation's words).
DOCUMENTED_INVALID: dict[str, list[tuple[dict[str, Any], str]]] = {
    "subinterpreters": [
        ({"gil": "own", "use_main_obmalloc": True},
         "use_main_obmalloc=1 must not be combined with an own GIL (PyInterpreterConfig, "
         "C-API docs); CPython does not check it"),
    ],
}


def documented_invalid(model: str, config: dict[str, Any]) -> str:
    """The documented rule this model config breaks, or "" when it breaks none."""
    defaults = {key: axis["default"] for key, axis in MODELS.get(model, {}).get(
        "config", {}).items()}
    full = {**defaults, **config}
    for values, rule in DOCUMENTED_INVALID.get(model, []):
        if all(full.get(key) == value for key, value in values.items()):
            return rule
    return ""


_CELL_KEYS: dict[str, type | tuple[type, ...]] = {
    "run_id": str,
    "cell_id": str,
    "python": str,
    "model": str,
    "model_config": dict,
    "workload": str,
    "workload_params": dict,
    "workers": int,
    "warmups": int,
    "repetitions": list,
    "timeout_s": (int, float),
}


def _is_int(value: Any) -> bool:
    # bool is an int subclass; a JSON true is never a count.
    return isinstance(value, int) and not isinstance(value, bool)


def model_config(model: str, given: dict[str, Any]) -> dict[str, Any]:
    """The model's full config: the given values over the defaults."""
    axes: dict[str, Axis] = MODELS[model]["config"]
    return {key: given.get(key, axis["default"]) for key, axis in axes.items()}


def workload_params(workload: str, given: dict[str, Any]) -> dict[str, Any]:
    """The workload's full parameters: the given values over the defaults."""
    entry = workload_entry(workload)
    assert entry is not None, f"unknown workload {workload!r}"
    return {**entry["params"], **given}


def validate_cell(spec: dict[str, Any]) -> list[str]:
    """Problems with a cell spec, one sentence each naming the key; empty when valid."""
    problems: list[str] = []
    for key, kind in _CELL_KEYS.items():
        if key not in spec:
            problems.append(f"'{key}' is missing.")
        elif not isinstance(spec[key], kind) or isinstance(spec[key], bool):
            problems.append(f"'{key}' must be {_type_name(kind)}, got {spec[key]!r}.")
    if problems:
        return problems
    model, workload = spec["model"], spec["workload"]
    if model not in MODELS:
        problems.append(f"'model' {model!r} is unknown; known: {', '.join(MODELS)}.")
    else:
        axes: dict[str, Axis] = MODELS[model]["config"]
        for key, value in spec["model_config"].items():
            if key not in axes:
                known = ", ".join(axes) or "none"
                problems.append(f"'model_config.{key}' is not a {model} setting; known: {known}.")
            elif value not in axes[key]["values"] or type(value) is not type(
                axes[key]["default"]
            ):
                problems.append(
                    f"'model_config.{key}' must be one of {axes[key]['values']}, got {value!r}."
                )
    if is_user_workload(workload):
        problems += _user_params(workload, spec["workload_params"])
    elif workload not in WORKLOADS:
        problems.append(f"'workload' {workload!r} is unknown; known: {', '.join(WORKLOADS)} "
                        "(or your own as module:function).")
    else:
        defaults: dict[str, Any] = WORKLOADS[workload]["params"]
        for key, value in spec["workload_params"].items():
            if key not in defaults:
                problems.append(
                    f"'workload_params.{key}' is not a {workload} parameter; "
                    f"known: {', '.join(defaults)}."
                )
            elif key in (bounds := WORKLOADS[workload].get("bounds", {})):
                # A bounded parameter names its range whatever is wrong with the value.
                low, high = bounds[key]
                if not _is_int(value) or not low <= value <= high:
                    problems.append(f"'workload_params.{key}' must be "
                                    f"{'' if _is_int(value) else 'an integer '}from {low} "
                                    f"to {high}, got {value!r}.")
            elif not _is_int(value) or value < (1 if key == "tasks" else 0):
                problems.append(
                    f"'workload_params.{key}' must be a non-negative integer"
                    f"{' above 0' if key == 'tasks' else ''}, got {value!r}."
                )
    if spec["workers"] < 1:
        problems.append(f"'workers' must be at least 1, got {spec['workers']}.")
    if spec["warmups"] < 0:
        problems.append(f"'warmups' must be 0 or more, got {spec['warmups']}.")
    if not all(_is_int(r) and r >= 0 for r in spec["repetitions"]):
        problems.append("'repetitions' must list non-negative integers.")
    if spec["timeout_s"] <= 0:
        problems.append(f"'timeout_s' must be positive, got {spec['timeout_s']}.")
    return problems


def _user_params(workload: str, params: dict[str, Any]) -> list[str]:
    """A user workload's params: keyword names, scalar values (JSON's), tasks a count."""
    module, _, function = workload.rpartition(":")
    problems: list[str] = []
    if not (function.isidentifier() and module and all(
            part.isidentifier() for part in module.split("."))):
        problems.append(f"'workload' {workload!r} must look like module:function, e.g. "
                        "mypkg.mod:work.")
    for key, value in params.items():
        if key == "tasks":
            if not _is_int(value) or value < 1:
                problems.append(f"'workload_params.tasks' must be an integer above 0, got "
                                f"{value!r}.")
        elif not key.isidentifier():
            problems.append(f"'workload_params.{key}' is not a keyword argument name.")
        elif not isinstance(value, str | int | float | bool) or (
                isinstance(value, float) and (value != value or abs(value) == float("inf"))):
            problems.append(f"'workload_params.{key}' must be a string, a finite number or a "
                            f"boolean, got {value!r}.")
    return problems


def _type_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", dict: "an object", int: "an integer", list: "a list"}
    if isinstance(kind, tuple):
        return "a number"
    return names.get(kind, kind.__name__)
