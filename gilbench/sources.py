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
from dataclasses import dataclass, field
from pathlib import Path

from gilbench.errors import GilbenchError
from gilbench.signatures import SUFFIXES, SignatureRecord, check, signature_path
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
    # The release manager's signature, checked against the lock's pinned signer (a bad
    # one never gets this far). A dict, so build records take it as it is.
    signature: SignatureRecord = field(hash=False)


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


def _copy_into(source: Path, dest: Path) -> None:
    """Copy `source` to `dest` through a temporary name beside it, so a partial copy never
    sits under a name that looks complete."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp_name)
        Path(tmp_name).replace(dest)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def _download(url: str, dest: Path, timeout: float) -> None:
    with dest.open("wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
        shutil.copyfileobj(response, out)


def fetch(release: Release, cache_dir: Path, timeout: float = 30.0) -> Source:
    """A verified tarball for a locked release, from the cache or downloaded into it, with
    its signature checked (the signature file is looked for, or downloaded, beside it)."""
    cached = cache_path(cache_dir, release.version)
    if cached.exists():
        actual = sha256_file(cached)
        if actual != release.sha256:
            raise _mismatch(f"The cached tarball {cached}", release, actual)
        signature = check(cached, release.version, actual, release.signer)
        return Source(cached, release.version, actual, "cache", True, signature)

    cache_dir.mkdir(parents=True, exist_ok=True)
    # Download next to the final names, verify, then rename: a partial, wrong or badly
    # signed file never sits in the cache under a name that looks complete.
    fd, tmp_name = tempfile.mkstemp(prefix=f".Python-{release.version}.", dir=cache_dir)
    os.close(fd)
    tmp, tmp_sig = Path(tmp_name), Path(tmp_name + ".sig")
    try:
        try:
            _download(release.url, tmp, timeout)
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            raise GilbenchError(
                f"Cannot download CPython {release.version} from {release.url} ({exc}); "
                f"put Python-{release.version}.tar.xz into the source cache {cache_dir}, "
                "or pass a local tarball with --source FILE."
            ) from exc
        actual = sha256_file(tmp)
        if actual != release.sha256:
            raise _mismatch(f"The download from {release.url}", release, actual)
        if release.signer is not None:
            sig_url = release.url + SUFFIXES[release.signer.method]
            try:
                _download(sig_url, tmp_sig, timeout)
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
                tmp_sig.unlink(missing_ok=True)  # none offered: recorded as unsigned
        signature = check(tmp, release.version, actual, release.signer, tmp_sig,
                          shown_as=release.url)
        if release.signer is not None and tmp_sig.exists():
            tmp_sig.replace(signature_path(cached, release.signer))
        tmp.replace(cached)
    finally:
        tmp.unlink(missing_ok=True)
        tmp_sig.unlink(missing_ok=True)
    return Source(cached, release.version, release.sha256, "url", True, signature)


# The compressions tarfile reads, by their first bytes (python.org ships .tar.xz and .tgz).
_COMPRESSIONS = (b"\xfd7zXZ\x00", b"\x1f\x8b", b"BZh")


def _compressed(path: Path) -> bool:
    """Whether `path` starts like an xz, gzip or bzip2 file (damaged or not)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(6)
    except OSError as exc:
        raise GilbenchError(f"--source {path} cannot be read ({exc.strerror or exc}).") from None
    return head.startswith(_COMPRESSIONS)


def _top_directory_version(path: Path) -> str | None:
    """The X.Y.Z of the tarball's top folder (Python-X.Y.Z/), or None. A file that is no
    tar archive at all is refused here, before it is hashed, cached or built."""
    try:
        with tarfile.open(path) as tar:
            first = tar.next()
    except (tarfile.TarError, OSError, EOFError, ValueError):
        if not _compressed(path):
            raise GilbenchError(
                f"--source {path} is not a CPython source tarball (not an xz, gzip or bzip2 "
                "tar archive); give a Python-X.Y.Z.tar.xz from python.org."
            ) from None
        return None  # damaged inside: the lock's SHA-256 (or the build) says so
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
    signer = lock.signer_for(version)
    if release is None:
        # Not in the lock: the signature can still vouch for it (or refuse it).
        return Source(path, version, actual, "file", False,
                      check(path, version, actual, signer))
    if actual != release.sha256:
        raise _mismatch(f"--source {path}", release, actual)
    signature = check(path, version, actual, signer)
    # A verified copy goes into the cache, with its signature (first: a cached tarball is
    # never there before its signature), so later builds need no --source.
    cached = cache_path(cache_dir, version)
    cache_dir.mkdir(parents=True, exist_ok=True)
    if signer is not None and (given_sig := signature_path(path, signer)).is_file():
        cached_sig = signature_path(cached, signer)
        if not cached_sig.exists():
            _copy_into(given_sig, cached_sig)
    if not cached.exists():
        _copy_into(path, cached)
    return Source(path, version, actual, "file", True, signature)
