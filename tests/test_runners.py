"""The native runner: probe faults end in one sentence, limits are checked and read back."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from gilbench import hostinfo
from gilbench.errors import GilbenchError
from gilbench.runners import NativeRunner, format_cpus, parse_cpuset, parse_probe
from gilbench.targets import Target


def script(tmp_path: Path, body: str, name: str = "python") -> Target:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return Target(f"native:{path}", "fake", "native", str(path))


def gone(pid: int) -> bool:
    """Dead, or a zombie nobody reaped yet (it no longer runs)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"


def test_a_silent_interpreter_is_stopped_after_the_probe_timeout(tmp_path: Path) -> None:
    pidfile = tmp_path / "sleep.pid"
    target = script(tmp_path, f"sleep 1000 &\necho $! > {pidfile}\nwait")
    runner = NativeRunner(target, tmp_path / "driver.log")
    runner.probe_timeout_s = 1
    started = time.monotonic()
    with runner, pytest.raises(GilbenchError) as err:
        runner.probe()
    assert time.monotonic() - started < 15
    assert str(err.value) == (
        f"{target.executable} did not answer the gilbench probe within 1 s and was stopped; "
        "give a CPython 3.12 or newer that starts.")
    # The whole process group went: the sleep the script started is not left running.
    deadline = time.monotonic() + 5
    while not gone(int(pidfile.read_text())) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone(int(pidfile.read_text()))


@pytest.mark.parametrize(("output", "says"), [
    ("{not json", "answered the gilbench probe with '{not json', which is not JSON"),
    ('{"a": 1}', """answered the gilbench probe with '{"a": 1}', which names no Python version"""),
    ('{"python_version": "three"}', "which names no Python version"),
    ("[1, 2]", "could not run the gilbench driver (oops)"),
    ("", "could not run the gilbench driver (oops)"),
])
def test_junk_from_the_probe_is_one_sentence(tmp_path: Path, output: str, says: str) -> None:
    target = script(tmp_path, f"echo oops >&2\necho '{output}'")
    with NativeRunner(target, tmp_path / "driver.log") as runner, \
            pytest.raises(GilbenchError) as err:
        runner.probe()
    message = str(err.value)
    assert says in message and message.count(". ") == 0 and message.endswith(".")
    assert "\n" not in message


def test_a_real_interpreter_answers_the_probe(target_python: Path, tmp_path: Path) -> None:
    target = Target(f"native:{target_python}", "real", "native", str(target_python))
    with NativeRunner(target, tmp_path / "driver.log") as runner:
        info = runner.probe()
    assert info["python_version"].startswith(("3.12.", "3.13."))


def test_parse_probe_takes_the_last_json_line() -> None:
    lines = ["warming up", '{"python_version": "3.12.1"}', '{"python_version": "3.13.0"}']
    assert parse_probe("py", lines)["python_version"] == "3.13.0"


def test_cpuset_is_checked_against_the_cpus_available() -> None:
    two = {0, 1}
    assert parse_cpuset("", two) == two  # empty: all of them
    assert parse_cpuset("0-1", two) == two and parse_cpuset(" 1 ", two) == {1}
    cases = {
        "0-3": "--cpuset '0-3' names CPUs 2-3, which gilbench cannot use on this host; "
               "choose among CPUs 0-1.",
        "1-0": "--cpuset '1-0' has the range 1-0, which runs backwards; write 0-1.",
        "0-99999999999": "names CPUs 2-99999999999, which gilbench cannot use",
        "0,2": "--cpuset '0,2' names CPU 2, which",
        "abc": "--cpuset 'abc' is not a CPU list like 0-1 or 0,2.",
        "0,": "is not a CPU list",
        "-1": "is not a CPU list",
    }
    for cpuset, says in cases.items():
        with pytest.raises(GilbenchError) as err:
            parse_cpuset(cpuset, two)
        assert says in str(err.value), cpuset


def test_cpuset_beyond_this_host_is_refused() -> None:
    usable = os.sched_getaffinity(0)
    with pytest.raises(GilbenchError, match=f"choose among CPUs {format_cpus(usable)}"):
        parse_cpuset(f"0-{max(usable) + 1}")
    assert format_cpus({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"


def test_native_runner_records_the_cpus_it_applied(tmp_path: Path) -> None:
    # A stand-in that reports the affinity the kernel gave it, in the probe's shape.
    target = script(tmp_path, """cpus=$(grep Cpus_allowed_list /proc/self/status | cut -f2)
echo "{\\"python_version\\": \\"3.12.0\\", \\"cpus\\": \\"$cpus\\"}\"""")
    first = min(os.sched_getaffinity(0))
    with NativeRunner(target, tmp_path / "driver.log", str(first)) as runner:
        info = runner.probe()
        assert info["cpus"] == str(first)
        assert runner.describe()["cpuset"] == str(first)
    with NativeRunner(target, tmp_path / "driver.log", "") as runner:
        runner.probe()
        assert runner.describe()["cpuset"] == format_cpus(os.sched_getaffinity(0))


def test_hostinfo_survives_an_odd_host(monkeypatch: pytest.MonkeyPatch) -> None:
    real = hostinfo.collect()
    assert real["cores"] >= 1 and real["kernel"]

    def nothing(path: str) -> None:
        return None

    def no_loadavg() -> tuple[float, float, float]:
        raise OSError("no /proc/loadavg")

    monkeypatch.setattr(hostinfo, "_read", nothing)  # no /proc, no /sys, no /etc files
    monkeypatch.setattr(os, "getloadavg", no_loadavg)
    odd = hostinfo.collect()
    assert set(odd) == set(real)
    assert odd["governor"] is None and odd["mem_total_kb"] is None and odd["loadavg"] is None
    assert odd["os"] is None and odd["cgroup_memory_max"] is None

    def junk(path: str) -> str:
        return "MemTotal: lots kB\nmodel name\nPRETTY_NAME=\n\x00\xff"

    monkeypatch.setattr(hostinfo, "_read", junk)
    assert hostinfo.collect()["mem_total_kb"] is None
    monkeypatch.undo()
    assert hostinfo._read("/nonexistent/file") is None


def test_cgroup_limits_are_the_tightest_of_the_cgroup_and_its_ancestors(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A quota set on a parent (a systemd slice's CPUQuota=, a pod's limit) applies to
    the process: hostinfo reports the tightest, from cgroup v2 and v1 hierarchies alike."""
    root = tmp_path / "cgroup"
    v2 = root / "user.slice" / "run.scope"
    v1 = root / "cpu" / "batch" / "job"
    for folder in (v2, v1, root / "memory" / "batch"):
        folder.mkdir(parents=True)
    (root / "user.slice" / "cpu.max").write_text("150000 100000\n")  # the slice: 1.5 CPUs
    (v2 / "cpu.max").write_text("max 100000\n")
    (v2 / "memory.max").write_text("max\n")
    (root / "user.slice" / "memory.max").write_text("4294967296\n")
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    (v1.parent / "cpu.cfs_quota_us").write_text("50000\n")  # v1 parent: half a CPU
    (v1.parent / "cpu.cfs_period_us").write_text("100000\n")
    (root / "memory" / "batch" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    proc = tmp_path / "cgroup-of-self"
    proc.write_text("0::/user.slice/run.scope\n")
    monkeypatch.setattr(hostinfo, "CGROUP", root)
    monkeypatch.setattr(hostinfo, "SELF_CGROUP", str(proc))
    assert hostinfo.cgroup_cpu_max() == "150000 100000"
    assert hostinfo.cgroup_memory_max() == "4294967296"
    proc.write_text("4:memory:/batch\n1:cpu,cpuacct:/batch/job\n0::/user.slice/run.scope\n")
    assert hostinfo.cgroup_cpu_max() == "50000 100000"  # the v1 parent's is tighter
    proc.write_text("0::/\n")  # a container's own namespace: its cgroup is the root
    assert hostinfo.cgroup_cpu_max() is None and hostinfo.cgroup_memory_max() is None
    (root / "cpu.max").write_text("200000 100000\n")
    assert hostinfo.cgroup_cpu_max() == "200000 100000"


def test_default_cpuset_takes_one_cpu_per_physical_core(tmp_path: Path) -> None:
    """On a host whose usable CPUs were all SMT siblings of one core, the driver is pinned
    to one of them and the description says 1 physical core; --cpuset is taken as given."""
    from gilbench.topology import Topology

    usable = sorted(os.sched_getaffinity(0))
    one_core = Topology({cpu: tuple(usable) for cpu in usable}, dict.fromkeys(usable, 0))
    target = script(tmp_path, """cpus=$(grep Cpus_allowed_list /proc/self/status | cut -f2)
echo "{\\"python_version\\": \\"3.12.0\\", \\"cpus\\": \\"$cpus\\"}\"""")
    with NativeRunner(target, tmp_path / "driver.log", "", topo=one_core) as runner:
        assert runner.probe()["cpus"] == str(usable[0])
        described = runner.describe()
    assert described["cpuset"] == str(usable[0]) and described["physical_cores"] == 1
    assert described["placement"] == "one logical CPU per physical core"
    every = format_cpus(set(usable))
    with NativeRunner(target, tmp_path / "driver.log", every, topo=one_core) as runner:
        assert runner.probe()["cpus"] == every
        described = runner.describe()
    assert described["cpuset"] == every and described["physical_cores"] == 1
    assert described["smt_siblings"] is (len(usable) > 1)
    assert described["placement"] == "as given (--cpuset)"


def test_hostinfo_records_the_topology() -> None:
    recorded = hostinfo.collect()["topology"]
    assert recorded["logical"] == len(os.sched_getaffinity(0))
    assert 1 <= recorded["physical_cores"] <= recorded["logical"]
    assert isinstance(recorded["smt"], bool) and recorded["numa_nodes"] >= 1


def test_a_stalled_or_failed_copy_into_the_container_is_one_sentence(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An engine whose exec stream never answers (a broken TLS or proxy connection) fails
    the copy-in within COPY_TIMEOUT_S instead of hanging under the day-long client
    timeout; the tar goes out length-prefixed, so no half-close is needed."""
    import socket
    from types import SimpleNamespace

    from gilbench import runners

    ours, theirs = socket.socketpair()
    received: list[bytes] = []

    class Api:
        def exec_create(self, *args: object, **kwargs: object) -> dict[str, str]:
            return {"Id": "exec"}

        def exec_start(self, exec_id: str, socket: bool) -> object:
            return ours

    monkeypatch.setattr(runners, "COPY_TIMEOUT_S", 0.5)
    runner = runners.DockerRunner.__new__(runners.DockerRunner)
    runner.client = SimpleNamespace(api=Api())  # type: ignore[assignment]
    runner.container = SimpleNamespace(id="c")  # type: ignore[assignment]
    runner.target = Target("docker:img", "img", "docker", "/py", "img")
    runner.engine_url = "tcp://box:2376"
    began = time.monotonic()
    with pytest.raises(GilbenchError, match=r"Copying the experiments into the container of "
                       r"img did not finish within 0.5 s; check the engine at tcp://box:2376"):
        runner._copy_in({"a.py": b"x = 1\n"})
    assert time.monotonic() - began < 5
    theirs.settimeout(1)
    received.append(theirs.recv(1 << 16))
    size, _, tar = received[0].partition(b"\n")
    assert int(size) == len(tar) > 0  # the length, then exactly the tar
    theirs.close()

    # An unpack that fails: its stderr's last line is the sentence's reason.
    ours, theirs = socket.socketpair()
    message = b"Traceback (most recent call last):\nValueError: got 3 of 9 bytes\n"
    theirs.sendall(b"\x01\x00\x00\x00" + (2).to_bytes(4, "big") + b"ok"
                   + b"\x02\x00\x00\x00" + len(message).to_bytes(4, "big") + message)
    theirs.shutdown(socket.SHUT_WR)
    Api.exec_inspect = lambda self, exec_id: {"ExitCode": 1}  # type: ignore[attr-defined]
    with pytest.raises(GilbenchError, match=r"of img failed \(ValueError: got 3 of 9 bytes\); "
                       r"rebuild the image"):
        runner._copy_in({"a.py": b"x = 1\n"})
    theirs.close()
