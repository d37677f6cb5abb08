"""Remote Docker engines (issue 12, item 2): what machine an engine is, getting a build's
image onto it, and a matrix's shards on several engines at once.

An engine given by URL (`--engine URL`, anything gilbench/engine.py connects to) measures
on its own machine, so a run there records that machine as its host: the engine's
`docker info` (name, CPUs, memory, kernel, OS, architecture) plus what only a container on
it can see (CPU model, SMT siblings, governor, load), read by a short probe container of
the run's own image. The fields are hostinfo's, so merge's host axis treats a run on an
engine like a run of gilbench on that machine.

A run's builds are looked up on its first engine (`invoke build --engine URL` built them
there), else on the local engine. An engine that holds the same build spec (its tag names
the spec) uses its own image, which the manifest names; one that lacks it gets the image
by `docker save | docker load`, streamed, only when the source image's build record is the
one the run resolved and the loaded image has the source's content address (image id).
Anything else is one sentence, nothing run.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import docker
import docker.errors

from gilbench import buildspec, engine, merge, runfolder, shards, topology
from gilbench.errors import GilbenchError, Interrupted
from gilbench.targets import Target

# Runs in a throw-away container of the run's image on the engine: the engine machine's
# facts that `docker info` lacks. /proc/cpuinfo, /proc/loadavg and /sys are the host's.
_FACTS = r"""
import json, os
def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None
model = None
for line in (read('/proc/cpuinfo') or '').splitlines():
    name, _, value = line.partition(':')
    if name.strip() == 'model name':
        model = value.strip()
        break
root = '/sys/devices/system/cpu'
cores = []
for name in sorted(os.listdir(root)):
    if name.startswith('cpu') and name[3:].isdigit():
        text = read(f'{root}/{name}/topology/thread_siblings_list')
        if text and text not in cores:
            cores.append(text)
print(json.dumps({'cpu_model': model, 'core_cpus': cores,
                  'governor': read(f'{root}/cpu0/cpufreq/scaling_governor'),
                  'loadavg': (read('/proc/loadavg') or '').split()[:3]}))
"""


def host_facts(client: docker.DockerClient, url: str, image: str,
               executable: str) -> tuple[dict[str, Any], topology.Topology | None]:
    """The engine's machine as a manifest's `host` (hostinfo's fields), and its CPU
    topology when the probe container could read it (None: unknown)."""
    info = client.info()
    ncpu = info.get("NCPU")
    mem = info.get("MemTotal")
    facts: dict[str, Any] = {}
    try:
        out = client.containers.run(image, [executable, "-I", "-c", _FACTS], remove=True,
                                    network_mode="none", user="gilbench", read_only=True,
                                    cap_drop=["ALL"], stdout=True, stderr=False)
        facts = json.loads(out.decode().strip().splitlines()[-1])
    except (docker.errors.DockerException, ValueError, IndexError):
        facts = {}  # the probe is best effort, like hostinfo: its fields stay unknown
    topo = topology.from_summary({"core_cpus": facts.get("core_cpus")}) \
        if facts.get("core_cpus") else None
    try:
        load = [round(float(x), 2) for x in facts.get("loadavg") or []] or None
    except ValueError:
        load = None
    host = {
        "hostname": info.get("Name"), "cpu_model": facts.get("cpu_model"),
        "cores": ncpu, "cores_online": ncpu,
        "topology": topo.summary() if topo else None,
        "governor": facts.get("governor"), "loadavg": load,
        "kernel": info.get("KernelVersion"), "os": info.get("OperatingSystem"),
        "machine": info.get("Architecture"),
        # The engine's own cgroup is not what the container gets; the runner's
        # description records the container's cpuset and memory limit.
        "cgroup_cpu_max": None, "cgroup_memory_max": None,
        "mem_total_kb": int(mem) // 1024 if isinstance(mem, int) else None,
        "engine": url,
    }
    return host, topo


def send(source: docker.DockerClient, dest: docker.DockerClient, url: str,
         tag: str) -> dict[str, Any]:
    """`docker save | docker load` of `tag` from `source` to the engine at `url`, streamed
    through this host; the loaded image must have the source's content address (image
    id), else it is removed again. What was sent, for the manifest."""
    original = source.images.get(tag)
    original_id = str(original.id)
    started = time.monotonic()
    sent = [0]

    def chunks() -> Iterator[bytes]:
        for chunk in original.save(named=True):
            sent[0] += len(chunk)
            yield chunk

    try:
        dest.images.load(cast(Any, chunks()))  # streamed: requests sends it chunked
        loaded = dest.images.get(tag)
    except docker.errors.DockerException as exc:
        raise GilbenchError(f"Sending {tag} to the engine at {url} failed "
                            f"({getattr(exc, 'explanation', None) or exc}).") from exc
    loaded_id = str(loaded.id)
    if loaded_id != original_id:
        dest.images.remove(loaded_id, force=True)
        raise GilbenchError(
            f"The engine at {url} loaded {tag} as image {loaded_id[7:19]}, not the "
            f"{original_id[7:19]} it was sent, so it was removed again; check that engine's "
            "storage.")
    return {"image": tag, "image_id": original_id, "transferred": True,
            "bytes": sent[0], "seconds": round(time.monotonic() - started, 1)}


def ensure_image(source: docker.DockerClient, dest: docker.DockerClient, url: str,
                 target: Target) -> dict[str, Any]:
    """The target's image on the engine at `url`: already there (the same image, or the
    same build spec built on that engine with `invoke build --engine`), else sent from
    `source` (the engine the build was found on) with save | load. What happened, for
    the manifest."""
    tag = target.image
    assert tag is not None, "a docker target has an image"
    where = f"the engine at {target.engine}" if target.engine else "the local engine"
    try:
        original = source.images.get(tag)
    except docker.errors.ImageNotFound:
        raise GilbenchError(f"The image {tag} is not on {where}, so it cannot be sent to "
                            "other engines; build it with `invoke build`.") from None
    record = buildspec.parse_record(original.labels.get(buildspec.LABEL, ""))
    if target.build is not None and record != target.build:
        raise GilbenchError(f"The image {tag} on {where} carries another build record than "
                            "the build this run resolved; rebuild it with `invoke build`.")
    try:
        there = dest.images.get(tag)
    except docker.errors.ImageNotFound:
        return send(source, dest, url, tag)
    original_id, there_id = str(original.id), str(there.id)
    if there_id == original_id:
        return {"image": tag, "image_id": original_id, "transferred": False}
    # The tag names the build spec (version, sha256, flags, recipe, base image id), so a
    # build record under it on that engine is the same spec, built there: its own binary,
    # which the manifest names. Anything else under the tag is refused.
    own = buildspec.parse_record(there.labels.get(buildspec.LABEL, ""))
    if own is None or not own.get("name") or own.get("name") != (record or {}).get("name"):
        raise GilbenchError(
            f"The engine at {url} holds {tag} as image {there_id[7:19]}, not the build's "
            f"{original_id[7:19]}; remove it there (`docker -H {url} rmi {tag}`) so "
            "gilbench can send the build.")
    return {"image": tag, "image_id": there_id, "transferred": False, "built_there": True,
            "built_at": own.get("built_at"), "source_image_id": original_id}


def prepare(url: str, targets: list[Target]) -> dict[str, Any]:
    """Connect to the engine at `url` (one sentence if it does not answer), put every
    target's image there, and say what the manifest records about it."""
    for target in targets:
        if target.kind != "docker":
            raise GilbenchError(f"--engine runs Docker builds; {target.executable} is a native "
                                "python, so give a build (e.g. --python 3.13) instead.")
    client = engine.connect(timeout=3600, url=url)
    try:
        images = []
        for target in targets:
            source = engine.connect(timeout=3600, url=target.engine)
            try:
                images.append(ensure_image(source, client, url, target))
            finally:
                source.close()
        return {**engine.describe(client, url), "images": images}
    finally:
        client.close()


@dataclass
class ShardOutcome:
    index: int
    url: str
    run_dir: Path | None = None
    error: str = ""
    records: int = 0
    seconds: float = 0.0
    transfers: list[dict[str, Any]] = field(default_factory=list)


# start(shard, url, extra, on_event) -> the shard's run folder: run.start bound to the
# matrix, targets, limits and command by the caller.
StartShard = Callable[[shards.Shard, str, dict[str, Any], Callable[[str, Any], None]], Path]


def run_shards(urls: list[str], targets: list[Target], start: StartShard,
               results_dir: Path, command: str,
               show: Callable[[str], None]) -> tuple[Path | None, list[ShardOutcome]]:
    """Shard i/N on engine i, all at once (one thread each), then one merged run. A shard
    that fails is reported and left out; merge names its missing cells."""
    if len(urls) < 2:
        raise GilbenchError("--shard auto runs one shard per engine, so it needs two or more "
                            "--engine URLs.")
    if len(set(urls)) != len(urls):
        raise GilbenchError("--shard auto was given the same --engine twice; give each "
                            "engine once.")
    count = len(urls)
    outcomes = [ShardOutcome(i + 1, url) for i, url in enumerate(urls)]
    lock = threading.Lock()

    def one(outcome: ShardOutcome) -> None:
        began = time.monotonic()
        try:
            extra = {"engine": prepare(outcome.url, targets)}
            outcome.transfers = [i for i in extra["engine"]["images"] if i["transferred"]]

            def on_event(kind: str, payload: Any) -> None:
                if kind == "record":
                    outcome.records += 1

            outcome.run_dir = start(shards.Shard(outcome.index, count), outcome.url, extra,
                                    on_event)
        except Exception as exc:  # one shard's failure leaves the others running
            outcome.error = str(exc)
        outcome.seconds = round(time.monotonic() - began, 1)
        with lock:
            show(sentence(outcome, count))

    threads = [threading.Thread(target=one, args=(o,), name=f"gilbench-shard-{o.index}")
               for o in outcomes]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: every shard stops at its next record
        from gilbench import run

        run.STOP.set()
        for thread in threads:
            thread.join()
        raise Interrupted(
            "Interrupted: every shard keeps its finished records, and its line above says "
            "how to resume its run; resume each, then `invoke merge` them.") from None
    done = [o.run_dir for o in outcomes if o.run_dir is not None and not o.error]
    if not done:
        return None, outcomes
    if len(done) == 1:  # nothing to merge with: name the failed shards' cells here
        failed = {o.index for o in outcomes if o.error}
        planned = runfolder.read_manifest(done[0]).shard.get("cells") or []
        missing = [c for c in planned if c.get("shard") in failed]
        show(f"run {done[0].name} is the only shard that finished; missing "
             f"{len(missing)} cell(s): " + "; ".join(
                 f"{c['model']} {c['workload']} x{c['workers']}" for c in missing))
        return done[0], outcomes
    merged = merge.merge(done, results_dir / runfolder.new_run_id(), command=command)
    manifest = runfolder.read_manifest(merged)
    manifest.extra["engines"] = {str(o.index): {
        "url": o.url, "run_id": o.run_dir.name if o.run_dir else None, "error": o.error,
        "records": o.records, "seconds": o.seconds} for o in outcomes}
    runfolder.write_manifest(merged, manifest)
    return merged, outcomes


def sentence(outcome: ShardOutcome, count: int) -> str:
    where = f"shard {outcome.index}/{count} on {outcome.url}"
    if outcome.error:
        return f"{where} failed after {outcome.seconds:g} s: {outcome.error}"
    sent = "".join(f"; sent {t['image']} ({t['bytes'] // 2**20} MiB in {t['seconds']:g} s)"
                   for t in outcome.transfers)
    return (f"{where}: {outcome.records} records in {outcome.seconds:g} s, run "
            f"{outcome.run_dir.name if outcome.run_dir else '?'}{sent}")
