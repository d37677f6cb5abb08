"""The base image: a pinned Debian slim image if a registry answers, else one made
locally with mmdebstrap from the host's apt sources and imported (no registry needed)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from gilbench.errors import GilbenchError
from gilbench.paths import DOCKER_DIR

LOCAL_REPO = "gilbench/base"


@dataclass(frozen=True)
class BaseImage:
    ref: str  # what the Dockerfile's FROM gets
    image_id: str  # content id: part of every derived image tag
    origin: str  # "local", "pulled" or "mmdebstrap"


def local_tag() -> str:
    """Tag of the mmdebstrap base: changes whenever its recipe or package list does."""
    digest = hashlib.sha256()
    for name in ("make-base.sh", "build-deps.txt"):
        digest.update((DOCKER_DIR / name).read_bytes())
    return f"{LOCAL_REPO}:bookworm-{digest.hexdigest()[:12]}"


def image_id(client: docker.DockerClient, ref: str) -> str | None:
    try:
        image_id = client.images.get(ref).id
    except docker.errors.ImageNotFound:
        return None
    return str(image_id)


def ensure(
    client: docker.DockerClient, pinned: str, log: Callable[[str], None], log_path: Path
) -> BaseImage:
    """The first base that exists or can be made: pinned (local or pulled), then mmdebstrap."""
    if found := image_id(client, pinned):
        return BaseImage(pinned, found, "local")
    made = local_tag()
    if found := image_id(client, made):
        return BaseImage(made, found, "local")
    try:
        log(f"pulling {pinned}")
        image = client.images.pull(pinned)
        return BaseImage(pinned, str(image.id), "pulled")
    except docker.errors.APIError as exc:
        log(f"cannot pull {pinned} ({exc.explanation or exc}); building a base with mmdebstrap")
    return _make_with_mmdebstrap(client, made, log_path)


def _make_with_mmdebstrap(client: docker.DockerClient, tag: str, log_path: Path) -> BaseImage:
    if shutil.which("mmdebstrap") is None:
        raise GilbenchError(
            "No registry answers and mmdebstrap is missing, so no base image can be made; "
            "install it (`apt-get install mmdebstrap`) or load a Debian image with "
            "`docker load` and pass it with --base-image."
        )
    with tempfile.TemporaryDirectory(prefix="gilbench-base-") as tmp:
        tar = Path(tmp) / "base.tar"
        with log_path.open("a") as log_file:
            result = subprocess.run(
                ["bash", str(DOCKER_DIR / "make-base.sh"), str(tar)],
                stdout=log_file, stderr=subprocess.STDOUT, check=False,
            )
        if result.returncode != 0:
            raise GilbenchError(
                f"mmdebstrap failed to make the base image (exit {result.returncode}); "
                f"see the log {log_path}."
            )
        repository, _, name = tag.partition(":")
        client.api.import_image(src=str(tar), repository=repository, tag=name)
    found = image_id(client, tag)
    if found is None:
        raise GilbenchError(f"Importing the base image {tag} failed; see the log {log_path}.")
    return BaseImage(tag, found, "mmdebstrap")
