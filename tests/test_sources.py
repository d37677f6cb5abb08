"""Source cache and verification, with small generated tarballs and a local HTTP server."""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import re
import shutil
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gilbench.errors import GilbenchError
from gilbench.signatures import BadSignature
from gilbench.sources import fetch, from_file, sha256_file
from gilbench.versions import Lock, Release
from tests.conftest import require


def make_tarball(path: Path, version: str, payload: bytes = b"print('hi')\n") -> str:
    with tarfile.open(path, "w:xz") as tar:
        info = tarfile.TarInfo(f"Python-{version}/setup.py")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on loopback serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(www), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", www
    server.shutdown()


def test_download_verified_then_cached(served: tuple[str, Path], tmp_path: Path) -> None:
    url, www = served
    sha = make_tarball(www / "Python-3.99.1.tar.xz", "3.99.1")
    release = Release("3.99.1", f"{url}/Python-3.99.1.tar.xz", sha)
    cache = tmp_path / "cache"
    first = fetch(release, cache)
    assert first.origin == "url" and first.verified
    assert sha256_file(cache / "Python-3.99.1.tar.xz") == sha
    (www / "Python-3.99.1.tar.xz").unlink()  # the second fetch must not need the URL
    second = fetch(release, cache)
    assert second.origin == "cache" and second.path == cache / "Python-3.99.1.tar.xz"


def test_tampered_download_refused_and_not_cached(
    served: tuple[str, Path], tmp_path: Path
) -> None:
    url, www = served
    good = make_tarball(tmp_path / "good.tar.xz", "3.99.2")
    bad = make_tarball(www / "Python-3.99.2.tar.xz", "3.99.2", payload=b"import evil\n")
    release = Release("3.99.2", f"{url}/Python-3.99.2.tar.xz", good)
    cache = tmp_path / "cache"
    with pytest.raises(GilbenchError) as err:
        fetch(release, cache)
    assert f"expected sha256 {good}, got {bad}" in str(err.value)
    assert list(cache.iterdir()) == []  # nothing cached, not even a partial file


def test_truncated_cache_entry_refused(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    sha = make_tarball(tmp_path / "full.tar.xz", "3.99.3")
    (cache / "Python-3.99.3.tar.xz").write_bytes((tmp_path / "full.tar.xz").read_bytes()[:100])
    with pytest.raises(GilbenchError, match=r"cached tarball .* does not match the lock"):
        fetch(Release("3.99.3", "http://127.0.0.1:9/x", sha), cache)


def test_unreachable_url_names_the_way_out(tmp_path: Path) -> None:
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    release = Release("3.99.4", "http://127.0.0.1:9/Python-3.99.4.tar.xz", "0" * 64)
    with pytest.raises(GilbenchError) as err:
        fetch(release, tmp_path / "cache")
    assert "Cannot download CPython 3.99.4" in str(err.value)
    assert "--source FILE" in str(err.value) and "source cache" in str(err.value)
    assert list((tmp_path / "cache").iterdir()) == []


def test_source_file_unlocked_version_is_hashed_not_verified(tmp_path: Path) -> None:
    tarball = tmp_path / "Python-3.99.5.tar.xz"
    sha = make_tarball(tarball, "3.99.5")
    source = from_file(tarball, Lock.load(), tmp_path / "cache")
    assert (source.version, source.sha256, source.verified) == ("3.99.5", sha, False)
    assert not (tmp_path / "cache").exists()  # unverified sources are never cached


def test_source_file_locked_version_must_match(tmp_path: Path) -> None:
    tarball = tmp_path / "Python-3.13.5.tar.xz"
    make_tarball(tarball, "3.13.5")  # not the real 3.13.5
    mismatch = re.escape("does not match the lock for CPython 3.13.5")
    with pytest.raises(GilbenchError, match=mismatch):
        from_file(tarball, Lock.load(), tmp_path / "cache")


def test_source_file_version_from_top_directory(tmp_path: Path) -> None:
    tarball = tmp_path / "cpython.tar.xz"
    make_tarball(tarball, "3.99.6")
    assert from_file(tarball, Lock.load(), tmp_path / "c").version == "3.99.6"


def test_source_file_too_old_or_missing(tmp_path: Path) -> None:
    old = tmp_path / "Python-3.11.9.tar.xz"
    make_tarball(old, "3.11.9")
    with pytest.raises(GilbenchError, match=re.escape("needs 3.12 or newer")):
        from_file(old, Lock.load(), tmp_path / "c")
    with pytest.raises(GilbenchError, match="is not a file"):
        from_file(tmp_path / "nope.tar.xz", Lock.load(), tmp_path / "c")


def test_source_file_contradicting_python_is_refused_before_hashing(tmp_path: Path) -> None:
    tarball = tmp_path / "Python-3.13.5.tar.xz"
    make_tarball(tarball, "3.13.5")  # not the real one: a lock check would say so instead
    for wanted in ("3.12", "3.99", "3.13.4"):
        with pytest.raises(GilbenchError, match=re.escape(
                f"holds CPython 3.13.5 but --python asks for {wanted}")):
            from_file(tarball, Lock.load(), tmp_path / "cache", wanted)
    with pytest.raises(GilbenchError, match="does not match the lock"):
        from_file(tarball, Lock.load(), tmp_path / "cache", "3.13")  # agrees: goes on
    assert not (tmp_path / "cache").exists()


def test_source_file_named_for_another_version_is_refused(tmp_path: Path) -> None:
    tarball = tmp_path / "Python-3.13.5.tar.xz"
    make_tarball(tarball, "3.99.1")
    with pytest.raises(GilbenchError, match=re.escape(
            "is named for CPython 3.13.5 but holds Python-3.99.1/")):
        from_file(tarball, Lock.load(), tmp_path / "cache")


def test_source_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(GilbenchError, match="is a folder; give the path of a CPython tarball"):
        from_file(tmp_path, Lock.load(), tmp_path / "cache")


# --- signatures beside real tarballs (docs/signatures.md) --------------------------------


@pytest.fixture
def signed_3135(cpython_3135_tarball: Path) -> tuple[Path, Path]:
    """The real 3.13.5 tarball and python.org's .asc beside it, with gpgv to check them."""
    asc = cpython_3135_tarball.with_name(cpython_3135_tarball.name + ".asc")
    require(asc.is_file(), f"no {asc} (.ci/run fetches it from Debian's archive)")
    require(shutil.which("gpgv") is not None, "gpgv is not installed (apt-get install gpgv)")
    return cpython_3135_tarball, asc


def _damaged(asc: Path, dest: Path) -> Path:
    """python.org's signature with its last byte (part of the RSA value) flipped."""
    lines = asc.read_text().splitlines()
    body = lines[lines.index("") + 1:]
    packets = bytearray(base64.b64decode("".join(x for x in body if x and x[0] not in "=-")))
    packets[-1] ^= 0x01
    dest.write_bytes(bytes(packets))
    return dest


def test_source_file_signature_checked_and_copied_into_the_cache(
        signed_3135: tuple[Path, Path], tmp_path: Path) -> None:
    given = tmp_path / "given"
    given.mkdir()
    (given / "Python-3.13.5.tar.xz").symlink_to(signed_3135[0])
    (given / "Python-3.13.5.tar.xz.asc").symlink_to(signed_3135[1])
    cache = tmp_path / "cache"
    source = from_file(given / "Python-3.13.5.tar.xz", Lock.load(), cache)
    assert source.verified and source.signature["status"] == "good"
    assert source.signature["signer"] == "Thomas Wouters <thomas@python.org>"
    assert sorted(p.name for p in cache.iterdir()) == [
        "Python-3.13.5.tar.xz", "Python-3.13.5.tar.xz.asc"]
    again = fetch(Lock.load().resolve("3.13.5"), cache)  # later builds: from the cache
    assert again.origin == "cache" and again.signature == source.signature


def test_source_file_with_a_bad_signature_is_refused_and_not_cached(
        signed_3135: tuple[Path, Path], tmp_path: Path) -> None:
    (tmp_path / "Python-3.13.5.tar.xz").symlink_to(signed_3135[0])
    _damaged(signed_3135[1], tmp_path / "Python-3.13.5.tar.xz.asc")
    with pytest.raises(BadSignature, match=r"refuses .*Python-3\.13\.5\.tar\.xz: the "
                       r"tarball or the signature was altered \(BAD signature\); the tarball "
                       r"was not used \(delete both"):
        from_file(tmp_path / "Python-3.13.5.tar.xz", Lock.load(), tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_cached_tarball_with_a_bad_signature_is_refused(
        signed_3135: tuple[Path, Path], tmp_path: Path) -> None:
    (tmp_path / "Python-3.13.5.tar.xz").symlink_to(signed_3135[0])
    _damaged(signed_3135[1], tmp_path / "Python-3.13.5.tar.xz.asc")
    with pytest.raises(BadSignature, match="altered"):
        fetch(Lock.load().resolve("3.13.5"), tmp_path)


def test_cached_31315_has_no_signature_and_is_unsigned(cpython_31315_tarball: Path) -> None:
    source = fetch(Lock.load().resolve("3.13.15"), cpython_31315_tarball.parent)
    assert source.origin == "cache" and source.verified
    assert source.signature["status"] == "unsigned" and source.signature["method"] is None
    assert "Python-3.13.15.tar.xz.asc" in source.signature["detail"]


def test_download_fetches_the_signature_too(
        served: tuple[str, Path], signed_3135: tuple[Path, Path], tmp_path: Path) -> None:
    url, www = served
    (www / "Python-3.13.5.tar.xz").symlink_to(signed_3135[0])
    (www / "Python-3.13.5.tar.xz.asc").symlink_to(signed_3135[1])
    locked = Lock.load().resolve("3.13.5")
    release = Release(locked.version, f"{url}/Python-3.13.5.tar.xz", locked.sha256,
                      locked.signer)
    source = fetch(release, tmp_path / "cache")
    assert source.origin == "url" and source.signature["status"] == "good"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        "Python-3.13.5.tar.xz", "Python-3.13.5.tar.xz.asc"]


def test_download_with_a_bad_signature_caches_nothing(
        served: tuple[str, Path], signed_3135: tuple[Path, Path], tmp_path: Path) -> None:
    url, www = served
    (www / "Python-3.13.5.tar.xz").symlink_to(signed_3135[0])
    _damaged(signed_3135[1], www / "Python-3.13.5.tar.xz.asc")
    locked = Lock.load().resolve("3.13.5")
    release = Release(locked.version, f"{url}/Python-3.13.5.tar.xz", locked.sha256,
                      locked.signer)
    with pytest.raises(BadSignature, match=re.escape(f"refuses {url}/Python-3.13.5.tar.xz")):
        fetch(release, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_download_without_a_signature_is_unsigned(
        served: tuple[str, Path], signed_3135: tuple[Path, Path], tmp_path: Path) -> None:
    url, www = served
    (www / "Python-3.13.5.tar.xz").symlink_to(signed_3135[0])  # no .asc offered: a 404
    locked = Lock.load().resolve("3.13.5")
    release = Release(locked.version, f"{url}/Python-3.13.5.tar.xz", locked.sha256,
                      locked.signer)
    source = fetch(release, tmp_path / "cache")
    assert source.signature["status"] == "unsigned"
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["Python-3.13.5.tar.xz"]


def test_generated_tarballs_have_no_pinned_signer(tmp_path: Path) -> None:
    tarball = tmp_path / "Python-3.99.5.tar.xz"
    make_tarball(tarball, "3.99.5")
    source = from_file(tarball, Lock.load(), tmp_path / "cache")
    assert source.signature["status"] == "not-checked"
