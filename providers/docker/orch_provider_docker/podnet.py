"""A node's pod network: the host-gw model (flannel's ``host-gw``, kubenet), made and checked by orch.

Every node that carries pods gets, once for all the namespaces (configurations) that use it:

* a Docker bridge network ``orch`` (bridge device ``orch0``) whose subnet is the node's pod subnet (a /24
  of the cluster's pod CIDR), gateway its first address, with Docker's masquerading turned off
  (``com.docker.network.bridge.enable_ip_masquerade=false``: a dockerd restart then has no masquerade rule of
  its own to put back ahead of ours) and the label ``orch.pod-network=<cluster cidr>``;
* a route to every other node's pod subnet via that node's address, marked ``proto 211`` so that orch's
  routes (and the stale ones) are found again with ``ip route show proto 211``;
* the nftables table ``table ip orch``: pods' traffic leaving the cluster is masqueraded, pod-to-pod
  traffic is not (policies match pod source addresses);
* the iptables chain ``ORCH-FORWARD``, hooked first in ``DOCKER-USER``, that lets pod-to-pod traffic
  through Docker's ``FORWARD`` (text from :mod:`.netrules`).

:func:`observe` reads all of it with one command (a fixed script, no user data in it) and one Engine API
call; :func:`drift` says what differs from a :class:`PodNetwork`; :func:`ensure` makes it so and says what it
changed; :func:`teardown` removes it when the last namespace leaves the node. :func:`preconditions` lists
what the node lacks (tools, ``br_netfilter``, ``ip_forward``), each with its fix.

Every command is an argv run through a :class:`~.hostexec.Host` (over the node's SSH connection, with sudo
when ``become``); the values in them (subnets, addresses) are validated IPv4 networks and addresses.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import netrules
from .hostexec import Host, HostCommandError

NETWORK_NAME = "orch"
BRIDGE = "orch0"
ROUTE_PROTO = "211"
LABEL = "orch.pod-network"  # on the network: its value is the cluster's pod CIDR
NAMESPACE_LABEL = "orch.namespace"  # on pods' containers
LINEAGE_LABEL = "orch.lineage"
NAT_TABLE = "orch"  # table ip orch
NS_TABLE_PREFIX = "orch-ns-"  # table ip orch-ns-<namespace>: a namespace's services (not made here)
OPT_BRIDGE_NAME = "com.docker.network.bridge.name"
OPT_MASQUERADE = "com.docker.network.bridge.enable_ip_masquerade"
RESTORE = ("iptables-restore", "-w", "5", "--noflush")

# The node, read in one exec: who we are, which tools exist, the two sysctls, then one section per listing.
# Every section ends with the exit status of its command. Fixed text: nothing from the configuration.
_PROBE_PATH = 'PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"; export PATH\n'
_PROBE_ENV = r"""echo "@@ env"
echo "uid=$(id -u)"
for t in ip nft iptables iptables-restore conntrack; do
  if command -v "$t" >/dev/null 2>&1; then echo "have.$t=1"; else echo "have.$t=0"; fi
done
echo "bridge-nf-call-iptables=$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null)"
echo "ip_forward=$(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null)"
echo "@@ rc 0"
"""
_PROBE_DRIFT = r"""echo "@@ routes"; ip -j route show proto 211 2>&1; echo "@@ rc $?"
echo "@@ docker-user"; iptables -w 5 -S DOCKER-USER 2>&1; echo "@@ rc $?"
echo "@@ orch-forward"; iptables -w 5 -S ORCH-FORWARD 2>&1; echo "@@ rc $?"
echo "@@ orch-table"; nft list table ip orch 2>&1; echo "@@ rc $?"
"""
_PROBE_TABLES = r"""echo "@@ tables"; nft -j list tables 2>&1; echo "@@ rc $?"
"""
PROBE = _PROBE_PATH + _PROBE_ENV + _PROBE_DRIFT + _PROBE_TABLES
PROBE_ARGV = ("sh", "-c", PROBE)
# The sections :func:`drift` reads, and only those: what a refresh runs (a script may follow it, adding sections
# of its own). Not the preconditions (checked when a plan changes the node) nor the other namespaces' tables
# (looked at when the network is torn down): the node's shell starts fewer programs on every refresh.
DRIFT_PROBE = _PROBE_PATH + _PROBE_DRIFT

_TOOLS = (("ip", "iproute2"), ("nft", "nftables"), ("iptables", "iptables"), ("iptables-restore", "iptables"),
          ("conntrack", "conntrack"))
BR_NETFILTER_FIX = "modprobe br_netfilter; sysctl -w net.bridge.bridge-nf-call-iptables=1"


class PodNetworkError(Exception):
    """The node's pod network cannot be made as wanted; rendered like a node diagnostic."""

    def __init__(self, node: str, summary: str, detail: str = "", hint: str = ""):
        super().__init__(f"node {node}: {summary}" + (f": {detail}" if detail else ""))
        self.node = node
        self.summary = summary
        self.detail = detail
        self.hint = hint


class NetworkEngine(Protocol):
    """The Engine calls used here (transport.Engine; FakeEngine in the tests)."""

    def networks(self, label: str) -> list[dict[str, Any]]: ...

    def create_network(self, name: str, body: Mapping[str, Any]) -> str: ...

    def inspect_network(self, nid: str) -> dict[str, Any]: ...

    def remove_network(self, nid: str) -> None: ...

    def list_containers(self, labels: Iterable[str]) -> list[dict[str, Any]]: ...


# ---- what is wanted ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class PodNetwork:
    """One node's pod network: its pod subnet, the cluster's pod CIDR, routes to the other nodes' subnets."""

    node: str
    pod_cidr: str
    cluster_cidr: str
    routes: tuple[tuple[str, str], ...] = ()  # (subnet, via node address) for every OTHER node, sorted

    def __post_init__(self) -> None:
        pod = ipaddress.IPv4Network(self.pod_cidr)  # strict: raises ValueError on host bits
        cluster = ipaddress.IPv4Network(self.cluster_cidr)
        if not pod.subnet_of(cluster):
            raise ValueError(f"pod subnet {self.pod_cidr} of node {self.node} lies outside {self.cluster_cidr}")
        if pod.num_addresses < 4:
            raise ValueError(f"pod subnet {self.pod_cidr} of node {self.node} is too small")
        for subnet, via in self.routes:
            ipaddress.IPv4Address(via)
            if ipaddress.IPv4Network(subnet).overlaps(pod):
                raise ValueError(f"route to {subnet} via {via} overlaps node {self.node}'s own pod subnet {pod}")
        object.__setattr__(self, "pod_cidr", str(pod))
        object.__setattr__(self, "cluster_cidr", str(cluster))
        object.__setattr__(self, "routes", tuple(sorted((str(ipaddress.IPv4Network(s)), str(ipaddress.IPv4Address(v)))
                                                        for s, v in self.routes)))

    @classmethod
    def for_node(cls, node: str, cluster_cidr: str, subnets: Mapping[str, tuple[str, str]]) -> PodNetwork:
        """Node ``node``'s network from every node's (pod subnet, address) in ``subnets``."""
        pod_cidr = subnets[node][0]
        return cls(node, pod_cidr, cluster_cidr,
                   tuple((s, addr) for n, (s, addr) in subnets.items() if n != node))

    @property
    def gateway(self) -> str:
        """The bridge's address: the subnet's first host address."""
        return str(next(ipaddress.IPv4Network(self.pod_cidr).hosts()))

    def network_body(self) -> dict[str, Any]:
        """``POST /networks/create`` for the ``orch`` network (Name aside)."""
        return {"Driver": "bridge", "CheckDuplicate": True, "Internal": False, "Attachable": False,
                "IPAM": {"Driver": "default", "Config": [{"Subnet": self.pod_cidr, "Gateway": self.gateway}]},
                "Options": {OPT_BRIDGE_NAME: BRIDGE, OPT_MASQUERADE: "false"},
                "Labels": {LABEL: self.cluster_cidr}}

    def nat_lines(self) -> list[str]:
        """``table ip orch`` as ``nft list table ip orch`` shows it (lines stripped; see _nft_lines)."""
        return [f"table ip {NAT_TABLE} {{",
                "chain postrouting {",
                "type nat hook postrouting priority 100; policy accept;",
                f'ip saddr {self.pod_cidr} ip daddr != {self.cluster_cidr} oifname != "{BRIDGE}" masquerade',
                "}",
                "}"]

    def nat_script(self) -> str:
        """``nft -f -`` input replacing the table in one transaction (made first so that the delete works)."""
        body = self.nat_lines()
        indent = ["", "\t", "\t\t", "\t\t", "\t", ""]
        return "\n".join([f"table ip {NAT_TABLE}", f"delete table ip {NAT_TABLE}",
                          *(i + x for i, x in zip(indent, body))]) + "\n"


# ---- what is there ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BridgeNetwork:
    """A Docker network labelled ``orch.pod-network`` on the node."""

    id: str
    name: str
    subnet: str | None
    gateway: str | None
    bridge: str | None  # com.docker.network.bridge.name
    masquerade: str | None  # com.docker.network.bridge.enable_ip_masquerade ("false" for ours)
    cluster_cidr: str | None  # the label's value
    driver: str = "bridge"

    @classmethod
    def from_api(cls, n: Mapping[str, Any]) -> BridgeNetwork:
        cfg = ((n.get("IPAM") or {}).get("Config") or [{}])[0] or {}
        opts = n.get("Options") or {}
        return cls(id=str(n.get("Id", "")), name=str(n.get("Name", "")), subnet=cfg.get("Subnet") or None,
                   gateway=cfg.get("Gateway") or None, bridge=opts.get(OPT_BRIDGE_NAME),
                   masquerade=opts.get(OPT_MASQUERADE), cluster_cidr=(n.get("Labels") or {}).get(LABEL),
                   driver=str(n.get("Driver") or ""))

    def differences(self, want: PodNetwork) -> list[str]:
        out = []
        if self.subnet != want.pod_cidr:
            out.append(f"subnet {self.subnet}, not {want.pod_cidr}")
        elif self.gateway not in (None, want.gateway):
            out.append(f"gateway {self.gateway}, not {want.gateway}")
        if self.driver != "bridge":
            out.append(f"driver {self.driver}, not bridge")
        if self.bridge != BRIDGE:
            out.append(f"bridge device {self.bridge or '(docker-chosen)'}, not {BRIDGE}")
        if self.masquerade != "false":
            out.append("Docker's masquerading on")
        return out


@dataclass(frozen=True)
class Observed:
    node: str
    problems: tuple[str, ...] = ()  # unmet preconditions, each with its fix
    networks: tuple[BridgeNetwork, ...] = ()
    routes: tuple[tuple[str, str], ...] = ()  # orch's (proto 211): (destination, gateway)
    docker_user: str = ""  # iptables -S DOCKER-USER ("" when the chain is missing)
    orch_forward: str = ""  # iptables -S ORCH-FORWARD ("" when missing)
    nat_table: tuple[str, ...] | None = None  # table ip orch, normalised lines (None: missing)
    ns_tables: tuple[str, ...] = ()  # namespaces with a table ip orch-ns-<namespace>
    raw: Mapping[str, tuple[str, int]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def network(self) -> BridgeNetwork | None:
        return next((n for n in self.networks if n.name == NETWORK_NAME), None)


def _sections(text: str) -> dict[str, tuple[str, int]]:
    """The probe's output: section name -> (text, exit status)."""
    out: dict[str, tuple[str, int]] = {}
    name: str | None = None
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("@@ rc "):
            if name is not None:
                try:
                    rc = int(line[6:].strip())
                except ValueError:
                    rc = -1
                out[name] = ("\n".join(lines), rc)
            name, lines = None, []
        elif line.startswith("@@ "):
            name, lines = line[3:].strip(), []
        elif name is not None:
            lines.append(line)
    return out


def _env(sections: Mapping[str, tuple[str, int]]) -> dict[str, str]:
    text = sections.get("env", ("", 0))[0]
    return dict(x.split("=", 1) for x in text.splitlines() if "=" in x)


def _problems(env: Mapping[str, str], sections: Mapping[str, tuple[str, int]]) -> list[str]:
    out = []
    if not env:
        return ["the node did not answer the pod network probe (is /bin/sh a POSIX shell?)"]
    uid = env.get("uid", "")
    if uid != "0":
        out.append(f"commands run as uid {uid or '?'}, not root: orch changes routes, nftables and iptables on "
                   "the node (log in as root, or set become = true with passwordless sudo)")
    for tool, pkg in _TOOLS:
        if env.get(f"have.{tool}") != "1":
            out.append(f"{tool} is not installed (apt-get install {pkg})")
    bnf = env.get("bridge-nf-call-iptables", "")
    if bnf == "":
        out.append(f"br_netfilter is not loaded: pods on one node would bypass iptables ({BR_NETFILTER_FIX})")
    elif bnf != "1":
        out.append(f"net.bridge.bridge-nf-call-iptables is {bnf}, not 1: pods on one node would bypass iptables "
                   f"({BR_NETFILTER_FIX}; it is per network namespace)")
    fwd = env.get("ip_forward", "")
    if fwd != "1":
        out.append(f"net.ipv4.ip_forward is {fwd or '?'}, not 1: the node would not forward pod traffic "
                   "(sysctl -w net.ipv4.ip_forward=1)")
    if uid == "0" and env.get("have.iptables") == "1":
        text, rc = sections.get("docker-user", ("", 1))
        if rc != 0:
            out.append("iptables has no DOCKER-USER chain: orch needs dockerd with iptables enabled "
                       '("iptables": true in /etc/docker/daemon.json, the default), started before orch runs'
                       + (f" ({text.strip().splitlines()[-1]})" if text.strip() else ""))
    return out


def _probe(host: Host) -> dict[str, tuple[str, int]]:
    res = host.run(PROBE_ARGV, check=False)
    return _sections(res.stdout)


def preconditions(host: Host) -> list[str]:
    """What the node lacks for a pod network, each with its fix ([] when nothing). One exec."""
    return problems(_probe(host))


def problems(sections: Mapping[str, tuple[str, int]]) -> list[str]:
    """:func:`preconditions` from PROBE's sections (:func:`parse_probe`), for a caller that ran PROBE as part
    of a longer script."""
    return _problems(_env(sections), sections)


def _nft_lines(text: str) -> tuple[str, ...]:
    """A listing, stripped and with nft's named priorities as numbers (versions print either)."""
    out = []
    for line in text.splitlines():
        x = " ".join(line.split())
        if x:
            out.append(x.replace("priority srcnat;", "priority 100;"))
    return tuple(out)


def _routes(text: str) -> tuple[tuple[str, str], ...]:
    try:
        data = json.loads(text) if text.strip() else []
    except ValueError:
        return ()
    out = []
    for r in data if isinstance(data, list) else []:
        dst, gw = r.get("dst"), r.get("gateway")
        if not isinstance(dst, str) or dst == "default":
            continue
        try:
            net = str(ipaddress.IPv4Network(dst, strict=False))
        except ValueError:
            continue
        out.append((net, gw if isinstance(gw, str) else ""))
    return tuple(sorted(out))


def _ns_tables(text: str) -> tuple[str, ...]:
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError:
        return ()
    names = []
    for item in data.get("nftables", []) if isinstance(data, dict) else []:
        t = item.get("table") if isinstance(item, dict) else None
        if isinstance(t, dict) and t.get("family") == "ip" and str(t.get("name", "")).startswith(NS_TABLE_PREFIX):
            names.append(str(t["name"])[len(NS_TABLE_PREFIX):])
    return tuple(sorted(names))


def observe(host: Host, engine: NetworkEngine) -> Observed:
    """The node's pod network as it is: one exec (PROBE) and one Engine API call."""
    return observed(host.node, _probe(host), engine.networks(LABEL))


def parse_probe(text: str) -> dict[str, tuple[str, int]]:
    """PROBE's output (or that of a script that starts with PROBE and adds sections of its own, like the
    provider's refresh): section name -> (text, exit status)."""
    return _sections(text)


def observed(node: str, s: Mapping[str, tuple[str, int]], networks: Iterable[Mapping[str, Any]]) -> Observed:
    """The node's pod network from PROBE's sections (:func:`parse_probe`) and the Engine's networks labelled
    LABEL: pure, so that a caller that read the node another way (one exec for several purposes) gets the same
    answer as :func:`observe`."""
    env = _env(s)
    nets = tuple(sorted((BridgeNetwork.from_api(n) for n in networks), key=lambda n: n.name))

    def ok(name: str) -> str:
        text, rc = s.get(name, ("", 1))
        return text if rc == 0 else ""

    table = s.get("orch-table", ("", 1))
    return Observed(node=node, problems=tuple(_problems(env, s)), networks=nets, routes=_routes(ok("routes")),
                    docker_user=ok("docker-user"), orch_forward=ok("orch-forward"),
                    nat_table=_nft_lines(table[0]) if table[1] == 0 else None, ns_tables=_ns_tables(ok("tables")),
                    raw=s)


# ---- differences ---------------------------------------------------------------------------------------

def _route_changes(want: PodNetwork, seen: Observed) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(routes to replace, stale routes to delete)."""
    have = dict(seen.routes)
    wanted = dict(want.routes)
    replace = [(s, v) for s, v in want.routes if have.get(s) != v]
    stale = [(s, g) for s, g in seen.routes if s not in wanted]
    return replace, stale


def _forward_drift(want: PodNetwork, seen: Observed) -> list[str]:
    return netrules.forward_drift(want.cluster_cidr, seen.docker_user, seen.orch_forward)


def drift(want: PodNetwork, seen: Observed) -> list[str]:
    """Why the node's pod network is not ``want`` ([] when it is)."""
    out: list[str] = []
    net = seen.network
    if net is None:
        out.append(f"the bridge network {NETWORK_NAME} ({want.pod_cidr}) is missing")
    else:
        diffs = net.differences(want)
        if net.subnet != want.pod_cidr:
            out.append(f"the existing pod network has subnet {net.subnet}, not {want.pod_cidr}")
            diffs = diffs[1:]
        if diffs:
            out.append(f"the bridge network {NETWORK_NAME} has {', '.join(diffs)}")
    have = dict(seen.routes)
    replace, stale = _route_changes(want, seen)
    for s, v in replace:
        if s in have:
            out.append(f"route to {s} goes via {have[s] or '(no gateway)'}, not {v}")
        else:
            out.append(f"route to {s} via {v} is missing")
    for s, g in stale:
        out.append(f"stale route to {s}" + (f" via {g}" if g else ""))
    if seen.nat_table != tuple(want.nat_lines()):
        out.append(f"table ip {NAT_TABLE} is missing or changed")
    out += _forward_drift(want, seen)
    return out


# ---- making it so --------------------------------------------------------------------------------------

def _attached(engine: NetworkEngine, net: BridgeNetwork) -> list[dict[str, Any]]:
    """Containers on ``net``, in any state: those listed with it (created, stopped) and its endpoints."""
    ids = set((engine.inspect_network(net.id).get("Containers") or {}).keys())
    out = []
    for c in engine.list_containers([]):
        nets = ((c.get("NetworkSettings") or {}).get("Networks") or {})
        mode = (c.get("HostConfig") or {}).get("NetworkMode")
        if c.get("Id") in ids or net.name in nets or mode in (net.name, net.id):
            out.append(c)
            ids.discard(c.get("Id"))
    out += [{"Id": i, "Names": [], "Labels": {}} for i in sorted(ids)]
    return out


def _name(c: Mapping[str, Any]) -> str:
    names = c.get("Names") or []
    return str(names[0]).lstrip("/") if names else str(c.get("Id", ""))[:12]


def _ensure_network(host: Host, engine: NetworkEngine, want: PodNetwork, seen: Observed) -> list[str]:
    from .transport import Conflict, EngineError

    net = seen.network
    changes: list[str] = []
    if net is not None:
        diffs = net.differences(want)
        if not diffs:
            return []
        users = _attached(engine, net)
        if users:
            names = ", ".join(sorted(_name(c) for c in users)[:5]) + (" ..." if len(users) > 5 else "")
            raise PodNetworkError(
                want.node, f"the pod network {NETWORK_NAME} differs and is in use",
                f"the existing Docker network {NETWORK_NAME} has {', '.join(diffs)}; {len(users)} container(s) "
                f"use it ({names}), so orch does not replace it.",
                hint=f"remove those containers (orch destroy in the configurations that use node {want.node}), "
                     f"or give the node its old pod subnet {net.subnet}")
        engine.remove_network(net.id)
        changes.append(f"removed network {NETWORK_NAME} ({'; '.join(diffs)})")
    try:
        engine.create_network(NETWORK_NAME, want.network_body())
    except Conflict as e:
        raise PodNetworkError(
            want.node, f"a Docker network named {NETWORK_NAME} exists that orch did not make", str(e),
            hint=f"rename or remove it on the node (docker network rm {NETWORK_NAME}), orch needs the name") \
            from None
    except EngineError as e:
        overlap = "overlap" in str(e).lower()
        raise PodNetworkError(
            want.node, f"cannot create the pod network {NETWORK_NAME} ({want.pod_cidr})", str(e),
            hint="another network on the node uses addresses of the pod subnet: set pod_cidr in the orch block "
                 "to a range free on every node" if overlap else "") from None
    changes.append(f"created network {NETWORK_NAME} ({want.pod_cidr}, bridge {BRIDGE})")
    return changes


def _ensure_routes(host: Host, want: PodNetwork, seen: Observed) -> list[str]:
    replace, stale = _route_changes(want, seen)
    if not replace and not stale:
        return []
    lines = [f"route replace {s} via {v} proto {ROUTE_PROTO}" for s, v in replace]
    lines += [f"route del {s} proto {ROUTE_PROTO}" for s, _ in stale]
    try:
        host.run(["ip", "-batch", "-"], stdin=("\n".join(lines) + "\n").encode())
    except HostCommandError as e:
        if "gateway" in e.stderr or "unreachable" in e.stderr.lower():
            e.hint = ("host-gw routing needs the nodes on one network segment: each node's address must be "
                      "directly reachable from the others")
        raise
    return ([f"route {s} via {v}" for s, v in replace]
            + [f"removed stale route {s}" + (f" via {g}" if g else "") for s, g in stale])


def ensure(host: Host, engine: NetworkEngine, want: PodNetwork, seen: Observed | None = None) -> list[str]:
    """Make the node's pod network ``want`` (idempotent); returns what changed ([] when nothing did).

    ``seen`` is a fresh :func:`observe` of the node (observed here when None). Raises PodNetworkError when the
    node lacks something (:func:`preconditions`) or the network cannot be made, HostCommandError when a
    command fails."""
    if seen is None:
        seen = observe(host, engine)
    if seen.problems:
        raise PodNetworkError(want.node, "the node cannot carry the pod network", "; ".join(seen.problems),
                              hint="fix the node as said, then apply again")
    changes = _ensure_network(host, engine, want, seen)
    changes += _ensure_routes(host, want, seen)
    if seen.nat_table != tuple(want.nat_lines()):
        host.run(["nft", "-f", "-"], stdin=want.nat_script().encode())
        changes.append(f"table ip {NAT_TABLE} (masquerade {want.pod_cidr} leaving {want.cluster_cidr})")
    fwd = _forward_drift(want, seen)
    if fwd:
        first, elsewhere = netrules.parse_docker_user(seen.docker_user)
        text = netrules.forward_restore(want.cluster_cidr, first, elsewhere)
        host.run(RESTORE, stdin=text.encode())
        changes.append("iptables ORCH-FORWARD, hooked first in DOCKER-USER")
    return changes


# ---- tearing down ---------------------------------------------------------------------------------------

def users(engine: NetworkEngine, seen: Observed, namespace: str, lineage: str = "") -> list[str]:
    """Who else uses the node's pod network than ``namespace`` (of the state ``lineage``, when given): other
    namespaces' service tables and containers on the network (other namespaces', another state's of the same
    namespace, or not orch's)."""
    out = [f"namespace {ns}" for ns in seen.ns_tables if ns != namespace]
    net = seen.network
    if net is not None:
        others: set[str] = set()
        for c in _attached(engine, net):
            labels = c.get("Labels") or {}
            ns = labels.get(NAMESPACE_LABEL)
            if ns != namespace:
                others.add(f"namespace {ns}" if ns else f"container {_name(c)}")
            elif lineage and labels.get(LINEAGE_LABEL) != lineage:
                others.add(f"another configuration of namespace {ns} (state lineage {labels.get(LINEAGE_LABEL)})")
        out += sorted(others - set(out))
    return out


def teardown(host: Host, engine: NetworkEngine, namespace: str, seen: Observed | None = None,
             lineage: str = "") -> list[str]:
    """Remove the node's pod network when ``namespace`` leaves the node, unless someone else still uses it
    (then it is kept, and the one line returned says so). Returns what was done."""
    from .transport import EngineError

    if seen is None:
        seen = observe(host, engine)
    still = users(engine, seen, namespace, lineage)
    if still:
        return [f"kept the pod network of node {host.node}: {', '.join(still)} still use(s) it"]
    changes: list[str] = []
    if seen.routes:
        host.run(["ip", "route", "flush", "proto", ROUTE_PROTO])
        changes.append(f"removed {len(seen.routes)} pod route(s)")
    if seen.nat_table is not None:
        host.run(["nft", "delete", "table", "ip", NAT_TABLE])
        changes.append(f"removed table ip {NAT_TABLE}")
    if seen.orch_forward or "ORCH-FORWARD" in seen.docker_user:
        first, elsewhere = netrules.parse_docker_user(seen.docker_user)
        host.run(RESTORE, stdin=netrules.forward_delete(int(first) + elsewhere, bool(seen.orch_forward)).encode())
        changes.append("removed iptables ORCH-FORWARD")
    for net in seen.networks:
        try:
            engine.remove_network(net.id)
        except EngineError as e:
            raise PodNetworkError(host.node, f"cannot remove the pod network {net.name}", str(e),
                                  hint="containers still use it: remove them, then try again") from None
        changes.append(f"removed network {net.name}")
    return changes

