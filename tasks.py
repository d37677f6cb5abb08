"""gilbench tasks. Wiring only: each task reads config, calls a plain function in
gilbench/, renders the result. A task's docstring is its --help."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.parser import parser as invoke_parser
from invoke.program import Program
from invoke.tasks import Task, task

from gilbench import backends
from gilbench.errors import GilbenchError
from gilbench.paths import REPO, default_cache_dir, ensure_dir
from gilbench.paths import results_dir as resolve_results_dir

# The defaults; invoke.yaml (in a checkout), ~/.invoke.yaml and INVOKE_GILBENCH_*
# override them. tests/test_cli_install.py checks that invoke.yaml says the same.
DEFAULTS: dict[str, Any] = {
    "python": "3.12", "variant": "pgo", "backend": "docker",
    "base_image": "debian:bookworm-20250520-slim", "cache_dir": None, "source_cache": None,
    "results_dir": "results", "matrix": "default", "jobs": None, "memory": "8g",
}


class _HelpFirst(invoke_parser.ParseMachine):
    """invoke's parser, with `TASK --help` (or -h) always the task's help. invoke 3.0.3
    fills a task's missing positional argument before it looks for a core flag, so
    `invoke export --help` ran export with the run '--help' and `invoke compare --help`
    failed for want of run_b (pyinvoke/invoke#982, open upstream). Here a core --help
    after a task name wins, as for tasks without positionals, and the task's positionals
    may then be missing: the help is printed and nothing runs."""

    help_asked = False

    def handle(self, token: str) -> None:
        context = self.context
        if (self.current_state == "context" and context is not None
                and context.missing_positional_args and not self.waiting_for_flag_value
                and token not in context.flags and token in self.initial.flags
                and self.initial.flags[token].name == "help"):
            self.initial.flags[token].value = context.name  # as invoke does for `TASK --help`
            self.help_asked = True
            return
        super().handle(token)

    def complete_context(self) -> None:
        if not self.help_asked:
            super().complete_context()
        elif self.context is not None and self.context not in self.result:
            self.result.append(self.context)  # its missing positionals are no error


# fluidity (invoke's state machines) gives each class its own, empty, states: share them.
_HelpFirst._class_states = invoke_parser.ParseMachine._class_states
_HelpFirst._class_transitions = invoke_parser.ParseMachine._class_transitions
# invoke's Parser makes a ParseMachine per parse: this one, for `invoke` and `gilbench`.
invoke_parser.ParseMachine = _HelpFirst  # type: ignore[misc]


@contextmanager
def user_errors() -> Iterator[None]:
    """GilbenchError -> one sentence on stderr and exit status 1, never a traceback."""
    import docker.errors
    import requests

    from gilbench.errors import Interrupted

    try:
        yield
    except Interrupted as exc:  # names the run and the command that finishes it
        raise Exit(str(exc), code=130) from None
    except GilbenchError as exc:  # ReportError included
        raise Exit(f"error: {exc}", code=1) from None
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise Exit(f"error: the Docker engine failed ({exc}); `invoke doctor` checks it.",
                   code=1) from None
    except KeyboardInterrupt:
        raise Exit("interrupted: what was finished is kept (runs: invoke experiment "
                   "--resume RUN).", code=130) from None


def settings(c: Context) -> dict[str, Any]:
    conf = dict(c.config.gilbench)
    conf["cache_dir"] = Path(conf["cache_dir"]) if conf.get("cache_dir") else default_cache_dir()
    conf["source_cache"] = (
        Path(conf["source_cache"]) if conf.get("source_cache") else conf["cache_dir"] / "sources"
    )
    conf["results_dir"] = resolve_results_dir(conf.get("results_dir"))
    return conf


def _int_flag(text: str, flag: str, example: str) -> int:
    """A whole-number flag, declared as str so that `--jobs abc` is one sentence, not a
    ValueError from invoke's own coercion."""
    try:
        return int(text.strip())
    except ValueError:
        raise GilbenchError(f"--{flag} {text!r} must be a whole number, e.g. --{flag} {example}."
                            ) from None


def _float_flag(text: str, flag: str, example: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise GilbenchError(f"--{flag} {text!r} must be a number, e.g. --{flag} {example}."
                            ) from None


class _HelpKeepsDashH(Task):
    """A task whose flags never get -h as their short form: `invoke build -h` is help,
    not --check-reproducible (invoke picks each flag's first free letter)."""

    def arg_opts(self, name: str, default: str, taken_names: set[str]) -> dict[str, Any]:
        return super().arg_opts(name, default, taken_names | {"h"})


@task(
    klass=_HelpKeepsDashH,
    iterable=["configure_arg", "engine"],
    help={
        "python": "CPython version: '3.12' = newest locked 3.12.x, '3.13.5' = exactly that "
        "(default from invoke.yaml: gilbench.python).",
        "variant": "pgo (default), pgo-lto, debug, freethreaded (3.13+).",
        "configure_arg": "An extra ./configure flag, e.g. --configure-arg=--without-mimalloc "
        "(repeatable).",
        "source": "Build from this local tarball instead of the cache/URL (verified if its "
        "version is locked, else its SHA-256 is recorded).",
        "backend": f"Where to build: {backends.help_text()} (default: gilbench.backend).",
        "base_image": "Base image for the docker backend (default: gilbench.base_image; made "
        "with mmdebstrap when no registry answers).",
        "jobs": "Parallel make jobs (default: all cores).",
        "rebuild": "Build again even if this build exists, without Docker's layer cache; "
        "the old image stays until the new one passed its smoke check (docker backend).",
        "check_reproducible": "Build it twice into the same prefix (docker: a second image "
        "without the layer cache) and compare the installed files; prints a table and "
        "writes JSON (default: the cache's logs folder).",
        "output": "Where --check-reproducible writes its JSON report.",
        "check": "Then run CPython's own tests for what gilbench measures (the version's "
        "sub-interpreter suites, test_threading and test_multiprocessing_forkserver subsets) "
        "on the build, new or existing, and store the result on its record; exits non-zero "
        "naming the failing tests (the build is kept, marked failed).",
        "engine": "Build on the Docker engine at this URL (unix://, tcp:// with TLS from "
        "DOCKER_CERT_PATH/DOCKER_TLS_VERIFY, ssh://) instead of the local one; repeatable: "
        "one build on each engine, in turn. The local base image is sent along.",
    },
)
def build(
    c: Context, python: str = "", variant: str = "", configure_arg: list[str] | None = None,
    source: str = "", backend: str = "", base_image: str = "", jobs: str = "",
    rebuild: bool = False, check_reproducible: bool = False, output: str = "",
    check: bool = False, engine: list[str] | None = None,
) -> None:
    """Build CPython from pinned, verified sources (PGO by default); a no-op if built.

    With --source the tarball decides the version; a --python that disagrees with it is
    refused. Flags that move where CPython installs (--prefix, --libdir, ...) are refused.
    --check runs CPython's own tests on the build (about a minute on 2 cores).
    """
    from dataclasses import replace

    from gilbench.build import BuildOptions
    from gilbench.console import PhaseProgress, console

    conf = settings(c)
    with user_errors():
        make_jobs = _int_flag(jobs, "jobs", "4") if jobs else conf.get("jobs")
        if make_jobs is not None and (not isinstance(make_jobs, int) or make_jobs < 1):
            raise GilbenchError(f"The number of make jobs (--jobs, or gilbench.jobs) must be a "
                                f"whole number of at least 1, got {make_jobs!r}.")
        options = BuildOptions(
            # With --source only an explicit --python is checked against the tarball.
            python=python or (None if source else conf["python"]),
            variant=variant or conf["variant"],
            backend=backend or conf["backend"], cache_dir=conf["cache_dir"],
            source_cache=conf["source_cache"], base_image=base_image or conf["base_image"],
            extra_args=tuple(configure_arg or ()),
            source=Path(source).expanduser().absolute() if source else None, jobs=make_jobs,
            rebuild=rebuild, check=check,
        )
        if check and check_reproducible:
            raise GilbenchError("--check and --check-reproducible are separate runs; give "
                                "one of them.")
        engines = [e.strip() for e in engine or []]
        if any(not e for e in engines) or len(set(engines)) != len(engines):
            raise GilbenchError("--engine needs a URL, each engine once (e.g. --engine "
                                "ssh://user@host).")
        if engines and check_reproducible:
            raise GilbenchError("--check-reproducible builds on the local engine; drop "
                                "--engine.")
    for url in engines:  # one build per engine, each as it would be there alone
        console.print(f"engine {url}:", markup=False)
        _build_once(replace(options, engine=url), check, conf["cache_dir"])
    if engines:
        return
    if check_reproducible:
        from gilbench import reprocheck

        with user_errors(), PhaseProgress("building CPython twice") as progress:
            report, path = reprocheck.check(options, progress,
                                            Path(output).expanduser() if output else None)
        for line in reprocheck.render(report):
            console.print(line, markup=False, highlight=False)
        console.print(f"report: {path}")
        return
    _build_once(options, check, conf["cache_dir"])


def _build_once(options: Any, check: bool, cache_dir: Path) -> None:
    from gilbench.build import check_log_path, run_build
    from gilbench.console import PhaseProgress, console

    with user_errors(), PhaseProgress("building CPython") as progress:
        result = run_build(options, progress)
    record = result.record
    where = record.get("image") or record.get("executable")
    if result.reused:
        console.print(f"[green]already built[/green]: {where} (built {record['built_at']}, "
                      f"{record['build_seconds']} s)")
    else:
        console.print(f"[green]built[/green] {where} in {record['build_seconds']} s "
                      f"(log: {result.log_path})")
    console.print(f"  CPython {record['version']} ({record['variant']}), sha256 "
                  f"{record['sha256'][:16]}…, CONFIG_ARGS: {record['config_args']}")
    if check:
        _show_selfcheck(record["selfcheck"], str(where), check_log_path(cache_dir, record))


def _show_selfcheck(result: dict[str, Any], where: str, log: Path | None) -> None:
    """The self-check as a table; a failure exits 1 with one sentence naming the tests."""
    from gilbench import selfcheck
    from gilbench.console import console
    from gilbench.doctor import selfcheck_table

    console.print(selfcheck_table(result))
    console.print(f"  command: {result.get('command')}" + (f"  (output: {log})" if log else ""),
                  markup=False)
    if result["status"] != "passed":
        raise Exit(f"error: {selfcheck.failure_sentence(result, where)}", code=1)


@task(help={
    "python": "Check this interpreter instead of the host: a build ('3.13.5', "
    "'3.13/freethreaded') or the path of a native python; runs CPython's own tests for "
    "what gilbench measures and prints a table.",
    "backend": f"Where a --python build is looked up: {backends.help_text()}.",
    "jobs": "Parallel test processes for --python (regrtest -j; default: all cores).",
})
def doctor(c: Context, python: str = "", backend: str = "", jobs: str = "") -> None:
    """Check this host: Docker engine, disk, cores, load, governor, base-image tools.

    With --python, check that interpreter instead: its own test suites (sub-interpreters,
    test_threading and test_multiprocessing_forkserver subsets); exits 1 if any fails.
    It only reports: `invoke build --check` stores the result on a build.
    """
    from gilbench.console import console
    from gilbench.doctor import run_all

    conf = settings(c)
    if python:
        from gilbench.doctor import check_python

        with user_errors():
            test_jobs = _int_flag(jobs, "jobs", "2") if jobs else None
            target, result, log = check_python(python, backend or conf["backend"],
                                               conf["variant"], conf["cache_dir"], test_jobs)
        where = target.image or target.executable
        console.print(f"CPython's own tests on {target.label} ({where})", markup=False)
        _show_selfcheck(result, where, log)
        return
    checks = run_all(conf["cache_dir"], conf["source_cache"])
    colours = {"ok": "green", "warn": "yellow", "fail": "red"}
    for check in checks:
        colour = colours[check.status]
        console.print(f"[{colour}]{check.status:>4}[/{colour}]  {check.name:<14} {check.detail}")
        if check.fix:
            console.print(f"      {'':<14} [dim]fix: {check.fix}[/dim]")
    if any(check.status == "fail" for check in checks):
        raise Exit("doctor: some checks failed (see the fixes above).", code=1)


def _axes(pairs: list[str], flag: str) -> dict[str, list[Any]]:
    """['gil=own,shared', 'allow_fork=true'] -> {'gil': ['own', 'shared'], ...}."""

    def value(text: str) -> Any:
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        return int(text) if text.lstrip("-").isdigit() else text

    axes: dict[str, list[Any]] = {}
    for pair in pairs:
        key, sep, values = pair.partition("=")
        if not sep or not key or not values:
            raise GilbenchError(f"--{flag} {pair!r} must look like KEY=VALUE[,VALUE...].")
        axes[key.strip()] = [value(v.strip()) for v in values.split(",")]
    return axes


def _int_list(text: str, flag: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise GilbenchError(
            f"--{flag} {text!r} must be integers separated by commas, e.g. 1,2,4."
        ) from None


@task(
    optional=["matrix"],
    iterable=["python", "config", "param", "engine"],
    help={
        "matrix": "Matrix name (experiments/matrices/NAME.toml) or path; bare --matrix or no "
        "cell flags: the default matrix.",
        "python": "Interpreter: a build ('3.12', '3.13.5/freethreaded') or a path to a native "
        "python (repeatable; default: the matrix's pythons, else gilbench.python).",
        "backend": f"Where builds are looked up: {backends.help_text()} (default: "
        "gilbench.backend).",
        "model": "Single-cell run: the execution model, or several separated by commas "
        "(sequential, threads, processes, subinterpreters, interpreter-pool).",
        "workload": "Single-cell run: the workload (fib, nbody, io, alloc, mixed, hash, "
        "compress, transfer, startup), or your own function as module:function or "
        "path/to/file.py:function (--param values become its keyword arguments).",
        "requirements": "A pip requirements file your workload needs: installed into a venv "
        "made from each native python (cached), recorded in the manifest; not for Docker "
        "images.",
        "workers": "Single-cell run: worker counts, e.g. 1,2,4 (default 1,2).",
        "config": "Single-cell run: a model setting, e.g. gil=own,shared (repeatable).",
        "param": "Single-cell run: a workload parameter, e.g. n=25 (repeatable).",
        "repetitions": "Single-cell run: recorded repetitions per cell, 1-10000 (default 5).",
        "warmups": "Single-cell run: unrecorded warmups per cell, 0-1000 (default 1).",
        "timeout": "Single-cell run: seconds before a cell is recorded as timeout, up to 86400 "
        "(default 120).",
        "resume": "Finish the interrupted run RUN (a run id or folder) as it was started: no "
        "matrix, cell or python flags with it.",
        "cpuset": "CPUs for the run: the container's cpuset, or native affinity (default: one "
        "logical CPU of every usable physical core, as BenchExec places runs).",
        "memory": "Docker memory limit for the run's container (default gilbench.memory).",
        "retry_contended": "Measure a repetition again, up to N times (0-10), when other "
        "processes, steal or a CPU quota took the CPU while it ran; every attempt is kept "
        "(default: the matrix's retry_contended, else 0).",
        "target_ci": "Adaptive sampling: add repetitions to each cell until the 95% CI of its "
        "median is within this, e.g. 2% (default: the matrix's target_ci, else fixed "
        "repetitions).",
        "max_repetitions": "With --target-ci: the most repetitions per cell (default 50).",
        "cell_budget": "With --target-ci: seconds each cell may take before it stops "
        "(default 120).",
        "shard": "Run only shard I of N of the matrix's cells, I from 1 to N, e.g. 2/3: a "
        "deterministic split balanced by expected cost; run every shard (anywhere), then "
        "`invoke merge` them. `auto` with N --engine URLs: shard i on engine i, all at "
        "once, then merged into one run.",
        "engine": "Run on the Docker engine at this URL (unix://, tcp:// with TLS from "
        "DOCKER_CERT_PATH/DOCKER_TLS_VERIFY, ssh://); the build's image is sent there "
        "(docker save | load) when missing; repeatable with --shard auto.",
        "swarm": "Run the matrix as one Docker Swarm replicated job of --replicas tasks, each "
        "one shard, on the swarm this engine manages; the shards are merged into one run.",
        "replicas": "With --swarm: the number of tasks (shards), at least 1.",
        "no_baseline": "Do not add the sequential cells that every parallel model is measured "
        "against (added, and said so, when the models leave sequential out).",
    },
)
def experiment(
    c: Context, matrix: Any = None, python: list[str] | None = None, backend: str | None = None,
    model: str | None = None, workload: str | None = None, workers: str | None = None,
    config: list[str] | None = None, param: list[str] | None = None,
    repetitions: str | None = None, warmups: str | None = None, timeout: str | None = None,
    resume: str | None = None, cpuset: str | None = None, memory: str | None = None,
    retry_contended: str | None = None, target_ci: str | None = None,
    max_repetitions: str | None = None, cell_budget: str | None = None,
    requirements: str | None = None, shard: str | None = None, swarm: bool = False,
    replicas: str | None = None, engine: list[str] | None = None, no_baseline: bool = False,
) -> Path:
    """Run a matrix (or one cell from flags) against built or native interpreters.

    Flags that would be ignored are refused instead: --resume takes no matrix, cell or
    python flags (the run keeps its own), and the single-cell flags (--workers, --config,
    --param, --repetitions, --warmups, --timeout) need --model and --workload.
    """
    import shlex
    import signal
    import sys

    from gilbench import matrix as matrices
    from gilbench import run, shards, targets
    from gilbench.console import RunProgress, console

    # None: not given. An empty value was given by mistake (`--resume ""` would otherwise
    # start a new run): one sentence, like any other mistake.
    values = {"--backend": backend, "--model": model, "--workload": workload,
              "--workers": workers, "--repetitions": repetitions, "--warmups": warmups,
              "--timeout": timeout, "--resume": resume, "--cpuset": cpuset,
              "--memory": memory, "--retry-contended": retry_contended,
              "--target-ci": target_ci, "--max-repetitions": max_repetitions,
              "--cell-budget": cell_budget, "--requirements": requirements,
              "--shard": shard, "--replicas": replicas,
              "--python": "" if any(not p.strip() for p in python or []) else None,
              "--engine": "" if any(not e.strip() for e in engine or []) else None}
    empty = [flag for flag, value in values.items() if value is not None and not value.strip()]
    if empty:
        raise Exit(f"error: {empty[0]} was given an empty value; give it one, or leave the "
                   "flag out (`invoke experiment --help` lists them).", code=1)
    backend, model, workload, workers = backend or "", model or "", workload or "", workers or ""
    repetitions, warmups, timeout = repetitions or "", warmups or "", timeout or ""
    resume, cpuset, memory = resume or "", cpuset or "", memory or ""
    retry_contended = retry_contended or ""
    sampling = {"--target-ci": target_ci or "", "--max-repetitions": max_repetitions or "",
                "--cell-budget": cell_budget or ""}
    # `kill` (SIGTERM) ends a run like Ctrl-C: records kept, and the resume command shown.
    signal.signal(signal.SIGTERM, _terminated)
    conf = settings(c)
    # No --cpuset: the runner places the run, one logical CPU per physical core first.
    limits = run.Limits(cpuset, memory or str(conf["memory"]))
    command = "invoke " + shlex.join(sys.argv[1:])
    cell_flags = {"--workers": workers, "--config": config, "--param": param,
                  "--repetitions": repetitions, "--warmups": warmups, "--timeout": timeout}
    with user_errors():
        if replicas is not None and not swarm:
            raise GilbenchError("--replicas applies only with --swarm; add --swarm or drop "
                                "--replicas.")
        engines = [e.strip() for e in engine or []]
        auto = shard is not None and shard.strip() == "auto"
        if auto and len(engines) < 2:
            raise GilbenchError("--shard auto runs one shard per engine, so it needs two or "
                                "more --engine URLs.")
        if len(engines) > 1 and not auto:
            raise GilbenchError("Several --engine URLs need --shard auto (one shard per "
                                "engine); give one --engine for a plain run.")
        if engines:
            _refuse_given({"--resume": resume, "--swarm": swarm,
                           "--requirements": requirements},
                          "cannot be given with --engine; drop {them}")
        if swarm:
            _refuse_given({"--resume": resume, "--shard": shard, "--cpuset": cpuset,
                           "--requirements": requirements, "--retry-contended": retry_contended,
                           "--target-ci": target_ci},
                          "cannot be given with --swarm, whose tasks each run one whole shard "
                          "without a cpuset (Swarm has none); drop {them}")
            _replicas(replicas)
        if resume:
            _refuse_given(
                {"--matrix": matrix is not None, "--python": python, "--backend": backend,
                 "--model": model, "--workload": workload, "--requirements": requirements,
                 "--retry-contended": retry_contended, "--shard": shard, **sampling,
                 "--no-baseline": no_baseline, **cell_flags},
                "cannot be given with --resume, which finishes a run with the matrix, cells "
                "and pythons it started with; drop {them}, or start a new run without "
                "--resume",
            )
            run_dir = _run_dir(conf, resume)
            with RunProgress() as progress:
                run.resume(run_dir, cpuset or None, memory or None, progress)
        else:
            chosen_shard = shards.parse(shard) if shard and not auto else None
            if model or workload:
                if not (model and workload):
                    raise GilbenchError("A single-cell run needs both --model and --workload.")
                if matrix is not None:
                    raise GilbenchError(
                        "--matrix cannot be given with --model/--workload: a run is either a "
                        "matrix or one cell from flags; drop one of them."
                    )
                chosen = matrices.single_cell(
                    [m.strip() for m in model.split(",")], workload,
                    _int_list(workers or "1,2", "workers"),
                    _axes(config or [], "config"), _axes(param or [], "param"),
                    _int_flag(repetitions, "repetitions", "5") if repetitions else 5,
                    _int_flag(warmups, "warmups", "1") if warmups else 1,
                    _float_flag(timeout, "timeout", "120") if timeout else 120.0,
                )
            else:
                _refuse_given(
                    cell_flags,
                    "only {apply} to a single-cell run (--model and --workload); a matrix "
                    "sets {them} in its file",
                )
                name = matrix if isinstance(matrix, str) and matrix else conf["matrix"]
                chosen = matrices.load(name)
            chosen, added = matrices.with_baseline(chosen, no_baseline)
            if added:
                console.print(added, markup=False)
            if retry_contended:
                chosen = matrices.with_retries(
                    chosen, _int_flag(retry_contended, "retry-contended", "2"))
            if target_ci:
                chosen = matrices.with_sampling(
                    chosen, target_ci,
                    _int_flag(max_repetitions, "max-repetitions", "50") if max_repetitions
                    else None,
                    _float_flag(cell_budget, "cell-budget", "120") if cell_budget else None)
            else:
                _refuse_given({"--max-repetitions": max_repetitions,
                               "--cell-budget": cell_budget},
                              "only {apply} with --target-ci (adaptive sampling); add "
                              "--target-ci or drop {them}")
            ensure_dir(conf["results_dir"], "results folder",
                       "gilbench.results_dir (invoke.yaml or INVOKE_GILBENCH_RESULTS_DIR)")
            specs = python or chosen.pythons or [conf["python"]]
            resolved = [
                targets.resolve_for_engines(spec, backend or conf["backend"], conf["variant"],
                                            conf["cache_dir"], engines) if engines else
                targets.resolve(spec, backend or conf["backend"], conf["variant"],
                                conf["cache_dir"])
                for spec in specs
            ]
            extra: dict[str, Any] = {}
            if requirements:
                from gilbench import userwork

                resolved, extra["requirements"] = userwork.with_requirements(
                    resolved, Path(requirements).expanduser().absolute(), conf["cache_dir"])
            # The memory limit is applied by Docker only: a run of native pythons has none
            # unless --memory asks for one (which run.start refuses, rather than record it).
            if not memory and not any(
                    backends.for_target(target).applies_memory_limit for target in resolved):
                limits = run.Limits(limits.cpuset, None)
            if swarm:
                return _swarm_experiment(chosen, resolved, replicas, limits.memory, command,
                                         conf["results_dir"])
            if auto:
                return _engines_experiment(chosen, resolved, engines, limits, command,
                                           conf["results_dir"])
            if engines:
                from gilbench.engines import prepare

                extra["engine"] = prepare(engines[0], resolved)
            with RunProgress() as progress:
                run_dir = run.start(chosen, resolved, conf["results_dir"], limits, command,
                                    progress, extra=extra, shard=chosen_shard,
                                    engine_url=engines[0] if engines else None)
    console.print(f"[green]run complete[/green]: {run_dir}  (next: invoke report)")
    return run_dir


def _replicas(text: str | None) -> int:
    if text is None:
        raise GilbenchError("--swarm needs --replicas N, the number of tasks (shards).")
    count = _int_flag(text, "replicas", "2")
    if count < 1:
        raise GilbenchError(f"--replicas {count} must be at least 1: the number of Swarm "
                            "tasks, each running one shard of the matrix.")
    return count


def _swarm_experiment(chosen: Any, resolved: list[Any], replicas: str | None,
                      memory: str | None, command: str, results_dir: Path) -> Path:
    """--swarm: one replicated job, waited for, imported and merged (gilbench/swarm.py)."""
    from gilbench import engine, swarm
    from gilbench.console import console

    count = _replicas(replicas)
    if len(resolved) != 1:
        raise GilbenchError("--swarm runs one image per job; give one --python (run one job "
                            "per python and `invoke merge` them).")
    client = engine.connect(timeout=600)
    info = swarm.check_swarm(client)
    job = swarm.plan(chosen, resolved[0], count, memory, command, info.get("NCPU"))

    def show(kind: str, payload: Any) -> None:
        if kind == "service":
            console.print(f"swarm job {payload['name']} ({payload['id'][:12]}): "
                          f"{count} tasks")
        elif kind == "task":
            console.print(f"  task {payload['id'][:12]} (shard {payload['slot'] + 1}): "
                          f"{payload['state']}")
        elif kind == "warning":
            console.print(f"[yellow]warning[/yellow]: {payload}")

    result = swarm.run(job, results_dir, show, client=client)
    for shard in result.shards:
        console.print(shard.sentence(count))
    if result.unfinished:
        console.print(f"[yellow]shards that never completed[/yellow]: "
                      f"{', '.join(str(i) for i in result.unfinished)} (the merge names "
                      "their missing cells)")
    console.print(f"[green]run complete[/green]: {result.run_dir}  (next: invoke report)")
    return result.run_dir


def _engines_experiment(chosen: Any, resolved: list[Any], urls: list[str], limits: Any,
                        command: str, results_dir: Path) -> Path:
    """--shard auto: shard i/N on engine i, at once, merged (gilbench/engines.py)."""
    from gilbench import engines, run
    from gilbench.console import console

    def start(shard: Any, url: str, extra: dict[str, Any], on_event: Any) -> Path:
        return run.start(chosen, resolved, results_dir, limits, command, on_event,
                         extra=extra, shard=shard, engine_url=url)

    console.print(f"{len(urls)} shards on {len(urls)} engines: " + ", ".join(urls),
                  markup=False)
    merged, outcomes = engines.run_shards(urls, resolved, start, results_dir, command,
                                          lambda line: console.print(line, markup=False))
    if merged is None:
        raise GilbenchError("No shard finished (each one's reason is above); nothing was "
                            "merged.")
    if any(o.error for o in outcomes):
        console.print("some shards failed; the merged run is partial and names their "
                      "missing cells", style="bold yellow", markup=False)
    console.print(f"[green]run complete[/green]: {merged}  (next: invoke report)")
    return merged


def _terminated(signum: int, frame: Any) -> None:
    from gilbench import run

    # The exception can land in a finalizer, where Python only prints it; the request
    # stays, and the run stops at its next record.
    run.STOP.set()
    raise KeyboardInterrupt


def _refuse_given(flags: dict[str, Any], why: str) -> None:
    """Refuse the flags that were given (truthy), naming them: `why` may say {them} and
    {apply}, which agree with how many there are."""
    given = [flag for flag, value in flags.items() if value]
    if given:
        names = " and ".join(given) if len(given) <= 2 else (
            ", ".join(given[:-1]) + " and " + given[-1])
        one = len(given) == 1
        reason = why.format(them="it" if one else "them", apply="applies" if one else "apply")
        raise GilbenchError(f"{names} {reason}.")


def _run_dir(conf: dict[str, Any], name: str) -> Path:
    """A run by id (in the results folder) or by path (as the user's shell means it)."""
    from gilbench import runfolder

    return runfolder.find(conf["results_dir"], name)


# invoke has no optional positionals, so the run is a flag: `invoke report --run RUN`.
@task(help={"run": "Run id or folder (default: the newest run in results/)."})
def report(c: Context, run: str = "") -> None:
    """Tables, plots, report.md and report.html of a run, regenerated from its records."""
    from gilbench.console import console
    from gilbench.report import newest_run, report_run

    conf = settings(c)
    with user_errors():
        run_dir = _run_dir(conf, run) if run else newest_run(conf["results_dir"])
        result = report_run(run_dir)
    if result.partial:
        console.print(f"[bold yellow]{result.partial}[/bold yellow]")
    for finding in result.findings:
        console.print(f"• {finding}")
    for warning in result.warnings:
        console.print(f"[yellow]! {warning}[/yellow]")
    console.print(f"[green]report[/green]: {run_dir / 'report.html'}  and  "
                  f"{run_dir / 'report.md'}")


@task(help={"run": "Run id or folder (default: the newest run in results/).",
            "workload": "Only this workload: its name (fib) or label (fib(n=27,tasks=8)).",
            "json": "Print the decision as one JSON document for scripts and CI gates "
                    "(docs/advise.md) instead of sentences."})
def advise(c: Context, run: str = "", workload: str = "", json: bool = False) -> None:
    """The answer in a few lines: per workload, which model wins at how many workers, how
    sure that is, and from what job size it pays off. Writes nothing."""
    import json as json_module
    import sys

    from rich.markup import escape

    from gilbench.console import console
    from gilbench.report import newest_run
    from gilbench.report.run import advise_run

    conf = settings(c)
    with user_errors():
        run_dir = _run_dir(conf, run) if run else newest_run(conf["results_dir"])
        advice = advise_run(run_dir, workload or None)
    if json:
        sys.stdout.write(json_module.dumps(advice.as_json(), indent=2, allow_nan=False) + "\n")
        return
    console.print(f"[bold]{escape(advice.run_id)}[/bold]" + (
        f"  [yellow]{escape(advice.partial)}[/yellow]" if advice.partial else ""))
    for line in advice.preamble:
        console.print(escape(line))
    for headline in advice.headlines:
        console.print(escape(headline.replace("; ", ";\n    ")))
    for entry in advice.across_builds:
        console.print(escape(entry["text"].replace("; ", ";\n    ")))
    if advice.warnings:
        console.print(f"[yellow]! {len(advice.warnings)} warning(s) about these numbers: "
                      "`invoke report` writes them with the detail.[/yellow]")


@task(
    positional=["run_a", "run_b"],
    help={"run_a": "The baseline run (id or folder).", "run_b": "The run compared with it."},
)
def compare(c: Context, run_a: str, run_b: str) -> None:
    """The same cells of two runs side by side: ratio, CI, significance, what differs."""
    from gilbench.console import render_compare
    from gilbench.report import compare_runs

    conf = settings(c)
    with user_errors():
        a, b = _run_dir(conf, run_a), _run_dir(conf, run_b)
        result = compare_runs(a, b)
    render_compare(result)


EXPORT_FORMATS = ("gilbench", "pyperf")


@task(
    positional=["run"],
    help={"run": "Run id or folder.",
          "output": "File to write, or a folder to write it in (default: the results folder: "
                    "RUN.gilbench.tar.gz, or RUN.pyperf.json with --format pyperf).",
          "format": "gilbench (the default: one archive with the run, its report, recipes "
                    "and experiments/, verified on unpack) or pyperf (each cell as a pyperf "
                    "benchmark, for pyperf stats / hist / compare_to)."},
)
def export(c: Context, run: str, output: str = "", format: str = "gilbench") -> None:
    """One file holding a run: a verified archive to reproduce it elsewhere
    (docs/archive-format.md), or its cells as pyperf benchmarks."""
    from gilbench import archive, pyperf_export
    from gilbench.console import console

    conf = settings(c)
    with user_errors():
        run_dir = _run_dir(conf, run)
        if format not in EXPORT_FORMATS:
            raise GilbenchError(f"--format {format!r} is not one gilbench writes; use one of "
                                f"{', '.join(EXPORT_FORMATS)}.")
        out = Path(output).expanduser() if output else conf["results_dir"]
        if format == "pyperf":
            written = pyperf_export.export(run_dir, out)
            console.print(f"wrote {written.benchmarks} benchmarks: {written.path}  "
                          f"(next: python -m pyperf stats {written.path})", markup=False)
            if written.note():
                console.print(written.note(), style="yellow", markup=False)
            return
        exported = archive.export_run(run_dir, out)
    console.print(f"exported {exported.path}", markup=False)
    for label, why in exported.not_rebuildable.items():
        console.print(f"{label} cannot be rebuilt from the archive: {why}.", style="yellow",
                      markup=False)
    if exported.partial:
        console.print(exported.partial, style="bold yellow", markup=False)


@task(
    positional=["runs"],
    help={"runs": "Two or more runs (ids or folders) separated by commas: the shards of one "
                  "matrix, or the same matrix on several hosts (more after --, space-separated).",
          "output": "The merged run's name in the results folder, or a path (default: a new "
                    "run id).",
          "allow_mixed": "Merge runs of different matrices or harnesses anyway; the merged "
                         "manifest records what differed."},
)
def merge(c: Context, runs: str, output: str = "", allow_mixed: bool = False) -> Path:
    """Combine runs into one new run that report, compare and export read like any other;
    host is an axis (the same cell on two hosts stays two groups). Runs of different
    matrices or harnesses, a run given twice and two copies of one shard are refused; a
    missing shard's cells are named and the merged run is marked partial."""
    import shlex
    import sys

    from gilbench import merge as merging
    from gilbench import runfolder
    from gilbench.console import console

    conf = settings(c)
    # invoke has no variadic positionals: RUN,RUN,... and/or `-- RUN RUN ...`.
    remainder = shlex.split(getattr(c, "remainder", "") or "")
    given = [name for name in runs.split(",") if name.strip()] + remainder
    with user_errors():
        if len(given) < 2:
            raise GilbenchError(f"invoke merge needs at least two runs (ids or folders); got "
                                f"{len(given)}.")
        run_dirs = [_run_dir(conf, name) for name in given]
        if output and ("/" in output or output.startswith(".")):
            dest = Path(output).expanduser().absolute()
        else:
            dest = ensure_dir(conf["results_dir"], "results folder", "gilbench.results_dir") / (
                output or runfolder.new_run_id())
        merged = merging.merge(run_dirs, dest, allow_mixed,
                               "invoke " + shlex.join(sys.argv[1:]))
        manifest = runfolder.read_manifest(merged)
    for difference in manifest.merge.get("mixed") or []:
        console.print(f"mixed (--allow-mixed): {difference}", style="yellow", markup=False)
    if manifest.merge.get("partial"):
        console.print(manifest.merge["partial"], style="bold yellow", markup=False)
    console.print(f"merged {len(run_dirs)} runs on {len(manifest.merge['hosts'])} host(s): "
                  f"{merged}  (next: invoke report --run {merged.name})", markup=False)
    return merged


@task(help={"pytest_args": "Extra arguments for pytest, e.g. '-k build -x'."})
def test(c: Context, pytest_args: str = "") -> None:
    """Lint (ruff), type-check (mypy) and run the whole test suite (pytest)."""
    import sys

    with c.cd(str(REPO)):
        c.run(f"{sys.executable} -m ruff check .", echo=True)
        c.run(f"{sys.executable} -m mypy", echo=True)
        c.run(f"{sys.executable} -m pytest {pytest_args}", echo=True)


def _is_path(spec: str) -> bool:
    """A native interpreter path rather than a build spec ('3.13.5/freethreaded')."""
    return "/" in spec and not spec.split("/", 1)[0].replace(".", "").isdigit()


@task(
    name="all",
    help={
        "matrix": "Matrix to run (default: gilbench.matrix, i.e. default).",
        "python": "A CPython version to build and measure ('3.13.5', '3.13/freethreaded'), or "
        "the path of a native python to measure without building (default: gilbench.python).",
        "backend": f"Where the build is made and looked up: {backends.help_text()}.",
    },
)
def all_(c: Context, matrix: str = "", python: str = "", backend: str = "") -> None:
    """The main job: build CPython, run the matrix on it, write the report.

    --python VERSION[/VARIANT] builds that version (and variant) with --backend, then
    measures it. --python PATH measures that native interpreter: there is nothing to
    build, so the build step is skipped (and says so); --backend then has no effect on the
    run. Without --python the default version is built and the matrix's pythons measured.
    """
    from gilbench.console import console

    if python and _is_path(python):
        console.print(f"[yellow]skipping the build[/yellow]: --python {python} is a native "
                      "interpreter, measured as it is.")
    else:
        version, _, variant = python.partition("/")
        build(c, python=version, variant=variant, backend=backend)
    run_dir = experiment(c, matrix=matrix or True, python=[python] if python else None,
                         backend=backend or None)
    report(c, run=str(run_dir))  # this run, even if another one started meanwhile


@task(
    name="bench-lab",
    help={
        "python": "The python to measure the lab on: a build ('3.13.5') or a native path "
        "(default: gilbench.python).",
        "backend": f"Where a build is looked up: {backends.help_text()} (default: "
        "gilbench.backend).",
        "blocks": "Lab runs, each followed by the hand-written reference (default 3).",
        "repetitions": "Repetitions per model in each block, lab and reference (default 3).",
        "output": "Folder for the runs and bench-lab.json (default: "
        "RESULTS/bench-lab-<time>).",
        "burner": "Also run the lab once more with a CPU burner started mid-run and "
        "retry_contended = 3: how many affected repetitions are flagged, and whether the "
        "speedups after the retries agree with the quiet runs.",
        "build": "Also time a from-scratch `invoke build` (plain variant, Docker) against a "
        "bare ./configure && make of the same tarball in the same base image (minutes).",
    },
)
def bench_lab(c: Context, python: str = "", backend: str = "", blocks: str = "",
              repetitions: str = "", output: str = "", build: bool = False,
              burner: bool = False) -> None:
    """The lab measuring itself: accuracy against a hand-written reference, repeatability,
    process cost, efficiency, noise and the no-op build, each as a ratio side by side."""
    import signal

    from rich.table import Table

    from gilbench import benchlab, run, runfolder, targets
    from gilbench.build import BuildOptions
    from gilbench.console import console

    signal.signal(signal.SIGTERM, _terminated)  # `kill` ends it like Ctrl-C
    conf = settings(c)
    with user_errors():
        chosen = benchlab.Settings(
            blocks=_int_flag(blocks, "blocks", "3") if blocks else 3,
            repetitions=_int_flag(repetitions, "repetitions", "3") if repetitions else 3)
        if not 1 <= chosen.blocks <= 100 or not 1 <= chosen.repetitions <= 1000:
            raise GilbenchError("--blocks must be from 1 to 100 and --repetitions from 1 to "
                                "1000.")
        target = targets.resolve(python or conf["python"], backend or conf["backend"],
                                 conf["variant"], conf["cache_dir"])
        out = (Path(output).expanduser().absolute() if output else
               Path(conf["results_dir"]) / f"bench-lab-{runfolder.new_run_id()}")
        ensure_dir(out, "bench-lab output folder", "--output")
        memory = str(conf["memory"]) if backends.for_target(target).applies_memory_limit else None
        limits = run.Limits("", memory)
        lab = benchlab.Lab(target, out, limits, chosen, lambda text: console.print(text))
        options = BuildOptions(
            python=str((target.build or {}).get("version") or conf["python"]),
            variant="plain", backend="docker", cache_dir=conf["cache_dir"],
            source_cache=conf["source_cache"], base_image=conf["base_image"],
            jobs=conf.get("jobs"))
        with _interrupt_note(out):
            figures = lab.measure()
            if burner:
                console.print("a lab run with a CPU burner started mid-run")
                lab.burner_block()
            lab.noop_build(options)
            if build:
                console.print("build overhead: invoke build, then bare configure && make")
                figures.build_overhead = benchlab.build_overhead(options)
        path = benchlab.write(figures, out)
    table = Table(title=f"bench-lab on {figures.python['label']} ({figures.host.get('cpu_model')}, "
                  f"{figures.host.get('cores')} cores)")
    for column in ("figure", "measured", "goal", ""):
        table.add_column(column, no_wrap=column != "figure")
    for row in benchlab.rows(figures):
        table.add_row(*row)
    console.print(table)
    for note in figures.notes:
        console.print(f"[yellow]note[/yellow]: {note}")
    console.print(f"written: {path}")


@contextmanager
def _interrupt_note(out: Path) -> Iterator[None]:
    try:
        yield
    except KeyboardInterrupt:
        raise Exit(f"Interrupted: bench-lab wrote nothing final; its runs so far are in {out}.",
                   code=130) from None


@task(
    help={
        "source": "An export archive (invoke export) or a run folder / run id to rerun here.",
        "allow_drift": "Run even when this checkout's experiments/ or build recipe differs "
        "from the original's (recorded as drift in the verdict).",
    },
)
def reproduce(c: Context, source: str, allow_drift: bool = False) -> None:
    """Rerun someone's run here and get a verdict per cell group: reproduced, faster,
    slower, status changed or not comparable. Exits 0 only when everything reproduced.
    Interrupted, it resumes when given the same source again."""
    import signal

    from rich.markup import escape

    from gilbench import archive, runfolder
    from gilbench import reproduce as reproducing
    from gilbench.build import BuildOptions
    from gilbench.console import RunProgress, console

    signal.signal(signal.SIGTERM, _terminated)
    conf = settings(c)
    with user_errors():
        given = Path(source).expanduser()
        results = ensure_dir(Path(conf["results_dir"]), "results folder",
                             "gilbench.results_dir (invoke.yaml or INVOKE_GILBENCH_RESULTS_DIR)")
        if given.is_file():
            if not archive.is_archive(given):
                raise GilbenchError(f"{given} is neither a gilbench export archive nor a run "
                                    "folder; give what `invoke export` wrote, or a run.")
            unpacked = archive.unpack(given.absolute(),
                                      results / "archives" / runfolder.new_run_id())
            original = unpacked.run_dir
        else:
            original = _run_dir(conf, source)
        options = BuildOptions(
            python=None, variant=conf["variant"], backend=conf["backend"],
            cache_dir=conf["cache_dir"], source_cache=conf["source_cache"],
            base_image=conf["base_image"], jobs=conf.get("jobs"))
        with RunProgress() as progress:
            here = reproducing.rerun(original, results, options, allow_drift, source,
                                     progress, console.print)
        outcome = reproducing.judge(original, here)
    for row in outcome.cells.itertuples():
        colour = "green" if row.verdict == "reproduced" else "yellow"
        console.print(f"[{colour}]{row.verdict:>15}[/{colour}]  {escape(str(row.cell))}: "
                      f"{escape(str(row.reason))}", highlight=False)
    for axis, name, first, now in outcome.differences:
        console.print(f"  differs [{axis}] {name}: {first} -> {now}", markup=False)
    console.print(reproducing.overall(outcome), markup=False)
    if reproducing.agreement(outcome):
        console.print(reproducing.agreement(outcome), markup=False)
    console.print(f"written: {outcome.paths[0]} and {outcome.paths[1]}")
    if not outcome.reproduced:
        raise Exit(code=1)


@task(
    name="k8s-manifest",
    help={
        "matrix": "Matrix name (experiments/matrices/NAME.toml) or path (default: "
        "gilbench.matrix).",
        "shards": "How many shards, one pod (Job completion index) each.",
        "image": "The image `invoke build` made, pushed where the cluster pulls from, e.g. "
        "registry.example.com/gilbench/cpython:3.12-pgo.",
        "output": "Folder for job.yaml, networkpolicy.yaml, collect.sh and plan.json "
        "(default: RESULTS/k8s/JOB-NAME).",
        "memory": "Each pod's memory, request = limit (default 2Gi).",
        "cpus": "Each pod's whole cores, request = limit (default: the matrix's largest "
        "worker count).",
        "parallelism": "Pods at once (default: every shard).",
        "name": "The Job's name (default: gilbench-MATRIX-<hash>).",
    },
)
def k8s_manifest(c: Context, shards: str = "", image: str = "", matrix: str = "",
                 output: str = "", memory: str = "2Gi", cpus: str = "",
                 parallelism: str = "", name: str = "") -> None:
    """Write a Kubernetes Indexed Job running a matrix's shards, and collect.sh, which
    turns the pods' logs into runs and merges them. Talks to no cluster."""
    import shlex
    import sys

    from gilbench import k8s
    from gilbench.console import console

    conf = settings(c)
    with user_errors():
        if not shards or not image:
            raise GilbenchError("k8s-manifest needs --shards N and --image IMAGE, e.g. "
                                "--shards 4 --image registry.example.com/gilbench/cpython:3.12.")
        options = k8s.Options(
            matrix=matrix or conf["matrix"], shards=_int_flag(shards, "shards", "4"),
            image=image.strip(), memory=memory,
            cpus=_int_flag(cpus, "cpus", "4") if cpus else None,
            parallelism=_int_flag(parallelism, "parallelism", "4") if parallelism else None,
            name=name or None)
        plan = k8s.plan(options, "invoke " + shlex.join(sys.argv[1:]))
        folder = (Path(output).expanduser() if output
                  else Path(conf["results_dir"]) / "k8s" / plan.name)
        written = k8s.write(plan, folder)
    cells = sum(len(run["cells"]) for run in plan.runs)
    console.print(f"[green]wrote[/green] Job {plan.name}: {cells} cells in {plan.shards} "
                  f"shards, {plan.cpus} cores and {plan.memory} per pod, "
                  f"{written.configmaps} ConfigMaps", highlight=False)
    for path in written.files:
        console.print(f"  {path}", markup=False, highlight=False)
    console.print(f"next: kubectl create -f {folder / 'job.yaml'}, then "
                  f"{folder / 'collect.sh'} once it completed", markup=False, highlight=False)


@task(
    name="import-records",
    help={
        "plan": "The plan.json that `invoke k8s-manifest` wrote.",
        "shard": "Which shard, 1..N (the pod's JOB_COMPLETION_INDEX + 1).",
        "log": "That pod's output (`kubectl logs POD > FILE`).",
    },
)
def import_records(c: Context, plan: str, shard: str, log: str) -> None:
    """Turn one Kubernetes pod's output into the run folder of its shard (collect.sh
    calls this for every index); what is missing is said, not fatal: merge names it."""
    from gilbench import k8s
    from gilbench.console import console

    conf = settings(c)
    with user_errors():
        chosen = k8s.read_plan(Path(plan).expanduser())
        index = _int_flag(shard, "shard", "1")
        try:
            text = Path(log).expanduser().read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise GilbenchError(f"--log {log} cannot be read ({exc.strerror or exc}); give "
                                "the file `kubectl logs` wrote.") from None
        ensure_dir(conf["results_dir"], "results folder",
                   "gilbench.results_dir (invoke.yaml or INVOKE_GILBENCH_RESULTS_DIR)")
        imported = k8s.import_shard(chosen, index, text, Path(conf["results_dir"]))
    colour = "green" if not (imported.missing or imported.exit_status) else "yellow"
    console.print(f"[{colour}]{imported.sentence(index, chosen.shards)}[/{colour}]",
                  highlight=False)


ns = Collection(build, doctor, experiment, report, advise, compare, export, merge, test,
                all_, bench_lab, reproduce, k8s_manifest, import_records)
ns.configure({"gilbench": DEFAULTS})

# `gilbench TASK` once installed (pip install .): the same tasks, from any folder.
program = Program(namespace=ns, name="gilbench", binary="gilbench", version="0.1.0")
