"""Per-group aggregates of a run: timings with uncertainty, speedups, costs, status counts.

A group is one (python, workload, workload_params, model, model_config, workers) point of
the matrix. Timings use *usable* records only: `ok` and not contended (other processes,
steal or a CPU quota took the CPU while it ran: experiments/contention.py); status counts
use all of them. A speedup the host's cores cannot explain is flagged as an artefact.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from experiments import catalog
from experiments.records import STATUSES
from gilbench import topology
from gilbench.report import stats
from gilbench.report.errors import ReportError
from gilbench.report.load import RunData, contended_ok, quiet_ok

GROUP_KEYS = ["python", "python_label", "workload", "workload_params", "model", "model_config",
              "workers"]  # fmt: skip
SEQUENTIAL = "sequential"
KEY_SEPARATOR = "\x1f"

Key = tuple[Any, ...]


@dataclass
class Summary:
    """The aggregate table plus what the report must say about how it was computed."""

    frame: pd.DataFrame
    # python label -> label of the python whose `sequential` is its throughput reference
    baselines: dict[str, str | None]
    notes: list[str] = field(default_factory=list)
    # group key -> ok wall_s values, kept for the comparison of two runs
    samples: dict[Key, np.ndarray] = field(default_factory=dict)


def _key_text(key: Key) -> str:
    return KEY_SEPARATOR.join(str(part) for part in key)


def _dominant_status(counts: dict[str, int]) -> str:
    failed = {status: n for status, n in counts.items() if status != "ok" and n}
    if not failed:
        return "ok"
    # most frequent failure; ties go to the earlier (more specific) status in STATUSES
    return max(failed, key=lambda status: (failed[status], -STATUSES.index(status)))


def _mode(series: pd.Series) -> Any:
    values = series.dropna()
    return values.mode().iloc[0] if len(values) else pd.NA


def _gil_enabled(series: pd.Series) -> Any:
    values = series.dropna()
    if not len(values) or values.nunique() > 1:
        return pd.NA  # unknown, or mixed: an extension module re-enabled it mid-run
    return bool(values.iloc[0])


def usable(group: pd.DataFrame) -> pd.Series:
    """The group's ok records measured without contention (unknown, as in v1 records,
    counts as none). When every ok record was contended, all of them: a busy host's
    numbers, flagged (all_contended), beat no numbers at all."""
    quiet = quiet_ok(group)
    return quiet if quiet.any() else group["status"] == "ok"


def _unstable_reason(wall: np.ndarray, n_ok: int, n_contended: int, tolerance_s: float) -> str:
    """Why the group's wall times deserve more repetitions, or "". A group with no ok record
    is a failure, reported as such, not as noise; one short of quiet samples because its
    contended repetitions were left out says so (the contention warning covers it)."""
    if not n_ok:
        return ""
    reason = stats.instability(wall, tolerance_s)
    if wall.size < stats.MIN_SAMPLES and n_contended and wall.size < n_ok:
        return f"only {wall.size} quiet sample(s); {n_contended} contended left out"
    return reason


def _group_row(key: Key, group: pd.DataFrame, tolerance_s: float) -> dict[str, Any]:
    ok = group[usable(group)]
    wall = stats.as_array(ok["wall_s"])
    q1, q3 = stats.quartiles(wall)
    ci_low, ci_high = stats.bootstrap_median_ci(wall, stats.seed_for(_key_text(key)))
    with np.errstate(divide="ignore", invalid="ignore"):
        throughput = stats.as_array(ok["tasks_done"].astype("float64") / ok["wall_s"])
    workers = int(key[GROUP_KEYS.index("workers")])
    startup = stats.median(stats.as_array(ok["startup_s"]))
    rss = stats.median(stats.as_array(ok["peak_rss_kb"].astype("float64")))
    counts = {status: int((group["status"] == status).sum()) for status in STATUSES}
    n_contended = int(contended_ok(group).sum())
    messages = sorted({m for m in group.loc[group["status"] != "ok", "message"] if m})
    row: dict[str, Any] = dict(zip(GROUP_KEYS, key, strict=True))
    row.update(
        config_label=group["config_label"].iloc[0],
        model_label=group["model_label"].iloc[0],
        workload_label=group["workload_label"].iloc[0],
        gil_disabled_build=group["gil_disabled_build"].iloc[0],
        documented_invalid=str(group["documented_invalid"].iloc[0] or ""),
        status=_dominant_status(counts),
        n_records=len(group),
        n_ok=counts["ok"],
        n_contended=n_contended,
        all_contended=bool(len(ok)) and bool(ok["contended"].fillna(False).all()),
        **{f"n_{status}": counts[status] for status in STATUSES if status != "ok"},
        wall_median_s=stats.median(wall),
        wall_q1_s=q1,
        wall_q3_s=q3,
        wall_iqr_s=q3 - q1,
        wall_ci_low_s=ci_low,
        wall_ci_high_s=ci_high,
        wall_mean_s=float(np.mean(wall)) if wall.size else math.nan,
        wall_stdev_s=float(np.std(wall, ddof=1)) if wall.size > 1 else math.nan,
        throughput_median=stats.median(throughput),
        total_median_s=stats.median(stats.as_array(ok["total_s"])),
        startup_median_s=startup,
        startup_per_worker_s=startup / workers if workers else math.nan,
        teardown_median_s=stats.median(stats.as_array(ok["teardown_s"])),
        cpu_median_s=stats.median(stats.as_array(ok["cpu_s"])),
        peak_rss_median_kb=rss,
        rss_per_worker_kb=rss / workers if workers else math.nan,
        mem_total_median_kb=stats.median(stats.as_array(ok["mem_total_kb"].astype("float64"))),
        api=_mode(group["api"]),
        python_version=str(_mode(group["python_version"])),
        gil_enabled=_gil_enabled(ok["gil_enabled"]),
        unstable_reason=_unstable_reason(wall, counts["ok"], n_contended, tolerance_s),
        messages=" | ".join(messages),
    )
    return row


def _python_facts(run: RunData) -> dict[str, tuple[str, str, bool, str]]:
    """python id -> (label, version, gil_disabled, variant), from the manifest or the records."""
    pythons = run.manifest.pythons
    facts = {}
    frame = run.frame
    for python, group in frame.groupby("python", observed=True):
        info = pythons.get(str(python)) or {}
        version = info.get("version") or _mode(group["python_version"])
        disabled = info.get("gil_disabled")
        if disabled is None:  # no provenance: a build whose GIL was ever off is free-threaded
            disabled = bool((group["gil_enabled"] == False).any())  # noqa: E712
        label = str(group["python_label"].iloc[0])
        facts[str(python)] = (label, str(version), bool(disabled), str(info.get("variant") or ""))
    return facts


def _reference_pythons(
    run: RunData, baseline: str | None, notes: list[str]
) -> dict[str, str | None]:
    """python id -> python id whose `sequential` is the cross-build throughput reference."""
    facts = _python_facts(run)
    # A merged run's pythons name their host (gilbench/merge.py): a build is compared with
    # a GIL build on its own host, never with another machine's.
    host = {p: (run.manifest.pythons.get(p) or {}).get("host") for p in facts}
    if baseline is not None:
        chosen = [p for p, (label, *_) in facts.items() if baseline in (p, label)]
        if not chosen:
            labels = ", ".join(sorted(label for label, *_ in facts.values()))
            raise ReportError(
                f"Baseline python {baseline!r} is not in this run; choose one of {labels}."
            )
        return dict.fromkeys(facts, chosen[0])
    references: dict[str, str | None] = {}
    for python, (label, version, disabled, _) in facts.items():
        if not disabled:
            references[python] = python
            continue
        # Prefer the plain PGO build of the same version: what a user would otherwise run.
        candidates = sorted(
            (variant != "pgo", other_label, other)
            for other, (other_label, other_version, other_disabled, variant) in facts.items()
            if other_version == version and not other_disabled and host[other] == host[python]
        )
        references[python] = candidates[0][2] if candidates else None
        if not candidates:
            notes.append(
                f"No GIL build of {version} is in this run, so {label} has no cross-build "
                "throughput reference."
            )
    return references


def _sequential_rows(table: pd.DataFrame) -> dict[tuple[str, str, str], int]:
    """(python, workload, params) -> row index of its sequential group (fewest workers)."""
    rows: dict[tuple[str, str, str], int] = {}
    sequential = table[table["model"] == SEQUENTIAL].sort_values(["workers", "model_config"])
    for index, python, workload, params in zip(
        sequential.index, sequential["python"], sequential["workload"],
        sequential["workload_params"], strict=True,
    ):  # fmt: skip
        rows.setdefault((python, workload, params), int(index))
    return rows


def summarize(run: RunData, baseline: str | None = None) -> Summary:
    """Aggregate a loaded run; `baseline` (python label or id) overrides the reference."""
    notes: list[str] = []
    rows = []
    samples: dict[Key, np.ndarray] = {}
    tolerances: dict[str, float] = {}
    for key, group in run.frame.groupby(GROUP_KEYS, observed=True, sort=True):
        key = tuple(key)
        python = str(key[0])
        if python not in tolerances:
            tolerances[python] = _timer_tolerance(run, python)
        rows.append(_group_row(key, group, tolerances[python]))
        samples[key] = stats.as_array(group.loc[usable(group), "wall_s"])
    table = pd.DataFrame(rows)
    references = _reference_pythons(run, baseline, notes)
    _add_relative_columns(table, samples, references)
    table["cores"] = [_usable_cores(run, str(p)) for p in table["python"]]
    table["artefact"] = [_artefact(row) for _, row in table.iterrows()]
    table["at_ceiling"] = [at_ceiling(row) for _, row in table.iterrows()]
    table["unstable"] = table["unstable_reason"] != ""
    table = _typed(table).sort_values(
        ["workload", "workload_params", "python_label", "model", "model_config", "workers"]
    )
    labels = dict(zip(table["python"], table["python_label"], strict=False))
    baselines = {
        str(labels[p]): (str(labels[r]) if r is not None else None)
        for p, r in references.items()
        if p in labels
    }
    return Summary(table.reset_index(drop=True), baselines, notes, samples)


def _timer_tolerance(run: RunData, python: str) -> float:
    """stats.timer_tolerance() with the resolution and call cost of perf_counter as the
    python's probe recorded them (perf_counter_resolution_s, perf_counter_call_s), where
    it did; otherwise this host's."""
    entry = run.manifest.pythons.get(python)
    probe = entry.get("probe") if isinstance(entry, dict) else None
    probe = probe if isinstance(probe, dict) else {}

    def number(name: str) -> float | None:
        value = probe.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value) if math.isfinite(value) else None

    return stats.timer_tolerance(number("perf_counter_resolution_s"),
                                 number("perf_counter_call_s"))


def _usable_cores(run: RunData, python: str) -> int:
    """Physical cores the python's cells could run on: the count its runner recorded,
    else its cpuset counted on the host's recorded topology, else (runs from before
    topology was recorded) the CPUs of its cpuset, else the host's cores."""
    entry = run.manifest.backend.get(python)
    entry = entry if isinstance(entry, dict) else {}
    recorded = entry.get("physical_cores")
    if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded > 0:
        return recorded
    cpuset = entry.get("cpuset")
    if isinstance(cpuset, str) and cpuset:
        cpus: set[int] = set()
        for part in cpuset.split(","):  # a part that is no CPU range is skipped, as ever
            with contextlib.suppress(ValueError):
                cpus |= topology.parse_cpulist(part)
        if cpus:
            host_topology = topology.from_summary(run.manifest.host.get("topology"))
            if host_topology is not None and cpus <= host_topology.cpus:
                return host_topology.physical_cores(cpus)
            return len(cpus)
    cores = run.manifest.host.get("cores")
    return int(cores) if isinstance(cores, int) and cores > 0 else 0


# A speedup is implausible when even its CI's far end passes a physical limit by more
# than this: the CI covers noise within a cell, this the drift between cells (a few %).
PLAUSIBILITY_SLACK = 1.05


def _artefact(row: pd.Series) -> str:
    """Why a group's speedup cannot be true, or "". Such a number comes from the host (a
    slow sequential baseline, a busy neighbour), not from the model."""
    low, high = row["speedup_ci_low"], row["speedup_ci_high"]
    if row["model"] == SEQUENTIAL or math.isnan(low):
        return ""
    cores, workers = int(row["cores"]), int(row["workers"])
    # Physics first: the median, not the CI's far end, decides. A CI reaching below the
    # cores does not make a median above them a finding (issue 18).
    if cores and cpu_bound(row["workload"]) and row["speedup"] > cores * PLAUSIBILITY_SLACK:
        return (f"speedup {row['speedup']:.2f}x is above the {cores} usable cores: the "
                "baseline probably ran slow")
    if low > workers * PLAUSIBILITY_SLACK:
        return (f"efficiency {row['efficiency']:.2f} is above 1 ({workers} worker(s) cannot "
                "beat sequential by more); the sequential baseline probably ran slow")
    if _is_io(row["workload"]) and high * PLAUSIBILITY_SLACK < 1:
        return (f"{row['speedup']:.2f}x: slower than sequential on an I/O-bound workload, "
                "which waiting workers cannot be; the host was probably busy")
    return ""


def at_ceiling(row: pd.Series) -> bool:
    """A CPU-bound speedup within 5% of the usable cores: as far as the host goes."""
    cores, speedup = int(row["cores"]), row["speedup"]
    if row["model"] == SEQUENTIAL or not cores or not cpu_bound(row["workload"]):
        return False
    return bool(cores / PLAUSIBILITY_SLACK <= speedup <= cores * PLAUSIBILITY_SLACK)


def cpu_bound(workload: object) -> bool:
    """Workloads that need a core per busy worker (waiting ones can outnumber the cores)."""
    # A user workload ("user") may wait as much as it computes, so it is not assumed to.
    return catalog.workload_kind(str(workload)) in ("cpu", "cpu-nogil", "alloc", "transfer",
                                                    "contended")


def _is_io(workload: object) -> bool:
    return catalog.workload_kind(str(workload)) == "io"


def _add_relative_columns(
    table: pd.DataFrame, samples: dict[Key, np.ndarray], references: dict[str, str | None]
) -> None:
    sequential = _sequential_rows(table)
    labels = dict(zip(table["python"], table["python_label"], strict=False))
    columns: dict[str, list[Any]] = {name: [] for name in (
        "speedup", "speedup_ci_low", "speedup_ci_high", "efficiency", "speedup_end_to_end",
        "extra_rss_per_worker_kb", "baseline_python", "rel_throughput",
    )}  # fmt: skip
    for _, row in table.iterrows():
        key = tuple(row[k] for k in GROUP_KEYS)
        own = sequential.get((row["python"], row["workload"], row["workload_params"]))
        speedup = low = high = extra = end_to_end = math.nan
        if own is not None:
            base = table.loc[own]
            base_key = tuple(base[k] for k in GROUP_KEYS)
            speedup = base["wall_median_s"] / row["wall_median_s"]
            # End to end: worker start-up and teardown included, as a one-shot user pays.
            end_to_end = base["total_median_s"] / row["total_median_s"]
            if base_key == key:  # sequential against itself: exactly 1, no uncertainty
                low = high = 1.0 if row["n_ok"] else math.nan
            else:
                low, high = stats.bootstrap_ratio_ci(
                    samples[base_key], samples[key], stats.seed_for(_key_text(key) + "/speedup")
                )
            extra = (row["peak_rss_median_kb"] - base["peak_rss_median_kb"]) / row["workers"]
        reference = references.get(row["python"])
        ref_row = (
            sequential.get((reference, row["workload"], row["workload_params"]))
            if reference
            else None
        )
        relative = (
            row["throughput_median"] / table.loc[ref_row, "throughput_median"]
            if ref_row is not None
            else math.nan
        )
        columns["speedup"].append(speedup)
        columns["speedup_ci_low"].append(low)
        columns["speedup_ci_high"].append(high)
        columns["efficiency"].append(speedup / row["workers"] if row["workers"] else math.nan)
        columns["speedup_end_to_end"].append(end_to_end)
        columns["extra_rss_per_worker_kb"].append(extra)
        columns["baseline_python"].append(labels.get(reference) if reference else None)
        columns["rel_throughput"].append(relative)
    for name, values in columns.items():
        table[name] = values
    table["mib_per_worker"], table["mem_method"] = memory_per_worker(table)


MEMORY_METHOD = (
    "Memory per worker is what one more worker makes the run hold, in MiB. Each measured "
    "repetition sums the proportional set size (PSS, from /proc/PID/smaps_rollup) of the "
    "cell process and of every live worker process, at the ready gate (all workers started, "
    "before go) and after the last result (before teardown), and records the larger total; "
    "PSS splits each shared page among the processes sharing it, so forked workers' "
    "copy-on-write pages and every process's shared libraries count once. Threads, "
    "sub-interpreters and the interpreter pool live in the cell process, so their total is "
    "its PSS. Per python, workload and model config, the figure is the least-squares slope "
    "of the median total over the worker counts measured; with a single worker count it is "
    "the total minus the same build's sequential total for that workload, divided by the "
    "workers. The process's own start-up memory, the interpreter and the workload's data "
    "are in every total and drop out of both. Earlier runs recorded only peak RSS "
    "(the cell process or its single largest child), which cannot add workers up: their "
    "figure is unknown."
)


def _slope(workers: np.ndarray, totals: np.ndarray) -> float:
    """Least-squares slope of totals over worker counts (at least two distinct counts)."""
    dx = workers - workers.mean()
    return float(np.dot(dx, totals - totals.mean()) / np.dot(dx, dx))


def memory_per_worker(table: pd.DataFrame) -> tuple[list[float], list[str]]:
    """(mib_per_worker, mem_method) for each row of the summary, in its order: per (python,
    workload, workload_params, model, model_config), the slope of mem_total_median_kb over
    the worker counts in MiB when it has two or more with a total, else (total - the same
    build's sequential total for the workload) / workers; NaN and "" when unknown and for
    sequential itself (MEMORY_METHOD)."""
    mib = [math.nan] * len(table)
    method = [""] * len(table)
    sequential = _sequential_rows(table)
    keys = ["python", "workload", "workload_params", "model", "model_config"]
    positions = {index: n for n, index in enumerate(table.index)}
    for key, group in table.groupby(keys, observed=True, sort=False):
        if key[3] == SEQUENTIAL:
            continue
        known = group.loc[np.isfinite(group["mem_total_median_kb"].astype("float64"))]
        workers = known["workers"].astype("float64").to_numpy()
        totals = known["mem_total_median_kb"].astype("float64").to_numpy()
        value, how = math.nan, ""
        if len(np.unique(workers)) >= 2:
            value = _slope(workers, totals) / 1024
            how = f"slope over {len(np.unique(workers))} worker counts"
        elif len(known) == 1:
            base = sequential.get((str(key[0]), str(key[1]), str(key[2])))
            base_total = (float(table.at[base, "mem_total_median_kb"])  # type: ignore[arg-type]
                          if base is not None else math.nan)
            if math.isfinite(base_total) and workers[0] > 0:
                value = (totals[0] - base_total) / workers[0] / 1024
                how = "vs sequential"
        for index in group.index:
            mib[positions[index]] = value
            method[positions[index]] = how
    return mib, method


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    for column in (
        "python",
        "python_label",
        "workload",
        "workload_params",
        "model",
        "model_config",
        "model_label",
        "workload_label",
        "api",
        "baseline_python",
    ):
        table[column] = table[column].astype("string").astype("category")
    table["status"] = pd.Categorical(table["status"], categories=list(STATUSES))
    for column in table.columns:
        if column == "workers" or column.startswith("n_"):
            table[column] = table[column].astype("Int64")
    for column in ("gil_enabled", "gil_disabled_build", "unstable", "all_contended",
                   "at_ceiling"):
        table[column] = table[column].astype("boolean")
    table["unstable_reason"] = table["unstable_reason"].astype("string")
    table["artefact"] = table["artefact"].astype("string")
    table["messages"] = table["messages"].astype("string")
    return table
