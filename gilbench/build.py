"""`invoke build`: resolve the version and variant, verify the source, then build (or
reuse) it with the chosen backend, smoke-check it and record its provenance; with
--check, run CPython's own tests on it (gilbench/selfcheck.py) and record those too."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gilbench import backends, packages, selfcheck, signatures, sources
from gilbench.builders import Builder
from gilbench.buildspec import (
    BuildResult,
    BuildSpec,
    EventSink,
    PhaseClock,
    check_extra_args,
    recipe_hash,
)
from gilbench.errors import GilbenchError
from gilbench.paths import ensure_dir
from gilbench.sources import Source
from gilbench.versions import Lock, resolve_variant


@dataclass(frozen=True)
class BuildOptions:
    # "3.12", "3.13.5"; None: the lock's default (or, with `source`, the tarball's
    # version). With `source`, a given python must agree with the tarball.
    python: str | None
    variant: str
    backend: str
    cache_dir: Path
    source_cache: Path
    base_image: str
    extra_args: tuple[str, ...] = ()
    source: Path | None = None
    jobs: int | None = None
    # Build even when a matching build exists, without Docker's layer cache, and replace
    # it (`invoke build --rebuild`; bench-lab --build times a whole build this way).
    rebuild: bool = False
    # Only find an existing build; a missing one is an error, never a build (bench-lab
    # checks this before it times `invoke build` as a no-op).
    reuse_only: bool = False
    # Run CPython's own tests for what gilbench measures (gilbench/selfcheck.py) on the
    # build, new or existing, and store the result on its record (`invoke build --check`).
    check: bool = False
    # Build on the Docker engine at this URL instead of the local one (`--engine`).
    engine: str | None = None


def get_builder(options: BuildOptions) -> Builder:
    return backends.get(options.backend).builder(options.cache_dir, options.jobs,
                                                 options.base_image, options.engine)


def run_build(options: BuildOptions, on_event: EventSink) -> BuildResult:
    """Build (or reuse) one CPython: resolve, verify, build, smoke-check, record."""
    # Every user input is checked before anything is fetched, hashed or built.
    extra_args = check_extra_args(options.extra_args)
    ensure_dir(options.cache_dir, "cache folder", "GILBENCH_CACHE_DIR (or gilbench.cache_dir)")
    ensure_dir(options.source_cache, "source cache",
               "gilbench.source_cache (or GILBENCH_CACHE_DIR)")
    lock = Lock.load()
    given: Source | None = None
    if options.source is not None:
        given = sources.from_file(options.source, lock, options.source_cache, options.python)
        version, sha256 = given.version, given.sha256
    else:
        release = lock.resolve(options.python)
        version, sha256 = release.version, release.sha256
    variant = resolve_variant(options.variant, version)
    args = variant.configure_args + extra_args
    builder = get_builder(options)
    if options.rebuild and not builder.rebuilds:
        raise GilbenchError(
            f"--rebuild needs a backend that keeps the old build until the new one is "
            f"finished, and {builder.name} does not (it builds in place); remove the build "
            "folder to rebuild there."
        )
    builder.no_cache = options.rebuild

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    log_dir = options.cache_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"build-{version}-{variant.name}-{stamp}.log"
    clock = PhaseClock(on_event)
    base = builder.prepare(clock, log_path)
    spec = BuildSpec(version, sha256, variant.name, args, recipe_hash(), base,
                     packages.digest(variant))
    if not options.rebuild and (existing := builder.find(spec)) is not None:
        clock.stop()
        log_path.unlink(missing_ok=True)
        result = BuildResult(existing, reused=True, log_path=None)
        return _checked(result, builder, options, on_event) if options.check else result
    if options.reuse_only:
        clock.stop()
        log_path.unlink(missing_ok=True)
        raise GilbenchError(f"CPython {version} [{variant.name}] is not built with "
                            f"{builder.name} here; `invoke build` makes it.")

    if (pinned := packages.requirements(variant)) is not None:
        clock.start("fetch-packages")
        builder.wheels = packages.wheels(variant, options.cache_dir)
        builder.package_pins = packages.pins(pinned)
    if given is None:
        clock.start("fetch")
        given = sources.fetch(release, options.source_cache)
    # An unsigned or unchecked tarball still builds (the lock's SHA-256 held), but says so.
    if (note := signatures.warning(given.signature)) is not None:
        on_event("warning", note)
    record = builder.build(spec, given, clock, log_path)
    clock.stop()
    _write_record(options.cache_dir, record)
    result = BuildResult(record, reused=False, log_path=log_path)
    return _checked(result, builder, options, on_event) if options.check else result


def _write_record(cache_dir: Path, record: dict[str, Any]) -> None:
    record_dir = cache_dir / "builds"
    record_dir.mkdir(parents=True, exist_ok=True)
    # The same spec built on another engine is another binary: a file of its own.
    url = (record.get("engine") or {}).get("url")
    where = f"@{hashlib.sha256(url.encode()).hexdigest()[:8]}" if url else ""
    (record_dir / f"{record['name']}{where}.json").write_text(json.dumps(record, indent=2))


def check_log_path(cache_dir: Path, record: dict[str, Any]) -> Path:
    """Where regrtest's output of a build's self-check goes."""
    return cache_dir / "logs" / f"selfcheck-{record['name']}.log"


def _checked(result: BuildResult, builder: Builder, options: BuildOptions,
             on_event: EventSink) -> BuildResult:
    """Run the self-check on a finished build and store the result on its record; a
    failed check keeps the build, marked failed (the caller decides the exit status)."""
    clock = PhaseClock(on_event)
    clock.start("self-check")
    target = backends.get(result.record["backend"]).target(result.record, options.engine)
    check = selfcheck.run(target, options.jobs, check_log_path(options.cache_dir, result.record))
    record = {**result.record, "selfcheck": check}
    clock.start("record")
    builder.store(record)
    _write_record(options.cache_dir, record)
    clock.stop()
    return replace(result, record=record)
