"""Matrix files: expansion, stable cell ids, and one-sentence refusals naming the key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gilbench import matrix
from gilbench.errors import GilbenchError


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "m.toml"
    path.write_text(text)
    return str(path)


BASE = """
workers = [1, 2]
repetitions = 2
[models.sequential]
[models.subinterpreters]
gil = ["own", "shared"]
[workloads.fib]
n = [20, 22]
"""


def test_expansion_counts_and_defaults(tmp_path: Path) -> None:
    m = matrix.load(write(tmp_path, BASE))
    cells = matrix.expand(m, {"native:/py": "py"})
    # per n: sequential at 1 worker + 2 gil settings x 2 worker counts
    assert len(cells) == 2 * (1 + 2 * 2)
    sub = [c for c in cells if c["model"] == "subinterpreters"]
    assert {c["model_config"]["gil"] for c in sub} == {"own", "shared"}
    # unspecified flags take the catalog's defaults (CPython's isolated config)
    assert all(c["model_config"]["use_main_obmalloc"] is False for c in sub)
    assert all(c["workload_params"]["tasks"] == 8 for c in cells)
    assert all(c["repetitions"] == [0, 1] for c in cells)
    assert len({c["cell_id"] for c in cells}) == len(cells)


def test_cell_ids_are_stable_and_exclude_repetitions(tmp_path: Path) -> None:
    first = matrix.expand(matrix.load(write(tmp_path, BASE)), {"p": "p"})
    more = BASE.replace("repetitions = 2", "repetitions = 7")
    second = matrix.expand(matrix.load(write(tmp_path, more)), {"p": "p"})
    assert [c["cell_id"] for c in first] == [c["cell_id"] for c in second]
    other_python = matrix.expand(matrix.load(write(tmp_path, BASE)), {"q": "q"})
    assert not {c["cell_id"] for c in first} & {c["cell_id"] for c in other_python}


def test_excludes(tmp_path: Path) -> None:
    text = BASE + '\n[[exclude]]\nmodel = "subinterpreters"\ngil = "shared"\nworkers = 2\n'
    cells = matrix.expand(matrix.load(write(tmp_path, text)), {"p": "p"})
    assert len(cells) == 2 * (1 + 3)
    assert not [c for c in cells if c["model_config"].get("gil") == "shared" and c["workers"] == 2]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("workers = [1]\n[models.sequential]\n[workloads.fib]\n[extra]\n", "unknown key 'extra'"),
        ("[models.greenlets]\n[workloads.fib]\n", "'models.greenlets' is unknown; known: "),
        ("[models.threads]\n[workloads.sudoku]\n", "'workloads.sudoku' is unknown"),
        ("[models.threads]\ncolour = 1\n[workloads.fib]\n", "'models.threads.colour' is not a"),
        ("[models.threads]\n[workloads.fib]\nsize = 3\n", "'workloads.fib.size' is not a fib"),
        ("workers = [0]\n[models.threads]\n[workloads.fib]\n",
         "'workers' must be an integer from 1 to 1024, got 0"),
        ("workers = [100000]\n[models.threads]\n[workloads.fib]\n",
         "'workers' must be an integer from 1 to 1024, got 100000"),
        ("workers = []\n[models.threads]\n[workloads.fib]\n", "'workers' must list at least"),
        ("repetitions = 1000000000\n[models.threads]\n[workloads.fib]\n",
         "'repetitions' must be an integer from 1 to 10000, got 1000000000"),
        ("repetitions = 0\n[models.threads]\n[workloads.fib]\n",
         "'repetitions' must be an integer from 1 to 10000"),
        ("repetitions = 2.5\n[models.threads]\n[workloads.fib]\n",
         "'repetitions' must be an integer"),
        ("warmups = 1001\n[models.threads]\n[workloads.fib]\n",
         "'warmups' must be an integer from 0 to 1000"),
        ("warmups = -1\n[models.threads]\n[workloads.fib]\n",
         "'warmups' must be an integer from 0 to 1000"),
        ("timeout_s = nan\n[models.threads]\n[workloads.fib]\n", "'timeout_s' must be a number"),
        ("timeout_s = inf\n[models.threads]\n[workloads.fib]\n", "'timeout_s' must be a number"),
        ("timeout_s = -inf\n[models.threads]\n[workloads.fib]\n", "'timeout_s' must be a number"),
        ("timeout_s = 86401\n[models.threads]\n[workloads.fib]\n", "at most 86400 (one day)"),
        ("timeout_s = true\n[models.threads]\n[workloads.fib]\n", "'timeout_s' must be a number"),
        ("[models.subinterpreters]\ngil = \"maybe\"\n[workloads.fib]\n",
         "'model_config.gil' must be one of"),
        ("[models.threads]\n[workloads.fib]\nn = -1\n", "'workload_params.n' must be"),
        ("timeout_s = 0\n[models.threads]\n[workloads.fib]\n",
         "'timeout_s' must be a number of seconds above 0"),
        ("[workloads.fib]\n", "'models' must be a non-empty table"),
        ('order = "random"\n[models.threads]\n[workloads.fib]\n', "'order' must be one of"),
        ("this is = not toml ]", "is not valid TOML"),
    ],
)
def test_bad_matrices_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(GilbenchError) as err:
        matrix.expand(matrix.load(path), {"p": "p"})
    assert message in str(err.value)
    assert path in str(err.value)


def test_bounds_are_inclusive(tmp_path: Path) -> None:
    text = ("workers = [1, 1024]\nrepetitions = 10000\nwarmups = 1000\ntimeout_s = 86400\n"
            "[models.threads]\n[workloads.fib]\n")
    loaded = matrix.load(write(tmp_path, text))
    assert (loaded.workers, loaded.repetitions, loaded.warmups, loaded.timeout_s) == (
        [1, 1024], 10000, 1000, 86400.0)


def test_single_cell_refuses_nan_before_writing_json() -> None:
    with pytest.raises(GilbenchError, match=r"The command line .*'timeout_s' must be"):
        matrix.single_cell("threads", "fib", [1], {}, {}, 1, 0, float("nan"))


def test_matrix_not_utf8_is_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('description = "caf\u00e9"\n'.encode("latin-1"))
    with pytest.raises(GilbenchError, match=r"latin1.toml is not UTF-8 text \(byte 18"):
        matrix.load(str(path))


def test_matrix_path_that_is_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "m.toml"
    folder.mkdir()
    with pytest.raises(GilbenchError, match=r"is a folder; give a \.toml file"):
        matrix.load(str(folder))
    with pytest.raises(GilbenchError, match="is a folder"):
        matrix.load(str(tmp_path) + "/")


def test_unknown_matrix_name_lists_the_known() -> None:
    with pytest.raises(GilbenchError, match="no matrix named 'nope'; known: default, flags"):
        matrix.load("nope")


@pytest.mark.parametrize("name", ["quick", "default", "flags", "full"])
def test_shipped_matrices_expand(name: str) -> None:
    cells = matrix.expand(matrix.load(name), {"p": "p"})
    assert cells


def test_default_matrix_answers_the_question() -> None:
    m = matrix.load("default")
    assert set(m.models) == {"sequential", "threads", "processes", "subinterpreters",
                             "interpreter-pool"}
    assert m.models["subinterpreters"]["gil"] == ["own", "shared"]
    assert m.workers == [1, 2, 4] and m.repetitions >= 5
    assert {"fib", "io", "startup"} <= set(m.workloads)


@pytest.mark.parametrize("name", ["quick", "default", "flags", "full"])
def test_process_cells_always_name_their_start_method(name: str) -> None:
    # 3.14 made forkserver Linux's default: a cell that left it to the interpreter would
    # silently be a different experiment there. The default matrix states it outright.
    cells = [c for c in matrix.expand(matrix.load(name), {"p": "p"})
             if c["model"] == "processes"]
    assert all(c["model_config"]["start_method"] in ("fork", "spawn", "forkserver")
               for c in cells)
    if name == "default":
        assert matrix.load(name).models["processes"]["start_method"] == ["fork", "spawn"]


def test_flags_matrix_sweeps_every_subinterpreter_flag() -> None:
    from experiments import catalog

    m = matrix.load("flags")
    # Every PyInterpreterConfig field; `create` and `api` (how the lab makes them) are not.
    fields = set(catalog.MODELS["subinterpreters"]["config"]) - {"create", "api"}
    assert set(m.models["subinterpreters"]) == fields


def test_order_defaults_to_shuffled(tmp_path: Path) -> None:
    assert matrix.load(write(tmp_path, BASE)).order == "shuffled"
    assert matrix.load(write(tmp_path, 'order = "matrix"\n' + BASE)).order == "matrix"


def test_a_matrix_path_that_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "m.toml"
    os.mkfifo(fifo)
    for path in (str(fifo), "/dev/null"):
        with pytest.raises(GilbenchError, match="is not a regular file"):
            matrix.load(path)
