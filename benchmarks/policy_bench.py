"""Network policy speed and size: 2,000 pod replicas (40 groups x 50) on 15 nodes, 500 policies.

Run by hand (pure Python, no lab):

    python benchmarks/policy_bench.py [--groups 40] [--replicas 50] [--nodes 15] [--policies 500] [--seed 1]

Pods: each group has an ``app`` label, a ``tier`` and a ``team`` drawn from a seeded RNG, one or two
declared ports; in a fifth of the groups a tenth of the replicas carry ``track=canary`` (replicas that differ:
"partial" cells). Replicas are spread over the nodes, each node's pods numbered in its /24 of 198.19.128.0/17.
Policies, as a team writes them: ingress allow-lists from an app, a tier or a team, with ports (some ranges);
egress allow-lists to a tier plus DNS to anywhere; per-team default-deny; cidr peers (an office range with an
exception, "anything but the pod range", and a node's /24, which covers some replicas of a group only).

Measured (median of --repeat runs): reading the values (``pods_from_values``, ``policies_from_values``),
``reachability`` (grouped), and ``node_policy_program`` for every node (the index is built on the first call
and reused for the others, as in a plan); also every node with its own index, for comparison. Then the size of
each node's program: pods, isolated pods, (pod x isolating policy) selections, the nft rules a compiler emits
(one per rule x peer x port entry) and set elements, and the same for a cluster twice as big with the same pods
per node and the same policies per group (rules per node stay, set elements grow with the cluster: no rule
grows with the square of it).
Writes benchmarks/out/policy_bench.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from orchdsl.addrs import ResourceAddress  # noqa: E402
from orchdsl.cluster.policy import (DIRECTIONS, PodInfo, Policy, PolicyIndex, node_policy_program,  # noqa: E402
                                    pods_from_values, policies_from_values, program_rule_count, reachability)

T = TypeVar("T")
TIERS = ("web", "api", "db", "cache", "batch")
TEAMS = tuple(f"team{i}" for i in range(8))


def make_pods(groups: int, replicas: int, nodes: int, rng: random.Random) -> dict[ResourceAddress, dict[str, Any]]:
    values: dict[ResourceAddress, dict[str, Any]] = {}
    next_host = [10] * nodes
    for g in range(groups):
        labels = {"app": f"g{g}", "tier": rng.choice(TIERS), "team": rng.choice(TEAMS)}
        ports: list[int | tuple[int, str]] = [rng.choice((80, 443, 5432, 6379, 8080, 9090))]
        if rng.random() < 0.3:
            ports.append(rng.choice(((53, "udp"), (8443, "tcp"))))
        canary = g % 5 == 0
        offset = rng.randrange(nodes)
        for i in range(replicas):
            n = (offset + i) % nodes
            host = next_host[n]
            next_host[n] += 1
            lb = dict(labels, **({"track": "canary"} if canary and i % 10 == 0 else {}))
            cports = [{"container_port": p, "protocol": "tcp"} if isinstance(p, int)
                      else {"container_port": p[0], "protocol": p[1]} for p in ports]
            assert host < 255, "too many pods per node for a /24"
            values[ResourceAddress("pod", f"g{g}", i)] = {
                "labels": lb, "ip": f"198.19.{128 + n}.{host}", "node": f"n{n + 1}",
                "container": [{"name": "app", "ports": cports}]}
    return values


def make_policies(count: int, groups: int, nodes: int, rng: random.Random
                  ) -> dict[ResourceAddress, dict[str, Any]]:
    out: dict[ResourceAddress, dict[str, Any]] = {}

    def selector() -> dict[str, str]:
        r = rng.random()
        if r < 0.6:
            return {"app": f"g{rng.randrange(groups)}"}
        if r < 0.8:
            return {"tier": rng.choice(TIERS)}
        if r < 0.95:
            return {"team": rng.choice(TEAMS)}
        return {"track": "canary"}

    def ports() -> list[dict[str, Any]]:
        r = rng.random()
        if r < 0.2:
            return []
        if r < 0.35:
            a = rng.choice((8000, 9000, 30000))
            return [{"port": a, "end_port": a + rng.choice((10, 100)), "protocol": "tcp"}]
        return [{"port": p, "protocol": "tcp"}
                for p in rng.sample((80, 443, 5432, 6379, 8080, 9090), rng.randint(1, 2))]

    def cidr_peer() -> dict[str, Any]:
        r = rng.random()
        if r < 0.4:
            return {"pod_selector": None, "cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}
        if r < 0.7:
            return {"pod_selector": None, "cidr": "0.0.0.0/0", "except": ["198.19.128.0/17"]}
        return {"pod_selector": None, "cidr": f"198.19.{128 + rng.randrange(nodes)}.0/24", "except": []}

    def peers() -> list[dict[str, Any]]:
        if rng.random() < 0.15:
            return [cidr_peer()]
        return [{"pod_selector": selector(), "cidr": None, "except": []} for _ in range(rng.randint(1, 2))]

    for k in range(count):
        r = rng.random()
        sel = {"app": f"g{rng.randrange(groups)}"} if rng.random() < 0.7 else selector()
        if r < 0.5:  # ingress allow-list
            v = {"pod_selector": sel, "policy_types": ["ingress"],
                 "ingress": [{"from": peers(), "ports": ports()} for _ in range(rng.randint(1, 2))], "egress": []}
        elif r < 0.8:  # egress allow-list + DNS
            v = {"pod_selector": sel, "policy_types": ["egress"], "ingress": [],
                 "egress": [{"to": peers(), "ports": ports()},
                            {"to": [], "ports": [{"port": 53, "protocol": "udp"}]}]}
        elif r < 0.9:  # both
            v = {"pod_selector": sel, "policy_types": ["ingress", "egress"],
                 "ingress": [{"from": peers(), "ports": ports()}], "egress": [{"to": peers(), "ports": ports()}]}
        else:  # a team's default deny
            v = {"pod_selector": {"team": rng.choice(TEAMS)}, "policy_types": ["ingress"], "ingress": [],
                 "egress": []}
        out[ResourceAddress("network_policy", f"p{k:03d}")] = v
    return out


def timed(fn: Callable[[], T], repeat: int) -> tuple[T, float, list[float]]:
    samples = []
    result: T | None = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - t0)
    assert result is not None
    return result, statistics.median(samples), samples


def node_table(pods: list[PodInfo], policies: list[Policy], nodes: list[str]) -> list[dict[str, Any]]:
    index = PolicyIndex(pods, policies)
    rows = []
    for n in nodes:
        prog = node_policy_program(n, pods, policies, index)
        local = [p for p in pods if p.node == n]
        selections = sum(len(index.isolating_policies(p, d)) for p in local for d in DIRECTIONS)
        rules = program_rule_count(prog)
        rows.append({"node": n, "pods": len(local), "isolated_pods": len(prog["pods"]), "selections": selections,
                     "rules": rules, "rules_per_selection": round(rules / selections, 2) if selections else 0.0,
                     "sets": len(prog["sets"]), "set_elements": sum(len(v) for v in prog["sets"].values())})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=40)
    ap.add_argument("--replicas", type=int, default=50)
    ap.add_argument("--nodes", type=int, default=15)
    ap.add_argument("--policies", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    pod_values = make_pods(args.groups, args.replicas, args.nodes, rng)
    pol_values = make_policies(args.policies, args.groups, args.nodes, rng)
    node_names = [f"n{i + 1}" for i in range(args.nodes)]

    (pods, policies), t_read, _ = timed(lambda: (pods_from_values(pod_values), policies_from_values(pol_values)),
                                        args.repeat)
    reach, t_reach, s_reach = timed(lambda: reachability(pods, policies), args.repeat)

    def all_nodes() -> dict[str, dict[str, Any]]:
        return {n: node_policy_program(n, list_pods, list_pols) for n in node_names}

    def all_nodes_fresh() -> dict[str, dict[str, Any]]:
        return {n: node_policy_program(n, pods, policies, PolicyIndex(pods, policies)) for n in node_names}

    samples_nodes = []
    programs: dict[str, dict[str, Any]] = {}
    for _ in range(args.repeat):  # new list objects each run: the first call builds the index
        list_pods, list_pols = list(pods), list(policies)
        t0 = time.perf_counter()
        programs = all_nodes()
        samples_nodes.append(time.perf_counter() - t0)
    t_nodes = statistics.median(samples_nodes)
    _, t_fresh, _ = timed(all_nodes_fresh, max(1, args.repeat // 2))

    # the Docker provider's compiler: each node's nftables table text (what `nft -f` loads), every node
    from orch_provider_docker import netrules

    def compile_all() -> dict[str, str]:
        return {n: netrules.render_table({
            "node": n, "namespace": "bench", "pod_cidr": "198.19.128.0/24", "cluster_cidr": "198.19.128.0/17",
            "services": [], "pods": [], "policy": programs[n]}) for n in node_names}

    tables, t_compile, _ = timed(compile_all, max(1, args.repeat // 2))
    table_bytes = sum(len(t) for t in tables.values())

    states: dict[str, int] = {}
    for row in reach.values():
        for st in row.values():
            states[st] = states.get(st, 0) + 1
    cells = sum(states.values())
    rows = node_table(pods, policies, node_names)

    # twice the cluster (groups, nodes and policies), the same pods and policies per node: per-node rules stay,
    # set elements grow with the cluster
    rng2 = random.Random(args.seed)
    big_pods = pods_from_values(make_pods(args.groups * 2, args.replicas, args.nodes * 2, rng2))
    big_pols = policies_from_values(make_policies(args.policies * 2, args.groups * 2, args.nodes * 2, rng2))
    big_rows = node_table(big_pods, big_pols, [f"n{i + 1}" for i in range(args.nodes * 2)])

    total = t_reach + t_nodes + t_compile
    print(f"pods {len(pods)} ({args.groups} groups x {args.replicas}), nodes {args.nodes}, policies {len(policies)}")
    print(f"read values                       {t_read * 1000:8.1f} ms")
    print(f"reachability (grouped)            {t_reach * 1000:8.1f} ms   {len(reach)} group pairs, {cells} cells: "
          + ", ".join(f"{k} {v}" for k, v in sorted(states.items())))
    print(f"node_policy_program, all nodes    {t_nodes * 1000:8.1f} ms   (one index, built on the first call)")
    print(f"  each node with its own index    {t_fresh * 1000:8.1f} ms")
    print(f"nft tables, all nodes (netrules)  {t_compile * 1000:8.1f} ms   {table_bytes / 1e6:.1f} MB of nft text")
    print(f"total (reach. + programs + nft)   {total * 1000:8.1f} ms   target <= 2000 ms: "
          f"{'ok' if total <= 2.0 else 'MISSED'}")
    print()
    head = f"{'node':>5} {'pods':>5} {'isolated':>8} {'selections':>10} {'rules':>6} {'rules/sel':>9} {'sets':>5} " \
           f"{'set elems':>9}"
    print(head)
    for r in rows:
        print(f"{r['node']:>5} {r['pods']:>5} {r['isolated_pods']:>8} {r['selections']:>10} {r['rules']:>6} "
              f"{r['rules_per_selection']:>9} {r['sets']:>5} {r['set_elements']:>9}")
    sel = [r["selections"] for r in rows]
    rul = [r["rules"] for r in rows]
    fit = sum(s * r for s, r in zip(sel, rul)) / sum(s * s for s in sel)  # least squares through 0
    resid = max(abs(r - fit * s) / r for s, r in zip(sel, rul) if r)
    print(f"rules ~ {fit:.2f} x selections (least squares through 0); largest deviation {resid:.0%}")

    def mean(xs: list[int]) -> float:
        return sum(xs) / len(xs)

    print()
    print(f"{'per node (mean)':>22} {'pods':>5} {'selections':>10} {'rules':>6} {'rules/sel':>9} {'set elems':>9}")
    for name, rs in (("1x", rows), ("2x groups/nodes/pols", big_rows)):
        sels, rls = mean([r["selections"] for r in rs]), mean([r["rules"] for r in rs])
        print(f"{name:>22} {mean([r['pods'] for r in rs]):>5.0f} {sels:>10.0f} {rls:>6.0f} {rls / sels:>9.2f} "
              f"{mean([r['set_elements'] for r in rs]):>9.0f}")

    out = HERE / "out"
    out.mkdir(exist_ok=True)
    data = {"pods": len(pods), "groups": args.groups, "replicas": args.replicas, "nodes": args.nodes,
            "policies": len(policies), "seed": args.seed, "repeat": args.repeat,
            "seconds": {"read": t_read, "reachability": t_reach, "node_programs": t_nodes,
                        "node_programs_fresh_index": t_fresh, "nft_tables": t_compile, "total": total},
            "nft_table_bytes": table_bytes,
            "reachability_samples": s_reach, "node_program_samples": samples_nodes,
            "reachability": {"group_pairs": len(reach), "cells": cells, "states": states},
            "nodes_table": rows, "rules_per_selection_fit": fit, "largest_deviation": resid,
            "double_cluster_nodes_table": big_rows,
            "program_sizes": {n: len(json.dumps(p)) for n, p in programs.items()}}
    (out / "policy_bench.json").write_text(json.dumps(data, indent=1) + "\n")
    print(f"\nwrote {out / 'policy_bench.json'}")


if __name__ == "__main__":
    main()
