"""Pure-Python packages a build variant adds (e.g. pgo-pep734's PEP 734 backport).

Each is pinned by version and SHA-256 in a requirements file under docker/. The host
downloads the wheels once into the cache with pip, which checks every hash, and checks
them again before each use; the image or prefix then installs them from those files, so
a build never needs the network and never gets anything the pin does not name.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from gilbench.errors import GilbenchError
from gilbench.paths import DOCKER_DIR
from gilbench.sources import sha256_file
from gilbench.versions import Variant

_PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s\\]+)\s*\\?\s*--hash=sha256:([0-9a-f]{64})", re.M)


def requirements(variant: Variant) -> Path | None:
    return DOCKER_DIR / variant.packages if variant.packages else None


def digest(variant: Variant) -> str:
    """The pin's hash: part of a build's identity, so a new pin is a new build."""
    path = requirements(variant)
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path else ""


def pins(path: Path) -> list[dict[str, str]]:
    """name, version and sha256 of each package a requirements file pins."""
    found = [{"name": n, "version": v, "sha256": h}
             for n, v, h in _PIN.findall(path.read_text().replace("\\\n", " "))]
    if not found:
        raise GilbenchError(f"{path} pins no package as name==version --hash=sha256:...; "
                            "fix the file.")
    return found


def _cached(folder: Path, sha256: str) -> Path | None:
    for wheel in folder.glob("*.whl"):
        if sha256_file(wheel) == sha256:
            return wheel
    return None


def wheels(variant: Variant, cache_dir: Path) -> list[Path]:
    """Verified wheel files for the variant's pins, downloaded into the cache if missing."""
    path = requirements(variant)
    if path is None:
        return []
    folder = cache_dir / "wheels"
    folder.mkdir(parents=True, exist_ok=True)
    wanted = pins(path)
    if any(_cached(folder, pin["sha256"]) is None for pin in wanted):
        # Into a scratch folder first: only files pip verified against the pin move in.
        with tempfile.TemporaryDirectory(dir=folder) as scratch:
            done = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                 "--require-hashes", "--only-binary=:all:", "--dest", scratch, "-r", str(path),
                 # for the build's python, not the host's (the wheels declare Requires-Python)
                 "--python-version", ".".join(map(str, variant.min_version))],
                capture_output=True, text=True, check=False,
            )
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise GilbenchError(
                    f"Could not download the packages pinned in {path} ({last}); check the "
                    f"network, or put the wheels in {folder}.")
            for wheel in Path(scratch).glob("*.whl"):
                wheel.replace(folder / wheel.name)
    found = [_cached(folder, pin["sha256"]) for pin in wanted]
    missing = [f"{p['name']}=={p['version']}" for p, w in zip(wanted, found, strict=True) if not w]
    if missing:
        raise GilbenchError(f"No wheel matching the pinned hash of {', '.join(missing)} is in "
                            f"{folder}; delete the folder's wheels and build again.")
    return [w for w in found if w is not None]
