"""Key findings beside the decision tables: the best across builds, what failed, what to
distrust; and the warnings, one line per concern."""

from __future__ import annotations

import math

import pandas as pd

from experiments.records import STATUSES
from gilbench.report import stats
from gilbench.report.aggregate import Summary
from gilbench.report.decision import across_builds, is_startup, rerun_command


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def times(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}x"


def _startup_mask(table: pd.DataFrame) -> pd.Series:
    return table["workload"].astype("string").map(is_startup).astype(bool)


def _artefacts(table: pd.DataFrame) -> pd.Series:
    return table["artefact"].fillna("").astype(str) != ""


def _group_name(row: pd.Series) -> str:
    return (f"{row['model_label']} at {plural(int(row['workers']), 'worker')} on "
            f"{row['python_label']}")


def _listed(names: list[str], limit: int = 3) -> str:
    """A few names in full; more than that would drown the line, so the table has them."""
    if len(names) <= limit:
        return ", ".join(names)
    return "the report's Warnings in detail lists them"


def _best_sentences(summary: Summary) -> list[str]:
    """Per workload run on several builds without a free-threaded one beside its GIL build
    (decision.across_builds answers those), the fastest cell across the builds, by
    throughput against the reference (the decision lines answer within one build)."""
    # A free-threaded build's workloads have their line in the Decision section.
    compared = {entry["workload"] for entry in across_builds(summary)}
    sentences: list[str] = []
    table = summary.frame
    for workload, group in table.groupby("workload_label", observed=True, sort=True):
        if (str(workload) in compared or is_startup(group["workload"].iloc[0])
                or group["python"].nunique() < 2):
            continue
        ranked = group[group["rel_throughput"].notna() & ~_artefacts(group)].sort_values(
            "rel_throughput", ascending=False
        )
        if not len(ranked):
            continue
        best = ranked.iloc[0]
        sentences.append(
            f"Best on {workload}: {best['model_label']} on {best['python_label']} at "
            f"{plural(int(best['workers']), 'worker')}, {times(best['rel_throughput'])} the "
            f"throughput of sequential on {best['baseline_python']}."
        )
    return sentences


def _gil_sentences(table: pd.DataFrame) -> list[str]:
    """A free-threaded build whose GIL came back (an extension module can re-enable it)."""
    back = table[table["gil_disabled_build"].fillna(False) & table["gil_enabled"].fillna(False)]
    return [
        f"On {python}, a free-threaded build, the GIL was enabled at run time in "
        f"{len(group)} cell group(s), so their timings are not free-threaded ones."
        for python, group in back.groupby("python_label", observed=True, sort=True)
    ]


def unsupported_mask(table: pd.DataFrame) -> pd.Series:
    """Groups whose every record is `unsupported`: a model (or config) the build does not
    have, not a failure of it."""
    return (table["n_records"] > 0) & (table["n_unsupported"] == table["n_records"])


def unsupported_lines(table: pd.DataFrame) -> list[str]:
    """One line per model and python the build does not have, with the records' reason:
    "interpreter-pool: concurrent.futures.InterpreterPoolExecutor needs Python 3.14; this
    is 3.13; not run on 3.13.5-pgo (12 cell groups)"."""
    rows = table[unsupported_mask(table)]
    lines = []
    for (model, python), group in rows.groupby(["model_label", "python_label"], observed=True,
                                               sort=True):
        reasons = sorted({m.strip().rstrip(".") for m in group["messages"].dropna().astype(str)
                          for m in m.split(" | ") if m.strip()})
        why = "; ".join(reasons) or "unsupported"
        lines.append(f"{model}: {why}; not run on {python} ({plural(len(group), 'cell group')})")
    return lines


def _failure_sentence(table: pd.DataFrame) -> str:
    unsupported = unsupported_mask(table)
    skipped = ""
    if unsupported.any():
        names = sorted({f"{r['model_label']} on {r['python_label']}"
                        for _, r in table[unsupported].iterrows()})
        skipped = (f" {plural(int(unsupported.sum()), 'cell group')} not supported by this "
                   f"build ({', '.join(names)}) were not run; Failures says why.")
    table = table[~unsupported]
    total = int(table["n_records"].sum())
    failed = {s: int(table[f"n_{s}"].sum()) for s in STATUSES if s != "ok"}
    n_failed = sum(failed.values())
    if not total:
        return "No record was run." + skipped
    if not n_failed:
        return f"All {total} records finished ok." + skipped
    parts = ", ".join(f"{n} {status}" for status, n in failed.items() if n)
    cells = int((table["n_ok"] < table["n_records"]).sum())
    if n_failed == total:
        return (
            f"No record finished ok: all {total} records failed ({parts}) in {cells} cell "
            "groups, so there are no timings; see Failures for CPython's messages." + skipped
        )
    return (
        f"{n_failed} of {total} records did not finish ok ({parts}) in {cells} cell groups; "
        "they are listed under Failures." + skipped
    )


def _documented_invalid_sentences(table: pd.DataFrame) -> list[str]:
    """Crashes in configs CPython's docs forbid are the documented rule, not a mystery."""
    sentences = []
    rows = table[table["documented_invalid"].fillna("").astype(str) != ""]
    for rule, group in rows.groupby("documented_invalid", sort=True):
        # per python and config: did any of its cell groups not finish ok?
        failed = (group["n_ok"] < group["n_records"]).groupby(
            [group["python"], group["model_config"]], observed=True).any()
        sentences.append(
            f"{int(failed.sum())} of {plural(len(failed), 'configuration')} that break a "
            "documented "
            f"rule did not finish ok ({rule}); they were run anyway, because whether CPython "
            "survives them is itself a finding."
        )
    return sentences


def key_findings(summary: Summary) -> list[str]:
    table = summary.frame
    # Who won per workload, by how much and at what start-up cost is the Decision section's
    # (decision.py); these say what it does not.
    findings = _best_sentences(summary)
    findings += _gil_sentences(table)
    findings.append(_failure_sentence(table))
    findings += _documented_invalid_sentences(table)
    artefacts = int(_artefacts(table).sum())
    if artefacts:
        findings.append(
            f"{artefacts} group(s) show a speedup the host cannot produce (see Warnings); they "
            "are left out of the findings above: rerun them on a quieter host."
        )
    contended = int(table["n_contended"].sum())
    if contended:
        findings.append(
            f"{contended} of {int(table['n_ok'].sum())} ok repetitions ran while other "
            "processes, steal or a CPU quota took the CPU; they are left out of the statistics "
            "(except in groups where every repetition was, whose numbers are marked)."
        )
    noisy, short = int(noisy_mask(table).sum()), int(short_of_quiet_mask(table).sum())
    if noisy:
        findings.append(
            f"{noisy} group(s) are unstable ({UNSTABLE_RULE}); their rows are marked and "
            "their numbers deserve more repetitions."
        )
    if short:
        findings.append(
            f"{short} group(s) kept fewer than {stats.MIN_SAMPLES} quiet repetitions once the "
            "contended ones were left out; their rows are marked."
        )
    return findings


# What "unstable" means, in the words every summary uses.
UNSTABLE_RULE = (f"spread above {stats.UNSTABLE_SPREAD:.0%} and above "
                 f"{stats.TIMER_FLOOR_S * 1e6:.0f} µs, or fewer than {stats.MIN_SAMPLES} "
                 "usable samples")


def short_of_quiet_mask(table: pd.DataFrame) -> pd.Series:
    """Unstable only because contended repetitions left too few quiet ones: the contention
    warning names them already."""
    reason = table["unstable_reason"].fillna("").astype(str)
    return table["unstable"].fillna(False).astype(bool) & reason.str.contains(" quiet sample")


def noisy_mask(table: pd.DataFrame) -> pd.Series:
    """Unstable by their own spread, or short of samples without contention to blame."""
    return table["unstable"].fillna(False).astype(bool) & ~short_of_quiet_mask(table)


def _workload_warnings(workload: str, group: pd.DataFrame) -> list[tuple[str, int, int, str]]:
    """(concern, groups, repetitions, line) for one workload: the line names up to three
    groups; more are counted and left to Warnings in detail."""
    out = []
    artefacts = group[_artefacts(group)]
    if len(artefacts) == 1:
        row = artefacts.iloc[0]
        out.append(("Implausible", 1, 0,
                    f"Implausible: {workload}: {_group_name(row)}: {row['artefact']}."))
    elif len(artefacts):
        names = [_group_name(r) for _, r in artefacts.iterrows()]
        out.append(("Implausible", len(artefacts), 0,
            f"Implausible: {workload}: {len(artefacts)} of {plural(len(group), 'group')} "
            "show a speedup or efficiency the host cannot produce, left out of the findings "
            f"(the sequential baseline probably ran slow): {_listed(names)}."))
    hit = group[group["n_contended"] > 0]
    if len(hit):
        names = [f"{_group_name(r)} ({int(r['n_contended'])} of {int(r['n_ok'])})"
                 for _, r in hit.iterrows()]
        repetitions = int(hit["n_contended"].sum())
        out.append(("Contended", len(hit), repetitions,
            f"Contended: {workload}: {repetitions} repetition(s) in "
            f"{plural(len(hit), 'group')} ran while the host was busy and are left out"
            + _short_of_quiet(group) + f": {_listed(names)}."))
        every = [_group_name(r) for _, r in hit.iterrows() if r["all_contended"]]
        if every:
            which = (", ".join(every) if len(every) <= 3
                     else f"{len(every)} groups (listed in Warnings in detail)")
            out.append(("Busy host", len(every), 0,
                f"Busy host: {workload}: every repetition of {which} was contended, "
                "so their numbers come from a busy host."))
    unstable = group[noisy_mask(group)]
    if len(unstable):
        names = [_group_name(r) for _, r in unstable.iterrows()]
        out.append(("Unstable", len(unstable), 0,
            f"Unstable: {workload}: {len(unstable)} of {plural(len(group), 'group')} "
            f"({UNSTABLE_RULE}): {_listed(names)}."))
    return out


CONCERNS = ("Implausible", "Contended", "Busy host", "Unstable")


def _summary_line(concern: str, hits: list[tuple[str, int, int]], total: int) -> str:
    """One line for a concern several workloads share: counts per workload."""
    groups = sum(n for _, n, _ in hits)
    per = ", ".join(f"{workload} {n}" for workload, n, _ in hits)
    see = "Warnings in detail lists them"
    if concern == "Implausible":
        return (f"Implausible: {groups} groups show a speedup or efficiency the host cannot "
                f"produce ({per}), left out of the decision and the findings; {see}.")
    if concern == "Contended":
        repetitions = sum(r for _, _, r in hits)
        return (f"Contended: {repetitions} repetition(s) in {groups} groups ran while the host "
                f"was busy and are left out ({per}); {see}.")
    if concern == "Busy host":
        return (f"Busy host: every repetition of {groups} groups was contended ({per}), so "
                "their numbers come from a busy host.")
    return f"Unstable: {groups} of {total} groups ({UNSTABLE_RULE}): {per}; {see}."


def remedy(concern: str, command: str = "") -> str:
    """The command that addresses a warning's concern, built on the run's command."""
    again = rerun_command(command)
    if concern == "Unstable":
        return f"rerun with more repetitions: {again} --target-ci 2%"
    if concern == "Contended":
        return f"measure contended repetitions again: {again} --retry-contended 3"
    if concern == "Busy host":
        return ("see what loads the host with invoke doctor, then rerun: "
                f"{again} --retry-contended 3")
    return f"check the host with invoke doctor, then rerun on a quiet one: {again}"


def unstable_warnings(table: pd.DataFrame, command: str = "") -> list[str]:
    """At most one line per concern: per workload with its groups named when one workload
    has it, else counted per workload. Warnings in detail and the rows say the rest. Each
    line ends with the command that addresses it (`command`: the run's own, from its
    manifest, which the remedy reruns with the flag that helps)."""
    by_concern: dict[str, list[tuple[str, int, int, str]]] = {c: [] for c in CONCERNS}
    for workload, group in table.groupby("workload_label", observed=True, sort=True):
        for concern, groups, repetitions, line in _workload_warnings(str(workload), group):
            by_concern[concern].append((str(workload), groups, repetitions, line))
    warnings = []
    for concern, hits in by_concern.items():
        if len(hits) == 1:
            line = hits[0][3]
        elif hits:
            line = _summary_line(concern, [(w, n, r) for w, n, r, _ in hits], len(table))
        else:
            continue
        warnings.append(f"{line} Fix: {remedy(concern, command)}")
    return warnings


def _short_of_quiet(group: pd.DataFrame) -> str:
    short = int(short_of_quiet_mask(group).sum())
    if not short:
        return ""
    return (f" ({short} of them kept fewer than {stats.MIN_SAMPLES} quiet ones: marked "
            "unstable)")


def warning_details(table: pd.DataFrame) -> list[tuple[str, pd.Series, str, str]]:
    """Every group a warning counts, one entry per concern: (workload, row, concern,
    detail), in the order of the warnings."""
    details = []
    for workload, group in table.groupby("workload_label", observed=True, sort=True):
        for _, row in group[_artefacts(group)].iterrows():
            details.append((str(workload), row, "implausible", str(row["artefact"])))
        short = short_of_quiet_mask(group)
        for (_, row), is_short in zip(group[group["n_contended"] > 0].iterrows(),
                                      short[group["n_contended"] > 0], strict=True):
            left = (f"{int(row['n_contended'])} of {int(row['n_ok'])} ok repetitions "
                    "contended" + (", all kept (every one was)" if row["all_contended"]
                                   else ", left out"))
            if is_short:
                left += f"; {row['unstable_reason']}"
            details.append((str(workload), row, "contended", left))
        for _, row in group[noisy_mask(group)].iterrows():
            details.append((str(workload), row, "unstable", str(row["unstable_reason"])))
    return details
