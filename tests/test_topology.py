"""CPU topology from fake sysfs trees, and the placement policy the runners apply to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gilbench import topology
from gilbench.runners import place, placement_facts


def fake_sysfs(
    root: Path, cores: list[list[int]], nodes: list[list[int]] | None = None,
    siblings_file: str = "thread_siblings_list",
) -> Path:
    """A sysfs tree: cores as lists of sibling CPUs, nodes as lists of CPUs."""
    cpu_root = root / "devices" / "system" / "cpu"
    for core_id, members in enumerate(cores):
        for cpu in members:
            topo = cpu_root / f"cpu{cpu}" / "topology"
            topo.mkdir(parents=True)
            (topo / siblings_file).write_text(topology.format_cpulist(members) + "\n")
            (topo / "core_id").write_text(f"{core_id}\n")
            (topo / "physical_package_id").write_text("0\n")
    for node, members in enumerate(nodes or []):
        folder = root / "devices" / "system" / "node" / f"node{node}"
        folder.mkdir(parents=True)
        (folder / "cpulist").write_text(topology.format_cpulist(members) + "\n")
    return root


# 4 cores x 2 SMT threads, siblings numbered like Linux on x86 (cpu n and n+4), 2 nodes
SMT_CORES = [[0, 4], [1, 5], [2, 6], [3, 7]]
SMT_NODES = [[0, 1, 4, 5], [2, 3, 6, 7]]


@pytest.fixture
def smt(tmp_path: Path) -> topology.Topology:
    return topology.read(fake_sysfs(tmp_path, SMT_CORES, SMT_NODES))


def test_smt_host_with_two_numa_nodes(smt: topology.Topology) -> None:
    assert smt.cpus == set(range(8)) and smt.fallback == []
    assert smt.physical_cores() == 4
    assert smt.smt_siblings() == [(0, 4), (1, 5), (2, 6), (3, 7)]
    assert smt.nodes() == [0, 1] and smt.nodes({2, 7}) == [1]
    assert smt.physical_cores({0, 4}) == 1 and smt.physical_cores({0, 1}) == 2
    summary = smt.summary()
    assert summary == {"cpus": "0-7", "logical": 8, "physical_cores": 4, "smt": True,
                       "threads_per_core": 2, "numa_nodes": 2,
                       "core_cpus": ["0,4", "1,5", "2,6", "3,7"], "source": "sysfs"}


def test_placement_spreads_over_cores_before_siblings_and_stays_in_a_node(
    smt: topology.Topology,
) -> None:
    # one CPU of every core first (node 0's, then node 1's), then the siblings
    assert smt.placement() == [0, 1, 2, 3, 4, 5, 6, 7]
    assert smt.choose(None, 2) == [0, 1]  # two distinct cores, both in node 0
    assert smt.choose({0, 4, 1, 5}, 3) == [0, 1, 4]  # the sibling only once cores run out
    assert smt.one_per_core() == {0, 1, 2, 3}


def test_the_node_with_more_cores_comes_first(tmp_path: Path) -> None:
    topo = topology.read(fake_sysfs(tmp_path, SMT_CORES, [[0, 4], [1, 2, 3, 5, 6, 7]]))
    assert topo.placement() == [1, 2, 3, 0, 5, 6, 7, 4]
    assert topo.choose(None, 3) == [1, 2, 3]


def test_newer_kernels_name_siblings_core_cpus_list(tmp_path: Path) -> None:
    topo = topology.read(fake_sysfs(tmp_path, SMT_CORES, SMT_NODES, "core_cpus_list"))
    assert topo.physical_cores() == 4 and topo.fallback == []


def test_a_host_without_smt(tmp_path: Path) -> None:
    topo = topology.read(fake_sysfs(tmp_path, [[0], [1]], [[0, 1]]))
    assert topo.physical_cores() == 2 and topo.smt_siblings() == []
    assert topo.placement() == [0, 1] and topo.one_per_core() == {0, 1}
    assert topo.summary()["smt"] is False and topo.summary()["numa_nodes"] == 1


def test_core_id_and_package_name_siblings_without_a_list(tmp_path: Path) -> None:
    root = fake_sysfs(tmp_path, SMT_CORES, SMT_NODES)
    for path in root.rglob("thread_siblings_list"):
        path.unlink()
    topo = topology.read(root)
    assert topo.smt_siblings() == [(0, 4), (1, 5), (2, 6), (3, 7)] and topo.fallback == []


def test_missing_files_count_each_cpu_as_its_own_core(tmp_path: Path) -> None:
    # no sysfs at all (a sandbox): the CPUs asked about, each its own core, one node
    topo = topology.read(tmp_path / "nothing", cpus={0, 1, 2})
    assert topo.physical_cores() == 3 and topo.nodes() == [0]
    assert "CPU(s) 0-2" in topo.fallback[0] and "its own physical core" in topo.fallback[0]
    assert "one node" in topo.fallback[1]
    assert topo.summary()["source"].startswith("sysfs does not describe the core")
    # one CPU's topology folder gone: its sibling still names its core
    root = fake_sysfs(tmp_path / "partial", SMT_CORES, SMT_NODES)
    for path in (root / "devices/system/cpu/cpu4/topology").iterdir():
        path.unlink()
    partial = topology.read(root)
    assert partial.physical_cores() == 4 and partial.physical_cores({0, 4}) == 1
    assert partial.fallback == []
    # a CPU nobody describes counts alone, and the fallback says which
    lone = topology.read(root, cpus={1, 4, 9})
    assert lone.physical_cores() == 3 and lone.cores({9}) == [(9,)]
    assert "CPU(s) 4,9" in lone.fallback[0]  # cpu 0, which names 4, was not read


def test_cpulist_syntax() -> None:
    assert topology.parse_cpulist("0-3,8-11") == {0, 1, 2, 3, 8, 9, 10, 11}
    assert topology.parse_cpulist("0-6:2\n") == {0, 2, 4, 6}
    assert topology.parse_cpulist("") == set()
    for junk in ("a", "3-1", "0-4:0"):
        with pytest.raises(ValueError):
            topology.parse_cpulist(junk)
    assert topology.format_cpulist({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"


def test_a_recorded_topology_counts_cores_later(smt: topology.Topology) -> None:
    again = topology.from_summary(smt.summary())
    assert again is not None and again.physical_cores({0, 4, 1}) == 2
    assert topology.from_summary(None) is None
    assert topology.from_summary({"core_cpus": ["x"]}) is None


def test_default_placement_is_one_cpu_per_physical_core(smt: topology.Topology) -> None:
    every = set(range(8))
    assert place("", every, smt) == {0, 1, 2, 3}
    # two workers: both land on distinct physical cores of node 0
    assert place("", every, smt, max_workers=2) == {0, 1}
    # more workers than one node has cores: all the cores, across nodes
    assert place("", every, smt, max_workers=3) == {0, 1, 2, 3}
    facts = placement_facts({0, 1, 2, 3}, explicit=False, topo=smt)
    assert facts == {"physical_cores": 4, "smt_siblings": False, "numa_nodes": 2,
                     "placement": "one logical CPU per physical core"}


def test_an_explicit_cpuset_is_honoured_and_its_cores_counted(smt: topology.Topology) -> None:
    every = set(range(8))
    assert place("0,4", every, smt) == {0, 4}
    facts = placement_facts({0, 4}, explicit=True, topo=smt)
    assert facts["physical_cores"] == 1 and facts["smt_siblings"] is True
    assert facts["placement"] == "as given (--cpuset)"
    assert placement_facts({0, 1, 4, 5}, True, smt)["physical_cores"] == 2


def test_this_host_reads_without_error() -> None:
    topo = topology.read()
    summary = topo.summary()
    assert summary["physical_cores"] >= 1 and summary["logical"] >= summary["physical_cores"]


def test_doctor_shows_the_topology_and_warns_of_smt_siblings(tmp_path: Path) -> None:
    from gilbench import doctor

    root = fake_sysfs(tmp_path, SMT_CORES, SMT_NODES)
    check = doctor.check_topology(root, cpus=set(range(8)))
    assert check.status == "warn" and check.detail.startswith(
        "8 usable logical CPUs on 4 physical cores, SMT on, 2 NUMA nodes; SMT siblings share "
        "a core: 0,4, 1,5, 2,6 and 1 more")
    assert "one logical CPU per physical core" in check.fix
    quiet = doctor.check_topology(root, cpus={0, 1, 2, 3})
    assert (quiet.status, quiet.detail) == (
        "ok", "4 usable logical CPUs on 4 physical cores, SMT off, 2 NUMA nodes")
    bare = doctor.check_topology(tmp_path / "none", cpus={0, 1})
    assert bare.status == "ok" and "each counts as its own physical core" in bare.detail
