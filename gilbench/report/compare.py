"""Compare two runs cell by cell: which changes are real, and what else differed between them."""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gilbench.report import stats
from gilbench.report.aggregate import GROUP_KEYS, Summary, summarize
from gilbench.report.document import Block, Bullets, Heading, Paragraph, Table, to_markdown
from gilbench.report.errors import ReportError
from gilbench.report.load import RunData, load_run

ALPHA = 0.05
# Changes smaller than this are treated as noise even when significant: a 2% shift between
# two runs on different days is within what a shared machine does on its own.
THRESHOLD = 0.05
CELL_KEYS = ["workload", "workload_params", "model", "model_config", "workers"]
COMPARE_MD = "compare.md"
COMPARE_CSV = "compare.csv"
HOST_KEYS_IGNORED = ("loadavg",)  # differs every run; shown for context, not as an axis
PYTHON_FIELDS = ("version", "variant", "gil_disabled", "config_args", "cc", "sha256", "image")


@dataclass
class AxisDifference:
    axis: str  # "host", "pythons", "config args", "matrix", "experiments", "tool", "backend"
    name: str  # e.g. "host.kernel", "python 3.13.5-pgo config_args"
    a: str
    b: str


@dataclass
class CompareResult:
    run_a: Path
    run_b: Path
    matched_by: list[str]  # the columns cells were matched on
    python_note: str  # "" when matched by python label; why not, otherwise
    differences: list[AxisDifference]
    cells: pd.DataFrame = field(repr=False)  # one row per matched cell, B relative to A
    only_in_a: list[str]
    only_in_b: list[str]
    notes: list[str]
    paths: list[Path]

    @property
    def axes_differ(self) -> list[str]:
        return sorted({d.axis for d in self.differences})

    @property
    def changes(self) -> pd.DataFrame:
        """Cells whose timing moved beyond noise, or whose status changed."""
        return self.cells[self.cells["beyond_noise"] | self.cells["status_changed"]]


def _short(value: Any, limit: int = 80) -> str:
    text = "-" if value is None else str(value)
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return f"{text[: limit - 20]}... (sha256 {digest})"


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[AxisDifference]:
    found: list[AxisDifference] = []

    def check(axis: str, name: str, value_a: Any, value_b: Any) -> None:
        if value_a != value_b:
            found.append(AxisDifference(axis, name, _short(value_a), _short(value_b)))

    host_a, host_b = a.get("host") or {}, b.get("host") or {}
    for key in sorted(set(host_a) | set(host_b)):
        if key not in HOST_KEYS_IGNORED:
            check("host", f"host.{key}", host_a.get(key), host_b.get(key))
    pythons_a, pythons_b = a.get("pythons") or {}, b.get("pythons") or {}
    labels_a = {info.get("label") or p: info for p, info in pythons_a.items()}
    labels_b = {info.get("label") or p: info for p, info in pythons_b.items()}
    check("pythons", "python labels", ", ".join(sorted(labels_a)), ", ".join(sorted(labels_b)))
    pairs = [(label, label) for label in sorted(set(labels_a) & set(labels_b))]
    if not pairs and len(labels_a) == len(labels_b) == 1:  # one python each: compare those
        pairs = [(next(iter(labels_a)), next(iter(labels_b)))]
    for label_a, label_b in pairs:
        name = label_a if label_a == label_b else f"{label_a} / {label_b}"
        for key in PYTHON_FIELDS:
            axis = "config args" if key == "config_args" else "pythons"
            check(
                axis, f"python {name} {key}", labels_a[label_a].get(key), labels_b[label_b].get(key)
            )
    matrix_a, matrix_b = a.get("matrix") or {}, b.get("matrix") or {}
    check("matrix", "matrix.name", matrix_a.get("name"), matrix_b.get("name"))
    check("matrix", "matrix.text", matrix_a.get("text"), matrix_b.get("text"))
    check("experiments", "experiments_hash", a.get("experiments_hash"), b.get("experiments_hash"))
    check("tool", "tool_version", a.get("tool_version"), b.get("tool_version"))
    check("backend", "limits", a.get("limits"), b.get("limits"))
    backend_a, backend_b = _backends(a), _backends(b)
    if len(backend_a) == len(backend_b) == 1:  # one python each: compare those two
        backend_a = {"": next(iter(backend_a.values()))}
        backend_b = {"": next(iter(backend_b.values()))}
    for key in sorted(set(backend_a) | set(backend_b)):
        check("backend", f"backend {key}".strip(), backend_a.get(key), backend_b.get(key))
    return found


def _backends(manifest: dict[str, Any]) -> dict[str, Any]:
    """Where each python ran, by label; container ids and image names always differ."""
    pythons = manifest.get("pythons") or {}
    labels = {pid: info.get("label") or pid for pid, info in pythons.items()}
    return {
        labels.get(pid, pid): {k: v for k, v in entry.items() if k not in ("container", "image")}
        for pid, entry in (manifest.get("backend") or {}).items()
        if isinstance(entry, dict)
    }


def _match_keys(run_a: RunData, run_b: RunData) -> tuple[list[str], str]:
    labels_a = set(run_a.frame["python_label"].astype(str))
    labels_b = set(run_b.frame["python_label"].astype(str))
    if labels_a == labels_b:
        return ["python_label", *CELL_KEYS], ""
    if len(labels_a) == 1 and len(labels_b) == 1:
        note = (
            f"The runs used different pythons ({labels_a.pop()} in A, {labels_b.pop()} in B), "
            "so cells are matched by everything but python."
        )
        return list(CELL_KEYS), note
    raise ReportError(
        f"The runs used different sets of pythons ({', '.join(sorted(labels_a))} vs "
        f"{', '.join(sorted(labels_b))}), so their cells cannot be paired; compare runs of the "
        "same pythons, or runs of one python each."
    )


def cell_label(row: pd.Series, keys: list[str]) -> str:
    """How compare names a cell group (also reproduce's key for its speedups)."""
    parts = [str(row["workload_label"])]
    if "python_label" in keys:
        parts.append(str(row["python_label"]))
    parts.append(str(row["model_label"]))
    workers = int(row["workers"])
    return " / ".join(parts) + f" at {workers} worker{'' if workers == 1 else 's'}"


def _cell_row(
    key: tuple[Any, ...], row_a: pd.Series, row_b: pd.Series, a: np.ndarray, b: np.ndarray
) -> dict[str, Any]:
    median_a, median_b = stats.median(a), stats.median(b)
    ratio = median_b / median_a if a.size and b.size else math.nan
    low, high = stats.bootstrap_ratio_ci(b, a, stats.seed_for("compare/" + "/".join(map(str, key))))
    p_value = stats.mann_whitney_p(a, b)
    significant = bool(p_value < ALPHA) if not math.isnan(p_value) else False
    beyond = (
        significant
        and not (low <= 1.0 <= high)
        and abs(ratio - 1) > THRESHOLD
    )  # fmt: skip
    if math.isnan(ratio):
        verdict = "not comparable"
    elif beyond:
        verdict = "slower" if ratio > 1 else "faster"
    else:
        verdict = "no change"
    return {
        "status_a": str(row_a["status"]),
        "status_b": str(row_b["status"]),
        "status_changed": str(row_a["status"]) != str(row_b["status"]),
        "n_a": int(a.size),
        "n_b": int(b.size),
        "median_a_s": median_a,
        "median_b_s": median_b,
        "ratio": ratio,
        "ratio_ci_low": low,
        "ratio_ci_high": high,
        "change_pct": (ratio - 1) * 100,
        "p_value": p_value,
        "significant": significant,
        "beyond_noise": beyond,
        "verdict": verdict,
        "detectable": stats.smallest_p(int(a.size), int(b.size)) < ALPHA,
    }


def _index(
    summary: Summary, keys: list[str]
) -> dict[tuple[Any, ...], tuple[pd.Series, np.ndarray]]:
    index = {}
    for _, row in summary.frame.iterrows():
        full = tuple(row[k] for k in GROUP_KEYS)
        index[tuple(str(row[k]) for k in keys)] = (row, summary.samples[full])
    return index


def _cells(
    summary_a: Summary, summary_b: Summary, keys: list[str]
) -> tuple[pd.DataFrame, list[str], list[str]]:
    index_a, index_b = _index(summary_a, keys), _index(summary_b, keys)
    rows = []
    for key in sorted(set(index_a) & set(index_b)):
        (row_a, a), (row_b, b) = index_a[key], index_b[key]
        rows.append({
            "cell": cell_label(row_a, keys),
            **{"python_label_a": str(row_a["python_label"]),
               "python_label_b": str(row_b["python_label"])},
            **dict(zip(keys, key, strict=True)),
            **_cell_row(key, row_a, row_b, a, b),
        })  # fmt: skip
    only_a = sorted(cell_label(index_a[k][0], keys) for k in set(index_a) - set(index_b))
    only_b = sorted(cell_label(index_b[k][0], keys) for k in set(index_b) - set(index_a))
    return pd.DataFrame(rows), only_a, only_b


def _change_sentence(row: pd.Series) -> str:
    if row["status_changed"] and not row["beyond_noise"]:
        return f"{row['cell']}: status {row['status_a']} in A, {row['status_b']} in B."
    direction = "slower" if row["ratio"] > 1 else "faster"
    return (
        f"{row['cell']}: {abs(row['change_pct']):.1f}% {direction} in B (B/A {row['ratio']:.3f}, "
        f"95% CI {row['ratio_ci_low']:.3f}-{row['ratio_ci_high']:.3f}, "
        f"Mann-Whitney p={row['p_value']:.3g})."
    )


def _interval(low: float, high: float) -> str:
    return "-" if math.isnan(low) else f"{low:.3f}-{high:.3f}"


def _num(value: float, digits: int = 4) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}g}"


def _blocks(result: CompareResult, run_a: RunData, run_b: RunData) -> list[Block]:
    def facts(run: RunData) -> list[str]:
        host = run.manifest.host
        pythons = sorted(set(run.frame["python_label"].astype(str)))
        return [run.run_id, run.manifest.started_at or "-",
                f"{host.get('cpu_model', '-')}, kernel {host.get('kernel', '-')}",
                str(host.get("loadavg", "-")), ", ".join(pythons)]  # fmt: skip

    blocks: list[Block] = [
        Heading(1, f"gilbench comparison: {run_a.run_id} (A) vs {run_b.run_id} (B)"),
        Table(
            ["run", "id", "started", "host", "load", "pythons"],
            [["A", *facts(run_a)], ["B", *facts(run_b)]],
        ),
        Heading(2, "Changes beyond noise"),
    ]
    changes = result.changes
    blocks.append(
        Bullets([_change_sentence(r) for _, r in changes.iterrows()])
        if len(changes)
        else Paragraph("No matched cell changed beyond noise, and no status changed.")
    )
    blocks.append(Paragraph(
        f"A change counts when Mann-Whitney U gives p < {ALPHA}, the bootstrap 95% CI of the "
        f"ratio of medians (B/A) excludes 1, and the change exceeds {THRESHOLD:.0%}."
    ))  # fmt: skip
    blocks.append(Heading(2, "What differs between the runs"))
    blocks.append(
        Table(["axis", "what", "A", "B"], [[d.axis, d.name, d.a, d.b] for d in result.differences])
        if result.differences
        else Paragraph("Same host, builds, configure args, matrix, experiments and tool version.")
    )
    notes = [result.python_note] if result.python_note else []
    notes += result.notes
    if notes:
        blocks += [Heading(2, "Notes"), Bullets(notes)]
    rows = [
        [r["cell"], r["status_a"], r["status_b"], f"{r['n_a']}/{r['n_b']}", _num(r["median_a_s"]),
         _num(r["median_b_s"]), _num(r["ratio"], 3),
         _interval(r["ratio_ci_low"], r["ratio_ci_high"]),
         _num(r["p_value"], 3), r["verdict"]]
        for _, r in result.cells.iterrows()
    ]  # fmt: skip
    blocks += [
        Heading(2, "All matched cells"),
        Table(["cell", "status A", "status B", "n A/B", "median A s", "median B s", "B/A",
               "95% CI", "p", "verdict"], rows),
    ]  # fmt: skip
    if result.only_in_a or result.only_in_b:
        blocks.append(Heading(2, "Cells in one run only"))
        blocks.append(Bullets([f"only in A: {c}" for c in result.only_in_a]
                              + [f"only in B: {c}" for c in result.only_in_b]))  # fmt: skip
    return blocks


def _write(out_dir: Path, name: str, text: str) -> Path:
    path = out_dir / name
    temporary = out_dir / f".{name}.tmp"
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)  # never a half-written file under the final name
    return path


def compare_runs(run_a: Path, run_b: Path, out_dir: Path | None = None) -> CompareResult:
    """Compare run B against run A; writes compare.md and compare.csv into out_dir
    (default: <run_b>/compare-<run_a name>/). Raises ReportError when they cannot be paired."""
    loaded_a, loaded_b = load_run(Path(run_a)), load_run(Path(run_b))
    keys, python_note = _match_keys(loaded_a, loaded_b)
    summary_a, summary_b = summarize(loaded_a), summarize(loaded_b)
    cells, only_a, only_b = _cells(summary_a, summary_b, keys)
    if cells.empty:
        raise ReportError(
            f"Runs {loaded_a.run_id} and {loaded_b.run_id} share no cell (same workload, "
            "params, model, config and workers); compare runs of overlapping matrices."
        )
    notes = [
        f"Run {side}: {w}"
        for side, run in (("A", loaded_a), ("B", loaded_b))
        for w in [run.completeness.sentence(run.run_id), *run.warnings] if w
    ]
    blind = cells[~cells["detectable"] & (cells["n_a"] > 0) & (cells["n_b"] > 0)]
    if len(blind):
        notes.append(
            f"{len(blind)} cell(s) have too few ok repetitions for Mann-Whitney to reach "
            f"p < {ALPHA} (at least 4 per side are needed); run more repetitions to detect changes."
        )
    result = CompareResult(
        run_a=loaded_a.run_dir,
        run_b=loaded_b.run_dir,
        matched_by=keys,
        python_note=python_note,
        differences=_differences(loaded_a.manifest.to_json(), loaded_b.manifest.to_json()),
        cells=cells,
        only_in_a=only_a,
        only_in_b=only_b,
        notes=notes,
        paths=[],
    )
    out = (
        Path(out_dir)
        if out_dir is not None
        else loaded_b.run_dir / f"compare-{loaded_a.run_dir.name}"
    )
    out.mkdir(parents=True, exist_ok=True)
    result.paths = [
        _write(out, COMPARE_CSV, cells.to_csv(index=False, float_format="%.6g")),
        _write(out, COMPARE_MD, to_markdown(_blocks(result, loaded_a, loaded_b))),
    ]
    return result
