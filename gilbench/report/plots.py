"""Plots of a run summary. Each is `(data, output_path, title) -> written paths`.

`data` is the summary frame (aggregate.summarize); each plot writes output_path as PNG and
its .svg sibling. Figures are drawn on an explicit Agg canvas (never pyplot), so no display
or global backend state is involved. A plot without data raises NothingToPlot.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps, rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from gilbench.report.aggregate import SEQUENTIAL
from gilbench.report.errors import NothingToPlot

STATUS_COLOURS = {
    "ok": "#4caf50",
    "invalid": "#ff9800",
    "crashed": "#d32f2f",
    "timeout": "#7b1fa2",
    "unsupported": "#9e9e9e",
}
NOT_RUN = "#ffffff"
LINESTYLES = ["-", "--", ":", "-."]

PlotFunction = Callable[[pd.DataFrame, Path, str], list[Path]]


def _colours(labels: list[str]) -> dict[str, tuple[float, float, float, float]]:
    cmap = colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: cmap(i % cmap.N) for i, label in enumerate(sorted(labels))}


def _workers(count: int) -> str:
    return f"{count} worker" if count == 1 else f"{count} workers"


def _figure(panels: int, height: float = 4.0) -> tuple[Figure, list[Axes]]:
    columns = min(panels, 3)
    rows = math.ceil(panels / columns)
    figure = Figure(figsize=(5.2 * columns + 2.6, height * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False).ravel().tolist()
    for unused in axes[panels:]:
        unused.set_visible(False)
    return figure, axes[:panels]


def _save(figure: Figure, output_path: Path) -> list[Path]:
    output_path.parent.mkdir(parents=True, exist_ok=True)
    paths = [output_path.with_suffix(".png"), output_path.with_suffix(".svg")]
    with warnings.catch_warnings():
        # constrained layout gives up on very tall figures; the tight bbox still fits all
        warnings.filterwarnings("ignore", "constrained_layout not applied", UserWarning)
        figure.savefig(paths[0], dpi=100, bbox_inches="tight")
        # no date and a fixed id salt keep the SVG byte-stable between regenerations
        with rc_context({"svg.hashsalt": "gilbench"}):
            figure.savefig(paths[1], metadata={"Date": None}, bbox_inches="tight")
    return paths


def _legend(figure: Figure, axes: list[Axes]) -> None:
    handles, labels = axes[0].get_legend_handles_labels()
    seen = dict(zip(labels, handles, strict=True))
    for ax in axes[1:]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    if seen:
        figure.legend(seen.values(), seen.keys(), loc="outside right upper", fontsize="small")


def speedup_plot(data: pd.DataFrame, output_path: Path, title: str) -> list[Path]:
    """Speedup over the same build's sequential vs workers, one panel per workload."""
    rows = data[(data["model"] != SEQUENTIAL) & data["speedup"].notna()]
    if rows.empty:
        raise NothingToPlot("No workload has both sequential and parallel ok records.")
    workloads = sorted(rows["workload_label"].astype(str).unique())
    colours = _colours(list(rows["model_label"].astype(str).unique()))
    pythons = sorted(rows["python_label"].astype(str).unique())
    figure, axes = _figure(len(workloads))
    for ax, workload in zip(axes, workloads, strict=True):
        panel = rows[rows["workload_label"] == workload]
        top = int(panel["workers"].max())
        ideal = np.arange(1, max(top, 2) + 1)
        ax.plot(ideal, ideal, color="black", linewidth=0.8, linestyle=":", label="ideal scaling")
        ax.axhline(1.0, color="grey", linewidth=0.6)
        for (model, python), line in panel.groupby(
            ["model_label", "python_label"], observed=True, sort=True
        ):
            line = line.sort_values("workers")
            label = model if len(pythons) == 1 else f"{model} [{python}]"
            errors = np.vstack([
                (line["speedup"] - line["speedup_ci_low"]).clip(lower=0),
                (line["speedup_ci_high"] - line["speedup"]).clip(lower=0),
            ])  # fmt: skip
            ax.errorbar(
                line["workers"].astype(float), line["speedup"], yerr=errors, marker="o",
                capsize=3, color=colours[str(model)], label=label,
                linestyle=LINESTYLES[pythons.index(str(python)) % len(LINESTYLES)],
            )  # fmt: skip
        ax.set_title(workload, fontsize="medium")
        ax.set_xlabel("workers")
        ax.set_ylabel("speedup over sequential (same build)")
        ax.set_xticks(ideal)
        ax.grid(alpha=0.3)
    figure.suptitle(title)
    _legend(figure, axes)
    return _save(figure, output_path)


def startup_plot(data: pd.DataFrame, output_path: Path, title: str) -> list[Path]:
    """Median worker start-up time vs workers per model, one panel per python."""
    rows = data[(data["model"] != SEQUENTIAL) & data["startup_median_s"].notna()]
    if rows.empty:
        raise NothingToPlot("No parallel cell has ok records with a start-up time.")
    # start-up does not depend on the workload much: summarise across workloads
    points = (
        rows.groupby(["python_label", "model_label", "workers"], observed=True)["startup_median_s"]
        .median()
        .reset_index()
    )
    pythons = sorted(points["python_label"].astype(str).unique())
    colours = _colours(list(points["model_label"].astype(str).unique()))
    figure, axes = _figure(len(pythons))
    for ax, python in zip(axes, pythons, strict=True):
        panel = points[points["python_label"] == python]
        for model, line in panel.groupby("model_label", observed=True, sort=True):
            line = line.sort_values("workers")
            ax.plot(line["workers"].astype(float), line["startup_median_s"] * 1000, marker="o",
                    color=colours[str(model)], label=str(model))  # fmt: skip
        positive = panel["startup_median_s"][panel["startup_median_s"] > 0]
        if len(positive) and positive.max() / positive.min() > 50:
            ax.set_yscale("log")  # thread start is microseconds, process spawn tens of ms
        ax.set_title(python, fontsize="medium")
        ax.set_xlabel("workers")
        ax.set_ylabel("start-up, ms (median)")
        ax.set_xticks(sorted(panel["workers"].astype(int).unique()))
        ax.grid(alpha=0.3)
    figure.suptitle(title)
    _legend(figure, axes)
    return _save(figure, output_path)


def memory_plot(data: pd.DataFrame, output_path: Path, title: str) -> list[Path]:
    """Peak RSS each worker adds over the same build's sequential, in MiB."""
    rows = data[(data["model"] != SEQUENTIAL) & data["extra_rss_per_worker_kb"].notna()]
    if rows.empty:
        raise NothingToPlot("No parallel cell has ok records with a sequential RSS to compare.")
    points = (
        rows.groupby(["python_label", "model_label", "workers"], observed=True)[
            "extra_rss_per_worker_kb"
        ]
        .median()
        .reset_index()
    )
    pythons = sorted(points["python_label"].astype(str).unique())
    worker_counts = sorted(points["workers"].astype(int).unique())
    colours = _colours([str(w) for w in worker_counts])
    figure, axes = _figure(len(pythons))
    width = 0.8 / len(worker_counts)
    for ax, python in zip(axes, pythons, strict=True):
        panel = points[points["python_label"] == python]
        models = sorted(panel["model_label"].astype(str).unique())
        for offset, workers in enumerate(worker_counts):
            values = [
                panel.loc[(panel["model_label"] == m) & (panel["workers"] == workers),
                          "extra_rss_per_worker_kb"].sum(min_count=1) / 1024
                for m in models
            ]  # fmt: skip
            ax.bar(np.arange(len(models)) + offset * width, values, width=width,
                   color=colours[str(workers)], label=_workers(workers))  # fmt: skip
        ax.set_xticks(np.arange(len(models)) + width * (len(worker_counts) - 1) / 2)
        ax.set_xticklabels(models, rotation=30, ha="right", fontsize="small")
        ax.set_title(python, fontsize="medium")
        ax.set_ylabel("extra peak RSS per worker, MiB")
        ax.grid(alpha=0.3, axis="y")
    figure.suptitle(title)
    _legend(figure, axes)
    return _save(figure, output_path)


# Short names so 7 flags fit on one tick label.
_FLAG_NAMES = {"use_main_obmalloc": "main_obmalloc", "check_multi_interp_extensions": "check_ext",
               "allow_daemon_threads": "daemon", "allow_threads": "threads",
               "allow_fork": "fork", "allow_exec": "exec"}


def _short_config(label: str) -> str:
    """'gil=own,use_main_obmalloc=false' -> 'gil=own main_obmalloc=F'."""
    parts = []
    for item in filter(None, label.split(",")):
        key, _, value = item.partition("=")
        value = {"true": "T", "false": "F"}.get(value, value)
        parts.append(f"{_FLAG_NAMES.get(key, key)}={value}" if value else key)
    return " ".join(parts) or label


def sweep_heatmap(data: pd.DataFrame, output_path: Path, title: str) -> list[Path]:
    """Status of each sub-interpreter config (rows) per python and workload (columns)."""
    return _save(sweep_figure(data, title), output_path)


def sweep_figure(data: pd.DataFrame, title: str) -> Figure:
    """The sweep heatmap's figure (kept apart so tests can read its labels)."""
    rows = data[data["model"] == "subinterpreters"]
    configs = sorted(rows["config_label"].astype(str).unique())
    if len(configs) < 2:
        raise NothingToPlot("The run sweeps no sub-interpreter config flags.")
    # Configs CPython's docs forbid are marked, so a crash there reads as the documented
    # rule broken, not as a mystery.
    rules = {str(c): str(r) for c, r in zip(rows["config_label"], rows["documented_invalid"],
                                             strict=True) if isinstance(r, str) and r}
    names = [("\u2021 " if c in rules else "") + _short_config(c) for c in configs]
    rows = rows.assign(
        column=rows["python_label"].astype(str) + "\n" + rows["workload_label"].astype(str)
    )
    columns = sorted(rows["column"].unique())
    statuses = list(STATUS_COLOURS)
    width = 2.0 + 0.075 * max(len(n) for n in names) + 1.6 * len(columns) + 2.2
    figure = Figure(figsize=(width, 1.2 + 0.3 * len(configs)), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    for y, config in enumerate(configs):
        for x, column in enumerate(columns):
            cell = rows[(rows["config_label"] == config) & (rows["column"] == column)]
            # across worker counts, the worst status is the finding
            status = max(cell["status"].astype(str), key=statuses.index) if len(cell) else None
            colour = STATUS_COLOURS[status] if status else NOT_RUN
            ax.add_patch(Rectangle((x, y), 1, 1, facecolor=colour, edgecolor="white", linewidth=2))
            ax.text(
                x + 0.5,
                y + 0.5,
                status or "not run",
                ha="center",
                va="center",
                fontsize="x-small",
                color="white" if status in ("crashed", "timeout") else "black",
            )
    ax.set_xlim(0, len(columns))
    ax.set_ylim(len(configs), 0)
    ax.set_xticks(np.arange(len(columns)) + 0.5)
    ax.set_xticklabels(columns, fontsize="small")
    ax.set_yticks(np.arange(len(configs)) + 0.5)
    ax.set_yticklabels(names, fontsize="small", family="monospace")
    ax.set_ylabel("subinterpreters config")
    ax.tick_params(length=0)
    ax.set_title(title)
    handles = [
        Patch(facecolor=colour, edgecolor="black", label=s) for s, colour in STATUS_COLOURS.items()
    ]
    figure.legend(handles=handles, loc="outside right upper", fontsize="small", title="status")
    if rules:
        ax.set_xlabel("\u2021 documented invalid: " + "; ".join(sorted(set(rules.values()))),
                      fontsize="small", wrap=True)
    return figure


# name (file stem) -> (plot function, title, what the plot shows, for the report's captions)
PLOTS: dict[str, tuple[PlotFunction, str, str]] = {
    "speedup": (speedup_plot, "Speedup vs workers",
                "Speedup over sequential on the same build; dotted line: ideal scaling."),
    "startup": (startup_plot, "Worker start-up cost",
                "Median time to create all workers until ready, across workloads."),
    "memory": (memory_plot, "Memory per worker",
               "Peak RSS each worker adds over the same build's sequential cell."),
    "sweep": (sweep_heatmap, "Sub-interpreter config sweep",
              "Outcome of each sub-interpreter config; the worst status across worker counts."),
}  # fmt: skip
