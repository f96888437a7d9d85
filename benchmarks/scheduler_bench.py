"""Scheduler speed: 10,000 replicas (1,000 pods x 10) on 500 nodes.

Run by hand (numbers go to docs/scheduling.md):

    python benchmarks/scheduler_bench.py [--pods 1000] [--replicas 10] [--nodes 500] [--repeat 3] [--seed 1]

Nodes: 3 zones, 4 sizes (4 to 32 cores), a `disk=ssd` label on a third of
them, 1 in 50 cordoned. Pods: varied requests (0.1 to 1 core, 64Mi to 1Gi),
a quarter select `disk=ssd`, a third spread over `zone`, a fifth binpack,
the rest least-allocated spread with soft anti-affinity. Measured: the first
placement (nothing runs), the re-plan with every replica's current_node set
to its placement (must be 0 moves), and a re-plan after cordoning 10 nodes
(a drain: only their replicas move); and a first placement on a third of
the nodes, where thousands of replicas fit nowhere (the error path).
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchdsl.scheduler import NodeInfo, PodRequest, schedule

GI = 2**30
MI = 2**20


def make_nodes(count: int, rng: random.Random) -> list[NodeInfo]:
    sizes = [(4, 16 * GI), (8, 32 * GI), (16, 64 * GI), (32, 128 * GI)]
    nodes = []
    for i in range(count):
        cpu, mem = sizes[i % len(sizes)]
        labels = {"zone": f"z{i % 3}"}
        if i % 3 == 1:
            labels["disk"] = "ssd"
        nodes.append(NodeInfo(f"n{i:04d}", cpu, mem, labels, schedulable=i % 50 != 49))
    rng.shuffle(nodes)
    return nodes


def make_pods(count: int, replicas: int, rng: random.Random) -> list[PodRequest]:
    pods = []
    for i in range(count):
        cpu = rng.choice([0.1, 0.25, 0.5, 1.0])
        mem = rng.choice([64, 128, 256, 512, 1024]) * MI
        selector = {"disk": "ssd"} if i % 4 == 0 else {}
        spread_by = "zone" if i % 3 == 0 else None
        strategy = "binpack" if i % 5 == 0 else None
        for r in range(replicas):
            pods.append(PodRequest(f"pod.p{i:04d}[{r}]", f"pod.p{i:04d}", r, cpu, mem, selector,
                                   spread_by, strategy, None))
    rng.shuffle(pods)
    return pods


def timed(fn, repeat: int):
    times = []
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--replicas", type=int, default=10)
    ap.add_argument("--nodes", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    nodes = make_nodes(a.nodes, rng)
    pods = make_pods(a.pods, a.replicas, rng)

    first, t_first = timed(lambda: schedule(nodes, pods), a.repeat)
    placed = [dataclasses.replace(p, current_node=first.assignments.get(p.address)) for p in pods]
    again, t_again = timed(lambda: schedule(nodes, placed), a.repeat)
    cordon = {n.name for n in sorted(nodes, key=lambda n: n.name)[:10]}
    drained_nodes = [dataclasses.replace(n, schedulable=False) if n.name in cordon else n for n in nodes]
    drained, t_drain = timed(lambda: schedule(drained_nodes, placed), a.repeat)
    few = sorted(nodes, key=lambda n: n.name)[: a.nodes // 3]
    over, t_over = timed(lambda: schedule(few, pods), a.repeat)
    on_cordoned = sum(1 for node in first.assignments.values() if node in cordon)

    rows = [
        ("first placement", t_first, len(first.assignments), len(first.moves), len(first.errors)),
        ("re-plan, all in place", t_again, len(again.assignments), len(again.moves), len(again.errors)),
        ("re-plan, 10 nodes cordoned", t_drain, len(drained.assignments), len(drained.moves),
         len(drained.errors)),
        (f"overloaded: {len(few)} nodes", t_over, len(over.assignments), len(over.moves), len(over.errors)),
    ]
    print(f"{len(pods)} replicas ({a.pods} pods x {a.replicas}) on {a.nodes} nodes, "
          f"median of {a.repeat}, Python {sys.version.split()[0]}")
    print(f"{'run':<28} {'seconds':>8} {'placed':>7} {'moves':>6} {'errors':>7}")
    for name, t, n, moves, errs in rows:
        print(f"{name:<28} {t:>8.3f} {n:>7} {moves:>6} {errs:>7}")
    print(f"(replicas on the cordoned nodes before the drain: {on_cordoned})")
    if again.moves:
        sys.exit("error: re-planning the same input moved replicas")


if __name__ == "__main__":
    main()
