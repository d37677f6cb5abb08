"""The run folder's one owner: the torn-tail rule, the lock, atomic manifests, disk errors."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gilbench import runfolder
from gilbench.errors import GilbenchError
from tests.report.helpers import manifest, record

from .conftest import REPO, require


def _run(tmp_path: Path) -> Path:
    run_dir = tmp_path / "20261130T000000Z-test"
    run_dir.mkdir()
    data = manifest("20261130T000000Z-test", finished_at=None, cells=[
        {**GOOD_CELL, "cell_id": "c-sequential-1", "repetitions": [0, 1, 2]}])
    runfolder.write_manifest(run_dir, runfolder.Manifest.from_json(data, run_dir))
    return run_dir


def test_manifest_round_trips_and_keeps_unknown_keys(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    data = manifest("r1", future_key={"x": 1}, limits={"cpuset": "0", "memory": None},
                    order={"kind": "matrix", "seed": 7})
    runfolder.write_manifest(run_dir, runfolder.Manifest.from_json(data, run_dir))
    assert json.loads((run_dir / "manifest.json").read_text()) == data
    assert runfolder.read_manifest(run_dir).extra == {"future_key": {"x": 1}}
    assert [p.name for p in run_dir.iterdir()] == ["manifest.json"]  # no temp file left


GOOD_CELL = {"cell_id": "c-1", "python": "p", "model": "threads", "model_config": {},
             "workload": "io", "workload_params": {"ms": 1, "tasks": 2}, "workers": 2,
             "warmups": 0, "repetitions": [0, 1], "timeout_s": 60}


def _with_cell(**changes: object) -> str:
    cell = {**GOOD_CELL, **changes}
    body = json.dumps({"schema_version": 1, "run_id": "r", "cells": [cell], "pythons": {}})
    return body.replace('"timeout_s": "NaN"', '"timeout_s": NaN')


@pytest.mark.parametrize(
    ("text", "match"),
    [("{", "is not valid JSON"), ("[]", "does not hold a JSON object"),
     ('{"schema_version": 1}', "has no run_id"),
     ('{"schema_version": 1, "run_id": "r", "cells": {}}', "'cells' is a dict"),
     ('{"schema_version": 1, "run_id": "r", "pythons": {}}', "has no 'cells'"),
     ('{"schema_version": 1, "run_id": "r", "cells": []}', "has no 'pythons'"),
     ('{"schema_version": 1, "run_id": "r", "cells": [], "pythons": {"p": "x"}}',
      r"pythons\['p'\] is a str, not an object"),
     (_with_cell(cell_id=3), r"cells\[0\] is not a cell gilbench can run \('cell_id' must be"),
     # found by a hostile test: each of these ran (or crashed) on resume
     (_with_cell(workers="two"), "'workers' must be an integer, got 'two'"),
     (_with_cell(workers=100000), "'workers' must be from 1 to 1024, got 100000"),
     (_with_cell(timeout_s="NaN"), "'timeout_s' must be above 0 and at most 86400"),
     (_with_cell(timeout_s="slow"), "'timeout_s' must be a number"),
     (_with_cell(repetitions=[-1, 5]), "'repetitions' must list non-negative integers"),
     (_with_cell(model="nosuch"), "'model' 'nosuch' is unknown"),
     ('{"schema_version": 9, "run_id": "r"}', "schema_version 9, newer than the 1")],
)
def test_a_broken_manifest_is_one_sentence(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(GilbenchError, match=match) as caught:
        runfolder.read_manifest(tmp_path)
    assert str(caught.value).endswith(".") and "\n" not in str(caught.value)


def test_the_writer_cuts_a_torn_tail_before_appending(tmp_path: Path) -> None:
    run_dir = _run(tmp_path)
    first = record("sequential", 1, 0, 1.0)
    torn = json.dumps(record("sequential", 1, 1, 1.0))[:40]
    (run_dir / "records.jsonl").write_text(json.dumps(first) + "\n" + torn)
    before = runfolder.read_records(run_dir)
    assert len(before.records) == 1 and before.torn_tail == 40 and not before.damaged
    writer = runfolder.RecordWriter(run_dir)
    writer.append(record("sequential", 1, 1, 1.5))
    writer.close()
    after = runfolder.read_records(run_dir)
    assert [r["repetition"] for r in after.records] == [0, 1]
    assert after.torn_tail == 0 and not after.damaged and after.warnings() == []
    assert (run_dir / "records.jsonl").read_text().count("\n") == 2


def test_a_whole_file_of_one_torn_line(tmp_path: Path) -> None:
    run_dir = _run(tmp_path)
    (run_dir / "records.jsonl").write_text('{"schema_version": 1, "ru')
    assert runfolder.read_records(run_dir).records == []
    writer = runfolder.RecordWriter(run_dir)
    writer.append(record("sequential", 1, 0, 1.0))
    writer.close()
    assert len(runfolder.read_records(run_dir).records) == 1


def test_completeness_and_pending_cells(tmp_path: Path) -> None:
    run_dir = _run(tmp_path)
    run = runfolder.read_manifest(run_dir)
    done = [record("sequential", 1, 1, 1.0)]
    assert runfolder.pending_cells(run, done) == [
        {**GOOD_CELL, "cell_id": "c-sequential-1", "repetitions": [0, 2]}]
    state = runfolder.completeness(run_dir, run, done)
    assert (state.planned, state.missing, state.finished, state.running) == (3, 2, False, None)
    assert state.sentence(run.run_id) == (
        "Run 20261130T000000Z-test is incomplete: 2 of 3 planned repetitions have no record, "
        "so this report is partial; finish it with "
        "`invoke experiment --resume 20261130T000000Z-test`.")


def _hold_lock_in_another_process(run_dir: Path) -> subprocess.Popen[str]:
    code = (
        "import sys, time; from pathlib import Path; from gilbench import runfolder\n"
        "with runfolder.locked(Path(sys.argv[1])):\n"
        "    print('held', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_is_refused_by_pid_and_a_dead_holder_is_taken_over(
    tmp_path: Path,
) -> None:
    run_dir = _run(tmp_path)
    holder = _hold_lock_in_another_process(run_dir)
    try:
        assert runfolder.holder(run_dir) is not None
        with pytest.raises(GilbenchError, match=rf"in use by process {holder.pid} on "), \
                runfolder.locked(run_dir):
            pass
    finally:
        holder.kill()
        holder.wait()
    # The holder died without cleaning up: its lock file remains, naming a dead process.
    assert f"process {holder.pid}" in (run_dir / "run.lock").read_text()
    assert runfolder.holder(run_dir) is None
    with runfolder.locked(run_dir):
        assert f"process {os.getpid()} " in (run_dir / "run.lock").read_text()


@contextlib.contextmanager
def mounted_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of this size (CI runs as root), unmounted afterwards."""
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True, check=False)
    require(done.returncode == 0, f"cannot mount a tmpfs (needs root): {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "disk", "256k") as mount:
        yield mount


def fill(disk: Path) -> Path:
    """Fill the disk to the last byte; returns the filler file to delete."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def test_disk_full_while_appending_keeps_every_complete_record(tiny_disk: Path) -> None:
    run_dir = _run(tiny_disk)
    writer = runfolder.RecordWriter(run_dir)
    writer.append(record("sequential", 1, 0, 1.0))
    filler = fill(tiny_disk)
    big = record("sequential", 1, 1, 1.0, message="x" * 20000)  # crosses a page: torn
    with pytest.raises(GilbenchError) as caught:
        writer.append(big)
    assert str(caught.value).startswith(f"The disk holding {run_dir} is full while appending")
    assert str(caught.value).endswith(f"`invoke experiment --resume {run_dir.name}`.")
    writer.close()
    assert (run_dir / "records.jsonl").read_bytes().endswith(b"\n")
    assert [r["repetition"] for r in runfolder.read_records(run_dir).records] == [0]
    with pytest.raises(GilbenchError, match=r"is full while writing manifest\.json"):
        runfolder.write_manifest(run_dir, runfolder.read_manifest(run_dir))
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".")] == []
    filler.unlink()
    writer = runfolder.RecordWriter(run_dir)
    writer.append(big)
    writer.close()
    assert [r["repetition"] for r in runfolder.read_records(run_dir).records] == [0, 1]


def test_find_and_newest(tmp_path: Path) -> None:
    run_dir = _run(tmp_path)
    assert runfolder.find(tmp_path, run_dir.name) == run_dir
    assert runfolder.find(tmp_path / "elsewhere", str(run_dir)) == run_dir
    assert runfolder.newest(tmp_path) == run_dir
    (tmp_path / "plain").mkdir()
    with pytest.raises(GilbenchError, match="is not a gilbench run"):
        runfolder.find(tmp_path, str(tmp_path / "plain"))
    with pytest.raises(GilbenchError, match="There is no run 'nope'"):
        runfolder.find(tmp_path, "nope")
    results = tmp_path / "file"
    results.write_text("")
    with pytest.raises(GilbenchError, match="is a file"):
        runfolder.create(results, "r")


def test_a_torn_tail_longer_than_any_read_chunk_is_cut_and_nothing_else(tmp_path: Path) -> None:
    """Found by a hostile test: a 2 MB tail without a newline emptied records.jsonl."""
    run_dir = _run(tmp_path)
    good = "".join(json.dumps(record("sequential", 1, i, 1.0)) + "\n" for i in range(2))
    (run_dir / "records.jsonl").write_bytes(good.encode() + b"y" * 2_000_000)
    writer = runfolder.RecordWriter(run_dir)
    writer.append(record("sequential", 1, 2, 1.0))
    writer.close()
    read = runfolder.read_records(run_dir)
    assert [r["repetition"] for r in read.records] == [0, 1, 2] and not read.torn_tail


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_a_records_file_that_is_not_a_file_is_one_sentence(tmp_path: Path, kind: str) -> None:
    """Found by a hostile test: a FIFO (or /dev/zero) as records.jsonl hung the report."""
    run_dir = _run(tmp_path)
    path = run_dir / "records.jsonl"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()
    with pytest.raises(GilbenchError, match="is not a regular file"):
        runfolder.read_records(run_dir)
    with pytest.raises(GilbenchError, match="is not a regular file"):
        runfolder.RecordWriter(run_dir)


def test_newest_in_a_results_path_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "results").write_text("")
    with pytest.raises(GilbenchError, match="is a file; move it away"):
        runfolder.newest(tmp_path / "results")


def test_the_harness_is_copied_without_caches(tmp_path: Path) -> None:
    from gilbench.paths import EXPERIMENTS_DIR

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    runfolder.save_harness(run_dir, EXPERIMENTS_DIR)
    copy = runfolder.harness(run_dir)
    assert copy is not None and copy == run_dir / "harness" / "experiments"
    wanted = {p.relative_to(EXPERIMENTS_DIR) for p in EXPERIMENTS_DIR.rglob("*")
              if p.is_file() and "__pycache__" not in p.parts}
    got = {p.relative_to(copy) for p in copy.rglob("*") if p.is_file()}
    assert got == wanted and Path("cell.py") in got
    assert (copy / "cell.py").read_bytes() == (EXPERIMENTS_DIR / "cell.py").read_bytes()
    assert runfolder.harness(tmp_path) is None
