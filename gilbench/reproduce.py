"""`invoke reproduce ARCHIVE_OR_RUN`: rerun someone's run here and say whether it holds.

1. The original: an export archive (verified and unpacked by gilbench.archive, the owner
   of that format) or a run folder.
2. Its pythons: a build is reused when a build here has the same content address (version,
   SHA-256, variant, configure flags and recipe hash), else rebuilt from the recipe, which
   must be the one in this checkout (an archive carries it; --allow-drift builds with this
   checkout's recipe instead, and says so). A native python is used when the same path
   holds the same version; otherwise its cells are not comparable.
3. The same cells again: the same matrix, seed and limits where this host allows them,
   and the user workloads' code from the original's own copy (checked against its
   sha256, never looked up from the current directory), as an ordinary run (so a killed
   reproduction resumes like any run).
4. A verdict per cell group, with `invoke compare`'s statistics, and what differs between
   the two hosts; reproduce.md and reproduce.html in the new run's folder.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from gilbench import backends, matrix, run, runfolder
from gilbench.build import BuildOptions, run_build
from gilbench.buildspec import recipe_hash
from gilbench.errors import GilbenchError
from gilbench.report import document
from gilbench.report.document import Block, Bullets, Heading, Paragraph, Table
from gilbench.runners import parse_cpuset
from gilbench.targets import Target

REPRODUCE_MD = "reproduce.md"
REPRODUCE_HTML = "reproduce.html"
VERDICTS = ("reproduced", "faster", "slower", "status changed", "not comparable")
# A python's identity for reuse: everything that decides what is built, except where.
_CONTENT = ("version", "sha256", "variant", "configure_args_requested", "recipe_hash")


@dataclass
class Plan:
    """What this host can do about each of the original's pythons."""

    targets: list[Target] = field(default_factory=list)
    missing: dict[str, list[str]] = field(default_factory=dict)  # python id -> [label, why]
    drift: list[str] = field(default_factory=list)  # recorded, allowed by --allow-drift
    notes: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    run_dir: Path
    original: Path
    cells: pd.DataFrame  # one row per cell group: cell, verdict, reason
    differences: list[list[str]]
    paths: list[Path]

    @property
    def reproduced(self) -> bool:
        return bool(len(self.cells)) and bool((self.cells["verdict"] == "reproduced").all())

    def counts(self) -> dict[str, int]:
        return {v: int((self.cells["verdict"] == v).sum()) for v in VERDICTS
                if (self.cells["verdict"] == v).any()}


def _version_of(executable: str) -> str | None:
    try:
        done = subprocess.run([executable, "-c", "import platform; print(platform."
                               "python_version())"], capture_output=True, text=True,
                              timeout=30, check=False)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _build_target(pid: str, label: str, record: dict[str, Any], options: BuildOptions,
                  allow_drift: bool, plan: Plan, say: Callable[[str], None]) -> None:
    backend = backends.get(str(record.get("backend") or "docker"))
    if not backend.is_available():
        plan.missing[pid] = [label, f"the {backend.name} backend is not available here"]
        return
    wanted = {key: record.get(key) for key in _CONTENT}
    same = [r for r in backend.builds(options.cache_dir)
            if {key: r.get(key) for key in _CONTENT} == wanted]
    if same:
        chosen = max(same, key=lambda r: (r.get("base") == record.get("base"), r["built_at"]))
        if chosen.get("base") != record.get("base"):
            plan.notes.append(f"{label}: reused a build of the same recipe on another base "
                              f"image ({chosen.get('base_image') or chosen.get('base')}).")
        plan.targets.append(backend.target(chosen))
        return
    if record.get("recipe_hash") != recipe_hash():
        if not allow_drift:
            raise GilbenchError(
                f"{label} was built with recipe {str(record.get('recipe_hash'))[:12]}, and "
                f"this checkout's recipe is {recipe_hash()[:12]}, so it cannot be rebuilt as "
                "it was; check out the gilbench that made it, or give --allow-drift to build "
                "it with this recipe (recorded)."
            )
        plan.drift.append(f"{label}: rebuilt with this checkout's recipe "
                          f"{recipe_hash()[:12]} instead of {str(record['recipe_hash'])[:12]}")
    requested = tuple(record.get("configure_args_requested") or ())
    extra = requested[len(_variant_args(str(record["variant"]), str(record["version"]))):]
    say(f"building {label} from its recipe (no build of the original's here)")
    result = run_build(BuildOptions(
        python=str(record["version"]), variant=str(record["variant"]), backend=backend.name,
        cache_dir=options.cache_dir, source_cache=options.source_cache,
        base_image=options.base_image, extra_args=extra, jobs=options.jobs),
        lambda kind, payload: None)
    built = result.record
    if built.get("sha256") != record.get("sha256"):
        raise GilbenchError(f"The rebuilt {label} has SHA-256 {built.get('sha256')}, not the "
                            f"original's {record.get('sha256')}; nothing was measured.")
    how = ("an existing build of this checkout's recipe was used" if result.reused
           else "built here")
    plan.notes.append(f"{label}: not the original's binary ({how}). PGO builds of one recipe "
                      "are not bit-identical (`invoke build --check-reproducible` measures how "
                      "far), which alone can move timings.")
    plan.targets.append(backend.target(built))


def _variant_args(variant: str, version: str) -> tuple[str, ...]:
    from gilbench.versions import resolve_variant

    return resolve_variant(variant, version).configure_args


def plan_pythons(manifest: runfolder.Manifest, options: BuildOptions, allow_drift: bool,
                 say: Callable[[str], None]) -> Plan:
    plan = Plan()
    for pid, entry in manifest.pythons.items():
        label = str(entry.get("label") or pid)
        build = entry.get("build")
        if isinstance(build, dict):
            _build_target(pid, label, build, options, allow_drift, plan, say)
            continue
        executable = str(entry.get("executable") or "")
        here = _version_of(executable) if executable and os.access(executable, os.X_OK) else None
        if here is None:
            plan.missing[pid] = [label, f"a native python ({executable}) that is not on this "
                                 "host; it cannot be rebuilt"]
        elif here != entry.get("version"):
            plan.missing[pid] = [label, f"{executable} is Python {here} here, not "
                                 f"{entry.get('version')}"]
        else:
            plan.targets.append(backends.native().path_target(executable))
    return plan


def _matrix(manifest: runfolder.Manifest) -> matrix.Matrix:
    given = manifest.matrix
    text = str(given.get("text") or "")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        try:  # a single-cell run keeps its flags as JSON
            data = json.loads(text)
        except json.JSONDecodeError:
            raise GilbenchError(f"Run {manifest.run_id}'s matrix text is neither TOML nor "
                                "JSON, so its cells cannot be planned again.") from None
    chosen = matrix.parse(data, name=str(given.get("name") or "reproduced"), text=text)
    order = manifest.order
    if order.get("retry_contended"):
        chosen = matrix.with_retries(chosen, int(order["retry_contended"]))
    return chosen


def _limits(manifest: runfolder.Manifest, plan: Plan) -> run.Limits:
    cpuset = str(manifest.limits.get("cpuset") or "")
    memory = manifest.limits.get("memory")
    if cpuset:
        try:
            parse_cpuset(cpuset)
        except GilbenchError:
            plan.drift.append(f"cpuset {cpuset} does not exist here; the run is placed on this "
                              "host's CPUs instead")
            cpuset = ""
    if not any(backends.for_target(t).applies_memory_limit for t in plan.targets):
        memory = None
    elif memory is None:
        memory = "8g"
        plan.drift.append("the original set no memory limit; Docker runs here get 8g")
    return run.Limits(cpuset, memory)


def find_unfinished(results_dir: Path, original_id: str) -> Path | None:
    """A reproduction of this run that was interrupted: finish it instead of starting over."""
    if not results_dir.is_dir():
        return None
    for candidate in sorted(results_dir.iterdir(), reverse=True):
        if not (candidate / runfolder.MANIFEST).is_file():
            continue
        try:
            manifest = runfolder.read_manifest(candidate)
        except GilbenchError:
            continue
        of = manifest.extra.get("reproduces") or {}
        if of.get("run_id") == original_id and manifest.finished_at is None:
            return candidate
    return None


def rerun(original: Path, results_dir: Path, options: BuildOptions, allow_drift: bool,
          source: str, on_event: run.RunEvents, say: Callable[[str], None]) -> Path:
    """The reproduction's run folder: an unfinished one resumed, or a new one measured."""
    manifest = runfolder.read_manifest(original)
    unfinished = find_unfinished(results_dir, manifest.run_id)
    if unfinished is not None:
        say(f"resuming the unfinished reproduction {unfinished.name}")
        return run.resume(unfinished, None, None, on_event)
    codes = run.recorded_user_code(original, manifest)  # before anything is built or measured
    if manifest.experiments_hash != run.experiments_hash():
        if not allow_drift:
            raise GilbenchError(
                f"Run {manifest.run_id} was measured by another version of experiments/ "
                f"({manifest.experiments_hash[:12]}, here {run.experiments_hash()[:12]}), so "
                "its cells would not run the same code; check out the gilbench that made it, "
                "or give --allow-drift to run this version (recorded)."
            )
        drift = [f"experiments/ is {run.experiments_hash()[:12]} here, "
                 f"{manifest.experiments_hash[:12]} in the original"]
    else:
        drift = []
    plan = plan_pythons(manifest, options, allow_drift, say)
    plan.drift = drift + plan.drift
    if not plan.targets:
        raise GilbenchError(
            f"None of run {manifest.run_id}'s pythons can run here ("
            + "; ".join(f"{label}: {why}" for label, why in plan.missing.values())
            + "), so nothing can be reproduced.")
    limits = _limits(manifest, plan)
    extra = {"reproduces": {"run_id": manifest.run_id, "source": source,
                            "allow_drift": allow_drift, "drift": plan.drift,
                            "missing": plan.missing, "notes": plan.notes}}
    return run.start(_matrix(manifest), plan.targets, results_dir, limits,
                     f"invoke reproduce {source}", on_event,
                     seed=int(manifest.order.get("seed") or 0) or None, extra=extra,
                     user_code=codes)


def verdicts(cells: pd.DataFrame, missing: dict[str, list[str]], groups: dict[str, int],
             only_in_original: list[str],
             speedups: dict[str, tuple[float, float]] | None = None) -> pd.DataFrame:
    """compare's rows -> one verdict per cell group, with its reason; a python that could
    not run here is one row for all its groups. `speedups`: cell -> (original, here)
    speedup over sequential, added to the reason: a slower host moves every absolute time,
    while what a run claims is mostly relative."""
    rows = []
    for _, row in cells.iterrows():
        if row["status_changed"]:
            verdict = "status changed"
            reason = f"{row['status_a']} in the original, {row['status_b']} here"
        elif row["verdict"] == "not comparable" and row["status_a"] != "ok":
            verdict, reason = "reproduced", f"{row['status_a']} in both runs"
        elif row["verdict"] == "not comparable":
            verdict, reason = "not comparable", "no ok repetition on one side"
        elif row["verdict"] in ("faster", "slower"):
            verdict = str(row["verdict"])
            reason = (f"here/original {row['ratio']:.3f} (95% CI {row['ratio_ci_low']:.3f}-"
                      f"{row['ratio_ci_high']:.3f}, p={row['p_value']:.3g})")
        else:
            verdict = "reproduced"
            reason = f"here/original {row['ratio']:.3f}, within noise"
            if not row["detectable"]:
                reason += " (too few repetitions to detect a change)"
        there, here = (speedups or {}).get(str(row["cell"]), (math.nan, math.nan))
        if math.isfinite(there) and math.isfinite(here):
            reason += f"; speedup over sequential {there:.2f}x there, {here:.2f}x here"
        rows.append({"cell": row["cell"], "verdict": verdict, "reason": reason,
                     "speedup_original": there, "speedup_here": here})
    for cell in only_in_original:
        rows.append({"cell": cell, "verdict": "not comparable",
                     "reason": "not measured here: this run's matrix has no such cell (a config "
                               "this harness spells differently)",
                     "speedup_original": math.nan, "speedup_here": math.nan})
    for pid, (label, why) in missing.items():
        rows.append({"cell": f"all {groups.get(pid, 0)} cell groups of {label}",
                     "verdict": "not comparable", "reason": why,
                     "speedup_original": math.nan, "speedup_here": math.nan})
    return pd.DataFrame(rows, columns=["cell", "verdict", "reason", "speedup_original",
                                       "speedup_here"])


def _speedups(original: Path, here: Path, keys: list[str]) -> dict[str, tuple[float, float]]:
    """Cell label (as compare names it) -> (speedup there, speedup here)."""
    from gilbench.report.aggregate import summarize
    from gilbench.report.compare import cell_label
    from gilbench.report.load import load_run

    found: dict[str, list[float]] = {}
    for side, run_dir in enumerate((original, here)):
        frame = summarize(load_run(run_dir)).frame
        for _, row in frame.iterrows():
            found.setdefault(cell_label(row, keys), [math.nan, math.nan])[side] = float(
                row["speedup"])
    return {cell: (pair[0], pair[1]) for cell, pair in found.items()}


def agreement(outcome: Outcome, tolerance: float = 0.05) -> str:
    """How many speedups over sequential agree within `tolerance`, or ""."""
    pairs = outcome.cells[["speedup_original", "speedup_here"]].dropna()
    if pairs.empty:
        return ""
    close = ((pairs["speedup_here"] / pairs["speedup_original"] - 1).abs() <= tolerance).sum()
    return (f"Speedups over sequential (the relative claims): {int(close)} of {len(pairs)} "
            f"agree within {tolerance:.0%}.")


def judge(original: Path, reproduction: Path) -> Outcome:
    """Compare the reproduction with the original cell by cell; write reproduce.md/html.
    The comparison is against the part of the original this host could run (a copy of
    it, in the reproduction's folder); the rest is named as not comparable."""
    from gilbench.report.compare import compare_runs

    manifest = runfolder.read_manifest(reproduction)
    first = runfolder.read_manifest(original)
    of = manifest.extra.get("reproduces") or {}
    missing = {str(k): list(v) for k, v in (of.get("missing") or {}).items()}
    out = reproduction / "reproduce"
    part = runfolder.copy_run(original, out / "original", set(first.pythons) - set(missing))
    result = compare_runs(part, reproduction, out_dir=out)
    groups = {pid: len({(c["model"], json.dumps(c["model_config"], sort_keys=True),
                         c["workload"], json.dumps(c["workload_params"], sort_keys=True),
                         c["workers"]) for c in first.cells if c["python"] == pid})
              for pid in missing}
    table = verdicts(result.cells, missing, groups, result.only_in_a,
                     _speedups(part, reproduction, result.matched_by))
    differences = [[d.axis, d.name, d.a, d.b] for d in result.differences]
    differences += [["drift", "allowed by --allow-drift", "-", text]
                    for text in of.get("drift") or []]
    outcome = Outcome(reproduction, original, table, differences, [])
    blocks = _blocks(outcome, first, manifest, [*(of.get("notes") or []), *result.notes])
    outcome.paths = [_write(reproduction / REPRODUCE_MD, document.to_markdown(blocks)),
                     _write(reproduction / REPRODUCE_HTML,
                            document.to_html(blocks, f"gilbench reproduce: {manifest.run_id}"))]
    return outcome


def overall(outcome: Outcome) -> str:
    counts = outcome.counts()
    total = len(outcome.cells)
    if outcome.reproduced:
        return f"Reproduced: all {total} cell groups agree with the original within noise."
    listed = ", ".join(f"{n} {v}" for v, n in counts.items())
    return f"Not reproduced: of {total} cell groups, {listed}."


def _blocks(outcome: Outcome, original: runfolder.Manifest, here: runfolder.Manifest,
            notes: list[str]) -> list[Block]:
    def host(m: runfolder.Manifest) -> str:
        h = m.host
        return (f"{h.get('cpu_model', '?')}, {h.get('cores', '?')} cores, kernel "
                f"{h.get('kernel', '?')}, load {h.get('loadavg', '?')}")

    blocks: list[Block] = [
        Heading(1, f"gilbench reproduce: {original.run_id} here as {here.run_id}"),
        Paragraph(overall(outcome)),
        *([Paragraph(agreement(outcome))] if agreement(outcome) else []),
        Table(["run", "id", "host"], [["original", original.run_id, host(original)],
                                      ["here", here.run_id, host(here)]]),
        Heading(2, "Verdict per cell group"),
        Table(["cell group", "verdict", "reason"],
              [[str(r.cell), str(r.verdict), str(r.reason)]
               for r in outcome.cells.itertuples()]),
        Paragraph("reproduced: no change beyond noise by `invoke compare`'s rule (Mann-Whitney "
                  "p < 0.05, the bootstrap 95% CI of the ratio of medians excluding 1, and a "
                  "change above 5%); faster / slower: a change beyond it, here against the "
                  "original."),
        Heading(2, "What differs between the two hosts and runs"),
    ]
    blocks.append(Table(["axis", "what", "original", "here"], outcome.differences)
                  if outcome.differences else Paragraph("Nothing recorded differs."))
    if notes:
        blocks += [Heading(2, "Notes"), Bullets(notes)]
    return blocks


def _write(path: Path, text: str) -> Path:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    return path
