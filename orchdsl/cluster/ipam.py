"""Address management, the second derivation: each node's pod subnet and routes, each service's virtual IP.

Pure and stable: what the state records stays as long as it is valid (a node keeps its subnet, a service its
cluster IP, across plans and when others come and go); a user's ``node.pod_cidr`` or ``service.cluster_ip``
wins; a new node takes the lowest free /24 of the cluster's pod range; a new service a free address picked
from a hash of its namespace and address, so that two configurations sharing nodes (two namespaces, two
states that cannot see each other) are unlikely to pick the same one -- the provider checks the nodes for a
clash before apply and names the other namespace.

Only nodes orch can run commands on (reached over SSH: ``address``, or an ``ssh://`` docker_host) get a pod
network; a node reached through a TCP or local Docker socket keeps Docker's default bridge, and a service
cannot be realised on it (see :mod:`.services`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import urllib.parse
from typing import Any

from ..addrs import ResourceAddress
from ..diagnostics import Diagnostic
from ..eval.plain import UNKNOWN, contains_unknown
from ..sdk.model import has_shell, node_name
from .derive import Derived, DerivedInstance, Inputs
from .settings import DEFAULT_POD_CIDR, DEFAULT_SERVICE_CIDR, NODE_PREFIX

NODE = "node"
SERVICE = "service"


def _host_of(values: dict[str, Any]) -> Any:
    """Where other nodes send this node's pod traffic: its SSH address (a name is resolved by the provider)."""
    addr = values.get("address")
    if addr is not None:
        return addr
    dh = values.get("docker_host")
    if isinstance(dh, str):
        return urllib.parse.urlsplit(dh).hostname or UNKNOWN
    return UNKNOWN


def _net(v: Any) -> ipaddress.IPv4Network | None:
    if not isinstance(v, str):
        return None
    try:
        n = ipaddress.ip_network(v, strict=False)
    except ValueError:
        return None
    return n if isinstance(n, ipaddress.IPv4Network) else None


def _ip(v: Any) -> ipaddress.IPv4Address | None:
    if not isinstance(v, str):
        return None
    try:
        a = ipaddress.ip_address(v)
    except ValueError:
        return None
    return a if isinstance(a, ipaddress.IPv4Address) else None


def allocate_subnets(nodes: dict[str, tuple[Any, Any]], cluster: ipaddress.IPv4Network
                     ) -> tuple[dict[str, str | object], list[tuple[str, str, str]]]:
    """Each node's pod subnet. ``nodes``: name -> (configured pod_cidr, recorded pod_cidr). Returns the
    subnets (UNKNOWN where the configured one is not known yet) and errors as (node, summary, detail)."""
    out: dict[str, str | object] = {}
    errors: list[tuple[str, str, str]] = []
    taken: dict[ipaddress.IPv4Network, str] = {}

    def clash(net: ipaddress.IPv4Network) -> str | None:
        return next((owner for n, owner in taken.items() if n.overlaps(net)), None)

    # users' subnets first, then the recorded ones, then new nodes in name order
    for name, (configured, _) in sorted(nodes.items()):
        if configured is None:
            continue
        if contains_unknown(configured):
            out[name] = UNKNOWN
            continue
        net = _net(configured)
        if net is None:
            errors.append((name, "Invalid pod_cidr", f'pod_cidr "{configured}" is not an IPv4 network'))
            continue
        if not net.subnet_of(cluster):
            errors.append((name, "pod_cidr outside the cluster's pod range",
                           f"pod_cidr {net} is not inside the cluster's pod_cidr {cluster} (the orch block's "
                           "pod_cidr): other nodes route and accept only that range."))
            continue
        other = clash(net)
        if other is not None:
            errors.append((name, "Overlapping pod subnets", f"pod_cidr {net} overlaps node.{other}'s pod subnet."))
            continue
        taken[net] = name
        out[name] = str(net)
    for name, (configured, recorded) in sorted(nodes.items()):
        if configured is not None or name in out:
            continue
        net = _net(recorded)
        if net is not None and net.subnet_of(cluster) and clash(net) is None:
            taken[net] = name
            out[name] = str(net)
    free = (s for s in cluster.subnets(new_prefix=NODE_PREFIX) if clash(s) is None)
    for name in sorted(nodes):
        if name in out or any(e[0] == name for e in errors):
            continue
        net = next(free, None)
        while net is not None and clash(net) is not None:
            net = next(free, None)
        if net is None:
            errors.append((name, "No pod subnet left", f"the cluster's pod range {cluster} has no free "
                                                       f"/{NODE_PREFIX} left for node.{name}."))
            continue
        taken[net] = name
        out[name] = str(net)
    return out, errors


def _hash_start(key: str, size: int) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % size


def allocate_ips(services: dict[ResourceAddress, tuple[Any, Any]], service_cidr: ipaddress.IPv4Network,
                 namespace: str) -> tuple[dict[ResourceAddress, str | object], list[tuple[ResourceAddress, str, str]]]:
    """Each service's virtual IP. ``services``: address -> (configured cluster_ip, recorded cluster_ip)."""
    out: dict[ResourceAddress, str | object] = {}
    errors: list[tuple[ResourceAddress, str, str]] = []
    taken: dict[ipaddress.IPv4Address, ResourceAddress] = {}
    hosts_first, hosts_last = int(service_cidr.network_address) + 1, int(service_cidr.broadcast_address) - 1
    for addr, (configured, _) in sorted(services.items()):
        if configured is None:
            continue
        if contains_unknown(configured):
            out[addr] = UNKNOWN
            continue
        ip = _ip(configured)
        if ip is None:
            errors.append((addr, "Invalid cluster_ip", f'cluster_ip "{configured}" is not an IPv4 address'))
        elif ip not in service_cidr or not hosts_first <= int(ip) <= hosts_last:
            errors.append((addr, "cluster_ip outside the service range",
                           f"cluster_ip {ip} is not a host address of the service range {service_cidr} (the orch "
                           "block's service_cidr)."))
        elif ip in taken:
            errors.append((addr, "Duplicate cluster_ip", f"cluster_ip {ip} is already {taken[ip]}'s."))
        else:
            taken[ip] = addr
            out[addr] = str(ip)
    for addr, (configured, recorded) in sorted(services.items()):
        if configured is not None or addr in out:
            continue
        ip = _ip(recorded)
        if ip is not None and ip in service_cidr and ip not in taken:
            taken[ip] = addr
            out[addr] = str(ip)
    size = hosts_last - hosts_first + 1
    for addr in sorted(services):
        if addr in out or any(e[0] == addr for e in errors):
            continue
        if len(taken) >= size:
            errors.append((addr, "No service address left", f"the service range {service_cidr} is full."))
            continue
        i = _hash_start(f"{namespace}/{addr}", size)
        while ipaddress.IPv4Address(hosts_first + i) in taken:
            i = (i + 1) % size
        ip = ipaddress.IPv4Address(hosts_first + i)
        taken[ip] = addr
        out[addr] = str(ip)
    return out, errors


def node_port_clashes(services: dict[ResourceAddress, dict[str, Any]]) -> list[Diagnostic]:
    seen: dict[tuple[int, str], ResourceAddress] = {}
    out = []
    for addr, v in sorted(services.items()):
        port, proto = v.get("node_port"), v.get("protocol") or "tcp"
        if not isinstance(port, int) or isinstance(port, bool):
            continue
        first = seen.setdefault((port, str(proto)), addr)
        if first != addr:
            out.append(Diagnostic.error("Duplicate node port", f"{addr} and {first} both use node port "
                                        f"{port}/{proto}: every node's port can lead to one service only.",
                                        address=str(addr), hint="pick another node_port (30000-32767)"))
    return out


class IpamDerivation:
    """Pod subnets and routes of nodes, virtual IPs of services."""

    name = "ipam"
    reads: frozenset[str] = frozenset()
    writes = frozenset({NODE, SERVICE})
    produces: frozenset[str] = frozenset()

    def derive(self, inputs: Inputs) -> Derived:
        out = Derived()
        cluster = _net(inputs.settings.get("pod_cidr")) or ipaddress.IPv4Network(DEFAULT_POD_CIDR)
        service_cidr = _net(inputs.settings.get("service_cidr")) or ipaddress.IPv4Network(DEFAULT_SERVICE_CIDR)
        if cluster.overlaps(service_cidr):
            out.diagnostics.append(Diagnostic.error(
                "Overlapping address ranges", f"the pod range {cluster} and the service range {service_cidr} "
                "overlap.", hint="set pod_cidr and service_cidr in the orch block to disjoint ranges"))
            return out
        nodes = {a: v for a, v in inputs.wanted.items() if a.type == NODE}
        networked = {a: v for a, v in nodes.items() if has_shell(v)}
        by_name = {node_name(a): a for a in networked}
        subnets, errors = allocate_subnets(
            {node_name(a): (v.get("pod_cidr"), (inputs.current.get(a) or {}).get("pod_cidr"))
             for a, v in networked.items()}, cluster)
        for name, summary, detail in errors:
            out.diagnostics.append(Diagnostic.error(summary, detail, address=str(by_name[name]),
                                                    hint="remove pod_cidr to let orch pick one, or pick a free "
                                                         "subnet inside the cluster's pod range"))
        for a in networked:
            name = node_name(a)
            if name not in subnets:
                continue
            routes = [{"node": other, "subnet": subnets[other], "via": _host_of(networked[by_name[other]])}
                      for other in sorted(subnets) if other != name]
            out.instances[a] = DerivedInstance({"pod_cidr": subnets[name], "cluster_cidr": str(cluster),
                                                "routes": routes})
        services = {a: v for a, v in inputs.wanted.items() if a.type == SERVICE}
        ips, ip_errors = allocate_ips({a: (v.get("cluster_ip"), (inputs.current.get(a) or {}).get("cluster_ip"))
                                       for a, v in services.items()}, service_cidr,
                                      str(inputs.settings.get("namespace") or ""))
        for addr, summary, detail in ip_errors:
            out.diagnostics.append(Diagnostic.error(summary, detail, address=str(addr),
                                                    hint="remove cluster_ip to let orch pick one"))
        out.diagnostics.extend(node_port_clashes(services))
        for addr, ip in ips.items():
            out.instances[addr] = DerivedInstance({"cluster_ip": ip})
        return out


IPAM = IpamDerivation()

__all__ = ["IPAM", "allocate_ips", "allocate_subnets", "has_shell", "node_port_clashes"]
