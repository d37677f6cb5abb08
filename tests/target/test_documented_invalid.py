"""Configs CPython's docs forbid still run, and every record of them names the rule."""

from __future__ import annotations

import itertools
from pathlib import Path

from tests.target.driver_runs import cell, import_catalog, run_driver

catalog = import_catalog()
FLAGS = ["use_main_obmalloc", "check_multi_interp_extensions", "allow_threads",
         "allow_daemon_threads", "allow_fork", "allow_exec"]  # fmt: skip


def test_the_rule_marks_exactly_own_gil_with_the_main_allocator() -> None:
    configs = [{"gil": gil, **dict(zip(FLAGS, values, strict=True))}
               for gil in ("own", "shared")
               for values in itertools.product([False, True], repeat=len(FLAGS))]
    marked = [c for c in configs if catalog.documented_invalid("subinterpreters", c)]
    assert len(configs) == 128 and len(marked) == 32  # the count
    assert all(c["gil"] == "own" and c["use_main_obmalloc"] for c in marked)
    # Defaults fill in: gil defaults to own, so the one flag is enough.
    assert catalog.documented_invalid("subinterpreters", {"use_main_obmalloc": True})
    assert not catalog.documented_invalid("subinterpreters", {})
    assert not catalog.documented_invalid("threads", {"use_main_obmalloc": True})


def test_records_of_a_documented_invalid_config_name_the_rule(
    target_python: Path, tmp_path: Path
) -> None:
    invalid = cell("bad", "subinterpreters", "fib", workload_params={"n": 15, "tasks": 2},
                   model_config={"gil": "own", "use_main_obmalloc": True}, timeout_s=60)
    fine = cell("good", "subinterpreters", "fib", workload_params={"n": 15, "tasks": 2},
                model_config={"gil": "shared", "use_main_obmalloc": True})
    records, _ = run_driver(target_python, [invalid, fine], tmp_path)
    bad = [r for r in records if r["cell_id"] == "bad"]
    good = [r for r in records if r["cell_id"] == "good"]
    assert len(bad) == 2 and len(good) == 2
    # Whatever went wrong (CPython may crash, deadlock or raise), the rule is named; a
    # repetition that survived keeps the empty message every ok record has.
    assert all(r["message"].startswith("documented invalid: use_main_obmalloc=1 must not")
               for r in bad if r["status"] != "ok"), [r["message"] for r in bad]
    assert all(r["message"] == "" for r in bad if r["status"] == "ok")
    assert all(r["status"] == "ok" and "documented invalid" not in r["message"] for r in good)
