"""Issue 11, item 1 on the host: resolving a user's workload, copying and hashing its code,
running it against real 3.12 and 3.13 interpreters, exporting it; each bad input one
sentence with nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

from gilbench import archive, matrix, run, runfolder, targets, userwork
from gilbench.errors import GilbenchError
from tests.conftest import REPO

WORK = '''\
def work(n=20, word="x"):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return (a, word)
'''

EVERY_MODEL = '''\
workers = [1, 2]
repetitions = 1
warmups = 0
timeout_s = 120
[models.sequential]
[models.threads]
[models.processes]
start_method = ["fork", "spawn", "forkserver"]
[models.subinterpreters]
[models.interpreter-pool]
'''


def _cli(cwd: Path, results: Path, *args: str, env: dict[str, str] | None = None,
         ) -> subprocess.CompletedProcess[str]:
    """`invoke -r REPO ARGS` from the user's own folder, as the README says (the script:
    `python -m invoke` would put the user's folder first on the tooling's own sys.path)."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "invoke"), "-r", str(REPO), *args], cwd=cwd,
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "INVOKE_GILBENCH_RESULTS_DIR": str(results), **(env or {})})


def _start(chosen: matrix.Matrix, python: Path, results: Path) -> Path:
    target = targets.resolve(str(python), "native", "pgo", results / "cache")
    return run.start(chosen, [target], results, run.Limits("", None), "test",
                     lambda kind, payload: None)


def _check_every_model(run_dir: Path, name: str) -> None:
    manifest = runfolder.read_manifest(run_dir)
    records = runfolder.read_records(run_dir).records
    assert {r["workload"] for r in records} == {name}
    seen = {(r["model"], r["model_config"].get("start_method")) for r in records}
    assert seen == {("sequential", None), ("threads", None), ("processes", "fork"),
                    ("processes", "spawn"), ("processes", "forkserver"),
                    ("subinterpreters", None), ("interpreter-pool", None)}
    for record in records:
        pool_absent = record["model"] == "interpreter-pool" and record["status"] == "unsupported"
        assert record["status"] == "ok" or pool_absent, record
    entry = manifest.user_workloads[name]
    copy = runfolder.user_code(run_dir)
    assert copy is not None
    assert entry["sha256"] == userwork.tree_hash(
        {path: (copy / path).read_bytes() for path in entry["files"]})


def test_a_file_workload_across_every_model(target_python: Path, tmp_path: Path) -> None:
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "mine.py").write_text(WORK)
    # A path in a matrix file is relative to the matrix's folder.
    (tmp_path / "m.toml").write_text(EVERY_MODEL + '[workloads."bench/mine.py:work"]\nn = 25\n'
                                     'word = ["a", "b"]\ntasks = 4\n')
    run_dir = _start(matrix.load(str(tmp_path / "m.toml")), target_python, tmp_path / "r")
    _check_every_model(run_dir, "mine:work")
    entry = runfolder.read_manifest(run_dir).user_workloads["mine:work"]
    assert (entry["spec"], entry["kind"], entry["files"]) == ("bench/mine.py:work", "file",
                                                              ["mine.py"])
    assert entry["origin"] == str((tmp_path / "bench" / "mine.py").resolve())


def test_an_installed_package_across_every_model(target_python: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    (site / "mypkg" / "sub").mkdir(parents=True)
    (site / "mypkg" / "__init__.py").write_text("")
    (site / "mypkg" / "sub" / "__init__.py").write_text("")
    (site / "mypkg" / "helpers.py").write_text("def twice(x):\n    return 2 * x\n")
    (site / "mypkg" / "sub" / "mod.py").write_text(
        "from mypkg.helpers import twice\n\ndef work(n):\n    return twice(n)\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.chdir(tmp_path)
    chosen = matrix.parse({**tomllib.loads(EVERY_MODEL),
                           "workloads": {"mypkg.sub.mod:work": {"n": 21}}}, "installed")
    run_dir = _start(chosen, target_python, tmp_path / "r")
    _check_every_model(run_dir, "mypkg.sub.mod:work")
    entry = runfolder.read_manifest(run_dir).user_workloads["mypkg.sub.mod:work"]
    assert entry["files"] == ["mypkg/__init__.py", "mypkg/helpers.py", "mypkg/sub/__init__.py",
                              "mypkg/sub/mod.py"]


def test_a_package_installed_in_the_target_python_is_found_there(
        python313: Path, tmp_path: Path) -> None:
    """Module specs are looked up as the target would: here, in a venv's site-packages."""
    subprocess.run([str(python313), "-m", "venv", "--without-pip", str(tmp_path / "venv")],
                   check=True)
    site = next((tmp_path / "venv" / "lib").glob("python3.*/site-packages"))
    (site / "venvonly.py").write_text(WORK)
    code = userwork.resolve("venvonly:work", None, [str(tmp_path / "venv" / "bin" / "python")])
    assert code.origin == (site / "venvonly.py").resolve() and code.name == "venvonly:work"


def test_done_when_from_a_file_the_user_wrote(python313: Path, tmp_path: Path) -> None:
    """The issue's command, typed in the user's folder, then `invoke report`."""
    (tmp_path / "mymod.py").write_text(WORK)
    results = tmp_path / "results"
    done = _cli(tmp_path, results, "experiment", "--workload", "mymod:work", "--model",
                "sequential,threads,processes,subinterpreters", "--workers", "1,2",
                "--python", str(python313), "--param", "n=22", "--repetitions", "2")
    assert done.returncode == 0, done.stderr
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    records = runfolder.read_records(run_dir).records
    assert {r["model"] for r in records} == {"sequential", "threads", "processes",
                                             "subinterpreters"}
    assert all(r["status"] == "ok" for r in records), [r["message"] for r in records]
    assert len(records) == 2 * (1 + 3 * 2)
    reported = _cli(tmp_path, results, "report", "--run", str(run_dir))
    assert reported.returncode == 0, reported.stderr
    assert "mymod:work" in (run_dir / "report.md").read_text()
    # The export carries the code; a changed copy is refused on unpack.
    exported = archive.export(run_dir, tmp_path / "x.gilbench.tar.gz")
    unpacked = archive.unpack(exported, tmp_path / "unpacked")
    assert (unpacked.run_dir / "userwork" / "mymod.py").read_text() == WORK


def test_an_export_with_changed_user_code_is_refused(python312: Path, tmp_path: Path) -> None:
    (tmp_path / "mymod.py").write_text(WORK)
    chosen = matrix.single_cell(["threads"], str(tmp_path / "mymod.py") + ":work", [1], {},
                                {"n": [5]}, 1, 0, 60.0)
    run_dir = _start(chosen, python312, tmp_path / "r")
    (run_dir / "userwork" / "mymod.py").write_text(WORK + "# changed\n")
    with pytest.raises(GilbenchError, match="no longer hashes to the manifest's sha256"):
        archive.export(run_dir, tmp_path / "x.gilbench.tar.gz")
    assert not (tmp_path / "x.gilbench.tar.gz").exists()
    # Nor can the run be resumed with other code.
    with pytest.raises(GilbenchError, match="no longer hashes"):
        run.resume(run_dir, None, None, lambda kind, payload: None)


@pytest.mark.parametrize(("spec", "files", "said"), [
    ("nomod:work", {}, "The workload module 'nomod' (from 'nomod:work') is not in the current "
     "directory, PYTHONPATH or the target python"),
    ("mymod:gone", {"mymod.py": WORK}, "names the function 'gone', which"),
    ("mymod:value", {"mymod.py": "value = 3\n"}, "sets to a value, not a function"),
    ("mymod:work", {"mymod.py": "async def work():\n    return 1\n"}, "is an async function"),
    ("missing.py:work", {}, "does not exist"),
    ("queue:work", {"queue.py": WORK}, "which the standard library or gilbench already uses"),
    ("mypkg.nope:work", {"mypkg/__init__.py": ""}, "is not in the package"),
    ("mymod:1x", {}, "must look like module:function"),
    ("broken:work", {"broken.py": "import no_such_dependency\n\ndef work():\n    return 1\n"},
     "The workload broken:work cannot be loaded by 3.12.1 native (ModuleNotFoundError: No "
     "module named 'no_such_dependency')"),
    ("mymod:notcallable", {"mymod.py": "import math\nnotcallable = math.pi\n"},
     "mymod:notcallable is not callable"),
])
def test_a_spec_that_does_not_resolve_is_one_sentence_and_writes_nothing(
        python312: Path, tmp_path: Path, spec: str, files: dict[str, str], said: str) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    results = tmp_path / "results"
    done = _cli(tmp_path, results, "experiment", "--workload", spec, "--model", "threads",
                "--workers", "1", "--repetitions", "1", "--python", str(python312))
    assert done.returncode == 1, done.stdout
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and said in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert not results.exists() or not any(p for p in results.iterdir() if p.is_dir())


def _wheel(folder: Path) -> Path:
    """A real (tiny) wheel, made by hand so the test needs no network and no build tool."""
    path = folder / "tinydep-1.0-py3-none-any.whl"
    files = {"tinydep.py": "def triple(x):\n    return 3 * x\n",
             "tinydep-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: tinydep\n"
                                              "Version: 1.0\n",
             "tinydep-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\n"
                                           "Root-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{name},,\n" for name in files) + "tinydep-1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in {**files, "tinydep-1.0.dist-info/RECORD": record}.items():
            wheel.writestr(name, text)
    return path


def test_requirements_go_into_a_venv_beside_a_native_python(python313: Path,
                                                            tmp_path: Path) -> None:
    (tmp_path / "needs.py").write_text("import tinydep\n\ndef work(n):\n"
                                       "    return tinydep.triple(n)\n")
    (tmp_path / "requirements.txt").write_text(f"{_wheel(tmp_path)}\n")
    results = tmp_path / "results"
    env = {"INVOKE_GILBENCH_CACHE_DIR": str(tmp_path / "cache")}
    done = _cli(tmp_path, results, "experiment", "--workload", "needs.py:work", "--model",
                "sequential,processes", "--workers", "2", "--param", "n=4",
                "--repetitions", "1", "--requirements", "requirements.txt",
                "--python", str(python313), env=env)
    assert done.returncode == 0, done.stderr
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    assert all(r["status"] == "ok" for r in runfolder.read_records(run_dir).records)
    manifest = runfolder.read_manifest(run_dir)
    wanted = manifest.extra["requirements"]
    assert wanted["file"] == str(tmp_path / "requirements.txt")
    (python_id,) = manifest.pythons
    installed = wanted["pythons"][python_id]
    assert installed["base_python"] == str(python313.resolve())
    assert any(line.startswith("tinydep") for line in installed["freeze"])
    assert manifest.pythons[python_id]["executable"].startswith(str(tmp_path / "cache"))


def test_requirements_are_refused_for_docker_images_in_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("tinydep\n")
    image = targets.Target("docker:x", "3.13.5-pgo", "docker", "/opt/python/bin/python3",
                           image="gilbench/cpython:x")
    with pytest.raises(GilbenchError, match="cannot take it yet") as caught:
        userwork.with_requirements([image], tmp_path / "requirements.txt", tmp_path)
    assert str(caught.value).count(". ") == 0


def test_matrix_and_command_line_accept_user_specs(tmp_path: Path) -> None:
    parsed = matrix.parse({"models": {"threads": {}}, "workloads": {
        "pkg.mod:work": {"size": [1, 2], "name": "x"}, "fib": {"n": 10}}}, "m")
    assert parsed.workloads["pkg.mod:work"] == {"size": [1, 2], "name": ["x"]}
    with pytest.raises(GilbenchError, match="must look like module:function"):
        matrix.parse({"models": {"threads": {}}, "workloads": {"pkg.mod:": {}}}, "m")
    with pytest.raises(GilbenchError, match="is not a keyword argument name"):
        matrix.parse({"models": {"threads": {}}, "workloads": {"m:f": {"not-a-name": 1}}}, "m")
    several = matrix.single_cell(["threads", "subinterpreters"], "fib", [1], {"gil": ["own"]},
                                 {}, 1, 0, 60.0)
    assert several.models == {"threads": {}, "subinterpreters": {"gil": ["own"]}}
    with pytest.raises(GilbenchError, match="is a setting of none of the models"):
        matrix.single_cell(["threads", "processes"], "fib", [1], {"gil": ["own"]}, {}, 1, 0, 60)


def test_two_specs_under_one_module_name_are_refused(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "same.py").write_text(WORK)
    chosen = matrix.parse({"models": {"threads": {}}, "workloads": {
        "a/same.py:work": {}, "b/same.py:work": {}}}, "m", path=tmp_path / "m.toml")
    with pytest.raises(GilbenchError, match="are both imported as same"):
        run.resolve_user_workloads(chosen, [])


def test_an_archive_member_list_has_the_code(tmp_path: Path, python312: Path) -> None:
    (tmp_path / "mymod.py").write_text(WORK)
    chosen = matrix.single_cell(["sequential"], str(tmp_path / "mymod.py") + ":work", [1], {},
                                {}, 1, 0, 60.0)
    run_dir = _start(chosen, python312, tmp_path / "r")
    with tarfile.open(archive.export(run_dir, tmp_path / "x.gilbench.tar.gz")) as tar:
        names = tar.getnames()
    sums = [n for n in names if n.endswith("/SHA256SUMS")]
    assert any(n.endswith("/run/userwork/mymod.py") for n in names) and sums


def test_a_rerun_answers_specs_from_the_recorded_copy_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What reproduce relies on: a spec maps to the recorded code by its workload name,
    never to a file of that name in the current directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mymod.py").write_text(WORK + "# the user's file, edited since\n")
    recorded = userwork.recorded(
        {"mymod:work": {"spec": "mymod.py:work", "kind": "file", "files": ["mymod.py"],
                        "sha256": userwork.tree_hash({"mymod.py": WORK.encode()})}},
        {"mymod.py": WORK.encode()}, tmp_path / "copy", "Run r")
    assert userwork.from_record("mymod.py:work", recorded) is recorded[0]
    assert userwork.from_record("other/dir/mymod.py:work", recorded).origin == \
        tmp_path / "copy" / "mymod.py"
    with pytest.raises(GilbenchError, match="has no recorded copy of its code"):
        userwork.from_record("mymod:other", recorded)
    assert userwork.resolve("mymod.py:work").origin == tmp_path / "mymod.py"  # a new run
    with pytest.raises(GilbenchError, match=r"^Run r: the code of the user workload mymod:work"):
        userwork.recorded({"mymod:work": {"files": ["mymod.py"], "sha256": "0" * 64}},
                          {"mymod.py": WORK.encode()}, tmp_path, "Run r")
