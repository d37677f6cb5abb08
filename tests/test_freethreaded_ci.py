"""The free-threaded build in CI, head to head with the GIL build (issue 18, part 4).

One run of the quick matrix against both 3.13.5 builds: the GIL PGO image and the
free-threaded PGO image, each built once per session (tests/conftest.py: `pgo_build`,
`freethreaded_build`).
Then `invoke report` and `invoke advise` on that run, as a user would type them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import invoke, ok_or_creation_flake

pytestmark = [pytest.mark.docker, pytest.mark.slow]

GIL, FT = "3.13.5-pgo", "3.13.5-freethreaded"
MODELS = ("sequential", "threads", "processes", "subinterpreters")
FIB = "fib(n=24,tasks=8)"  # quick.toml's CPU-bound workload, as the report labels it


@pytest.fixture(scope="module")
def head_to_head(gil_pgo_build: dict[str, Any], freethreaded_build: dict[str, Any],
                 tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run folder of the quick matrix on both builds in one run (what
    `invoke experiment --matrix quick --python 3.13.5 --python 3.13.5/freethreaded` does,
    with the test builds named directly); the runner places it on the usable cores."""
    from gilbench import matrix, run, targets

    chosen = [targets._from_build(gil_pgo_build), targets._from_build(freethreaded_build)]
    return run.start(matrix.load("quick"), chosen, tmp_path_factory.mktemp("results"),
                     run.Limits("", "2g"), "test", lambda kind, payload: None)


def test_the_freethreaded_build_has_no_gil(freethreaded_build: dict[str, Any]) -> None:
    record = freethreaded_build
    assert (record["version"], record["variant"]) == ("3.13.5", "freethreaded")
    assert record["source_verified"] and record["signature"]["status"] == "good"
    assert "'--disable-gil'" in record["config_args"]
    assert "'--enable-optimizations'" in record["config_args"]
    assert "pgo-training" in record["phases"]
    assert record["smoke"]["gil_disabled"] is True
    assert record["smoke"]["subinterpreters_ok"] is True


def test_both_builds_run_every_model(head_to_head: Path) -> None:
    from gilbench import runfolder

    manifest = runfolder.read_manifest(head_to_head)
    records = runfolder.read_records(head_to_head).records
    planned = {(c["cell_id"], r) for c in manifest.cells for r in c["repetitions"]}
    assert {(r["cell_id"], r["repetition"]) for r in records} == planned
    label = {pid: entry["label"] for pid, entry in manifest.pythons.items()}
    assert sorted(label.values()) == [FT, GIL]
    assert {label[pid]: entry["gil_disabled"] for pid, entry in manifest.pythons.items()} == {
        GIL: False, FT: True}
    for python in (GIL, FT):
        mine = [r for r in records if label[r["python"]] == python]
        for model in MODELS:
            cells = [r for r in mine if r["model"] == model]
            assert {r["workload"] for r in cells} == {"fib", "io"}, (python, model)
            # A sub-interpreter that CPython 3.13 fails to create under load is a result
            # (conftest.CREATION_FLAKE); everything else must have run.
            assert all(ok_or_creation_flake(r) for r in cells), [
                (r["status"], r["message"]) for r in cells if r["status"] != "ok"]
            for workload in ("fib", "io"):  # every config (gil=own, gil=shared) ran too
                configs = {json.dumps(r["model_config"], sort_keys=True) for r in cells}
                for config in configs:
                    assert any(r["status"] == "ok" and r["workload"] == workload
                               and json.dumps(r["model_config"], sort_keys=True) == config
                               for r in cells), (python, model, config, workload)
        pool = [r for r in mine if r["model"] == "interpreter-pool"]
        assert pool and {r["status"] for r in pool} == {"unsupported"}  # 3.14's, not 3.13's
        ran = [r for r in mine if r["status"] == "ok"]
        # sys._is_gil_enabled() in the measured process: off on --disable-gil, on otherwise
        assert {r["gil_enabled"] for r in ran} == {python == GIL}, python


def test_report_and_advice_cover_both_builds(head_to_head: Path) -> None:
    report = invoke("report", "--run", str(head_to_head))
    assert report.returncode == 0, report.stdout + report.stderr
    text = (head_to_head / "report.md").read_text()
    assert GIL in text and FT in text
    advice = invoke("advise", "--run", str(head_to_head))
    assert advice.returncode == 0, advice.stdout + advice.stderr
    for python in (GIL, FT):
        assert f"{FIB} on {python}: " in advice.stdout, advice.stdout


# The contract of the cross-build comparison (issue 18, part 4, report side:
# gilbench/report/decision.py and findings.py; docs/advise.md): one line per CPU-bound
# workload that starts "{label} across builds:", names the fastest model and build by
# throughput against the GIL build's sequential, gives the free-threaded build's
# single-thread cost in percent and what its threads reach; on a free-threaded build the
# gil=own/gil=shared labels say ", no GIL"; `invoke advise --json` gives one decision per
# workload and python.

def _report(run_dir: Path) -> str:
    path = run_dir / "report.md"
    if not path.is_file():
        done = invoke("report", "--run", str(run_dir))
        assert done.returncode == 0, done.stdout + done.stderr
    return path.read_text()


def _check_across(line: str) -> None:
    assert re.search(r"single-thread cost[^;]*?\d+(\.\d+)?\s?%", line), line
    later = line.split(";")[1:]  # what free-threaded threads reach, after the fastest
    assert any("threads" in part and re.search(r"\d+(\.\d+)?x", part) for part in later), line


def test_the_report_compares_the_builds_per_cpu_workload(head_to_head: Path) -> None:
    lines = [line.strip().lstrip("-* ") for line in _report(head_to_head).splitlines()]
    across = [line for line in lines if line.startswith(f"{FIB} across builds:")]
    assert across, "no cross-build line for fib in report.md"
    for line in across:
        _check_across(line)
    advice = invoke("advise", "--run", str(head_to_head))
    assert advice.returncode == 0, advice.stderr
    # advise breaks its sentences after "; ": join them back before checking
    said = re.sub(r";\n\s+", "; ", advice.stdout).splitlines()
    told = [line for line in said if line.startswith(f"{FIB} across builds:")]
    assert len(told) == 1, advice.stdout
    _check_across(told[0])


def _build_of(line: str, section: str | None) -> str | None:
    """Which build a report.md line speaks of: a table row's first cell when it names one,
    else the build after the first " on " ("fib(...) on 3.13.5-pgo: ..."), else the
    section's."""
    if line.startswith("|"):
        first = line.strip("|").split("|")[0].strip()
        return first if first in (GIL, FT) else section
    found = [(line.find(f" on {python}"), python) for python in (GIL, FT)
             if f" on {python}" in line]
    return min(found)[1] if found else section


def test_no_gil_is_shared_on_the_freethreaded_build(head_to_head: Path) -> None:
    """On --disable-gil there is no GIL to own or share: the labels say so, in the
    summary table and everywhere report.md speaks of that build."""
    import pandas as pd

    text = _report(head_to_head)
    summary = pd.read_csv(head_to_head / "summary.csv")
    subinterpreters = summary[summary["model"] == "subinterpreters"]
    for python, labels in subinterpreters.groupby("python_label")["model_label"]:
        assert {label.endswith(", no GIL)") for label in labels} == {python == FT}, (
            python, sorted(set(labels)))
    seen: dict[str, set[str]] = {GIL: set(), FT: set()}
    section: str | None = None
    for line in text.splitlines():
        if line.startswith("#"):
            section = _build_of(line, None)
            continue
        build = _build_of(line, section)
        for config in re.findall(r"subinterpreters\(([^()]*gil=[^()]*)\)", line):
            if build is not None:
                seen[build].add(config)
    assert seen[FT] and all(config.endswith(", no GIL") for config in seen[FT]), seen[FT]
    assert seen[GIL] and not any("no GIL" in config for config in seen[GIL]), seen[GIL]


def test_advise_json_has_one_decision_per_workload_and_python(head_to_head: Path) -> None:
    import jsonschema

    from tests.conftest import REPO

    done = invoke("advise", "--json", "--run", str(head_to_head))
    assert done.returncode == 0, done.stdout + done.stderr
    advice = json.loads(done.stdout)
    jsonschema.validate(advice, json.loads((REPO / "docs" / "advise.schema.json").read_text()))
    assert advice["run"] == head_to_head.name
    decisions = advice["decisions"]
    pairs = [(d["workload"], d["python"]) for d in decisions]
    assert sorted(pairs) == sorted(
        (w, p) for w in (FIB, "io(ms=10,tasks=8)") for p in (GIL, FT)), pairs
    for decision in decisions:
        assert {"workload", "python", "choice", "workers", "speedup", "ci_low", "ci_high",
                "tied", "break_even_s", "startup_s", "mib_per_worker",
                "flags"} <= set(decision), decision
    fib = [a for a in advice["across_builds"] if a["workload"] == FIB]
    assert [(a["free_threaded"], a["gil_build"]) for a in fib] == [(FT, GIL)]
    assert fib[0]["single_thread_cost"] is not None and fib[0]["threads_workers"] in (1, 2)
