"""The version lock and variants: resolution rules and refusals."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gilbench.errors import GilbenchError
from gilbench.versions import (
    SIGSTORE_TRUSTED_ROOT,
    Lock,
    resolve_variant,
    version_from_tarball_name,
    version_matches,
)


def test_real_lock_defaults_to_newest_312() -> None:
    lock = Lock.load()
    newest_312 = max((v for v in lock.known() if v.startswith("3.12.")),
                     key=lambda v: tuple(map(int, v.split("."))))
    assert lock.resolve(None).version == newest_312 == "3.12.15"
    assert lock.resolve("3.12").version == "3.12.15"
    assert lock.resolve("3.12.14").sha256.startswith("5c8462af")  # older entries stay
    assert lock.resolve("3.12.12").sha256.startswith("fb85a134")


def test_exact_and_minor_versions() -> None:
    lock = Lock.load()
    assert lock.resolve("3.13.5").sha256 == (
        "93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640"
    )
    assert lock.resolve("3.13").version == "3.13.15"
    assert lock.resolve("3.14").url.endswith("/3.14.8/Python-3.14.8.tar.xz")


def test_unknown_version_lists_known_ones() -> None:
    with pytest.raises(GilbenchError) as err:
        Lock.load().resolve("3.11.9")
    message = str(err.value)
    assert "'3.11.9' is not in the version lock" in message
    assert "3.12.15" in message and "3.13.5" in message and "--source" in message


def test_malformed_lock_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "versions.toml"
    bad.write_text('[versions."3.13.5"]\nurl = "x"\nsha256 = "short"\n')
    with pytest.raises(GilbenchError, match=re.escape("malformed entry for '3.13.5'")):
        Lock.load(bad)


def test_variants() -> None:
    assert resolve_variant("pgo", "3.12.12").configure_args == ("--enable-optimizations",)
    assert "--with-lto" in resolve_variant("pgo-lto", "3.13.5").configure_args
    assert "--disable-gil" in resolve_variant("freethreaded", "3.13.5").configure_args
    with pytest.raises(GilbenchError, match=re.escape("needs CPython 3.13 or newer")):
        resolve_variant("freethreaded", "3.12.12")
    with pytest.raises(GilbenchError, match="Unknown variant 'fast'; choose one of: pgo"):
        resolve_variant("fast", "3.13.5")


@pytest.mark.parametrize(
    ("name", "version"),
    [("Python-3.13.5.tar.xz", "3.13.5"), ("python3.13_3.13.5.orig.tar.xz", "3.13.5"),
     ("Python-3.12.12.tgz", "3.12.12"), ("notes.txt", None)],
)
def test_version_from_tarball_name(name: str, version: str | None) -> None:
    assert version_from_tarball_name(Path(name)) == version


@pytest.mark.parametrize(
    ("spec", "version", "matches"),
    [("3.13", "3.13.5", True), ("3.13.5", "3.13.5", True), ("3.12", "3.13.5", False),
     ("3.1", "3.13.5", False), ("3.13.1", "3.13.5", False), ("3.99", "3.13.5", False),
     ("3", "3.13.5", False), ("latest", "3.13.5", False)],
)
def test_version_matches(spec: str, version: str, matches: bool) -> None:
    assert version_matches(spec, version) is matches


def test_real_lock_pins_a_signer_for_every_series() -> None:
    lock = Lock.load()
    for version in lock.known():
        assert lock.releases[version].signer is lock.signer_for(version) is not None
    wouters = lock.signers["3.12"]
    assert lock.signers["3.13"] is wouters
    assert (wouters.method, wouters.uid, wouters.fingerprint) == (
        "openpgp", "Thomas Wouters <thomas@python.org>",
        "7169605F62C751356D054A26A821E680E5FA6305")
    assert wouters.key_file.is_file()  # committed; never fetched
    hugo = lock.signers["3.14"]
    assert (hugo.method, hugo.identity, hugo.issuer) == (
        "sigstore", "hugo@python.org", "https://github.com/login/oauth")
    assert SIGSTORE_TRUSTED_ROOT.is_file()
    assert lock.signer_for("3.99.1") is None


@pytest.mark.parametrize("signer", [
    'series = ["3.13"]\nmethod = "openpgp"\nuid = "A <a@b>"\nfingerprint = "7169605F"\n',
    'series = ["3.13"]\nmethod = "x509"\n',
    'series = "3.13"\nmethod = "sigstore"\nidentity = "a@b"\nissuer = "https://i"\n',
    'series = ["3.14"]\nmethod = "sigstore"\nidentity = "a@b"\nissuer = "i"\n',
])
def test_malformed_signer_is_refused(tmp_path: Path, signer: str) -> None:
    bad = tmp_path / "versions.toml"
    bad.write_text(f'[signers."Someone"]\n{signer}')
    with pytest.raises(GilbenchError, match=re.escape("malformed signer 'Someone'")):
        Lock.load(bad)


def test_two_signers_for_one_series_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "versions.toml"
    entry = 'series = ["3.14"]\nmethod = "sigstore"\nidentity = "a@b"\nissuer = "https://i"\n'
    bad.write_text(f'[signers."A"]\n{entry}[signers."B"]\n{entry}')
    with pytest.raises(GilbenchError, match=re.escape("two signers for CPython 3.14 (A and B)")):
        Lock.load(bad)
