"""The export archive (gilbench/archive.py): real runs of a real interpreter exported,
unpacked into empty folders and read back with runfolder; every refusal of a changed,
truncated or hostile archive is one sentence and leaves nothing behind."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gilbench import archive, buildspec, runfolder
from gilbench.errors import GilbenchError
from gilbench.paths import EXPERIMENTS_DIR
from gilbench.run import experiments_hash
from tests.conftest import find_python, invoke, require
from tests.report import helpers


def _real_run(results: Path, python: Path, *extra: str) -> Path:
    """A small real run (threads x io, 3 repetitions, 1 and 2 workers) into results/."""
    result = invoke("experiment", "--model", "threads", "--workload", "io", "--python",
                    str(python), "--workers", "1,2", "--repetitions", "3", "--warmups", "0",
                    "--param", "ms=2", "--param", "tasks=2", *extra,
                    env={"INVOKE_GILBENCH_RESULTS_DIR": str(results)})
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    return run_dir


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    python = find_python("3.12")
    require(python is not None, "no pyenv Python 3.12 installed")
    assert python is not None
    return _real_run(tmp_path_factory.mktemp("results"), python)


@pytest.fixture
def run_copy(real_run: Path, tmp_path: Path) -> Path:
    """A copy of the real run that a test may change, in its own results folder."""
    return Path(shutil.copytree(real_run, tmp_path / "results" / real_run.name))


@pytest.fixture(scope="module")
def exported(real_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return archive.export(real_run, tmp_path_factory.mktemp("exports"))


def _one_sentence(message: str) -> None:
    assert "\n" not in message and message.endswith("."), message
    assert "Traceback" not in message


def _empty(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


# --- export and unpack of a real run ------------------------------------------------------

def test_a_real_run_exports_and_unpacks_into_an_empty_folder(real_run: Path, tmp_path: Path
                                                             ) -> None:
    results = real_run.parent
    result = invoke("export", real_run.name, env={"INVOKE_GILBENCH_RESULTS_DIR": str(results)})
    assert result.returncode == 0, result.stdout + result.stderr
    path = results / f"{real_run.name}.gilbench.tar.gz"
    assert path.is_file() and archive.is_archive(path) and str(path) in result.stdout
    assert "cannot be rebuilt" in result.stdout  # the native python says so
    assert not [p for p in results.iterdir() if p.name.endswith(".tmp")]

    unpacked = archive.unpack(path, tmp_path / "here")
    assert unpacked.root == tmp_path / "here" / f"{real_run.name}.gilbench"
    assert sorted(p.name for p in (tmp_path / "here").iterdir()) == [unpacked.root.name]
    original, copy = runfolder.read_manifest(real_run), runfolder.read_manifest(unpacked.run_dir)
    assert copy.to_json() == original.to_json()
    assert runfolder.read_records(unpacked.run_dir).records == \
        runfolder.read_records(real_run).records
    assert unpacked.experiments_hash == original.experiments_hash == \
        experiments_hash(unpacked.experiments_dir)
    assert (unpacked.root / "matrix.toml").read_text() == original.matrix["text"]
    assert unpacked.recipes == {}
    run_members = {p.name for p in unpacked.run_dir.iterdir()}
    assert {"manifest.json", "records.jsonl", "driver.log"} <= run_members
    assert not run_members & {"run.lock", "cells-pending.jsonl", "harness"}

    export = unpacked.export
    assert export["kind"] == "gilbench-export" and export["schema_version"] == 1
    assert export["run_id"] == original.run_id and export["complete"] is True
    assert export["completeness"] == "" and export["experiments_from"] == "run folder"
    ((python_id, python),) = export["pythons"].items()
    assert python_id == next(iter(original.pythons))
    assert python["kind"] == "native" and python["rebuildable"] is False
    assert python["executable"] in python["reason"]
    assert python["version"] == original.pythons[python_id]["version"]
    assert python["config_args"] == original.pythons[python_id]["config_args"]

    if shutil.which("sha256sum"):  # the index is what sha256sum -c reads
        checked = subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"],
                                 cwd=unpacked.root, capture_output=True, text=True, check=False)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_report_travels_with_the_run(run_copy: Path, tmp_path: Path) -> None:
    report = invoke("report", "--run", str(run_copy))
    assert report.returncode == 0, report.stdout + report.stderr
    unpacked = archive.unpack(archive.export(run_copy), tmp_path / "dest")
    names = {p.relative_to(unpacked.run_dir).as_posix()
             for p in unpacked.run_dir.rglob("*") if p.is_file()}
    assert {"report.md", "report.html", "summary.csv"} <= names
    assert any(name.startswith("plots/") for name in names)


def test_without_a_harness_copy_the_checkout_must_match(run_copy: Path, tmp_path: Path
                                                        ) -> None:
    shutil.rmtree(run_copy / "harness")
    manifest = runfolder.read_manifest(run_copy)
    if manifest.experiments_hash == experiments_hash():
        unpacked = archive.unpack(archive.export(run_copy), tmp_path / "a")
        assert unpacked.export["experiments_from"] == "checkout"
    manifest.experiments_hash = "0" * 64
    runfolder.write_manifest(run_copy, manifest)
    with pytest.raises(GilbenchError) as refused:
        archive.export(run_copy, tmp_path / "b.tar.gz")
    _one_sentence(str(refused.value))
    assert manifest.run_id in str(refused.value) and "checkout of the commit" in str(
        refused.value)
    assert not (tmp_path / "b.tar.gz").exists()


def test_a_changed_harness_copy_is_refused(run_copy: Path, tmp_path: Path) -> None:
    with (run_copy / "harness" / "experiments" / "cell.py").open("a") as handle:
        handle.write("# changed\n")
    with pytest.raises(GilbenchError, match="changed after the run") as refused:
        archive.export(run_copy, tmp_path)
    _one_sentence(str(refused.value))
    assert _empty(tmp_path) or not list(tmp_path.glob("*.tar.gz"))


def test_a_partial_run_exports_and_says_so(run_copy: Path, tmp_path: Path) -> None:
    records = run_copy / "records.jsonl"
    lines = records.read_bytes().splitlines(keepends=True)
    records.write_bytes(b"".join(lines[:-2]) + b'{"torn')  # two missing, one torn line
    manifest = runfolder.read_manifest(run_copy)
    manifest.finished_at = None
    runfolder.write_manifest(run_copy, manifest)
    result = invoke("export", str(run_copy), "-o", str(tmp_path / "partial.tar.gz"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 of 9 planned repetitions have no record" in result.stdout  # sequential too
    unpacked = archive.unpack(tmp_path / "partial.tar.gz", tmp_path / "dest")
    assert unpacked.export["complete"] is False
    assert "--resume" in unpacked.export["completeness"]
    assert (unpacked.run_dir / "records.jsonl").read_bytes() == b"".join(lines[:-2])
    assert len(runfolder.read_records(unpacked.run_dir).records) == 7  # 9 planned, 2 missing


def test_output_places(exported: Path, run_copy: Path, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    first = archive.export(run_copy, folder)  # a folder: the default name inside it
    assert first == folder / f"{run_copy.name}.gilbench.tar.gz"
    again = archive.export(run_copy, first)  # an earlier export is replaced
    assert again == first and sorted(p.name for p in folder.iterdir()) == [first.name]
    precious = tmp_path / "notes.txt"
    precious.write_text("mine")
    result = invoke("export", str(run_copy), "-o", str(precious))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "already exists and is not an export" in result.stderr
    assert precious.read_text() == "mine"
    assert archive.export(run_copy) == run_copy.parent / first.name  # beside the run


def test_cli_refusals_are_one_sentence(real_run: Path, tmp_path: Path) -> None:
    env = {"INVOKE_GILBENCH_RESULTS_DIR": str(real_run.parent)}
    for args, words in ((["nosuchrun"], "There is no run 'nosuchrun'"),
                        ([real_run.name, "--format", "csv"], "--format 'csv' is not one")):
        result = invoke("export", *args, env=env)
        assert result.returncode == 1, result.stdout + result.stderr
        assert words in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_is_archive(exported: Path, tmp_path: Path) -> None:
    assert archive.is_archive(exported)
    plain = tmp_path / "plain.tar"
    with tarfile.open(plain, "w") as tar:
        tar.add(EXPERIMENTS_DIR / "records.py", "x/EXPORT.json")
    random_file = tmp_path / "random.bin"
    random_file.write_bytes(os.urandom(4096))
    for path in (plain, random_file, tmp_path, tmp_path / "missing"):
        assert not archive.is_archive(path)


def test_unpacking_twice_into_the_same_folder_is_refused(exported: Path, tmp_path: Path
                                                         ) -> None:
    archive.unpack(exported, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(GilbenchError, match="already exists") as refused:
        archive.unpack(exported, tmp_path)
    _one_sentence(str(refused.value))
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# --- the hashes the reader recomputes are the writer's ------------------------------------

def test_tree_hash_is_experiments_hash(tmp_path: Path) -> None:
    files = {p.relative_to(EXPERIMENTS_DIR).as_posix(): p.read_bytes()
             for p in EXPERIMENTS_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert archive.tree_hash(files) == experiments_hash()
    # names where sorting by text and sorting by path part differ
    tricky = {"a.py": b"1", "a/b.py": b"2", "a-b.py": b"3", "a/__pycache__/c.py": b"4",
              "z.toml": b"5", "a b.py": b"6"}
    for name, data in tricky.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    assert archive.tree_hash(tricky) == experiments_hash(tmp_path)


def test_recipe_digest_is_the_recipe_hash() -> None:
    from gilbench.paths import DOCKER_DIR, RECIPE_FILES

    files = {name: (DOCKER_DIR / name).read_bytes() for name in RECIPE_FILES}
    assert archive.recipe_digest(files) == buildspec.recipe_hash()


# --- pythons built by gilbench: the recipe travels when this checkout has it ----------------

def _build_record(recipe_hash: str, name: str, variant: str) -> dict[str, Any]:
    sha = "93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640"
    return {"schema_version": 1, "backend": "docker", "name": name, "version": "3.13.5",
            "variant": variant, "sha256": sha, "source_verified": True,
            "configure_args_requested": ["--enable-optimizations"],
            "config_args": "'--prefix=/opt/cpython' '--enable-optimizations'",
            "recipe_hash": recipe_hash, "base": "sha256:" + "ab" * 32,
            "base_image": "gilbench/base:bookworm-480b3e55d6a3", "base_origin": "local",
            "built_at": "2026-11-25T13:55:17+00:00", "executable": "/opt/cpython/bin/python3",
            "image": f"gilbench/cpython:{name}"}


def _docker_python(record: dict[str, Any]) -> dict[str, Any]:
    return {"label": f"3.13.5-{record['variant']}", "kind": "docker", "version": "3.13.5",
            "variant": record["variant"], "gil_disabled": False,
            "config_args": record["config_args"], "cc": "gcc", "sha256": record["sha256"],
            "image": record["image"], "executable": record["executable"], "build": record}


def test_docker_builds_carry_their_recipe_when_this_checkout_has_it(tmp_path: Path) -> None:
    current = buildspec.recipe_hash()
    fresh = _build_record(current, "3.13.5-pgo-cc3b86c793be", "pgo")
    stale = _build_record("f" * 64, "3.13.5-plain-0123456789ab", "plain")
    pythons = {"docker:gilbench/cpython:" + fresh["name"]: _docker_python(fresh),
               "docker:gilbench/cpython:" + stale["name"]: _docker_python(stale)}
    run_dir = helpers.write_run(tmp_path / "results" / "20261125T000000Z-test", helpers.manifest(
        experiments_hash=experiments_hash(), pythons=pythons), [])
    written = archive.export_run(run_dir)
    assert list(written.not_rebuildable) == ["3.13.5-plain"]
    assert "recipe hash ffffffffffff" in written.not_rebuildable["3.13.5-plain"]
    assert written.partial == ""  # no cells planned, none missing
    unpacked = archive.unpack(written.path, tmp_path / "dest")

    fresh_id, stale_id = list(pythons)
    assert list(unpacked.recipes) == [fresh_id]
    folder = unpacked.recipes[fresh_id]
    assert folder == unpacked.root / "recipes" / fresh["name"]
    from gilbench.paths import DOCKER_DIR, RECIPE_FILES

    for name in (*RECIPE_FILES, "make-base.sh"):
        assert (folder / name).read_bytes() == (DOCKER_DIR / name).read_bytes()
    assert json.loads((folder / "build.json").read_text()) == fresh
    lock = json.loads((folder / "lock-entry.json").read_text())
    assert lock == {"version": "3.13.5", "sha256": fresh["sha256"], "in_lock": True,
                    "url": "https://www.python.org/ftp/python/3.13.5/Python-3.13.5.tar.xz"}
    info = unpacked.export["pythons"]
    assert info[fresh_id]["rebuildable"] is True and info[fresh_id]["recipe_hash"] == current
    assert info[fresh_id]["base"] == fresh["base"]
    assert info[fresh_id]["base_image"] == fresh["base_image"]
    assert info[stale_id]["rebuildable"] is False and not (
        unpacked.root / "recipes" / stale["name"]).exists()


# --- refusals: changed, truncated or hostile archives ----------------------------------------

Member = tuple[tarfile.TarInfo, bytes | None]


def _members(path: Path) -> list[Member]:
    with tarfile.open(path, "r:gz") as tar:
        found = []
        for info in tar:
            source = tar.extractfile(info) if info.isreg() else None
            found.append((info, source.read() if source else None))
    return found


def _retar(path: Path, out: Path, members: list[Member]) -> Path:
    with tarfile.open(out, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out


def _file(name: str, data: bytes) -> Member:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _top(members: list[Member]) -> str:
    return members[0][0].name.split("/")[0]


def _replace(members: list[Member], name: str, change: Callable[[bytes], bytes]) -> list[Member]:
    top = _top(members)
    return [(info, change(data) if info.name == f"{top}/{name}" and data is not None else data)
            for info, data in members]


def _flip(data: bytes) -> bytes:
    return data[:10] + bytes([data[10] ^ 1]) + data[11:]


def _resum(members: list[Member]) -> list[Member]:
    """The same members with a SHA256SUMS that matches them (a careful tamperer)."""
    top = _top(members)
    files = {info.name[len(top) + 1:]: data for info, data in members
             if data is not None and info.name != f"{top}/SHA256SUMS"}
    return _replace(members, "SHA256SUMS", lambda _: archive.sums_text(files).encode())


def _special(name: str, kind: bytes, target: str = "") -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _with_export(change: Callable[[dict[str, Any]], None]) -> Callable[[bytes], bytes]:
    def edit(data: bytes) -> bytes:
        export = json.loads(data)
        change(export)
        return json.dumps(export).encode()
    return edit


def _append_line(data: bytes) -> bytes:
    return data + b"# not what ran\n"


TAMPERED: dict[str, tuple[Callable[[list[Member]], list[Member]], str]] = {
    "a flipped byte": (lambda m: _replace(m, "run/records.jsonl", _flip),
                       "run/records.jsonl does not match its SHA-256 in SHA256SUMS"),
    "an extra member": (lambda m: [*m, _file(f"{_top(m)}/run/extra.txt", b"hi")],
                        "run/extra.txt is not listed in SHA256SUMS (an extra member"),
    "a missing member": (lambda m: [x for x in m if not x[0].name.endswith("/matrix.toml")],
                         "matrix.toml, which the archive does not hold"),
    "a ../ member": (lambda m: [*m, _file(f"{_top(m)}/../x", b"x")], "climbs out"),
    "a bare ../ member": (lambda m: [*m, _file("../x", b"x")], "climbs out"),
    "an absolute member": (lambda m: [*m, _file("/tmp/gilbench-evil", b"x")],
                           "has an absolute path"),
    "a symlink member": (lambda m: [*m, _special(f"{_top(m)}/run/evil", tarfile.SYMTYPE,
                                                 "/etc/passwd")], "is a symbolic link"),
    "a hardlink member": (lambda m: [*m, _special(f"{_top(m)}/run/evil", tarfile.LNKTYPE,
                                                  "/etc/passwd")], "is a hard link"),
    "a device member": (lambda m: [*m, _special(f"{_top(m)}/run/dev", tarfile.CHRTYPE)],
                        "is a device, FIFO or other special file"),
    "a member outside the top folder": (lambda m: [*m, _file("elsewhere/x", b"x")],
                                        "is outside its one top folder"),
    "a member twice": (lambda m: [*m, m[-2]], "appears twice"),
    "schema_version 99": (lambda m: _replace(m, "EXPORT.json", _with_export(
        lambda e: e.update(schema_version=99))), "schema_version 99, newer than the 1"),
    "another kind": (lambda m: _replace(m, "EXPORT.json", _with_export(
        lambda e: e.update(kind="something-else"))), "is not a gilbench export"),
    "no EXPORT.json": (lambda m: [x for x in m if not x[0].name.endswith("/EXPORT.json")],
                       "it has no EXPORT.json"),
    "no SHA256SUMS": (lambda m: [x for x in m if not x[0].name.endswith("/SHA256SUMS")],
                      "it has no SHA256SUMS"),
    "experiments that did not run": (lambda m: _resum(_replace(
        m, "experiments/cell.py", _append_line)),
        "experiments/ tree does not hash to the run's experiments_hash"),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_a_tampered_archive_is_refused_and_nothing_is_unpacked(case: str, exported: Path,
                                                               tmp_path: Path) -> None:
    change, words = TAMPERED[case]
    bad = _retar(exported, tmp_path / "bad.tar.gz", change(_members(exported)))
    dest = tmp_path / "dest"
    with pytest.raises(GilbenchError) as refused:
        archive.unpack(bad, dest)
    message = str(refused.value)
    _one_sentence(message)
    assert words in message and str(bad) in message
    assert not dest.exists()
    assert not (tmp_path / "x").exists() and not Path("/tmp/gilbench-evil").exists()


def test_a_careful_tamperer_of_a_recipe_is_refused(tmp_path: Path) -> None:
    record = _build_record(buildspec.recipe_hash(), "3.13.5-pgo-cc3b86c793be", "pgo")
    run_dir = helpers.write_run(tmp_path / "run", helpers.manifest(
        experiments_hash=experiments_hash(), pythons={"docker:x": _docker_python(record)}), [])
    good = archive.export(run_dir, tmp_path / "good.tar.gz")
    bad = _retar(good, tmp_path / "bad.tar.gz", _resum(_replace(
        _members(good), f"recipes/{record['name']}/build-cpython.sh", _append_line)))
    with pytest.raises(GilbenchError, match=r"does not hash to its build\.json") as refused:
        archive.unpack(bad, tmp_path / "dest")
    _one_sentence(str(refused.value))
    assert not (tmp_path / "dest").exists()


@pytest.mark.parametrize("cut", [0.5, 0.99, -4])
def test_a_truncated_archive_is_refused(cut: float, exported: Path, tmp_path: Path) -> None:
    data = exported.read_bytes()
    bad = tmp_path / "cut.tar.gz"
    bad.write_bytes(data[:int(len(data) * cut)] if cut > 0 else data[:int(cut)])
    with pytest.raises(GilbenchError, match="truncated or damaged") as refused:
        archive.unpack(bad, tmp_path / "dest")
    _one_sentence(str(refused.value))
    assert not (tmp_path / "dest").exists()


def test_files_that_are_no_archive_are_refused(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()  # an existing empty destination stays empty
    noise = tmp_path / "noise.tar.gz"
    noise.write_bytes(os.urandom(10_000))
    zipped_noise = tmp_path / "zipped.tar.gz"
    zipped_noise.write_bytes(gzip.compress(os.urandom(10_000)))
    empty = tmp_path / "empty.tar.gz"
    with tarfile.open(empty, "w:gz"):
        pass
    for path, words in ((noise, "not gzip-compressed"), (zipped_noise, "truncated or damaged"),
                        (empty, "holds no files"), (tmp_path / "missing.tar.gz", "There is no"),
                        (tmp_path, "it is a folder")):
        with pytest.raises(GilbenchError) as refused:
            archive.unpack(path, dest)
        _one_sentence(str(refused.value))
        assert words in str(refused.value)
        assert _empty(dest)


@pytest.mark.parametrize("case", ["a flipped byte", "a symlink member"])
def test_reproduce_refuses_a_tampered_archive_on_the_command_line(case: str, exported: Path,
                                                                  tmp_path: Path) -> None:
    change, words = TAMPERED[case]
    bad = _retar(exported, tmp_path / "bad.tar.gz", change(_members(exported)))
    results = tmp_path / "results"
    result = invoke("reproduce", str(bad), env={"INVOKE_GILBENCH_RESULTS_DIR": str(results)})
    assert result.returncode == 1, result.stdout + result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert _empty(results)  # nothing unpacked, no run started
