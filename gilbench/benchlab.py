"""`invoke bench-lab`: the lab measuring itself, every figure a ratio taken side by side.

In blocks, alternating in time: a real lab run of fib at 2 workers (sequential, threads,
processes with fork, own- and shared-GIL sub-interpreters), then the hand-written
reference (experiments/reference.py) measuring the same kernel in the same place (the
same container or native affinity). From them:

- accuracy: the lab's speedup over sequential against the reference's, per model;
- repeatability: how far the lab's speedups move from one block (one run) to the next;
- the cost of one measurement process against `python -c pass`;
- matrix efficiency: the runs' measured sections over their wall time;
- noise: the median CV of the cells and the share of contended repetitions;
- the no-op build, when the python is a build.

Goals (issue 8) are printed beside the figures, never asserted: the host decides.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gilbench import hostinfo, matrix, run, runfolder
from gilbench.build import BuildOptions
from gilbench.errors import GilbenchError
from gilbench.paths import REPO
from gilbench.targets import Target
from gilbench.versions import resolve_variant

# Lab model names as the reference spells them.
MODELS = {"threads": "threads", "processes": "processes", "own": "own GIL",
          "shared": "shared GIL"}
ACCURACY_GOAL = 0.03  # lab vs reference speedup, and block to block
COST_GOAL = 2.0  # a measurement process vs `python -c pass`
EFFICIENCY_GOAL = 0.9


@dataclass(frozen=True)
class Settings:
    n: int = 27
    tasks: int = 8
    workers: int = 2
    blocks: int = 3
    repetitions: int = 3  # per block, lab and reference alike
    cost_runs: int = 20


@dataclass
class Figures:
    """Everything bench-lab measured, as written to its JSON."""

    settings: dict[str, Any]
    host: dict[str, Any]
    python: dict[str, Any]
    lab: dict[str, list[float]] = field(default_factory=dict)  # model -> wall_s (quiet ok)
    reference: dict[str, list[float]] = field(default_factory=dict)
    block_speedups: list[dict[str, float]] = field(default_factory=list)
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)
    repeatability: dict[str, float] = field(default_factory=dict)
    process_cost: dict[str, float] = field(default_factory=dict)
    efficiency: list[float] = field(default_factory=list)  # per lab run
    warmup_share: list[float] = field(default_factory=list)  # of each run's wall time
    noise: dict[str, float] = field(default_factory=dict)
    noop_build_s: list[float] = field(default_factory=list)
    build_overhead: dict[str, Any] = field(default_factory=dict)  # with --build
    burner: dict[str, Any] = field(default_factory=dict)  # with --burner
    notes: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)


def _lab_model(record: dict[str, Any]) -> str:
    if record["model"] == "subinterpreters":
        return str(record["model_config"].get("gil"))
    return str(record["model"])


def _matrix(settings: Settings) -> matrix.Matrix:
    return matrix.parse({
        "workers": [settings.workers], "repetitions": settings.repetitions, "warmups": 1,
        "timeout_s": 600,
        "models": {"sequential": {}, "threads": {}, "processes": {"start_method": "fork"},
                   "subinterpreters": {"gil": ["own", "shared"]}},
        "workloads": {"fib": {"n": settings.n, "tasks": settings.tasks}},
    }, name="bench-lab")


def speedups(walls: dict[str, list[float]]) -> dict[str, float]:
    """median(sequential) / median(model), per model with samples on both sides."""
    base = walls.get("sequential") or []
    if not base:
        return {}
    return {model: statistics.median(base) / statistics.median(values)
            for model, values in walls.items() if model != "sequential" and values}


def _duration(manifest: runfolder.Manifest) -> float:
    finished = datetime.fromisoformat(str(manifest.finished_at))
    return (finished - datetime.fromisoformat(manifest.started_at)).total_seconds()


def _overlaps(record: dict[str, Any], on: datetime, off: datetime) -> bool:
    """Whether the record's measured section (it ends at its timestamp) met the window."""
    end = datetime.fromisoformat(record["timestamp"])
    return end.timestamp() - record["total_s"] < off.timestamp() and end > on


def _spread(values: list[float]) -> float:
    return (max(values) - min(values)) / statistics.median(values) if values else float("nan")


def _cv(values: list[float]) -> float:
    return statistics.stdev(values) / statistics.mean(values) if len(values) > 1 else 0.0


class Lab:
    """One bench-lab session against one python."""

    def __init__(self, target: Target, out_dir: Path, limits: run.Limits, settings: Settings,
                 say: Callable[[str], None]) -> None:
        self.target, self.out_dir, self.limits = target, out_dir, limits
        self.settings, self.say = settings, say
        self.figures = Figures(settings=vars(settings), host=hostinfo.collect(),
                               python={"id": target.id, "label": target.label,
                                       "executable": target.executable,
                                       "image": target.image})
        self.cvs: list[float] = []  # per lab cell and block: CV of its quiet wall times
        self.ok = self.contended = 0

    def _run(self, retries: int = 0) -> Path:
        chosen = replace(_matrix(self.settings), retry_contended=retries)
        run_dir = run.start(chosen, [self.target], self.out_dir / "runs", self.limits,
                            "invoke bench-lab", lambda kind, payload: None)
        self.figures.runs.append(run_dir.name)
        return run_dir

    def _walls(self, run_dir: Path) -> dict[str, list[float]]:
        """Per model, the wall times the report would use: each repetition's first quiet
        ok attempt (runfolder.samples_by_cell); contended ones only where no quiet one."""
        manifest = runfolder.read_manifest(run_dir)
        records = runfolder.read_records(run_dir).records
        samples = runfolder.samples_by_cell(records)
        walls: dict[str, list[float]] = {}
        busy = []
        for cell in manifest.cells:
            quiet = samples[cell["cell_id"]].quiet if cell["cell_id"] in samples else []
            if not quiet:  # as the report does: contended numbers rather than none, said so
                quiet = [r["wall_s"] for r in records
                         if r["cell_id"] == cell["cell_id"] and r["status"] == "ok"]
                busy += [_lab_model(cell)] if quiet else []
            walls.setdefault(_lab_model(cell), []).extend(quiet)
        if busy:
            self.figures.notes.append(
                f"run {run_dir.name}: every repetition of {', '.join(sorted(busy))} ran while "
                "the host was busy; those contended numbers are used.")
        bad = [r for r in records if r["status"] != "ok"]
        if bad:
            self.figures.notes.append(f"run {run_dir.name}: {len(bad)} record(s) not ok, e.g. "
                                      f"{bad[0]['status']}: {bad[0]['message']}")
        return walls

    def _lab_block(self) -> dict[str, list[float]]:
        run_dir = self._run()
        manifest = runfolder.read_manifest(run_dir)
        records = runfolder.read_records(run_dir).records
        ok = [r for r in records if r["status"] == "ok"]
        label = (manifest.pythons.get(self.target.id) or {}).get("label")
        self.figures.python["label"] = label or self.target.label
        wall = _duration(manifest)
        self.figures.efficiency.append(sum(r["total_s"] for r in ok) / wall)
        # A warmup repeats the measurement before it, unrecorded: about the same time.
        warmups = sum(r["total_s"] * manifest.cells[0]["warmups"] for r in ok)
        self.figures.warmup_share.append(warmups / wall)
        self.contended += sum(bool(r["contended"]) for r in ok)
        self.ok += len(ok)
        for quiet in runfolder.samples_by_cell(records).values():
            self.cvs.append(_cv(quiet.quiet))
        return self._walls(run_dir)

    def burner_block(self) -> None:
        """One more lab run with a CPU burner started a quarter into it and stopped at
        60%, and retry_contended = 3: how many repetitions that ran beside the burner were
        flagged, and whether the speedups after the retries agree with the quiet runs."""
        first = runfolder.read_manifest(self.out_dir / "runs" / self.figures.runs[0])
        expected = _duration(first)
        window: list[datetime] = []
        stop = threading.Event()

        def burn() -> None:
            if stop.wait(expected * 0.25):
                return
            burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            window.append(datetime.now(UTC))
            try:
                stop.wait(expected * 0.35)
            finally:
                burner.kill()
                burner.wait()
                window.append(datetime.now(UTC))

        thread = threading.Thread(target=burn, daemon=True)
        thread.start()
        try:
            run_dir = self._run(retries=3)
        finally:
            stop.set()
            thread.join()
        if len(window) < 2:
            self.figures.notes.append("burner: the run ended before the burner started.")
            return
        on, off = window
        first_attempts = [r for r in runfolder.read_records(run_dir).records
                          if r["status"] == "ok" and not r.get("attempt")]
        affected = [r for r in first_attempts if _overlaps(r, on, off)]
        flagged = sum(bool(r["contended"]) for r in affected)
        after = speedups(self._walls(run_dir))
        quiet = speedups(self.figures.lab)
        self.figures.burner = {
            "run": run_dir.name, "burned_s": (off - on).total_seconds(),
            "affected": len(affected), "flagged": flagged,
            "share": flagged / len(affected) if affected else float("nan"),
            "after_retry_vs_quiet": {m: after[m] / quiet[m] for m in after if m in quiet},
        }

    def _reference_block(self, runner: Any) -> dict[str, list[float]]:
        spec = json.dumps({"n": self.settings.n, "tasks": self.settings.tasks,
                           "workers": self.settings.workers,
                           "repetitions": self.settings.repetitions})
        walls: dict[str, list[float]] = {}
        for line in runner.driver_lines(["--reference", spec]):
            row = json.loads(line)
            walls.setdefault(row["model"], []).append(row["wall_s"])
        if not walls:
            raise GilbenchError(f"The hand-written reference printed nothing on "
                                f"{self.target.label}; see {self.out_dir}/reference.log.")
        return walls

    def _cost(self, runner: Any) -> None:
        times: dict[str, list[float]] = {}
        for line in runner.driver_lines(["--cost", str(self.settings.cost_runs)]):
            row = json.loads(line)
            times.setdefault(row["cost"], []).append(row["s"])
        bare, cell = statistics.median(times["bare"]), statistics.median(times["cell"])
        self.figures.process_cost = {"bare_s": bare, "cell_s": cell, "ratio": cell / bare}

    def measure(self) -> Figures:
        figures = self.figures
        most = self.settings.workers
        for block in range(self.settings.blocks):
            self.say(f"block {block + 1}/{self.settings.blocks}: the lab")
            lab = self._lab_block()
            self.say(f"block {block + 1}/{self.settings.blocks}: the hand-written reference")
            with run.runner_for(self.target, self.out_dir, self.limits, most) as runner:
                runner.log_path = self.out_dir / "reference.log"
                reference = self._reference_block(runner)
                if block == 0:
                    self.say("the cost of a measurement process")
                    self._cost(runner)
            for model, values in lab.items():
                figures.lab.setdefault(model, []).extend(values)
            for model, values in reference.items():
                figures.reference.setdefault(model, []).extend(values)
            figures.block_speedups.append(speedups(lab))
        lab_x, ref_x = speedups(figures.lab), speedups(figures.reference)
        for model in MODELS:
            if model in lab_x and model in ref_x:
                figures.accuracy[model] = {"lab": lab_x[model], "reference": ref_x[model],
                                           "ratio": lab_x[model] / ref_x[model]}
            runs = [b[model] for b in figures.block_speedups if model in b]
            if len(runs) > 1:
                figures.repeatability[model] = _spread(runs)
        figures.noise = {
            "median_cv": statistics.median(self.cvs) if self.cvs else float("nan"),
            "ok": self.ok, "contended": self.contended,
            "contended_share": self.contended / self.ok if self.ok else 0.0,
        }
        return figures

    def noop_build(self, options: BuildOptions) -> None:
        """Time `invoke build` of the measured build three times, once it is known to
        exist (so the timing can never start a real build)."""
        from gilbench.build import run_build

        build = self.target.build
        if build is None:
            self.figures.notes.append("no-op build: not measured, the python is native.")
            return
        variant = resolve_variant(str(build["variant"]), str(build["version"]))
        extra = tuple(build.get("configure_args_requested") or ())[
            len(variant.configure_args):]
        options = replace(options, python=str(build["version"]), variant=variant.name,
                          backend=str(build.get("backend") or "docker"), extra_args=extra,
                          reuse_only=True)
        try:
            run_build(options, lambda kind, payload: None)
        except GilbenchError as exc:
            self.figures.notes.append(f"no-op build: not measured ({exc})")
            return
        argv = [sys.executable, "-m", "invoke", "build", "--python", options.python or "",
                "--variant", options.variant, "--backend", options.backend,
                *(f"--configure-arg={arg}" for arg in extra)]
        env = {**os.environ, "GILBENCH_CACHE_DIR": str(options.cache_dir)}
        for _ in range(3):
            start = time.perf_counter()
            done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True,
                                  check=False)
            elapsed = time.perf_counter() - start
            if done.returncode != 0 or "already built" not in done.stdout:
                self.figures.notes.append(f"no-op build: `{' '.join(argv[2:])}` did not "
                                          "reuse the build, so it is not reported.")
                return
            self.figures.noop_build_s.append(elapsed)


def build_overhead(options: BuildOptions) -> dict[str, Any]:
    """`invoke build` of the plain variant, rebuilt from scratch, against a bare
    `./configure && make` of the same tarball in the base image that build used, one after
    the other. The difference is what gilbench adds: verifying, installing, the image
    layers, the smoke check and the provenance labels."""
    import docker.errors

    from gilbench import engine, sources
    from gilbench.build import run_build

    chosen = replace(options, variant="plain", rebuild=True, extra_args=())
    start = time.perf_counter()
    record = run_build(chosen, lambda kind, payload: None).record
    build_s = time.perf_counter() - start
    tarball = chosen.source or sources.cache_path(chosen.source_cache, record["version"])
    jobs = chosen.jobs or os.cpu_count() or 2
    bare = (f"set -e; mkdir /tmp/b; cd /tmp/b; tar -xf /src/Python.tar.xz --strip-components=1;"
            f" ./configure >/dev/null; make -j{jobs} >/dev/null")
    start = time.perf_counter()
    try:
        engine.connect(timeout=3600).containers.run(
            record["base_image"], ["sh", "-c", bare], remove=True, network_disabled=True,
            volumes={str(tarball): {"bind": "/src/Python.tar.xz", "mode": "ro"}})
    except docker.errors.ContainerError as exc:
        raise GilbenchError(f"The bare ./configure && make in {record['base_image']} failed "
                            f"({exc}).") from None
    bare_s = time.perf_counter() - start
    return {"version": record["version"], "base_image": record["base_image"], "jobs": jobs,
            "bare_s": bare_s, "invoke_build_s": build_s, "ratio": build_s / bare_s,
            "phases": record.get("phases")}


def rows(figures: Figures) -> list[tuple[str, str, str, str]]:
    """(figure, value, goal, verdict) for the console table and the README."""
    out = []
    cores = figures.host.get("cores") or 0
    for model, acc in figures.accuracy.items():
        ratio = acc["ratio"]
        over = f"; above the {cores} cores" if cores and acc["lab"] > cores * 1.05 else ""
        out.append((f"accuracy, {MODELS[model]}: lab / reference",
                    f"{acc['lab']:.2f}x vs {acc['reference']:.2f}x = {ratio:.3f}{over}",
                    "within ±3%", _verdict(abs(ratio - 1) <= ACCURACY_GOAL)))
    for model, spread in figures.repeatability.items():
        out.append((f"repeatability, {MODELS[model]}: range over "
                    f"{len(figures.block_speedups)} runs", f"{spread:.1%}", "at most 6%",
                    _verdict(spread <= 2 * ACCURACY_GOAL)))
    cost = figures.process_cost
    if cost:
        out.append(("process cost: cell / python -c pass",
                    f"{cost['cell_s'] * 1e3:.1f} ms vs {cost['bare_s'] * 1e3:.1f} ms = "
                    f"{cost['ratio']:.2f}x", f"at most {COST_GOAL:.0f}x",
                    _verdict(cost["ratio"] <= COST_GOAL)))
    if figures.efficiency:
        eff = statistics.median(figures.efficiency)
        warm = statistics.median(figures.warmup_share)
        out.append(("matrix efficiency: measured / wall", f"{eff:.2f} (warmups {warm:.2f})",
                    f"at least {EFFICIENCY_GOAL}", _verdict(eff >= EFFICIENCY_GOAL)))
    noise = figures.noise
    cv = noise["median_cv"]
    out.append(("noise: median CV of the cells",
                f"{cv:.1%}" if cv == cv else "n/a: no cell had 2 quiet repetitions", "", ""))
    out.append(("noise: contended repetitions", f"{noise['contended_share']:.0%} of "
                f"{int(noise.get('ok', 0))}", "", ""))
    burner = figures.burner
    if burner:
        out.append(("burner: repetitions beside it flagged",
                    f"{burner['flagged']} of {burner['affected']}", "at least 95%",
                    _verdict(burner["affected"] > 0 and burner["share"] >= 0.95)))
        for model, ratio in burner["after_retry_vs_quiet"].items():
            out.append((f"burner, {MODELS[model]}: after retries / quiet", f"{ratio:.3f}",
                        "within ±3%", _verdict(abs(ratio - 1) <= ACCURACY_GOAL)))
    overhead = figures.build_overhead
    if overhead:
        out.append(("build: invoke build / bare configure && make",
                    f"{overhead['invoke_build_s']:.0f} s vs {overhead['bare_s']:.0f} s = "
                    f"{overhead['ratio']:.2f}x", "", ""))
    if figures.noop_build_s:
        out.append(("no-op `invoke build`", f"{statistics.median(figures.noop_build_s):.2f} s",
                    "", ""))
    return out


def _verdict(met: bool) -> str:
    return "met" if met else "missed"


def write(figures: Figures, out_dir: Path) -> Path:
    """bench-lab.json in the session's folder (written whole, then renamed)."""
    path = out_dir / "bench-lab.json"
    data = {**vars(figures), "rows": rows(figures)}
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(data, indent=2, default=str) + "\n")
    partial.replace(path)
    return path
