"""CPython source tarballs: the local cache first, then the lock's URL; always verified."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from gilbench.errors import GilbenchError
from gilbench.versions import (
    Lock,
    Release,
    version_from_tarball_name,
    version_key,
    version_matches,
)


@dataclass(frozen=True)
class Source:
    path: Path
    version: str
    sha256: str
    origin: str  # "cache", "url" or "file"
    verified: bool  # True when the hash matched the lock


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_path(cache_dir: Path, version: str) -> Path:
    return cache_dir / f"Python-{version}.tar.xz"


def _mismatch(what: str, release: Release, actual: str) -> GilbenchError:
    return GilbenchError(
        f"{what} does not match the lock for CPython {release.version}: expected sha256 "
        f"{release.sha256}, got {actual}; it was not used (delete it, or get a genuine copy)."
    )


def fetch(release: Release, cache_dir: Path, timeout: float = 30.0) -> Source:
    """A verified tarball for a locked release, from the cache or downloaded into it."""
    cached = cache_path(cache_dir, release.version)
    if cached.exists():
        actual = sha256_file(cached)
        if actual != release.sha256:
            raise _mismatch(f"The cached tarball {cached}", release, actual)
        return Source(cached, release.version, actual, "cache", True)

    cache_dir.mkdir(parents=True, exist_ok=True)
    # Download next to the final name, verify, then rename: a partial or wrong file
    # never sits in the cache under a name that looks complete.
    fd, tmp_name = tempfile.mkstemp(prefix=f".Python-{release.version}.", dir=cache_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(release.url, timeout=timeout) as r:
            shutil.copyfileobj(r, out)
        actual = sha256_file(tmp)
        if actual != release.sha256:
            raise _mismatch(f"The download from {release.url}", release, actual)
        tmp.replace(cached)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        raise GilbenchError(
            f"Cannot download CPython {release.version} from {release.url} ({exc}); "
            f"put Python-{release.version}.tar.xz into the source cache {cache_dir}, "
            "or pass a local tarball with --source FILE."
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return Source(cached, release.version, release.sha256, "url", True)


def _top_directory_version(path: Path) -> str | None:
    """The X.Y.Z of the tarball's top folder (Python-X.Y.Z/), or None."""
    try:
        with tarfile.open(path) as tar:
            first = tar.next()
    except (tarfile.TarError, OSError, EOFError, ValueError):
        return None
    if first is None:
        return None
    return version_from_tarball_name(Path(first.name.split("/")[0] + ".tar.xz"))


def tarball_version(path: Path) -> str | None:
    """The X.Y.Z of a CPython tarball, from its top folder or else its file name; a name
    that contradicts the folder inside is refused."""
    inside = _top_directory_version(path)
    named = version_from_tarball_name(path)
    if inside and named and inside != named:
        raise GilbenchError(
            f"--source {path} is named for CPython {named} but holds Python-{inside}/; "
            "rename it or give the right tarball."
        )
    return inside or named


def from_file(path: Path, lock: Lock, cache_dir: Path, wanted: str | None = None) -> Source:
    """A user-given tarball: verified if its version is locked, else its hash recorded.

    `wanted` is an explicit --python spec ('3.13', '3.13.5'); a tarball of another version
    is refused rather than silently built.
    """
    if path.is_dir():
        raise GilbenchError(f"--source {path} is a folder; give the path of a CPython tarball.")
    if not path.is_file():
        raise GilbenchError(f"--source {path} is not a file; give the path of a CPython tarball.")
    version = tarball_version(path)
    if version is None:
        raise GilbenchError(
            f"Cannot tell which CPython version {path} holds; name it Python-X.Y.Z.tar.xz."
        )
    if wanted is not None and not version_matches(wanted, version):
        raise GilbenchError(
            f"--source {path} holds CPython {version} but --python asks for {wanted}; drop "
            "--python (the tarball decides the version) or give a tarball of that version."
        )
    if version_key(version)[:2] < (3, 12):
        raise GilbenchError(f"{path} is CPython {version}; gilbench needs 3.12 or newer.")
    actual = sha256_file(path)
    release = lock.get(version)
    if release is None:
        return Source(path, version, actual, "file", False)
    if actual != release.sha256:
        raise _mismatch(f"--source {path}", release, actual)
    # A verified copy goes into the cache so later builds need no --source.
    cached = cache_path(cache_dir, version)
    if not cached.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".Python-{version}.", dir=cache_dir)
        os.close(fd)
        shutil.copyfile(path, tmp_name)
        Path(tmp_name).replace(cached)
    return Source(path, version, actual, "file", True)
