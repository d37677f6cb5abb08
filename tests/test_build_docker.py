"""End to end: a real CPython 3.13.5 PGO build in the real Docker engine (minutes).

The image gets a test-only extra flag (--with-computed-gotos, gcc's default anyway) so
it has its own tag: the test never reuses or deletes a user's image, and it removes its
own image first, so every run of this test is a real build from source.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import docker
import pytest

from gilbench.build import run_build
from gilbench.buildspec import IMAGE_REPO, STAGING_REPO, BuildResult
from gilbench.errors import GilbenchError
from tests.conftest import TEST_FLAG, build_options, invoke

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# The shared test build (tests/conftest.py: its options and its test-only flag).
options = build_options


@pytest.fixture(scope="session")
def cache(build_cache: Path) -> Path:
    return build_cache


def test_pgo_build_really_applied_the_flags(
    pgo_build: tuple[BuildResult, list[tuple[str, str]]],
) -> None:
    result, events = pgo_build
    record = result.record
    assert not result.reused
    assert record["version"] == "3.13.5" and record["source_verified"]
    # python.org's own OpenPGP signature, checked against the pinned release manager's key
    assert record["signature"]["status"] == "good", record["signature"]
    assert record["signature"]["fingerprint"] == "7169605F62C751356D054A26A821E680E5FA6305"
    assert "'--enable-optimizations'" in record["config_args"]
    assert f"'{TEST_FLAG}'" in record["config_args"]
    assert record["smoke"]["subinterpreters_module"] == "_interpreters"
    assert record["smoke"]["subinterpreters_ok"] is True
    phases = [text for kind, text in events if kind == "phase"]
    for phase in ("base", "configure", "instrumented-build", "pgo-training", "final-build",
                  "install", "smoke-check"):
        assert phase in phases
    assert set(record["phases"]) >= {"configure", "pgo-training", "final-build"}
    assert result.log_path is not None and "profile-run-stamp" in result.log_path.read_text()


def test_image_labels_and_interpreter_agree(
    pgo_build: tuple[BuildResult, list[tuple[str, str]]],
) -> None:
    record = pgo_build[0].record
    client = docker.from_env()
    image = client.images.get(record["image"])
    labels = image.labels
    assert labels["org.gilbench.version"] == "3.13.5"
    assert labels["org.gilbench.sha256"] == record["sha256"]
    assert json.loads(labels["org.gilbench.build"]) == record
    # Ask the interpreter itself, in a fresh container, as a non-root user, offline.
    out = client.containers.run(
        record["image"],
        ["python3", "-c", "import sysconfig, getpass; "
         "print(getpass.getuser(), sysconfig.get_config_var('CONFIG_ARGS'))"],
        remove=True, network_disabled=True,
    ).decode()
    assert out.startswith("gilbench ") and "--enable-optimizations" in out
    assert not client.images.list(name=STAGING_REPO)  # nothing half-built left behind


def test_building_again_is_a_noop(
    pgo_build: tuple[BuildResult, list[tuple[str, str]]], cache: Path,
) -> None:
    again = run_build(options(cache), lambda kind, text: None)
    assert again.reused and again.record == pgo_build[0].record
    # The command line says so too.
    result = invoke("build", "--python", "3.13.5", f"--configure-arg={TEST_FLAG}",
                    env={"GILBENCH_CACHE_DIR": str(cache)})
    assert result.returncode == 0, result.stderr
    assert "already built" in result.stdout


def test_failed_configure_leaves_no_image(
    pgo_build: tuple[BuildResult, list[tuple[str, str]]], cache: Path,
) -> None:
    # configure rejects a relative tzpath at once: a real failure of the real recipe.
    with pytest.raises(GilbenchError) as err:
        run_build(options(cache, "--with-tzpath=relative"), lambda kind, text: None)
    message = str(err.value)
    assert "failed during configure" in message and "the full log is" in message
    log = Path(message.rsplit("the full log is ", 1)[1].rstrip("."))
    assert "--with-tzpath must contain only absolute paths" in log.read_text()
    client = docker.from_env()
    assert not [
        image for image in client.images.list(name=IMAGE_REPO)
        if "--with-tzpath=relative" in image.labels.get("org.gilbench.build", "")
    ]
    assert not client.images.list(name=STAGING_REPO)


def test_quick_matrix_and_faults_in_the_built_image(
    pgo_build: tuple[BuildResult, list[tuple[str, str]]], tmp_path: Path,
) -> None:
    """Issue 3 against the image just built: one container, no network, non-root."""
    from gilbench import matrix, run, runfolder, targets
    from tests.test_experiments_native import FAULTS

    target = targets._from_build(pgo_build[0].record)
    limits = run.Limits(cpuset="0", memory="2g")
    (tmp_path / "faults.toml").write_text(FAULTS)
    for name in ("quick", str(tmp_path / "faults.toml")):
        run_dir = run.start(matrix.load(name), [target], tmp_path, limits, "test",
                            lambda kind, payload: None)
        manifest = runfolder.read_manifest(run_dir)
        records = runfolder.read_records(run_dir).records
        planned = {(c["cell_id"], r) for c in manifest.cells for r in c["repetitions"]}
        assert {(r["cell_id"], r["repetition"]) for r in records} == planned
        backend = manifest.backend[target.id]
        assert (backend["network"], backend["user"], backend["cpuset"]) == ("none", "gilbench", "0")
        assert backend["memory_bytes"] == 2 * 2**30
        assert manifest.pythons[target.id]["config_args"].count("--enable-optimizations") == 1
        statuses = {(r["workload"], r["model"], r["status"]) for r in records}
        if name == "quick":
            assert ("fib", "subinterpreters", "ok") in statuses
            assert ("fib", "interpreter-pool", "unsupported") in statuses
            assert all(r["python_version"] == "3.13.5" for r in records)
            assert {r["api"] for r in records if r["model"] == "subinterpreters"} == {
                "_interpreters (3.13)"}
        else:
            assert {s for (w, _, s) in statuses} == {"ok", "invalid", "crashed", "timeout"}
    client = docker.from_env()
    assert not client.containers.list(all=True, filters={"label": "org.gilbench.owner"})


# Asked inside the sandbox as the gilbench user: what it forbids and what workers need.
SANDBOX_CHECKS = r"""
import json, multiprocessing as mp, tempfile, threading
out = {}
try:
    open("/gilbench-write-test", "w")
    out["rootfs"] = "writable"
except OSError as exc:
    out["rootfs"] = exc.strerror
with tempfile.NamedTemporaryFile() as fh:
    fh.write(b"x")
    out["tempfile"] = fh.name
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
out["cap_eff"], out["no_new_privs"] = status["CapEff"].strip(), status["NoNewPrivs"].strip()
for method in ("fork", "spawn", "forkserver"):
    with mp.get_context(method).Pool(2) as pool:
        out[method] = pool.map(abs, [-1, -2, -3])
release, threads = threading.Event(), []
try:
    while len(threads) < 1000:
        threads.append(threading.Thread(target=release.wait))
        threads[-1].start()
except RuntimeError:
    pass
out["threads"] = len(threads)
release.set()
print(json.dumps(out))
"""


def test_experiment_container_is_sandboxed(
    pgo_build: tuple[BuildResult, list[tuple[str, str]]], tmp_path: Path,
) -> None:
    """Issue 7, item 9: the limits as `docker inspect` reports them, and that workers
    still run under them (start methods, temp files, sub-interpreter fork/exec flags)."""
    from gilbench import backends, matrix, run, targets
    from gilbench.runners import pids_limit
    from tests.conftest import ok_or_creation_flake

    target = targets._from_build(pgo_build[0].record)
    with backends.get("docker").runner(target, tmp_path / "driver.log", cpuset="0",
                                       memory="1g", max_workers=4) as runner:
        inspected = runner.client.api.inspect_container(runner.container.id)
        host_config = inspected["HostConfig"]
        assert host_config["ReadonlyRootfs"] is True
        assert host_config["SecurityOpt"] == ["no-new-privileges"]
        assert host_config["CapDrop"] == ["ALL"]
        assert host_config["PidsLimit"] == pids_limit(4) == 80
        assert list(host_config["Tmpfs"]) == ["/tmp"]
        assert host_config["NetworkMode"] == "none" and inspected["Config"]["User"] == "gilbench"
        described = runner.describe()
        assert (described["read_only_rootfs"], described["security_opt"], described["cap_drop"],
                described["pids_limit"], described["tmpfs"]) == (
            True, ["no-new-privileges"], ["ALL"], 80, host_config["Tmpfs"])
        assert runner.probe()["python_version"] == "3.13.5"  # the lab was copied in
        result = runner.container.exec_run(
            [target.executable, "-I", "-c", SANDBOX_CHECKS], user="gilbench", workdir="/tmp")
        assert result.exit_code == 0, result.output.decode()
        seen = json.loads(result.output.decode().splitlines()[-1])
    assert seen["rootfs"] == "Read-only file system"
    assert seen["tempfile"].startswith("/tmp/")
    assert (seen["cap_eff"], seen["no_new_privs"]) == ("0000000000000000", "1")
    assert seen["fork"] == seen["spawn"] == seen["forkserver"] == [1, 2, 3]
    assert 40 < seen["threads"] < 80  # the pids limit holds, with room for the workers

    # Start methods and the sub-interpreter fork/exec flags, end to end through a run.
    (tmp_path / "sandbox.toml").write_text(SANDBOX_MATRIX)
    run_dir = run.start(matrix.load(str(tmp_path / "sandbox.toml")), [target], tmp_path,
                        run.Limits(cpuset="0", memory="2g"), "test", lambda kind, payload: None)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    assert manifest["backend"][target.id]["read_only_rootfs"] is True
    assert manifest["backend"][target.id]["pids_limit"] >= pids_limit(4)
    assert len(records) == 11
    assert all(r["status"] == "ok" for r in records if r["model"] == "processes"), records
    subinterp = [r for r in records if r["model"] == "subinterpreters"]
    assert all(ok_or_creation_flake(r) for r in subinterp), subinterp


SANDBOX_MATRIX = """
order = "matrix"
workers = [4]
repetitions = 1
warmups = 0
timeout_s = 60

[models.processes]
start_method = ["fork", "spawn", "forkserver"]
[models.subinterpreters]
allow_fork = [false, true]
allow_exec = [false, true]

[workloads.fib]
n = 15
tasks = 4
[workloads.startup]
tasks = 2

[[exclude]]
model = "processes"
workload = "startup"
"""


def test_bench_lab_in_the_built_image(
    pgo_build: tuple[BuildResult, list[tuple[str, str]]], cache: Path, tmp_path: Path,
) -> None:
    """Issue 8: the lab and the hand-written reference both run in the image's container,
    and the no-op build is timed only once the build is known to exist."""
    from gilbench import benchlab, run, targets

    target = targets._from_build(pgo_build[0].record)
    lab = benchlab.Lab(target, tmp_path, run.Limits("", "2g"),
                       benchlab.Settings(n=20, blocks=1, repetitions=2, cost_runs=3),
                       lambda text: None)
    figures = lab.measure()
    lab.noop_build(options(cache))
    assert set(figures.reference) == {"sequential", "threads", "processes", "own", "shared"}
    assert set(figures.accuracy) == {"threads", "processes", "own", "shared"}
    assert figures.python["label"] == "3.13.5-pgo" and figures.process_cost["ratio"] > 0
    assert len(figures.noop_build_s) == 3 and max(figures.noop_build_s) < 60
    # A build that does not exist is named, never built.
    missing = benchlab.Lab(targets._from_build({**pgo_build[0].record, "variant": "debug"}),
                           tmp_path, run.Limits("", "2g"), benchlab.Settings(),
                           lambda text: None)
    missing.noop_build(options(cache))
    assert any("not built" in note for note in missing.figures.notes)


PEP734_MATRIX = """
workers = [2]
repetitions = 2
warmups = 0
timeout_s = 120
[models.subinterpreters]
api = "pep734"
[models.interpreter-pool]
[workloads.fib]
n = 20
tasks = 4
"""


def test_pep734_variant_installs_the_backport_and_its_models_run(
    pgo_build: tuple[BuildResult, list[tuple[str, str]]], cache: Path, tmp_path: Path,
) -> None:
    """Issue 10, item 4: `--variant pgo-pep734` is the pgo build plus the pinned PEP 734
    backport; Docker's layer cache reuses the CPython layers just built (one more image,
    not one more PGO build), and PEP 734's models run on it for real. Before the --rebuild
    test below: a no-cache build forks the cache chain at its first step, and the classic
    builder then follows the newer branch, which has no PGO layers."""
    from gilbench import matrix, packages, run, runfolder, targets
    from gilbench.versions import VARIANTS

    result = run_build(replace(options(cache), variant="pgo-pep734"), lambda kind, text: None)
    record = result.record
    assert record["variant"] == "pgo-pep734" and not result.reused
    assert record["packages"] == packages.pins(packages.requirements(VARIANTS["pgo-pep734"]))
    client = docker.from_env()
    layers = client.images.get(record["image"]).attrs["RootFS"]["Layers"]
    pgo_layers = client.images.get(pgo_build[0].record["image"]).attrs["RootFS"]["Layers"]
    # Everything up to the packages step is the pgo image's own layers.
    assert len(set(pgo_layers) - set(layers)) <= 2, (pgo_layers, layers)

    target = targets._from_build(record)
    (tmp_path / "pep734.toml").write_text(PEP734_MATRIX)
    run_dir = run.start(matrix.load(str(tmp_path / "pep734.toml")), [target], tmp_path,
                        run.Limits("0", "2g"), "test",
                        lambda kind, payload: None)
    records = runfolder.read_records(run_dir).records
    assert records and all(r["status"] == "ok" for r in records), records
    assert {r["api"].split(" (")[0] for r in records} == {
        "interpreters_backport.interpreters",
        "interpreters_backport.concurrent.futures.InterpreterPoolExecutor"}
    client.images.remove(record["image"], force=True)


def test_build_overhead_rebuilds_plain_and_times_a_bare_build(cache: Path,
                                                              docker_engine: None) -> None:
    """`bench-lab --build`: a from-scratch plain build (--rebuild: no reuse, no layer
    cache) against a bare ./configure && make of the same tarball in the same base."""
    from gilbench import benchlab

    overhead = benchlab.build_overhead(replace(options(cache), extra_args=()))
    assert overhead["version"] == "3.13.5" and overhead["bare_s"] > 30
    assert overhead["invoke_build_s"] > 30 and overhead["ratio"] > 0
    assert {"configure", "build", "install", "smoke-check"} <= set(overhead["phases"])


def test_a_docker_run_reproduces_from_its_archive(
    pgo_build: tuple[BuildResult, list[tuple[str, str]]], cache: Path, tmp_path: Path,
) -> None:
    """Issue 9: a run in the built image, exported and reproduced into an empty folder:
    the image is found again by its content address, not rebuilt."""
    from gilbench import archive, matrix, reproduce, run, runfolder, targets

    target = targets._from_build(pgo_build[0].record)
    chosen = matrix.single_cell("threads", "io", [1, 2], {}, {"ms": [5]}, 4, 0, 60.0)
    original = run.start(chosen, [target], tmp_path / "theirs", run.Limits("0", "2g"),
                         "test", lambda kind, payload: None)
    unpacked = archive.unpack(archive.export(original, tmp_path / "x.gilbench.tar.gz"),
                              tmp_path / "unpacked")
    assert set(unpacked.recipes) == {target.id}  # built by gilbench: rebuildable
    said: list[str] = []
    here = reproduce.rerun(unpacked.run_dir, tmp_path / "mine", options(cache), False,
                           "x.gilbench.tar.gz", lambda kind, payload: None, said.append)
    assert not any("building" in line for line in said)  # reused, not rebuilt
    manifest = runfolder.read_manifest(here)
    assert manifest.pythons[target.id]["image"] == target.image
    assert manifest.limits["cpuset"] == "0" and manifest.limits["memory"] == "2g"
    outcome = reproduce.judge(unpacked.run_dir, here)
    assert len(outcome.cells) == 2 and set(outcome.cells["verdict"]) <= set(reproduce.VERDICTS)
    assert (here / "reproduce.md").is_file()


def test_swarm_job_of_the_built_image(
    pgo_build: tuple[BuildResult, list[tuple[str, str]]], tmp_path: Path,
) -> None:
    """Issue 12: a real 2-replica Swarm job of the image just built, one task killed
    mid-run and retried (tests/test_swarm.py holds the check)."""
    from gilbench import targets
    from tests.test_swarm import check_swarm_job

    check_swarm_job(targets._from_build(pgo_build[0].record), tmp_path)


def test_shards_on_two_engines_of_the_built_image(
    pgo_build: tuple[BuildResult, list[tuple[str, str]]], tmp_path: Path,
) -> None:
    """Issue 12: the image sent to a second dockerd (save | load), the shards of a small
    matrix run on both engines at once and merged (tests/test_engines.py holds the check)."""
    from gilbench import targets
    from tests.test_engines import check_two_engines

    check_two_engines(targets._from_build(pgo_build[0].record), tmp_path)


def test_a_run_on_an_ssh_engine_of_the_built_image(
    pgo_build: tuple[BuildResult, list[tuple[str, str]]], tmp_path: Path,
) -> None:
    """Issue 12: `--engine ssh://` through a real sshd to this engine (the harness is
    copied in over ssh's pipe; tests/test_engine_ssh.py holds the check)."""
    from tests.test_engine_ssh import check_ssh_engine

    record = pgo_build[0].record
    check_ssh_engine(record["image"], record["version"], tmp_path)


def test_user_workloads_run_in_the_built_image(
    pgo_build: tuple[BuildResult, list[tuple[str, str]]], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 11, item 1: a user's file and a package on PYTHONPATH, copied into the run and
    from there into the container's lab, run in every worker kind of the image."""
    from gilbench import matrix, run, runfolder, targets

    (tmp_path / "mine.py").write_text("def work(n):\n    return sum(range(n))\n")
    (tmp_path / "site" / "tinypkg").mkdir(parents=True)
    (tmp_path / "site" / "tinypkg" / "__init__.py").write_text("from tinypkg.core import go\n")
    (tmp_path / "site" / "tinypkg" / "core.py").write_text(
        "def go(word):\n    return {'word': word, 'bytes': word.encode()}\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    (tmp_path / "m.toml").write_text(
        'workers = [2]\nrepetitions = 1\nwarmups = 0\n[models.sequential]\n[models.threads]\n'
        '[models.processes]\nstart_method = ["fork", "spawn", "forkserver"]\n'
        '[models.subinterpreters]\n[models.interpreter-pool]\n'
        '[workloads."mine.py:work"]\nn = 100000\n[workloads."tinypkg:go"]\nword = "hi"\n')
    target = targets._from_build(pgo_build[0].record)
    run_dir = run.start(matrix.load(str(tmp_path / "m.toml")), [target], tmp_path / "r",
                        run.Limits("0", "2g"), "test", lambda kind, payload: None)
    manifest = runfolder.read_manifest(run_dir)
    assert set(manifest.user_workloads) == {"mine:work", "tinypkg:go"}
    assert manifest.user_workloads["tinypkg:go"]["files"] == ["tinypkg/__init__.py",
                                                               "tinypkg/core.py"]
    records = runfolder.read_records(run_dir).records
    assert len(records) == 2 * 7
    for record in records:
        pool_absent = record["model"] == "interpreter-pool" and record["status"] == "unsupported"
        assert record["status"] == "ok" or pool_absent, record


def test_check_records_cpythons_own_tests_on_the_image(
    pgo_build: tuple[BuildResult, list[tuple[str, str]]], cache: Path, tmp_path: Path,
) -> None:
    """Issue 10: `invoke build --check` on the image just built (the no-op path) runs
    CPython's own tests in the sandbox and stores the result on the build: the image's
    labels (same layers, same tag) and cache_dir/builds; a run's manifest carries it.
    Last in this file: it changes the image's record, which the tests above compare."""
    from gilbench import matrix, run, runfolder, selfcheck, targets

    client = docker.from_env()
    record = pgo_build[0].record
    before = client.images.get(record["image"])
    result = invoke("build", "--python", "3.13.5", f"--configure-arg={TEST_FLAG}", "--check",
                    env={"GILBENCH_CACHE_DIR": str(cache)}, timeout=1800)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "already built" in result.stdout and "test_threading *" in result.stdout
    after = client.images.get(record["image"])
    assert after.attrs["RootFS"]["Layers"] == before.attrs["RootFS"]["Layers"]
    stored = json.loads(after.labels["org.gilbench.build"])
    check = stored.pop("selfcheck")
    assert stored == {k: v for k, v in record.items() if k != "selfcheck"}  # only that
    assert (check["status"], check["where"], check["missing"]) == ("passed", "docker", [])
    suites = {s["name"]: s for s in check["suites"]}
    assert set(suites) == {s.name for s in selfcheck.SUITES["3.13"]}
    assert all(s["status"] == "passed" and s["tests"] > 0 for s in suites.values()), suites
    assert check["sandbox"]["read_only_rootfs"] is True
    assert check["sandbox"]["pids_limit"] == 64 + selfcheck.PIDS_PER_JOB * check["jobs"]
    assert check["command"].startswith("/opt/cpython/bin/python3 -m test -j")
    on_disk = json.loads((cache / "builds" / f"{record['name']}.json").read_text())
    assert on_disk["selfcheck"] == check
    assert not client.images.list(filters={"label": "org.gilbench.owner"})  # no leftovers

    target = targets._from_build(json.loads(after.labels["org.gilbench.build"]))
    chosen = matrix.single_cell("threads", "io", [1], {}, {"ms": [5]}, 2, 0, 60.0)
    run_dir = run.start(chosen, [target], tmp_path, run.Limits("0", "2g"), "test",
                        lambda kind, payload: None)
    manifest = runfolder.read_manifest(run_dir)
    assert manifest.pythons[target.id]["build"]["selfcheck"] == check
