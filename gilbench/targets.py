"""Interpreters under test: finished builds (docker images, native prefixes) or paths."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gilbench import backends, buildspec
from gilbench.errors import GilbenchError
from gilbench.versions import VARIANTS, version_key


@dataclass(frozen=True)
class Target:
    id: str  # the `python` field of cells and records
    label: str  # short, for tables and plots
    kind: str  # the backend's name (gilbench.backends.REGISTRY)
    executable: str  # inside the image for docker, on this host for native
    image: str | None = None
    build: dict[str, Any] | None = None
    # The Docker engine the build was found on (None: the local one): where an engine
    # that lacks the image gets it from.
    engine: str | None = None


def _matches(record: dict[str, Any], version: str, variant: str) -> bool:
    return record["variant"] == variant and (
        record["version"] == version or record["version"].startswith(version + ".")
    )


def _from_build(record: dict[str, Any], engine_url: str | None = None) -> Target:
    return backends.get(record["backend"]).target(record, engine_url)


def resolve(spec: str, backend: str, default_variant: str, cache_dir: Path,
            engine_url: str | None = None) -> Target:
    """'3.12', '3.13.5/freethreaded' -> the newest matching build (on the Docker engine at
    `engine_url`, default the local one); a path -> that python."""
    chosen = backends.get(backend)  # an unknown name is refused even beside a path
    if "/" in spec and not spec.split("/", 1)[0].replace(".", "").isdigit():
        path = Path(spec).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise GilbenchError(f"--python {spec} is not an executable file.")
        return backends.native().path_target(str(path.absolute()))
    version, _, variant = spec.partition("/")
    variant = variant or default_variant
    if variant not in VARIANTS:
        raise GilbenchError(f"Unknown variant {variant!r} in --python {spec}; "
                            f"choose one of: {', '.join(VARIANTS)}.")
    matching = [r for r in chosen.builds(cache_dir, engine_url)
                if _matches(r, version, variant)]
    if not matching:
        where, flag = (f" on the engine at {engine_url}", f" --engine {engine_url}") \
            if engine_url else ("", "")
        raise GilbenchError(
            f"No {chosen.name} build of CPython {version} [{variant}] exists{where}; run "
            f"`invoke build --python {version} --variant {variant} --backend {chosen.name}"
            f"{flag}` first."
        )
    # Prefer the plain variant (no extra --configure-arg) built from the current recipe,
    # then the newest version and build.
    plain_args = list(VARIANTS[variant].configure_args)
    current = buildspec.recipe_hash()
    best = max(matching, key=lambda r: (
        r.get("configure_args_requested") == plain_args, r.get("recipe_hash") == current,
        version_key(r["version"]), r["built_at"]))
    return _from_build(best, engine_url)


def resolve_for_engines(spec: str, backend: str, default_variant: str, cache_dir: Path,
                        urls: list[str]) -> Target:
    """A run on --engine URLs finds its build on the first engine given (built there with
    `invoke build --engine`), else on the local engine (it is sent from there); when
    neither has it, the first engine's reason."""
    try:
        return resolve(spec, backend, default_variant, cache_dir, urls[0])
    except GilbenchError as first:
        try:
            return resolve(spec, backend, default_variant, cache_dir)
        except GilbenchError:
            raise first from None


def unique_labels(targets: list[Target]) -> dict[str, str]:
    """python id -> label, disambiguated when two targets would share one."""
    labels: dict[str, str] = {}
    for target in targets:
        label = target.label
        if label in labels.values():
            label = f"{label} ({hashlib.sha256(target.id.encode()).hexdigest()[:6]})"
        labels[target.id] = label
    return labels
