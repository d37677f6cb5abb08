"""`invoke build --check-reproducible`: build one spec twice with the same recipe and
compare the installed trees file by file.

Both builds install into the same prefix (the prefix is compiled in, so builds under
different prefixes differ by design): natively the first tree is moved aside before the
second build; with Docker the second image is built without the layer cache and both
images' /opt/cpython are read back through the engine.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import shutil
import tarfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any

from gilbench.build import BuildOptions, get_builder, run_build
from gilbench.buildspec import BuildResult, EventSink
from gilbench.errors import GilbenchError

REPORT_SCHEMA_VERSION = 1
REPRO_REPO = "gilbench/cpython-repro"  # keeps the first image while the second is built
LISTED = 50  # differing files listed by name in the report
# gilbench's own marker with build times; it is not part of what the recipe installs.
EXCLUDED = ("gilbench-build.json",)
_CHUNK = 1 << 20
_PYTHON = re.compile(r"^bin/python\d+\.\d+t?$")
_LIBPYTHON = re.compile(r"^libpython\d+\.\d+t?")

# relative path -> "sha256:<hex>" for a file, "symlink:<target>" for a link
Tree = dict[str, str]


def hash_tree(root: Path) -> Tree:
    """Every file and symlink under root (folders only through what they hold)."""
    tree: Tree = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel in EXCLUDED:
            continue
        if path.is_symlink():
            tree[rel] = f"symlink:{path.readlink()}"
        elif path.is_file():
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
            tree[rel] = f"sha256:{digest.hexdigest()}"
    return tree


class _ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks (the engine's archive stream)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._rest:
            try:
                self._rest = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._rest))
        buffer[:size] = self._rest[:size]
        self._rest = self._rest[size:]
        return size


def hash_tar(stream: IO[bytes]) -> Tree:
    """The same as hash_tree for a tar stream of one folder (its top folder stripped)."""
    tree: Tree = {}
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            parts = PurePosixPath(member.name).parts[1:]
            rel = "/".join(parts)
            if not rel or rel in EXCLUDED:
                continue
            if member.issym():
                tree[rel] = f"symlink:{member.linkname}"
            elif member.islnk():
                # A hard link's data is that of the member it names, read earlier.
                target = "/".join(PurePosixPath(member.linkname).parts[1:])
                tree[rel] = tree.get(target, f"hardlink:{target}")
            elif member.isfile():
                handle = archive.extractfile(member)
                assert handle is not None
                digest = hashlib.sha256()
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
                tree[rel] = f"sha256:{digest.hexdigest()}"
    return tree


def _kind(rel: str) -> str:
    name = PurePosixPath(rel).name
    if _PYTHON.match(rel):
        return "python"
    if _LIBPYTHON.match(name):
        return "libpython"
    if name.endswith(".pyc"):
        return ".pyc"
    if name.endswith(".so"):
        return ".so"
    return PurePosixPath(rel).suffix or "(no suffix)"


def compare(first: Tree, second: Tree) -> dict[str, Any]:
    """The comparison part of the report: counts, the differing files, the key files."""
    both = sorted(set(first) & set(second))
    differing = [rel for rel in both if first[rel] != second[rel]]
    key = [rel for rel in both if _PYTHON.match(rel) or _LIBPYTHON.match(PurePosixPath(rel).name)]
    key_files = {rel: first[rel] == second[rel] for rel in key}
    pythons = [same for rel, same in key_files.items() if _PYTHON.match(rel)]
    libs = [same for rel, same in key_files.items() if not _PYTHON.match(rel)]
    only_first = sorted(set(first) - set(second))
    only_second = sorted(set(second) - set(first))
    return {
        "files_compared": len(both),
        "identical": len(both) - len(differing),
        "differing": len(differing),
        "differing_by_kind": dict(sorted(Counter(_kind(rel) for rel in differing).items())),
        "differing_files": differing[:LISTED],
        "only_in_first": only_first[:LISTED],
        "only_in_second": only_second[:LISTED],
        "only_in_first_count": len(only_first),
        "only_in_second_count": len(only_second),
        "key_files": key_files,
        # None: no such file was installed (compared) at all.
        "python_identical": all(pythons) if pythons else None,
        "libpython_identical": all(libs) if libs else None,
        "bit_identical": not differing and not only_first and not only_second,
        "excluded": list(EXCLUDED),
    }


def _native_pair(options: BuildOptions, on_event: EventSink) -> tuple[
    BuildResult, BuildResult, Tree, Tree
]:
    first = run_build(options, on_event)
    prefix = Path(first.record["executable"]).parent.parent
    aside = options.cache_dir / "native-repro" / prefix.name
    shutil.rmtree(aside, ignore_errors=True)
    aside.parent.mkdir(parents=True, exist_ok=True)
    prefix.rename(aside)  # the same prefix must be free for the second build
    try:
        second = run_build(options, on_event)
    except BaseException:
        if not prefix.exists():
            aside.rename(prefix)  # the first build stays the build
        raise
    try:
        on_event("phase", "compare")
        return first, second, hash_tree(aside), hash_tree(prefix)
    finally:
        shutil.rmtree(aside, ignore_errors=True)


def _docker_pair(options: BuildOptions, on_event: EventSink) -> tuple[
    BuildResult, BuildResult, Tree, Tree
]:
    import docker.errors

    from gilbench import engine

    first = run_build(options, on_event)
    client = engine.connect()
    keep = f"{REPRO_REPO}:{first.record['name']}-first"
    client.images.get(first.record["image"]).tag(keep)
    try:
        second = run_build(replace(options, rebuild=True), on_event)
        on_event("phase", "compare")
        trees = []
        for image in (keep, second.record["image"]):
            container = client.containers.create(image, ["true"], network_disabled=True)
            try:
                chunks, _ = container.get_archive("/opt/cpython")
                with io.BufferedReader(_ChunkReader(chunks), _CHUNK) as stream:
                    trees.append(hash_tar(stream))
            finally:
                container.remove(force=True)
    finally:
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(keep)  # the tag only; the image goes if nothing uses it
    return first, second, trees[0], trees[1]


def check(options: BuildOptions, on_event: EventSink, output: Path | None = None
          ) -> tuple[dict[str, Any], Path]:
    """Build twice, compare, write the JSON report; returns it and where it went."""
    backend = get_builder(options).name
    pair = {"native": _native_pair, "docker": _docker_pair}.get(backend)
    if pair is None:
        raise GilbenchError(f"--check-reproducible knows the docker and native backends, "
                            f"not {backend}; pass --backend docker or --backend native.")
    first, second, tree_a, tree_b = pair(replace(options, rebuild=False, reuse_only=False),
                                         on_event)
    record = second.record
    report: dict[str, Any] = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "backend": backend,
        "name": record["name"],
        "version": record["version"],
        "variant": record["variant"],
        "config_args": record["config_args"],
        "recipe_hash": record["recipe_hash"],
        "reproducibility": record.get("reproducibility"),
        "builds": [
            {"reused": result.reused, "built_at": result.record["built_at"],
             "build_seconds": result.record["build_seconds"],
             "log": str(result.log_path) if result.log_path else None}
            for result in (first, second)
        ],
        **compare(tree_a, tree_b),
    }
    if output is None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        output = options.cache_dir / "logs" / f"reproducible-{record['name']}-{stamp}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    return report, output


def render(report: dict[str, Any]) -> list[str]:
    """The short table `invoke build --check-reproducible` prints."""

    def verdict(same: bool | None) -> str:
        return "not installed" if same is None else ("identical" if same else "DIFFERENT")

    lines = [
        f"CPython {report['version']} ({report['variant']}, {report['backend']}): "
        f"{'bit-identical' if report['bit_identical'] else 'not bit-identical'}",
        f"  files compared  {report['files_compared']:>7}",
        f"  identical       {report['identical']:>7}",
        f"  differing       {report['differing']:>7}",
        f"  only in first   {report['only_in_first_count']:>7}",
        f"  only in second  {report['only_in_second_count']:>7}",
        f"  python          {verdict(report['python_identical'])}",
        f"  libpython       {verdict(report['libpython_identical'])}",
    ]
    lines += [f"    {rel}: {verdict(same)}" for rel, same in report["key_files"].items()]
    if report["differing"]:
        kinds = ", ".join(f"{kind} {n}" for kind, n in report["differing_by_kind"].items())
        lines.append(f"  differing by kind: {kinds}")
        shown = report["differing_files"][:10]
        lines += [f"    {rel}" for rel in shown]
        if report["differing"] > len(shown):
            lines.append(f"    … and {report['differing'] - len(shown)} more (see the JSON)")
    return lines
