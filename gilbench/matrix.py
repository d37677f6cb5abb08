"""Matrices: a TOML file (experiments/matrices/*.toml) -> validated cells.

    description = "..."
    workers = [1, 2, 4]
    repetitions = 5
    warmups = 1
    timeout_s = 120
    pythons = ["3.12"]              # optional; --python on the command line wins

    [models.processes]              # one table per model; list values are axes
    start_method = ["fork", "spawn"]

    [workloads.fib]                 # one table per workload; list values are axes
    n = 27

    [workloads."mymod:work"]        # a user workload (gilbench/userwork.py): module:function
    size = [100, 1000]              # or "path/to/file.py:function", relative to this file;
                                    # every key but `tasks` is a keyword argument

    [[exclude]]                     # drop cells matching every key given
    model = "processes"
    workers = 4

    order = "shuffled"              # default: cells run in a seeded random order, so a host
                                    # that drifts does not bias one model; "matrix": as listed
    retry_contended = 0             # measure a contended repetition again, up to N times
    batch = 1                       # repetitions per process: the run goes in rounds, round
                                    # k holding repetitions [k*batch, (k+1)*batch) of every
                                    # cell of every python, each in a fresh process with its
                                    # own warmups (as pyperf spreads values over processes)
    target_ci = "2%"                # adaptive sampling (gilbench.sampling): add rounds of
                                    # `batch` repetitions until each cell's median has a 95%
                                    # CI within +-2%, up to max_repetitions (default 50) and
                                    # cell_budget_s seconds per cell (default 120); the
                                    # manifest records why each cell stopped

Bounds (a value outside is refused with one sentence; NaN and infinity, which TOML
allows, are refused too): repetitions 1..10000, warmups 0..1000, workers 1..1024
(above that threads, processes and sub-interpreters exhaust ordinary hosts' limits
before they measure anything), timeout_s above 0 and at most 86400 (one day), batch
1..10000, retry_contended 0..10, target_ci 0.1%..50%, max_repetitions repetitions..10000,
cell_budget_s above 0 and at most 86400.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from experiments import catalog
from gilbench import userwork
from gilbench.errors import GilbenchError
from gilbench.paths import MATRICES_DIR

ORDERS = ("shuffled", "matrix")
REPETITIONS = (1, 10_000)
WARMUPS = (0, 1_000)
WORKERS = (1, 1_024)
MAX_TIMEOUT_S = 86_400.0
TOP_KEYS = {"description", "workers", "repetitions", "warmups", "timeout_s", "pythons", "order",
            "batch", "retry_contended", "target_ci", "max_repetitions", "cell_budget_s",
            "models", "workloads", "exclude"}
RETRIES = (0, 10)
TARGET_CI = (0.001, 0.5)  # as fractions: 0.1% .. 50%
MAX_REPETITIONS = 50  # default ceiling of an adaptive cell
CELL_BUDGET_S = 120.0  # default time an adaptive cell may take


@dataclass(frozen=True)
class Matrix:
    name: str
    path: Path | None
    text: str
    description: str
    models: dict[str, dict[str, list[Any]]]
    workloads: dict[str, dict[str, list[Any]]]
    workers: list[int]
    repetitions: int
    warmups: int
    timeout_s: float
    pythons: list[str] = field(default_factory=list)
    exclude: list[dict[str, list[Any]]] = field(default_factory=list)
    order: str = "shuffled"
    batch: int = 1  # repetitions per process, and per round
    retry_contended: int = 0  # remeasure a contended repetition up to this many times
    # Adaptive sampling (gilbench.sampling): None keeps the fixed `repetitions`.
    target_ci: float | None = None
    max_repetitions: int = MAX_REPETITIONS
    cell_budget_s: float = CELL_BUDGET_S


def available() -> list[str]:
    return sorted(p.stem for p in MATRICES_DIR.glob("*.toml"))


def find(name_or_path: str) -> Path:
    """A matrix by name (experiments/matrices/NAME.toml) or by path (relative paths are
    relative to the current directory, i.e. where the user typed them)."""
    candidate = Path(name_or_path).expanduser()
    if candidate.suffix == ".toml" or "/" in name_or_path:
        if candidate.is_dir():
            raise GilbenchError(
                f"Matrix path {candidate} is a folder; give a .toml file (or a matrix name: "
                f"{', '.join(available())})."
            )
        if candidate.exists() and not candidate.is_file():  # /dev/null, a FIFO
            raise GilbenchError(f"Matrix path {candidate} is not a regular file; give a .toml "
                                "file.")
        if not candidate.is_file():
            raise GilbenchError(f"Matrix file {candidate} does not exist.")
        return candidate
    path = MATRICES_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise GilbenchError(
            f"There is no matrix named {name_or_path!r}; known: {', '.join(available())} "
            "(or give a path to a .toml file)."
        )
    return path


def load(name_or_path: str) -> Matrix:
    path = find(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise GilbenchError(
            f"Matrix {path} is not UTF-8 text (byte {exc.start} cannot be decoded); save it "
            "as UTF-8."
        ) from None
    except OSError as exc:
        raise GilbenchError(f"Matrix {path} cannot be read: {exc.strerror or exc}.") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GilbenchError(f"Matrix {path} is not valid TOML: {exc}.") from exc
    return parse(data, name=path.stem, path=path, text=text)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _bounded_int(where: str, key: str, value: Any, bounds: tuple[int, int]) -> int:
    low, high = bounds
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise GilbenchError(
            f"{where}: '{key}' must be an integer from {low} to {high}, got {value!r}."
        )
    return value


def _timeout(where: str, value: Any) -> float:
    if (not isinstance(value, int | float) or isinstance(value, bool)
            or not math.isfinite(value) or not 0 < value <= MAX_TIMEOUT_S):
        raise GilbenchError(
            f"{where}: 'timeout_s' must be a number of seconds above 0 and at most "
            f"{MAX_TIMEOUT_S:.0f} (one day), got {value!r}."
        )
    return float(value)


def parse(
    data: dict[str, Any], name: str, path: Path | None = None, text: str = "",
    where: str = "",
) -> Matrix:
    where = where or f"Matrix {path or name}"
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise GilbenchError(
            f"{where}: unknown key '{unknown[0]}'; allowed: {', '.join(sorted(TOP_KEYS))}."
        )
    models = _axes_tables(where, "models", data.get("models"), catalog.MODELS, "config")
    workloads = _axes_tables(where, "workloads", data.get("workloads"), catalog.WORKLOADS, "params")
    workers = [_bounded_int(where, "workers", w, WORKERS)
               for w in _as_list(data.get("workers", [1]))]
    if not workers:
        raise GilbenchError(f"{where}: 'workers' must list at least one worker count.")
    exclude = []
    for i, entry in enumerate(data.get("exclude", [])):
        if not isinstance(entry, dict):
            raise GilbenchError(f"{where}: 'exclude[{i}]' must be a table.")
        exclude.append({key: _as_list(value) for key, value in entry.items()})
    timeout = _timeout(where, data.get("timeout_s", 120))
    order = data.get("order", "shuffled")
    if order not in ORDERS:
        raise GilbenchError(f"{where}: 'order' must be one of {', '.join(ORDERS)}, got {order!r}.")
    pythons = _as_list(data.get("pythons", []))
    if not all(isinstance(p, str) for p in pythons):
        raise GilbenchError(f"{where}: 'pythons' must be a list of strings.")
    repetitions = _bounded_int(where, "repetitions", data.get("repetitions", 5), REPETITIONS)
    adaptive = _adaptive(where, data, repetitions)
    return Matrix(
        name=name, path=path, text=text, description=str(data.get("description", "")),
        models=models, workloads=workloads, workers=workers,
        repetitions=repetitions,
        warmups=_bounded_int(where, "warmups", data.get("warmups", 1), WARMUPS),
        timeout_s=timeout, pythons=pythons, exclude=exclude, order=order,
        batch=_bounded_int(where, "batch", data.get("batch", 1), REPETITIONS),
        retry_contended=_bounded_int(where, "retry_contended", data.get("retry_contended", 0),
                                     RETRIES),
        **adaptive,
    )


def target_ci(where: str, value: Any) -> float:
    """'2%' (or, in a matrix file, the fraction 0.02) as a fraction within TARGET_CI."""
    low, high = TARGET_CI
    fraction: Any = value
    if isinstance(value, str):
        text = value.strip()
        try:
            fraction = float(text[:-1]) / 100 if text.endswith("%") else None
        except ValueError:
            fraction = None
    if (not isinstance(fraction, int | float) or isinstance(fraction, bool)
            or not math.isfinite(fraction) or not low <= fraction <= high):
        raise GilbenchError(
            f"{where}: the target CI must be a percentage from {low:.1%} to {high:.0%} such "
            f"as '2%', got {value!r}."
        )
    return float(fraction)


def _adaptive(where: str, data: dict[str, Any], repetitions: int) -> dict[str, Any]:
    """target_ci with its ceiling and budget; the last two are refused without it."""
    if "target_ci" not in data:
        given = [key for key in ("max_repetitions", "cell_budget_s") if key in data]
        if given:
            raise GilbenchError(f"{where}: '{given[0]}' only applies with 'target_ci' "
                                "(adaptive sampling); add target_ci or drop it.")
        return {}
    ceiling = _bounded_int(where, "max_repetitions",
                           data.get("max_repetitions", max(MAX_REPETITIONS, repetitions)),
                           (repetitions, REPETITIONS[1]))
    budget = data.get("cell_budget_s", CELL_BUDGET_S)
    if (not isinstance(budget, int | float) or isinstance(budget, bool)
            or not math.isfinite(budget) or not 0 < budget <= MAX_TIMEOUT_S):
        raise GilbenchError(
            f"{where}: 'cell_budget_s' must be a number of seconds above 0 and at most "
            f"{MAX_TIMEOUT_S:.0f}, got {budget!r}."
        )
    return {"target_ci": target_ci(where, data["target_ci"]), "max_repetitions": ceiling,
            "cell_budget_s": float(budget)}


def with_sampling(matrix: Matrix, target: str, max_repetitions: int | None,
                  budget_s: float | None) -> Matrix:
    """The matrix with adaptive sampling from the command line, checked like the keys."""
    data: dict[str, Any] = {"target_ci": target}
    if max_repetitions is not None:
        data["max_repetitions"] = max_repetitions
    if budget_s is not None:
        data["cell_budget_s"] = budget_s
    where = "The command line (--target-ci)"
    return replace(matrix, **_adaptive(where, data, matrix.repetitions))


def _axes_tables(
    where: str, key: str, value: Any, known: dict[str, dict[str, Any]], field_name: str
) -> dict[str, dict[str, list[Any]]]:
    if not isinstance(value, dict) or not value:
        raise GilbenchError(f"{where}: '{key}' must be a non-empty table, e.g. [{key}.NAME].")
    tables: dict[str, dict[str, list[Any]]] = {}
    for name, axes in value.items():
        if field_name == "params" and userwork.is_spec(name):
            tables[name] = _user_axes(where, key, name, axes)
            continue
        if name not in known:
            raise GilbenchError(
                f"{where}: '{key}.{name}' is unknown; known: {', '.join(known)}."
            )
        if not isinstance(axes, dict):
            raise GilbenchError(f"{where}: '{key}.{name}' must be a table.")
        tables[name] = {axis: _as_list(values) for axis, values in axes.items()}
        for axis in axes:
            if field_name == "config" and axis not in known[name]["config"]:
                allowed = ", ".join(known[name]["config"]) or "none"
                raise GilbenchError(
                    f"{where}: '{key}.{name}.{axis}' is not a {name} setting; known: {allowed}."
                )
            if field_name == "params" and axis not in known[name]["params"]:
                allowed = ", ".join(known[name]["params"])
                raise GilbenchError(
                    f"{where}: '{key}.{name}.{axis}' is not a {name} parameter; known: {allowed}."
                )
    return tables


def _user_axes(where: str, key: str, name: str, axes: Any) -> dict[str, list[Any]]:
    """A user workload's table: any keyword names (its function's), scalar values or lists
    of them (axes). The spec is resolved when the run starts (gilbench/userwork.py)."""
    try:
        userwork.parse(name)
    except GilbenchError as exc:
        raise GilbenchError(f"{where}: '{key}.{name}': {exc}") from None
    if not isinstance(axes, dict):
        raise GilbenchError(f"{where}: '{key}.{name}' must be a table.")
    for axis in axes:
        if not axis.isidentifier():
            raise GilbenchError(f"{where}: '{key}.{name}.{axis}' is not a keyword argument "
                                "name.")
    return {axis: _as_list(values) for axis, values in axes.items()}


def _product(axes: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = sorted(axes)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(
        *(axes[k] for k in keys))]


def cell_id(spec: dict[str, Any]) -> str:
    """Stable across runs: a hash of everything that defines the measurement."""
    keys = ("python", "model", "model_config", "workload", "workload_params", "workers",
            "warmups", "timeout_s")
    canonical = json.dumps({k: spec[k] for k in keys}, sort_keys=True)
    return "c-" + hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _excluded(cell: dict[str, Any], label: str, rules: list[dict[str, list[Any]]]) -> bool:
    flat = {"python": label, "model": cell["model"], "workload": cell["workload"],
            "workers": cell["workers"], **cell["model_config"], **cell["workload_params"]}
    return any(all(flat.get(k) in values for k, values in rule.items()) for rule in rules)


def expand(matrix: Matrix, pythons: dict[str, str]) -> list[dict[str, Any]]:
    """Cells (without run_id) for each python id -> label; validated by the catalog."""
    cells: list[dict[str, Any]] = []
    seen: set[str] = set()
    for python, label in pythons.items():
        for workload, params_axes in matrix.workloads.items():
            for params in _product(params_axes):
                for model, config_axes in matrix.models.items():
                    for config in _product(config_axes):
                        # sequential ignores workers: one cell, at 1.
                        workers = [1] if model == "sequential" else matrix.workers
                        for n in workers:
                            cell: dict[str, Any] = {
                                "python": python, "model": model,
                                "model_config": catalog.model_config(model, config),
                                "workload": workload,
                                "workload_params": catalog.workload_params(workload, params),
                                "workers": n, "warmups": matrix.warmups,
                                "repetitions": list(range(matrix.repetitions)),
                                "timeout_s": matrix.timeout_s,
                            }
                            if _excluded(cell, label, matrix.exclude):
                                continue
                            cell["cell_id"] = cell_id(cell)
                            if cell["cell_id"] in seen:
                                continue
                            seen.add(cell["cell_id"])
                            problems = catalog.validate_cell({**cell, "run_id": "-"})
                            if problems:
                                where = matrix.path or matrix.name
                                raise GilbenchError(f"Matrix {where}: {problems[0]}")
                            cells.append(cell)
    if not cells:
        raise GilbenchError(
            f"Matrix {matrix.path or matrix.name} expands to no cells (check its excludes)."
        )
    return cells


def with_baseline(matrix: Matrix, no_baseline: bool = False) -> tuple[Matrix, str]:
    """Every parallel model is measured against sequential: a matrix naming parallel models
    without `sequential` gets its sequential cells (same workloads and pythons), and the
    sentence saying so; --no-baseline (`no_baseline`) opts out. Returns (matrix, note)."""
    where = matrix.path or matrix.name
    if no_baseline:
        if "sequential" in matrix.models:
            raise GilbenchError(
                f"--no-baseline asks for no sequential cells, but {where} names the sequential "
                "model; drop --no-baseline, or drop sequential from the models."
            )
        return matrix, ""
    if "sequential" in matrix.models or not matrix.models:
        return matrix, ""
    models = {"sequential": {}, **matrix.models}
    return replace(matrix, models=models, text=_text_with_sequential(matrix.text)), (
        "Added the sequential baseline for the same workloads and pythons, so every model "
        "gets a speedup (--no-baseline leaves it out)."
    )


_SEQUENTIAL_TOML = ("\n# Added by gilbench: every model is measured against sequential "
                    "(--no-baseline leaves it out).\n[models.sequential]\n")


def _text_with_sequential(text: str) -> str:
    """The matrix text with the sequential model in it, so that whatever plans the run's
    cells again from its manifest (`invoke reproduce`) plans the baseline too: a TOML table
    appended, or the command line's JSON with the model added. Text that takes neither
    (inline TOML model tables) is kept as given."""
    with contextlib.suppress(tomllib.TOMLDecodeError):
        tomllib.loads(text + _SEQUENTIAL_TOML)
        return text + _SEQUENTIAL_TOML
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return text
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        return text
    data["models"] = {"sequential": {}, **data["models"]}
    return json.dumps(data, sort_keys=True)


def with_retries(matrix: Matrix, retries: int) -> Matrix:
    """The matrix with retry_contended set from the command line (bounded like the key)."""
    where = f"--retry-contended {retries}"
    if not RETRIES[0] <= retries <= RETRIES[1]:
        raise GilbenchError(f"{where} must be from {RETRIES[0]} to {RETRIES[1]}.")
    return replace(matrix, retry_contended=retries)


def single_cell(
    model: str | list[str], workload: str, workers: list[int], config: dict[str, list[Any]],
    params: dict[str, list[Any]], repetitions: int, warmups: int, timeout_s: float,
) -> Matrix:
    """A matrix from command-line flags: `invoke experiment --model ... --workload ...`.
    Several models (`--model threads,processes`) each take the --config keys they know."""
    where = "The command line (single-cell run)"
    models = [model] if isinstance(model, str) else list(model)
    if len(models) == 1:
        model_tables = {models[0]: config}
    else:
        known = {m: catalog.MODELS[m]["config"] for m in models if m in catalog.MODELS}
        orphans = [key for key in config if not any(key in axes for axes in known.values())]
        if orphans and len(known) == len(models):
            raise GilbenchError(f"{where}: --config {orphans[0]} is a setting of none of the "
                                f"models {', '.join(models)}.")
        model_tables = {m: {k: v for k, v in config.items() if k in known.get(m, config)}
                        for m in models}
    data = {"models": model_tables, "workloads": {workload: params}, "workers": workers,
            "repetitions": repetitions, "warmups": warmups, "timeout_s": timeout_s}
    _timeout(where, timeout_s)  # before json.dumps, which would write NaN as a bare NaN
    text = json.dumps(data, sort_keys=True)
    return parse(data, name="command-line", text=text, where=where)
