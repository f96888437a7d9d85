"""The pure scheduler: which node runs each pod replica.

No I/O and no configuration objects: the caller turns nodes and pod
instances into the two small records below and gets a :class:`Placement`
back. Same input, same placement, whatever the order of the sequences.

API::

    NodeInfo(name, cpu, memory, labels, schedulable=True)
        cpu: cores pods may request; memory: bytes; schedulable=False cordons
        the node (nothing new lands there, and what runs there is displaced:
        a drain).
    PodRequest(address, pod, index, cpu, memory, node_selector, spread_by,
               strategy, current_node, anti_affinity="soft", host_ports=frozenset())
        one replica, e.g. address "pod.web[3]", pod "pod.web", index 3;
        cpu/memory: the sum of its containers' requests; current_node: where
        it runs now (None: new); host_ports: "8080/tcp"... it publishes.
    schedule(nodes, pods, default_strategy="spread") -> Placement
    Placement.assignments  {address: node name} for every placed replica
    Placement.moves        [(address, from node, to node)] displaced replicas
    Placement.errors       [Diagnostic] one per replica that fits nowhere
    Placement.usage        {node name: (cpu cores used, memory bytes used, replicas)}
    Placement.summary()    the per-node table shown with the plan

How a replica is placed (Kubernetes' filter/score, Nomad's messages):

1. Stability first. Replicas with a ``current_node`` are considered first,
   sorted by (pod, index): one stays where it is when that node still passes
   the filters below given what already stays there. A vanished or cordoned
   node, a node no longer matching the selector, a node now too small, or a
   second replica on the node under hard anti-affinity displaces it.
2. The rest (new and displaced replicas) are placed one by one, sorted by
   (pod, index), so the result does not depend on input order.
3. Filter: the node is schedulable, has every ``node_selector`` label, has
   room for the request (cpu and memory, on requests, counting what is
   already placed), gives none of the replica's ``host_ports`` to another
   replica ("host port 8080/tcp already used on node.n1") and, with
   ``anti_affinity = "hard"``, runs no other replica of the same pod.
4. Score, compared in this order (lexicographically, lower wins):
   a. topology spread: with ``spread_by = KEY`` the replica goes to the
      value of node label KEY (e.g. a zone) holding the fewest replicas of
      its pod, among the values of eligible nodes; nodes without the label
      come last. ``spread_by = "node"`` spreads over nodes;
   b. anti-affinity (soft): a node running no replica of the pod beats one
      that does; among those that do, the one with the fewest;
   c. resources: ``spread`` (least allocated) prefers the node with the
      lowest cpu+memory share already allocated, ``binpack`` (most
      allocated) the highest: it fills a node before opening the next;
   d. the node name.
5. A replica that fits nowhere is not placed; its error names, per node,
   why (``cpu exhausted on node.n1 (1.75 of 2 cores allocated, 0.5
   requested)``) and sums up like Nomad (``Dimension cpu exhausted on 2
   nodes``).

Scaling down is the caller's business (it removes the highest indices and
does not pass them); the scheduler only places. Internally cpu is counted in
millicores so that sums are exact.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .diagnostics import Diagnostic
from .schema.quantities import format_memory

Strategy = Literal["spread", "binpack"]
_Selector = tuple[tuple[str, str], ...]  # node_selector items, sorted
STRATEGIES = ("spread", "binpack")
SPREAD_OVER_NODES = "node"
# Kubernetes' rule for scoring (not filtering): a replica requesting nothing counts as 0.1 cpu and 200Mi,
# so that pods without requests still spread instead of piling onto the first node by name.
SCORE_DEFAULT_MILLICPU = 100
SCORE_DEFAULT_MEMORY = 200 << 20
UNKNOWN_CAPACITY_MILLICPU = 1 << 40  # a node whose capacity is not known yet: every request fits
UNKNOWN_CAPACITY_MEMORY = 1 << 62
MAX_REASONS = 25  # per-node lines in one error; the summary counts all nodes


@dataclass(frozen=True)
class NodeInfo:
    """A node as the scheduler sees it: capacity for requests, labels, cordon."""

    name: str
    cpu: float | None  # None: not known (yet); every request fits
    memory: int | None
    labels: Mapping[str, str] = field(default_factory=dict)
    schedulable: bool = True


@dataclass(frozen=True)
class PodRequest:
    """One replica (pod instance) to place."""

    address: str
    pod: str
    index: int | str
    cpu: float
    memory: int
    node_selector: Mapping[str, str] = field(default_factory=dict)
    spread_by: str | None = None
    strategy: Strategy | None = None
    current_node: str | None = None
    anti_affinity: Literal["soft", "hard"] = "soft"
    # host ports it publishes, "8080/tcp": a node can give each to one replica (Kubernetes' NodePorts filter)
    host_ports: frozenset[str] = frozenset()
    # volumes it mounts: their data is on the node the replica runs on, so it never moves off it
    volumes: tuple[str, ...] = ()


@dataclass
class Placement:
    assignments: dict[str, str] = field(default_factory=dict)
    moves: list[tuple[str, str, str]] = field(default_factory=list)
    errors: list[Diagnostic] = field(default_factory=list)
    usage: dict[str, tuple[float, int, int]] = field(default_factory=dict)
    nodes: dict[str, NodeInfo] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        """Nomad-style dry-run: outcome, then per node replicas and cpu/memory allocated of capacity."""
        placed = len(self.assignments)
        lines = ["Scheduler dry-run:"]
        moved = f" ({len(self.moves)} moved)" if self.moves else ""
        if self.errors:
            lines.append(f"- WARNING: failed to place {len(self.errors)} replica"
                         f"{'s' if len(self.errors) != 1 else ''}; {placed} placed{moved}.")
        else:
            lines.append(f"- All {placed} replica{'s' if placed != 1 else ''} placed{moved}.")
        rows = [("NODE", "PODS", "CPU", "MEMORY", "")]
        for name in sorted(self.nodes):
            node = self.nodes[name]
            cpu, mem, n = self.usage.get(name, (0.0, 0, 0))
            rows.append((_node_ref(name), str(n),
                         f"{_cores(cpu)}/{_cores(node.cpu)} ({_pct(cpu, node.cpu)})" if node.cpu is not None
                         else f"{_cores(cpu)}/?",
                         f"{format_memory(mem)}/{format_memory(node.memory)} ({_pct(mem, node.memory)})"
                         if node.memory is not None else f"{format_memory(mem)}/?",
                         "" if node.schedulable else "cordoned"))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)) + ("  " + r[4] if r[4] else ""))
        return "\n".join(line.rstrip() for line in lines)


def _node_ref(name: str) -> str:
    return name if name.startswith("node.") else f"node.{name}"


def _cores(c: float) -> str:
    return f"{c:.3f}".rstrip("0").rstrip(".")


def _pct(used: float, cap: float) -> str:
    return f"{round(100 * used / cap)}%" if cap else "-"


def _index_key(i: int | str) -> tuple[int, int, str]:
    return (0, i, "") if isinstance(i, int) else (1, 0, i)


class _Node:
    """Running totals of one node during a schedule() call."""

    __slots__ = ("cap_cpu", "cap_mem", "count", "cpu", "heaps", "info", "mem", "name", "ref", "score_cpu",
                 "score_mem", "version")

    def __init__(self, info: NodeInfo):
        self.info = info
        self.name = info.name
        self.ref = _node_ref(info.name)
        self.cap_cpu = round(info.cpu * 1000) if info.cpu is not None else UNKNOWN_CAPACITY_MILLICPU
        self.cap_mem = info.memory if info.memory is not None else UNKNOWN_CAPACITY_MEMORY
        self.cpu = 0  # millicores requested by what is placed here
        self.mem = 0
        self.score_cpu = 0  # the same with the scoring defaults for replicas requesting nothing
        self.score_mem = 0
        self.count = 0
        self.version = 0
        self.heaps: list[_Heap] = []

    def fits(self, cpu: int, mem: int) -> bool:
        return self.cpu + cpu <= self.cap_cpu and self.mem + mem <= self.cap_mem

    def allocated(self) -> float:
        """Share of cpu plus share of memory already requested (0 = empty, 2 = full)."""
        a = self.score_cpu / self.cap_cpu if self.cap_cpu else (0.0 if not self.score_cpu else 1.0)
        return a + (self.score_mem / self.cap_mem if self.cap_mem else (0.0 if not self.score_mem else 1.0))


class _Heap:
    """Candidate nodes of one (selector, strategy, topology domain), best score first.

    Entries are (score, name, version, node); an entry whose version is not
    the node's current one is stale and dropped when met. Every change of a
    node pushes a fresh entry into each heap it belongs to.

    A node met on top of the heap without room for a request is *parked*
    (taken out of the heap) rather than popped and pushed back at every
    query: under binpack the full nodes are exactly the best scored ones.
    Nodes only fill up while replicas are placed, so a parked node is
    looked at again only for a request no larger than the most free cpu
    and memory among parked nodes.
    """

    __slots__ = ("binpack", "entries", "free_cpu", "free_mem", "parked")

    def __init__(self, nodes: list[_Node], binpack: bool):
        self.binpack = binpack
        self.entries = [(self.score(n), n.name, n.version, n) for n in nodes]
        heapq.heapify(self.entries)
        self.parked: list[tuple[float, str, int, _Node]] = []
        self.free_cpu = self.free_mem = -1  # upper bounds over parked nodes
        for n in nodes:
            n.heaps.append(self)

    def score(self, n: _Node) -> float:
        return -n.allocated() if self.binpack else n.allocated()

    def push(self, n: _Node) -> None:
        heapq.heappush(self.entries, (self.score(n), n.name, n.version, n))

    def best(self, cpu: int, mem: int, avoid: Mapping[str, int]) -> tuple[float, str, int, _Node] | None:
        """The best entry that fits and whose node is not in ``avoid``; nothing is consumed."""
        entries = self.entries
        aside = []
        found = None
        while entries:
            e = heapq.heappop(entries)
            n = e[3]
            if e[2] != n.version:
                continue
            if n.name in avoid:
                aside.append(e)
            elif not n.fits(cpu, mem):
                self.parked.append(e)
                self.free_cpu = max(self.free_cpu, n.cap_cpu - n.cpu)
                self.free_mem = max(self.free_mem, n.cap_mem - n.mem)
            else:
                found = e
                aside.append(e)
                break
        for e in aside:
            heapq.heappush(entries, e)
        if self.parked and cpu <= self.free_cpu and mem <= self.free_mem:
            keep = []
            free_cpu = free_mem = -1
            for e in self.parked:
                n = e[3]
                if e[2] != n.version:
                    continue  # changed since: its fresh entry is in the heap
                keep.append(e)
                free_cpu = max(free_cpu, n.cap_cpu - n.cpu)
                free_mem = max(free_mem, n.cap_mem - n.mem)
                if n.name not in avoid and n.fits(cpu, mem) and (found is None or e[:2] < found[:2]):
                    found = e
            self.parked, self.free_cpu, self.free_mem = keep, free_cpu, free_mem
        return found


class _Scheduler:
    def __init__(self, nodes: Sequence[NodeInfo], default_strategy: str):
        if default_strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {default_strategy!r}; use spread or binpack")
        self.default_strategy = default_strategy
        self.nodes: dict[str, _Node] = {}
        for info in sorted(nodes, key=lambda n: n.name):
            if info.name in self.nodes:
                raise ValueError(f"node {info.name!r} appears twice")
            self.nodes[info.name] = _Node(info)
        self.eligible_cache: dict[_Selector, list[_Node]] = {}
        self.heaps: dict[tuple[_Selector, bool, str | None, str | None], _Heap] = {}
        self.domains_cache: dict[tuple[_Selector, str], list[str | None]] = {}
        # per pod: replicas per node name, and per (spread key) replicas per domain
        self.on_node: dict[str, dict[str, int]] = defaultdict(dict)
        self.in_domain: dict[tuple[str, str], dict[str | None, int]] = defaultdict(dict)
        self.port_users: dict[str, dict[str, str]] = {}  # host port -> node name -> the replica using it
        self.generation = 0  # placements so far: a failure stays a failure until this changes

    # -- filters -------------------------------------------------------------------------------

    def eligible(self, selector: _Selector) -> list[_Node]:
        """Schedulable nodes having every selector label, by name."""
        got = self.eligible_cache.get(selector)
        if got is None:
            got = [n for n in self.nodes.values() if n.info.schedulable
                   and all(n.info.labels.get(k) == v for k, v in selector)]
            self.eligible_cache[selector] = got
        return got

    @staticmethod
    def domain(n: _Node, key: str) -> str | None:
        return n.name if key == SPREAD_OVER_NODES else n.info.labels.get(key)

    def heap(self, selector: _Selector, binpack: bool, key: str | None, dom: str | None) -> _Heap:
        hk = (selector, binpack, key, dom)
        h = self.heaps.get(hk)
        if h is None:
            nodes = self.eligible(selector)
            if key is not None:
                nodes = [n for n in nodes if self.domain(n, key) == dom]
            h = _Heap(nodes, binpack)
            self.heaps[hk] = h
        return h

    def domains(self, selector: _Selector, key: str) -> list[str | None]:
        dk = (selector, key)
        got = self.domains_cache.get(dk)
        if got is None:
            got = sorted({self.domain(n, key) for n in self.eligible(selector)},
                         key=lambda d: (d is None, d or ""))
            self.domains_cache[dk] = got
        return got

    # -- bookkeeping ---------------------------------------------------------------------------

    def add(self, p: PodRequest, n: _Node, cpu: int, mem: int) -> None:
        n.cpu += cpu
        n.mem += mem
        n.score_cpu += cpu or SCORE_DEFAULT_MILLICPU
        n.score_mem += mem or SCORE_DEFAULT_MEMORY
        n.count += 1
        n.version += 1
        self.generation += 1
        for h in n.heaps:
            h.push(n)
        counts = self.on_node[p.pod]
        counts[n.name] = counts.get(n.name, 0) + 1
        for port in p.host_ports:
            self.port_users.setdefault(port, {})[n.name] = p.address
        if p.spread_by:
            dc = self.in_domain[(p.pod, p.spread_by)]
            d = self.domain(n, p.spread_by)
            dc[d] = dc.get(d, 0) + 1

    def port_taken(self, p: PodRequest, node: str) -> tuple[str, str] | None:
        """The first host port of ``p`` already used on ``node``, and by which replica."""
        for port in sorted(p.host_ports):
            by = self.port_users.get(port, {}).get(node)
            if by is not None:
                return port, by
        return None

    # -- choosing ------------------------------------------------------------------------------

    def choose(self, p: PodRequest, cpu: int, mem: int) -> _Node | None:
        selector = tuple(sorted(p.node_selector.items()))
        binpack = (p.strategy or self.default_strategy) == "binpack"
        hard = p.anti_affinity == "hard"
        mine = self.on_node[p.pod]
        blocked = {n for port in p.host_ports for n in self.port_users.get(port, {})}
        avoid: Mapping[str, int] = mine if not blocked else {**mine, **dict.fromkeys(blocked, 0)}
        key = p.spread_by if p.spread_by and p.spread_by != SPREAD_OVER_NODES else None
        if key is None:
            # spreading over nodes is anti-affinity with counts: the same order of preference
            groups: list[list[str | None]] = [[None]]
        else:
            dc = self.in_domain[(p.pod, key)]
            ranked = sorted(self.domains(selector, key), key=lambda d: (d is None, dc.get(d, 0), d or ""))
            groups = []
            last = None
            for d in ranked:
                rank = (d is None, dc.get(d, 0))
                if rank != last:
                    groups.append([])
                    last = rank
                groups[-1].append(d)
        for group in groups:
            best = None
            for d in group:
                e = self.heap(selector, binpack, key, d).best(cpu, mem, avoid)
                if e is not None and (best is None or e[:2] < best[:2]):
                    best = e
            if best is not None:
                return best[3]
            if hard or not mine:
                continue
            # soft anti-affinity: a node already running this pod, the fewest replicas of it first
            members = set(group)
            fallback = None
            for name, count in mine.items():
                n = self.nodes[name]
                if not n.info.schedulable or not n.fits(cpu, mem) or name in blocked or \
                        any(n.info.labels.get(k) != v for k, v in selector) or \
                        (key is not None and self.domain(n, key) not in members):
                    continue
                preference = (count, -n.allocated() if binpack else n.allocated(), name)
                if fallback is None or preference < fallback[0]:
                    fallback = (preference, n)
            if fallback is not None:
                return fallback[1]
        return None

    # -- why not -------------------------------------------------------------------------------

    def why_not(self, p: PodRequest, cpu: int, mem: int) -> str:
        """Why no node can take this request now: Nomad-like counts, then the reason on each node."""
        reasons: list[str] = []
        counts: dict[str, int] = defaultdict(int)
        exhausted = 0
        mine = self.on_node[p.pod]
        for n in self.nodes.values():
            info = n.info
            if not info.schedulable:
                reasons.append(f"{n.ref} is cordoned (schedulable = false)")
                counts["cordoned"] += 1
                continue
            missing = [(k, v) for k, v in sorted(p.node_selector.items()) if info.labels.get(k) != v]
            if missing:
                k, v = missing[0]
                has = info.labels.get(k)
                reasons.append(f"label {k}={v} not matched on {n.ref} "
                               f"({f'it has {k}={has}' if has is not None else f'no {k} label'})")
                counts[f"label {k}={v} not matched"] += 1
                continue
            if p.anti_affinity == "hard" and n.name in mine:
                reasons.append(f"{n.ref} already runs a replica of {p.pod} (anti_affinity = hard)")
                counts["anti-affinity"] += 1
                continue
            taken = self.port_taken(p, n.name)
            if taken is not None:
                reasons.append(f"host port {taken[0]} already used on {n.ref} (by {taken[1]})")
                counts[f"host port {taken[0]}"] += 1
                continue
            dims = []
            if n.cpu + cpu > n.cap_cpu:
                dims.append("cpu")
                reasons.append(f"cpu exhausted on {n.ref} ({_cores(n.cpu / 1000)} of {_cores(n.cap_cpu / 1000)}"
                               f" cores allocated, {_cores(cpu / 1000)} requested)")
            if n.mem + mem > n.cap_mem:
                dims.append("memory")
                reasons.append(f"memory exhausted on {n.ref} ({format_memory(n.mem)} of "
                               f"{format_memory(n.cap_mem)} allocated, {format_memory(mem)} requested)")
            for d in dims:
                counts[f"Dimension {d} exhausted"] += 1
            if dims:
                exhausted += 1
            else:  # only reachable if scoring and filtering disagree: say so rather than hide it
                reasons.append(f"{n.ref} passed every filter")
        total = len(self.nodes)
        summary_lines = []
        if exhausted:
            summary_lines.append(f"Resources exhausted on {_nodes(exhausted)}")
        for what in sorted(k for k in counts if k.startswith("Dimension")):
            summary_lines.append(f"{what} on {_nodes(counts[what])}")
        for what in sorted(k for k in counts if k.startswith("label")):
            summary_lines.append(f"{what[0].upper()}{what[1:]} on {_nodes(counts[what])}")
        for what in sorted(k for k in counts if k.startswith("host port")):
            summary_lines.append(f"H{what[1:]} already used on {_nodes(counts[what])}")
        if counts["anti-affinity"]:
            summary_lines.append(f"Anti-affinity (hard) filtered {_nodes(counts['anti-affinity'])}")
        if counts["cordoned"]:
            summary_lines.append(f"{_nodes(counts['cordoned'])} cordoned")
        shown = reasons[:MAX_REASONS]
        if len(reasons) > MAX_REASONS:
            shown.append(f"... and {len(reasons) - MAX_REASONS} more")
        return ((f"none of the {_nodes(total)} can run it:" if total else "there are no nodes.")
                + "".join(f"\n  * {s}" for s in summary_lines)
                + "".join(f"\n  - {r}" for r in shown))


def _nodes(n: int) -> str:
    return f"{n} node{'s' if n != 1 else ''}"


def _unplaced(p: PodRequest, cpu: int, mem: int, why: str) -> Diagnostic:
    return Diagnostic.error(
        f"No node can run {p.address}",
        f"{p.address} requests {_cores(cpu / 1000)} cpu and {format_memory(mem)} memory; {why}",
        address=p.address,
        hint="lower the requests, add or uncordon nodes, or relax node_selector"
             + (", or publish another host port" if p.host_ports else "")
             + "; nothing was placed for this replica.")


def _held(p: PodRequest, n: Any) -> Diagnostic:
    """A replica whose volumes' data is on a node it can no longer run on: it does not move, the plan stops."""
    where = f"node.{p.current_node}"
    if n is None:
        why = f"{where} is no longer configured"
    elif not n.info.schedulable:
        why = f"{where} is cordoned or lost"
    else:
        why = f"it no longer fits or matches {where}"
    vols = ", ".join(f"volume.{v}" for v in p.volumes)
    return Diagnostic.error(
        f"{p.address} cannot move", f"{p.address} mounts {vols}, whose data is on {where}, and {why}: a replica "
        "holding a volume never moves off its node (its data would stay behind).", address=p.address,
        hint=f"make {where} usable again (uncordon it, free room, restore its labels), or remove the mount to let "
             "the replica start empty elsewhere")


def _requests(p: PodRequest) -> tuple[int, int]:
    return round(p.cpu * 1000), int(p.memory)


def schedule(nodes: Sequence[NodeInfo], pods: Sequence[PodRequest], default_strategy: str = "spread") -> Placement:
    """Place every replica of ``pods`` on ``nodes``; see the module docstring for the rules."""
    s = _Scheduler(nodes, default_strategy)
    order = sorted(pods, key=lambda p: (p.pod, _index_key(p.index), p.address))
    seen: set[str] = set()
    for p in order:
        if p.address in seen:
            raise ValueError(f"replica {p.address!r} appears twice")
        if p.strategy is not None and p.strategy not in STRATEGIES:
            raise ValueError(f"{p.address}: unknown strategy {p.strategy!r}; use spread or binpack")
        seen.add(p.address)
    result = Placement(nodes={n.name: n.info for n in s.nodes.values()})
    pending: list[PodRequest] = []
    for p in order:  # stability first: keep whatever still passes the filters where it runs
        n = s.nodes.get(p.current_node) if p.current_node is not None else None
        cpu, mem = _requests(p)
        if n is not None and n.info.schedulable and n.fits(cpu, mem) \
                and all(n.info.labels.get(k) == v for k, v in p.node_selector.items()) \
                and not (p.anti_affinity == "hard" and n.name in s.on_node[p.pod]) \
                and s.port_taken(p, n.name) is None:
            s.add(p, n, cpu, mem)
            result.assignments[p.address] = n.name
        else:
            pending.append(p)
    # Whether a replica fits anywhere depends only on its request, selector and (hard anti-affinity)
    # its pod: after a failure, the same question fails again until something is placed.
    failed: tuple[tuple[int, int, _Selector, str | None, frozenset[str]], int, str] | None = None
    for p in pending:
        cpu, mem = _requests(p)
        if p.volumes and p.current_node is not None:
            result.errors.append(_held(p, s.nodes.get(p.current_node)))
            continue
        question = (cpu, mem, tuple(sorted(p.node_selector.items())), p.pod if p.anti_affinity == "hard" else None,
                    p.host_ports)
        if failed is not None and failed[:2] == (question, s.generation):
            result.errors.append(_unplaced(p, cpu, mem, failed[2]))
            continue
        n = s.choose(p, cpu, mem)
        if n is None:
            why = s.why_not(p, cpu, mem)
            failed = (question, s.generation, why)
            result.errors.append(_unplaced(p, cpu, mem, why))
            continue
        s.add(p, n, cpu, mem)
        result.assignments[p.address] = n.name
        if p.current_node is not None and p.current_node != n.name:
            result.moves.append((p.address, p.current_node, n.name))
    result.usage = {n.name: (n.cpu / 1000, n.mem, n.count) for n in s.nodes.values()}
    return result


__all__ = ["NodeInfo", "Placement", "PodRequest", "Strategy", "schedule"]
