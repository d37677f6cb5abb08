"""Run cells, one fresh child process each: `python -E -s -m experiments.driver CELLS_FILE`.

The child (`experiments.cell`) prints one record per repetition; the driver
forwards each line as it arrives, enforces the cell's timeout by killing the
child's whole process group (it may have started multiprocessing workers), and
writes the records a dead or killed child never produced.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from experiments.catalog import documented_invalid
from experiments.models import load
from experiments.probe import probe
from experiments.records import emit, make_record

ROOT = Path(__file__).resolve().parent.parent

# The cell process running now: killed with the driver, whatever ends the driver.
_current: subprocess.Popen[str] | None = None


def _tags(cell: dict[str, Any]) -> dict[str, Any]:
    """api / transport for records the driver writes itself (best effort)."""
    try:
        from experiments.catalog import model_config

        model = load(cell["model"])
        config = model_config(cell["model"], cell.get("model_config") or {})
        return {"api": model.api(config), "transport": model.transport(config)}
    except Exception:
        return {"api": "", "transport": None}


def _annotate(cell: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """Name the documented rule a config breaks in each of its failed records (an ok record
    keeps its empty message; the report marks it from the same rule)."""
    rule = documented_invalid(str(cell.get("model")), cell.get("model_config") or {})
    if rule and record.get("status") != "ok":
        message = record.get("message") or ""
        record["message"] = f"documented invalid: {rule}" + (f"; {message}" if message else "")
    return record


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def run_cell(cell: dict[str, Any]) -> None:
    """Run one cell in a child and emit a record for every requested repetition."""
    wanted: list[int] = list(cell.get("repetitions") or [])
    proc = subprocess.Popen(
        [sys.executable, "-E", "-s", "-m", "experiments.cell"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, so a kill reaches its workers
    )
    global _current
    _current = proc
    assert proc.stdin and proc.stdout and proc.stderr
    stderr_tail: list[str] = []

    def drain_stderr() -> None:
        assert proc.stderr
        for line in proc.stderr:
            sys.stderr.write(line)
            stderr_tail[:] = [*stderr_tail[-19:], line.rstrip("\n")]
        sys.stderr.flush()

    err_thread = threading.Thread(target=drain_stderr, daemon=True)
    err_thread.start()
    proc.stdin.write(json.dumps(cell))
    proc.stdin.close()

    timeout = float(cell.get("timeout_s") or 0) or None
    timed_out = threading.Event()

    def on_timeout() -> None:
        timed_out.set()
        _kill_group(proc)

    timer = threading.Timer(timeout, on_timeout) if timeout else None
    if timer:
        timer.daemon = True
        timer.start()
    done: set[int] = set()
    for line in proc.stdout:
        record: Any = None
        with contextlib.suppress(json.JSONDecodeError):
            record = json.loads(line)
        if not isinstance(record, dict):  # e.g. a print() from a worker sharing stdout
            sys.stderr.write(f"driver: dropped a line that is not a record: {line!r}\n")
            continue
        done.add(int(record.get("repetition", -1)))
        emit(_annotate(cell, record))
    returncode = proc.wait()
    if timer:
        timer.cancel()
    _kill_group(proc)  # leftover workers of a child that exited, if any
    _current = None
    err_thread.join(5)
    missing = [rep for rep in wanted if rep not in done]
    if not missing:
        return
    if timed_out.is_set():
        status, message = "timeout", f"timed out after {timeout:g} s"
    elif returncode < 0:
        status, message = "crashed", f"killed by {_signal_name(-returncode)}"
    else:
        last = next((line for line in reversed(stderr_tail) if line.strip()), "")
        status = "crashed"
        message = f"exited with code {returncode}" + (f": {last}" if last else "")
        if returncode == 0:
            message = "exited without producing a record" + (f": {last}" if last else "")
    tags = _tags(cell)
    for rep in missing:
        emit(_annotate(cell, make_record(cell, rep, status, message, **tags)))


def _check_workload(path: str, name: str) -> str:
    """Why user workload `name` cannot be imported and called here ('' when it can): the
    host asks before a run starts. What its import prints goes to stderr, off the answer."""
    from experiments import userwork
    from experiments.failures import describe

    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        userwork.activate(path)
        userwork.load(name)
    except BaseException as exc:  # the user's module: anything may come out of it
        return describe(exc)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    return ""


def _stop(*_: object) -> None:
    """SIGTERM, or the orchestrator gone: take the running cell down with the driver."""
    if _current is not None:
        _kill_group(_current)
    os._exit(143)


def _watch_parent() -> None:
    # A killed orchestrator cannot signal us; a changed parent pid says it is gone.
    parent = os.getppid()
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            _stop()


def main(argv: list[str]) -> int:
    if argv == ["--probe"]:
        print(json.dumps(probe()), flush=True)
        return 0
    if len(argv) == 3 and argv[0] == "--check-workload":
        print(json.dumps({"problem": _check_workload(argv[1], argv[2])}), flush=True)
        return 0
    if len(argv) == 2 and argv[0] in ("--reference", "--cost"):
        # `invoke bench-lab`: the hand-written reference runs where the cells run (the same
        # container and limits), as its own program, not as part of the lab.
        reference = [sys.executable, "-E", "-s", "-m", "experiments.reference"]
        os.execv(sys.executable, reference + ([argv[1]] if argv[0] == "--reference" else argv))
    if len(argv) != 1:
        sys.stderr.write("usage: python -E -s -m experiments.driver CELLS_FILE | --probe | "
                         "--reference SPEC | --cost N | --check-workload PATH NAME\n")
        return 2
    signal.signal(signal.SIGTERM, _stop)
    threading.Thread(target=_watch_parent, daemon=True).start()
    for line in Path(argv[0]).read_text().splitlines():
        if not line.strip():
            continue
        cell = json.loads(line)
        started = time.perf_counter()
        try:
            run_cell(cell)
        except BrokenPipeError:  # nobody reads the records any more
            _stop()
        sys.stderr.write(
            f"driver: cell {cell.get('cell_id')} took {time.perf_counter() - started:.1f} s\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
