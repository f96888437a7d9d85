"""A node's service program as packet rules, read back for drift, and as /etc/hosts lines.

Pure functions, no I/O: the caller runs ``nft -f -``, ``nft -j list table ip T``,
``iptables-restore --noflush`` and the two fixed shell scripts over SSH.

**Services (nftables).** One table per namespace, ``table ip orch-ns-<namespace>``: two
configurations sharing nodes never touch each other's rules, and destroying one deletes one table.
A packet to a service virtual IP is classified by a single lookup in a verdict map keyed by
``address . protocol . port`` (node ports: ``protocol . port`` for local destinations), which jumps to
the service's chain; there ``numgen random`` picks an endpoint to DNAT to. The first packet of a
connection thus costs the same whatever the number of services, unlike kube-proxy's iptables mode,
which matches the packet against one rule per service in turn (the reason Kubernetes added an
nftables mode built on such maps). A service without endpoints refuses (TCP reset, ICMP port
unreachable) instead of letting the packet go on to the virtual IP; reject from prerouting needs
Linux >= 5.9.

**Network policies (same table, filter hook forward).** Only when the values carry a ``policy`` section.
The forward path sees a connection's real endpoint (after DNAT), same-node traffic included
(``bridge-nf-call-iptables=1``). Its base chain ``forward`` (priority -5, ahead of Docker's filter
chains) accepts replies of allowed connections, then does two verdict-map lookups, ``ip saddr vmap
@egress_pods`` and ``ip daddr vmap @ingress_pods``, each jumping to a chain of one isolated pod of this
node (``out-<hash>``, ``in-<hash>`` of the pod's address). There, a rule per (policy rule, peer, port
entry) lets allowed traffic on: egress with ``return`` (the destination's ingress check still follows),
ingress with ``accept``. Whatever no rule allows is refused (TCP reset, ICMP port unreachable). A packet
of an unisolated pod costs only those two lookups, however many pods and policies there are, and an
isolated pod's packet walks only its own pod's rules. So a node's rule count grows with its isolated pods
times their policies' rules. Peer pods are named sets (``peer-<hash>``) that any number of rules share,
so a peer set changes by its elements without touching a chain. A refusal in this table is final, but
its ``accept`` does not override Docker's filter, which is why ``ORCH-FORWARD`` (below) accepts pod
traffic. A new pod must not accept a disallowed connection before the next program load: the
provider runs :func:`render_pending` as soon as the pod has an address, which puts the address into
``pending_in``/``pending_out``. A base chain ``pending`` (priority -6) refuses all of its traffic. Every
program load empties these two sets: a full load replaces the table, and a delta flushes them.

Every rule carries ``comment "orch:<hash>"``, the hash of its chain's intended content, so a listing
tells an intact chain from a flushed or edited one without parsing nft's expression JSON.

**Forward filter (iptables).** Docker's FORWARD drops new connections into its bridges; a chain
``ORCH-FORWARD`` hooked first in ``DOCKER-USER`` accepts pod-to-pod and DNATed (service, node port)
traffic to the cluster's pod range. Shared by every namespace on the node.

**Names.** Each pod's hosts file holds one section per namespace, rewritten in place (same inode,
which every container of the pod sees at once) by :data:`HOSTS_UPDATE_SCRIPT`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "CONNTRACK_SCRIPT", "HOSTS_READ_SCRIPT", "HOSTS_UPDATE_SCRIPT", "MASQ_MARK", "drift", "forward_delete",
    "forward_drift", "forward_restore", "gone_endpoints", "hosts_section", "parse_docker_user", "parse_hosts_read",
    "render_delete",
    "render_delta", "render_pending", "render_table", "table_name",
]

MASQ_MARK = 0x4000  # packets to masquerade on the way out (node-port traffic)
_NAT_PRIORITY = -105  # before Docker's nat (dstnat = -100)
_SNAT_PRIORITY = 95  # before Docker's MASQUERADE (srcnat = 100)
_HASH_LEN = 12
_REASONS_PER_KIND = 20  # drift lists at most this many differences of one kind, then a count

_NAMESPACE = re.compile(r"[a-z][a-z0-9-]{0,39}")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_PROTOCOLS = ("tcp", "udp")
_PROTOCOL_NUMBERS = {6: "tcp", 17: "udp"}
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_NUMERIC_NAME = re.compile(r"[0-9.]+")
_PRIORITY_NAMES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_HASH_LEN]


# -- validation -------------------------------------------------------------------------------------------


def _check_namespace(namespace: object) -> str:
    if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
        raise ValueError(f"namespace {namespace!r}: expected [a-z][a-z0-9-]*, at most 40 characters")
    return namespace


def _ipv4(value: object, what: str) -> str:
    """``value`` if it is an IPv4 address in canonical dotted-quad form (as nft prints it back)."""
    if not isinstance(value, str) or not _IPV4.fullmatch(value):
        raise ValueError(f"{what}: {value!r} is not an IPv4 address (dotted quad)")
    return value


def _network(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what}: expected an IPv4 network, got {value!r}")
    try:
        return str(ipaddress.IPv4Network(value, strict=True))
    except ValueError:
        raise ValueError(f"{what}: {value!r} is not an IPv4 network") from None


def _port(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"{what}: expected a port number 1..65535, got {value!r}")
    return value


def _protocol(value: object, what: str) -> str:
    if not isinstance(value, str) or value not in _PROTOCOLS:
        raise ValueError(f"{what}: protocol {value!r} is not tcp or udp")
    return value


def _ip_key(ip: str) -> bytes:
    return socket.inet_aton(ip)


# -- the program ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Chain:
    name: str
    label: str  # for people: "service.web", "node port 30080/tcp of service.web", "" for fixed chains
    bodies: tuple[str, ...]  # the rules without their comment
    comment: str  # "orch:<hash of name and bodies>"
    base: tuple[str, str, int, str] | None = None  # type, hook, priority, policy
    title: str = ""  # drift's name for it when not "chain NAME (label)": "ingress policy chain of pod.db[0]"

    def rules(self) -> list[str]:
        return [f'{body} comment "{self.comment}"' for body in self.bodies]

    def what(self) -> str:
        return self.title or f"chain {self.name}" + (f" ({self.label})" if self.label else "")


def _chain(name: str, label: str, bodies: Sequence[str], base: tuple[str, str, int, str] | None = None,
           title: str = "") -> _Chain:
    return _Chain(name, label, tuple(bodies), "orch:" + _short_hash(name + "\n" + "\n".join(bodies)), base, title)


_FIXED: tuple[_Chain, ...] = (
    _chain("prerouting", "", ["jump services"], ("nat", "prerouting", _NAT_PRIORITY, "accept")),
    _chain("output", "", ["jump services"], ("nat", "output", _NAT_PRIORITY, "accept")),
    _chain("postrouting", "", [f"meta mark & {MASQ_MARK:#x} == {MASQ_MARK:#x} masquerade",
                               "ip saddr . ip daddr @hairpin masquerade"],
           ("nat", "postrouting", _SNAT_PRIORITY, "accept")),
    _chain("services", "", ["ip daddr . meta l4proto . th dport vmap @services",
                            "fib daddr type local meta l4proto . th dport vmap @nodeports"]),
)
_FIXED_NAMES = frozenset(chain.name for chain in _FIXED)
_SERVICE_MAP_TYPE = ["ipv4_addr", "inet_proto", "inet_service"]
_NODEPORT_MAP_TYPE = ["inet_proto", "inet_service"]
_HAIRPIN_TYPE = ["ipv4_addr", "ipv4_addr"]

ServiceKey = tuple[str, str, int]  # virtual IP, protocol, port
NodePortKey = tuple[str, int]  # protocol, port
_K = TypeVar("_K")


@dataclass(frozen=True, slots=True)
class _Program:
    namespace: str
    table: str
    services: dict[ServiceKey, str]  # -> chain name
    nodeports: dict[NodePortKey, str]  # -> chain name
    hairpin: tuple[str, ...]  # pod IPs on this node, sorted
    chains: dict[str, _Chain]  # the per-service chains, in service order (svc-X, then its np-X)
    policy: _Policy | None = None  # None: the values have no "policy" section (nothing of it rendered)


def _service_chain_bodies(protocol: str, target_port: int, ips: Sequence[str]) -> list[str]:
    if not ips:
        return ["meta l4proto tcp reject with tcp reset"] if protocol == "tcp" else ["reject"]
    if len(ips) == 1:
        return [f"meta l4proto {protocol} dnat to {ips[0]}:{target_port}"]
    # kube-proxy's cascade: endpoint i of N is taken with probability 1/(N-i) when the ones before were not,
    # the last one always: uniform. One rule per endpoint and no anonymous set per service: loading stays
    # linear in the number of services (an anonymous map per service made the kernel's commit quadratic:
    # 5,000 services took 2.8 s to load instead of ~1.3 s).
    n = len(ips)
    out = [f"meta l4proto {protocol} numgen random mod {n - i} == 0 dnat to {ip}:{target_port}"
           for i, ip in enumerate(ips[:-1])]
    return out + [f"meta l4proto {protocol} dnat to {ips[-1]}:{target_port}"]


def _compile(values: Mapping[str, Any]) -> _Program:
    namespace = _check_namespace(values.get("namespace"))
    for field in ("pod_cidr", "cluster_cidr"):
        if values.get(field) is not None:
            _network(values[field], field)
    services: dict[ServiceKey, str] = {}
    nodeports: dict[NodePortKey, str] = {}
    chains: dict[str, _Chain] = {}
    owner: dict[str, str] = {}  # chain id -> address, to refuse a (very unlikely) hash collision
    entries = list(values.get("services") or [])
    for svc in sorted(entries, key=lambda s: (str(s.get("name")), str(s.get("address")))):
        name = svc.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"service without a name: {svc!r}")
        address = svc.get("address") or f"service.{name}"
        if not isinstance(address, str):
            raise ValueError(f"service {name!r}: address {address!r} is not a string")
        what = f"service {address}"
        vip = _ipv4(svc.get("cluster_ip"), f"{what}: cluster_ip")
        protocol = _protocol(svc.get("protocol", "tcp"), what)
        port = _port(svc.get("port"), f"{what}: port")
        target = svc.get("target_port")
        target_port = port if target is None else _port(target, f"{what}: target_port")
        node_port = svc.get("node_port")
        ips = sorted({_ipv4(ep.get("ip"), f"{what}: endpoint {ep.get('pod')}")
                      for ep in (svc.get("endpoints") or []) if ep.get("ip") is not None}, key=_ip_key)
        ident = _short_hash(address)
        if ident in owner:
            raise ValueError(f"{what}: same chain name as service {owner[ident]} (duplicate address?)")
        owner[ident] = address
        svc_chain = f"svc-{ident}"
        key = (vip, protocol, port)
        if key in services:
            raise ValueError(f"{what}: {vip}:{port}/{protocol} is already another service's")
        services[key] = svc_chain
        chains[svc_chain] = _chain(svc_chain, address, _service_chain_bodies(protocol, target_port, ips))
        if node_port is not None:
            np = _port(node_port, f"{what}: node_port")
            if (protocol, np) in nodeports:
                raise ValueError(f"{what}: node port {np}/{protocol} is already another service's")
            np_chain = f"np-{ident}"
            nodeports[(protocol, np)] = np_chain
            chains[np_chain] = _chain(np_chain, f"node port {np}/{protocol} of {address}",
                                      [f"meta mark set mark | {MASQ_MARK:#x} goto {svc_chain}"])
    hairpin = sorted({_ipv4(pod.get("ip"), f"pod {pod.get('pod')}")
                      for pod in (values.get("pods") or []) if pod.get("ip") is not None}, key=_ip_key)
    # no section, None or {}: no network policy (the core writes {} so that a removed last policy is a change)
    policy = _compile_policy(values["policy"]) if values.get("policy") else None
    return _Program(namespace, table_name(namespace), services, nodeports, tuple(hairpin), chains, policy)


# -- network policies ---------------------------------------------------------------------------------------

_FILTER_PRIORITY = -5  # before Docker's filter chains (iptables-nft's FORWARD, priority 0)
_PENDING_PRIORITY = -6  # before our own policy chains
_PEER_SET = re.compile(r"peer-[0-9a-z]{1,40}")
_POD_MAP_TYPE = "ipv4_addr"
_REFUSE = ("meta l4proto tcp reject with tcp reset", "reject")  # tcp reset; icmp port unreachable otherwise

_FORWARD = _chain("forward", "", ["ct state established,related accept",
                                  "ip saddr vmap @egress_pods",
                                  "ip daddr vmap @ingress_pods"],
                  ("filter", "forward", _FILTER_PRIORITY, "accept"))
_PENDING_BASE = ("filter", "forward", _PENDING_PRIORITY, "accept")
_PENDING = _chain("pending", "", [f"ip {addr} @{name} {refuse}"
                                  for addr, name in (("daddr", "pending_in"), ("saddr", "pending_out"))
                                  for refuse in _REFUSE], _PENDING_BASE)
_POLICY_FIXED: tuple[_Chain, ...] = (_FORWARD, _PENDING)
_PENDING_SETS = ("pending_in", "pending_out")


@dataclass(frozen=True, slots=True)
class _Policy:
    sets: dict[str, tuple[str, ...]]  # peer set name -> addresses, sorted; names sorted
    egress: dict[str, str]  # pod IP -> its out-X chain; IPs sorted
    ingress: dict[str, str]  # pod IP -> its in-X chain
    pods: dict[str, str]  # pod IP -> pod address, of the isolated pods
    chains: dict[str, _Chain]  # the out-X and in-X chains, by pod IP


def _policy_port(entry: object, what: str) -> str:
    if not isinstance(entry, Mapping):
        raise ValueError(f"{what}: port entry {entry!r} is not a mapping")
    protocol = _protocol(entry.get("protocol", "tcp"), what)
    port, end = entry.get("port"), entry.get("end_port")
    if port is None:
        if end is not None:
            raise ValueError(f"{what}: end_port {end!r} without a port")
        return f"meta l4proto {protocol}"
    first = _port(port, f"{what}: port")
    if end is None or end == first:
        return f"{protocol} dport {first}"
    last = _port(end, f"{what}: end_port")
    if last < first:
        raise ValueError(f"{what}: end_port {last} is below port {first}")
    return f"{protocol} dport {first}-{last}"


def _policy_peer(peer: object, addr: str, sets: Mapping[str, object], what: str) -> str:
    """The match of one peer (``""``: any address)."""
    if not isinstance(peer, Mapping):
        raise ValueError(f"{what}: peer {peer!r} is not a mapping")
    if "set" in peer:
        name = peer["set"]
        if not isinstance(name, str) or name not in sets:
            raise ValueError(f"{what}: peer set {name!r} is not one of the policy's sets")
        return f"ip {addr} @{name}"
    network = ipaddress.IPv4Network(_network(peer.get("cidr"), f"{what}: cidr"))
    parts = [] if network.prefixlen == 0 else [f"ip {addr} {network}"]
    raw_except = peer.get("except") or []
    if not isinstance(raw_except, list | tuple):
        raise ValueError(f"{what}: except {raw_except!r} is not a list")
    # collapsed: an anonymous interval set refuses overlapping elements
    excepted = ipaddress.collapse_addresses(ipaddress.IPv4Network(_network(e, f"{what}: except"))
                                            for e in raw_except)
    if raw_except:
        parts.append(f"ip {addr} != {{ " + ", ".join(str(n) for n in excepted) + " }")
    return " ".join(parts)


def _rule_order(rule: object) -> tuple[str, int]:
    if not isinstance(rule, Mapping):
        return ("", 0)
    number = rule.get("rule")
    return str(rule.get("policy")), number if isinstance(number, int) and not isinstance(number, bool) else 0


def _policy_chain_bodies(rules: object, egress: bool, sets: Mapping[str, object], what: str) -> list[str]:
    """One rule per (rule, peer, port entry) letting the allowed traffic on, then refusing the rest.

    Egress lets it on with ``return`` (the ingress check of the destination still follows in ``forward``),
    ingress with ``accept``."""
    if not isinstance(rules, list | tuple):
        raise ValueError(f"{what}: expected a list of rules, got {rules!r}")
    addr, verdict = ("daddr", "return") if egress else ("saddr", "accept")
    ordered = sorted(rules, key=_rule_order)
    bodies: dict[str, None] = {}  # ordered, without duplicates (two policies allowing the same)
    for rule in ordered:
        if not isinstance(rule, Mapping):
            raise ValueError(f"{what}: rule {rule!r} is not a mapping")
        where = f"{what}: {rule.get('policy')} rule {rule.get('rule')}"
        peers = rule.get("peers")
        if peers is not None and not isinstance(peers, list | tuple):
            raise ValueError(f"{where}: peers {peers!r} is not a list")
        ports = rule.get("ports") or []
        if not isinstance(ports, list | tuple):
            raise ValueError(f"{where}: ports {ports!r} is not a list")
        # peers None: any address; [] lists no peer at all, so the rule allows nothing
        peer_matches = [""] if peers is None else [_policy_peer(peer, addr, sets, where) for peer in peers]
        port_matches = [_policy_port(entry, where) for entry in ports] or [""]
        for peer_match in peer_matches:
            for port_match in port_matches:
                bodies[" ".join(part for part in (peer_match, port_match, verdict) if part)] = None
    return [*bodies, *_REFUSE]


def _compile_policy(policy: object) -> _Policy:
    if not isinstance(policy, Mapping):
        raise ValueError(f"policy: expected a mapping, got {policy!r}")
    raw_sets = policy.get("sets") or {}
    if not isinstance(raw_sets, Mapping):
        raise ValueError(f"policy sets: expected a mapping, got {raw_sets!r}")
    sets: dict[str, tuple[str, ...]] = {}
    for name in sorted(raw_sets):
        if not isinstance(name, str) or not _PEER_SET.fullmatch(name):
            raise ValueError(f"policy set {name!r}: expected peer-[0-9a-z]+ (at most 45 characters)")
        members = raw_sets[name] or []
        if not isinstance(members, list | tuple):
            raise ValueError(f"policy set {name}: expected a list of addresses, got {members!r}")
        sets[name] = tuple(sorted({_ipv4(ip, f"policy set {name}") for ip in members}, key=_ip_key))
    raw_pods = policy.get("pods") or []
    if not isinstance(raw_pods, list | tuple):
        raise ValueError(f"policy pods: expected a list, got {raw_pods!r}")
    pods: dict[str, str] = {}
    directions: dict[str, tuple[object, object]] = {}
    owner: dict[str, str] = {}  # chain id -> pod, to refuse a (very unlikely) hash collision
    for entry in raw_pods:
        if not isinstance(entry, Mapping):
            raise ValueError(f"policy pods: entry {entry!r} is not a mapping")
        pod = entry.get("pod")
        if not isinstance(pod, str) or not pod:
            raise ValueError(f"policy pods: entry without a pod: {entry!r}")
        if entry.get("ip") is None or (entry.get("ingress") is None and entry.get("egress") is None):
            continue
        ip = _ipv4(entry.get("ip"), f"policy of {pod}: ip")
        if ip in pods:
            raise ValueError(f"policy of {pod}: address {ip} is already {pods[ip]}'s")
        ident = _short_hash(pod)
        if ident in owner:
            raise ValueError(f"policy of {pod}: same chain name as {owner[ident]} (duplicate pod?)")
        owner[ident] = pod
        pods[ip] = pod
        directions[ip] = (entry.get("egress"), entry.get("ingress"))
    egress: dict[str, str] = {}
    ingress: dict[str, str] = {}
    chains: dict[str, _Chain] = {}
    for ip in sorted(pods, key=_ip_key):
        pod, ident = pods[ip], _short_hash(pods[ip])
        for is_egress, rules, prefix, table in ((True, directions[ip][0], "out", egress),
                                                (False, directions[ip][1], "in", ingress)):
            if rules is None:
                continue
            direction = "egress" if is_egress else "ingress"
            name = f"{prefix}-{ident}"
            bodies = _policy_chain_bodies(rules, is_egress, sets, f"{direction} policy of {pod}")
            chains[name] = _chain(name, pod, bodies, title=f"{direction} policy chain of {pod}")
            table[ip] = name
    return _Policy(sets, egress, ingress, {ip: pods[ip] for ip in sorted(pods, key=_ip_key)}, chains)


def _service_element(key: ServiceKey) -> str:
    return f"{key[0]} . {key[1]} . {key[2]}"


def _nodeport_element(key: NodePortKey) -> str:
    return f"{key[0]} . {key[1]}"


def _hairpin_element(ip: str) -> str:
    return f"{ip} . {ip}"


# -- rendering --------------------------------------------------------------------------------------------


def table_name(namespace: str) -> str:
    """``orch-ns-<namespace>``: the namespace's nftables table (family ip)."""
    return f"orch-ns-{_check_namespace(namespace)}"


def _elements_line(elements: list[str]) -> list[str]:
    if not elements:
        return []
    return ["\t\telements = { " + ",\n\t\t\t     ".join(elements) + " }"]


def _render_chain(chain: _Chain) -> list[str]:
    lines = [f"\tchain {chain.name} {{"]
    if chain.base is not None:
        kind, hook, priority, policy = chain.base
        lines.append(f"\t\ttype {kind} hook {hook} priority {priority}; policy {policy};")
    lines.extend("\t\t" + rule for rule in chain.rules())
    lines.append("\t}")
    return lines


def render_table(values: Mapping[str, Any]) -> str:
    """The whole table for ``nft -f -``: replaces it (or creates it) in one transaction."""
    p = _compile(values)
    t = p.table
    out = [f"table ip {t}", f"delete table ip {t}", f"table ip {t} {{",
           "\tmap services {", "\t\ttype ipv4_addr . inet_proto . inet_service : verdict"]
    out += _elements_line([f"{_service_element(k)} : goto {c}" for k, c in p.services.items()])
    out += ["\t}", "\tmap nodeports {", "\t\ttype inet_proto . inet_service : verdict"]
    out += _elements_line([f"{_nodeport_element(k)} : goto {c}" for k, c in p.nodeports.items()])
    out += ["\t}", "\tset hairpin {", "\t\ttype ipv4_addr . ipv4_addr"]
    out += _elements_line([_hairpin_element(ip) for ip in p.hairpin])
    out.append("\t}")
    chains = [*_FIXED, *p.chains.values()]
    if p.policy is not None:
        out += _render_policy_objects(p.policy)
        chains += [*_POLICY_FIXED, *p.policy.chains.values()]
    for chain in chains:
        out += _render_chain(chain)
    out.append("}")
    return "\n".join(out) + "\n"


def _render_policy_objects(policy: _Policy) -> list[str]:
    out: list[str] = []
    for name, ips in policy.sets.items():
        out += [f"\tset {name} {{", f"\t\ttype {_POD_MAP_TYPE}", *_elements_line(list(ips)), "\t}"]
    for name, targets in (("egress_pods", policy.egress), ("ingress_pods", policy.ingress)):
        out += [f"\tmap {name} {{", f"\t\ttype {_POD_MAP_TYPE} : verdict",
                *_elements_line([f"{ip} : jump {chain}" for ip, chain in targets.items()]), "\t}"]
    for name in _PENDING_SETS:  # always empty here: a full load ends every pending isolation
        out += [f"\tset {name} {{", f"\t\ttype {_POD_MAP_TYPE}", "\t}"]
    return out


def render_pending(namespace: str, ip: str, ingress: bool, egress: bool) -> str:
    """An nft script isolating one new pod completely, for ``nft -f -`` before its app containers start.

    Run once the pod's infra container has its address: until the node's next program load (which gives
    the pod its policy chains and, replacing the whole table, empties the pending sets) the pod accepts
    no new connection (``ingress``) and opens none (``egress``). Works whether or not the namespace's
    table exists; running it again adds nothing twice (the ``pending`` chain is emptied and refilled, its
    rules the same as :func:`render_table`'s). Returns ``""`` when neither direction is isolated.
    """
    t = table_name(namespace)
    address = _ipv4(ip, "pending pod address")
    if not ingress and not egress:
        return ""
    kind, hook, priority, policy = _PENDING_BASE
    out = [f"add table ip {t}"]
    out += [f"add set ip {t} {name} {{ type {_POD_MAP_TYPE}; }}" for name in _PENDING_SETS]
    out += [f"add chain ip {t} {_PENDING.name} {{ type {kind} hook {hook} priority {priority}; policy {policy}; }}",
            f"flush chain ip {t} {_PENDING.name}"]
    out += [f"add rule ip {t} {_PENDING.name} {rule}" for rule in _PENDING.rules()]
    out += [f"add element ip {t} {name} {{ {address} }}"
            for name, wanted in zip(_PENDING_SETS, (ingress, egress)) if wanted]
    return "\n".join(out) + "\n"


def render_delete(namespace: str) -> str:
    """Removes the namespace's table; succeeds also when it does not exist."""
    t = table_name(namespace)
    return f"table ip {t}\ndelete table ip {t}\n"


def render_delta(prior_values: Mapping[str, Any] | None, values: Mapping[str, Any]) -> str | None:
    """An nft script (one transaction) turning the table ``prior_values`` rendered into ``values``'.

    Touches only what changed: chains are added, refilled (``flush chain`` + ``add rule``) or deleted,
    map and set elements added or deleted. Assumes the live table is exactly what ``prior_values``
    rendered (nothing drifted): if it is not, nft refuses the script as a whole and changes nothing, and
    the caller falls back to :func:`render_table`. Returns ``""`` when nothing changed and ``None`` when a
    delta is not possible or not worth it (no prior, another namespace, prior not compilable, more than
    half of the objects of a big table changed, the ``policy`` section changed): use :func:`render_table`
    then. With a policy section, a delta ends by emptying the pending sets, as a full load does.
    """
    if prior_values is None:
        return None
    new = _compile(values)
    try:
        old = _compile(prior_values)
    except ValueError:
        return None
    if old.table != new.table or old.policy != new.policy:
        return None
    t = new.table
    added = [c for name, c in new.chains.items() if name not in old.chains]
    changed = [c for name, c in new.chains.items() if name in old.chains and old.chains[name] != c]
    removed = [c for name, c in old.chains.items() if name not in new.chains]
    svc_del = [k for k, c in old.services.items() if new.services.get(k) != c]
    svc_add = [k for k, c in new.services.items() if old.services.get(k) != c]
    np_del = [k for k, c in old.nodeports.items() if new.nodeports.get(k) != c]
    np_add = [k for k, c in new.nodeports.items() if old.nodeports.get(k) != c]
    old_hp, new_hp = set(old.hairpin), set(new.hairpin)
    hp_del = [ip for ip in old.hairpin if ip not in new_hp]
    hp_add = [ip for ip in new.hairpin if ip not in old_hp]
    work = (len(added) + len(changed) + len(removed) + len(svc_del) + len(svc_add) + len(np_del) + len(np_add)
            + len(hp_del) + len(hp_add))
    total = len(new.chains) + len(new.services) + len(new.nodeports) + len(new.hairpin)
    if work == 0:
        return ""
    if work > 64 and 2 * work > total:
        return None
    out: list[str] = []
    out += [f"add chain ip {t} {c.name}" for c in added]
    for c in added:
        out += [f"add rule ip {t} {c.name} {rule}" for rule in c.rules()]
    for c in changed:
        out.append(f"flush chain ip {t} {c.name}")
        out += [f"add rule ip {t} {c.name} {rule}" for rule in c.rules()]

    def elements(verb: str, where: str, items: list[str]) -> None:
        if items:
            out.append(f"{verb} element ip {t} {where} {{ " + ", ".join(items) + " }")

    elements("delete", "services", [_service_element(k) for k in svc_del])
    elements("delete", "nodeports", [_nodeport_element(k) for k in np_del])
    elements("delete", "hairpin", [_hairpin_element(ip) for ip in hp_del])
    elements("add", "services", [f"{_service_element(k)} : goto {new.services[k]}" for k in svc_add])
    elements("add", "nodeports", [f"{_nodeport_element(k)} : goto {new.nodeports[k]}" for k in np_add])
    elements("add", "hairpin", [_hairpin_element(ip) for ip in hp_add])
    # A node-port chain jumps to its service chain: empty every retired chain before deleting any.
    out += [f"flush chain ip {t} {c.name}" for c in removed]
    out += [f"delete chain ip {t} {c.name}" for c in removed]
    if new.policy is not None:  # like a full load, every load ends the pending isolations
        out += [f"flush set ip {t} {name}" for name in _PENDING_SETS]
    return "\n".join(out) + "\n"


# -- read-back ----------------------------------------------------------------------------------------------


def _unwrap(value: Any) -> Any:
    # {"elem": {"val": X, "comment": ...}}: an element with options
    if isinstance(value, dict) and set(value) == {"elem"} and isinstance(value["elem"], dict):
        return value["elem"].get("val")
    return value


def _proto_name(value: Any) -> str | None:
    if isinstance(value, str) and value.lower() in _PROTOCOLS:
        return value.lower()
    if isinstance(value, int) and not isinstance(value, bool):
        return _PROTOCOL_NUMBERS.get(value)
    return None


def _port_number(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _concat(value: Any, n: int) -> list[Any] | None:
    value = _unwrap(value)
    if isinstance(value, dict) and isinstance(value.get("concat"), list) and len(value["concat"]) == n:
        return list(value["concat"])
    return None


def _service_key(value: Any) -> ServiceKey | None:
    parts = _concat(value, 3)
    if parts is None or not isinstance(parts[0], str):
        return None
    proto, port = _proto_name(parts[1]), _port_number(parts[2])
    return None if proto is None or port is None else (parts[0], proto, port)


def _nodeport_key(value: Any) -> NodePortKey | None:
    parts = _concat(value, 2)
    if parts is None:
        return None
    proto, port = _proto_name(parts[0]), _port_number(parts[1])
    return None if proto is None or port is None else (proto, port)


def _hairpin_key(value: Any) -> str | None:
    parts = _concat(value, 2)
    if parts is None or not all(isinstance(part, str) for part in parts) or parts[0] != parts[1]:
        return None
    return str(parts[0])


def _verdict(value: Any) -> str:
    """``goto svc-x`` / ``jump svc-x`` / ``drop``...: comparable text of a map's verdict."""
    if isinstance(value, dict) and len(value) == 1:
        (kind, arg), = value.items()
        if isinstance(arg, dict) and "target" in arg:
            return f"{kind} {arg['target']}"
        return str(kind)
    return json.dumps(value, sort_keys=True)


def _is_verdict(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in (
        "goto", "jump", "accept", "drop", "continue", "return", "queue")


def _set_elements(obj: Mapping[str, Any]) -> list[Any]:
    elem = obj.get("elem")
    if elem is None:
        return []
    return list(elem) if isinstance(elem, list) else [elem]


def _map_elements(obj: Mapping[str, Any]) -> list[tuple[Any, Any]]:
    elem = obj.get("elem")
    if elem is None:
        return []
    if isinstance(elem, list) and len(elem) == 2 and not isinstance(elem[0], list) and _is_verdict(elem[1]):
        return [(elem[0], elem[1])]  # one element, listed bare
    items = elem if isinstance(elem, list) else [elem]
    return [(item[0], item[1]) if isinstance(item, list) and len(item) == 2 else (item, None) for item in items]


def _priority(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([a-z]+)\s*(?:([+-])\s*(\d+))?\s*", value)
        if m and m.group(1) in _PRIORITY_NAMES:
            offset = int(m.group(3) or 0)
            return _PRIORITY_NAMES[m.group(1)] + (-offset if m.group(2) == "-" else offset)
        if re.fullmatch(r"-?\d+", value.strip()):
            return int(value)
    return None


def _capped(reasons: list[str], kind: str) -> list[str]:
    if len(reasons) <= _REASONS_PER_KIND:
        return reasons
    return [*reasons[:_REASONS_PER_KIND], f"{kind}: {len(reasons) - _REASONS_PER_KIND} more differences"]


def _fmt_service(key: ServiceKey) -> str:
    return f"{key[0]}:{key[2]}/{key[1]}"


def drift(values: Mapping[str, Any], listing: Mapping[str, Any] | None) -> list[str]:
    """Why the live table differs from what ``values`` wants; empty when it matches.

    ``listing`` is the parsed JSON of ``nft -j list table ip orch-ns-<namespace>``, or ``None`` when the
    table does not exist (nft exits non-zero: "No such file or directory"). Compared: the chains present,
    each chain's list of rule comments (flushed or edited chains), the hook, type, priority and policy of
    the base chains, and the elements of the two maps and the set. Rule expressions themselves are not
    compared: a hand-edited rule that keeps its comment goes unnoticed. With a ``policy`` section also
    the ``forward`` and ``pending`` chains, each isolated pod's chains ("ingress policy chain of pod.db[0]
    was flushed or edited"), the elements of the two pod maps and of every peer set, and that the pending
    sets exist. Their elements come and go, so only the address of a pod that the values know
    (``pods``) counts as drift there. Such an element is a leftover (a pod replaced at the same address
    with no program load since), and it would refuse what the pod's policies allow until a full load.
    """
    p = _compile(values)
    t = p.table
    objects = listing.get("nftables") if isinstance(listing, Mapping) else None
    if not isinstance(objects, list):
        return [f"table {t} is missing"]

    def ours(body: Any, table_key: str) -> bool:
        return isinstance(body, dict) and body.get(table_key) == t and body.get("family", "ip") == "ip"

    table: dict[str, Any] | None = None
    chains: dict[str, dict[str, Any]] = {}
    comments: dict[str, list[str | None]] = {}
    maps: dict[str, dict[str, Any]] = {}
    sets: dict[str, dict[str, Any]] = {}
    others: list[str] = []
    for obj in objects:
        if not isinstance(obj, dict) or len(obj) != 1:
            continue
        (kind, body), = obj.items()
        if kind == "table" and ours(body, "name"):
            table = body
        elif kind == "metainfo" or not ours(body, "table"):
            continue
        elif kind == "chain":
            chains[str(body.get("name"))] = body
        elif kind == "rule":
            comment = body.get("comment")
            comments.setdefault(str(body.get("chain")), []).append(comment if isinstance(comment, str) else None)
        elif kind == "map":
            maps[str(body.get("name"))] = body
        elif kind == "set":
            sets[str(body.get("name"))] = body
        else:
            others.append(f"unexpected {kind} {body.get('name')}")
    if table is None:
        return [f"table {t} is missing"]

    reasons: list[str] = []
    flags = table.get("flags")
    if flags == "dormant" or (isinstance(flags, list) and "dormant" in flags):
        reasons.append(f"table {t} is dormant (its rules do nothing)")

    policy_chains = () if p.policy is None else (*_POLICY_FIXED, *p.policy.chains.values())
    for chain in (*_FIXED, *p.chains.values(), *policy_chains):
        live = chains.get(chain.name)
        label = chain.what()
        if chain.base is not None:
            kind, hook, priority, verdict = chain.base
            the_hook = f"the {hook} hook" + ("" if chain.name == hook else f" of chain {chain.name}")
            if live is None or live.get("hook") != hook:
                reasons.append(f"{the_hook} is missing")
                continue
            if live.get("type") != kind:
                reasons.append(f"{the_hook} is of type {live.get('type')} instead of {kind}")
            if _priority(live.get("prio")) != priority:
                reasons.append(f"{the_hook} has priority {live.get('prio')} instead of {priority}")
            if live.get("policy", "accept") != verdict:
                reasons.append(f"{the_hook} has policy {live.get('policy')} instead of {verdict}")
        elif live is None:
            reasons.append(f"{label} is missing")
            continue
        elif live.get("hook") is not None:
            reasons.append(f"{label} is hooked to {live.get('hook')}")
        if comments.get(chain.name, []) != [chain.comment] * len(chain.bodies):
            reasons.append(f"{label} was flushed or edited")
    wanted_chains = _FIXED_NAMES | p.chains.keys() | {chain.name for chain in policy_chains}
    reasons += _capped([f"unexpected chain {name}" for name in sorted(chains) if name not in wanted_chains],
                       "chains")

    for name, kind_text, wanted_type in (("services", "service map", _SERVICE_MAP_TYPE),
                                         ("nodeports", "node port map", _NODEPORT_MAP_TYPE)):
        live_map = maps.pop(name, None)
        if live_map is None:
            reasons.append(f"the {kind_text} is missing")
            continue
        if "type" in live_map and (live_map.get("type") != wanted_type or live_map.get("map") != "verdict"):
            reasons.append(f"the {kind_text} has type {live_map.get('type')} : {live_map.get('map')}")
            continue
        if name == "services":
            reasons += _capped(_compare_map(live_map, p.services, _service_key, _fmt_service,
                                            "service map: {} "), kind_text)
        else:
            reasons += _capped(_compare_map(live_map, p.nodeports, _nodeport_key,
                                            lambda k: f"{k[1]}/{k[0]}", "node port {} "), kind_text)
    live_set = sets.pop("hairpin", None)
    if live_set is None:
        reasons.append("the hairpin set is missing")
    elif "type" in live_set and live_set.get("type") != _HAIRPIN_TYPE:
        reasons.append(f"the hairpin set has type {live_set.get('type')}")
    else:
        have, diffs = _address_set(live_set, "hairpin set", _hairpin_key)
        wanted = set(p.hairpin)
        diffs += [f"hairpin set: {ip} is missing" for ip in p.hairpin if ip not in have]
        diffs += [f"hairpin set: {ip} is unexpected" for ip in sorted(have - wanted, key=_ip_key)]
        reasons += _capped(diffs, "hairpin set")
    if p.policy is not None:
        known = dict(p.policy.pods)  # pod IP -> pod, for the messages
        for pod in values.get("pods") or []:
            if pod.get("ip") is not None:
                known.setdefault(pod["ip"], str(pod.get("pod")))
        reasons += _policy_drift(p.policy, maps, sets, known)
    reasons += [f"unexpected map {name}" for name in sorted(maps)]
    reasons += [f"unexpected set {name}" for name in sorted(sets)]
    return reasons + others


def _compare_map(live: Mapping[str, Any], wanted: Mapping[_K, str], parse: Callable[[Any], _K | None],
                 fmt: Callable[[_K], str], prefix: str, verb: str = "goto") -> list[str]:
    have: dict[_K, str] = {}
    diffs: list[str] = []
    for raw_key, raw_value in _map_elements(live):
        key = parse(raw_key)
        if key is None:
            diffs.append(prefix.format(f"element {json.dumps(raw_key, sort_keys=True)}") + "is unexpected")
        else:
            have[key] = _verdict(raw_value)
    for key, chain in wanted.items():
        if key not in have:
            diffs.append(prefix.format(fmt(key)) + "is missing")
        elif have[key] != f"{verb} {chain}":
            diffs.append(prefix.format(fmt(key)) + f"leads to {have[key]} instead of {verb} {chain}")
    diffs += [prefix.format(fmt(key)) + "is unexpected" for key in have if key not in wanted]
    return diffs


def _address_key(value: Any) -> str | None:
    value = _unwrap(value)
    return value if isinstance(value, str) and _IPV4.fullmatch(value) else None


def _live_address_set(live: Mapping[str, Any] | None, what: str, reasons: list[str]
                      ) -> tuple[set[str], list[str]] | None:
    """A live set of addresses as :func:`_address_set` reads it; None (and the reason said) when it is missing or
    not a set of addresses."""
    if live is None:
        reasons.append(f"{what} is missing")
        return None
    if "type" in live and live.get("type") != _POD_MAP_TYPE:
        reasons.append(f"{what} has type {live.get('type')}")
        return None
    return _address_set(live, what)


def _address_set(live: Mapping[str, Any], what: str,
                 key: Callable[[Any], str | None] = _address_key) -> tuple[set[str], list[str]]:
    """The addresses of a live set (``ipv4_addr``, or with ``key`` the hairpin set's ``ip . ip`` pairs), and a
    reason per element that is none."""
    have: set[str] = set()
    odd: list[str] = []
    for raw in _set_elements(live):
        ip = key(raw)
        if ip is None:
            odd.append(f"{what}: unexpected element {json.dumps(raw, sort_keys=True)}")
        else:
            have.add(ip)
    return have, odd


def _policy_drift(policy: _Policy, maps: dict[str, dict[str, Any]], sets: dict[str, dict[str, Any]],
                  known: Mapping[str, str]) -> list[str]:
    """The pod maps, the peer sets and the pending sets (taken out of ``maps`` and ``sets``)."""
    reasons: list[str] = []

    def pod_text(ip: str) -> str:
        return f"{known[ip]} ({ip})" if ip in known else ip

    for name, kind_text, targets in (("egress_pods", "egress pod map", policy.egress),
                                     ("ingress_pods", "ingress pod map", policy.ingress)):
        live_map = maps.pop(name, None)
        if live_map is None:
            reasons.append(f"the {kind_text} is missing")
        elif "type" in live_map and (live_map.get("type") != _POD_MAP_TYPE or live_map.get("map") != "verdict"):
            reasons.append(f"the {kind_text} has type {live_map.get('type')} : {live_map.get('map')}")
        else:
            reasons += _capped(_compare_map(live_map, targets, _address_key, pod_text, kind_text + ": {} ",
                                            verb="jump"), kind_text)
    for name, members in policy.sets.items():
        what = f"peer set {name}"
        found = _live_address_set(sets.pop(name, None), what, reasons)
        if found is not None:
            have, diffs = found
            diffs += [f"{what}: {ip} is missing" for ip in members if ip not in have]
            diffs += [f"{what}: {ip} is unexpected" for ip in sorted(have - set(members), key=_ip_key)]
            reasons += _capped(diffs, what)
    for name, direction in zip(_PENDING_SETS, ("ingress", "egress")):
        # Elements come and go (render_pending, then the next load): only a known pod's is a leftover, one
        # the program already accounts for, that would refuse what its policies allow until a full load.
        what = f"the pending {direction} set"
        found = _live_address_set(sets.pop(name, None), what, reasons)
        if found is not None:
            have, diffs = found
            diffs += [f"{pod_text(ip)} is still in pending {direction} isolation"
                      for ip in sorted(have, key=_ip_key) if ip in known]
            reasons += _capped(diffs, what)
    return reasons


# -- forward filter (iptables, table filter) --------------------------------------------------------------

FORWARD_CHAIN = "ORCH-FORWARD"
_HOOK_RULE = f"-A DOCKER-USER -j {FORWARD_CHAIN}"


def _forward_rules(cluster_cidr: str) -> list[str]:
    """The chain's rules as ``iptables -S`` prints them."""
    c = _network(cluster_cidr, "cluster_cidr")
    return [f"-A {FORWARD_CHAIN} -s {c} -d {c} -j ACCEPT",
            f"-A {FORWARD_CHAIN} -d {c} -m conntrack --ctstate DNAT -j ACCEPT"]


def forward_restore(cluster_cidr: str, hook_present_first: bool, hook_present_elsewhere_count: int) -> str:
    """Input for ``iptables-restore --noflush``: (re)fills ORCH-FORWARD and puts its hook first in DOCKER-USER.

    The two flags come from :func:`parse_docker_user` on ``iptables -S DOCKER-USER`` read just before
    (a ``-D`` of a rule that is not there fails the whole restore, which then changes nothing). DOCKER-USER
    must exist (dockerd made it); it is never declared here, which would flush it.
    """
    if hook_present_elsewhere_count < 0:
        raise ValueError("hook_present_elsewhere_count must be >= 0")
    lines = ["*filter", f":{FORWARD_CHAIN} - [0:0]", *_forward_rules(cluster_cidr)]
    if not hook_present_first or hook_present_elsewhere_count:
        # `-D rule` deletes the first match, which may be the one in first place: delete every copy, then
        # insert one at the top.
        copies = hook_present_elsewhere_count + (1 if hook_present_first else 0)
        lines += [f"-D DOCKER-USER -j {FORWARD_CHAIN}"] * copies
        lines.append(f"-I DOCKER-USER 1 -j {FORWARD_CHAIN}")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def _rules_of(iptables_s: str, chain: str) -> list[str]:
    prefix = f"-A {chain} "
    return [" ".join(line.split()) for line in iptables_s.splitlines() if line.strip().startswith(prefix)]


def parse_docker_user(iptables_S_output: str) -> tuple[bool, int]:
    """From ``iptables -S DOCKER-USER``: is the jump to ORCH-FORWARD the first rule, and how many others."""
    rules = _rules_of(iptables_S_output, "DOCKER-USER")
    first = bool(rules) and rules[0] == _HOOK_RULE
    return first, sum(1 for rule in rules[1 if first else 0:] if rule == _HOOK_RULE)


def forward_drift(cluster_cidr: str, iptables_S_DOCKER_USER: str, iptables_S_ORCH_FORWARD: str) -> list[str]:
    """Reasons the forward filter differs from what it should be (outputs of ``iptables -S CHAIN``;
    pass ``""`` for a chain that does not exist)."""
    reasons: list[str] = []
    first, elsewhere = parse_docker_user(iptables_S_DOCKER_USER)
    if not first and not elsewhere:
        reasons.append(f"{FORWARD_CHAIN} is not hooked into DOCKER-USER")
    elif not first:
        reasons.append(f"{FORWARD_CHAIN} is not first in DOCKER-USER (a dockerd restart or another tool moved it)")
    elif elsewhere:
        reasons.append(f"DOCKER-USER jumps to {FORWARD_CHAIN} {elsewhere} more time(s) further down")
    live = _rules_of(iptables_S_ORCH_FORWARD, FORWARD_CHAIN)
    if not live:
        reasons.append(f"chain {FORWARD_CHAIN} is missing or was flushed")
    elif live != _forward_rules(cluster_cidr):
        reasons.append(f"chain {FORWARD_CHAIN} was edited")
    return reasons


def forward_delete(hook_copies: int, chain_present: bool = True) -> str:
    """Input for ``iptables-restore --noflush`` removing the hooks (``hook_copies`` of them, as counted in
    ``iptables -S DOCKER-USER``) and the chain."""
    if hook_copies < 0:
        raise ValueError("hook_copies must be >= 0")
    lines = ["*filter", *[f"-D DOCKER-USER -j {FORWARD_CHAIN}"] * hook_copies]
    if chain_present:
        lines += [f"-F {FORWARD_CHAIN}", f"-X {FORWARD_CHAIN}"]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


# -- names: the hosts file section ----------------------------------------------------------------------


def _section_begin(namespace: str) -> str:
    return f"# orch services begin (namespace {namespace})"


_SECTION_END = "# orch services end"


def _hostname(name: str) -> bool:
    return (len(name) <= 253 and not _NUMERIC_NAME.fullmatch(name)
            and all(_LABEL.fullmatch(label) for label in name.split(".")))


def hosts_section(namespace: str, services: Iterable[Mapping[str, Any]]) -> str:
    """The namespace's section of a pod's hosts file, markers included, ending with a newline.

    One line per service: ``CLUSTER_IP NAME NAME.NS NAME.NS.svc.orch``, names lower-cased. Only forms
    that are valid hostnames are written (RFC 1123 labels: letters, digits, inner hyphens, at most 63
    characters; not all digits): a service whose name holds ``_`` gets no line at all (its name is no
    valid DNS label), a namespace ending in ``-`` only the bare name. When two services lower-case to the
    same name, the first by (name, address) keeps it. Sorted by name: the same services give the same
    text.
    """
    ns = _check_namespace(namespace)
    taken: set[str] = set()
    lines = [_section_begin(ns)]
    for svc in sorted(services, key=lambda s: (str(s.get("name")).lower(), str(s.get("name")),
                                                str(s.get("address")))):
        name = str(svc.get("name") or "").lower()
        ip = _ipv4(svc.get("cluster_ip"), f"service {svc.get('address') or name}: cluster_ip")
        forms = [form for form in (name, f"{name}.{ns}", f"{name}.{ns}.svc.orch")
                 if _hostname(form) and form not in taken]
        if forms:
            taken.update(forms)
            lines.append(" ".join([ip, *forms]))
    lines.append(_SECTION_END)
    return "\n".join(lines) + "\n"


_SH_PRELUDE = r"""ns=$1
case $ns in ''|*[!a-z0-9-]*) echo "orch hosts: bad namespace" >&2; exit 2;; esac
shift
begin="# orch services begin (namespace $ns)"
end="# orch services end"
"""

HOSTS_UPDATE_SCRIPT = _SH_PRELUDE + r"""section=$(cat; printf x)
section=${section%x}
keep() {
  skip=0
  while IFS= read -r line || [ -n "$line" ]; do
    if [ "$skip" = 1 ]; then
      if [ "$line" = "$end" ]; then skip=0; fi
    elif [ "$line" = "$begin" ]; then
      skip=1
    else
      printf '%s\n' "$line"
    fi
  done
}
rc=0
for f in "$@"; do
  [ -f "$f" ] || continue
  if ! kept=$(keep < "$f" && printf x); then
    [ -e "$f" ] || continue
    rc=1; continue
  fi
  new="${kept%x}$section"
  cur=$(cat "$f" && printf x) || { rc=1; continue; }
  [ "${cur%x}" = "$new" ] && continue
  # over the old bytes, then cut to length: a reader never finds the file empty (it would ask DNS instead)
  if ! { printf '%s' "$new" 1<>"$f" && truncate -s "$(printf '%s' "$new" | wc -c)" "$f"; }; then
    [ -e "$f" ] || continue
    rc=1
  fi
done
exit $rc
"""
"""Fixed POSIX sh: ``sh -c HOSTS_UPDATE_SCRIPT sh NAMESPACE FILE...`` with the new section on stdin.

In each file, drops every section of NAMESPACE (from its begin marker to the next end marker; all copies)
and appends stdin; the other lines, other namespaces' sections included, stay in order. A file already so
is not written (endpoints change often, names seldom); otherwise the new content is written over the old
from its start, then the file cut to its length: same inode (seen at once by every container of the pod),
and never empty in between — a resolver reading an empty hosts file asks DNS, which has no answer for a
service name (a truncate-then-write made requests fail during rolling updates). Empty stdin removes the
section. Files that do not exist (a pod removed meanwhile) are skipped; exits 1 if a file that exists
could not be read or written, 2 for a bad namespace.
"""

# Fixed; ``sh -c CONNTRACK_SCRIPT sh IP...``: forget the connection attempts still waiting for an answer from
# endpoints that left (and their udp flows), as kube-proxy does for udp. A client that reuses its source port
# (busybox does, within seconds) would otherwise have its new SYN taken for a retransmission of the old one and
# sent, for up to two minutes, to the address of a replica that is gone (a node that stopped answering).
# Established connections are kept: an old replica drains its requests in flight.
CONNTRACK_SCRIPT = r"""for ip in "$@"; do
  case $ip in *[!0-9.]*|'') continue;; esac
  conntrack -D -p tcp --state SYN_SENT --reply-src "$ip" >/dev/null 2>&1
  conntrack -D -p udp --reply-src "$ip" >/dev/null 2>&1
done
exit 0
"""


def gone_endpoints(prior: dict[str, Any] | None, values: dict[str, Any]) -> list[str]:
    """Endpoint addresses of the prior program that the new one no longer has (any service)."""
    def ips(v: dict[str, Any] | None) -> set[str]:
        return {str(e["ip"]) for s in (v or {}).get("services") or [] for e in s.get("endpoints") or []
                if isinstance(e, dict) and isinstance(e.get("ip"), str)}

    return sorted(ips(prior) - ips(values))


HOSTS_READ_SCRIPT = _SH_PRELUDE + r"""sect() {
  on=0
  while IFS= read -r line || [ -n "$line" ]; do
    if [ "$on" = 1 ]; then
      printf '>%s\n' "$line"
      if [ "$line" = "$end" ]; then on=0; fi
    elif [ "$line" = "$begin" ]; then
      on=1
      printf '>%s\n' "$line"
    fi
  done
}
for f in "$@"; do
  if [ -f "$f" ] && out=$(sect < "$f" && printf x); then
    printf '=%s\n%s' "$f" "${out%x}"
  else
    printf '!%s\n' "$f"
  fi
done
"""
"""Fixed POSIX sh: ``sh -c HOSTS_READ_SCRIPT sh NAMESPACE FILE...`` prints, per file, ``=PATH`` then the
lines of its NAMESPACE section(s) each prefixed with ``>``, or ``!PATH`` for a file that is missing."""


def parse_hosts_read(output: str) -> dict[str, str]:
    """HOSTS_READ_SCRIPT's output as {path: section text}, comparable with :func:`hosts_section`.

    ``""`` for a file without a section; a missing file is absent from the result.
    """
    result: dict[str, str] = {}
    current: str | None = None
    for line in output.splitlines():
        if line.startswith("="):
            current = line[1:]
            result[current] = ""
        elif line.startswith("!"):
            current = None
        elif line.startswith(">") and current is not None:
            result[current] += line[1:] + "\n"
    return result
