"""User workloads on the host: resolve a spec, take a copy of its code, hash it.

A spec is `module.path:function` (found the way the target python would import it: the
current directory, PYTHONPATH, then each native target's own sys.path) or
`path/to/file.py:function` (a path as the user's shell means it, or, in a matrix file,
relative to that file's folder). Its code is copied into the run folder
(runfolder.USER_CODE) and hashed; the target imports it from there
(experiments/userwork.py), so what ran is what the manifest names, in a container too.

What is copied: for a file spec, that one file (as `<stem>.py`: the workload is
`<stem>:function`); for a module spec, the top-level module's file, or the whole top-level
package folder (a submodule needs its parents, and it may import its siblings). Nothing
else: a file spec that imports its neighbours needs them made a package.

Resolving imports nothing on the host. A static look at the source (ast) refuses a
function that is not there or plainly not callable; whether the module imports and the
name is callable in the target python is checked there, before anything runs
(`Runner.check_workload`).

A rerun of a recorded run (reproduce) resolves nothing: `recorded` reads the run's copy,
checked against the manifest's sha256, and `from_record` answers specs from it alone.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.machinery
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gilbench.errors import GilbenchError

# Larger than any user's own code, smaller than copying a whole installed library by mistake.
MAX_BYTES = 32 * 1024 * 1024
# Names the user's code must not take: the copy goes first on sys.path, so it would replace
# the standard library's module (or the harness's own package) in every worker.
_RESERVED = {"experiments", "__main__"}

# Run by a native target python (`-c`, the user's environment and directory): where would
# it import this top-level name from? Imports nothing itself.
_FIND = """\
import importlib.util, json, sys
spec = importlib.util.find_spec(sys.argv[1])
print(json.dumps(None if spec is None else {
    "origin": spec.origin, "locations": list(spec.submodule_search_locations or [])}))
"""


@dataclass(frozen=True)
class UserCode:
    spec: str  # as the user gave it
    name: str  # the workload's name in cells and records: "module:function"
    kind: str  # "file" | "module"
    origin: Path  # the file or package folder that was copied
    files: dict[str, bytes]  # path under the run's USER_CODE folder -> contents

    @property
    def module(self) -> str:
        return self.name.rpartition(":")[0]

    @property
    def function(self) -> str:
        return self.name.rpartition(":")[2]

    @property
    def sha256(self) -> str:
        return tree_hash(self.files)

    def manifest_entry(self) -> dict[str, Any]:
        return {"spec": self.spec, "kind": self.kind, "module": self.module,
                "function": self.function, "origin": str(self.origin),
                "files": sorted(self.files), "sha256": self.sha256}


def tree_hash(files: dict[str, bytes]) -> str:
    """sha256 over (path, contents) in path order: the same for the run folder's copy."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name] + b"\0")
    return digest.hexdigest()


def folder_hash(folder: Path) -> str:
    """tree_hash of a folder of copied code (the run folder's, an unpacked export's)."""
    return tree_hash(read_tree(folder))


def read_tree(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes()
            for path in sorted(folder.rglob("*"))
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"}


def recorded(entries: dict[str, Any], files: dict[str, bytes], root: Path,
             where: str) -> list[UserCode]:
    """The user workloads a manifest names (`user_workloads`), from a copy of the run's code
    (path under USER_CODE -> bytes, that folder being `root`), each checked against its
    sha256; one sentence, naming `where`, when one is missing or changed."""
    codes = []
    for name, entry in entries.items():
        listed = entry.get("files") if isinstance(entry, dict) else None
        mine = {path: files[path] for path in listed or [] if path in files}
        if not listed or len(mine) != len(listed) or tree_hash(mine) != entry.get("sha256"):
            raise GilbenchError(
                f"{where}: the code of the user workload {name} is missing or no longer "
                "hashes to the manifest's sha256, so it is not the code that ran; restore it, "
                "or rerun the experiment.")
        top = root / str(listed[0]).split("/")[0]  # the file or package folder copied
        codes.append(UserCode(str(entry.get("spec") or name), name,
                              str(entry.get("kind") or "file"), top, mine))
    return codes


def from_record(spec: str, codes: list[UserCode]) -> UserCode:
    """The recorded code (`recorded`) of the workload `spec` names: a rerun measures the
    code that ran, never whatever file of that name the current directory holds now."""
    left, function, is_file = parse(spec)
    name = f"{Path(left).stem if is_file else left}:{function}"
    for code in codes:
        if code.name == name:
            return code
    raise GilbenchError(
        f"The workload {spec!r} has no recorded copy of its code in the run being rerun "
        "(its manifest names no such user workload), so what ran is unknown and nothing "
        "was measured.")


def is_spec(name: str) -> bool:
    """A workload name with a ':' is the user's; the built-in names have none."""
    return ":" in name


def parse(spec: str) -> tuple[str, str, bool]:
    """(module or path, function, whether it is a file path); one sentence if malformed."""
    left, _, function = spec.rpartition(":")
    is_file = left.endswith(".py") or "/" in left or os.sep in left
    if not left or not function.isidentifier():
        raise GilbenchError(
            f"The workload {spec!r} must look like module:function or path/to/file.py:function "
            "(the function a plain name).")
    if not is_file and not all(part.isidentifier() for part in left.split(".")):
        raise GilbenchError(
            f"The workload {spec!r} names the module {left!r}, which is not a dotted Python "
            "name; give module:function, or a path ending in .py.")
    return left, function, is_file


def _check_name(spec: str, top: str) -> None:
    if top in _RESERVED or top in sys.stdlib_module_names:
        raise GilbenchError(
            f"The workload {spec!r} is in a module named {top!r}, which the standard library "
            "or gilbench already uses; rename your module, since the copy would replace that "
            "one in every worker.")


def _read_files(spec: str, root: Path, paths: list[Path]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    total = 0
    for path in paths:
        if "__pycache__" in path.parts or path.suffix == ".pyc" or not path.is_file():
            continue
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise GilbenchError(f"Cannot read {path} for the workload {spec!r} "
                                f"({exc.strerror or exc}); check its permissions.") from None
        total += len(data)
        if total > MAX_BYTES:
            raise GilbenchError(
                f"The code of the workload {spec!r} ({root}) is over {MAX_BYTES >> 20} MiB; "
                "gilbench copies only your own code, so install libraries into the python "
                "(or give --requirements) instead.")
        files[path.relative_to(root.parent).as_posix()] = data
    return files


def _bound_names(tree: ast.Module) -> tuple[dict[str, ast.AST], bool]:
    """Module-level bindings (name -> the node binding it last), and whether other names may
    exist that ast cannot see (a star import, a module __getattr__, globals())."""
    names: dict[str, ast.AST] = {}
    open_ended = False
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = node
            open_ended |= node.name == "__getattr__"
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    open_ended = True
                names[(alias.asname or alias.name).split(".")[0]] = node
            continue
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name):
                        names[sub.id] = node
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and (
                node.func.id in ("globals", "exec", "setattr")):
            open_ended = True
        # if / try / with / for blocks bind at module level too; function bodies do not.
        pending.extend(ast.iter_child_nodes(node))
    return names, open_ended


def _check_function(spec: str, source_file: Path, function: str) -> None:
    """Refuse what the source shows cannot work; leave the rest to the target's check."""
    try:
        tree = ast.parse(source_file.read_bytes(), str(source_file))
    except (SyntaxError, ValueError, OSError):
        return  # maybe newer syntax than this host's Python: the target python decides
    names, open_ended = _bound_names(tree)
    node = names.get(function)
    if node is None:
        if not open_ended:
            raise GilbenchError(f"The workload {spec!r} names the function {function!r}, which "
                                f"{source_file} does not define.")
        return
    if isinstance(node, ast.AsyncFunctionDef):
        raise GilbenchError(f"The workload {spec!r} is an async function, whose call returns "
                            "a coroutine, not a result; give a plain function.")
    value = getattr(node, "value", None)
    if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(
            value, ast.Constant | ast.List | ast.Tuple | ast.Dict | ast.Set | ast.JoinedStr):
        raise GilbenchError(f"The workload {spec!r} names {function!r}, which {source_file} "
                            "sets to a value, not a function gilbench can call.")


def _find_top(top: str, search: list[Path], pythons: list[str], cwd: Path) -> tuple[
        str | None, list[str]]:
    """(origin, package folders) of a top-level module, where the target would find it."""
    spec = importlib.machinery.PathFinder.find_spec(top, [str(p) for p in search])
    if spec is not None:
        return spec.origin, list(spec.submodule_search_locations or [])
    for python in pythons:
        try:
            done = subprocess.run([python, "-c", _FIND, top], cwd=cwd, capture_output=True,
                                  text=True, timeout=60, check=False)
            found = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout else None
        except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
            continue
        if isinstance(found, dict):
            return found.get("origin"), list(found.get("locations") or [])
    return None, []


def _module_file(package: Path, parts: list[str]) -> Path | None:
    """The file of submodule `parts` inside a package folder, as the import system finds it."""
    folder = package
    for part in parts[:-1]:
        folder = folder / part
        if not (folder / "__init__.py").is_file():
            return None
    last = parts[-1]
    for candidate in (folder / f"{last}.py", folder / last / "__init__.py"):
        if candidate.is_file():
            return candidate
    extensions = [p for p in folder.glob(f"{last}.*") if p.name.endswith(
        (*importlib.machinery.EXTENSION_SUFFIXES, ".so"))]
    return extensions[0] if extensions else None


def resolve(spec: str, base: Path | None = None, pythons: list[str] | None = None) -> UserCode:
    """The user's code for `spec`, read into memory; one sentence when it does not resolve.

    `base`: where relative file paths start (default: the current directory). `pythons`:
    native target interpreters to ask for a module not found in the current directory or
    on PYTHONPATH (a package installed into them)."""
    left, function, is_file = parse(spec)
    cwd = Path.cwd()
    if is_file:
        path = (base or cwd) / Path(left).expanduser()
        if not path.is_file():
            raise GilbenchError(f"The workload file {path} does not exist (from {spec!r}); "
                                "give the path of a .py file.")
        if path.suffix != ".py" or not path.stem.isidentifier():
            raise GilbenchError(f"The workload file {path} must be a .py file whose name is a "
                                "Python name (it is imported as a module).")
        _check_name(spec, path.stem)
        path = path.resolve()
        _check_function(spec, path, function)
        files = _read_files(spec, path, [path])
        return UserCode(spec, f"{path.stem}:{function}", "file", path, files)
    parts = left.split(".")
    _check_name(spec, parts[0])
    search = [cwd, *(Path(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
    origin, locations = _find_top(parts[0], search, pythons or [], cwd)
    where = "the current directory, PYTHONPATH" + (" or the target python" if pythons else "")
    if origin is None and not locations:
        raise GilbenchError(f"The workload module {parts[0]!r} (from {spec!r}) is not in "
                            f"{where}; give module:function for a module there, or "
                            "path/to/file.py:function.")
    if origin in (None, "namespace") or not Path(str(origin)).is_file():
        if locations:
            raise GilbenchError(
                f"The workload package {parts[0]!r} has no __init__.py (a namespace package, "
                f"in {locations[0]}); add one so gilbench can copy it as one folder.")
        raise GilbenchError(f"The workload module {parts[0]!r} is built into the python "
                            "(it has no file); give a module of your own.")
    top_file = Path(str(origin)).resolve()
    if not locations:  # a plain module: one file
        if len(parts) > 1:
            raise GilbenchError(f"The workload {spec!r} names a submodule of {parts[0]!r}, "
                                f"which is a module ({top_file}), not a package.")
        if top_file.suffix == ".py":
            _check_function(spec, top_file, function)
        return UserCode(spec, f"{left}:{function}", "module", top_file,
                        _read_files(spec, top_file, [top_file]))
    package = top_file.parent
    module_file = _module_file(package, parts[1:]) if len(parts) > 1 else top_file
    if module_file is None:
        raise GilbenchError(f"The workload module {left!r} (from {spec!r}) is not in the "
                            f"package {package}; check the module path.")
    if module_file.suffix == ".py":
        _check_function(spec, module_file, function)
    files = _read_files(spec, package, sorted(package.rglob("*")))
    return UserCode(spec, f"{left}:{function}", "module", package, files)


# --- --requirements: the user's dependencies, in a venv beside a native python --------------

def with_requirements(targets: list[Any], requirements: Path, cache_dir: Path) -> tuple[
        list[Any], dict[str, Any]]:
    """Each native target replaced by a venv made from it with `requirements` installed
    (cached by python and file hash), and what the manifest records of it. Docker images
    are refused: installing into one needs the network inside its sandbox, or a new image
    layer per requirements file, which the build recipe does not make yet."""
    from gilbench import backends

    if not requirements.is_file():
        raise GilbenchError(f"--requirements {requirements} is not a file; give a pip "
                            "requirements file.")
    docker = [t for t in targets if t.kind != backends.NativeBackend.name]
    if docker:
        raise GilbenchError(
            f"--requirements installs into a venv beside a native python, and "
            f"{docker[0].label} is a {docker[0].kind} image, which cannot take it yet; run "
            "that python natively (--python PATH), or drop --requirements.")
    data = requirements.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    record: dict[str, Any] = {"file": str(requirements.resolve()), "sha256": digest,
                              "pythons": {}}
    replaced = []
    for target in targets:
        python = str(Path(target.executable).resolve())
        key = hashlib.sha256(f"{python}\0{digest}".encode()).hexdigest()[:16]
        venv = cache_dir / "venvs" / key
        freeze = _ensure_venv(venv, python, requirements)
        new = backends.native().path_target(str(venv / "bin" / "python"))
        replaced.append(new)
        record["pythons"][new.id] = {"base_python": python, "venv": str(venv),
                                     "freeze": freeze}
    return replaced, record


_DONE = "gilbench-venv.json"  # written last: a venv without it is unfinished


def _ensure_venv(venv: Path, python: str, requirements: Path) -> list[str]:
    """The venv's `pip freeze`, making the venv first unless a finished one is cached. Made
    in a temporary folder and renamed, so a failed install leaves nothing behind."""
    done = venv / _DONE
    if done.is_file():
        return list(json.loads(done.read_text())["freeze"])
    import shutil
    import tempfile

    venv.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{venv.name}.", dir=venv.parent))
    try:
        # Moved by the rename below: its python finds its prefix from where it is; only
        # console scripts' shebangs keep the old path, and gilbench runs none of them.
        _run([python, "-m", "venv", str(staging)], f"making a venv from {python}")
        pip = [str(staging / "bin" / "python"), "-m", "pip", "--disable-pip-version-check",
               "--no-input"]
        _run([*pip, "install", "-r", str(requirements)],
             f"installing {requirements} into a venv of {python}")
        freeze = _run([*pip, "freeze", "--all"], "listing what was installed").splitlines()
        (staging / _DONE).write_text(json.dumps({"python": python, "freeze": freeze}))
        shutil.rmtree(venv, ignore_errors=True)
        staging.rename(venv)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return freeze


def _run(command: list[str], doing: str) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GilbenchError(f"{doing[0].upper()}{doing[1:]} failed ({exc}).") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise GilbenchError(f"{doing[0].upper()}{doing[1:]} failed ({tail[0]}); fix the "
                            "requirements, or install them into the python yourself.")
    return done.stdout
