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
from matplotlib.collections import Collection
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.transforms import Bbox

from gilbench.report.aggregate import SEQUENTIAL, cpu_bound
from gilbench.report.decision import is_startup
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
FigureFunction = Callable[[pd.DataFrame, str], Figure]
# A panel with more lines than this is a tangle; see _readable_series.
MAX_SERIES = 6


Colour = tuple[float, float, float, float]  # RGBA, as colormaps give them


def _colours(labels: list[str]) -> dict[str, Colour]:
    cmap = colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: cmap(i % cmap.N) for i, label in enumerate(sorted(labels))}


def _workers(count: int) -> str:
    return f"{count} worker" if count == 1 else f"{count} workers"


def _figure(panels: int, height: float = 4.0, columns: int = 3) -> tuple[Figure, list[Axes]]:
    columns = max(1, min(panels, columns))
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


def _saved(build: FigureFunction) -> PlotFunction:
    """The `(data, output_path, title) -> paths` form of a figure function."""
    def plot(data: pd.DataFrame, output_path: Path, title: str) -> list[Path]:
        return _save(build(data, title), output_path)

    plot.__doc__ = build.__doc__
    return plot


def _not_startup(rows: pd.DataFrame) -> pd.DataFrame:
    """The startup workload's tasks are trivial: its speed and throughput mean nothing."""
    return rows[~rows["workload"].astype("string").map(is_startup).astype(bool)]


def _readable_series(panel: pd.DataFrame, value: str) -> pd.DataFrame:
    """At most MAX_SERIES model configs: while there are more, the model with the most
    configs (a flag sweep) loses its config with the lowest peak `value`. The choices a
    reader weighs (fork vs spawn, own vs shared GIL) survive; the sweep plot and the
    Results tables still carry every config."""
    peaks = panel.groupby(["model", "model_label"], observed=True)[value].max().reset_index()
    while len(peaks) > MAX_SERIES:
        counts = peaks["model"].value_counts()
        if counts.max() < 2:
            break
        model = counts.idxmax()
        worst = peaks[peaks["model"] == model].sort_values(value).index[0]
        peaks = peaks.drop(index=worst)
    return panel[panel["model_label"].isin(set(peaks["model_label"]))]


def ideal_speedup(workers: np.ndarray, cores: int, core_bound: bool) -> np.ndarray:
    """Linear scaling, bent at the cores the cells could use when each worker needs a core
    (workers that wait, as on I/O, can outnumber the cores)."""
    ideal = workers.astype(float)
    return np.minimum(ideal, cores) if core_bound and cores > 0 else ideal


def speedup_figure(data: pd.DataFrame, title: str) -> Figure:
    """Speedup over the same build's sequential vs workers with CI whiskers: one panel per
    workload (rows) and python (columns), the startup workload left out."""
    rows = data[(data["model"] != SEQUENTIAL) & data["speedup"].notna()]
    rows = _not_startup(rows[rows["documented_invalid"].fillna("").astype(str) == ""])
    if rows.empty:
        raise NothingToPlot("No workload has both sequential and parallel ok records.")
    workloads = sorted(rows["workload_label"].astype(str).unique())
    pythons = sorted(rows["python_label"].astype(str).unique())
    colours = _colours(list(rows["model_label"].astype(str).unique()))
    panels = [(w, p) for w in workloads for p in pythons]
    figure, axes = _figure(len(panels), columns=len(pythons) if len(pythons) <= 3 else 3)
    for ax, (workload, python) in zip(axes, panels, strict=True):
        panel = rows[(rows["workload_label"] == workload) & (rows["python_label"] == python)]
        if panel.empty:
            ax.set_visible(False)
            continue
        panel = _readable_series(panel, "speedup")
        ticks = np.array(sorted(panel["workers"].astype(int).unique()))
        steps = np.arange(1, max(int(ticks.max()), 2) + 1)
        cores = int(panel["cores"].max()) if "cores" in panel else 0
        bound = cpu_bound(panel["workload"].iloc[0])
        label = f"ideal: min(workers, {cores} cores)" if bound and cores else "ideal: workers"
        ax.plot(steps, ideal_speedup(steps, cores, bound), color="black", linewidth=0.8,
                linestyle=":", label=label)
        ax.axhline(1.0, color="grey", linewidth=0.6)
        for model, line in panel.groupby("model_label", observed=True, sort=True):
            line = line.sort_values("workers")
            errors = np.vstack([
                (line["speedup"] - line["speedup_ci_low"]).clip(lower=0),
                (line["speedup_ci_high"] - line["speedup"]).clip(lower=0),
            ])  # fmt: skip
            ax.errorbar(line["workers"].astype(float), line["speedup"], yerr=errors,
                        marker="o", capsize=3, color=colours[str(model)], label=str(model))
        ax.set_title(f"{workload} on {python}", fontsize="medium")
        ax.set_xlabel("workers")
        ax.set_ylabel("speedup over sequential (same build)")
        ax.set_xticks(ticks)
        ax.grid(alpha=0.3)
    figure.suptitle(title)
    _legend(figure, axes)
    return figure


def _bar_groups(ax: Axes, models: list[str], series: list[tuple[str, Colour, list[float]]],
                title: str, ylabel: str) -> None:
    """One group of bars per model, one bar per (label, colour, values) series."""
    width = 0.8 / len(series)
    for offset, (label, colour, values) in enumerate(series):
        ax.bar(np.arange(len(models)) + offset * width, values, width=width, color=colour,
               label=label)
    ax.set_xticks(np.arange(len(models)) + width * (len(series) - 1) / 2)
    ax.set_xticklabels(models, rotation=30, ha="right", fontsize="small")
    ax.set_title(title, fontsize="medium")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")


def throughput_figure(data: pd.DataFrame, title: str) -> Figure:
    """Absolute tasks/s per model (its best worker count) and python, one panel per
    workload: a free-threaded build's slower sequential shows, which speedups hide."""
    rows = data[data["throughput_median"].notna()]
    rows = _not_startup(rows[rows["documented_invalid"].fillna("").astype(str) == ""])
    if rows.empty:
        raise NothingToPlot("No cell has ok records with a throughput.")
    workloads = sorted(rows["workload_label"].astype(str).unique())
    pythons = sorted(rows["python_label"].astype(str).unique())
    colours = _colours(pythons)
    figure, axes = _figure(len(workloads))
    for ax, workload in zip(axes, workloads, strict=True):
        panel = _readable_series(rows[rows["workload_label"] == workload], "throughput_median")
        best = panel.groupby(["model_label", "python_label"], observed=True)[
            "throughput_median"].max()
        models = sorted(panel["model_label"].astype(str).unique(),
                        key=lambda m: (m != SEQUENTIAL, m))
        _bar_groups(ax, models, [
            (python, colours[python], [best.get((m, python), np.nan) for m in models])
            for python in pythons
        ], workload, "tasks/s (median, best worker count)")
    figure.suptitle(title)
    _legend(figure, axes)
    return figure


def startup_figure(data: pd.DataFrame, title: str) -> Figure:
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
    return figure


def memory_figure(data: pd.DataFrame, title: str) -> Figure:
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
    for ax, python in zip(axes, pythons, strict=True):
        panel = points[points["python_label"] == python]
        models = sorted(panel["model_label"].astype(str).unique())
        _bar_groups(ax, models, [
            (_workers(workers), colours[str(workers)], [
                panel.loc[(panel["model_label"] == m) & (panel["workers"] == workers),
                          "extra_rss_per_worker_kb"].sum(min_count=1) / 1024
                for m in models
            ]) for workers in worker_counts
        ], python, "extra peak RSS per worker, MiB")
    figure.suptitle(title)
    _legend(figure, axes)
    return figure


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


def sweep_figure(data: pd.DataFrame, title: str) -> Figure:
    """Status of each sub-interpreter config (rows) per python and workload (columns)."""
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


# name (file stem) -> (figure function, title, what the plot shows, for the captions)
FIGURES: dict[str, tuple[FigureFunction, str, str]] = {
    "speedup": (speedup_figure, "Speedup vs workers",
                "Speedup over sequential on the same build, with 95% CI whiskers, per workload "
                "and python; dotted line: ideal scaling, flat from the cores the cells could "
                "use on CPU-bound workloads. At most six configs a panel (a flag sweep keeps "
                "its best; the sweep plot shows every config)."),
    "throughput": (throughput_figure, "Throughput across builds",
                   "Absolute tasks/s per model at its best worker count, one bar per python: "
                   "a build whose sequential runs slower shows here, not in speedups."),
    "startup": (startup_figure, "Worker start-up cost",
                "Median time to create all workers until ready, across workloads."),
    "memory": (memory_figure, "Memory per worker",
               "Peak RSS each worker adds over the same build's sequential cell."),
    "sweep": (sweep_figure, "Sub-interpreter config sweep",
              "Outcome of each sub-interpreter config; the worst status across worker counts."),
}  # fmt: skip

# name -> (plot function, title, caption): what report_run draws.
PLOTS: dict[str, tuple[PlotFunction, str, str]] = {
    name: (_saved(build), title, caption) for name, (build, title, caption) in FIGURES.items()
}


def _data_extents(ax: Axes) -> list[Bbox]:
    """Display-space boxes of what an axes plots: each marker or vertex of a line (a tiny
    box), each bar or cell, each point of a collection (error bars, scatter)."""
    boxes: list[Bbox] = []
    for line in ax.get_lines():
        if not line.get_visible():
            continue
        xy = line.get_transform().transform(np.column_stack(line.get_data()).astype(float))
        boxes += [Bbox.from_extents(x - 1, y - 1, x + 1, y + 1)
                  for x, y in xy if np.isfinite(x) and np.isfinite(y)]
    for patch in ax.patches:
        if patch.get_visible():
            boxes.append(patch.get_window_extent())
    for collection in ax.collections:
        if not isinstance(collection, Collection) or not collection.get_visible():
            continue
        for path in collection.get_paths():
            vertices = collection.get_transform().transform(path.vertices)
            boxes += [Bbox.from_extents(x - 1, y - 1, x + 1, y + 1)
                      for x, y in vertices if np.isfinite(x) and np.isfinite(y)]
    return boxes


def legend_overlaps(figure: Figure) -> list[str]:
    """Where a legend covers plotted data: "legend over <panel title>" per panel whose
    lines, markers, bars or error bars fall inside a legend's box. Empty when none does."""
    figure.canvas.draw()  # lay the figure out; extents are only final after a draw
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    legends = list(figure.legends)
    legends += [legend for ax in figure.axes if (legend := ax.get_legend()) is not None]
    found = []
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in figure.axes:
            if ax.get_visible() and any(box.overlaps(b) for b in _data_extents(ax)):
                found.append(f"legend over {ax.get_title() or 'an untitled panel'}")
    return found


def empty_panels(figure: Figure, min_fraction: float = 0.002) -> list[str]:
    """Visible panels with (almost) no coloured pixels: grid, ideal line and frame are grey
    or black, so a panel whose data did not draw has none. Returns their titles."""
    figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3].astype(int)  # type: ignore[attr-defined]
    height = pixels.shape[0]
    empty = []
    for ax in figure.axes:
        if not ax.get_visible() or not ax.has_data():
            continue
        box = ax.get_window_extent()
        # display y grows upwards, image rows downwards
        top, bottom = int(height - box.y1), int(height - box.y0)
        region = pixels[max(top, 0):bottom, max(int(box.x0), 0):int(box.x1)]
        chroma = region.max(axis=2) - region.min(axis=2)
        if not region.size or (chroma > 60).mean() < min_fraction:
            empty.append(ax.get_title() or "an untitled panel")
    return empty
