"""Plots a person reads at a glance: panels, series, the ideal line, and a check that no
plot is empty and no legend covers the data (on a crafted figure and on real reports)."""

from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gilbench.report import report_run
from gilbench.report.aggregate import summarize
from gilbench.report.load import load_run
from gilbench.report.plots import (
    FIGURES,
    MAX_SERIES,
    empty_panels,
    ideal_speedup,
    legend_overlaps,
    speedup_figure,
)  # fmt: skip

from .helpers import RUN_A, manifest, record, write_run

REAL_RUN = Path(__file__).resolve().parents[2] / "results" / "20261125T145112Z-707d"


def _crafted(legend_loc: str) -> Figure:
    figure = Figure(figsize=(5, 4))
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    x = np.linspace(0, 1, 50)
    ax.plot(x, 0.5 + 0.0 * x, marker="o", color="tab:blue", label="flat in the middle")
    ax.plot(x, x, color="tab:orange", label="diagonal")
    ax.set_ylim(0, 1)
    ax.set_title("crafted")
    ax.legend(loc=legend_loc)
    return figure


def test_a_legend_over_the_data_is_reported() -> None:
    assert legend_overlaps(_crafted("center")) == ["legend over crafted"]


def test_a_legend_clear_of_the_data_is_not() -> None:
    figure = _crafted("upper left")
    figure.axes[0].set_ylim(0, 3)  # room above the data for the legend
    figure.axes[0].set_xlim(0, 3)
    assert legend_overlaps(figure) == []


def test_an_empty_panel_is_reported() -> None:
    figure = Figure(figsize=(8, 4))
    FigureCanvasAgg(figure)
    full, empty = figure.subplots(1, 2)
    full.plot([1, 2, 3], [1, 2, 3], color="tab:green")
    full.set_title("full")
    empty.plot([1, 2, 3], [np.nan] * 3, color="tab:red")  # data that draws nothing
    empty.grid(True)
    empty.set_title("empty")
    assert empty_panels(figure) == ["empty"]


@pytest.mark.parametrize("run", [RUN_A, REAL_RUN], ids=["fixture", "real-2-core"])
def test_report_figures_are_not_empty_and_legends_cover_nothing(run: Path, tmp_path: Path) -> None:
    frame = summarize(load_run(run)).frame
    for name, (build, title, _) in FIGURES.items():
        figure = build(frame, title)
        assert legend_overlaps(figure) == [], name
        assert empty_panels(figure) == [], name


def test_report_pngs_have_coloured_data(tmp_path: Path) -> None:
    """The PNGs as written: each holds coloured pixels (lines, bars, heat-map cells)."""
    result = report_run(Path(shutil.copytree(RUN_A, tmp_path / RUN_A.name)))
    pngs = sorted((result.run_dir / "plots").glob("*.png"))
    assert [p.stem for p in pngs] == sorted(FIGURES)
    for png in pngs:
        pixels = (mpimg.imread(png)[..., :3] * 255).astype(int)
        chroma = pixels.max(axis=2) - pixels.min(axis=2)
        assert (chroma > 60).mean() > 0.005, png.name


def test_ideal_bends_at_the_usable_cores_on_cpu_work_only() -> None:
    workers = np.array([1, 2, 4, 8])
    assert ideal_speedup(workers, 2, core_bound=True).tolist() == [1, 2, 2, 2]
    assert ideal_speedup(workers, 2, core_bound=False).tolist() == [1, 2, 4, 8]
    assert ideal_speedup(workers, 0, core_bound=True).tolist() == [1, 2, 4, 8]  # unknown


def _speedup_lines(figure: Figure) -> dict[str, list[str]]:
    return {ax.get_title(): ax.get_legend_handles_labels()[1]
            for ax in figure.axes if ax.get_visible()}  # fmt: skip


def test_speedup_panels_per_python_without_startup_and_at_most_six_series(
    tmp_path: Path,
) -> None:
    records = [record("sequential", 1, i, 1.0) for i in range(3)]
    configs = [{"gil": "own", "allow_threads": v, "allow_fork": f}
               for v in (True, False) for f in (True, False)]  # fmt: skip
    configs += [{"gil": "shared", "allow_threads": v} for v in (True, False)]
    for n, config in enumerate(configs):
        records += [record("subinterpreters", 2, i, 0.5 + n / 100, model_config=config,
                           cell_id=f"c-sub-{n}") for i in range(3)]
    records += [record(m, 2, i, 0.9, model_config=c, cell_id=f"c-{m}-{k}")
                for k, (m, c) in enumerate([("threads", {}),
                                            ("processes", {"start_method": "fork"}),
                                            ("processes", {"start_method": "spawn"})])
                for i in range(3)]  # fmt: skip
    startup = {"workload": "startup", "workload_params": {"tasks": 8}}
    records += [record(m, w, i, 1e-4, cell_id=f"s-{m}", **startup)
                for m, w in (("sequential", 1), ("threads", 2)) for i in range(3)]
    frame = summarize(load_run(write_run(tmp_path / "r", manifest(), records))).frame
    lines = _speedup_lines(speedup_figure(frame, "t"))
    assert list(lines) == ["fib(n=24,tasks=8) on 3.13.0"]  # no panel for startup
    [labels] = lines.values()
    assert labels[0] == "ideal: min(workers, 2 cores)"
    models = labels[1:]
    assert len(models) == MAX_SERIES
    # the sweep lost its slowest configs; both start methods and threads stay
    assert {"threads", "processes(start_method=fork)",
            "processes(start_method=spawn)"} <= set(models)  # fmt: skip
    assert "subinterpreters(allow_fork=true,allow_threads=true,gil=own)" in models


def test_throughput_shows_each_build() -> None:
    """Fixture A's free-threaded sequential fib runs at 0.57x the GIL build's: visible here."""
    frame = summarize(load_run(RUN_A)).frame
    figure = FIGURES["throughput"][0](frame, "t")
    [ax] = [a for a in figure.axes if a.get_title().startswith("fib")]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0] == "sequential"  # the baseline each build's parallel bars stand on
    heights = [bar.get_height() for bar in ax.patches]  # all of 3.13.5-ft, then 3.13.5-pgo
    ft_sequential, pgo_sequential = heights[0], heights[len(labels)]
    assert 0.5 < ft_sequential / pgo_sequential < 0.65
