"""Issue 12, merge: real shards of the quick matrix on a native python merge into one run
that reports like any other, with host as an axis and a per-host view; refusals name
what differs; a missing or failed shard leaves a partial merge that names its cells."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from gilbench import matrix, merge, runfolder, shards
from gilbench.errors import GilbenchError
from tests.conftest import invoke


def _env(results: Path) -> dict[str, str]:
    return {"INVOKE_GILBENCH_RESULTS_DIR": str(results)}


@pytest.fixture(scope="module")
def halves(python312: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Shards 1/2 and 2/2 of the quick matrix, run as users run them (about 6 s each)."""
    results = tmp_path_factory.mktemp("shards")
    runs = []
    for spec in ("1/2", "2/2"):
        before = set(results.iterdir())
        done = invoke("experiment", "--matrix", "quick", "--python", str(python312),
                      "--backend", "native", "--shard", spec, env=_env(results))
        assert done.returncode == 0, done.stdout + done.stderr
        (run_dir,) = set(results.iterdir()) - before
        runs.append(run_dir)
    return runs[0], runs[1]


def _copy(source: Path, dest: Path, run_id: str | None = None, keep: int | None = None,
          **changes: Any) -> Path:
    """The run as another host (or another run) would have written it: a changed manifest,
    records re-stamped with a new run_id, or only the first `keep` records."""
    manifest = runfolder.read_manifest(source)
    copy = runfolder.copy_run(source, dest, set(manifest.pythons))
    edited = runfolder.read_manifest(copy)
    for name, value in changes.items():
        setattr(edited, name, value)
    if run_id is not None or keep is not None:
        records = runfolder.read_records(copy).records[:keep]
        (copy / runfolder.RECORDS).unlink()
        writer = runfolder.RecordWriter(copy)
        for record in records:
            writer.append({**record, "run_id": run_id or record["run_id"]})
        writer.close()
        edited.run_id = run_id or edited.run_id
    runfolder.write_manifest(copy, edited)
    return copy


SERVER = {"hostname": "server", "cpu_model": "Big Iron 9000", "cores": 64,
          "cores_online": 64, "cgroup_cpu_max": "200000 100000", "mem_total_kb": 1 << 30}


def test_each_shard_records_its_shard_the_matrix_hash_and_the_seed(
        halves: tuple[Path, Path]) -> None:
    quick = matrix.load("quick")
    whole: set[str] = set()
    for index, run_dir in enumerate(halves, 1):
        manifest = runfolder.read_manifest(run_dir)
        shard = manifest.shard
        assert (shard["index"], shard["count"]) == (index, 2)
        assert shard["matrix_sha256"] == shards.matrix_hash(quick.text)
        assert shard["seed"] == manifest.order["seed"]
        assert shard["matrix_cells"] == len(shard["cells"]) == 22
        mine = {c["cell_id"] for c in manifest.cells}
        assert mine == {c["cell_id"] for c in shard["cells"] if c["shard"] == index}
        assert not whole & mine
        whole |= mine
        raw = json.loads((run_dir / runfolder.MANIFEST).read_text())
        assert raw["shard"]["index"] == index  # as written, for other tools
    assert len(whole) == 22


def test_shards_merge_into_one_run_that_reports(halves: tuple[Path, Path],
                                               tmp_path: Path) -> None:
    results = halves[0].parent
    done = invoke("merge", f"{halves[0]},{halves[1]}", "-o", str(tmp_path / "both"),
                  env=_env(results))
    assert done.returncode == 0, done.stdout + done.stderr
    merged = tmp_path / "both"
    manifest = runfolder.read_manifest(merged)
    records = runfolder.read_records(merged).records
    assert manifest.run_id == "both"
    assert len(manifest.cells) == 22 and not manifest.merge["host_qualified"]
    assert len(records) == sum(len(runfolder.read_records(r).records) for r in halves)
    assert {r["run_id"] for r in records} == {h.name for h in halves} == set(
        manifest.merge["sources"])
    assert not manifest.merge["partial"] and not manifest.merge["missing"]
    assert runfolder.harness(merged) is not None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    report = invoke("report", "--run", str(merged), env=_env(results))
    assert report.returncode == 0, report.stdout + report.stderr
    text = (merged / "report.md").read_text()
    assert "## Hosts" in text and "(partial)" not in text
    assert "record(s) carry a run_id other" not in report.stdout
    again = invoke("experiment", "--resume", str(merged), env=_env(results))
    assert again.returncode == 1 and "is a merge of other runs" in again.stderr


def test_host_is_an_axis(halves: tuple[Path, Path], tmp_path: Path) -> None:
    """Shard 2 as measured on another host, and shard 1 measured again there: the two
    hosts stay apart in every table, and the report has a per-host view and warns about
    the server's CPU quota."""
    first, second = halves
    on_server = _copy(second, tmp_path / "srv2", host=SERVER)
    again = _copy(first, tmp_path / "srv1", run_id="20261130T000000Z-aaaa", host=SERVER,
                  shard={})
    out = merge.merge([first, on_server, again], tmp_path / "hosts")
    manifest = runfolder.read_manifest(out)
    assert manifest.merge["host_qualified"]
    assert set(manifest.merge["hosts"]) == {first_host(first), "server"}
    labels = {entry["label"] for entry in manifest.pythons.values()}
    assert {label.rsplit(" @ ", 1)[1] for label in labels} == {first_host(first), "server"}
    done = invoke("report", "--run", str(out), env=_env(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    summary = pd.read_csv(out / "summary.csv")
    shard_one = runfolder.read_manifest(first).cells[0]
    same = summary[(summary["workload"] == shard_one["workload"])
                   & (summary["model"] == shard_one["model"])
                   & (summary["workers"] == shard_one["workers"])]
    assert len(set(same["python_label"])) == 2  # measured on both hosts, never averaged
    text = (out / "report.md").read_text()
    hosts = text.split("## Hosts", 1)[1]
    assert "Big Iron 9000" in hosts and "200000 100000 = 2 CPUs" in hosts
    assert "Host server ran its shards under a CPU quota" in done.stdout
    assert "(partial)" not in text


def first_host(run_dir: Path) -> str:
    return str(runfolder.read_manifest(run_dir).host.get("hostname"))


def _refused(results: Path, *args: str) -> str:
    done = invoke("merge", *args, env=_env(results))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    return done.stderr


def test_merges_that_make_no_sense_are_refused(halves: tuple[Path, Path],
                                               tmp_path: Path) -> None:
    first, second = halves
    results = tmp_path / "results"
    results.mkdir()
    other_matrix = runfolder.read_manifest(second).matrix | {"text": "# edited\n"}
    mixed = _copy(second, tmp_path / "mixed", run_id="20261130T000000Z-bbbb",
                  matrix=other_matrix)
    harness = _copy(second, tmp_path / "harness", run_id="20261130T000000Z-cccc",
                    experiments_hash="0" * 64)
    twin = _copy(first, tmp_path / "twin")  # the same run, in another folder
    dup = _copy(second, tmp_path / "dup", run_id="20261130T000000Z-dddd")
    assert "differ in matrix" in _refused(results, f"{first},{mixed}")
    assert "--allow-mixed" in _refused(results, f"{first},{mixed}")
    assert "differ in harness" in _refused(results, f"{first},{harness}")
    assert "given twice" in _refused(results, f"{first},{first}")
    assert "same run" in _refused(results, f"{first},{twin}")
    assert "both shard 2/2" in _refused(results, f"{first},{second},{dup}")
    assert "at least two runs" in _refused(results, str(first))
    assert "There is no run" in _refused(results, f"{first},{tmp_path / 'nope'}")
    assert not any(results.iterdir())  # nothing half-written
    allowed = invoke("merge", f"{first},{mixed}", "--allow-mixed", "-o", "mixed",
                     env=_env(results))
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "mixed (--allow-mixed): matrix" in allowed.stdout
    manifest = runfolder.read_manifest(results / "mixed")
    assert manifest.merge["allow_mixed"] and manifest.merge["mixed"][0].startswith("matrix")
    exists = invoke("merge", f"{first},{second}", "-o", "mixed", env=_env(results))
    assert exists.returncode == 1 and "already exists" in exists.stderr
    assert runfolder.read_manifest(results / "mixed").merge["allow_mixed"]  # untouched
    with pytest.raises(GilbenchError, match="is itself a merge"):
        merge.merge([results / "mixed", second], tmp_path / "again")


def test_a_missing_shard_and_a_failed_one_leave_a_partial_merge(
        halves: tuple[Path, Path], tmp_path: Path) -> None:
    first, second = halves
    # Shard 2/2 never given: shard 1 here and shard 1 again on another host.
    elsewhere = _copy(first, tmp_path / "srv1", run_id="20261130T000000Z-eeee", host=SERVER,
                      shard={})
    done = invoke("merge", f"{first},{elsewhere}", "-o", str(tmp_path / "half"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "shard 2/2 missing" in done.stdout and "11 cell(s)" in done.stdout
    manifest = runfolder.read_manifest(tmp_path / "half")
    assert {c["cell_id"] for c in manifest.merge["missing"]} == {
        c["cell_id"] for c in runfolder.read_manifest(second).cells}
    # Shard 2/2 died after 10 records: the rest of its cells are named, shard 1 intact.
    died = _copy(second, tmp_path / "died", keep=10, finished_at=None)
    out = merge.merge([first, died], tmp_path / "failed")
    partial = runfolder.read_manifest(out).merge["partial"]
    assert f"run {second.name} lacks" in partial and "cell(s) of the matrix" in partial
    assert len(runfolder.read_records(out).records) == len(
        runfolder.read_records(first).records) + 10
    report = invoke("report", "--run", str(out), env=_env(tmp_path))
    assert report.returncode == 0, report.stdout + report.stderr
    assert partial in report.stdout
    assert "(partial)" in (out / "report.md").read_text()


def test_a_merge_killed_halfway_leaves_nothing_that_looks_like_a_run(
        halves: tuple[Path, Path], tmp_path: Path) -> None:
    """What a merge killed before its rename leaves is a dot-folder (even one whose
    manifest was written): `invoke report` without --run does not take it for the newest
    run, and the next merge under the same name goes ahead."""
    results = tmp_path / "results"
    first, second = halves
    done = invoke("merge", str(first), "-o", "whole", "--", str(second), env=_env(results))
    assert done.returncode == 0, done.stdout + done.stderr
    leftover = _copy(first, results / ".later.merging-1234",
                     started_at="2099-01-01T00:00:00+00:00")
    assert runfolder.newest(results) == results / "whole"
    report = invoke("report", env=_env(results))
    assert report.returncode == 0 and "whole" in report.stdout, report.stdout + report.stderr
    later = merge.merge([first, second], results / "later")
    assert runfolder.read_manifest(later).run_id == "later"
    assert leftover.exists() and runfolder.newest(results) != leftover


def test_a_free_threaded_build_is_compared_with_a_gil_build_of_its_own_host(
        tmp_path: Path) -> None:
    """Cross-build throughput (rel. throughput) never divides by another machine's
    sequential: host b has only the free-threaded build, so it has no reference."""
    from gilbench.report.aggregate import summarize
    from gilbench.report.load import load_run
    from tests.report.helpers import PYTHON, manifest, record, write_run

    free = "native:/usr/bin/python3.13t"
    free_entry = {**manifest()["pythons"][PYTHON], "label": "3.13.0t", "gil_disabled": True,
                  "executable": "/usr/bin/python3.13t"}

    def records(run_id: str, python: str) -> list[dict[str, Any]]:
        return [record(model, workers, rep, wall, run_id=run_id, python=python,
                       cell_id=f"c-{python[-1]}-{model}-{workers}")
                for model, workers, wall in (("sequential", 1, 0.2), ("threads", 2, 0.11))
                for rep in range(3)]

    a, b = "20261125T000000Z-aaaa", "20261125T000000Z-bbbb"
    host_a = {**manifest()["host"], "hostname": "a"}
    write_run(tmp_path / a, manifest(a, host=host_a, pythons={
        PYTHON: manifest()["pythons"][PYTHON], free: free_entry}),
        records(a, PYTHON) + records(a, free))
    write_run(tmp_path / b, manifest(b, host={**host_a, "hostname": "b"},
                                     pythons={free: free_entry}), records(b, free))
    out = merge.merge([tmp_path / a, tmp_path / b], tmp_path / "merged")
    summary = summarize(load_run(out))
    assert summary.baselines["3.13.0t @ a"] == "3.13.0 @ a"
    assert summary.baselines["3.13.0t @ b"] is None
