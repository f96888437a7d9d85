"""The pure scheduler: filters, scores, stability, determinism, diagnostics, summary."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter

import pytest

from orchdsl.scheduler import NodeInfo, PodRequest, schedule

GI = 2**30
MI = 2**20


def node(name: str, cpu: float = 4, memory: int = 8 * GI, schedulable: bool = True, **labels: str) -> NodeInfo:
    return NodeInfo(name, cpu, memory, labels, schedulable)


def replicas(name: str, n: int, cpu: float = 0.5, memory: int = 256 * MI, **kw) -> list[PodRequest]:
    return [PodRequest(f"pod.{name}[{i}]", f"pod.{name}", i, cpu, memory, **kw) for i in range(n)]


def one(name: str, cpu: float = 0.5, memory: int = 256 * MI, **kw) -> PodRequest:
    return PodRequest(f"pod.{name}", f"pod.{name}", 0, cpu, memory, **kw)


def in_place(pods: list[PodRequest], assignments: dict[str, str]) -> list[PodRequest]:
    return [dataclasses.replace(p, current_node=assignments.get(p.address)) for p in pods]


# -- filters -----------------------------------------------------------------------------------------

def test_fits_on_cpu_and_memory():
    nodes = [node("small", cpu=1, memory=GI), node("big", cpu=8, memory=16 * GI)]
    r = schedule(nodes, [one("cpu", cpu=2), one("mem", cpu=0.1, memory=2 * GI), one("tiny", cpu=0.1, memory=MI)])
    assert r.assignments["pod.cpu"] == "big"
    assert r.assignments["pod.mem"] == "big"
    assert r.ok


def test_requests_add_up_until_the_node_is_full():
    r = schedule([node("n1", cpu=2)], replicas("w", 5, cpu=0.5))
    assert sorted(r.assignments) == [f"pod.w[{i}]" for i in range(4)]
    assert [d.address for d in r.errors] == ["pod.w[4]"]
    assert r.usage["n1"] == (2.0, 4 * 256 * MI, 4)


def test_millicores_are_exact():
    r = schedule([node("n1", cpu=0.3)], replicas("w", 3, cpu=0.1))
    assert r.ok and len(r.assignments) == 3


def test_node_selector():
    nodes = [node("a", zone="a"), node("b", zone="b", disk="ssd"), node("c", zone="b")]
    r = schedule(nodes, replicas("db", 3, node_selector={"zone": "b", "disk": "ssd"})
                 + replicas("web", 4, node_selector={"zone": "b"}))
    assert {r.assignments[f"pod.db[{i}]"] for i in range(3)} == {"b"}
    assert {r.assignments[f"pod.web[{i}]"] for i in range(4)} <= {"b", "c"}


def test_cordoned_node_gets_nothing():
    r = schedule([node("n1", schedulable=False), node("n2")], replicas("w", 3))
    assert set(r.assignments.values()) == {"n2"}


def test_hard_anti_affinity_is_a_filter():
    nodes = [node("n1"), node("n2")]
    r = schedule(nodes, replicas("w", 3, anti_affinity="hard"))
    assert sorted(r.assignments.values()) == ["n1", "n2"]
    assert len(r.errors) == 1
    assert "node.n1 already runs a replica of pod.w (anti_affinity = hard)" in r.errors[0].detail


# -- scores ------------------------------------------------------------------------------------------

def test_spread_distributes_evenly():
    nodes = [node(f"n{i}") for i in range(4)]
    pods = [one(f"p{i}", cpu=0.25) for i in range(12)]
    r = schedule(nodes, pods)
    assert Counter(r.assignments.values()) == {f"n{i}": 3 for i in range(4)}


def test_spread_prefers_the_least_allocated_node():
    nodes = [node("n1"), node("n2")]
    existing = one("big", cpu=3, current_node="n1")
    r = schedule(nodes, [existing] + [one(f"p{i}", cpu=0.5) for i in range(3)])
    assert [r.assignments[f"pod.p{i}"] for i in range(3)] == ["n2", "n2", "n2"]


def test_binpack_fills_the_first_node_that_fits():
    nodes = [node("n3"), node("n1"), node("n2")]
    pods = [one(f"p{i}", cpu=1) for i in range(6)]
    r = schedule(nodes, pods, default_strategy="binpack")
    assert Counter(r.assignments.values()) == {"n1": 4, "n2": 2}


def test_binpack_prefers_the_fullest_node_that_fits():
    nodes = [node("n1"), node("n2"), node("n3")]
    pods = [one("a", cpu=3, current_node="n1"), one("b", cpu=1, current_node="n2"), one("c", cpu=2, strategy="binpack")]
    r = schedule(nodes, pods)
    assert r.assignments["pod.c"] == "n2"  # n1 (3 of 4) is fuller but has no room for 2 cores


def test_strategy_per_pod_overrides_the_default():
    nodes = [node("n1"), node("n2")]
    pods = [one("packed1", strategy="binpack"), one("packed2", strategy="binpack")]
    assert set(schedule(nodes, pods).assignments.values()) == {"n1"}
    assert set(schedule(nodes, pods[:1] + [one("x", strategy="spread")]).assignments.values()) == {"n1", "n2"}


def test_soft_anti_affinity_separates_replicas_when_possible():
    nodes = [node("n1"), node("n2"), node("n3")]
    r = schedule(nodes, replicas("w", 3, strategy="binpack"))
    assert sorted(r.assignments.values()) == ["n1", "n2", "n3"]  # despite binpack
    r = schedule(nodes, replicas("w", 5))
    assert Counter(r.assignments.values()) == {"n1": 2, "n2": 2, "n3": 1}


def test_soft_anti_affinity_falls_back_to_a_shared_node():
    nodes = [node("n1", cpu=4), node("n2", cpu=0.5)]
    r = schedule(nodes, replicas("w", 3, cpu=1))
    assert set(r.assignments.values()) == {"n1"} and r.ok


def test_topology_spread_over_a_label():
    nodes = [node("a1", zone="a"), node("a2", zone="a"), node("a3", zone="a"), node("b1", zone="b"),
             node("c1", zone="c")]
    r = schedule(nodes, replicas("w", 6, spread_by="zone"))
    zones = Counter(r.assignments[f"pod.w[{i}]"][0] for i in range(6))
    assert zones == {"a": 2, "b": 2, "c": 2}
    # without spread_by, anti-affinity alone would use the five nodes
    r = schedule(nodes, replicas("w", 6))
    assert len(set(r.assignments.values())) == 5


def test_topology_spread_counts_running_replicas_and_respects_the_selector():
    nodes = [node("a1", zone="a"), node("b1", zone="b"), node("c1", zone="c", tier="old")]
    pods = replicas("w", 4, spread_by="zone", node_selector={})
    pods[0] = dataclasses.replace(pods[0], current_node="a1")
    r = schedule(nodes, pods)
    # w[0] stays in a, w[1] and w[2] go to the empty zones, w[3] to a tie broken by node name
    assert r.assignments["pod.w[0]"] == "a1" and r.moves == []
    assert Counter(r.assignments.values()) == {"a1": 2, "b1": 1, "c1": 1}
    r = schedule(nodes, replicas("x", 4, spread_by="zone", node_selector={"tier": "old"}))
    assert set(r.assignments.values()) == {"c1"}


def test_nodes_without_the_spread_label_come_last():
    nodes = [node("a1", zone="a"), node("nolabel")]
    r = schedule(nodes, replicas("w", 2, spread_by="zone"))
    assert set(r.assignments.values()) == {"a1"}


def test_spread_by_node():
    nodes = [node("n1"), node("n2")]
    r = schedule(nodes, replicas("w", 4, spread_by="node", strategy="binpack"))
    assert Counter(r.assignments.values()) == {"n1": 2, "n2": 2}


# -- determinism and stability -----------------------------------------------------------------------

def _cluster(seed: int):
    rng = random.Random(seed)
    nodes = [node(f"n{i:02d}", cpu=rng.choice([2, 4, 8]), memory=rng.choice([4, 8]) * GI,
                  zone=f"z{i % 3}", **({"disk": "ssd"} if i % 2 else {})) for i in range(20)]
    pods = []
    for i in range(30):
        pods += replicas(f"p{i:02d}", rng.randint(1, 5), cpu=rng.choice([0.1, 0.5, 1]),
                         memory=rng.choice([64, 512]) * MI, spread_by="zone" if i % 3 == 0 else None,
                         strategy="binpack" if i % 4 == 0 else None,
                         node_selector={"disk": "ssd"} if i % 5 == 0 else {})
    return nodes, pods


@pytest.mark.parametrize("seed", range(5))
def test_same_placement_whatever_the_input_order(seed):
    nodes, pods = _cluster(seed)
    want = schedule(nodes, pods)
    rng = random.Random(seed)
    for _ in range(3):
        n2, p2 = nodes[:], pods[:]
        rng.shuffle(n2)
        rng.shuffle(p2)
        got = schedule(n2, p2)
        assert got.assignments == want.assignments
        assert [d.render() for d in got.errors] == [d.render() for d in want.errors]


@pytest.mark.parametrize("seed", range(3))
def test_replanning_in_place_moves_nothing(seed):
    nodes, pods = _cluster(seed)
    first = schedule(nodes, pods)
    again = schedule(nodes, in_place(pods, first.assignments))
    assert again.moves == [] and again.assignments == first.assignments


def test_adding_a_node_or_a_pod_never_moves_a_running_replica():
    nodes, pods = _cluster(7)
    first = schedule(nodes, pods)
    running = in_place(pods, first.assignments)
    more_nodes = nodes + [node("n99", cpu=64, memory=128 * GI, zone="z0", disk="ssd")]
    r = schedule(more_nodes, running + replicas("new", 5, spread_by="zone"))
    assert r.moves == []
    for p in running:
        if p.current_node:
            assert r.assignments[p.address] == p.current_node
    assert all(f"pod.new[{i}]" in r.assignments for i in range(5))


def test_drain_moves_only_the_cordoned_nodes_replicas():
    nodes = [node("n1"), node("n2"), node("n3")]
    pods = replicas("w", 6)
    first = schedule(nodes, pods)
    running = in_place(pods, first.assignments)
    cordoned = [dataclasses.replace(nodes[0], schedulable=False)] + nodes[1:]
    r = schedule(cordoned, running)
    on_n1 = sorted(a for a, n in first.assignments.items() if n == "n1")
    assert sorted(m[0] for m in r.moves) == on_n1
    assert all(m[1] == "n1" and m[2] in ("n2", "n3") for m in r.moves)
    for a, n in first.assignments.items():
        if n != "n1":
            assert r.assignments[a] == n


def test_displaced_by_vanished_node_selector_or_shrunk_capacity():
    pods = [one("gone", current_node="old"), one("sel", node_selector={"zone": "b"}, current_node="n1"),
            one("big", cpu=3, current_node="n1"), one("big2", cpu=3, current_node="n1")]
    r = schedule([node("n1", zone="a"), node("n2", zone="b")], pods)
    assert ("pod.gone", "old", "n2") in r.moves or ("pod.gone", "old", "n1") in r.moves
    assert ("pod.sel", "n1", "n2") in r.moves
    assert r.assignments["pod.big"] == "n1"  # first in (pod, index) order keeps its place
    assert ("pod.big2", "n1", "n2") in r.moves


def test_new_replicas_fill_up_without_moving_old_ones():
    nodes = [node("n1"), node("n2")]
    first = schedule(nodes, replicas("w", 2))
    r = schedule(nodes, in_place(replicas("w", 4), first.assignments))
    assert r.moves == [] and len(r.assignments) == 4


# -- diagnostics and summary ---------------------------------------------------------------------

def test_unschedulable_names_every_node_and_why():
    nodes = [node("n1", cpu=2, zone="b"), node("n2", zone="a"), node("n3", zone="b", schedulable=False),
             node("n4", cpu=8, memory=GI, zone="b")]
    pods = [one("hog", cpu=1.75, memory=GI, current_node="n1"),
            one("web", cpu=0.5, memory=2 * GI, node_selector={"zone": "b"})]
    r = schedule(nodes, pods)
    assert "pod.web" not in r.assignments
    [d] = r.errors
    assert d.is_error and d.address == "pod.web"
    assert d.summary == "No node can run pod.web"
    assert d.detail == (
        "pod.web requests 0.5 cpu and 2Gi memory; none of the 4 nodes can run it:\n"
        "  * Resources exhausted on 2 nodes\n"
        "  * Dimension cpu exhausted on 1 node\n"
        "  * Dimension memory exhausted on 1 node\n"
        "  * Label zone=b not matched on 1 node\n"
        "  * 1 node cordoned\n"
        "  - cpu exhausted on node.n1 (1.75 of 2 cores allocated, 0.5 requested)\n"
        "  - label zone=b not matched on node.n2 (it has zone=a)\n"
        "  - node.n3 is cordoned (schedulable = false)\n"
        "  - memory exhausted on node.n4 (0 of 1Gi allocated, 2Gi requested)")
    assert "Hint:" in d.render()


def test_nomad_summary_counts_dimensions():
    nodes = [node("n1", cpu=1), node("n2", cpu=1)]
    r = schedule(nodes, [one("big", cpu=2)])
    assert "Dimension cpu exhausted on 2 nodes" in r.errors[0].detail
    assert "label" not in r.errors[0].detail


def test_no_nodes_at_all():
    r = schedule([], [one("w")])
    assert "there are no nodes" in r.errors[0].detail


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        schedule([node("n1"), node("n1")], [])
    with pytest.raises(ValueError):
        schedule([node("n1")], [one("w"), one("w")])
    with pytest.raises(ValueError):
        schedule([node("n1")], [], default_strategy="random")


def test_summary_text():
    nodes = [node("n1", cpu=2, memory=4 * GI), node("n2", cpu=4, memory=8 * GI, schedulable=False)]
    r = schedule(nodes, [one("a", cpu=1.5, memory=GI), one("b", cpu=1, current_node="n2")])
    assert r.summary() == (
        "Scheduler dry-run:\n"
        "- WARNING: failed to place 1 replica; 1 placed.\n"
        "  NODE     PODS  CPU          MEMORY\n"
        "  node.n1  1     1.5/2 (75%)  1Gi/4Gi (25%)\n"
        "  node.n2  0     0/4 (0%)     0/8Gi (0%)     cordoned")
    ok = schedule(nodes[:1], [one("a", cpu=0.5, current_node="old")])
    assert ok.summary().splitlines()[1] == "- All 1 replica placed (1 moved)."


def test_every_unplaced_replica_has_its_own_error():
    nodes = [node("n1", cpu=1), node("n2", cpu=1, disk="ssd")]
    pods = replicas("w", 4, cpu=0.75) + replicas("x", 2, cpu=0.75, node_selector={"disk": "ssd"})
    r = schedule(nodes, pods)
    assert sorted(r.assignments) == ["pod.w[0]", "pod.w[1]"]
    assert [d.address for d in r.errors] == ["pod.w[2]", "pod.w[3]", "pod.x[0]", "pod.x[1]"]
    for d in r.errors:
        assert d.detail.startswith(f"{d.address} requests 0.75 cpu")
    assert "label disk=ssd not matched on node.n1 (no disk label)" in r.errors[2].detail
    assert "Dimension cpu exhausted on 2 nodes" in r.errors[0].detail


def test_long_reason_lists_are_cut():
    r = schedule([node(f"n{i:02d}", cpu=1) for i in range(40)], [one("big", cpu=2)])
    detail = r.errors[0].detail
    assert "Dimension cpu exhausted on 40 nodes" in detail
    assert detail.count("\n  - ") == 26 and detail.endswith("... and 15 more")


@pytest.mark.parametrize("seed", range(3))
def test_overloaded_cluster_is_deterministic(seed):
    nodes, pods = _cluster(seed)
    nodes = nodes[:4]
    want = schedule(nodes, pods)
    assert want.errors
    rng = random.Random(seed)
    n2, p2 = nodes[::-1], pods[:]
    rng.shuffle(p2)
    got = schedule(n2, p2)
    assert got.assignments == want.assignments
    assert [d.detail for d in got.errors] == [d.detail for d in want.errors]
    assert schedule(nodes, in_place(pods, want.assignments)).assignments == want.assignments


# -- pods requesting nothing, nodes of unknown size -----------------------------------------------------

def test_pods_requesting_nothing_still_spread():
    """Kubernetes scores a replica without requests as 0.1 cpu and 200Mi: different pods spread out."""
    nodes = [node("n1"), node("n2"), node("n3")]
    pods = [one(f"p{i}", cpu=0, memory=0) for i in range(6)]
    r = schedule(nodes, pods)
    assert Counter(r.assignments.values()) == {"n1": 2, "n2": 2, "n3": 2}
    assert r.usage["n1"][:2] == (0.0, 0)  # the defaults only score, they are not allocated
    packed = schedule(nodes, pods, default_strategy="binpack")
    assert set(packed.assignments.values()) == {"n1"}


def test_node_of_unknown_capacity_takes_any_request():
    r = schedule([NodeInfo("new", None, None)], [one("big", cpu=64, memory=512 * GI)])
    assert r.assignments == {"pod.big": "new"}
    assert r.summary().splitlines()[-1] == "  node.new  1     64/?  512Gi/?"


# -- volumes -----------------------------------------------------------------------------------------

def test_a_replica_holding_a_volume_stays_on_its_node_or_the_plan_stops():
    db = one("db", volumes=("pgdata",), current_node="n2")
    kept = schedule([node("n1"), node("n2")], [db])
    assert kept.assignments == {"pod.db": "n2"} and kept.ok
    # its node cordoned: an ordinary replica moves, this one does not, and says why
    moved = schedule([node("n1"), node("n2", schedulable=False)], [one("web", current_node="n2"), db])
    assert moved.assignments == {"pod.web": "n1"}
    [err] = moved.errors
    assert err.summary == "pod.db cannot move" and "volume.pgdata, whose data is on node.n2" in err.detail
    assert "cordoned" in err.detail and "remove the mount" in err.hint
    # its node gone from the configuration
    [gone] = schedule([node("n1")], [db]).errors
    assert "node.n2 is no longer configured" in gone.detail
    # a new replica with a volume is placed like any other (the volume is made where it lands)
    assert schedule([node("n1")], [one("db", volumes=("pgdata",))]).assignments == {"pod.db": "n1"}
