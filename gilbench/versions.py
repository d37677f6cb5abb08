"""The version lock (docker/versions.toml) and the build variants."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from gilbench.errors import GilbenchError
from gilbench.paths import DOCKER_DIR, LOCK_FILE

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SERIES = re.compile(r"^\d+\.\d+$")
_FINGERPRINT = re.compile(r"^[0-9A-F]{40}$")
KEYS_DIR = DOCKER_DIR / "keys"
SIGSTORE_TRUSTED_ROOT = KEYS_DIR / "sigstore-trusted-root.json"


@dataclass(frozen=True)
class Signer:
    """A release manager pinned in the lock: who signs a minor series, and how."""

    name: str
    method: str  # "openpgp" or "sigstore"
    series: tuple[str, ...]
    uid: str = ""  # openpgp: the user id gpgv reports, e.g. "Name <mail>"
    fingerprint: str = ""  # openpgp: the primary key's, 40 upper-case hex digits
    identity: str = ""  # sigstore: the certificate's identity (an e-mail address)
    issuer: str = ""  # sigstore: the OIDC issuer that vouched for the identity

    @property
    def key_file(self) -> Path:
        """The committed, armored public key of an OpenPGP signer."""
        return KEYS_DIR / f"{self.fingerprint}.asc"

    @property
    def who(self) -> str:
        return self.uid or f"{self.name} <{self.identity}>"


@dataclass(frozen=True)
class Release:
    version: str
    url: str
    sha256: str
    signer: Signer | None = None  # who signs this release's series, per the lock

    @property
    def key(self) -> tuple[int, ...]:
        return version_key(self.version)


@dataclass(frozen=True)
class Variant:
    name: str
    configure_args: tuple[str, ...]
    min_version: tuple[int, int] = (3, 12)
    description: str = ""
    max_version: tuple[int, int] | None = None
    # Why the variant needs those versions, for the one-sentence refusal.
    versions_why: str = ""
    # A hash-pinned requirements file in docker/: pure-Python wheels installed into the
    # build after CPython (downloaded and verified on the host; the build needs no network).
    packages: str = ""


# Each variant spells its configure flags out; extra flags are appended by the user.
VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("pgo", ("--enable-optimizations",), description="PGO (the default)"),
        Variant("pgo-lto", ("--enable-optimizations", "--with-lto"), description="PGO + LTO"),
        Variant("debug", ("--with-pydebug",), description="debug build, no optimisation"),
        Variant(
            "freethreaded",
            ("--enable-optimizations", "--disable-gil"),
            min_version=(3, 13),
            description="PGO, free-threaded (PEP 703)",
            versions_why="--disable-gil does not exist before 3.13",
        ),
        Variant(
            "pgo-pep734",
            ("--enable-optimizations",),
            min_version=(3, 13),
            max_version=(3, 13),
            description="PGO + the PEP 734 backport (interpreters-pep-734)",
            versions_why="the backport needs 3.13's _interpreters, and 3.14 has PEP 734 in "
            "its standard library",
            packages="backport-requirements.txt",
        ),
        # Not a product variant: a plain -O build without PGO, for fast tests of the
        # build machinery itself.
        Variant("plain", (), description="no PGO (fast; for testing the recipe)"),
    )
}


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _signers(data: dict[str, object], path: Path) -> dict[str, Signer]:
    """The lock's [signers] tables, keyed by the minor series each one signs."""
    by_series: dict[str, Signer] = {}
    tables = data.get("signers", {})
    if not isinstance(tables, dict):
        raise GilbenchError(f"The version lock {path} has a malformed [signers] table.")
    for name, entry in tables.items():
        if not isinstance(entry, dict):
            raise GilbenchError(f"The version lock {path} has a malformed signer {name!r}.")
        method = entry.get("method")
        series = entry.get("series")
        fields = {k: str(entry.get(k, "")) for k in ("uid", "fingerprint", "identity", "issuer")}
        ok = isinstance(series, list) and bool(series) and all(
            isinstance(s, str) and _SERIES.match(s) for s in series)
        if method == "openpgp":
            ok = ok and bool(_FINGERPRINT.match(fields["fingerprint"])) and bool(fields["uid"])
        elif method == "sigstore":
            ok = ok and bool(fields["identity"]) and fields["issuer"].startswith("https://")
        else:
            ok = False
        if not ok:
            raise GilbenchError(
                f"The version lock {path} has a malformed signer {name!r}: it needs a series "
                "list of X.Y versions and either method = \"openpgp\" with a uid and a "
                "40-hex-digit upper-case fingerprint, or method = \"sigstore\" with an "
                "identity and an https issuer."
            )
        assert isinstance(series, list) and isinstance(method, str)
        signer = Signer(str(name), method, tuple(series), **fields)
        for minor in series:
            if minor in by_series:
                raise GilbenchError(
                    f"The version lock {path} names two signers for CPython {minor} "
                    f"({by_series[minor].name} and {name}); keep one."
                )
            by_series[minor] = signer
    return by_series


def series_of(version: str) -> str:
    """'3.13.5' -> '3.13'."""
    return ".".join(version.split(".")[:2])


@dataclass(frozen=True)
class Lock:
    releases: dict[str, Release]
    default: str
    # Minor series ("3.13") -> who signs its tarballs; a series missing here is unpinned.
    signers: dict[str, Signer] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = LOCK_FILE) -> Lock:
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise GilbenchError(f"The version lock {path} cannot be read: {exc}.") from exc
        signers = _signers(data, path)
        releases = {}
        for version, entry in data.get("versions", {}).items():
            sha = str(entry.get("sha256", ""))
            if not _VERSION.match(version) or not _SHA256.match(sha) or "url" not in entry:
                raise GilbenchError(
                    f"The version lock {path} has a malformed entry for {version!r}: "
                    "it needs an X.Y.Z version, a url and a 64-hex-digit sha256."
                )
            releases[version] = Release(version, str(entry["url"]), sha,
                                        signers.get(series_of(version)))
        return cls(releases, str(data.get("default", "3.12")), signers)

    def signer_for(self, version: str) -> Signer | None:
        """Who signs `version`'s series (locked or not), or None when nobody is pinned."""
        return self.signers.get(series_of(version))

    def known(self) -> list[str]:
        return sorted(self.releases, key=version_key)

    def get(self, version: str) -> Release | None:
        return self.releases.get(version)

    def resolve(self, spec: str | None) -> Release:
        """'3.12' -> the newest locked 3.12.x; '3.13.5' -> exactly that; None -> default."""
        spec = (spec or self.default).strip()
        if spec in self.releases:
            return self.releases[spec]
        if re.fullmatch(r"\d+\.\d+", spec):
            matching = [r for r in self.releases.values() if r.version.startswith(spec + ".")]
            if matching:
                return max(matching, key=lambda r: r.key)
        raise GilbenchError(
            f"CPython {spec!r} is not in the version lock; known versions: "
            f"{', '.join(self.known())} (add it to docker/versions.toml with its SHA-256, "
            "or build from a local tarball with --source)."
        )


def resolve_variant(name: str, version: str) -> Variant:
    variant = VARIANTS.get(name)
    if variant is None:
        raise GilbenchError(
            f"Unknown variant {name!r}; choose one of: {', '.join(VARIANTS)}."
        )
    minor = version_key(version)[:2]
    low = ".".join(map(str, variant.min_version))
    high = ".".join(map(str, variant.max_version)) if variant.max_version else ""
    if minor < variant.min_version or (variant.max_version and minor > variant.max_version):
        wanted = f"CPython {low}" if low == high else (
            f"CPython {low} to {high}" if high else f"CPython {low} or newer")
        raise GilbenchError(
            f"The {name} variant needs {wanted} ({variant.versions_why}), not {version}; "
            f"use --python {low}."
        )
    return variant


def version_matches(spec: str, version: str) -> bool:
    """Whether a --python spec asks for `version`: '3.13' matches 3.13.x, '3.13.5' only
    itself."""
    spec = spec.strip()
    if spec == version:
        return True
    return bool(re.fullmatch(r"\d+\.\d+", spec)) and version.startswith(spec + ".")


def version_from_tarball_name(path: Path) -> str | None:
    """Python-3.13.5.tar.xz or python3.13_3.13.5.orig.tar.xz -> '3.13.5'."""
    match = re.search(r"(\d+\.\d+\.\d+)(?:\.orig)?\.t(?:ar\.)?(?:xz|gz|bz2|gz)$", path.name)
    return match.group(1) if match else None
