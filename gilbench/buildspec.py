"""What names a build and how its progress is read: the spec (whose hash is the image
tag), the recipe hash, phase markers, and the build records already on this host."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker

from gilbench.errors import GilbenchError
from gilbench.paths import DOCKER_DIR, RECIPE_FILES

BUILD_SCHEMA_VERSION = 1
IMAGE_REPO = "gilbench/cpython"
STAGING_REPO = "gilbench/cpython-staging"
LABEL = "org.gilbench.build"  # the full build record, JSON
PHASE_MARK = "::gilbench-phase:: "
WARNING_MARK = "::gilbench-warning:: "
_SAFE_ARG = re.compile(r"^--[A-Za-z0-9][A-Za-z0-9_.,=+/:-]*$")

# configure options that gilbench decides itself, with why. configure accepts any unique
# abbreviation (`--pref=/etc` is `--prefix=/etc`), so a flag is refused when its name is
# the start of one of these. --with-platlibdir is allowed: it renames lib/ inside the
# prefix and moves nothing out of it.
_INSTALL_DIRS = ("--prefix", "--exec-prefix", "--bindir", "--sbindir", "--libexecdir",
                 "--sysconfdir", "--sharedstatedir", "--localstatedir", "--runstatedir",
                 "--libdir", "--includedir", "--oldincludedir", "--datarootdir", "--datadir",
                 "--infodir", "--localedir", "--mandir", "--docdir", "--htmldir", "--dvidir",
                 "--pdfdir", "--psdir")
RESERVED_ARGS: dict[str, str] = {
    **{name: "would move where the build installs (gilbench installs each build into its "
       "own prefix)" for name in _INSTALL_DIRS},
    "--program-prefix": "would rename the interpreter gilbench looks for",
    "--program-suffix": "would rename the interpreter gilbench looks for",
    "--program-transform-name": "would rename the interpreter gilbench looks for",
    "--srcdir": "would build other sources than the verified tarball",
    "--cache-file": "would write configure's cache outside the build",
}

# on_event(kind, text): kind is "phase" (a new phase starts), "warning" or "log".
EventSink = Callable[[str, str], None]


def recipe_hash() -> str:
    digest = hashlib.sha256()
    for name in RECIPE_FILES:
        digest.update(name.encode() + b"\0" + (DOCKER_DIR / name).read_bytes() + b"\0")
    return digest.hexdigest()


def check_extra_args(args: Iterable[str]) -> tuple[str, ...]:
    """Extra configure flags must be single --flags: they are word-split in the recipe."""
    checked = tuple(args)
    for arg in checked:
        if not _SAFE_ARG.match(arg):
            raise GilbenchError(
                f"Extra configure flag {arg!r} is not a single --flag without spaces or quotes; "
                "pass each flag separately, e.g. --configure-arg=--with-lto."
            )
        # configure reads '_' in an option name as '-' (--exec_prefix is --exec-prefix).
        name = arg.split("=", 1)[0].replace("_", "-")
        for reserved, why in RESERVED_ARGS.items():
            if reserved.startswith(name):
                raise GilbenchError(
                    f"Extra configure flag {arg!r} is refused: {reserved} {why}; leave it out."
                )
    return checked


@dataclass(frozen=True)
class BuildSpec:
    """Everything that determines a build; its hash names the result."""

    version: str
    sha256: str
    variant: str
    configure_args: tuple[str, ...]
    recipe_hash: str
    base: str  # docker: base image id; native: the host toolchain
    packages: str = ""  # the hash of the variant's pinned packages (gilbench/packages.py)

    @property
    def digest(self) -> str:
        fields = asdict(self)
        if not self.packages:  # so builds without packages keep the names they had
            del fields["packages"]
        canonical = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @property
    def name(self) -> str:
        return f"{self.version}-{self.variant}-{self.digest}"


@dataclass
class PhaseClock:
    """Turns phase markers into durations and forwards them to the caller."""

    on_event: EventSink
    durations: dict[str, float] = field(default_factory=dict)
    current: str | None = None
    started: float = 0.0

    def start(self, name: str) -> None:
        self.stop()
        self.current, self.started = name, time.monotonic()
        self.on_event("phase", name)

    def stop(self) -> None:
        if self.current is not None:
            self.durations[self.current] = round(time.monotonic() - self.started, 2)
            self.current = None

    def feed(self, line: str) -> None:
        """One line of build output: phase markers and warnings become events."""
        # Docker may prefix a line with terminal escapes, so look for the marker anywhere.
        if (at := line.find(PHASE_MARK)) >= 0:
            self.start(line[at + len(PHASE_MARK):].strip())
        elif (at := line.find(WARNING_MARK)) >= 0:
            self.on_event("warning", line[at + len(WARNING_MARK):].strip())
        else:
            self.on_event("log", line)


@dataclass(frozen=True)
class BuildResult:
    record: dict[str, Any]
    reused: bool
    log_path: Path | None


def parse_record(text: str) -> dict[str, Any] | None:
    """A build record, or None when it is unreadable (such a build is ignored)."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        return None
    needed = ("version", "variant", "built_at", "backend", "executable")
    if not isinstance(record, dict) or any(key not in record for key in needed):
        return None
    return record


def list_docker_builds(client: docker.DockerClient) -> list[dict[str, Any]]:
    """Every finished build image, newest first."""
    found = (parse_record(image.labels.get(LABEL, ""))
             for image in client.images.list(name=IMAGE_REPO))
    return sorted((r for r in found if r), key=lambda r: r["built_at"], reverse=True)


def list_native_builds(cache_dir: Path) -> list[dict[str, Any]]:
    markers = (cache_dir / "native").glob("*/gilbench-build.json")
    found = (parse_record(p.read_text()) for p in markers)
    return sorted((r for r in found if r), key=lambda r: r["built_at"], reverse=True)


