"""Placement, the first derivation: planned nodes and pod instances in, a node for every replica out.

The planner runs it once, when it reaches the first pod resource (every node
is planned by then: the derivation reads ``node`` and writes ``pod``). It
turns node values (``capacity``, ``labels``, ``schedulable``) and pod
instance values (the containers' ``resources`` requests, ``node_selector``,
``spread_by``, ``placement``, ``anti_affinity``) into the pure scheduler's
input (:mod:`orchdsl.scheduler`), with each replica's current node from the
state so that what still fits stays put. The chosen node becomes the pod's
``node`` value; a different node than the current one is a replacement
("moves from node.n3 to node.n1").

Values unknown at plan time count as "no constraint": an unknown request as
0, an unknown selector as none, an unknown capacity as unlimited.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..addrs import ResourceAddress
from ..diagnostics import Diagnostic
from ..eval.plain import contains_unknown
from ..scheduler import STRATEGIES, NodeInfo, Placement, PodRequest, schedule
from ..sdk.model import IMPLICIT_NODE, node_name
from .derive import Derived, DerivedInstance, Inputs, Summary

POD = "pod"
NODE = "node"


def _number(v: Any) -> float | None:
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _str_map(v: Any) -> dict[str, str]:
    if not isinstance(v, dict):
        return {}
    return {k: x for k, x in v.items() if isinstance(x, str)}


def node_info(address: ResourceAddress, values: dict[str, Any]) -> NodeInfo:
    cap = values.get("capacity")
    if not isinstance(cap, dict):
        cap = {}
    cpu = _number(cap.get("cpu"))
    memory = _number(cap.get("memory"))
    return NodeInfo(node_name(address), cpu, int(memory) if memory is not None else None,
                    _str_map(values.get("labels")), values.get("schedulable") is not False)


def requests(values: dict[str, Any]) -> tuple[float, int]:
    """A replica's request: the sum over its containers (limits do not count)."""
    cpu = 0.0
    memory = 0
    for c in values.get("container") or []:
        res = c.get("resources") if isinstance(c, dict) else None
        if not isinstance(res, dict):
            continue
        cpu += _number(res.get("cpu")) or 0.0
        memory += int(_number(res.get("memory")) or 0)
    return cpu, memory


def host_ports(values: dict[str, Any]) -> frozenset[str]:
    """The host ports a replica publishes ("8080/tcp"), known ones only."""
    out = set()
    for c in values.get("container") or []:
        ports = c.get("ports") if isinstance(c, dict) else None
        for p in ports if isinstance(ports, list) else []:
            if not isinstance(p, dict):
                continue
            port = _number(p.get("host_port"))
            if port is not None:
                proto = p.get("protocol")
                out.add(f"{int(port)}/{proto if isinstance(proto, str) else 'tcp'}")
    return frozenset(out)


def volumes_of(values: dict[str, Any]) -> tuple[str, ...]:
    """The volumes a replica mounts (known names)."""
    out = []
    for c in values.get("container") or []:
        for m in (c.get("mounts") if isinstance(c, dict) else None) or []:
            if isinstance(m, dict) and isinstance(m.get("volume"), str):
                out.append(m["volume"])
    return tuple(sorted(set(out)))


def pod_request(address: ResourceAddress, values: dict[str, Any], current_node: str | None) -> PodRequest:
    cpu, memory = requests(values)
    selector = values.get("node_selector")
    spread_by = values.get("spread_by")
    strategy = values.get("placement")
    return PodRequest(str(address), str(address.config), address.key if address.key is not None else 0,
                      cpu, memory,
                      node_selector=_str_map(selector) if not contains_unknown(selector) else {},
                      spread_by=spread_by if isinstance(spread_by, str) else None,
                      strategy=strategy if strategy in STRATEGIES else None,
                      current_node=current_node,
                      anti_affinity="hard" if values.get("anti_affinity") == "hard" else "soft",
                      host_ports=host_ports(values), volumes=volumes_of(values))


@dataclass
class PodPlacement:
    """The scheduler's answer as the planner uses it."""

    placement: Placement
    nodes: dict[str, NodeInfo] = field(default_factory=dict)
    current: dict[ResourceAddress, str] = field(default_factory=dict)  # replica -> node it runs on now
    lost: dict[str, str] = field(default_factory=dict)  # nodes the reconciler gave up on -> why

    def node_of(self, address: ResourceAddress) -> str | None:
        return self.placement.assignments.get(str(address))

    def move_reason(self, address: ResourceAddress) -> str | None:
        """Why a running replica changes node (None: it does not)."""
        was = self.current.get(address)
        now = self.node_of(address)
        if was is None or now is None or was == now:
            return None
        info = self.nodes.get(was)
        if was in self.lost:
            why = f"node.{was} is lost: {self.lost[was]}"
        elif info is None:
            why = f"node.{was} is no longer configured"
        elif not info.schedulable:
            why = f"node.{was} is cordoned"
        else:
            why = f"it no longer fits or matches node.{was}"
        return f"because the scheduler moves it from node.{was} to node.{now} ({why})"

    def summary(self) -> Summary:
        p = self.placement
        nodes = []
        for name in sorted(self.nodes):
            info = self.nodes[name]
            cpu, mem, count = p.usage.get(name, (0.0, 0, 0))
            nodes.append({"address": f"node.{name}", "name": name, "replicas": count,
                          "cpu": cpu, "cpu_capacity": info.cpu, "memory": mem, "memory_capacity": info.memory,
                          "schedulable": info.schedulable})
        data = {"placed": len(p.assignments),
                "moves": [{"address": a, "from": f"node.{f}", "to": f"node.{t}"} for a, f, t in p.moves],
                "unplaced": [d.address for d in p.errors], "nodes": nodes}
        return Summary("scheduler", p.summary(), data, frozenset(p.assignments))


def node_name_clashes(nodes: dict[ResourceAddress, Any]) -> list[Diagnostic]:
    """Node resources with one name (node.n[1] and node.n-1, or node.n1 in two modules): pods record their
    node by name and could not tell them apart. One error per later one, with its address."""
    owner: dict[str, ResourceAddress] = {}
    out = []
    for a in sorted(nodes):
        name = node_name(a)
        if name in owner:
            out.append(Diagnostic.error(
                "Duplicate node name", f'{a} and {owner[name]} are both named "{name}"; pods record '
                "their node by name, so orch cannot tell them apart.", address=str(a),
                hint="rename one of the node resources"))
        else:
            owner[name] = a
    return out


def pod_name_clashes(pods: dict[ResourceAddress, dict[str, Any]]) -> list[Diagnostic]:
    """Pod instances of one module with one name (pod.web["a"] and pod.web-a are both web-a): a provider names
    what it makes after them (the Docker provider, its containers), so two of them on one node would collide
    at apply, every time."""
    owner: dict[tuple[Any, str], ResourceAddress] = {}
    out = []
    for a, v in sorted(pods.items()):
        name = v.get("name")
        if not isinstance(name, str):
            continue
        first = owner.setdefault((a.module, name), a)
        if first != a:
            out.append(Diagnostic.error(
                "Duplicate pod name", f'{a} and {first} are both named "{name}": what is made for them (their '
                "containers) would take one name on a node.", address=str(a),
                hint="rename one of the pod resources, or change the for_each key"))
    return out


def duplicate_nodes(nodes: dict[ResourceAddress, dict[str, Any]]) -> list[Diagnostic]:
    """Node resources that reach one Docker engine (one address, say): the scheduler would count that host's
    capacity twice. One error per later duplicate, with its address."""
    from ..schema.node import describe_engine, engine_key

    seen: dict[tuple[Any, ...], ResourceAddress] = {}
    out = []
    for a, v in sorted(nodes.items()):
        key = engine_key(v)
        if key is None:
            continue
        first = seen.setdefault(key, a)
        if first != a:
            out.append(Diagnostic.error(
                "Duplicate node", f"{a} and {first} reach one Docker engine ({describe_engine(key)}): the "
                "scheduler would count that host's capacity twice and place pods on it as if on two hosts.",
                address=str(a), hint="remove one of the two node resources; two nodes need two hosts (or two "
                                     "Docker sockets)"))
    return out


def never_placeable(nodes: dict[ResourceAddress, dict[str, Any]], pods: dict[ResourceAddress, dict[str, Any]],
                    default_strategy: str) -> list[Diagnostic]:
    """Replicas no node can ever run, whatever else runs (for ``orch validate``, before any plan): each pod's
    replicas scheduled alone on empty nodes. A replica that fits nowhere there fits nowhere at plan either,
    when its pod's replicas all request the same (the greedy placement of equal requests is optimal); when
    they differ, only a replica that fits on no node even alone is reported. Nodes whose labels are not
    known yet give no verdict (nothing is reported); an unknown capacity counts as unlimited."""
    if any(contains_unknown(v.get("labels")) for v in nodes.values()):
        return []
    infos = [node_info(a, v) for a, v in sorted(nodes.items())]
    by_pod: dict[str, list[PodRequest]] = {}
    for a, v in sorted(pods.items()):
        req = pod_request(a, v, None)
        by_pod.setdefault(req.pod, []).append(req)
    out: list[Diagnostic] = []
    for reqs in by_pod.values():
        if _certainly_fits(infos, reqs):  # the common case, without building a scheduler per pod
            continue
        placement = schedule(infos, reqs, default_strategy=default_strategy)
        if not placement.errors:
            continue
        if len({(r.cpu, r.memory) for r in reqs}) == 1:
            out.extend(placement.errors)
            continue
        for err in placement.errors:
            alone = [r for r in reqs if r.address == err.address]
            out.extend(schedule(infos, alone, default_strategy=default_strategy).errors)
    return out


def _certainly_fits(infos: list[NodeInfo], reqs: list[PodRequest]) -> bool:
    """Whether a pod's replicas, all alike, fit on empty nodes: enough room counted per node (one replica a
    node under hard anti-affinity or with host ports). False means "schedule them to find out"."""
    first = reqs[0]
    if any((r.cpu, r.memory, r.node_selector, r.anti_affinity, r.host_ports) !=
           (first.cpu, first.memory, first.node_selector, first.anti_affinity, first.host_ports) for r in reqs):
        return False
    cpu, mem = round(first.cpu * 1000), int(first.memory)
    exclusive = first.anti_affinity == "hard" or bool(first.host_ports)
    slots = 0
    for n in infos:
        if not n.schedulable or any(n.labels.get(k) != v for k, v in first.node_selector.items()):
            continue
        room = len(reqs)
        if cpu > 0 and n.cpu is not None:
            room = min(room, round(n.cpu * 1000) // cpu)
        if mem > 0 and n.memory is not None:
            room = min(room, n.memory // mem)
        if room > 0:
            slots += 1 if exclusive else room
            if slots >= len(reqs):
                return True
    return False


def schedule_pods(nodes: dict[ResourceAddress, dict[str, Any]],
                  pods: dict[ResourceAddress, dict[str, Any]],
                  current: dict[ResourceAddress, str], default_strategy: str) -> PodPlacement:
    """Place ``pods`` (replica -> its planned values) on ``nodes`` (node -> its planned values).

    No nodes at all: the implicit :data:`IMPLICIT_NODE`, of unknown capacity."""
    infos: dict[str, NodeInfo] = {}
    clashes = node_name_clashes(nodes)
    clashing = {d.address for d in clashes}
    for a, v in sorted(nodes.items()):
        if str(a) not in clashing:
            info = node_info(a, v)
            infos[info.name] = info
    clashes += duplicate_nodes(nodes)
    if not nodes:
        infos[IMPLICIT_NODE] = NodeInfo(IMPLICIT_NODE, None, None)
    reqs = [pod_request(a, v, current.get(a)) for a, v in sorted(pods.items())]
    placement = schedule(list(infos.values()), reqs, default_strategy=default_strategy)
    placement.errors[:0] = clashes
    return PodPlacement(placement, infos, {a: n for a, n in current.items() if a in pods})


class PlacementDerivation:
    """The derivation the planner runs: every pod replica's ``node``, moves as replacements with reasons."""

    name = "placement"
    reads = frozenset({NODE})
    writes = frozenset({POD})
    produces: frozenset[str] = frozenset()

    def derive(self, inputs: Inputs) -> Derived:
        current = {a: v["node"] for a, v in inputs.current.items() if isinstance(v.get("node"), str)}
        strategy = inputs.settings.get("scheduler_strategy") or "spread"
        lost: dict[str, str] = dict(inputs.settings.get("lost_nodes") or {})
        nodes = {a: ({**v, "schedulable": False} if node_name(a) in lost else v) for a, v in inputs.read.items()}
        placed = schedule_pods(nodes, inputs.wanted, current, strategy)
        placed.lost = lost
        node_addr = {node_name(a): a for a in inputs.read}
        out = Derived(diagnostics=list(placed.placement.errors), summary=placed.summary())
        for addr in inputs.wanted:
            node = placed.node_of(addr)
            if node is None:
                continue
            dep = node_addr.get(node)
            out.instances[addr] = DerivedInstance({"node": node}, placed.move_reason(addr),
                                                  (dep,) if dep is not None else (), f"node.{node}")
        return out


PLACEMENT = PlacementDerivation()

__all__ = ["NODE", "PLACEMENT", "POD", "PodPlacement", "duplicate_nodes", "host_ports", "never_placeable",
           "node_info", "node_name_clashes", "pod_name_clashes", "pod_request", "requests", "schedule_pods"]
