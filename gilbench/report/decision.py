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
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from experiments import catalog
from gilbench.report import stats
from gilbench.report.aggregate import GROUP_KEYS, SEQUENTIAL, Summary, cpu_bound

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
    # The decision as data (`invoke advise --json`, docs/advise.md); the headline is
    # written from it. Empty for a start-up table.
    advice: dict[str, Any] = field(default_factory=dict)


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
            "mib_per_worker": _number(best.get("mib_per_worker", math.nan)),
            "unstable": bool(best["unstable"]), "busy_host": bool(best["all_contended"]),
            "at_ceiling": bool(best.get("at_ceiling", False)), "cores": int(best["cores"]),
            "key": _key(best),
            **_chosen("vs_sequential", vs_sequential), **_chosen("vs_threads", vs_threads),
        })  # fmt: skip
    frame = pd.DataFrame(rows)
    return frame.sort_values("speedup", ascending=False).reset_index(drop=True)


def _number(value: Any) -> float:
    return math.nan if value is None or pd.isna(value) else float(value)


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


# Ties (issue 18): two models tie when the 95% CI of the ratio of their speedups lies
# within this margin of 1; a CI that holds 1 but reaches past it is unresolved.
TIE_MARGIN = 0.05
# Start-ups this close count as equal, so memory decides between them.
STARTUP_TOLERANCE = 0.10

TIE_RULE = (
    "Ties are judged against the fastest model config (each at its best worker count): two "
    f"tie when the 95% bootstrap CI of the ratio of their speedups lies within ±"
    f"{TIE_MARGIN:.0%}, and among tied ones the advice is the one that is cheapest to start "
    f"(start-ups within {STARTUP_TOLERANCE:.0%} count as equal), then to hold in memory. When "
    "that CI contains 1 but reaches past the margin, the line says unresolved and gives the "
    "command that adds repetitions, instead of naming a winner. Significance (Mann-Whitney U) "
    "stays in the tables."
)


@dataclass(frozen=True)
class Standing:
    """Another model config against the fastest: the ratio of their speedups (other over
    fastest, median and 95% CI) and what it means: "tie", "unresolved" or "behind"."""

    label: str
    kind: str
    ratio: float
    low: float
    high: float


def standing(label: str, ratio: float, low: float, high: float,
             margin: float = TIE_MARGIN) -> Standing:
    """Classify a speedup ratio by its CI: within 1±margin a tie; holding 1 but reaching
    past the margin unresolved; otherwise behind. No CI (too few samples) is unresolved
    unless the ratio alone is outside the margin."""
    if math.isnan(low) or math.isnan(high):
        kind = "behind" if ratio < 1 - margin else "unresolved"
    elif 1 - margin <= low and high <= 1 + margin:
        kind = "tie"
    elif low <= 1 <= high or low > 1:
        kind = "unresolved"
    else:
        kind = "behind"
    return Standing(label, kind, ratio, low, high)


def _standings(models: pd.DataFrame, samples: dict[tuple[Any, ...], np.ndarray]
               ) -> list[Standing]:
    """Every model config but the fastest (models' first row) against it."""
    top = models.iloc[0]
    top_walls = samples.get(top["key"], np.array([]))
    out = []
    for _, row in models.iloc[1:].iterrows():
        walls = samples.get(row["key"], np.array([]))
        # other's speedup / top's = median(top walls) / median(other walls): one baseline
        low, high = stats.bootstrap_ratio_ci(
            top_walls, walls, stats.seed_for(f"{top['model_label']}/{row['model_label']}"))
        if top_walls.size < 2 or walls.size < 2:
            low = high = math.nan
        out.append(standing(str(row["model_label"]), float(row["speedup"] / top["speedup"]),
                            low, high))
    return out


def _cheapest(rows: pd.DataFrame) -> pd.Series:
    """The row cheapest to start (within STARTUP_TOLERANCE counts as equal), then to hold
    in memory, then the fastest. Unknown costs count as dearest."""
    startup = rows["startup_s"].astype("float64").fillna(math.inf)
    floor = float(startup.min())
    near = rows[startup <= floor * (1 + STARTUP_TOLERANCE) + 1e-6] if math.isfinite(floor) \
        else rows
    memory = near["mib_per_worker"].astype("float64").fillna(math.inf)
    return near.assign(_m=memory).sort_values(["_m", "speedup"], ascending=[True, False]).iloc[0]


def _pct(ratio: float) -> str:
    return f"{abs(1 - ratio) * 100:.0f}%" if abs(1 - ratio) >= 0.005 else "<1%"


def _within(item: Standing) -> str:
    """The tie's width: the CI's farther end from 1, as a percentage."""
    far = max(abs(1 - item.low), abs(1 - item.high))
    return f"within {max(far * 100, 1):.0f}%"


def _ratio_ci(item: Standing) -> str:
    if math.isnan(item.low):
        return "too few samples for a CI"
    return f"95% CI of the ratio {item.low:.2f}-{item.high:.2f}"


def _why_cheaper(choice: pd.Series, top: pd.Series) -> str:
    """Why the tied choice beats the fastest: start-up, then memory, in plain numbers."""
    parts = []
    s, s_top = float(choice["startup_s"]), float(top["startup_s"])
    if math.isfinite(s) and math.isfinite(s_top) and s_top > s * (1 + STARTUP_TOLERANCE):
        parts.append(f"starts {s_top / s:.3g}x faster" if s > 0 else "starts at no cost")
    m, m_top = float(choice["mib_per_worker"]), float(top["mib_per_worker"])
    if math.isfinite(m) and math.isfinite(m_top) and m_top - m >= 0.5:
        parts.append(f"{m_top - m:.0f} MiB less per worker")
    return ", ".join(parts) or "no dearer to start or hold"


def _payoff_clause(choice: pd.Series, top_workers: int) -> str:
    be: BreakEven = choice["vs_sequential"]
    needs = choice["vs_sequential_workers"]
    at = f" (at {_workers(needs)})" if pd.notna(needs) and needs != top_workers else ""
    return {
        "above": f"; it pays off for jobs longer than {duration(be.seconds)} of work{at}",
        "always": "; it pays off for any job size",
        "never": "; it never pays off end to end",
        "below": f"; it pays off only for jobs shorter than {duration(be.seconds)}",
        "unclear": "; its gain over sequential is within noise",
    }.get(be.kind, "")


def _above_cores(group: pd.DataFrame) -> pd.DataFrame:
    """Groups left out because their median speedup is above the usable cores."""
    artefact = group["artefact"].fillna("").astype(str)
    return group[artefact.str.contains("usable cores", regex=False)]


def _advise(workload: str, python: str, models: pd.DataFrame, standings: list[Standing],
            above: pd.DataFrame, remeasure: str) -> tuple[dict[str, Any], str]:
    """The decision as data, and the sentence written from it."""
    top = models.iloc[0]
    tied = [item for item in standings if item.kind == "tie"]
    unresolved = [item for item in standings if item.kind == "unresolved"]
    tied_labels = {item.label for item in tied}
    choice = _cheapest(models[models["model_label"].isin(tied_labels | {top["model_label"]})])
    verdict = ("unresolved" if unresolved else "tie" if tied else
               "clear" if standings else "only model")
    if not float(top["ci_low"]) > 1:  # NaN too: nothing is known to beat sequential
        return _no_gain(workload, python, top, above)
    flags = [name for name, on in (
        ("unresolved", bool(unresolved)), ("tie", bool(tied)),
        ("at-core-ceiling", bool(choice["at_ceiling"])), ("above-cores", len(above) > 0),
        ("unstable", bool(choice["unstable"])), ("contended", bool(choice["busy_host"])),
    ) if on]  # fmt: skip
    be: BreakEven = choice["vs_sequential"]
    data: dict[str, Any] = {
        "workload": workload, "python": python, "verdict": verdict,
        "choice": str(choice["model_label"]), "model": str(choice["model"]),
        "workers": int(choice["workers"]), "speedup": _json(choice["speedup"]),
        "ci_low": _json(choice["ci_low"]), "ci_high": _json(choice["ci_high"]),
        "fastest": str(top["model_label"]),
        "tied": sorted(tied_labels - {str(choice["model_label"])}
                       | ({str(top["model_label"])} if choice["model_label"] != top["model_label"]
                          else set())),
        "unresolved_with": [item.label for item in unresolved],
        "break_even": be.kind,
        "break_even_s": {"above": _json(be.seconds), "always": 0.0}.get(be.kind),
        "startup_s": _json(choice["startup_s"]),
        "mib_per_worker": _json(choice["mib_per_worker"]),
        "cores": int(choice["cores"]) or None,
        "flags": flags,
    }  # fmt: skip
    sentence = f"{workload} on {python}: "
    marks = [m for m, on in (("unstable", choice["unstable"]), ("busy host", choice["busy_host"]),
                             (f"at the {choice['cores']}-core ceiling", choice["at_ceiling"]))
             if on]  # fmt: skip
    name = (f"{choice['model_label']} {_x(choice['speedup'])} at {_workers(choice['workers'])}"
            f"{_ci(choice['ci_low'], choice['ci_high'])}" + "".join(f", {m}" for m in marks))
    if unresolved:
        first = unresolved[0]
        other = models[models["model_label"] == first.label].iloc[0]
        sentence += (f"unresolved between {top['model_label']} {_x(top['speedup'])} and "
                     f"{first.label} {_x(other['speedup'])} ({_ratio_ci(first)}, wider than "
                     f"±{TIE_MARGIN:.0%}); measure more: {remeasure}")
    elif tied:
        if choice["model_label"] != top["model_label"]:
            item = next(i for i in tied if i.label == choice["model_label"])
            sentence += (f"{name} (ties {top['model_label']} {_x(top['speedup'])} "
                         f"{_within(item)}; {_why_cheaper(choice, top)})")
        else:
            names = ", ".join(f"{i.label} {_within(i)}" for i in tied)
            sentence += f"{name} (ties {names}; it is the cheapest of them to start)"
        sentence += _payoff_clause(choice, int(choice["workers"]))
    else:
        sentence += name
        behind = [i for i in standings
                  if models[models["model_label"] == i.label].iloc[0]["model"] != top["model"]]
        if behind:
            second = behind[0]
            other = models[models["model_label"] == second.label].iloc[0]
            sentence += (f"; {second.label} {_x(other['speedup'])} is {_pct(second.ratio)} "
                         f"slower ({_ratio_ci(second)})")
        sentence += _payoff_clause(choice, int(choice["workers"]))
        sentence += _soonest(models, str(choice["model_label"]))
    named = {str(choice["model_label"]), str(top["model_label"]),
             *(i.label for i in unresolved[:1])}
    threads = models[(models["model"] == THREADS) & ~models["model_label"].isin(named)]
    if len(threads):
        sentence += f"; threads {_x(threads.iloc[0]['speedup'])}"
    data["headline"] = sentence + _above_clause(above) + "."
    return data, data["headline"]


def _above_clause(above: pd.DataFrame) -> str:
    """The largest speedup left out for passing the cores, named where the decision is."""
    if not len(above):
        return ""
    worst = above.sort_values("speedup", ascending=False).iloc[0]
    return (f"; {worst['model_label']} {_x(worst['speedup'])} at "
            f"{_workers(worst['workers'])} is above the {worst['cores']} usable cores: the "
            "baseline probably ran slow, so it is not counted")


def _no_gain(workload: str, python: str, top: pd.Series, above: pd.DataFrame
             ) -> tuple[dict[str, Any], str]:
    """No model is known to beat sequential (the fastest's CI reaches 1 or below): the
    advice is to stay sequential, which costs nothing to start."""
    sentence = (f"{workload} on {python}: stay sequential; no model is clearly faster (the "
                f"fastest, {top['model_label']}, {_x(top['speedup'])} at "
                f"{_workers(top['workers'])}{_ci(top['ci_low'], top['ci_high'])})")
    sentence += _above_clause(above)
    flags = ["no-gain", *(["above-cores"] if len(above) else []),
             *(["unstable"] if top["unstable"] else []),
             *(["contended"] if top["busy_host"] else [])]
    data: dict[str, Any] = {
        "workload": workload, "python": python, "verdict": "no gain", "choice": "sequential",
        "model": "sequential", "workers": 1, "speedup": 1.0, "ci_low": 1.0, "ci_high": 1.0,
        "fastest": str(top["model_label"]), "tied": [], "unresolved_with": [],
        "break_even": "never", "break_even_s": None, "startup_s": 0.0,
        "mib_per_worker": 0.0, "cores": int(top["cores"]) or None, "flags": flags,
        "headline": sentence + ".",
    }  # fmt: skip
    return data, data["headline"]


def _json(value: Any) -> float | None:
    number = _number(value)
    return None if math.isnan(number) or math.isinf(number) else number


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
    """Every model's cost, cheapest first: the expensive ones are what the reader asks about."""
    workers = int(wide.columns[-1])
    column = wide[workers].dropna().sort_values()
    costs = [f"{label} {duration(float(v))}" for label, v in column.items()]
    return (f"{workload} on {python}: starting and stopping {workers} worker"
            f"{'s' if workers != 1 else ''} costs {'; '.join(costs)}.")


# Flags a remedy sets itself, dropped from the run's own command before they are added.
_SAMPLING_FLAGS = {"--target-ci", "--max-repetitions", "--cell-budget", "--retry-contended",
                   "--resume", "-g", "-x", "-l", "-s"}
# invoke's own options before the task name (./lab passes --search-root).
_INVOKE_OPTIONS = {"--search-root", "-r"}


def rerun_command(command: str) -> str:
    """The run's own command (`invoke experiment ...` or `invoke all ...`, as the manifest
    recorded it) as a new experiment without its sampling flags, or a placeholder when the
    run recorded none. The one place a remedy's command is built."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = []
    if words[:1] == ["invoke"]:
        options = iter(words[1:])
        words = ["invoke"]
        for word in options:
            if word.partition("=")[0] in _INVOKE_OPTIONS:
                if "=" not in word:
                    next(options, None)
                continue
            words.append(word)
    if words[:2] not in (["invoke", "experiment"], ["invoke", "all"]):
        return "invoke experiment --matrix MATRIX (this run's matrix, see Provenance)"
    kept = ["invoke", "experiment"]
    rest = iter(words[2:])
    for word in rest:
        flag, eq, _ = word.partition("=")
        if flag in _SAMPLING_FLAGS:
            if not eq:
                next(rest, None)  # its value
            continue
        kept.append(word)
    return shlex.join(kept)


def remeasure_command(command: str) -> str:
    """The run's own command asking adaptive sampling for tight CIs: what adds repetitions
    where a comparison is unresolved."""
    return f"`{rerun_command(command)} --target-ci 1% --max-repetitions 200`"


def preamble(summary: Summary) -> list[str]:
    """What the reader must know before the lines: the cores that bound every speedup."""
    table = summary.frame
    cpu = table[table["workload"].astype("string").map(cpu_bound).astype(bool)]
    cores = sorted({int(c) for c in cpu["cores"] if int(c) > 0})
    if not cores:
        return []
    if len(cores) == 1:
        n = cores[0]
        return [f"This host has {n} usable core{'s' if n != 1 else ''}, so CPU-bound speedups "
                f"cannot exceed {n}; a higher one means the sequential baseline ran slow and "
                "is flagged, never counted."]
    return [f"The pythons ran on {', '.join(map(str, cores))} usable cores; a CPU-bound "
            "speedup cannot exceed its python's, and a higher one is flagged, never counted."]


def decisions(summary: Summary, remeasure: str = "") -> list[Decision]:
    """One Decision per workload and python that has something to decide. `remeasure` is
    the command that adds repetitions (remeasure_command of the run's own)."""
    remeasure = remeasure or remeasure_command("")
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
        standings = _standings(models, summary.samples)
        data, headline = _advise(name, build, models, standings,
                                 _above_cores(group[group["model"] != SEQUENTIAL]), remeasure)
        out.append(Decision(name, build, "speedup", headline, winners, models, data))
    return out


# What a free-threaded build's single thread costs against the GIL build, as published:
# PEP 703/779 and the 3.14 "What's new".
FREE_THREADED_COST = {(3, 13): "about 40% on 3.13", (3, 14): "5-10% on 3.14"}


def across_builds(summary: Summary) -> list[dict[str, Any]]:
    """Per workload and free-threaded build with a GIL build of its version in the run, one
    comparison by throughput against the GIL build's sequential: the fastest model and
    build overall, the free-threaded build's single-thread cost, and what its threads
    reach. Each entry holds the numbers and the sentence ("text")."""
    table = summary.frame
    out: list[dict[str, Any]] = []
    usable = table[table["rel_throughput"].notna()
                   & (table["artefact"].fillna("").astype(str) == "")
                   & (table["documented_invalid"].fillna("").astype(str) == "")]
    for (workload, ft), group in usable[usable["gil_disabled_build"].fillna(False).astype(bool)
                                        ].groupby(["workload_label", "python_label"],
                                                  observed=True, sort=True):
        if is_startup(group["workload"].iloc[0]):
            continue
        reference = group["baseline_python"].iloc[0]
        if pd.isna(reference) or str(reference) == str(ft):
            continue
        both = usable[(usable["workload_label"] == workload)
                      & usable["python_label"].isin([ft, reference])]
        sequential = group[group["model"] == SEQUENTIAL]
        if not len(sequential):
            continue
        best = both.sort_values(["rel_throughput", "workers"], ascending=[False, True]).iloc[0]
        single = float(sequential["rel_throughput"].iloc[0])
        cost = 1 / single - 1  # how much longer one thread takes on the free-threaded build
        threads = group[group["model"] == THREADS].sort_values("rel_throughput",
                                                               ascending=False)
        minor = _minor(str(sequential["python_version"].iloc[0]))
        # The published cost is of CPU-bound code; a waiting workload pays none of it.
        anchor = (FREE_THREADED_COST.get(minor)
                  if minor and cpu_bound(group["workload"].iloc[0]) else None)
        text = (f"{workload} across builds: fastest is {best['model_label']} on "
                f"{best['python_label']} at {_workers(int(best['workers']))}, "
                f"{_x(float(best['rel_throughput']))} the throughput of sequential on "
                f"{reference}; {ft}'s single-thread cost is {round(cost * 100) + 0}% (its "
                f"sequential runs at {_x(single)} of {reference}'s"
                + (f"; published: {anchor}" if anchor else "") + ")")
        entry: dict[str, Any] = {
            "workload": str(workload), "free_threaded": str(ft), "gil_build": str(reference),
            "fastest": str(best["model_label"]), "fastest_python": str(best["python_label"]),
            "fastest_workers": int(best["workers"]),
            "fastest_rel_throughput": _json(best["rel_throughput"]),
            "single_thread_cost": _json(cost), "threads_rel_throughput": None,
            "threads_workers": None,
        }  # fmt: skip
        if len(threads):
            top = threads.iloc[0]
            text += (f"; free-threaded threads reach {_x(float(top['rel_throughput']))} at "
                     f"{_workers(int(top['workers']))} ({_x(float(top['speedup']))} its own "
                     "sequential)")
            entry.update(threads_rel_throughput=_json(top["rel_throughput"]),
                         threads_workers=int(top["workers"]))
        entry["text"] = text + "."
        out.append(entry)
    return out


def _minor(version: str) -> tuple[int, int] | None:
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None
