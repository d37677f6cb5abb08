"""report_run end to end on the fixture runs: outputs, content, failures, atomicity."""

from __future__ import annotations

import errno
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from gilbench.report import ReportError, ReportResult, newest_run, report_run
from gilbench.report import run as run_module

from .helpers import RUN_A, RUN_B, manifest, record, write_run

OUTPUTS = {"summary.csv", "summary.parquet", "report.md", "report.html", "plots"}
PLOTS = {f"{name}.{ext}" for name in ("speedup", "throughput", "startup", "memory", "sweep")
         for ext in ("png", "svg")}  # fmt: skip


def _listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> ReportResult:
    """Run A reported once for the tests that only read the outputs (plots take seconds)."""
    folder = tmp_path_factory.mktemp("reported") / RUN_A.name
    return report_run(Path(shutil.copytree(RUN_A, folder)))


def test_report_writes_every_output(reported: ReportResult) -> None:
    result, run_a = reported, reported.run_dir
    assert _listing(run_a) == {"manifest.json", "records.jsonl"} | OUTPUTS
    assert _listing(run_a / "plots") == PLOTS
    assert {p.name for p in result.paths} == (OUTPUTS - {"plots"}) | PLOTS
    assert all(p.is_file() and p.stat().st_size > 0 for p in result.paths)
    assert result.warnings == []


def test_report_md_puts_the_decision_first(reported: ReportResult) -> None:
    result = reported
    text = result.report_md.read_text()
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections == ["## Decision", "## Key findings", "## Plots", "## Baselines",
                        "## Results", "## Failures", "## Provenance"]  # fmt: skip
    findings = "\n".join(result.findings)
    assert re.search(
        r"fib\(n=24,tasks=8\) on 3\.13\.5-pgo: subinterpreters\(gil=own\) 1\.9\dx at 2 "
        r"workers \(95% CI",
        findings,
    )
    assert re.search(r"it is the cheapest of them to start\); it pays off for jobs longer "
                     r"than [\d.]+ ms of work; threads (0\.9\d|1\.0\d)x", findings)
    # io: a tie, and threads start hundreds of times faster, so they are the advice
    assert re.search(r"io\(ms=50,tasks=8\) on 3\.13\.5-pgo: threads 1\.9\dx at 2 workers .*"
                     r"\(ties processes\(start_method=spawn\) 1\.9\dx within \d%; starts \d+x "
                     r"faster\)", findings)
    assert "### fib(n=24,tasks=8) on 3.13.5-pgo" in text.split("## Key findings")[0]
    assert ("fib(n=24,tasks=8) across builds: fastest is subinterpreters(gil=own) on "
            "3.13.5-pgo at 2 workers" in findings)
    assert "3.13.5-ft's single-thread cost is 75% (its sequential runs at 0.57x" in findings
    # interpreter-pool's 20 unsupported records (3.14 only) are no failures: said apart
    assert "30 of 190 records did not finish ok" in findings
    assert ("4 cell groups not supported by this build (interpreter-pool on 3.13.5-ft, "
            "interpreter-pool on 3.13.5-pgo) were not run") in findings
    for finding in result.findings:
        assert f"- {finding}" in text


def test_report_md_lists_failures_and_provenance(reported: ReportResult) -> None:
    text = reported.report_md.read_text()
    failures = text.split("## Failures")[1].split("## Provenance")[0]
    assert "killed by SIGSEGV" in failures
    assert "per-interpreter obmalloc does not support single-phase init" in failures
    assert "timed out after 120 s" in failures
    assert "InterpreterPoolExecutor needs Python 3.14" in failures
    provenance = text.split("## Provenance")[1]
    expected_values = (
        "Intel(R) Xeon(R) Platinum 8481C", "6.1.0-26-amd64", "'--disable-gil'", "3c4d5e6f" * 8,
        "gilbench/cpython:3.13.5-pgo-0123456789ab", "[0.08, 0.12, 0.1]", 'name = "quick"',
    )  # fmt: skip
    for expected in expected_values:
        assert expected in provenance, expected
    assert "| 3.13.5-ft | 3.13.5-pgo |" in text  # which baseline is which


def test_summary_tables_round_trip(reported: ReportResult) -> None:
    result, run_a = reported, reported.run_dir
    parquet = pd.read_parquet(run_a / "summary.parquet")
    csv = pd.read_csv(run_a / "summary.csv")
    assert len(parquet) == len(csv) == len(result.summary) == 42
    assert isinstance(parquet["model"].dtype, pd.CategoricalDtype)
    assert str(parquet["n_ok"].dtype) == "Int64"
    row = parquet[(parquet["model_label"] == "subinterpreters(gil=own)")
                  & (parquet["python_label"] == "3.13.5-pgo") & (parquet["workers"] == 2)
                  & (parquet["workload"] == "fib")].iloc[0]  # fmt: skip
    assert 1.9 < row["speedup"] < 2.05
    assert row["baseline_python"] == "3.13.5-pgo"
    ft = parquet[(parquet["model"] == "threads") & (parquet["python_label"] == "3.13.5-ft")
                 & (parquet["workers"] == 2) & (parquet["workload"] == "fib")].iloc[0]  # fmt: skip
    # free-threaded threads scale against their own slow sequential, less against the GIL build
    assert ft["speedup"] > 1.9 and 1.0 < ft["rel_throughput"] < 1.2


def test_html_is_self_contained(reported: ReportResult) -> None:
    html = reported.report_html.read_text()
    assert html.count('<img src="data:image/png;base64,') == 5
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", html)
    assert "<link" not in html and "<script" not in html
    assert "Key findings" in html.split("Results")[0]


def test_report_is_regenerated_identically(run_a: Path) -> None:
    first = report_run(run_a)
    md, csv = first.report_md.read_text(), (run_a / "summary.csv").read_text()
    svg = (run_a / "plots" / "speedup.svg").read_text()
    second = report_run(run_a)
    assert second.report_md.read_text() == md
    assert (run_a / "summary.csv").read_text() == csv
    assert (run_a / "plots" / "speedup.svg").read_text() == svg
    assert not [p for p in run_a.iterdir() if p.name.startswith(".report-")]


POOL = "concurrent.futures.InterpreterPoolExecutor needs Python 3.14; this is 3.13."


def test_unsupported_models_are_one_line_each_and_no_failures(tmp_path: Path) -> None:
    """A model the build lacks: one line per model and python under Failures (not a row per
    cell), no rows in the Results tables, outside the "did not finish ok" count."""
    records = [record("sequential", 1, i, 1.0 + i / 100) for i in range(3)]
    records += [record("threads", 2, i, 0.55 + i / 100) for i in range(3)]
    records += [record("interpreter-pool", w, i, None, status="unsupported", message=POOL,
                       cell_id=f"c-pool-{w}-{n}", workload_params={"n": n, "tasks": 8})
                for w in (1, 2, 4) for n in (24, 25) for i in range(3)]  # fmt: skip
    result = report_run(write_run(tmp_path / "run", manifest(), records))
    text = result.report_md.read_text()
    failures = text.split("## Failures")[1].split("## Provenance")[0]
    assert failures.count("interpreter-pool") == 1
    assert ("- interpreter-pool: concurrent.futures.InterpreterPoolExecutor needs Python 3.14; "
            "this is 3.13; not run on 3.13.0 (6 cell groups)") in failures
    assert "| interpreter-pool |" not in text  # no dash rows anywhere
    assert "Every other record finished ok." in failures
    assert "did not finish ok" not in " ".join(result.findings)
    assert ("All 6 records finished ok. 6 cell groups not supported by this build "
            "(interpreter-pool on 3.13.0) were not run; Failures says why.") in result.findings


def test_missing_plot_data_is_skipped_and_said(tmp_path: Path) -> None:
    records = [record("sequential", 1, i, 1.0 + i / 100) for i in range(3)]
    records += [record("threads", 2, i, 0.55 + i / 100) for i in range(3)]
    result = report_run(write_run(tmp_path / "run", manifest(), records))
    assert "Plot sweep skipped: The run sweeps no sub-interpreter config flags." in result.warnings
    assert not (tmp_path / "run" / "plots" / "sweep.png").exists()
    assert (tmp_path / "run" / "plots" / "speedup.png").exists()
    assert (
        "Skipped: The run sweeps no sub-interpreter config flags." in result.report_md.read_text()
    )


def test_all_crashed_run_still_reports(tmp_path: Path) -> None:
    cells = [("sequential", 1), ("threads", 2), ("subinterpreters", 2)]
    records = [record(model, workers, i, None) for model, workers in cells for i in range(3)]
    result = report_run(write_run(tmp_path / "run", manifest(), records))
    assert any(f.startswith("No record finished ok: all 9 records failed (9 crashed)")
               for f in result.findings)  # fmt: skip
    text = result.report_md.read_text()
    assert "killed by SIGSEGV" in text.split("## Failures")[1]
    assert len(result.summary) == 3 and result.summary["wall_median_s"].isna().all()
    assert {w.split(":")[0] for w in result.warnings} == {
        "Plot speedup skipped", "Plot throughput skipped", "Plot startup skipped",
        "Plot memory skipped", "Plot sweep skipped",
    }  # fmt: skip
    assert result.report_html.is_file()


def test_truncated_last_line_warns_in_the_report(run_a: Path) -> None:
    with (run_a / "records.jsonl").open("a") as handle:
        handle.write('{"schema_version": 1, "run_id": "20261125T13')
    result = report_run(run_a)
    assert len(result.warnings) == 1 and "unfinished last line" in result.warnings[0]
    assert "## Warnings" in result.report_md.read_text()


@pytest.mark.parametrize(
    "damage",
    ["empty records", "newer manifest", "no manifest"],
)
def test_failures_leave_no_outputs(tmp_path: Path, damage: str) -> None:
    run = Path(shutil.copytree(RUN_A, tmp_path / "run"))
    if damage == "empty records":
        (run / "records.jsonl").write_text("")
    elif damage == "newer manifest":
        text = (run / "manifest.json").read_text()
        (run / "manifest.json").write_text(
            text.replace('"schema_version": 1', '"schema_version": 2', 1)
        )
    else:
        (run / "manifest.json").unlink()
    before = _listing(run)
    with pytest.raises(ReportError):
        report_run(run)
    assert _listing(run) == before


@pytest.mark.parametrize(
    ("failure", "raised"),
    [(RuntimeError("a bug"), RuntimeError),
     (OSError(errno.ENOSPC, "No space left on device"), ReportError)],
)
def test_a_failed_regeneration_leaves_no_report_looking_current(
    run_a: Path, monkeypatch: pytest.MonkeyPatch, failure: Exception, raised: type
) -> None:
    """Issue 7: the previous report no longer matches the records, so it goes; the raw
    files stay as they were, and a full disk is one sentence."""
    report_run(run_a)
    raw = {name: (run_a / name).read_bytes() for name in ("manifest.json", "records.jsonl")}

    def broken(*_args: object) -> list[Path]:
        raise failure

    plots = dict(run_module.PLOTS)
    plots["memory"] = (broken, "Memory", "caption")
    monkeypatch.setattr(run_module, "PLOTS", plots)
    with pytest.raises(raised) as caught:
        report_run(run_a)
    if raised is ReportError:
        assert str(caught.value) == (
            f"Writing the report of {run_a.name} failed (the disk is full); the records are "
            "untouched, so run `invoke report` again once that is fixed."
        )
    assert _listing(run_a) == set(raw)
    assert {name: (run_a / name).read_bytes() for name in raw} == raw
    monkeypatch.undo()
    report_run(run_a)  # and it regenerates once the cause is gone
    assert (run_a / "report.html").is_file()


def test_missing_run_folder(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="does not exist"):
        report_run(tmp_path / "missing")
    assert list(tmp_path.iterdir()) == []


def test_newest_run(tmp_path: Path) -> None:
    shutil.copytree(RUN_B, tmp_path / RUN_B.name)
    shutil.copytree(RUN_A, tmp_path / RUN_A.name)
    (tmp_path / "not-a-run").mkdir()
    assert newest_run(tmp_path) == tmp_path / RUN_B.name
    with pytest.raises(ReportError, match="holds no run folders"):
        newest_run(tmp_path / "not-a-run")
    with pytest.raises(ReportError, match="does not exist"):
        newest_run(tmp_path / "nothing")


def test_explicit_baseline(run_a: Path) -> None:
    result = report_run(run_a, baseline="3.13.5-ft")
    assert set(result.summary["baseline_python"].astype(str)) == {"3.13.5-ft"}
    with pytest.raises(ReportError, match=r"choose one of 3\.13\.5-ft, 3\.13\.5-pgo"):
        report_run(run_a, baseline="2.7")
