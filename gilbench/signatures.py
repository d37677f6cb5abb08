"""Release managers' signatures on CPython tarballs, checked against signers pinned in the
lock (docker/versions.toml): OpenPGP with `gpgv` for 3.12 and 3.13, Sigstore bundles for
3.14. The SHA-256 lock says *which* bytes to build; the signature says the release manager
published those bytes. docs/signatures.md gives the trust chain and the choices.

A bad signature raises BadSignature. A missing one, or one that cannot be checked here,
comes back as a record with status "unsigned" or "not-checked" and a `warning()` to show:
the SHA-256 lock is still enforced, so neither stops a build.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TypedDict
from urllib.parse import unquote

from gilbench.errors import GilbenchError
from gilbench.versions import SIGSTORE_TRUSTED_ROOT, Signer, series_of

# The file beside a tarball that holds each method's signature (python.org's names).
SUFFIXES = {"openpgp": ".asc", "sigstore": ".sigstore"}


class SignatureRecord(TypedDict):
    """What a build records about its tarball's signature (JSON-ready)."""

    method: str | None  # "openpgp", "sigstore", or None when nothing was verified
    status: str  # "good", "unsigned" or "not-checked"; a bad signature is an error
    signer: str | None  # "Thomas Wouters <thomas@python.org>" when good
    fingerprint: str | None  # the OpenPGP primary key's fingerprint when good
    signed_at: str | None  # ISO 8601 UTC, when good
    key_expired: bool  # the pinned key has expired since (the signature predates it)
    detail: str  # one sentence for people


class BadSignature(GilbenchError):
    """A signature is present and refuses the tarball: altered, or not the pinned signer's."""


def _record(status: str, detail: str, method: str | None = None, signer: str | None = None,
            fingerprint: str | None = None, signed_at: str | None = None,
            key_expired: bool = False) -> SignatureRecord:
    return SignatureRecord(method=method, status=status, signer=signer,
                           fingerprint=fingerprint, signed_at=signed_at,
                           key_expired=key_expired, detail=detail)


def signature_path(tarball: Path, signer: Signer) -> Path:
    """Where the signer's signature of `tarball` is looked for: beside it."""
    return tarball.with_name(tarball.name + SUFFIXES[signer.method])


def check(tarball: Path, version: str, sha256: str, signer: Signer | None,
          signature: Path | None = None, shown_as: str | None = None) -> SignatureRecord:
    """Verify the signature beside `tarball` (or `signature`) against the pinned signer.

    `sha256` is the tarball's digest, already computed (Sigstore signs it). `shown_as` names
    the tarball in messages when `tarball` is a temporary file (a download).
    """
    if signer is None:
        return _record("not-checked", f"No signer is pinned for CPython {series_of(version)} "
                       "in docker/versions.toml, so no signature was looked for.")
    signature = signature or signature_path(tarball, signer)
    shown = shown_as or str(tarball)
    if not signature.is_file():
        return _record("unsigned", f"No signature {Path(shown).name}{SUFFIXES[signer.method]} "
                       f"beside the tarball; CPython {series_of(version)} is signed by "
                       f"{signer.who} ({signer.method}).")
    if signer.method == "openpgp":
        return verify_openpgp(tarball, signature, signer, shown)
    return verify_sigstore(sha256, signature, signer, shown)


def describe(record: object) -> str:
    """One table cell for a build record's `signature` (builds before it existed: "-")."""
    if not isinstance(record, dict) or "status" not in record:
        return "-"
    if record["status"] != "good":
        return str(record["status"])
    expired = ", key since expired" if record.get("key_expired") else ""
    return f"good ({record.get('signer')}, {record.get('method')}{expired})"


def warning(record: SignatureRecord) -> str | None:
    """The line to show when a tarball's signature was not verified, else None."""
    if record["status"] == "good":
        return None
    return f"Signature {record['status']}: {record['detail']} (the SHA-256 lock still holds)"


# --- OpenPGP --------------------------------------------------------------------------

_ARMOR = re.compile(r"-----BEGIN PGP PUBLIC KEY BLOCK-----\r?\n(.*?)"
                    r"-----END PGP PUBLIC KEY BLOCK-----", re.S)


def _crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def dearmor(text: str) -> bytes:
    """The binary keyring (what `gpg --dearmor` writes) of armored public key blocks, in
    Python so a host needs only gpgv, not gpg."""
    blocks = _ARMOR.findall(text)
    if not blocks:
        raise ValueError("no PGP PUBLIC KEY BLOCK")
    out = b""
    for block in blocks:
        lines = [line.strip() for line in block.splitlines()]
        # Armor headers ("Comment: ...") end at the first blank line.
        body = lines[lines.index("") + 1:] if "" in lines else lines
        checksum = [line for line in body if line.startswith("=")]
        data = base64.b64decode("".join(line for line in body if line and line[0] != "="))
        if checksum and int.from_bytes(base64.b64decode(checksum[0][1:]), "big") != _crc24(
                data):
            raise ValueError("armor checksum mismatch")
        out += data
    return out


def _gpgv(tarball: Path, signature: Path, key_file: Path, gpgv: str) -> tuple[int, list[str]]:
    """gpgv's exit status and its status lines, with a keyring of only `key_file`."""
    with tempfile.TemporaryDirectory(prefix="gilbench-gpgv-") as home:
        keyring = Path(home) / "pinned.gpg"
        keyring.write_bytes(dearmor(key_file.read_text()))
        # --homedir: never the user's trustedkeys; only the pinned keyring is consulted.
        proc = subprocess.run(
            [gpgv, "--homedir", home, "--status-fd", "1", "--keyring", str(keyring),
             str(signature), str(tarball)],
            capture_output=True, text=True, timeout=300, check=False,
            env={**os.environ, "LC_ALL": "C"},
        )
    return proc.returncode, proc.stdout.splitlines()


def _timestamp(value: str) -> datetime:
    """A status-line time: seconds since the epoch, or ISO 8601 basic (20250611T174554)."""
    if "T" in value:
        return datetime.strptime(value, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    return datetime.fromtimestamp(int(value), UTC)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def judge_gpgv(returncode: int, status_lines: list[str], signer: Signer, signature: str,
               tarball: str) -> SignatureRecord:
    """Accept only good signatures, all made by the pinned primary key before it expired;
    anything else raises BadSignature with one sentence saying what to do."""
    status: list[list[str]] = [line.split()[1:] for line in status_lines
                               if line.startswith("[GNUPG:] ") and len(line.split()) > 1]
    seen = {words[0] for words in status}
    pinned = signer.fingerprint

    def refuse(why: str, fix: str) -> BadSignature:
        return BadSignature(f"The signature {signature} refuses {tarball}: {why}; the tarball "
                            f"was not used ({fix}).")

    genuine = "delete both and get genuine copies from python.org"
    if "NEWSIG" not in seen or "NODATA" in seen:
        raise refuse("it is not an OpenPGP signature",
                     "delete the signature, or put python.org's .asc for this release there")
    if "BADSIG" in seen:
        raise refuse("the tarball or the signature was altered (BAD signature)", genuine)
    if "REVKEYSIG" in seen:
        raise refuse(f"it was made by the pinned key {pinned}, which has been revoked",
                     "check python.org's downloads page for what replaced this release")
    if "EXPSIG" in seen:
        raise refuse("the signature itself has expired", genuine)
    for words in status:
        if words[0] == "ERRSIG":
            key = words[7] if len(words) > 7 and words[7] != "-" else words[1]
            if "NO_PUBKEY" in seen:
                raise refuse(f"it was made by key {key}, not by {signer.who}'s pinned key "
                             f"{pinned}", genuine + ", or pin the new release manager in "
                             "docker/versions.toml")
            raise refuse(f"gpgv cannot check it (error code {words[6] if len(words) > 6 else '?'}"
                         ")", genuine)
    valid = [words for words in status if words[0] == "VALIDSIG"]
    # VALIDSIG's last field is the primary key's fingerprint (the first may be a subkey's).
    others = [words[-1] for words in valid if words[-1].upper() != pinned]
    if others or not valid or len(valid) != sum(w[0] == "NEWSIG" for w in status):
        raise refuse(f"it was made by key {others[0]}, not by {signer.who}'s pinned key "
                     f"{pinned}" if others else "gpgv did not confirm every signature in it",
                     genuine)
    if returncode != 0:
        raise refuse(f"gpgv exited with status {returncode}", genuine)
    signed = max(_timestamp(words[3]) for words in valid)
    uids = [unquote(" ".join(words[2:])) for words in status
            if words[0] in ("GOODSIG", "EXPKEYSIG")]
    expired = "EXPKEYSIG" in seen
    detail = f"Good signature by {pinned}, made {signed.date()}"
    if expired:
        # gpgv says EXPKEYSIG when the key has expired by now, whenever the signature was
        # made; a signature made before the expiry is good, one made after it is not.
        expiries = [_timestamp(words[1]) for words in status if words[0] == "KEYEXPIRED"]
        if not expiries:
            raise refuse("gpgv reports the pinned key expired but not when", genuine)
        expiry = min(expiries)
        if signed >= expiry:
            raise refuse(f"it was made on {signed.date()}, after the pinned key {pinned} "
                         f"expired on {expiry.date()}",
                         f"put {signer.who}'s current public key into {signer.key_file}, "
                         "then build again")
        detail += f"; the key has since expired (on {expiry.date()})"
    return _record("good", detail + ".", "openpgp", uids[0] if uids else signer.who, pinned,
                   _iso(signed), expired)


def verify_openpgp(tarball: Path, signature: Path, signer: Signer,
                   shown_as: str | None = None) -> SignatureRecord:
    """Check an .asc with gpgv against the signer's committed key."""
    shown = shown_as or str(tarball)
    gpgv = shutil.which("gpgv")
    if gpgv is None:
        return _record("not-checked", "Not checked: gpgv missing (install the gpgv "
                       f"package to check {Path(shown).name}'s OpenPGP signature).", "openpgp")
    if not signer.key_file.is_file():
        return _record("not-checked", f"Not checked: the pinned key {signer.key_file} is "
                       "missing from this copy of gilbench.", "openpgp")
    try:
        returncode, lines = _gpgv(tarball, signature, signer.key_file, gpgv)
    except (OSError, ValueError, binascii.Error, subprocess.SubprocessError) as exc:
        return _record("not-checked", f"Not checked: gpgv could not be run ({exc}).",
                       "openpgp")
    return judge_gpgv(returncode, lines, signer, str(signature) if shown_as is None
                      else shown + SUFFIXES["openpgp"], shown)


# --- Sigstore -------------------------------------------------------------------------


def verify_sigstore(sha256: str, bundle: Path, signer: Signer,
                    shown_as: str | None = None,
                    trusted_root: Path = SIGSTORE_TRUSTED_ROOT) -> SignatureRecord:
    """Check a Sigstore bundle for the tarball's digest, the pinned identity and issuer,
    against the committed trust root (offline: no trust root is fetched at build time)."""
    shown = shown_as or str(bundle.with_suffix(""))
    bundle_shown = shown + SUFFIXES["sigstore"]
    try:
        # Imported here: it is heavy, and only 3.14+ tarballs need it.
        from sigstore.errors import Error as SigstoreError
        from sigstore.hashes import Hashed
        from sigstore.models import Bundle, TrustedRoot
        from sigstore.verify import Verifier
        from sigstore.verify.policy import Identity
        from sigstore_models.common.v1 import HashAlgorithm
    except ImportError:
        return _record("not-checked", f"Sigstore bundle {bundle_shown} present, not verified "
                       "(sigstore not installed: pip install -r requirements.txt).", "sigstore")
    if not trusted_root.is_file():
        return _record("not-checked", f"Not checked: the Sigstore trust root {trusted_root} "
                       "is missing from this copy of gilbench.", "sigstore")
    try:
        parsed = Bundle.from_json(bundle.read_bytes())
        verifier = Verifier(trusted_root=TrustedRoot.from_file(str(trusted_root)))
        verifier.verify_artifact(
            Hashed(algorithm=HashAlgorithm.SHA2_256, digest=bytes.fromhex(sha256)), parsed,
            Identity(identity=signer.identity, issuer=signer.issuer))
        signed = parsed.signing_certificate.not_valid_before_utc
    except (SigstoreError, ValueError, OSError) as exc:
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")
        raise BadSignature(
            f"The Sigstore bundle {bundle_shown} refuses {shown}: it does not verify as "
            f"{signer.identity} via {signer.issuer} ({why}); the tarball was not used "
            "(delete both and get genuine copies from python.org)."
        ) from exc
    return _record("good", f"Good Sigstore signature by {signer.identity} via "
                   f"{signer.issuer}, made {signed.date()}.", "sigstore",
                   f"{signer.name} <{signer.identity}>", None, _iso(signed))
