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
    IDEAL_LABEL,
    MAX_SERIES,
    ceiling_label,
    empty_panels,
    legend_overlaps,
    speedup_figure,
    sweep_figure,
    throughput_figure,
)  # fmt: skip

from .helpers import RUN_A, manifest, record, write_run

REAL_RUN = Path(__file__).resolve().parents[2] / "results" / "20261207T211359Z-5014"


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


def _lines(figure: Figure, title: str) -> dict[str, tuple[str, str]]:
    """label -> (linestyle, colour) of the lines of the panel called `title`."""
    [ax] = [a for a in figure.axes if a.get_title() == title]
    return {str(line.get_label()): (str(line.get_linestyle()), str(line.get_color()))
            for line in ax.get_lines()}  # fmt: skip


def test_ideal_and_core_ceiling_are_two_styles_with_a_legend_entry_each() -> None:
    """The reference run went to 4 workers on 2 cores: CPU-bound panels show linear scaling
    and the 2-core ceiling in two styles; I/O panels, where waiting workers outnumber the
    cores, only the linear one."""
    frame = summarize(load_run(REAL_RUN)).frame
    figure = speedup_figure(frame, "t")
    cpu = _lines(figure, "fib(n=27,tasks=8) on 3.13.5-pgo")
    assert cpu[IDEAL_LABEL][0] == ":"
    assert cpu[ceiling_label(2)][0] == "-."
    assert cpu[IDEAL_LABEL] != cpu[ceiling_label(2)]
    io = next(t for t in (a.get_title() for a in figure.axes) if t.startswith("io("))
    assert ceiling_label(2) not in _lines(figure, io) and IDEAL_LABEL in _lines(figure, io)
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert IDEAL_LABEL in legend and ceiling_label(2) in legend


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
    assert labels[0] == IDEAL_LABEL  # one worker count (2) on 2 cores: no ceiling to show
    models = labels[1:]
    assert len(models) == MAX_SERIES
    # the sweep lost its slowest configs; both start methods and threads stay
    assert {"threads", "processes(start_method=fork)",
            "processes(start_method=spawn)"} <= set(models)  # fmt: skip
    assert "subinterpreters(allow_fork=true,allow_threads=true,gil=own)" in models


def test_throughput_shows_each_build() -> None:
    """Fixture A's free-threaded sequential fib runs at 0.57x the GIL build's: visible here."""
    frame = summarize(load_run(RUN_A)).frame
    figure = throughput_figure(frame, "t")
    [ax] = [a for a in figure.axes if a.get_title().startswith("fib")]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "sequential"  # the baseline each build's parallel bars stand on
    widths = [bar.get_width() for bar in ax.patches]  # all of 3.13.5-ft, then 3.13.5-pgo
    ft_sequential, pgo_sequential = widths[0], widths[len(labels)]
    assert 0.5 < ft_sequential / pgo_sequential < 0.65


@pytest.mark.parametrize("run", [RUN_A, REAL_RUN], ids=["fixture", "real-2-core"])
def test_bar_plots_are_legible_at_their_own_size(run: Path) -> None:
    """Shown at most 1168 px wide in the HTML page (100 dpi), so not scaled down: model
    names level, at 10 pt or more."""
    frame = summarize(load_run(run)).frame
    for build in (throughput_figure, FIGURES["memory"][0]):
        figure = build(frame, "t")
        assert figure.get_figwidth() * 100 <= 1168  # the page at a 1200 px window
        for ax in figure.axes:
            for label in ax.get_yticklabels():
                assert label.get_fontsize() >= 10 and label.get_rotation() == 0


def test_sweep_shows_what_differs_between_configs() -> None:
    """Configs that finished ok show their best speedup (they differ: own GIL scales,
    shared does not), failures their status; startup columns only where one failed."""
    frame = summarize(load_run(REAL_RUN)).frame
    figure = sweep_figure(frame, "t")
    [ax] = figure.axes
    texts = [t.get_text() for t in ax.texts]
    assert all(t.endswith(" w") for t in texts)  # every cell ok here: speedups, no "ok"
    speedups = {float(t.split("x")[0]) for t in texts}
    assert min(speedups) < 1.1 and max(speedups) > 1.9  # gil=shared vs gil=own on the GIL build
    columns = [t.get_text() for t in ax.get_xticklabels()]
    assert columns and not any("startup" in c for c in columns)
    fixture = sweep_figure(summarize(load_run(RUN_A)).frame, "t")
    assert any(t.get_text().startswith("crashed") for t in fixture.axes[0].texts)


def test_memory_uses_mib_per_worker_and_falls_back_for_old_runs() -> None:
    frame = summarize(load_run(RUN_A)).frame
    old = frame.drop(columns=["mib_per_worker"], errors="ignore")
    figure = FIGURES["memory"][0](old, "t")
    assert figure.axes[0].get_xlabel() == "+MiB per worker (peak RSS, old runs)"
    new = frame.assign(mib_per_worker=[3.0 if m != "sequential" else float("nan")
                                       for m in frame["model"]])
    figure = FIGURES["memory"][0](new, "t")
    assert figure.axes[0].get_xlabel() == "+MiB per worker"
    assert {round(bar.get_width(), 6) for bar in figure.axes[0].patches
            if bar.get_width() == bar.get_width()} == {3.0}
