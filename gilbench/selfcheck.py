"""CPython's own tests for what gilbench measures, run against a built or given interpreter.

The smoke check proves the flags and one sub-interpreter; this proves more of the build
sound: regrtest (`python -m test`) runs the sub-interpreter suites of that version and
subsets of test_threading and test_multiprocessing_forkserver, with -j set to the cores
available, and the result becomes data (per suite passed/failed/skipped, failing test
names, totals, duration, the command). `invoke build --check` stores it on the build
record (so every manifest that uses the build carries it); `invoke doctor --python X`
shows it for any interpreter.

The registry (SUITES) is data: minor version -> suites. A suite a patch release lacks
(3.12.1 installs no test_multiprocessing_forkserver package) is recorded as missing,
never as passed.

The threads and processes subsets: the classes that exercise what the threads and
processes models use (threads, locks, conditions, events, barriers, shutdown joins,
threads in sub-interpreters; forkserver processes, pools, queues, pipes, shared memory,
start methods), leaving out exception hooks, managers and the thread-backed copies of
the multiprocessing tests. Measured here on 2 cores shared with other builds, -j2:
whole test_threading 16 s and whole test_multiprocessing_forkserver 52 s (3.13.0); the
subsets below with the sub-interpreter suites, in one regrtest run: 3.12.1 16 s (347
tests; no forkserver suite), 3.13.0 32-39 s (555), the 3.13.5 PGO image 23-40 s (563).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gilbench import spawn
from gilbench.errors import GilbenchError

if TYPE_CHECKING:
    from gilbench.targets import Target


@dataclass(frozen=True)
class Suite:
    name: str  # regrtest's name, dotted below Lib/test: "test_concurrent_futures.test_x"
    area: str  # what of gilbench it covers: subinterpreters, threads, processes
    match: tuple[str, ...] = ()  # regrtest -m globs (full test ids) picking a subset


def _classes(module: str, names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"test.{module}.{name}.*" for name in names)


THREADING = Suite("test_threading", "threads", _classes("test_threading", (
    "ThreadTests", "ThreadJoinOnShutdown", "SubinterpThreadingTests", "LockTests",
    "PyRLockTests", "CRLockTests", "EventTests", "ConditionTests", "SemaphoreTests",
    "BoundedSemaphoreTests", "BarrierTests")))
FORKSERVER = Suite("test_multiprocessing_forkserver", "processes", (
    *_classes("test_multiprocessing_forkserver.test_processes", tuple(
        f"WithProcessesTest{name}" for name in (
            "Process", "Pool", "Queue", "Connection", "SharedMemory", "Lock", "Event",
            "Value"))),
    *_classes("test_multiprocessing_forkserver.test_misc", ("TestStartMethod",)),
))
_SUBINTERP_313 = (Suite("test__interpreters", "subinterpreters"),
                  Suite("test__interpchannels", "subinterpreters"),
                  Suite("test_interpreters", "subinterpreters"))
SUITES: dict[str, tuple[Suite, ...]] = {
    "3.12": (Suite("test__xxsubinterpreters", "subinterpreters"),
             Suite("test__xxinterpchannels", "subinterpreters"),
             Suite("test_interpreters", "subinterpreters"), THREADING, FORKSERVER),
    "3.13": (*_SUBINTERP_313, THREADING, FORKSERVER),
    "3.14": (*_SUBINTERP_313, Suite("test_concurrent_futures.test_interpreter_pool",
                                    "subinterpreters"), THREADING, FORKSERVER),
}
TIMEOUT_PER_FILE_S = 300  # regrtest --timeout: a hung test file fails instead of hanging
TIMEOUT_S = 1800  # the whole check
# The check's container is the experiments' sandbox (runners.py: no network, non-root,
# read-only root, the same 256 MiB noexec /tmp, no capabilities), its pids limit sized
# per regrtest worker: measured with -j2 on 3.13.5, the container peaked at about 25
# pids (threads count) and passed under a limit of 48; 32 a worker leaves room.
PIDS_PER_JOB = 32
MAX_NAMES = 20  # failing test names kept in a record (labels stay small)

# Runs inside the interpreter under test (stdlib only, 3.12+). argv[1]: JSON with the
# registry, the python to run regrtest with, -j, the per-file timeout and optionally a
# test folder (regrtest --testdir; the unit tests use it for a real failing suite).
SCRIPT = r"""
import json, os, platform, shlex, subprocess, sys, tempfile, time
args = json.loads(sys.argv[1])
out = {"python_version": platform.python_version(), "cores": len(os.sched_getaffinity(0))}
keys = [k for k in args["registry"] if tuple(map(int, k.split("."))) <= sys.version_info[:2]]
if not keys:
    print(json.dumps(out))
    sys.exit(0)
key = max(keys, key=lambda k: tuple(map(int, k.split("."))))
suites = args["registry"][key]
out["registry_key"] = key
test_dir = args.get("testdir")
if not test_dir:
    try:
        import test
        test_dir = os.path.dirname(test.__file__)
    except ImportError:
        test_dir = None
out["test_dir"] = test_dir
def present(name):
    path = os.path.join(test_dir, *name.split("."))
    return os.path.isfile(path + ".py") or os.path.isfile(os.path.join(path, "__init__.py"))
have = [s for s in suites if test_dir and present(s["name"])]
out["missing"] = [s["name"] for s in suites if s not in have]
if have:
    jobs = args.get("jobs") or out["cores"]
    prefix = "" if args.get("testdir") else "test."
    patterns = [p for s in have for p in (s["match"] or [prefix + s["name"] + ".*"])]
    cmd = [args["python"], "-m", "test", "-j%d" % jobs, "--timeout", str(args["timeout"])]
    if args.get("testdir"):
        cmd += ["--testdir", args["testdir"]]
    for pattern in patterns:
        cmd += ["-m", pattern]
    cmd += [s["name"] for s in have]
    with tempfile.TemporaryDirectory(prefix="gilbench-selfcheck-") as tmp:
        junit = os.path.join(tmp, "junit.xml")
        started = time.monotonic()
        proc = subprocess.run(cmd[:3] + ["--junit-xml", junit] + cmd[3:], cwd=tmp,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              errors="replace")
        out["seconds"] = round(time.monotonic() - started, 1)
        out["returncode"] = proc.returncode
        out["output"] = proc.stdout
        out["command"] = shlex.join(cmd)
        out["jobs"] = jobs
        try:
            with open(junit, encoding="utf-8", errors="replace") as fh:
                out["junit"] = fh.read()
        except OSError:
            out["junit"] = ""
print(json.dumps(out))
"""


def registry_arg(suites: dict[str, tuple[Suite, ...]]) -> dict[str, list[dict[str, Any]]]:
    return {key: [{"name": s.name, "area": s.area, "match": list(s.match)} for s in group]
            for key, group in suites.items()}


# regrtest's closing summary: "2 tests failed:" then indented lines of names.
_SECTION = re.compile(r"^(\d+) (?:re-run )?tests? (.+):$")


def summary_sections(output: str) -> dict[str, list[str]]:
    """regrtest's summary as {"failed": [names], "skipped": [...], "env changed": [...]}."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if (head := _SECTION.match(line.strip())) and not line.startswith(" "):
            what = head.group(2)
            kind = ("env changed" if "env changed" in what else
                    "failed" if "failed" in what or "omitted" in what or "crashed" in what
                    else "skipped" if "skipped" in what or "no tests" in what
                    or "resource" in what else what)
            current = found.setdefault(kind, [])
        elif current is not None and line.startswith("    ") and line.strip():
            current.extend(line.split())
        else:
            current = None
    return found


def _suite_of(name: str, suites: list[str]) -> str | None:
    """The suite a test id or test file belongs to (ids may start with 'test.')."""
    bare = name.removeprefix("test.")
    for candidate in (name, bare):
        for suite in suites:
            if candidate == suite or candidate.startswith(suite + "."):
                return suite
    return None


def summarize(raw: dict[str, Any], checked: list[dict[str, Any]]) -> dict[str, Any]:
    """The script's raw answer -> the structured result stored on a build record."""
    missing = list(raw.get("missing", []))
    present = [s["name"] for s in checked if s["name"] not in missing]
    per: dict[str, dict[str, Any]] = {
        s["name"]: {"name": s["name"], "area": s["area"], "match": s["match"],
                    "status": "missing" if s["name"] in missing else "passed",
                    "tests": 0, "passed": 0, "failed": 0, "skipped": 0, "failures": [],
                    "seconds": 0.0}
        for s in checked
    }
    junit = raw.get("junit") or ""
    try:
        files = list(ET.fromstring(junit).iter("testsuite")) if junit.strip() else []
    except ET.ParseError:
        files = []
    # One <testsuite> per test file. Subtests are testcases too (regrtest counts them), named
    # only by their parameters, so a file's cases go to the suite its named cases belong to.
    for file in files:
        cases = list(file.iter("testcase"))
        suite = next((found for case in cases
                      if (found := _suite_of(case.get("name", ""), present))), None)
        if suite is None:
            continue
        entry = per[suite]
        for case in cases:
            test_id = case.get("name", "")
            entry["tests"] += 1
            entry["seconds"] += float(case.get("time") or 0)
            if case.find("failure") is not None or case.find("error") is not None:
                entry["failed"] += 1
                entry["failures"].append(test_id.removeprefix("test.")
                                         if _suite_of(test_id, present)
                                         else f"{suite} subtest {test_id!r}")
            elif case.find("skipped") is not None:
                entry["skipped"] += 1
            else:
                entry["passed"] += 1
    sections = summary_sections(raw.get("output", ""))
    env_changed = sections.get("env changed", [])
    unattributed: list[str] = []
    for name in sections.get("failed", []):
        suite = _suite_of(name, present)
        if suite is None:
            unattributed.append(name)
            continue
        entry = per[suite]
        if not any(f == name or f.startswith(name + ".") for f in entry["failures"]):
            entry["failures"].append(f"{name} (the whole file failed: see the output)")
        entry["status"] = "failed"
    for entry in per.values():
        entry["seconds"] = round(entry["seconds"], 1)
        if entry["status"] == "missing":
            continue
        if entry["failed"]:
            entry["status"] = "failed"
        elif entry["status"] != "failed" and entry["tests"] == entry["skipped"]:
            entry["status"] = "skipped"
    failed_tests = [f for entry in per.values() for f in entry["failures"]] + unattributed
    returncode = raw.get("returncode")
    reason = ""
    if not present:
        reason = ("the interpreter has no test package (Lib/test), so none of CPython's own "
                  "tests could run" if raw.get("test_dir") is None else
                  "none of the registered suites exists in this interpreter's Lib/test")
    elif returncode not in (0, None) and not failed_tests:
        reason = f"`python -m test` exited with status {returncode}"
    elif returncode is None:
        reason = "`python -m test` did not run"
    status = "failed" if failed_tests or reason else "passed"
    totals = {key: sum(entry[key] for entry in per.values())
              for key in ("tests", "passed", "failed", "skipped")}
    result: dict[str, Any] = {
        "status": status,
        "reason": reason,
        "failed_tests": failed_tests[:MAX_NAMES],
        "failed_tests_total": len(failed_tests),
        "missing": missing,
        "env_changed": env_changed,
        "suites": list(per.values()),
        "totals": totals,
        "seconds": raw.get("seconds"),
        "command": raw.get("command"),
        "jobs": raw.get("jobs"),
        "returncode": returncode,
        "python_version": raw.get("python_version"),
        "registry_key": raw.get("registry_key"),
        "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    for entry in result["suites"]:
        entry["failures"] = entry["failures"][:MAX_NAMES]
    if status == "failed":
        result["output_tail"] = str(raw.get("output", ""))[-2000:]
    return result


def _script_cmd(executable: str, jobs: int, testdir: str | None,
                suites: dict[str, tuple[Suite, ...]]) -> list[str]:
    arg = {"registry": registry_arg(suites), "python": executable, "jobs": jobs,
           "timeout": TIMEOUT_PER_FILE_S, "testdir": testdir}
    return [executable, "-I", "-c", SCRIPT, json.dumps(arg)]


def _parse_answer(executable: str, stdout: str, stderr: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    try:
        answer = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        tail = (stderr.strip().splitlines() or ["no output"])[-1]
        raise GilbenchError(f"{executable} could not run CPython's test suites ({tail}); it "
                            "must be CPython 3.12 or newer.")
    if "registry_key" not in answer:
        raise GilbenchError(
            f"{executable} is Python {answer.get('python_version')}; CPython's own checks "
            f"are registered for {', '.join(SUITES)} (and newer).")
    return answer


def _run_native(cmd: list[str], timeout_s: float) -> tuple[str, str]:
    try:
        proc = subprocess.run(spawn.clean(cmd), capture_output=True, text=True,
                              errors="replace", timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise GilbenchError(f"CPython's test suites did not finish within {timeout_s:g} s on "
                            f"{cmd[0]}; it was stopped.") from exc
    except OSError as exc:
        raise GilbenchError(f"Cannot start {cmd[0]} ({exc.strerror}); give an existing "
                            "interpreter.") from exc
    return proc.stdout, proc.stderr


def docker_sandbox(jobs: int) -> dict[str, Any]:
    """What the check's container gets: the experiments' sandbox, pids sized for -j."""
    from gilbench import runners

    return {"network": "none", "user": "gilbench", "read_only_rootfs": True,
            "tmpfs": runners.TMPFS, "security_opt": runners.SECURITY_OPT,
            "cap_drop": runners.CAP_DROP,
            "pids_limit": runners.PIDS_BASE + PIDS_PER_JOB * jobs}


def _engine_cpus(url: str) -> int:
    """The CPUs of the engine's machine, where a build on it runs its check."""
    from gilbench import engine

    client = engine.connect(timeout=30, url=url)
    try:
        return int(client.info().get("NCPU") or 1)
    finally:
        client.close()


def _run_docker(image: str, cmd: list[str], timeout_s: float, jobs: int,
                url: str | None = None) -> tuple[str, str]:
    import docker.errors

    from gilbench import engine, runners

    client = engine.connect(timeout=int(timeout_s) + 60, url=url)
    box = docker_sandbox(jobs)
    try:
        container = client.containers.run(
            image, cmd, detach=True, network_mode=box["network"], user=box["user"],
            working_dir="/tmp", read_only=True, tmpfs=box["tmpfs"],
            security_opt=box["security_opt"], cap_drop=box["cap_drop"],
            pids_limit=box["pids_limit"],
            labels={runners.OWNER_LABEL: runners._owner(os.getpid())},
        )
    except docker.errors.ImageNotFound as exc:
        raise GilbenchError(f"The image {image} is gone; rebuild it with `invoke build`."
                            ) from exc
    try:
        try:
            container.wait(timeout=timeout_s)
        except Exception as exc:  # the engine's read timeout: the check hangs
            raise GilbenchError(f"CPython's test suites did not finish within {timeout_s:g} "
                                f"s in {image}; the container was stopped.") from exc
        stdout = container.logs(stdout=True, stderr=False).decode(errors="replace")
        stderr = container.logs(stdout=False, stderr=True).decode(errors="replace")
    finally:
        with contextlib.suppress(docker.errors.DockerException):
            container.remove(force=True)
    return stdout, stderr


def run(target: Target, jobs: int | None = None, log_path: Path | None = None, *,
        suites: dict[str, tuple[Suite, ...]] | None = None, testdir: str | None = None,
        timeout_s: float = TIMEOUT_S) -> dict[str, Any]:
    """Run the registered suites against a target (docker image or native interpreter);
    the structured result. regrtest's own output goes to log_path when given."""
    registry = suites or SUITES
    # -j: the cores this host lets gilbench use (a container without a cpuset sees them all)
    jobs = jobs or (_engine_cpus(target.engine) if target.engine
                    else len(os.sched_getaffinity(0)))
    cmd = _script_cmd(target.executable, jobs, testdir, registry)
    if target.image is not None:
        stdout, stderr = _run_docker(target.image, cmd, timeout_s, jobs, target.engine)
    else:
        stdout, stderr = _run_native(cmd, timeout_s)
    raw = _parse_answer(target.executable, stdout, stderr)
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(f"$ {raw.get('command')}\n{raw.get('output', '')}{stderr}")
    checked = registry_arg(registry)[raw["registry_key"]]
    result = summarize(raw, checked)
    result["where"] = target.kind
    if target.image is not None:
        result["sandbox"] = docker_sandbox(jobs)
    return result


def failure_sentence(result: dict[str, Any], where: str) -> str:
    """One sentence naming what failed (for `invoke build` and doctor)."""
    names = result.get("failed_tests") or []
    more = int(result.get("failed_tests_total") or len(names)) - len(names)
    named = ", ".join(names) + (f" and {more} more" if more > 0 else "")
    why = f"these failed: {named}" if names else result.get("reason") or "it failed"
    return f"CPython's own tests failed on {where}: {why}."


def describe(result: dict[str, Any] | None) -> str:
    """One line for a report or a table: the self-check of a build, or that none ran."""
    if not result:
        return "not run"
    totals = result.get("totals", {})
    ran = [s["name"] for s in result.get("suites", []) if s.get("status") != "missing"]
    text = (f"{result.get('status')}: {len(ran)} suites, {totals.get('tests', 0)} tests, "
            f"{totals.get('failed', 0)} failed, {totals.get('skipped', 0)} skipped, "
            f"{result.get('seconds')} s")
    if result.get("missing"):
        text += f"; missing: {', '.join(result['missing'])}"
    if result.get("status") == "failed":
        names = result.get("failed_tests") or [result.get("reason", "")]
        text += f"; failed: {', '.join(names)}"
    return text


def report_warnings(pythons: dict[str, dict[str, Any]]) -> list[str]:
    """A warning line per python of a run whose build failed its self-check."""
    lines = []
    for info in pythons.values():
        check = (info.get("build") or {}).get("selfcheck")
        if check and check.get("status") == "failed":
            lines.append(failure_sentence(check, str(info.get("label")))[:-1]
                         + "; its results may reflect a broken build.")
    return lines
