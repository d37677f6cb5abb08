"""Source cache and verification, with small generated tarballs and a local HTTP server."""

from __future__ import annotations

import hashlib
import http.server
import io
import re
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gilbench.errors import GilbenchError
from gilbench.sources import fetch, from_file, sha256_file
from gilbench.versions import Lock, Release


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
