"""Services, the third derivation: endpoints of every service and each node's service program.

A service's endpoints are the ready replicas of the pods its selector matches (all its labels, like a
Kubernetes Service's selector): a replica without a health check is ready when it runs, one with a check when
it is healthy; a replica created or changed by this apply counts as ready (its health is not observed yet).
Every node with a pod network gets one ``node_services`` object: the program the provider loads there in one
atomic step (every service's virtual IP and node port leading to every endpoint, the node's own pods for
hairpin traffic and for names). It exists while the configuration has services; it changes when an endpoint,
a service or a pod on the node changes, and the plan says why ("service.web gains pod.web[2]").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..addrs import ResourceAddress
from ..diagnostics import Diagnostic
from ..eval.plain import UNKNOWN, contains_unknown
from ..sdk.model import node_name
from .derive import Derived, DerivedObject, Inputs, Summary
from .ipam import has_shell

NODE = "node"
POD = "pod"
SERVICE = "service"
NODE_SERVICES = "node_services"
NETWORK_POLICY = "network_policy"


def ready(status: Any) -> bool:
    """Whether a replica may take traffic, from its observed status (None: not observed -> ready)."""
    if status is None:
        return True
    if not getattr(status, "reachable", True):
        return False
    if getattr(status, "state", "running") != "running":
        return False
    return all(getattr(m, "health", None) in (None, "healthy") for m in getattr(status, "members", ()))


def selects(selector: Any, labels: Any) -> bool:
    if not isinstance(selector, dict) or not selector or contains_unknown(selector):
        return False
    if not isinstance(labels, dict):
        return False
    return all(labels.get(k) == v for k, v in selector.items())


def _service_name(addr: ResourceAddress) -> str:
    return addr.name if addr.key is None else f"{addr.name}-{addr.key}"


def endpoints(service: dict[str, Any], pods: dict[ResourceAddress, dict[str, Any]],
              status: Mapping[ResourceAddress, Any]) -> list[dict[str, Any]]:
    out = []
    for addr in sorted(pods):
        v = pods[addr]
        if not selects(service.get("selector"), v.get("labels")) or not ready(status.get(addr)):
            continue
        ip = v.get("ip")
        out.append({"pod": str(addr), "ip": ip if isinstance(ip, str) else UNKNOWN,
                    "node": v.get("node") if isinstance(v.get("node"), str) else UNKNOWN})
    return out


def service_entries(services: dict[ResourceAddress, dict[str, Any]], pods: dict[ResourceAddress, dict[str, Any]],
                    status: Mapping[ResourceAddress, Any]) -> list[dict[str, Any]]:
    out = []
    for addr in sorted(services):
        v = services[addr]
        port = v.get("port")
        out.append({"name": _service_name(addr), "address": str(addr), "cluster_ip": v.get("cluster_ip", UNKNOWN),
                    "port": port, "protocol": v.get("protocol") or "tcp",
                    "target_port": v.get("target_port") if v.get("target_port") is not None else port,
                    "node_port": v.get("node_port"), "endpoints": endpoints(v, pods, status)})
    return sorted(out, key=lambda s: (s["name"], s["address"]))


def _pods_by_addr(entries: Any) -> set[str]:
    return {str(e["pod"]) for e in entries or [] if isinstance(e, dict) and isinstance(e.get("pod"), str)}


def change_reason(before: dict[str, Any] | None, after: dict[str, Any]) -> str:
    """Why a node's service program changes, for the reader."""
    if before is None:
        n = len(after.get("services") or [])
        what = f"{n} service{'s' if n != 1 else ''}"
        if after.get("policy"):
            what = (what + " and " if n else "") + "network policies"
        return f"because the node carries {what}"
    parts = []
    old = {s.get("address"): s for s in before.get("services") or [] if isinstance(s, dict)}
    new = {s.get("address"): s for s in after.get("services") or [] if isinstance(s, dict)}
    for a in sorted(set(new) - set(old), key=str):
        parts.append(f"{a} is added")
    for a in sorted(set(old) - set(new), key=str):
        parts.append(f"{a} is removed")
    for a in sorted(set(old) & set(new), key=str):
        o, nw = old[a], new[a]
        gained = sorted(_pods_by_addr(nw.get("endpoints")) - _pods_by_addr(o.get("endpoints")))
        lost = sorted(_pods_by_addr(o.get("endpoints")) - _pods_by_addr(nw.get("endpoints")))
        if gained:
            parts.append(f"{a} gains {', '.join(gained)}")
        if lost:
            parts.append(f"{a} loses {', '.join(lost)}")
        if not gained and not lost and {k: v for k, v in o.items() if k != "endpoints"} != \
                {k: v for k, v in nw.items() if k != "endpoints"}:
            parts.append(f"{a} changes")
        elif not gained and not lost and o.get("endpoints") != nw.get("endpoints"):
            parts.append(f"{a}'s endpoint addresses change")
    if _pods_by_addr(before.get("pods")) != _pods_by_addr(after.get("pods")) or before.get("pods") != after.get("pods"):
        parts.append("the pods on the node change")
    for k in ("namespace", "pod_cidr", "cluster_cidr"):
        if before.get(k) != after.get(k):
            parts.append(f"its {k} changes")
    if (before.get("policy") or {}) != (after.get("policy") or {}):
        parts.append("its network policy rules change")
    return "because " + "; ".join(parts) if parts else "because its rules must be loaded again"


def summary_text(namespace: str, entries: list[dict[str, Any]], before: dict[str, list[dict[str, Any]]],
                 changed_nodes: list[str]) -> str:
    lines = [f"Services (namespace {namespace}):"]
    for s in entries:
        ip = s["cluster_ip"] if isinstance(s["cluster_ip"], str) else "(known after apply)"
        np = f", node port {s['node_port']}" if isinstance(s.get("node_port"), int) else ""
        lines.append(f"  {s['address']}  {ip}:{s['port']}/{s['protocol']} -> {s['target_port']}{np}")
        old = _pods_by_addr(before.get(s["address"]))
        now = _pods_by_addr(s["endpoints"])
        eps = [("+ " if p not in old and before else "  ") + p for p in sorted(now)]
        eps += ["- " + p for p in sorted(old - now)]
        if not eps:
            lines.append("      no ready endpoint: connections are refused")
        lines.extend("    " + e for e in eps)
    if changed_nodes:
        lines.append("  Rules change on: " + ", ".join(f"node.{n}" for n in changed_nodes))
    return "\n".join(lines)


def summary_markdown(data: dict[str, Any]) -> str:
    """The traffic table of the PR comment: each service's address and node port, endpoints gained and lost."""
    def cell(items: list[str]) -> str:
        return ", ".join(f"`{i}`" for i in items) or "—"

    lines = [f"#### Traffic (namespace `{data['namespace']}`)", "",
             "| Service | Virtual IP | Node port | Endpoints | Added | Removed |",
             "| --- | --- | --- | --- | --- | --- |"]
    for s in data["services"]:
        ip = s["cluster_ip"] if isinstance(s["cluster_ip"], str) else "(known after apply)"
        np = str(s["node_port"]) if isinstance(s.get("node_port"), int) else "—"
        lines.append(f"| `{s['address']}` | `{ip}:{s['port']}/{s['protocol']}` | {np} | {len(s['endpoints'])} | "
                     f"{cell(s['endpoints_added'])} | {cell(s['endpoints_removed'])} |")
    if data["nodes_changing"]:
        lines += ["", "Rules change on: " + cell(data["nodes_changing"])]
    return "\n".join(lines)


class ServicesDerivation:
    """Every node's service program (``node_services.<node>``), from services, pods and their status."""

    name = "services"
    reads = frozenset({NODE, POD, SERVICE, NETWORK_POLICY})
    writes: frozenset[str] = frozenset()
    produces = frozenset({NODE_SERVICES})

    def derive(self, inputs: Inputs) -> Derived:
        out = Derived()
        from . import policy as P

        services = {a: v for a, v in inputs.read.items() if a.type == SERVICE}
        policies = {a: v for a, v in inputs.read.items() if a.type == NETWORK_POLICY}
        if not services and not policies:
            return out
        nodes = {a: v for a, v in inputs.read.items() if a.type == NODE}
        pods = {a: v for a, v in inputs.read.items() if a.type == POD}
        namespace = str(inputs.settings.get("namespace") or "default")
        networked = {a: v for a, v in nodes.items() if has_shell(v) and v.get("pod_cidr") is not None}
        if not networked:
            first = min(services) if services else min(policies)
            out.diagnostics.append(Diagnostic.error(
                "No node can carry services or policies", "Services and network policies need a pod network, "
                "which orch manages on nodes it reaches over SSH; no node of this configuration is.",
                address=str(first), hint="give the nodes an address (SSH) instead of a tcp:// or local docker_host"))
            return out
        pod_infos = P.pods_from_values(pods) if policies else []
        policy_list = P.policies_from_values(policies, namespace) if policies else []
        entries = service_entries(services, pods, inputs.status)
        service_deps = tuple(sorted(services))
        endpoint_deps = {ResourceAddress.parse(e["pod"]) for s in entries for e in s["endpoints"]}
        before_eps: dict[str, list[dict[str, Any]]] = {}
        changed: list[str] = []
        for a, v in sorted(networked.items()):
            name = node_name(a)
            addr = ResourceAddress(NODE_SERVICES, name)
            local = sorted(p for p, pv in pods.items() if pv.get("node") == name)
            values: dict[str, Any] = {
                "node": name, "namespace": namespace, "pod_cidr": v.get("pod_cidr"),
                "cluster_cidr": v.get("cluster_cidr"), "services": entries,
                # with the pod's id: a pod replaced at the same address is a new one (a new hosts file to write, its
                # pending isolation to lift), so the node's program is loaded again after it
                "pods": [{"pod": str(p), "ip": _known(pods[p].get("ip")), "id": _known(pods[p].get("id"))}
                         for p in local]}
            # {} without policies (not absent: the planner compares what is given, and the last policy removed
            # must be a change of every node's program)
            values["policy"] = P.node_policy_program(name, pod_infos, policy_list) if policies else {}
            prior = inputs.current.get(addr)
            if prior is not None:
                for s in prior.get("services") or []:
                    if isinstance(s, dict) and isinstance(s.get("address"), str):
                        before_eps.setdefault(s["address"], s.get("endpoints") or [])
            if prior is None or _differs(prior, values):
                changed.append(name)
            # with policies, every pod's address may be in the node's peer sets
            deps = tuple(sorted({a, *service_deps, *endpoint_deps, *local,
                                 *(set(pods) | set(policies) if policies else ())}))
            out.objects[addr] = DerivedObject(values, change_reason(prior, values), deps, f"node.{name}")
        data = {"namespace": namespace,
                "services": [{**s, "endpoints_added": sorted(_pods_by_addr(s["endpoints"])
                                                             - _pods_by_addr(before_eps.get(s["address"]))),
                              "endpoints_removed": sorted(_pods_by_addr(before_eps.get(s["address"]))
                                                          - _pods_by_addr(s["endpoints"]))} for s in entries],
                "nodes_changing": [f"node.{n}" for n in changed]}
        data = _known_or_none(data)
        if services:
            concerns = frozenset({str(a) for a in services} | {str(a) for a in out.objects})
            out.summary = Summary("services", summary_text(namespace, entries, before_eps, changed), data,
                                  concerns, any_change=True, markdown=summary_markdown(data))
        return out


def _known(v: Any) -> Any:
    return v if isinstance(v, str) else UNKNOWN


def _known_or_none(v: Any) -> Any:
    """JSON-ready: unknown values become null (the plan JSON's after_unknown tells the rest)."""
    if v is UNKNOWN:
        return None
    if isinstance(v, dict):
        return {k: _known_or_none(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_known_or_none(x) for x in v]
    return v


def _differs(prior: dict[str, Any], values: dict[str, Any]) -> bool:
    return any(prior.get(k) != v for k, v in values.items())


SERVICES = ServicesDerivation()

__all__ = ["NODE_SERVICES", "SERVICES", "change_reason", "endpoints", "ready", "selects", "service_entries"]
