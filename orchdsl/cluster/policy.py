"""Network policies, pure: Kubernetes NetworkPolicy semantics over orch's pods.

A pod is *isolated* for ingress when a policy selecting it (its labels include all of the policy's
``pod_selector``; ``{}`` selects every pod of the configuration) lists ``"ingress"`` in ``policy_types``;
likewise for egress. A connection ``src -> dst:port/protocol`` is allowed iff the source is not isolated for
egress or an egress rule of a policy selecting it allows (dst, port), and the destination is not isolated for
ingress or an ingress rule of a policy selecting it allows (src, port). A rule allows a peer when it lists no
peer (anyone) or one of them matches: a pod-selector peer matches pods (never an address outside the
cluster), a cidr peer an address in the block and in none of its ``except`` blocks (a pod's address too).
A rule allows a port when it lists none (all ports) or one entry has the protocol and the port (or the range
``port..end_port``). Replies of an allowed connection are allowed (stateful), and a pod talking to itself is
never filtered (loopback).

Values known only after apply (``UNKNOWN``) are never guessed: a selector known after apply selects no pod, a
pod whose labels are known after apply is selected only by the selectors its known labels satisfy (``{}``
always), a peer or port entry known after apply matches nothing, a pod without a known address matches no
cidr peer. Each such case is noted for the reader (:attr:`Reach.notes`, :attr:`Decision.reasons`).

What this module gives the rest of orch:

- :func:`decide`: one connection, with the reasons a reviewer reads;
- :func:`reachability` / :func:`reach_diff`: the pod-group matrix for the plan's traffic review, computed per
  distinct (labels, matching cidr blocks) of the replicas, not per replica pair;
- :func:`node_policy_program`: the plain-data ``policy`` section of one node's program, compiled by the
  Docker provider into nftables: the node's isolated pods and their rules, pod-selector peers as named
  address sets shared by every rule using the same selector (the rules grow with the node's pods times the
  policy rules selecting them, never with the square of the cluster's pods).
"""

from __future__ import annotations

import bisect
import hashlib
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

from ..addrs import ResourceAddress
from ..eval.plain import contains_unknown

POD = "pod"
NETWORK_POLICY = "network_policy"
INGRESS = "ingress"
EGRESS = "egress"
DIRECTIONS = (INGRESS, EGRESS)
PROTOCOLS = ("tcp", "udp", "sctp")
ALLOWED = "allowed"
DENIED = "denied"
PARTIAL = "partial"
ANY = "any"  # the port label of a destination that declares no port, when no policy names one
MAX_PORT = 65535

_K = TypeVar("_K", bound=ResourceAddress | str)

# ---- small helpers ------------------------------------------------------------------------------------------

_DIGITS = re.compile(r"(\d+)")


@lru_cache(maxsize=65536)
def _natural(text: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key: ``pod.web[2]`` before ``pod.web[10]``, ``80/tcp`` before ``443/tcp``."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in _DIGITS.split(text) if t)


@lru_cache(maxsize=65536)
def _ip(text: str) -> tuple[int, int] | None:
    """(IP version, integer) of an address, None if it is not one."""
    try:
        a = ipaddress.ip_address(text)
    except ValueError:
        return None
    return a.version, int(a)


@lru_cache(maxsize=4096)
def _net(text: str) -> tuple[int, int, int] | None:
    """(IP version, first address, last address) of a CIDR block, None if it is not one."""
    try:
        n = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    return n.version, int(n.network_address), int(n.broadcast_address)


def _network_text(text: str | None) -> str:
    """A CIDR block in its network form (host bits cleared), as given when it is none (checked before)."""
    try:
        return str(ipaddress.ip_network(str(text), strict=False))
    except ValueError:
        return str(text)


def _in(ip: tuple[int, int], net: tuple[int, int, int]) -> bool:
    return ip[0] == net[0] and net[1] <= ip[1] <= net[2]


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _selector_text(selector: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{k}={v}" for k, v in sorted(selector.items())) + "}"


def set_name(selector: Mapping[str, str]) -> str:
    """The address set of a pod-selector peer: one per distinct selector (a hash of its sorted items)."""
    return _set_name(tuple(sorted(selector.items())))


@lru_cache(maxsize=65536)
def _set_name(items: tuple[tuple[str, str], ...]) -> str:
    text = json.dumps([list(i) for i in items], separators=(",", ":"))
    return "peer-" + hashlib.sha256(text.encode()).hexdigest()[:12]


# ---- the model ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PortRange:
    """A destination port, or the range ``port..end_port``, of one protocol."""

    protocol: str
    port: int
    end_port: int | None = None  # None: the single port

    @property
    def last(self) -> int:
        return self.end_port if self.end_port is not None and self.end_port > self.port else self.port

    def matches(self, protocol: str, port: int) -> bool:
        return protocol == self.protocol and self.port <= port <= self.last

    @property
    def label(self) -> str:
        """``80/tcp`` or ``8000-8080/tcp``."""
        return f"{self.port}/{self.protocol}" if self.last == self.port else \
            f"{self.port}-{self.last}/{self.protocol}"


@dataclass(frozen=True)
class Peer:
    """A rule's peer: pods by labels (``selector``; ``{}``: every pod) or an address block (``cidr``)."""

    selector: Mapping[str, str] | None = None
    cidr: str | None = None
    except_: tuple[str, ...] = ()
    known: bool = True  # False: a part is known after apply; the peer matches nothing until then
    namespace: str | None = None  # another namespace's pods (by ``selector``): none of this configuration's

    def matches_pod(self, pod: PodInfo) -> bool:
        if not self.known or self.namespace is not None:
            return False
        if self.selector is not None:
            return _selects(self.selector, pod.labels)
        return pod.ip is not None and self.matches_address(pod.ip)

    def matches_address(self, address: str) -> bool:
        """Whether an address (outside the cluster, or a pod's) is in the block; a pod-selector peer: never."""
        if not self.known or self.cidr is None:
            return False
        ip, net = _ip(address), _net(self.cidr)
        if ip is None or net is None or not _in(ip, net):
            return False
        return not any((en := _net(e)) is not None and _in(ip, en) for e in self.except_)

    def describe(self) -> str:
        if not self.known:
            what = "pods" if self.selector is not None else "a block"
            return f"{what} known after apply (matching nothing yet)"
        if self.namespace is not None:
            what = f"pods {_selector_text(self.selector)}" if self.selector else "every pod"
            return f"{what} of namespace {self.namespace}"
        if self.selector is not None:
            return f"pods {_selector_text(self.selector)}" if self.selector else "every pod"
        exc = f" except {', '.join(self.except_)}" if self.except_ else ""
        return f"{self.cidr}{exc}"


@dataclass(frozen=True)
class Rule:
    """One ingress (``from``) or egress (``to``) rule; ``index`` is 1-based within its policy's list."""

    index: int
    peers: tuple[Peer, ...]  # empty: anyone
    ports: tuple[PortRange, ...]  # empty: all ports (unless unknown_ports)
    unknown_ports: bool = False  # some entries (or the list) known after apply: they match no port

    def port_text(self, protocol: str, port: int) -> str | None:
        """How the rule allows ``port/protocol`` ("port 80/tcp", "any port"), None if it does not."""
        if not self.ports:
            return None if self.unknown_ports else "any port"
        for p in self.ports:
            if p.matches(protocol, port):
                return f"{'port' if p.last == p.port else 'ports'} {p.label}"
        return None

    @property
    def allows_nothing(self) -> bool:
        return (not self.ports and self.unknown_ports) or (bool(self.peers) and not any(p.known for p in self.peers))


@dataclass(frozen=True)
class Policy:
    address: str
    selector: Mapping[str, str]
    types: frozenset[str]
    ingress: tuple[Rule, ...]
    egress: tuple[Rule, ...]
    selector_known: bool = True  # False: known after apply; the policy selects no pod until then
    notes: tuple[str, ...] = ()  # what is known after apply, for the reader

    def selects(self, pod: PodInfo) -> bool:
        return self.selector_known and _selects(self.selector, pod.labels)

    def rules(self, direction: str) -> tuple[Rule, ...]:
        return self.ingress if direction == INGRESS else self.egress


@dataclass(frozen=True)
class PodInfo:
    """One pod replica as policies see it."""

    address: str  # "pod.web[2]"
    group: str  # "pod.web"
    labels: Mapping[str, str]  # the known labels
    ip: str | None  # None: known after apply
    node: str | None
    ports: tuple[tuple[str, int], ...]  # its containers' declared (protocol, container_port), sorted
    unknown_labels: bool = False  # some labels (or all) known after apply


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reasons: tuple[str, ...]
    policies: tuple[str, ...] = ()  # the deciding policies: those allowing it, or those isolating it when denied


# ---- from plain values ------------------------------------------------------------------------------------


def _address(key: ResourceAddress | str) -> ResourceAddress | None:
    if isinstance(key, ResourceAddress):
        return key
    try:
        return ResourceAddress.parse(key)
    except ValueError:
        return None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _labels(raw: Any) -> tuple[dict[str, str], bool]:
    """Known labels, and whether some are known after apply."""
    if raw is None:
        return {}, False
    if not isinstance(raw, Mapping):
        return {}, True
    known = {str(k): str(v) for k, v in raw.items() if isinstance(v, (str, int, float)) and not isinstance(v, bool)}
    return known, len(known) != len(raw)


def pods_from_values(values: Mapping[_K, Mapping[str, Any]]) -> list[PodInfo]:
    """Every pod replica of ``values`` (planned values by address; other types are skipped), by address."""
    out = []
    for key, v in values.items():
        addr = _address(key)
        if addr is None or addr.type != POD or not isinstance(v, Mapping):
            continue
        labels, unknown = _labels(v.get("labels"))
        ip = v.get("ip")
        node = v.get("node")
        ports: set[tuple[str, int]] = set()
        containers = v.get("container")
        for c in containers if isinstance(containers, list) else []:
            cports = c.get("ports") if isinstance(c, Mapping) else None
            for p in cports if isinstance(cports, list) else []:
                if not isinstance(p, Mapping):
                    continue
                cp, proto = p.get("container_port"), p.get("protocol") or "tcp"
                if isinstance(cp, int) and not isinstance(cp, bool) and isinstance(proto, str):
                    ports.add((proto.lower(), cp))
        out.append(PodInfo(str(addr), str(ResourceAddress(addr.type, addr.name, None, addr.module)), labels,
                           ip if isinstance(ip, str) and _ip(ip) is not None else None,
                           node if isinstance(node, str) else None, tuple(sorted(ports)), unknown))
    return sorted(out, key=lambda p: _natural(p.address))


def _parse_ports(raw: Any) -> tuple[tuple[PortRange, ...], bool]:
    if raw is None:
        return (), False
    if not isinstance(raw, list):
        return (), True
    out, unknown = [], False
    for p in raw:
        if _is_int(p):
            p = {"port": p}
        if not isinstance(p, Mapping):
            unknown = True
            continue
        port, proto, end = p.get("port"), p.get("protocol") or "tcp", p.get("end_port")
        if not isinstance(port, int) or isinstance(port, bool) or not isinstance(proto, str) \
                or (end is not None and not _is_int(end)):
            unknown = True
            continue
        out.append(PortRange(proto.lower(), port, end if end is not None and end > port else None))
    return tuple(out), unknown


def _parse_peer(raw: Any, own_namespace: str | None = None) -> Peer:
    if not isinstance(raw, Mapping):
        return Peer(known=False)
    sel, cidr = raw.get("pod_selector"), raw.get("cidr")
    exc = raw.get("except", raw.get("except_")) or []
    if sel is not None:
        ns = raw.get("namespace")
        if not isinstance(sel, Mapping) or contains_unknown(dict(sel)) or (ns is not None and not isinstance(ns, str)):
            return Peer(selector={}, known=False)
        return Peer(selector={str(k): str(v) for k, v in sel.items()}, namespace=None if ns == own_namespace else ns)
    if not isinstance(cidr, str) or _net(cidr) is None:
        return Peer(known=False)
    if not isinstance(exc, list) or not all(isinstance(e, str) and _net(e) is not None for e in exc):
        return Peer(cidr=cidr, except_=tuple(e for e in exc if isinstance(e, str)) if isinstance(exc, list)
                    else (), known=False)
    return Peer(cidr=cidr, except_=tuple(exc))


def _parse_rules(raw: Any, peers_key: str, address: str, direction: str, own_namespace: str | None,
                 notes: list[str]) -> tuple[Rule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        notes.append(f"{address}: its {direction} rules are known after apply (none applied yet)")
        return ()
    out = []
    for i, r in enumerate(raw, 1):
        if not isinstance(r, Mapping):
            out.append(Rule(i, (Peer(known=False),), (), True))
            notes.append(f"{address} {direction} rule {i} is known after apply (it allows nothing yet)")
            continue
        peers_raw = r.get(peers_key, r.get(peers_key + "_")) or []
        peers = tuple(_parse_peer(p, own_namespace) for p in peers_raw) if isinstance(peers_raw, list) \
            else (Peer(known=False),)
        ports, unknown = _parse_ports(r.get("ports"))
        rule = Rule(i, peers, ports, unknown)
        if not all(p.known for p in peers):
            notes.append(f"{address} {direction} rule {i}: a peer is known after apply (it matches nothing yet)")
        if unknown:
            notes.append(f"{address} {direction} rule {i}: a port is known after apply (it matches nothing yet)")
        out.append(rule)
    return tuple(out)


def policies_from_values(values: Mapping[_K, Mapping[str, Any]], own_namespace: str | None = None) -> list[Policy]:
    """Every ``network_policy`` of ``values`` (as ``orchdsl.schema.normalize`` returns them), by address. A peer
    naming ``own_namespace`` is a peer of this configuration's pods."""
    out = []
    for key, v in values.items():
        addr = _address(key)
        if addr is None or addr.type != NETWORK_POLICY or not isinstance(v, Mapping):
            continue
        address = str(addr)
        notes: list[str] = []
        raw_sel = v.get("pod_selector")
        known = isinstance(raw_sel, Mapping) and not contains_unknown(dict(raw_sel))
        selector = {str(k): str(x) for k, x in raw_sel.items()} if known and isinstance(raw_sel, Mapping) else {}
        if not known:
            notes.append(f"{address}: its pod_selector is known after apply (it selects no pod yet)")
        ingress = _parse_rules(v.get("ingress"), "from", address, INGRESS, own_namespace, notes)
        egress_raw = v.get("egress")
        egress = _parse_rules(egress_raw, "to", address, EGRESS, own_namespace, notes)
        raw_types = v.get("policy_types")
        default = frozenset({INGRESS} | ({EGRESS} if egress_raw else set()))
        if raw_types is None:
            types = default
        elif not isinstance(raw_types, list) or contains_unknown(raw_types):
            types = default
            notes.append(f"{address}: its policy_types are known after apply (taken as {sorted(default)})")
        else:
            types = frozenset(str(t).lower() for t in raw_types) & frozenset(DIRECTIONS)
        out.append(Policy(address, selector, types, ingress, egress, known, tuple(notes)))
    return sorted(out, key=lambda p: _natural(p.address))


# ---- one connection -----------------------------------------------------------------------------------------


def _resolve(x: PodInfo | str, pods: Sequence[PodInfo]) -> PodInfo | str:
    """A pod, or an address outside the cluster (a string naming a pod or a pod's IP is that pod)."""
    if isinstance(x, PodInfo):
        return x
    for p in pods:
        if p.address == x:
            return p
    for p in pods:
        if p.ip == x:
            return p
    return x


def _rule_text(rule: Rule, other: PodInfo | str, protocol: str, port: int, direction: str) -> str | None:
    ports = rule.port_text(protocol, port)
    if ports is None:
        return None
    prep = "from" if direction == INGRESS else "to"
    if not rule.peers:
        return f"{prep} anywhere, {ports}"
    for peer in rule.peers:
        if peer.matches_pod(other) if isinstance(other, PodInfo) else peer.matches_address(other):
            return f"{prep} {peer.describe()}, {ports}"
    return None


def _judge(subject: PodInfo | str, other: PodInfo | str, direction: str, protocol: str, port: int,
           policies: Sequence[Policy]) -> tuple[bool, str, tuple[str, ...], tuple[str, ...]]:
    """(allowed, reason, deciding policies, isolating policies) for one direction of a connection."""
    if not isinstance(subject, PodInfo):
        return True, f"{subject} is outside the cluster: no {direction} policy applies to it", (), ()
    iso = sorted((p for p in policies if direction in p.types and p.selects(subject)),
                 key=lambda p: _natural(p.address))
    if not iso:
        return True, f"{subject.address} is not isolated for {direction}", (), ()
    names = ", ".join(p.address for p in iso)
    head = f"{subject.address} is isolated for {direction} by {names}"
    allowing: list[str] = []
    texts: list[str] = []
    for pol in iso:
        for rule in pol.rules(direction):
            text = _rule_text(rule, other, protocol, port, direction)
            if text is not None:
                allowing.append(pol.address)
                texts.append(f"{pol.address} {direction} rule {rule.index} ({text})")
                break
    isolating = tuple(p.address for p in iso)
    if allowing:
        return True, f"{head}; allowed by {' and '.join(texts)}", tuple(allowing), isolating
    return False, f"{head}; no rule of {names} allows it", isolating, isolating


def _notes_for(pods: Iterable[PodInfo], policies: Sequence[Policy]) -> list[str]:
    """What is known after apply and how it is taken, for the reader; pods grouped by their group."""
    out: list[str] = []
    has_cidr = any(peer.cidr is not None for pol in policies for d in DIRECTIONS for r in pol.rules(d)
                   for peer in r.peers)
    unknown_labels: dict[str, list[str]] = {}
    unknown_ip: dict[str, list[str]] = {}
    for p in pods:
        if p.unknown_labels:
            unknown_labels.setdefault(p.group, []).append(p.address)
        if p.ip is None and has_cidr:
            unknown_ip.setdefault(p.group, []).append(p.address)

    def who(group: str, members: list[str]) -> str:
        return members[0] if len(members) == 1 else f"{group} ({len(members)} replicas)"

    for g, members in sorted(unknown_labels.items()):
        out.append(f"{who(g, members)}: labels known after apply; only selectors its known labels satisfy "
                   "({} always) select it until then")
    for g, members in sorted(unknown_ip.items()):
        out.append(f"{who(g, members)}: address known after apply; no cidr peer matches it until then")
    for pol in policies:
        out.extend(pol.notes)
    return out


def decide(src: PodInfo | str, dst: PodInfo | str, protocol: str, port: int, policies: Sequence[Policy],
           pods: Sequence[PodInfo]) -> Decision:
    """Whether a new connection ``src -> dst:port/protocol`` is allowed, and why.

    A string is an address outside the cluster (or a pod's address/IP, taken as that pod).
    """
    protocol = protocol.lower()
    s, d = _resolve(src, pods), _resolve(dst, pods)
    if isinstance(s, PodInfo) and isinstance(d, PodInfo) and s.address == d.address:
        return Decision(True, (f"{s.address} talks to itself (loopback): never filtered",))
    e_ok, e_text, e_pols, _ = _judge(s, d, EGRESS, protocol, port, policies)
    i_ok, i_text, i_pols, _ = _judge(d, s, INGRESS, protocol, port, policies)
    involved = [x for x in (s, d) if isinstance(x, PodInfo)]
    notes = _notes_for(involved, policies)
    if e_ok and i_ok:
        deciding = e_pols + i_pols
    else:
        deciding = (() if e_ok else e_pols) + (() if i_ok else i_pols)
    return Decision(e_ok and i_ok, (e_text, i_text, *notes), tuple(dict.fromkeys(deciding)))


# ---- port sets ---------------------------------------------------------------------------------------------

# Allowed ports: None = every port of every protocol; else protocol -> sorted disjoint [first, last] intervals.
Allowed = dict[str, tuple[tuple[int, int], ...]] | None
_NOTHING: dict[str, tuple[tuple[int, int], ...]] = {}


def _rule_allowed(rule: Rule) -> Allowed:
    if not rule.ports:
        return _NOTHING if rule.unknown_ports else None
    by: dict[str, list[tuple[int, int]]] = {}
    for p in rule.ports:
        by.setdefault(p.protocol, []).append((p.port, p.last))
    return {proto: _merge(ivs) for proto, ivs in by.items()}


def _merge(ivs: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(ivs):
        if out and a <= out[-1][1] + 1:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return tuple(out)


def _union(items: Iterable[Allowed]) -> Allowed:
    by: dict[str, list[tuple[int, int]]] = {}
    for a in items:
        if a is None:
            return None
        for proto, ivs in a.items():
            by.setdefault(proto, []).extend(ivs)
    return {proto: _merge(ivs) for proto, ivs in by.items()}


def _intersect(a: Allowed, b: Allowed) -> Allowed:
    if a is None:
        return b
    if b is None:
        return a
    out: dict[str, tuple[tuple[int, int], ...]] = {}
    for proto in a.keys() & b.keys():
        x, y = a[proto], b[proto]
        i = j = 0
        ivs = []
        while i < len(x) and j < len(y):
            lo, hi = max(x[i][0], y[j][0]), min(x[i][1], y[j][1])
            if lo <= hi:
                ivs.append((lo, hi))
            if x[i][1] < y[j][1]:
                i += 1
            else:
                j += 1
        if ivs:
            out[proto] = tuple(ivs)
    return out


Label = tuple[tuple[str, int, int], ...]  # the (protocol, first, last) ports a port label stands for


def _measure(allowed: Allowed, label: Label) -> int:
    if allowed is None:
        return sum(b - a + 1 for _, a, b in label)
    n = 0
    for proto, a, b in label:
        for x, y in allowed.get(proto, ()):
            if y < a:
                continue
            if x > b:
                break
            n += min(b, y) - max(a, x) + 1
    return n


@lru_cache(maxsize=4096)
def parse_label(label: str) -> Label | None:
    """``8080/tcp`` -> ((tcp, 8080, 8080),); ``8000-8080/udp``; ``any`` -> every port of every protocol."""
    if label == ANY:
        return tuple((p, 1, MAX_PORT) for p in PROTOCOLS)
    m = re.fullmatch(r"(\d+)(?:-(\d+))?/(\w+)", label)
    if m is None:
        return None
    a = int(m.group(1))
    b = int(m.group(2)) if m.group(2) else a
    return ((m.group(3), a, max(a, b)),)


# ---- the index shared by reachability and node programs ---------------------------------------------------


class PolicyIndex:
    """Pods by distinct labels ("classes"), the policies isolating each class, and pod-selector address sets.

    Built once per plan: :func:`node_policy_program` keeps the last one for the same lists (:func:`index_for`),
    or takes one; :func:`reachability` takes one too.
    """

    def __init__(self, pods: Sequence[PodInfo], policies: Sequence[Policy]) -> None:
        self.pods = sorted(pods, key=lambda p: _natural(p.address))
        self.policies = sorted(policies, key=lambda p: _natural(p.address))
        classes: dict[tuple[tuple[tuple[str, str], ...], bool], int] = {}
        self.class_labels: list[Mapping[str, str]] = []
        self.class_pods: list[list[PodInfo]] = []
        self.pod_class: dict[str, int] = {}
        by_item: dict[tuple[str, str], set[int]] = {}
        for p in self.pods:
            key = (tuple(sorted(p.labels.items())), p.unknown_labels)
            cid = classes.get(key)
            if cid is None:
                cid = classes[key] = len(self.class_labels)
                self.class_labels.append(p.labels)
                self.class_pods.append([])
                for item in p.labels.items():
                    by_item.setdefault(item, set()).add(cid)
            self.class_pods[cid].append(p)
            self.pod_class[p.address] = cid
        self._by_item = by_item
        self._sel_cache: dict[tuple[tuple[str, str], ...], frozenset[int]] = {}
        self._set_cache: dict[str, list[str]] = {}
        n = len(self.class_labels)
        # per direction, per class: the indexes (in self.policies) of the policies isolating it
        self.isolating: dict[str, list[list[int]]] = {d: [[] for _ in range(n)] for d in DIRECTIONS}
        for pi, pol in enumerate(self.policies):
            dirs = [d for d in DIRECTIONS if d in pol.types]
            if not dirs or not pol.selector_known:
                continue
            for cid in sorted(self.selector_classes(pol.selector)):
                for d in dirs:
                    self.isolating[d][cid].append(pi)

    def selector_classes(self, selector: Mapping[str, str]) -> frozenset[int]:
        """The classes whose labels include all of ``selector`` ({}: every class)."""
        key = tuple(sorted(selector.items()))
        hit = self._sel_cache.get(key)
        if hit is not None:
            return hit
        if not key:
            out = frozenset(range(len(self.class_labels)))
        else:
            sets = sorted((self._by_item.get(item, set()) for item in key), key=len)
            out = frozenset(sets[0].intersection(*sets[1:]))
        self._sel_cache[key] = out
        return out

    def set_members(self, selector: Mapping[str, str]) -> list[str]:
        """The known addresses of the pods a selector matches, in address order."""
        name = set_name(selector)
        hit = self._set_cache.get(name)
        if hit is None:
            ips = {p.ip for c in self.selector_classes(selector) for p in self.class_pods[c] if p.ip is not None}
            hit = self._set_cache[name] = sorted(ips, key=lambda a: _ip(a) or (0, 0))
        return hit

    def isolating_policies(self, pod: PodInfo, direction: str) -> list[Policy]:
        cid = self.pod_class.get(pod.address)
        if cid is None:  # not indexed: decided directly
            return [p for p in self.policies if direction in p.types and p.selects(pod)]
        return [self.policies[i] for i in self.isolating[direction][cid]]


_last_index: list[tuple[tuple[PodInfo, ...], tuple[Policy, ...], PolicyIndex]] = []


def index_for(pods: Sequence[PodInfo], policies: Sequence[Policy]) -> PolicyIndex:
    """The index of these pods and policies: the last one built when given the very same objects again (a
    plan's per-node loop calls :func:`node_policy_program` with the same lists for every node)."""
    if _last_index:
        ps, pols, idx = _last_index[0]
        if len(ps) == len(pods) and len(pols) == len(policies) and all(a is b for a, b in zip(ps, pods)) \
                and all(a is b for a, b in zip(pols, policies)):
            return idx
    idx = PolicyIndex(pods, policies)
    _last_index[:] = [(tuple(pods), tuple(policies), idx)]
    return idx


# ---- reachability ------------------------------------------------------------------------------------------


class Reach(dict[tuple[str, str], dict[str, str]]):
    """``{(src_group, dst_group): {port_label: "allowed" | "denied" | "partial"}}``.

    ``policies[(src, dst, label)]``: the deciding policies of an entry (those allowing it; those isolating
    it where it is denied). ``notes``: what is known after apply and how it was taken. :meth:`state` also
    answers for a label the matrix does not list (used by :func:`reach_diff` when a label appears or goes).
    """

    def __init__(self, evaluate: Callable[[str, str, str], tuple[str, tuple[str, ...]] | None] | None = None
                 ) -> None:
        super().__init__()
        self.policies: dict[tuple[str, str, str], tuple[str, ...]] = {}
        self.notes: list[str] = []
        self._evaluate = evaluate

    def state(self, src: str, dst: str, label: str) -> tuple[str, tuple[str, ...]] | None:
        """(state, deciding policies) for any port label of a pair; None if the pair has no replica pair."""
        row = self.get((src, dst))
        if row is not None and label in row:
            return row[label], self.policies.get((src, dst, label), ())
        return self._evaluate(src, dst, label) if self._evaluate is not None else None


@dataclass(frozen=True)
class _Dir:
    """One side of a connection: the subject's isolating policies, the ports allowed, the rules allowing."""

    iso: tuple[int, ...]  # policies, by their position in the index (address order)
    allowed: Allowed
    rules: tuple[tuple[int, Allowed], ...]


_OPEN = _Dir((), None, ())


@dataclass(frozen=True)
class _RuleInfo:
    policy: int  # position in the index
    ports: Allowed
    always: bool  # matches every pod: no peer, or a cidr peer covering every pod's address
    classes: frozenset[int]  # label classes its pod-selector peers match
    splits: frozenset[int]  # the splitting cidr peers (see _Reachability) it lists


class _Reachability:
    """Reachability by *kind* of pod, never by replica pair.

    A pod's kind is its label class plus the cidr peers its address is in -- counting only "splitting" peers,
    those matching some pods but not all (an outside range or the whole pod range tells no pod apart). One side
    of a connection (the source's egress, the destination's ingress) depends on the subject's class and the
    other pod's kind, and then only on that kind's class and the splitting peers of the subject's own rules; the
    sides are computed per such key and interned, so a group pair costs its distinct (egress side, ingress side)
    combinations, whatever its replica count.
    """

    def __init__(self, index: PolicyIndex) -> None:
        self.index = index
        pods = index.pods
        by_ip = sorted((ip[0], ip[1], i) for i, p in enumerate(pods) if p.ip is not None
                       and (ip := _ip(p.ip)) is not None)  # (version, address, pod)
        self._by_ip = by_ip
        self._ip_keys = [(v, n) for v, n, _ in by_ip]
        self.cidr_status: dict[tuple[str, tuple[str, ...]], int | bool] = {}  # all pods, none, or a split id
        sig: list[set[int]] = [set() for _ in pods]
        splits = 0
        # every rule of an isolating direction of a policy
        self.rules: list[_RuleInfo] = []
        self.rule_ids: dict[tuple[int, str], list[int]] = {}
        for pi, pol in enumerate(index.policies):
            for d in DIRECTIONS:
                ids = self.rule_ids[(pi, d)] = []
                if d not in pol.types:
                    continue
                for rule in pol.rules(d):
                    always = not rule.peers
                    classes: set[int] = set()
                    rsplits: set[int] = set()
                    for peer in rule.peers:
                        if not peer.known or peer.namespace is not None:
                            continue  # another namespace's pods are none of these
                        if peer.selector is not None:
                            classes |= index.selector_classes(peer.selector)
                            continue
                        ck = (peer.cidr or "", peer.except_)
                        st = self.cidr_status.get(ck)
                        if st is None:
                            matched = self._cidr_pods(peer)
                            if not matched or len(matched) == len(pods):
                                st = bool(matched)
                            else:
                                st, splits = splits, splits + 1
                                for i in matched:
                                    sig[i].add(st)
                            self.cidr_status[ck] = st
                        if st is True:
                            always = True
                        elif not isinstance(st, bool):
                            rsplits.add(st)
                    ids.append(len(self.rules))
                    self.rules.append(_RuleInfo(pi, _rule_allowed(rule), always, frozenset(classes),
                                                frozenset(rsplits)))
        self.pod_sig = [frozenset(s) for s in sig]
        kinds: dict[tuple[int, frozenset[int]], int] = {}
        self.kind_class: list[int] = []
        self.kind_sig: list[frozenset[int]] = []
        self.pod_kind: dict[str, int] = {}
        for i, p in enumerate(pods):
            k = (index.pod_class[p.address], self.pod_sig[i])
            kid = kinds.get(k)
            if kid is None:
                kid = kinds[k] = len(self.kind_class)
                self.kind_class.append(k[0])
                self.kind_sig.append(k[1])
            self.pod_kind[p.address] = kid
        # per (direction, class): the rules of the policies isolating it, and the splits they list
        self._subject: dict[tuple[str, int], tuple[tuple[int, ...], list[int], frozenset[int]]] = {}
        self._side_cache: dict[tuple[str, int, int, frozenset[int]], int] = {}
        self._side_ids: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {((), ()): 0}
        self.sides: list[_Dir] = [_OPEN]
        self._side_labels: dict[tuple[int, str], tuple[int, frozenset[int]]] = {}

    def _cidr_pods(self, peer: Peer) -> set[int]:
        def inside(block: str) -> range:
            net = _net(block)
            if net is None:
                return range(0)
            return range(bisect.bisect_left(self._ip_keys, (net[0], net[1])),
                         bisect.bisect_right(self._ip_keys, (net[0], net[2])))

        out = {self._by_ip[j][2] for j in inside(peer.cidr or "")}
        for e in peer.except_:
            out.difference_update(self._by_ip[j][2] for j in inside(e))
        return out

    def _subject_rules(self, direction: str, cid: int) -> tuple[tuple[int, ...], list[int], frozenset[int]]:
        hit = self._subject.get((direction, cid))
        if hit is None:
            iso = self.index.isolating[direction][cid]
            ids = [rid for pi in iso for rid in self.rule_ids[(pi, direction)]]
            hit = (tuple(iso), ids,
                   frozenset().union(*(self.rules[r].splits for r in ids)))
            self._subject[(direction, cid)] = hit
        return hit

    def side(self, direction: str, cid: int, kind: int) -> int:
        """The side (an id in ``sides``) of a subject of class ``cid`` towards a pod of kind ``kind``."""
        iso, ids, relevant = self._subject_rules(direction, cid)
        if not iso:
            return 0
        ocid = self.kind_class[kind]
        osig = self.kind_sig[kind] & relevant
        key = (direction, cid, ocid, osig)
        hit = self._side_cache.get(key)
        if hit is not None:
            return hit
        rules = self.rules
        matched = tuple(r for r in ids if rules[r].always or ocid in rules[r].classes
                        or not rules[r].splits.isdisjoint(osig))
        sk = (iso, matched)
        sid = self._side_ids.get(sk)
        if sid is None:
            sid = self._side_ids[sk] = len(self.sides)
            self.sides.append(_Dir(iso, _union(rules[r].ports for r in matched),
                                   tuple((rules[r].policy, rules[r].ports) for r in matched)))
        self._side_cache[key] = sid
        return sid

    def cell(self, combos: Iterable[tuple[int, int]], label: str) -> tuple[str, frozenset[int]]:
        """(state, deciding policies) of one port label over (egress side, ingress side) combinations."""
        ivs = parse_label(label)
        assert ivs is not None
        total = _measure(None, ivs)
        cache = self._side_labels
        sides = self.sides
        states: set[str] = set()
        pols: set[int] = set()
        for eid, iid in combos:
            e, i = sides[eid], sides[iid]
            if not e.iso and not i.iso:
                states.add(ALLOWED)
                continue
            ek, ik = (eid, label), (iid, label)
            ehit, ihit = cache.get(ek), cache.get(ik)
            if ehit is None:
                ehit = cache[ek] = (_measure(e.allowed, ivs), frozenset(a for a, al in e.rules if _measure(al, ivs)))
            if ihit is None:
                ihit = cache[ik] = (_measure(i.allowed, ivs), frozenset(a for a, al in i.rules if _measure(al, ivs)))
            ge, gi = ehit[0], ihit[0]
            if total == 1 or not e.iso or not i.iso:  # one port, or one side allows everything
                got = ge if ge < gi else gi
            else:
                got = _measure(_intersect(e.allowed, i.allowed), ivs)
            if got == 0:
                states.add(DENIED)
                if ge == 0 or gi:
                    pols.update(e.iso)
                if gi == 0 or ge:
                    pols.update(i.iso)
            else:
                states.add(ALLOWED if got == total else PARTIAL)
                pols |= ehit[1]
                pols |= ihit[1]
        return (states.pop() if len(states) == 1 else PARTIAL), frozenset(pols)


class _Groups:
    """Pod groups over a :class:`_Reachability`: kinds per group and the side combinations of group pairs."""

    def __init__(self, r: _Reachability) -> None:
        self.r = r
        self.kinds: dict[str, dict[int, dict[int, int]]] = {}  # group -> class -> kind -> replicas
        for p in r.index.pods:
            k = r.pod_kind[p.address]
            by_class = self.kinds.setdefault(p.group, {}).setdefault(r.kind_class[k], {})
            by_class[k] = by_class.get(k, 0) + 1
        self._sides: dict[tuple[str, int, str, int], dict[int, list[int]]] = {}
        self._names: dict[frozenset[int], tuple[str, ...]] = {}

    def _by_side(self, direction: str, cid: int, group: str, ocid: int) -> dict[int, list[int]]:
        """Side id -> the kinds (of class ``ocid`` in ``group``) a subject of class ``cid`` has that side to."""
        key = (direction, cid, group, ocid)
        hit = self._sides.get(key)
        if hit is None:
            hit = {}
            for k in self.kinds[group][ocid]:
                hit.setdefault(self.r.side(direction, cid, k), []).append(k)
            self._sides[key] = hit
        return hit

    def combos(self, src: str, dst: str) -> set[tuple[int, int]]:
        """The (egress side, ingress side) pairs some replica pair of the two groups has (never a replica with
        itself)."""
        out: set[tuple[int, int]] = set()
        same = src == dst
        for cs, skinds in self.kinds[src].items():
            for cd in self.kinds[dst]:
                e_by = self._by_side(EGRESS, cs, dst, cd)
                i_by = self._by_side(INGRESS, cd, src, cs)
                for eid, kds in e_by.items():
                    for iid, kss in i_by.items():
                        if same and len(kds) == 1 and kss == kds and skinds[kds[0]] == 1:
                            continue  # the only such pair is one replica with itself
                        out.add((eid, iid))
        return out

    def state(self, src: str, dst: str, label: str, combos: set[tuple[int, int]] | None = None
              ) -> tuple[str, tuple[str, ...]] | None:
        ivs = parse_label(label)
        if src not in self.kinds or dst not in self.kinds or ivs is None:
            return None
        pairs = self.combos(src, dst) if combos is None else combos
        if not pairs:
            return None
        state, pols = self.r.cell(pairs, label)
        names = self._names.get(pols)
        if names is None:
            names = self._names[pols] = tuple(self.r.index.policies[i].address for i in sorted(pols))
        return state, names


def reachability(pods: Sequence[PodInfo], policies: Sequence[Policy], index: PolicyIndex | None = None) -> Reach:
    """Which pod groups reach which, per destination port label (see :class:`Reach`).

    Labels: each port the destination group declares, every port a policy rule names for it (an ingress rule
    of a policy selecting it, an egress rule of a policy selecting some pod whose peers match it), ``any`` when
    there is none. ``partial``: some replica pairs (or some ports of a range) allowed, others not. A replica
    is never paired with itself. ``index``: a :class:`PolicyIndex` of the same pods and policies, if at hand.
    """
    idx = index if index is not None else PolicyIndex(pods, policies)
    r = _Reachability(idx)
    g = _Groups(r)
    declared: dict[str, set[PortRange]] = {}
    class_groups: dict[int, set[str]] = {}
    split_groups: dict[int, set[str]] = {}
    for i, p in enumerate(idx.pods):
        declared.setdefault(p.group, set()).update(PortRange(proto, port) for proto, port in p.ports)
        class_groups.setdefault(idx.pod_class[p.address], set()).add(p.group)
        for s in r.pod_sig[i]:
            split_groups.setdefault(s, set()).add(p.group)
    named: dict[str, set[PortRange]] = {grp: set() for grp in g.kinds}
    for grp, classes in g.kinds.items():
        for c in classes:
            for pi in idx.isolating[INGRESS][c]:
                for rule in idx.policies[pi].ingress:
                    named[grp].update(rule.ports)
    applies = sorted({pi for c in range(len(idx.class_labels)) for pi in idx.isolating[EGRESS][c]})
    for pi in applies:
        for rid, rule in zip(r.rule_ids[(pi, EGRESS)], idx.policies[pi].egress):
            if not rule.ports:
                continue
            info = r.rules[rid]
            targets = set(g.kinds) if info.always else \
                {grp for c in info.classes for grp in class_groups.get(c, ())} | \
                {grp for s in info.splits for grp in split_groups.get(s, ())}
            for grp in targets:
                named[grp].update(rule.ports)
    labels: dict[str, list[str]] = {}
    for grp in g.kinds:
        ranges = {pr.label: pr for pr in declared[grp] | named[grp]}.values()
        labels[grp] = [pr.label for pr in sorted(ranges, key=lambda pr: (pr.port, pr.last, pr.protocol))] or [ANY]
    order = sorted(g.kinds, key=_natural)
    reach = Reach(g.state)
    for gs in order:
        for gd in order:
            combos = g.combos(gs, gd)
            if not combos:
                continue
            row: dict[str, str] = {}
            for label in labels[gd]:
                res = g.state(gs, gd, label, combos)
                assert res is not None
                row[label] = res[0]
                reach.policies[(gs, gd, label)] = res[1]
            reach[(gs, gd)] = row
    reach.notes = _notes_for(idx.pods, idx.policies)
    return reach


@dataclass(frozen=True)
class ReachChange:
    src_group: str
    dst_group: str
    port_label: str
    before_state: str | None  # None: the pair is new (a new group, or a group's second replica)
    after_state: str
    policies: tuple[str, ...]  # deciding policies, before and after


def reach_diff(before: Reach, after: Reach) -> list[ReachChange]:
    """The entries whose state changes, sorted; pairs that disappear (a group removed) are not changes.

    A label listed on one side only is evaluated on the other (:meth:`Reach.state`): removing the policy that
    named port 9000 shows ``9000/tcp denied -> allowed`` although the new matrix no longer lists it.
    """
    out: list[ReachChange] = []
    for pair, row in after.items():
        brow = before.get(pair)
        labels = list(row) + [lb for lb in (brow or {}) if lb not in row]
        for label in labels:
            a = after.state(pair[0], pair[1], label)
            if a is None:
                continue
            b = before.state(pair[0], pair[1], label) if brow is not None else None
            if b is not None and b[0] == a[0]:
                continue
            pols = tuple(sorted(set(a[1]) | set(b[1] if b else ()), key=_natural))
            out.append(ReachChange(pair[0], pair[1], label, b[0] if b else None, a[0], pols))
    return sorted(out, key=lambda c: (_natural(c.src_group), _natural(c.dst_group), _natural(c.port_label)))


# ---- one node's program ------------------------------------------------------------------------------------


def _rule_program(pol: Policy, rule: Rule) -> dict[str, Any] | None:
    """The rule as the node program carries it; None for a rule that allows nothing (known after apply)."""
    if rule.allows_nothing:
        return None
    peers: list[dict[str, Any]] | None = None
    if rule.peers:
        peers = []
        for peer in rule.peers:
            if not peer.known:
                continue
            if peer.namespace is not None and peer.selector is not None:
                # another namespace's pods: their addresses are not this configuration's to know; the provider
                # finds them on the nodes when it loads the program (and again at every refresh)
                peers.append({"namespace": peer.namespace, "pod_selector": dict(peer.selector)})
            elif peer.selector is not None:
                peers.append({"set": set_name(peer.selector)})
            else:
                # as networks ("198.18.0.1/24" is written 198.18.0.0/24): what nftables takes
                peers.append({"cidr": _network_text(peer.cidr), "except": [_network_text(e) for e in peer.except_]})
    ports = [{"protocol": p.protocol, "port": p.port, "end_port": p.last if p.last != p.port else None}
             for p in rule.ports]
    return {"policy": pol.address, "rule": rule.index, "peers": peers, "ports": ports}


def node_policy_program(node: str, pods: Sequence[PodInfo], policies: Sequence[Policy],
                        index: PolicyIndex | None = None) -> dict[str, Any]:
    """The ``policy`` section of one node's program: its isolated pods with their rules, and the address sets.

    ``{"pods": [{"pod", "ip", "ingress": None | [rule...], "egress": None | [rule...]}...], "sets": {...}}``;
    a rule is ``{"policy", "rule" (1-based), "peers": None | [{"set"} | {"cidr", "except"}], "ports": [] |
    [{"protocol", "port", "end_port"}]}``. The index of the pods and policies is built once for all nodes
    called with the same lists (:func:`index_for`), or passed. Plain data to read, not to edit in place: the
    rules' ``peers`` and ``ports`` lists are shared by the pods of the program that have the same rule.
    """
    idx = index if index is not None else index_for(pods, policies)
    out_pods: list[dict[str, Any]] = []
    selectors: dict[str, Mapping[str, str]] = {}
    rendered: dict[tuple[str, str, int], dict[str, Any] | None] = {}  # (policy, direction, rule) -> rule
    templates: dict[tuple[str, int], list[dict[str, Any]] | None] = {}  # (direction, class) -> rules

    def side(pod: PodInfo, d: str) -> list[dict[str, Any]] | None:
        cid = idx.pod_class.get(pod.address)
        key = (d, -1 if cid is None else cid)
        if cid is None or key not in templates:
            iso = idx.isolating_policies(pod, d)
            rules: list[dict[str, Any]] | None = [] if iso else None
            for pol in iso:
                for rule in pol.rules(d):
                    rk = (pol.address, d, rule.index)
                    if rk not in rendered:
                        rendered[rk] = _rule_program(pol, rule)
                        for peer in rule.peers:
                            if peer.known and peer.selector is not None and peer.namespace is None:
                                selectors.setdefault(set_name(peer.selector), peer.selector)
                    prog = rendered[rk]
                    if prog is not None and rules is not None:
                        rules.append(prog)
            if cid is None:
                return rules
            templates[key] = rules
        t = templates[key]
        return None if t is None else [dict(r) for r in t]

    for pod in idx.pods:
        if pod.node != node:
            continue
        ingress, egress = side(pod, INGRESS), side(pod, EGRESS)
        if ingress is None and egress is None:
            continue
        out_pods.append({"pod": pod.address, "ip": pod.ip, "ingress": ingress, "egress": egress})
    sets = {name: list(idx.set_members(sel)) for name, sel in sorted(selectors.items())}
    return {"pods": out_pods, "sets": sets}


def program_rule_count(program: Mapping[str, Any]) -> int:
    """The rules a compiler emits for a node program: one per (rule x peer x port entry)."""
    n = 0
    for pod in program.get("pods", []):
        for d in DIRECTIONS:
            for rule in pod.get(d) or []:
                peers = rule["peers"]
                n += (1 if peers is None else len(peers)) * max(1, len(rule["ports"]))
    return n


__all__ = ["ALLOWED", "ANY", "DENIED", "Decision", "PARTIAL", "Peer", "PodInfo", "Policy", "PolicyIndex",
           "PortRange", "Reach", "ReachChange", "Rule", "decide", "index_for", "node_policy_program",
           "parse_label", "pods_from_values", "policies_from_values", "program_rule_count", "reach_diff",
           "reachability", "set_name"]
