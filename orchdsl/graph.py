"""The dependency graph: build it, report cycles, render it, and walk it concurrently.

Nodes are hashable keys (resource addresses, ``output.x``...); an edge
``a -> b`` means b depends on a (a is done first). Destroy walks the reverse
graph.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TypeVar

import networkx as nx

from .diagnostics import Diagnostic

OK, FAILED, SKIPPED, CANCELLED = "ok", "failed", "skipped", "cancelled"

N = TypeVar("N", bound=Hashable)  # the graph's node type


def build(dependencies: Mapping[N, Iterable[N]]) -> nx.DiGraph[N]:
    """A DAG from node -> the nodes it depends on (unknown dependencies are ignored)."""
    g: nx.DiGraph[N] = nx.DiGraph()
    g.add_nodes_from(dependencies)
    for node, deps in dependencies.items():
        for d in deps:
            if d in dependencies and d != node:
                g.add_edge(d, node)
    return g


def cycle_diagnostics(g: nx.DiGraph[N], where: Callable[[N], Diagnostic | None] | None = None
                      ) -> list[Diagnostic]:
    """One diagnostic per cycle, listing its members (with the range of the first when known)."""
    diags: list[Diagnostic] = []
    for cycle in nx.simple_cycles(g):
        names = [str(n) for n in cycle]
        detail = "These depend on each other: " + " -> ".join(names + names[:1]) + "."
        base = where(cycle[0]) if where else None
        d = Diagnostic.error("Cycle in dependencies", detail,
                             hint="remove one reference or depends_on entry of the cycle")
        if base is not None:
            d.subject, d.source = base.subject, base.source
        diags.append(d)
        if len(diags) >= 10:
            break
    return diags


def order(g: nx.DiGraph[N]) -> list[N]:
    """A deterministic topological order (ties broken by the nodes' string form)."""
    return list(nx.lexicographical_topological_sort(g, key=str))


def _display_order(g: nx.DiGraph[N]) -> list[N]:
    """Dependencies first; a graph with a cycle (reported apart) is still drawn, in name order."""
    try:
        return order(g)
    except nx.NetworkXUnfeasible:
        return sorted(g.nodes, key=str)


def to_dot(g: nx.DiGraph[N]) -> str:
    lines = ["digraph {", "  compound = \"true\"", "  newrank = \"true\"", "  subgraph \"root\" {"]
    for n in _display_order(g):
        lines.append(f'    "{n}" [label="{n}", shape="box"]')
    for a, b in sorted(g.edges, key=lambda e: (str(e[1]), str(e[0]))):
        lines.append(f'    "{b}" -> "{a}"')
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def to_mermaid(g: nx.DiGraph[N]) -> str:
    ids = {n: f"n{i}" for i, n in enumerate(_display_order(g))}
    lines = ["flowchart LR"]
    for n, i in ids.items():
        lines.append(f'  {i}["{n}"]')
    for a, b in sorted(g.edges, key=lambda e: (str(e[0]), str(e[1]))):
        lines.append(f"  {ids[a]} --> {ids[b]}")
    return "\n".join(lines) + "\n"


@dataclass
class WalkResult:
    outcome: dict[Hashable, str]
    errors: dict[Hashable, BaseException]


def walk(g: nx.DiGraph[N], visit: Callable[[N], None], parallelism: int = 10,
         stop: threading.Event | None = None) -> WalkResult:
    """Visit every node once its dependencies succeeded, up to ``parallelism`` at a time.

    A failed node's dependents are skipped; independent work goes on. When
    ``stop`` is set no new node starts, in-flight ones finish (Ctrl+C).
    """
    stop = stop or threading.Event()
    outcome: dict[Hashable, str] = {}
    errors: dict[Hashable, BaseException] = {}
    remaining = {n: g.in_degree(n) for n in g.nodes}
    # ready nodes in a heap by their string form (computed once per node): deterministic order, and
    # O(log n) per node instead of sorting the whole ready list after every completion
    ready: list[tuple[str, int, N]] = []
    seq = 0

    def push(node: N) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(ready, (str(node), seq, node))

    for n in g.nodes:
        if remaining[n] == 0:
            push(n)
    running: dict[Future[None], N] = {}

    def settle(node: N, result: str) -> None:
        outcome[node] = result
        for succ in g.successors(node):
            if result != OK:
                _skip(succ)
                continue
            remaining[succ] -= 1
            if remaining[succ] == 0 and succ not in outcome:
                push(succ)

    def _skip(node: N) -> None:
        stack = [node]
        while stack:
            n = stack.pop()
            if n in outcome:
                continue
            outcome[n] = SKIPPED
            stack.extend(g.successors(n))

    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        while ready or running:
            while ready and len(running) < parallelism and not stop.is_set():
                node = heapq.heappop(ready)[2]
                if node in outcome:
                    continue
                running[pool.submit(visit, node)] = node
            if not running:
                break
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in done:
                node = running.pop(fut)
                exc = fut.exception()
                if exc is None:
                    settle(node, OK)
                else:
                    errors[node] = exc
                    settle(node, FAILED)
    for n in g.nodes:
        outcome.setdefault(n, CANCELLED if stop.is_set() else SKIPPED)
    return WalkResult(outcome, errors)
