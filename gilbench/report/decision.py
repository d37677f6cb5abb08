"""The decision a reader came for: per workload and python, which model wins at each worker
count, whether the runner-up is really behind, what each model costs to start, and from
what job size on it pays off.

Break-even model (the report states the same in one paragraph, BREAK_EVEN_RULE): a job of
W seconds of sequential work takes s + W/S on a model whose workers cost s seconds to start
and stop (created until ready, plus teardown where measured) and whose steady-state speedup
is S (sequential's median wall time over the model's). Sequential takes W, so the model
beats it when W > s / (1 - 1/S), which needs S > 1; it beats threads (s_t, S_t) when
s + W/S < s_t + W/S_t. Assumed: the measured speedup holds at every job size (the work
divides evenly, nothing else changes with W) and start-up does not depend on the job.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from experiments import catalog
from gilbench.report import stats
from gilbench.report.aggregate import GROUP_KEYS, SEQUENTIAL, Summary

THREADS = "threads"
# Significance of winner vs runner-up, as `invoke compare` judges two cells.
ALPHA = 0.05

BREAK_EVEN_RULE = (
    "Break-even: a job of W seconds of sequential work takes s + W/S on a model whose "
    "workers cost s seconds to start and stop (the startup workload's start-up plus "
    "teardown where the run has it, else the cell's own) and whose steady-state speedup is "
    "S. It beats sequential when W > s / (1 - 1/S), so only when S > 1 (otherwise never), "
    "and beats threads (s_t, S_t) when s + W/S < s_t + W/S_t. Each model is taken at the "
    "worker count that makes its break-even smallest. This assumes the measured speedup "
    "holds at every job size and start-up does not depend on the job: read it as an order "
    "of magnitude, not a promise."
)


@dataclass(frozen=True)
class BreakEven:
    """For which job sizes (seconds of sequential work) a model beats a reference.

    kind: "always" (any job), "above" (jobs longer than `seconds`), "below" (only jobs
    shorter than `seconds`: it starts faster but runs slower), "unclear" (the two speedups'
    CIs overlap, so the measured difference may be noise), "never", or "unknown" (a cost
    or speedup is missing)."""

    kind: str
    seconds: float = math.nan

    def text(self) -> str:
        if self.kind == "above":
            return f"above {duration(self.seconds)}"
        if self.kind == "below":
            return f"only below {duration(self.seconds)}"
        return {"always": "always", "never": "never",
                "unclear": "no clear difference"}.get(self.kind, "-")


def duration(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def break_even(
    startup_s: float, speedup: float, ref_startup_s: float = 0.0, ref_speedup: float = 1.0
) -> BreakEven:
    """When s + W/S < s_r + W/S_r, i.e. (1/S - 1/S_r) * W < s_r - s. The default reference
    is sequential (no start-up, speedup 1)."""
    values = (startup_s, speedup, ref_startup_s, ref_speedup)
    if any(not math.isfinite(v) for v in values) or speedup <= 0 or ref_speedup <= 0:
        return BreakEven("unknown")
    slope = 1 / speedup - 1 / ref_speedup  # seconds more than the reference per second of work
    head_start = ref_startup_s - startup_s  # seconds the model saves before work begins
    if slope < 0:  # faster per unit of work: wins once the work repays the start-up gap
        threshold = head_start / slope
        return BreakEven("always") if threshold <= 0 else BreakEven("above", threshold)
    if slope > 0:  # slower per unit of work: wins only while its head start lasts
        return BreakEven("below", head_start / slope) if head_start > 0 else BreakEven("never")
    return BreakEven("always") if head_start > 0 else BreakEven("never")


_RANK = {"always": 0, "above": 1, "below": 2, "unclear": 3, "never": 4, "unknown": 5}


def _favour(option: BreakEven) -> tuple[int, float]:
    seconds = {"above": option.seconds, "below": -option.seconds}.get(option.kind, 0.0)
    return _RANK[option.kind], seconds


def best_break_even(options: Iterable[BreakEven]) -> BreakEven:
    """The most favourable of several choices (e.g. worker counts): any "always" wins, then
    the smallest "above", then the largest "below"."""
    return min(options, key=_favour, default=BreakEven("unknown"))


def clear_break_even(cell: pd.Series, startup_s: float, reference: pd.Series | None,
                     ref_startup_s: float = 0.0) -> BreakEven:
    """break_even() against sequential (reference None) or another group, "unclear" when
    the two speedups' 95% CIs overlap (sequential's is exactly 1)."""
    low, high = float(cell["speedup_ci_low"]), float(cell["speedup_ci_high"])
    ref_low, ref_high, ref_speedup = 1.0, 1.0, 1.0
    if reference is not None:
        ref_low, ref_high = float(reference["speedup_ci_low"]), float(reference["speedup_ci_high"])
        ref_speedup = float(reference["speedup"])
    if low <= ref_high and ref_low <= high:
        return BreakEven("unclear")
    return break_even(startup_s, float(cell["speedup"]), ref_startup_s, ref_speedup)


def is_startup(workload: object) -> bool:
    """Workloads whose point is the cost of workers: their speedup means nothing."""
    return catalog.workload_kind(str(workload)) == "startup"


def _cost(row: pd.Series) -> float:
    teardown = row["teardown_median_s"]
    return float(row["startup_median_s"]) + (0.0 if pd.isna(teardown) else float(teardown))


def startup_costs(table: pd.DataFrame) -> dict[tuple[str, str, str, int], float]:
    """(python, model, model_config, workers) -> start-up + teardown seconds measured by the
    startup workload (trivial tasks, so nothing but the workers' cost)."""
    rows = table[table["workload"].astype("string").map(is_startup).astype(bool)
                 & table["startup_median_s"].notna()]
    return {(str(r["python"]), str(r["model"]), str(r["model_config"]), int(r["workers"])):
            _cost(r) for _, r in rows.iterrows()}  # fmt: skip


def candidates(table: pd.DataFrame) -> pd.DataFrame:
    """Groups that may win: parallel, with a speedup, not an artefact of the host, and not a
    config CPython's docs forbid (nobody should pick it, whatever it measured)."""
    rows = table[(table["model"] != SEQUENTIAL) & table["speedup"].notna()]
    rows = rows[rows["artefact"].fillna("").astype(str) == ""]
    return rows[rows["documented_invalid"].fillna("").astype(str) == ""]


@dataclass
class Decision:
    """One workload on one python: the tables and the sentence that answer it."""

    workload: str  # label
    python: str  # label
    kind: str  # "speedup", or "startup" (the table is start-up costs, not a winner)
    headline: str
    winners: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per worker count
    models: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per model config


def _verdict(a: np.ndarray, b: np.ndarray) -> tuple[str, float]:
    """Winner vs runner-up by Mann-Whitney U on their wall times. Within one python,
    workload and worker count both share the sequential baseline, so this compares
    their speedups too."""
    if stats.smallest_p(int(a.size), int(b.size)) >= ALPHA:
        return "too few repetitions to tell", math.nan
    p = stats.mann_whitney_p(a, b)
    if math.isnan(p):
        return "-", p
    return ("significant" if p < ALPHA else "within noise"), p


def _key(row: pd.Series) -> tuple[Any, ...]:
    return tuple(row[k] for k in GROUP_KEYS)


def _winners(group: pd.DataFrame, samples: dict[tuple[Any, ...], np.ndarray]) -> pd.DataFrame:
    """Per worker count: the fastest group, and the fastest of another model (a different
    config of the same model is not the alternative a reader is choosing between)."""
    rows = []
    for _, at in group.groupby("workers", sort=True):
        ranked = at.sort_values(["speedup", "model_label"], ascending=[False, True])
        best = ranked.iloc[0]
        others = ranked[ranked["model"] != best["model"]]
        row: dict[str, Any] = {
            "workers": int(best["workers"]), "winner": str(best["model_label"]),
            "speedup": best["speedup"], "ci_low": best["speedup_ci_low"],
            "ci_high": best["speedup_ci_high"], "unstable": bool(best["unstable"]),
            "busy_host": bool(best["all_contended"]),
            "runner_up": "", "runner_speedup": math.nan, "runner_ci_low": math.nan,
            "runner_ci_high": math.nan, "verdict": "no other model", "p_value": math.nan,
        }  # fmt: skip
        if len(others):
            second = others.iloc[0]
            verdict, p = _verdict(samples.get(_key(best), np.array([])),
                                  samples.get(_key(second), np.array([])))
            row.update(runner_up=str(second["model_label"]), runner_speedup=second["speedup"],
                       runner_ci_low=second["speedup_ci_low"],
                       runner_ci_high=second["speedup_ci_high"], verdict=verdict, p_value=p)
        rows.append(row)
    return pd.DataFrame(rows)


def _models(group: pd.DataFrame, costs: dict[tuple[str, str, str, int], float]) -> pd.DataFrame:
    """Per model config: start-up, best steady-state speedup, and its break-even job sizes
    against sequential and against threads at the same worker count."""
    def cost(row: pd.Series) -> tuple[float, str]:
        key = (str(row["python"]), str(row["model"]), str(row["model_config"]),
               int(row["workers"]))  # fmt: skip
        if key in costs:
            return costs[key], "startup workload"
        return (_cost(row), "own cells") if pd.notna(row["startup_median_s"]) else (math.nan, "")

    threads = {int(r["workers"]): r for _, r in group[group["model"] == THREADS].iterrows()}
    rows = []
    for label, cells in group.groupby("model_label", sort=True):
        cells = cells.sort_values("workers")
        vs_sequential, vs_threads = [], []
        for _, cell in cells.iterrows():
            s, _ = cost(cell)
            vs_sequential.append((clear_break_even(cell, s, None), int(cell["workers"])))
            reference = threads.get(int(cell["workers"]))
            if reference is not None and cell["model"] != THREADS:
                vs_threads.append((clear_break_even(cell, s, reference, cost(reference)[0]),
                                   int(cell["workers"])))
        best = cells.sort_values(["speedup", "workers"], ascending=[False, True]).iloc[0]
        s, source = cost(best)
        rows.append({
            "model": str(best["model"]), "model_label": str(label),
            "workers": int(best["workers"]), "speedup": best["speedup"],
            "ci_low": best["speedup_ci_low"], "ci_high": best["speedup_ci_high"],
            "startup_s": s, "startup_source": source,
            **_chosen("vs_sequential", vs_sequential), **_chosen("vs_threads", vs_threads),
        })  # fmt: skip
    frame = pd.DataFrame(rows)
    return frame.sort_values("speedup", ascending=False).reset_index(drop=True)


def _chosen(name: str, options: list[tuple[BreakEven, int]]) -> dict[str, Any]:
    """The most favourable break-even and the worker count it needs."""
    best = min(options, key=lambda option: _favour(option[0]), default=None)
    if best is None:
        return {name: BreakEven("unknown"), f"{name}_workers": pd.NA}
    return {name: best[0], f"{name}_workers": best[1]}


def _startup_table(group: pd.DataFrame) -> pd.DataFrame:
    """Start-up plus teardown per model config (rows) and worker count (columns)."""
    rows = group[(group["model"] != SEQUENTIAL) & group["startup_median_s"].notna()]
    rows = rows.assign(cost_s=[_cost(r) for _, r in rows.iterrows()])
    wide = rows.pivot_table(index="model_label", columns="workers", values="cost_s",
                            aggfunc="median", observed=True)
    return wide.sort_values(wide.columns[-1]) if len(wide.columns) else wide


def _x(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}x"


def _ci(low: float, high: float) -> str:
    return "" if math.isnan(low) or low == high else f" (95% CI {low:.2f}-{high:.2f})"


def _workers(count: int) -> str:
    return f"{count} worker" if count == 1 else f"{count} workers"


def _speedup_headline(workload: str, python: str, winners: pd.DataFrame,
                      models: pd.DataFrame) -> str:
    """One sentence: the best cell, its runner-up's verdict, threads, and the break-even."""
    top = winners.sort_values(["speedup", "workers"], ascending=[False, True]).iloc[0]
    sentence = (f"{workload} on {python}: {top['winner']} {_x(top['speedup'])} at "
                f"{_workers(top['workers'])}{_ci(top['ci_low'], top['ci_high'])}")
    marks = [m for m, on in (("unstable", top["unstable"]), ("busy host", top["busy_host"]))
             if on]
    sentence += "".join(f", {m}" for m in marks)
    if top["runner_up"]:
        sentence += f"; {top['runner_up']} {_x(top['runner_speedup'])}, {top['verdict']}"
    named = {top["winner"], top["runner_up"]}
    threads = models[(models["model"] == THREADS) & ~models["model_label"].isin(named)]
    if len(threads):
        best = threads.iloc[0]
        at = f" at {_workers(best['workers'])}" if best["workers"] != top["workers"] else ""
        sentence += f"; threads {_x(best['speedup'])}{at}"
    payoff = models[models["model_label"] == top["winner"]]
    if len(payoff):
        be: BreakEven = payoff.iloc[0]["vs_sequential"]
        needs = payoff.iloc[0]["vs_sequential_workers"]
        at = f" (at {_workers(needs)})" if pd.notna(needs) and needs != top["workers"] else ""
        sentence += {
            "above": f"; it pays off for jobs longer than {duration(be.seconds)} of work{at}",
            "always": "; it pays off for any job size",
            "never": "; it never pays off end to end",
            "below": f"; it pays off only for jobs shorter than {duration(be.seconds)}",
            "unclear": "; its gain over sequential is within noise",
        }.get(be.kind, "")
    return sentence + _soonest(models, str(top["winner"])) + "."


def _soonest(models: pd.DataFrame, winner: str) -> str:
    """The model that pays off at the smallest job, when it is not the winner: for short
    jobs a cheap start beats a slightly better steady state."""
    above = [(r["vs_sequential"].seconds, r["model_label"]) for _, r in models.iterrows()
             if r["vs_sequential"].kind == "above"]  # fmt: skip
    always = [r["model_label"] for _, r in models.iterrows()
              if r["vs_sequential"].kind == "always"]  # fmt: skip
    if always and always[0] != winner:
        return f"; {always[0]} pays off for any job size"
    if not always and above and min(above)[1] != winner:
        seconds, label = min(above)
        return f"; {label} pays off soonest, above {duration(seconds)}"
    return ""


def _startup_headline(workload: str, python: str, wide: pd.DataFrame) -> str:
    workers = int(wide.columns[-1])
    column = wide[workers].dropna().sort_values()
    costs = [f"{label} {duration(float(v))}" for label, v in column.items()]
    if len(costs) > 4:
        costs = [*costs[:2], "...", costs[-1]]
    return (f"{workload} on {python}: starting and stopping {workers} worker"
            f"{'s' if workers != 1 else ''} costs {'; '.join(costs)}.")


def decisions(summary: Summary) -> list[Decision]:
    """One Decision per workload and python that has something to decide."""
    table = summary.frame
    costs = startup_costs(table)
    eligible = candidates(table)
    out = []
    for (workload, python), group in table.groupby(["workload_label", "python_label"],
                                                   observed=True, sort=True):
        name, build = str(workload), str(python)
        if is_startup(group["workload"].iloc[0]):
            wide = _startup_table(group)
            if len(wide) and len(wide.columns):
                out.append(Decision(name, build, "startup", _startup_headline(name, build, wide),
                                    models=wide))
            continue
        mine = eligible[(eligible["workload_label"] == workload)
                        & (eligible["python_label"] == python)]
        if not len(mine):
            continue
        winners = _winners(mine, summary.samples)
        models = _models(mine, costs)
        out.append(Decision(name, build, "speedup",
                            _speedup_headline(name, build, winners, models), winners, models))
    return out
