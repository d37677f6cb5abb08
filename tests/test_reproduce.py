"""Issue 9: `invoke reproduce` reruns a run here and gives a verdict per cell group, with
what differs between the hosts; refusals are one sentence; an interruption resumes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gilbench import reproduce, runfolder
from tests.conftest import REPO, invoke, wait_for_records


def _env(results: Path) -> dict[str, str]:
    return {"INVOKE_GILBENCH_RESULTS_DIR": str(results)}


@pytest.fixture(scope="module")
def original(python312: Path, python313: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run of two native pythons: sleeps (stable) under threads, 1 and 2 workers."""
    results = tmp_path_factory.mktemp("original")
    done = invoke("experiment", "--python", str(python312), "--python", str(python313),
                  "--backend", "native", "--model", "threads", "--workload", "io",
                  "--param", "ms=5", "--workers", "1,2", "--repetitions", "5",
                  env=_env(results))
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = results.iterdir()
    return run_dir


def _copy(original: Path, dest: Path, **changes: object) -> Path:
    """The original as another host would have written it (a changed manifest)."""
    manifest = runfolder.read_manifest(original)
    copy = runfolder.copy_run(original, dest, set(manifest.pythons))
    edited = runfolder.read_manifest(copy)
    for name, value in changes.items():
        setattr(edited, name, value)
    runfolder.write_manifest(copy, edited)
    return copy


def _verdict_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines()
            if line.strip().split("  ")[0] in reproduce.VERDICTS]


def test_a_run_reproduces_here_with_a_verdict_per_group(original: Path, tmp_path: Path) -> None:
    done = invoke("reproduce", str(original), env=_env(tmp_path))
    lines = _verdict_lines(done.stdout)
    # 2 pythons x (2 worker counts + the sequential baseline every run gets)
    assert len(lines) == 6, done.stdout + done.stderr
    everything = all(line.strip().startswith("reproduced") for line in lines)
    assert done.returncode == (0 if everything else 1), done.stdout + done.stderr
    (here,) = [p for p in tmp_path.iterdir() if (p / "reproduce.md").exists()]
    manifest = runfolder.read_manifest(here)
    first = runfolder.read_manifest(original)
    assert manifest.extra["reproduces"]["run_id"] == first.run_id
    assert manifest.order["seed"] == first.order["seed"]  # the same order again
    assert [c["cell_id"] for c in manifest.cells] == [c["cell_id"] for c in first.cells]
    text = (here / "reproduce.md").read_text()
    assert "## Verdict per cell group" in text and (here / "reproduce.html").is_file()


def test_what_differs_between_the_hosts_is_reported(original: Path, tmp_path: Path) -> None:
    first = runfolder.read_manifest(original)
    elsewhere = _copy(original, tmp_path / "theirs" / first.run_id,
                      host={**first.host, "cpu_model": "Another CPU", "cores": 64},
                      limits={"cpuset": "0-63", "memory": None})
    done = invoke("reproduce", str(elsewhere), env=_env(tmp_path / "mine"))
    assert "differs [host] host.cpu_model: Another CPU -> " in done.stdout, done.stdout
    assert "cpuset 0-63 does not exist here" in done.stdout
    (here,) = [p for p in (tmp_path / "mine").iterdir() if (p / "reproduce.md").exists()]
    assert "Another CPU" in (here / "reproduce.md").read_text()


def test_a_python_missing_here_is_not_comparable(original: Path, tmp_path: Path) -> None:
    first = runfolder.read_manifest(original)
    pythons = {pid: dict(entry) for pid, entry in first.pythons.items()}
    gone = next(pid for pid, entry in pythons.items() if entry["version"].startswith("3.12"))
    pythons[gone]["executable"] = "/nonexistent/python3.12"
    elsewhere = _copy(original, tmp_path / "theirs" / first.run_id, pythons=pythons)
    done = invoke("reproduce", str(elsewhere), env=_env(tmp_path / "mine"))
    assert done.returncode == 1
    assert "not comparable  all 3 cell groups of 3.12.1 native: a native python " \
           "(/nonexistent/python3.12) that is not on this host" in done.stdout, done.stdout
    assert len(_verdict_lines(done.stdout)) == 4  # 3.13's three groups and the missing one
    assert "Not reproduced" in done.stdout


def test_another_harness_is_refused_unless_drift_is_allowed(original: Path,
                                                            tmp_path: Path) -> None:
    first = runfolder.read_manifest(original)
    elsewhere = _copy(original, tmp_path / "theirs" / first.run_id,
                      experiments_hash="ab" * 32)
    refused = invoke("reproduce", str(elsewhere), env=_env(tmp_path / "mine"))
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "was measured by another version of experiments/" in refused.stderr
    assert "--allow-drift" in refused.stderr
    assert not list((tmp_path / "mine").glob("2*"))  # nothing measured
    allowed = invoke("reproduce", str(elsewhere), "--allow-drift", env=_env(tmp_path / "mine"))
    assert "differs [drift] allowed by --allow-drift: - -> experiments/ is " in allowed.stdout


def test_a_killed_reproduction_resumes(original: Path, tmp_path: Path) -> None:
    results = tmp_path / "mine"
    proc = subprocess.Popen([sys.executable, "-m", "invoke", "reproduce", str(original)],
                            cwd=REPO, env={**os.environ, **_env(results)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    killed = wait_for_records(results, 3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert runfolder.read_manifest(killed).finished_at is None
    again = invoke("reproduce", str(original), env=_env(results))
    assert f"resuming the unfinished reproduction {killed.name}" in again.stdout, again.stdout
    assert len(_verdict_lines(again.stdout)) == 6
    assert [p for p in results.glob("2*")] == [killed]  # finished, not started over
    assert runfolder.read_manifest(killed).finished_at is not None


def test_an_exported_run_reproduces_from_its_archive_alone(original: Path,
                                                           tmp_path: Path) -> None:
    from gilbench import archive

    exported = archive.export(original, tmp_path / "theirs.gilbench.tar.gz")
    results = tmp_path / "empty"
    done = invoke("reproduce", str(exported), env=_env(results))
    assert len(_verdict_lines(done.stdout)) == 6, done.stdout + done.stderr
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr
    (unpacked,) = (results / "archives").iterdir()
    (here,) = [p for p in results.iterdir() if (p / "reproduce.md").exists()]
    source = runfolder.read_manifest(here).extra["reproduces"]["source"]
    assert source == str(exported) and any(unpacked.rglob("manifest.json"))


def test_a_file_that_is_no_archive_is_one_sentence(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_text("hello\n")
    done = invoke("reproduce", str(bogus), env=_env(tmp_path / "results"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "is neither a gilbench export archive nor a run folder" in done.stderr
    assert not (tmp_path / "results" / "archives").exists()


def test_verdicts_name_every_group_and_the_relative_claims() -> None:
    import pandas as pd

    base = {"status_changed": False, "ratio": 1.3, "ratio_ci_low": 1.2, "ratio_ci_high": 1.4,
            "p_value": 0.008, "detectable": True}
    cells = pd.DataFrame([
        {**base, "cell": "fib / threads at 2", "status_a": "ok", "status_b": "ok",
         "verdict": "slower"},
        {**base, "cell": "fib / pool at 2", "status_a": "unsupported",
         "status_b": "unsupported", "verdict": "not comparable"},
        {**base, "cell": "fib / procs at 2", "status_a": "crashed", "status_b": "ok",
         "status_changed": True, "verdict": "no change"},
    ])
    table = reproduce.verdicts(cells, {"p": ["3.12.1 native", "not here"]}, {"p": 6},
                               ["fib / subinterpreters(gil=own) at 2"],
                               {"fib / threads at 2": (1.0, 1.02)})
    got = dict(zip(table["cell"], table["verdict"], strict=True))
    assert got == {"fib / threads at 2": "slower", "fib / pool at 2": "reproduced",
                   "fib / procs at 2": "status changed",
                   "fib / subinterpreters(gil=own) at 2": "not comparable",
                   "all 6 cell groups of 3.12.1 native": "not comparable"}
    reason = table.loc[table["cell"] == "fib / threads at 2", "reason"].item()
    assert "here/original 1.300" in reason and "1.00x there, 1.02x here" in reason
    outcome = reproduce.Outcome(Path("."), Path("."), table, [], [])
    assert reproduce.agreement(outcome) == ("Speedups over sequential (the relative claims): "
                                            "1 of 1 agree within 5%.")
    assert not outcome.reproduced


# --- a user's own workload: the archived copy is what reruns, from any folder -------------

USER_MATRIX = '''\
workers = [1, 2]
repetitions = 2
warmups = 0
timeout_s = 120
[models.sequential]
[models.threads]
[workloads."mywork.py:crunch"]
n = 20000
[workloads."mypkg.mod:work"]
n = 20
'''
CRUNCH = "def crunch(n):\n    return sum(i * i % 7 for i in range(n))\n"
# Imported only if a rerun looked in the current directory instead of the archived copy.
DECOY = "raise RuntimeError('the current directory was imported, not the archived copy')\n"


def _lab(cwd: Path, results: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`invoke -r REPO ARGS` typed in the folder `cwd`, as a user (or stranger) would."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "invoke"), "-r", str(REPO), *args], cwd=cwd,
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, **_env(results)})


@pytest.fixture(scope="module")
def user_archive(python313: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[
        Path, Path]:
    """(run folder, export) of a run of a user's file and package, whose sources are then
    deleted; the stranger's folder holds other files of the same names."""
    root = tmp_path_factory.mktemp("user")
    src = root / "src"
    (src / "mypkg").mkdir(parents=True)
    (src / "mywork.py").write_text(CRUNCH)
    (src / "mypkg" / "__init__.py").write_text("")
    (src / "mypkg" / "helpers.py").write_text("def twice(x):\n    return 2 * x\n")
    (src / "mypkg" / "mod.py").write_text(
        "from mypkg.helpers import twice\n\ndef work(n):\n    return twice(n)\n")
    (src / "m.toml").write_text(USER_MATRIX)
    done = _lab(src, root / "theirs", "experiment", "--matrix", "m.toml", "--python",
                str(python313), "--backend", "native")
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = (root / "theirs").iterdir()
    exported = root / "theirs.gilbench.tar.gz"
    done = _lab(src, root / "theirs", "export", run_dir.name, "-o", str(exported))
    assert done.returncode == 0, done.stdout + done.stderr
    shutil.rmtree(src)
    (root / "stranger" / "mypkg").mkdir(parents=True)
    for decoy in ("mywork.py", "mypkg/__init__.py", "mypkg/mod.py"):
        (root / "stranger" / decoy).write_text(DECOY)
    return run_dir, exported


def test_a_user_workload_reproduces_from_the_archived_copy_in_any_folder(
        user_archive: tuple[Path, Path]) -> None:
    run_dir, exported = user_archive
    results = exported.parent / "mine"
    done = _lab(exported.parent / "stranger", results, "reproduce", str(exported))
    assert "Traceback" not in done.stderr and done.returncode in (0, 1), done.stderr
    assert len(_verdict_lines(done.stdout)) == 6, done.stdout + done.stderr  # 2 x 3 groups
    (here,) = [p for p in results.iterdir() if (p / "reproduce.md").exists()]
    first = runfolder.read_manifest(run_dir).user_workloads
    again = runfolder.read_manifest(here).user_workloads
    assert {n: e["sha256"] for n, e in again.items()} == {
        n: e["sha256"] for n, e in first.items()}
    assert all(str(results / "archives") in e["origin"] for e in again.values())
    records = runfolder.read_records(here).records
    assert records and all(r["status"] == "ok" for r in records), records


@pytest.mark.parametrize("damage", ["changed", "missing"])
def test_a_rerun_whose_user_code_is_not_what_ran_is_one_sentence(
        user_archive: tuple[Path, Path], tmp_path: Path, damage: str) -> None:
    run_dir, exported = user_archive
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy)
    if damage == "changed":
        (copy / "userwork" / "mywork.py").write_text(CRUNCH + "# edited\n")
    else:
        shutil.rmtree(copy / "userwork")
    done = _lab(exported.parent / "stranger", tmp_path / "mine", "reproduce", str(copy))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert (f"Run {run_dir.name} ({copy}): the code of the user workload mywork:crunch is "
            "missing or no longer hashes to the manifest's sha256") in done.stderr, done.stderr
    assert not list((tmp_path / "mine").glob("2*"))  # nothing measured
