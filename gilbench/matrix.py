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

    [[exclude]]                     # drop cells matching every key given
    model = "processes"
    workers = 4

    order = "shuffled"              # default: cells run in a seeded random order, so a host
                                    # that drifts does not bias one model; "matrix": as listed
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiments import catalog
from gilbench.errors import GilbenchError
from gilbench.paths import MATRICES_DIR

ORDERS = ("shuffled", "matrix")
TOP_KEYS = {"description", "workers", "repetitions", "warmups", "timeout_s", "pythons", "order",
            "models", "workloads", "exclude"}


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


def available() -> list[str]:
    return sorted(p.stem for p in MATRICES_DIR.glob("*.toml"))


def find(name_or_path: str) -> Path:
    """A matrix by name (experiments/matrices/NAME.toml) or by path."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or "/" in name_or_path:
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
    text = path.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GilbenchError(f"Matrix {path} is not valid TOML: {exc}.") from exc
    return parse(data, name=path.stem, path=path, text=text)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _positive_int(where: str, key: str, value: Any, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise GilbenchError(f"{where}: '{key}' must be an integer >= {minimum}, got {value!r}.")
    return value


def parse(data: dict[str, Any], name: str, path: Path | None = None, text: str = "") -> Matrix:
    where = f"Matrix {path or name}"
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise GilbenchError(
            f"{where}: unknown key '{unknown[0]}'; allowed: {', '.join(sorted(TOP_KEYS))}."
        )
    models = _axes_tables(where, "models", data.get("models"), catalog.MODELS, "config")
    workloads = _axes_tables(where, "workloads", data.get("workloads"), catalog.WORKLOADS, "params")
    workers = [_positive_int(where, "workers", w, 1) for w in _as_list(data.get("workers", [1]))]
    exclude = []
    for i, entry in enumerate(data.get("exclude", [])):
        if not isinstance(entry, dict):
            raise GilbenchError(f"{where}: 'exclude[{i}]' must be a table.")
        exclude.append({key: _as_list(value) for key, value in entry.items()})
    timeout = data.get("timeout_s", 120)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
        raise GilbenchError(f"{where}: 'timeout_s' must be a positive number, got {timeout!r}.")
    order = data.get("order", "shuffled")
    if order not in ORDERS:
        raise GilbenchError(f"{where}: 'order' must be one of {', '.join(ORDERS)}, got {order!r}.")
    pythons = _as_list(data.get("pythons", []))
    if not all(isinstance(p, str) for p in pythons):
        raise GilbenchError(f"{where}: 'pythons' must be a list of strings.")
    return Matrix(
        name=name, path=path, text=text, description=str(data.get("description", "")),
        models=models, workloads=workloads, workers=workers,
        repetitions=_positive_int(where, "repetitions", data.get("repetitions", 5), 1),
        warmups=_positive_int(where, "warmups", data.get("warmups", 1), 0),
        timeout_s=float(timeout), pythons=pythons, exclude=exclude, order=order,
    )


def _axes_tables(
    where: str, key: str, value: Any, known: dict[str, dict[str, Any]], field_name: str
) -> dict[str, dict[str, list[Any]]]:
    if not isinstance(value, dict) or not value:
        raise GilbenchError(f"{where}: '{key}' must be a non-empty table, e.g. [{key}.NAME].")
    tables: dict[str, dict[str, list[Any]]] = {}
    for name, axes in value.items():
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


def single_cell(
    model: str, workload: str, workers: list[int], config: dict[str, list[Any]],
    params: dict[str, list[Any]], repetitions: int, warmups: int, timeout_s: float,
) -> Matrix:
    """A matrix from command-line flags: `invoke experiment --model ... --workload ...`."""
    data = {"models": {model: config}, "workloads": {workload: params}, "workers": workers,
            "repetitions": repetitions, "warmups": warmups, "timeout_s": timeout_s}
    text = json.dumps(data, sort_keys=True)
    return parse(data, name="command-line", text=text)
