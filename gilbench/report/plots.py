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
from typing import Any

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
# Fonts a reader can read when the PNG is shown at its own size (100 dpi): 11 pt text.
READABLE: dict[Any, Any] = {"font.size": 11, "axes.titlesize": 12, "legend.fontsize": 10,
            "xtick.labelsize": 10, "ytick.labelsize": 10}
# A panel with more lines than this is a tangle; see _readable_series.
MAX_SERIES = 6


Colour = tuple[float, float, float, float]  # RGBA, as colormaps give them


def _colours(labels: list[str]) -> dict[str, Colour]:
    cmap = colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: cmap(i % cmap.N) for i, label in enumerate(sorted(labels))}


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
        _shrink_png(paths[0])
        # no date and a fixed id salt keep the SVG byte-stable between regenerations
        with rc_context({"svg.hashsalt": "gilbench"}):
            figure.savefig(paths[1], metadata={"Date": None}, bbox_inches="tight")
    return paths


def _shrink_png(path: Path) -> None:
    """Rewrite a PNG with a palette of at most 256 colours: a third of the size or less,
    which the reference run's plots, committed so report.md shows them in a clone, need.
    Flat colours (series, bars, status cells) keep their exact values; only anti-aliased
    edges round to the nearest palette entry. Pillow is matplotlib's own PNG writer."""
    from PIL import Image

    with Image.open(path) as image:
        rgb = image.convert("RGB")
    rgb.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        path, optimize=True)


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


def _startup_rows(rows: pd.DataFrame) -> pd.Series:
    return rows["workload"].astype("string").map(is_startup).astype(bool)


def _not_startup(rows: pd.DataFrame) -> pd.DataFrame:
    """The startup workload's tasks are trivial: its speed and throughput mean nothing."""
    return rows[~_startup_rows(rows)]


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


IDEAL_LABEL = "ideal: speedup = workers"


def ceiling_label(cores: int) -> str:
    return f"ceiling: {cores} usable cores (CPU-bound work)"


def _ideal_lines(ax: Axes, steps: np.ndarray, cores: int, core_bound: bool) -> None:
    """Two reference lines in two styles, each with its legend entry: linear scaling
    (dotted), and, on CPU-bound panels, the usable cores that cap it (dash-dot, level)."""
    ax.plot(steps, steps.astype(float), color="black", linewidth=1.0, linestyle=":",
            label=IDEAL_LABEL)
    if core_bound and cores > 0 and steps.max() > cores:
        ax.axhline(cores, color="dimgray", linewidth=1.3, linestyle="-.",
                   label=ceiling_label(cores))


IMPLAUSIBLE = "implausible, left out (its row's note says why)"


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
        _ideal_lines(ax, steps, cores, cpu_bound(panel["workload"].iloc[0]))
        ax.axhline(1.0, color="grey", linewidth=0.6)
        for model, line in panel.groupby("model_label", observed=True, sort=True):
            line = line.sort_values("workers")
            errors = np.vstack([
                (line["speedup"] - line["speedup_ci_low"]).clip(lower=0),
                (line["speedup_ci_high"] - line["speedup"]).clip(lower=0),
            ])  # fmt: skip
            ax.errorbar(line["workers"].astype(float), line["speedup"], yerr=errors,
                        marker="o", capsize=3, color=colours[str(model)], label=str(model))
            flagged = line[line["artefact"].fillna("").astype(str) != ""]
            if len(flagged):  # physics first: never a point that reads as a finding
                ax.scatter(flagged["workers"].astype(float), flagged["speedup"], marker="X",
                           s=120, color="red", zorder=5, label=IMPLAUSIBLE)
        ax.set_title(f"{workload} on {python}", fontsize="medium")
        ax.set_xlabel("workers")
        ax.set_ylabel("speedup over sequential (same build)")
        ax.set_xticks(ticks)
        ax.grid(alpha=0.3)
    figure.suptitle(title)
    _legend(figure, axes)
    return figure


def _bar_groups(ax: Axes, models: list[str], series: list[tuple[str, Colour, list[float]]],
                title: str, xlabel: str) -> None:
    """Horizontal bars, one group per model (top to bottom), one bar per (label, colour,
    values) series: model names read level at full size, however long."""
    height = 0.8 / len(series)
    positions = np.arange(len(models))
    for offset, (label, colour, values) in enumerate(series):
        ax.barh(positions + offset * height, values, height=height, color=colour, label=label)
    ax.set_yticks(positions + height * (len(series) - 1) / 2)
    ax.set_yticklabels(models)
    ax.tick_params(labelsize=READABLE["ytick.labelsize"])  # ticks are made at draw time
    ax.invert_yaxis()  # the first model on top
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3, axis="x")


def _bar_figure(panels: int, bars: int) -> tuple[Figure, list[Axes]]:
    """Panels of horizontal bars stacked in one column, each as tall as its bars need, at a
    width shown unscaled in the HTML page (about 1000 px at the saved 100 dpi)."""
    height = 1.0 + 0.22 * bars
    with rc_context(READABLE):
        figure = Figure(figsize=(10.0, height * panels + 0.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(panels, 1, squeeze=False).ravel().tolist()
    return figure, axes


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
    panels = {w: _readable_series(rows[rows["workload_label"] == w], "throughput_median")
              for w in workloads}
    most = max(p["model_label"].nunique() for p in panels.values())
    with rc_context(READABLE):
        figure, axes = _bar_figure(len(workloads), most * len(pythons))
        for ax, workload in zip(axes, workloads, strict=True):
            panel = panels[workload]
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


MEMORY_LABEL = "+MiB per worker"
OLD_MEMORY_LABEL = "+MiB per worker (peak RSS, old runs)"


def memory_per_worker(data: pd.DataFrame) -> tuple[pd.Series, str]:
    """(MiB each added worker costs, per row; its label): `mib_per_worker` (the slope of the
    run's total memory over worker counts, aggregate.MEMORY_METHOD) where the summary has
    it, else the extra peak RSS per worker that runs recorded before totals existed."""
    if "mib_per_worker" in data:
        values = pd.to_numeric(data["mib_per_worker"], errors="coerce").astype("float64")
        if values.notna().any():
            return values, MEMORY_LABEL
    old = pd.to_numeric(data["extra_rss_per_worker_kb"], errors="coerce").astype("float64")
    return old / 1024, OLD_MEMORY_LABEL


def memory_figure(data: pd.DataFrame, title: str) -> Figure:
    """MiB each added worker costs per model config, one bar per python (the median over
    workloads and worker counts, which share one slope)."""
    values, label = memory_per_worker(data)
    rows = data.assign(mib=values)
    rows = rows[(rows["model"] != SEQUENTIAL) & rows["mib"].notna()]
    if rows.empty:
        raise NothingToPlot("No parallel cell has ok records with a memory figure.")
    points = rows.groupby(["model_label", "python_label"], observed=True)["mib"].median()
    pythons = sorted(rows["python_label"].astype(str).unique())
    models = sorted(rows["model_label"].astype(str).unique())
    colours = _colours(pythons)
    with rc_context(READABLE):
        figure, [ax] = _bar_figure(1, len(models) * len(pythons))
        _bar_groups(ax, models, [
            (python, colours[python], [points.get((m, python), np.nan) for m in models])
            for python in pythons
        ], "", label)
        ax.axvline(0, color="black", linewidth=0.6)
        figure.suptitle(title)
        _legend(figure, [ax])
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


def _sweep_cell(cell: pd.DataFrame) -> tuple[str, float, str]:
    """(status, best speedup, text) of one config on one python and workload: the worst
    status across worker counts is the finding; when every one finished ok, the best
    speedup and its worker count."""
    status = max(cell["status"].astype(str), key=list(STATUS_COLOURS).index)
    if status != "ok":
        # summary rows (a worker count each), or records where a caller passes those
        done = (cell["n_ok"] < cell["n_records"]) if "n_ok" in cell else cell["status"] != "ok"
        return status, math.nan, f"{status}\n{int(done.sum())} of {len(cell)}"
    if "speedup" not in cell:
        return status, math.nan, "ok"
    speedups = cell[cell["speedup"].notna()]
    if speedups.empty:
        return status, math.nan, "ok"
    best = speedups.sort_values("speedup", ascending=False).iloc[0]
    return status, float(best["speedup"]), f"{best['speedup']:.2f}x\n{int(best['workers'])} w"


def sweep_figure(data: pd.DataFrame, title: str) -> Figure:
    """What differs between sub-interpreter configs (rows) per python and workload
    (columns): a cell that did not finish ok shows its worst status in that status's
    colour; one that did shows its best speedup, shaded by it. The startup workload, whose
    speedup means nothing, gets a column only when something in it failed."""
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
    startup = _startup_rows(rows) & (rows["status"].astype(str) == "ok")
    columns = sorted(set(rows.loc[~startup, "column"]))
    cells = {(config, column): _sweep_cell(cell) for (config, column), cell
             in rows.groupby(["config_label", "column"], observed=True)}
    top = max([s for _, s, _ in cells.values() if not math.isnan(s)], default=1.0)
    shade = colormaps["Blues"]
    with rc_context(READABLE):
        width = 2.5 + 0.085 * max(len(n) for n in names) + 1.5 * len(columns)
        figure = Figure(figsize=(min(width, 16.0), 1.8 + 0.45 * len(configs)),
                        layout="constrained")
        FigureCanvasAgg(figure)
        ax = figure.subplots()
        shown: set[str] = set()
        for y, config in enumerate(configs):
            for x, column in enumerate(columns):
                status, speedup, text = cells.get((config, column), ("", math.nan, "not run"))
                if status and status != "ok":
                    colour: Colour | str = STATUS_COLOURS[status]
                    shown.add(status)
                elif math.isnan(speedup):
                    colour = NOT_RUN
                else:
                    colour = shade(0.15 + 0.7 * speedup / top)
                ax.add_patch(Rectangle((x, y), 1, 1, facecolor=colour, edgecolor="white",
                                       linewidth=2))
                dark = (status in ("crashed", "timeout")
                        or (status == "ok" and not math.isnan(speedup) and speedup / top > 0.6))
                ax.text(x + 0.5, y + 0.5, text, ha="center", va="center", fontsize=9,
                        color="white" if dark else "black")
        ax.set_xlim(0, max(len(columns), 1))
        ax.set_ylim(len(configs), 0)
        ax.set_xticks(np.arange(len(columns)) + 0.5)
        ax.set_xticklabels(columns)
        ax.set_yticks(np.arange(len(configs)) + 0.5)
        ax.set_yticklabels(names, family="monospace")
        ax.tick_params(length=0, labelsize=READABLE["xtick.labelsize"])
        ax.set_ylabel("subinterpreters config")
        ax.set_title(title)
        handles = [Patch(facecolor=shade(0.6), edgecolor="black",
                         label=f"ok: best speedup, darker is faster (up to {top:.2f}x)")]
        handles += [Patch(facecolor=STATUS_COLOURS[s], edgecolor="black", label=s)
                    for s in STATUS_COLOURS if s in shown]
        figure.legend(handles=handles, loc="outside lower center", ncols=len(handles))
        if rules:
            ax.set_xlabel("\u2021 documented invalid: " + "; ".join(sorted(set(rules.values()))),
                          fontsize="small", wrap=True)
    return figure


# name (file stem) -> (figure function, title, what the plot shows, for the captions)
FIGURES: dict[str, tuple[FigureFunction, str, str]] = {
    "speedup": (speedup_figure, "Speedup vs workers",
                "Speedup over sequential on the same build, with 95% CI whiskers, per workload "
                "and python. Dotted black: ideal scaling, speedup = workers; dash-dot grey: "
                "the ceiling the usable cores put on CPU-bound workloads. At most six configs "
                "a panel (a flag sweep keeps its best; the sweep plot shows every config)."),
    "throughput": (throughput_figure, "Throughput across builds",
                   "Absolute tasks/s per model at its best worker count, one bar per python: "
                   "a build whose sequential runs slower shows here, not in speedups."),
    "startup": (startup_figure, "Worker start-up cost",
                "Median time to create all workers until ready, across workloads."),
    "memory": (memory_figure, "Memory per worker",
               "MiB each added worker costs per model config (median across workloads), "
               "one bar per python; how it is measured is under Baselines."),
    "sweep": (sweep_figure, "Sub-interpreter config sweep",
              "Each sub-interpreter config per python and workload: its best speedup over "
              "sequential (darker is faster) when every worker count finished ok, else its "
              "worst status and how many worker counts did not finish ok."),
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
