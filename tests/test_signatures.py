"""Release managers' signatures: the real 3.13.5 tarball and python.org's real .asc, a
throwaway key made here, and the decision logic for what cannot be made here (Sigstore
bundles of 3.14, a signature made after the key expired)."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gilbench import signatures
from gilbench.errors import GilbenchError
from gilbench.signatures import BadSignature, check, dearmor, judge_gpgv, warning
from gilbench.sources import from_file
from gilbench.versions import Lock, Signer
from tests.conftest import require

PINNED = "7169605F62C751356D054A26A821E680E5FA6305"
SHA_3135 = "93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640"


@pytest.fixture(scope="module")
def wouters() -> Signer:
    signer = Lock.load().signer_for("3.13.5")
    assert signer is not None
    return signer


@pytest.fixture(scope="module")
def hugo() -> Signer:
    signer = Lock.load().signer_for("3.14.8")
    assert signer is not None
    return signer


@pytest.fixture(scope="module")
def real(cpython_3135_tarball: Path) -> tuple[Path, Path]:
    """The real 3.13.5 tarball and python.org's .asc beside it, with gpgv to check them."""
    asc = cpython_3135_tarball.with_name(cpython_3135_tarball.name + ".asc")
    require(asc.is_file(), f"no {asc} (.ci/run fetches it from Debian's archive)")
    require(shutil.which("gpgv") is not None, "gpgv is not installed (apt-get install gpgv)")
    return cpython_3135_tarball, asc


@pytest.fixture(scope="module")
def flipped(real: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the real tarball, under its real name, with one byte flipped mid-file and
    the genuine .asc beside it."""
    folder = tmp_path_factory.mktemp("flipped")
    data = bytearray(real[0].read_bytes())
    data[len(data) // 2] ^= 0x01
    copy = folder / "Python-3.13.5.tar.xz"
    copy.write_bytes(bytes(data))
    shutil.copyfile(real[1], folder / "Python-3.13.5.tar.xz.asc")
    return copy


@pytest.fixture(scope="module")
def mallory(real: tuple[Path, Path]) -> Iterator[tuple[Path, Path]]:
    """A throwaway key made here, and its detached signature of the real tarball: (armored
    public key, .asc)."""
    require(shutil.which("gpg") is not None, "gpg is not installed (apt-get install gpg)")
    # A short home: gpg-agent's socket path must stay under the unix limit.
    home = Path(tempfile.mkdtemp(prefix="gb-gpg-"))
    env = {**os.environ, "GNUPGHOME": str(home)}

    def gpg(*args: str) -> None:
        subprocess.run(["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "",
                        *args], env=env, check=True, capture_output=True, timeout=120)

    try:
        gpg("--quick-gen-key", "Mallory <mallory@example.invalid>", "ed25519", "sign", "never")
        gpg("--armor", "--output", str(home / "mallory.pub.asc"), "--export")
        gpg("--armor", "--detach-sign", "--output", str(home / "mallory.asc"), str(real[0]))
        yield home / "mallory.pub.asc", home / "mallory.asc"
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, check=False,
                       capture_output=True, timeout=30)
        shutil.rmtree(home, ignore_errors=True)


def _binary_signature(asc: Path) -> bytes:
    """The OpenPGP packets of an armored signature (gpgv reads either form)."""
    lines = asc.read_text().splitlines()
    body = lines[lines.index("") + 1:]
    return base64.b64decode("".join(x for x in body if x and x[0] not in "=-"))


# --- the lock and the committed key ------------------------------------------------------


def test_committed_key_is_the_pinned_one_and_dearmors_like_gpg(wouters: Signer,
                                                               tmp_path: Path) -> None:
    keyring = dearmor(wouters.key_file.read_text())
    # A v4 fingerprint: SHA-1 over 0x99, the key packet's two-byte length and its body.
    assert keyring[0] == 0x99
    length = int.from_bytes(keyring[1:3], "big")
    fingerprint = hashlib.sha1(keyring[:3] + keyring[3:3 + length]).hexdigest().upper()
    assert fingerprint == wouters.fingerprint == PINNED
    require(shutil.which("gpg") is not None, "gpg is not installed (apt-get install gpg)")
    subprocess.run(["gpg", "--dearmor", "--output", str(tmp_path / "k.gpg"),
                    str(wouters.key_file)], check=True, capture_output=True, timeout=60,
                   env={**os.environ, "GNUPGHOME": str(tmp_path)})
    assert keyring == (tmp_path / "k.gpg").read_bytes()


def test_armor_checksum_is_checked(wouters: Signer) -> None:
    text = wouters.key_file.read_text()
    body_line = text.splitlines()[5]
    broken = text.replace(body_line, body_line[:10] + ("A" if body_line[10] != "A" else "B")
                          + body_line[11:], 1)
    with pytest.raises(ValueError, match="checksum"):
        dearmor(broken)


# --- OpenPGP, with python.org's real signature -------------------------------------------


def test_real_signature_is_good_although_the_key_has_expired_since(
        real: tuple[Path, Path], wouters: Signer) -> None:
    record = check(real[0], "3.13.5", SHA_3135, wouters)
    assert record["status"] == "good" and record["method"] == "openpgp"
    assert record["signer"] == "Thomas Wouters <thomas@python.org>"
    assert record["fingerprint"] == PINNED
    # Made 2025-06-11; the key's self-signature expired 2026-07-02: good, and recorded.
    assert record["signed_at"] == "2025-06-11T17:45:54Z"
    assert record["key_expired"] is True
    assert "since expired (on 2026-07-02)" in record["detail"]
    assert warning(record) is None


def test_one_flipped_byte_is_refused(flipped: Path, wouters: Signer) -> None:
    with pytest.raises(BadSignature) as err:
        check(flipped, "3.13.5", SHA_3135, wouters)
    message = str(err.value)
    assert "altered (BAD signature)" in message and str(flipped) in message
    assert "was not used" in message and message.count(".") >= 1
    # The whole --source path checks the lock's SHA-256 first, so that is what it says.
    cache = flipped.parent / "cache"
    mismatch = re.escape("does not match the lock for CPython 3.13.5")
    with pytest.raises(GilbenchError, match=mismatch):
        from_file(flipped, Lock.load(), cache)
    assert not cache.exists()


def test_a_signature_by_another_key_is_refused(real: tuple[Path, Path], wouters: Signer,
                                               mallory: tuple[Path, Path]) -> None:
    _, other_sig = mallory
    with pytest.raises(BadSignature, match=f"not by Thomas Wouters .*pinned key {PINNED}"):
        signatures.verify_openpgp(real[0], other_sig, wouters)


def test_another_key_in_the_keyring_is_still_refused(
        real: tuple[Path, Path], wouters: Signer, mallory: tuple[Path, Path],
        tmp_path: Path) -> None:
    # gpgv itself says "Good signature" here: only the pinned-fingerprint check refuses.
    other_key, other_sig = mallory
    both = tmp_path / "both.asc"
    both.write_text(wouters.key_file.read_text() + other_key.read_text())
    gpgv = shutil.which("gpgv")
    assert gpgv is not None
    returncode, lines = signatures._gpgv(real[0], other_sig, both, gpgv)
    assert returncode == 0 and any(" GOODSIG " in line for line in lines)
    with pytest.raises(BadSignature, match=f"made by key [0-9A-F]{{40}}, not by .*{PINNED}"):
        judge_gpgv(returncode, lines, wouters, str(other_sig), str(real[0]))


def test_a_signature_made_after_the_key_expired_is_refused(
        real: tuple[Path, Path], wouters: Signer) -> None:
    # No such signature exists; gpgv's real output with the expiry moved before the
    # signature (gpgv would say EXPKEYSIG and exit 0 for it all the same).
    gpgv = shutil.which("gpgv")
    assert gpgv is not None
    returncode, lines = signatures._gpgv(real[0], real[1], wouters.key_file, gpgv)
    assert any(line.startswith("[GNUPG:] EXPKEYSIG ") for line in lines)
    before = [line.replace("KEYEXPIRED 1782998657", "KEYEXPIRED 1700000000") for line in lines]
    with pytest.raises(BadSignature, match=r"after the pinned key \w+ expired on 2023-11-14; .*"
                       r"current public key"):
        judge_gpgv(returncode, before, wouters, str(real[1]), str(real[0]))


def test_a_file_that_is_no_signature_is_refused(real: tuple[Path, Path], wouters: Signer,
                                                tmp_path: Path) -> None:
    junk = tmp_path / "junk.asc"
    junk.write_text("not a signature\n")
    with pytest.raises(BadSignature, match="not an OpenPGP signature"):
        signatures.verify_openpgp(real[0], junk, wouters)


def test_a_damaged_signature_is_refused(real: tuple[Path, Path], wouters: Signer,
                                        tmp_path: Path) -> None:
    packets = bytearray(_binary_signature(real[1]))
    packets[-1] ^= 0x01  # the last byte of the RSA signature value
    damaged = tmp_path / "damaged.asc"
    damaged.write_bytes(bytes(packets))
    with pytest.raises(BadSignature, match="altered"):
        signatures.verify_openpgp(real[0], damaged, wouters)


def test_missing_signature_is_unsigned_and_warned(real: tuple[Path, Path], wouters: Signer,
                                                  tmp_path: Path) -> None:
    alone = tmp_path / "Python-3.13.5.tar.xz"
    alone.symlink_to(real[0])
    record = check(alone, "3.13.5", SHA_3135, wouters)
    assert (record["status"], record["method"], record["signer"]) == ("unsigned", None, None)
    assert "No signature Python-3.13.5.tar.xz.asc beside the tarball" in record["detail"]
    note = warning(record)
    assert note is not None and note.startswith("Signature unsigned: No signature")


def test_real_31315_without_asc_is_unsigned(cpython_31315_tarball: Path) -> None:
    source = from_file(cpython_31315_tarball, Lock.load(), cpython_31315_tarball.parent)
    assert source.verified and source.signature["status"] == "unsigned"


def test_no_gpgv_is_recorded_not_checked(real: tuple[Path, Path], wouters: Signer,
                                         monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no gpgv on it
    record = check(real[0], "3.13.5", SHA_3135, wouters)
    assert (record["status"], record["method"]) == ("not-checked", "openpgp")
    assert record["detail"].startswith("Not checked: gpgv missing")
    assert "gpgv missing" in (warning(record) or "")


def test_no_pinned_signer_is_not_checked(tmp_path: Path) -> None:
    record = check(tmp_path / "Python-3.99.1.tar.xz", "3.99.1", "0" * 64, None)
    assert record["status"] == "not-checked"
    assert "No signer is pinned for CPython 3.99" in record["detail"]


# --- Sigstore (3.14): the decision logic; no 3.14 bundle exists on these machines --------


def test_sigstore_missing_bundle_is_unsigned(hugo: Signer, tmp_path: Path) -> None:
    record = check(tmp_path / "Python-3.14.8.tar.xz", "3.14.8", "0" * 64, hugo)
    assert record["status"] == "unsigned"
    assert "Python-3.14.8.tar.xz.sigstore" in record["detail"]
    assert "hugo@python.org" in record["detail"]


def test_sigstore_not_installed_is_not_checked(hugo: Signer, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in sys.modules if n.split(".")[0] in ("sigstore", "sigstore_models")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "sigstore", None)
    bundle = tmp_path / "Python-3.14.8.tar.xz.sigstore"
    bundle.write_text("{}")
    record = check(tmp_path / "Python-3.14.8.tar.xz", "3.14.8", "0" * 64, hugo)
    assert (record["status"], record["method"]) == ("not-checked", "sigstore")
    assert "present, not verified (sigstore not installed" in record["detail"]


@pytest.mark.parametrize("content", ["not json", "{}", '{"mediaType": '
                                     '"application/vnd.dev.sigstore.bundle.v0.3+json"}'])
def test_sigstore_bundle_that_does_not_verify_is_refused(hugo: Signer, tmp_path: Path,
                                                         content: str) -> None:
    try:
        import sigstore  # noqa: F401
    except ImportError:
        require(False, "sigstore is not installed (pip install -r requirements.txt)")
    (tmp_path / "Python-3.14.8.tar.xz.sigstore").write_text(content)
    with pytest.raises(BadSignature, match=re.escape(
            "does not verify as hugo@python.org via https://github.com/login/oauth")):
        check(tmp_path / "Python-3.14.8.tar.xz", "3.14.8", "0" * 64, hugo)


def test_a_build_records_signature_reads_as_one_table_cell() -> None:
    good = {"method": "openpgp", "status": "good", "signer": "Thomas Wouters <thomas@python.org>",
            "fingerprint": "7169605F62C751356D054A26A821E680E5FA6305", "signed_at": None,
            "key_expired": True, "detail": ""}
    assert signatures.describe(good) == (
        "good (Thomas Wouters <thomas@python.org>, openpgp, key since expired)")
    assert signatures.describe({**good, "status": "unsigned"}) == "unsigned"
    assert signatures.describe(None) == "-"  # a build made before signatures were checked
