"""The Docker provider's networking: each node's pod network, each node's service program, services.

* ``node`` (with a ``pod_cidr`` from the core): the node's pod network (:mod:`.podnet`): orch's bridge network,
  routes to the other nodes' pod subnets, the forward filter and the outbound masquerade. Made or repaired at
  the node's create/update, read back at refresh (drift becomes a repair), removed with the node unless
  another namespace still uses it.
* ``node_services.<node>`` (produced by the core, :mod:`orchdsl.cluster.services`): the namespace's nftables
  table on the node (:mod:`.netrules`: virtual IPs, node ports, endpoints), hairpin on the bridge's ports, and
  the service names in the hosts file of each of the namespace's pods there. Loaded in one ``nft -f``
  transaction (a small change as a delta), read back at refresh.
* ``service``: the service's values as decided by the core (its cluster IP); nothing exists on a host for it
  alone, its realisation is every node's ``node_services``.

Every host command goes through :mod:`.hostexec` as argv (``become`` adds sudo); scripts are fixed strings,
user values reach them only as arguments or on stdin.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import ipaddress
import json
import socket
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchdsl.sdk import (UNKNOWN, ApplyRequest, ApplyResult, ChangeView, Diagnostic, ObjectStatus, PlannedObject,
                         ResourceAddress, StateObject, World, contains_unknown, has_shell, node_name)

from . import naming, netrules, podnet, pods
from .hostexec import Host, HostCommandError
from .transport import EngineError, NodeError

if TYPE_CHECKING:
    from .provider import DockerProvider

NODE_SERVICES = "node_services"
# Nodes read or checked at once (refresh; a plan's checks). Bounded: a fleet of 500 nodes reads 8 at a time. A
# worker mostly waits for its node, and what a fleet's refresh is bound by is the nodes' own work (an SSH login
# and one command each): 16 workers measured no faster than 8 on 15 lab nodes (docs/benchmarks.md, "Fleets").
READ_WORKERS = 8
SERVICE = "service"
NETWORK_POLICY = "network_policy"
HAIRPIN_SCRIPT = ('for p in /sys/class/net/orch0/brif/*; do [ -e "$p/hairpin_mode" ] || continue; '
                  '[ "$(cat "$p/hairpin_mode")" = 1 ] || echo 1 > "$p/hairpin_mode"; done')
# Fixed; ``sh -c SYNC_PODS_SCRIPT sh NAMESPACE HOSTS_FILE...`` with the names section on stdin: hairpin on every
# bridge port, then netrules.HOSTS_UPDATE_SCRIPT (one SSH round trip instead of two).
SYNC_PODS_SCRIPT = HAIRPIN_SCRIPT + "\n" + netrules.HOSTS_UPDATE_SCRIPT
# Fixed; run as ``sh -c READ_BACK_SCRIPT sh TABLE NAMESPACE HOSTS_FILE...``: the table as one JSON line, then
# netrules.HOSTS_READ_SCRIPT's output for the hosts files. Hairpin is not read back: the bridge is shared by
# every namespace on the node and its ports are not labelled, so a port without hairpin cannot be told to be
# ours; a pod whose infra container restarted (new port, hairpin off) is found through its hosts file, which
# Docker rewrites then, and the repair sets hairpin on every port again.
READ_BACK_SCRIPT = ('tbl=$1; shift; printf \'@nft %s\\n\' "$(nft -j list table ip "$tbl" 2>/dev/null)"\n'
                    + netrules.HOSTS_READ_SCRIPT)
# Fixed; run as ``sh -c REFRESH_SCRIPT sh TABLE NAMESPACE HOSTS_FILE...``: a node read at refresh in ONE exec,
# podnet's probe of what drift compares (its sections) and then READ_BACK_SCRIPT's output as one more section,
# "services". Every exec costs the node an SSH session and a start of the user's login shell (~0.13 s of CPU on
# the lab, whose root shell sources a heavy .bashrc), which dwarfs the reading itself: a fleet's refresh is
# bound by these, so there is one per node.
REFRESH_SCRIPT = (podnet.DRIFT_PROBE + 'echo "@@ services"\n(\n' + READ_BACK_SCRIPT + ')\necho "@@ rc $?"\n')


def _has_pod_network(values: dict[str, Any] | None) -> bool:
    return bool(values) and isinstance((values or {}).get("pod_cidr"), str) and has_shell(values or {})


def _resolve(host: Any) -> str:
    """A route's gateway as an IPv4 address (node addresses may be names, resolved here once)."""
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    try:
        return socket.gethostbyname(str(host))
    except OSError as e:
        raise podnet.PodNetworkError("", "Cannot resolve a node's address", f"{host}: {e}",
                                     hint="use the node's IP address as its address") from None


def pod_network_spec(values: dict[str, Any]) -> podnet.PodNetwork:
    routes = tuple(sorted((str(r["subnet"]), _resolve(r["via"])) for r in values.get("routes") or []
                          if isinstance(r, dict) and isinstance(r.get("subnet"), str) and r.get("via") is not None))
    return podnet.PodNetwork(node=str(values.get("node") or ""), pod_cidr=str(values["pod_cidr"]),
                             cluster_cidr=str(values.get("cluster_cidr") or values["pod_cidr"]), routes=routes)


class Networking:
    """The provider's networking half; keeps per-run caches (hosts, what refresh found)."""

    def __init__(self, provider: DockerProvider):
        self.p = provider
        self._lock = threading.Lock()
        self._nodes: dict[str, dict[str, Any]] = {}  # node name -> its values (world first, else state)
        self._drift: dict[str, list[str]] = {}  # node_services node -> what refresh found wrong
        self._checked: dict[str, list[str]] = {}  # node -> precondition problems (checked once per run)
        self._root_dir: dict[str, str] = {}

    # ---- registry ------------------------------------------------------------------------------------
    def learn(self, address: ResourceAddress, values: dict[str, Any], from_config: bool) -> None:
        with self._lock:
            name = node_name(address)
            if from_config or name not in self._nodes:
                self._nodes[name] = dict(values)

    def pod_network_of(self, node: str) -> str:
        with self._lock:
            values = self._nodes.get(node)
        return pods.POD_NETWORK if _has_pod_network(values) else pods.NETWORK

    def _host(self, node: str) -> Host:
        eng = self.p._engine(node)
        with self._lock:
            become = bool((self._nodes.get(node) or {}).get("become"))
        host = eng.host(become)
        if host is None:
            raise NodeError(node, "No shell on the node", f"node {node} is not reached over SSH: orch cannot run "
                            "ip, nft or iptables there.", hint="give the node an address (SSH)")
        return host

    # ---- preconditions (plan time) ---------------------------------------------------------------------
    def preflight(self, world: World, changes: list[ChangeView]) -> list[Diagnostic]:
        """What would make the changes fail on their nodes: a node not ready for the pod network, virtual IPs
        and node ports another namespace uses there, a namespace another configuration runs there. The nodes
        are checked at once (a bounded pool), each with one command at most."""
        nodes: dict[str, str] = {}  # node -> its address, to check for the pod network's preconditions
        namespaces: dict[str, str] = {}  # node -> the namespace of a service program to make there
        for c in changes:
            after = c.after or {}
            if c.address.type == "node" and c.action in ("create", "update", "replace") and _has_pod_network(after):
                nodes[node_name(c.address)] = str(c.address)
            elif c.address.type == NODE_SERVICES and c.action != "delete" and isinstance(after.get("node"), str):
                nodes.setdefault(after["node"], f"node.{after['node']}")
                namespaces.setdefault(after["node"], str(after.get("namespace") or ""))
        making = sorted({str((c.after or {}).get("node")) for c in changes
                         if c.address.type in ("pod", NODE_SERVICES) and c.action in ("create", "replace", "update")
                         and isinstance((c.after or {}).get("node"), str)})
        work = sorted(set(nodes) | set(namespaces) | set(making))
        checked: dict[str, _NodeCheck] = {}
        if work:
            with cf.ThreadPoolExecutor(min(READ_WORKERS, len(work))) as ex:
                checked = dict(zip(work, ex.map(lambda n: self._check_node(n, nodes.get(n), namespaces.get(n),
                                                                           n in making), work), strict=True))
        diags = [d for node in sorted(nodes) for d in checked[node].preconditions]
        for c in changes:
            program = c.after
            if c.address.type != NODE_SERVICES or c.action == "delete" or program is None \
                    or not isinstance(program.get("node"), str):
                continue
            node, ns = program["node"], str(program.get("namespace") or "")
            # one program per node and namespace: another namespace's would be another configuration's
            found = checked[node].others if ns == namespaces[node] else self._others(node, ns)
            if found is not None:
                diags.extend(clashes(program, node, found))
        for node in making:
            diags.extend(checked[node].namespace_taken)
        return diags

    def _check_node(self, node: str, address: str | None, namespace: str | None, making: bool) -> _NodeCheck:
        """One node's part of :meth:`preflight`: its pod network's preconditions (when ``address``: the node's
        address, for the diagnostics), the other namespaces' service tables (when ``namespace`` is to get one
        there), both read with one command; whether another configuration runs ``namespace`` there."""
        out = _NodeCheck()
        if node in self.p._down:
            return out
        with self._lock:
            found = self._checked.get(node)
        failed = False
        try:
            if address is not None and found is None and namespace is not None:
                got = self._host(node).run(["sh", "-c", PREFLIGHT_SCRIPT, "sh", netrules.table_name(namespace)],
                                           check=False)
                sections = podnet.parse_probe(got.stdout)
                found = podnet.problems(sections)
                out.others = parse_other_tables(sections.get("others", ("", 1))[0])
            elif address is not None and found is None:
                found = podnet.preconditions(self._host(node))
            if found is not None:
                with self._lock:
                    self._checked[node] = found
            if address is not None and found is not None:
                out.preconditions = [
                    Diagnostic.error("Node not ready for the pod network", f"node {node}: {problem}",
                                     address=address, hint="fix it on the node, then plan again")
                    for problem in found]
        except NodeError:
            # a node that cannot be reached fails its own changes at apply, not the whole plan (a new node that
            # cannot be reached already failed the plan: the provider's connect check)
            return out
        except (HostCommandError, podnet.PodNetworkError) as e:
            if address is not None:
                out.preconditions = [Diagnostic.error("Cannot check the node", str(e), address=address)]
            failed = True
        if namespace is not None and out.others is None and not failed:  # the preconditions were known already
            out.others = self._others(node, namespace)
        if making:
            out.namespace_taken = self._namespace_taken(node)
        return out

    def _others(self, node: str, namespace: str) -> dict[str, tuple[set[str], set[tuple[str, int]]]] | None:
        """The other namespaces' service tables on the node (None when they cannot be read)."""
        if node in self.p._down:
            return None
        try:
            return netrules_others(self._host(node), namespace)
        except (NodeError, HostCommandError, EngineError, podnet.PodNetworkError):
            return None

    def _namespace_taken(self, node: str) -> list[Diagnostic]:
        """Another configuration (another state) already runs pods of this namespace on the node: their names,
        service table and service names would collide."""
        ns = self.p.namespace
        if not ns or node in self.p._down:
            return []
        try:
            listed = self.p._engine(node).list_containers([f"{naming.NAMESPACE}={ns}"])
        except (NodeError, EngineError):
            return []
        foreign = sorted({(str((c.get("Labels") or {}).get(naming.LINEAGE)), str((c.get("Names") or ["?"])[0]))
                          for c in listed if (c.get("Labels") or {}).get(naming.LINEAGE) != self.p.lineage})
        if not foreign:
            return []
        lineage, name = foreign[0]
        return [Diagnostic.error(
            "Namespace used by another configuration",
            f'node {node} already runs containers of namespace "{ns}" made by another configuration (state lineage '
            f"{lineage}, e.g. {name.lstrip('/')}): their names, service table and service names would collide.",
            address=f"node.{node}",
            hint='give this configuration its own namespace: orch { namespace = "..." } (the default is the '
                 "directory's name), or destroy the other one")]

    # ---- nodes ---------------------------------------------------------------------------------------
    def refresh_node(self, node: str, values: dict[str, Any], services: StateObject | None,
                     info: dict[str, Any], listed: list[dict[str, Any]]
                     ) -> tuple[list[str] | Exception, StateObject | None]:
        """Refresh one node's networking in one exec: what is wrong with its pod network (``values``: the node's
        recorded attributes) and its service program ``services`` (its ``node_services`` object, or None) with
        that object's status. ``info`` and ``listed`` are what the provider's refresh already read from the node's
        engine (``docker info``; its containers of this state), so nothing is asked twice.

        A failure to read is returned, not raised: as the pod network's answer, and as the service program's
        status (unknown, not reachable)."""
        if not _has_pod_network(values):
            return [], None if services is None else self._refresh_services_one(services)
        errors = (NodeError, HostCommandError, EngineError, podnet.PodNetworkError)
        svc_values: dict[str, Any] = {}
        files: dict[str, str] = {}
        try:
            host = self._host(node)
            if services is None:
                output = host.run(("sh", "-c", podnet.DRIFT_PROBE), check=False).stdout
            else:
                svc_values = self.resolve_peers(services.attributes)
                ns = str(svc_values.get("namespace") or "")
                files = self._hosts_files_in(node, info, listed)
                output = host.run(["sh", "-c", REFRESH_SCRIPT, "sh", netrules.table_name(ns), ns, *files.values()],
                                  check=False).stdout
        except errors as e:
            return e, None if services is None else _services_status(services, e)
        sections = podnet.parse_probe(output)
        net: list[str] | Exception
        try:
            networks = self.p._engine(node).networks(podnet.LABEL)
            net = podnet.drift(pod_network_spec({**values, "node": node}), podnet.observed(node, sections, networks))
        except errors as e:
            net = e
        if services is None:
            return net, None
        found = services_drift(svc_values, files, sections.get("services", ("", 1))[0])
        with self._lock:
            self._drift[node] = found
        return net, _services_status(services, found)

    def ensure_node(self, node: str, values: dict[str, Any], progress: Any) -> None:
        if not _has_pod_network(values):
            return
        host = self._host(node)
        for line in podnet.ensure(host, self.p._engine(node), pod_network_spec({**values, "node": node})):
            progress(line)

    def teardown_node(self, node: str, values: dict[str, Any], progress: Any) -> None:
        if not _has_pod_network(values):
            return
        for line in podnet.teardown(self._host(node), self.p._engine(node), self.p.namespace,
                                    lineage=self.p.lineage):
            progress(line)

    # ---- node_services -------------------------------------------------------------------------------
    def plan_services(self, address: ResourceAddress, prior: StateObject | None,
                      config: dict[str, Any]) -> PlannedObject:
        repair = None
        if prior is not None and prior.status is not None and prior.status.state == "degraded":
            repair = f"because node {config.get('node')}'s service rules drifted: {prior.status.message}"
        return PlannedObject(dict(config), repair=repair)

    def refresh_services(self, objs: list[StateObject]) -> dict[ResourceAddress, StateObject]:
        """Read every node's service program back, the nodes in parallel (the provider's refresh reads most
        with :meth:`refresh_node`; these are the others)."""
        if not objs:
            return {}
        with cf.ThreadPoolExecutor(min(READ_WORKERS, len(objs))) as ex:
            return {o.address: got for o, got in zip(objs, ex.map(self._refresh_services_one, objs), strict=True)}

    def _refresh_services_one(self, o: StateObject) -> StateObject:
        node = o.attributes.get("node")
        if not isinstance(node, str) or node in self.p._down:
            return o
        try:
            found = self._services_drift(node, o.attributes)
        except (NodeError, HostCommandError, EngineError, podnet.PodNetworkError) as e:
            return _services_status(o, e)
        with self._lock:
            self._drift[node] = found
        return _services_status(o, found)

    # ---- peers in another namespace ------------------------------------------------------------------
    def _foreign_pods(self, namespace: str) -> list[tuple[dict[str, Any], str]]:
        """(labels, address) of every running pod of another namespace on the nodes this run knows: read from
        their infra containers (label orch.namespace; the pod's labels in orch.spec)."""
        with self._lock:
            nodes = sorted(self._nodes)
        out = []
        for node in nodes:
            if node in self.p._down:
                continue
            try:
                listed = self.p._engine(node).list_containers([f"{naming.NAMESPACE}={namespace}",
                                                                f"{naming.ROLE}={naming.ROLE_INFRA}"])
            except (NodeError, EngineError):
                continue
            for c in listed:
                ip = pods.ip_of(c)
                try:
                    spec = json.loads((c.get("Labels") or {}).get(naming.SPEC) or "{}")
                except ValueError:
                    spec = {}
                labels = spec.get("labels") if isinstance(spec, dict) else None
                if ip and isinstance(labels, dict):
                    out.append((labels, ip))
        return out

    def resolve_peers(self, values: dict[str, Any]) -> dict[str, Any]:
        """The program with every peer of another namespace (``{"namespace", "pod_selector"}``) replaced by an
        address set of that namespace's matching pods, as found on the nodes now: what the table is loaded with,
        and what refresh expects (a pod of the other namespace added or gone is drift, repaired by the next
        apply)."""
        policy = values.get("policy")
        if not isinstance(policy, dict) or not policy.get("pods"):
            return values
        found: dict[str, list[tuple[dict[str, Any], str]]] = {}
        new_sets = dict(policy.get("sets") or {})
        new_pods = []
        for entry in policy.get("pods") or []:
            entry = dict(entry)
            for direction in ("ingress", "egress"):
                rules = entry.get(direction)
                if not isinstance(rules, list):
                    continue
                entry[direction] = [self._resolve_rule(rule, found, new_sets) for rule in rules]
            new_pods.append(entry)
        return {**values, "policy": {**policy, "pods": new_pods, "sets": new_sets}}

    def _resolve_rule(self, rule: dict[str, Any], found: dict[str, list[tuple[dict[str, Any], str]]],
                      sets: dict[str, Any]) -> dict[str, Any]:
        peers = rule.get("peers")
        if not isinstance(peers, list) or not any(isinstance(p, dict) and "namespace" in p for p in peers):
            return rule
        out = []
        for peer in peers:
            if not (isinstance(peer, dict) and "namespace" in peer):
                out.append(peer)
                continue
            ns, selector = str(peer["namespace"]), dict(peer.get("pod_selector") or {})
            if ns not in found:
                found[ns] = self._foreign_pods(ns)
            name = "peer-" + hashlib.sha256(json.dumps([ns, sorted(selector.items())]).encode()).hexdigest()[:12]
            sets[name] = sorted({ip for labels, ip in found[ns]
                                 if all(labels.get(k) == v for k, v in selector.items())})
            out.append({"set": name})
        return {**rule, "peers": out}

    def _services_drift(self, node: str, values: dict[str, Any]) -> list[str]:
        """One command on the node reads the table and the pods' hosts files."""
        values = self.resolve_peers(values)
        host = self._host(node)
        ns = str(values.get("namespace") or "")
        files = self._hosts_files(node)
        got = host.run(["sh", "-c", READ_BACK_SCRIPT, "sh", netrules.table_name(ns), ns, *files.values()],
                       check=False)
        return services_drift(values, files, got.stdout)

    def _hosts_files(self, node: str) -> dict[str, str]:
        """The hosts file of each of this namespace's pods on the node (pod address -> path on the node)."""
        eng = self.p._engine(node)
        with self._lock:
            root = self._root_dir.get(node)
        if root is None:
            root = str(eng.info().get("DockerRootDir") or "/var/lib/docker")
            with self._lock:
                self._root_dir[node] = root
        listed = eng.list_containers([naming.lineage_filter(self.p.lineage),
                                      f"{naming.ROLE}={naming.ROLE_INFRA}"])
        return hosts_files(root, listed, self.p.lineage)

    def _hosts_files_in(self, node: str, info: dict[str, Any], listed: list[dict[str, Any]]) -> dict[str, str]:
        """:meth:`_hosts_files` from what the refresh read already (``docker info``, the containers listed)."""
        root = str(info.get("DockerRootDir") or "/var/lib/docker")
        with self._lock:
            self._root_dir.setdefault(node, root)
        return hosts_files(root, listed, self.p.lineage)

    def sync_services(self, request: ApplyRequest) -> ApplyResult:
        addr, values = request.address, dict(request.planned or {})
        if contains_unknown(values):
            return ApplyResult(None, [Diagnostic.error("Values still unknown", f"{addr} has values that are "
                                                       "unknown at apply time.", address=str(addr))])
        node = str(values["node"])
        host = self._host(node)
        values = self.resolve_peers(values)
        prior = request.prior.attributes if request.prior is not None else None
        with self._lock:
            drifted = bool(self._drift.pop(node, None))
        if prior is not None and prior.get("namespace") != values.get("namespace"):
            host.run(["nft", "-f", "-"], stdin=netrules.render_delete(str(prior.get("namespace"))).encode())
            prior = None
        try:
            script = None if drifted or prior is None else netrules.render_delta(prior, values)
        except ValueError:
            script = None  # the whole table says what is wrong, below
        if script is not None:
            if script.strip():
                got = host.run(["nft", "-f", "-"], stdin=script.encode(), check=False)
                if got.rc != 0:
                    script = None  # the table was not what the state said: load it whole
        if script is None:
            try:
                table = netrules.render_table(values)
            except ValueError as e:  # what the core derived and nftables cannot express: said, not a traceback
                return ApplyResult(None, [Diagnostic.error("Cannot compile the node's rules", f"node {node}: {e}",
                                                           address=str(addr))])
            host.run(["nft", "-f", "-"], stdin=table.encode())
        gone = netrules.gone_endpoints(request.prior.attributes if request.prior is not None else None, values)
        if gone:
            host.run(["sh", "-c", netrules.CONNTRACK_SCRIPT, "sh", *gone], check=False)
        files = self._hosts_files(node)
        if files:  # the namespace's pods on the node: hairpin on the bridge ports, then their names, one command
            ns = str(values.get("namespace") or "")
            section = netrules.hosts_section(ns, values.get("services") or [])
            host.run(["sh", "-c", SYNC_PODS_SCRIPT, "sh", ns, *files.values()], stdin=section.encode())
        n = len(values.get("services") or [])
        request.progress(f"{n} service{'s' if n != 1 else ''} loaded on {node}, names in {len(files)} pod(s)")
        return ApplyResult(StateObject(addr, dict(request.planned or {}), {}, ObjectStatus("running")))

    def delete_services(self, request: ApplyRequest) -> ApplyResult:
        prior = request.prior
        if prior is None:
            return ApplyResult(None)
        node = prior.attributes.get("node")
        if not isinstance(node, str):
            return ApplyResult(None)
        host = self._host(node)
        ns = str(prior.attributes.get("namespace") or "")
        host.run(["nft", "-f", "-"], stdin=netrules.render_delete(ns).encode())
        files = self._hosts_files(node)
        if files:
            host.run(["sh", "-c", netrules.HOSTS_UPDATE_SCRIPT, "sh", ns, *files.values()], stdin=b"")
        return ApplyResult(None)

    # ---- network policies: a new pod closed before it starts ------------------------------------------
    def isolation_of(self, address: ResourceAddress, node: str, world: World) -> tuple[bool, bool] | None:
        """(ingress, egress) isolation of a pod about to be made, from its node's planned program; None when
        no policy isolates it (or the node has no program)."""
        program = world.get(ResourceAddress(NODE_SERVICES, node)) or {}
        policy = program.get("policy")
        if not isinstance(policy, dict):
            return None
        for entry in policy.get("pods") or []:
            if isinstance(entry, dict) and entry.get("pod") == str(address):
                ingress, egress = entry.get("ingress") is not None, entry.get("egress") is not None
                return (ingress, egress) if ingress or egress else None
        return None

    def close_pending(self, node: str, ip: str, ingress: bool, egress: bool) -> None:
        host = self._host(node)
        host.run(["nft", "-f", "-"], stdin=netrules.render_pending(self.p.namespace, ip, ingress, egress).encode())

    # ---- services ------------------------------------------------------------------------------------
    @staticmethod
    def plan_service(address: ResourceAddress, prior: StateObject | None, config: dict[str, Any]) -> PlannedObject:
        diags = []
        if config.get("protocol") not in ("tcp", "udp", UNKNOWN, None):
            diags.append(Diagnostic.error("Not supported yet", f'{address}: protocol "{config.get("protocol")}" '
                                          "is not supported yet by the docker provider.", address=str(address),
                                          hint='use "tcp" or "udp"'))
        planned = dict(config)
        if planned.get("cluster_ip") is None:
            planned["cluster_ip"] = UNKNOWN
        return PlannedObject(planned, diagnostics=diags)

    @staticmethod
    def plan_policy(address: ResourceAddress, prior: StateObject | None, config: dict[str, Any]) -> PlannedObject:
        """A policy is realised by every node's program; its own object records what the core decided with. sctp
        ports are refused (not supported yet by the nftables rules)."""
        diags = []
        for direction, peers_key in (("ingress", "from"), ("egress", "to")):
            for rule in config.get(direction) or []:
                if not isinstance(rule, dict):
                    continue
                for port in rule.get("ports") or []:
                    if isinstance(port, dict) and port.get("protocol") == "sctp":
                        diags.append(Diagnostic.error(
                            "Not supported yet", f"{address}: sctp ports are not supported yet by the docker "
                            "provider.", address=str(address), hint='use "tcp" or "udp"'))
                for peer in rule.get(peers_key) or []:
                    blocks = [peer.get("cidr"), *(peer.get("except") or [])] if isinstance(peer, dict) else []
                    if any(isinstance(b, str) and ":" in b for b in blocks):
                        diags.append(Diagnostic.error(
                            "Not supported yet", f"{address}: IPv6 blocks are not supported yet (pods and services "
                            "are IPv4).", address=str(address), hint="use IPv4 blocks"))
        return PlannedObject(dict(config), diagnostics=diags)

    @staticmethod
    def apply_service(verb: str, request: ApplyRequest) -> ApplyResult:
        if verb == "delete":
            return ApplyResult(None)
        values = {k: v for k, v in (request.planned or {}).items() if v is not UNKNOWN}
        return ApplyResult(StateObject(request.address, values))


# Fixed; ``sh -c OTHER_TABLES_SCRIPT sh OWN_TABLE``: every other namespace's service table, one JSON line each.
OTHER_TABLES_SCRIPT = ('for t in $(nft list tables ip 2>/dev/null '
                       '| sed -n "s/^table ip \\(orch-ns-[a-z0-9-]*\\)$/\\1/p"); '
                       'do [ "$t" = "$1" ] && continue; printf \'@%s %s\\n\' "$t" "$(nft -j list table ip "$t")"; '
                       'done')


# Fixed; ``sh -c PREFLIGHT_SCRIPT sh OWN_TABLE``: podnet's PROBE (the preconditions), then OTHER_TABLES_SCRIPT's
# output as the section "others": what a plan checks on a node that gets a service program, in one exec.
PREFLIGHT_SCRIPT = podnet.PROBE + 'echo "@@ others"\n(\n' + OTHER_TABLES_SCRIPT + '\n)\necho "@@ rc $?"\n'


@dataclass
class _NodeCheck:
    """What :meth:`Networking.preflight` found on one node."""

    preconditions: list[Diagnostic] = field(default_factory=list)
    others: dict[str, tuple[set[str], set[tuple[str, int]]]] | None = None  # None: not read
    namespace_taken: list[Diagnostic] = field(default_factory=list)


def clashes(values: dict[str, Any], node: str, others: dict[str, tuple[set[str], set[tuple[str, int]]]]
            ) -> list[Diagnostic]:
    """Virtual IPs and node ports of the service program ``values`` that another namespace already uses on the
    node (``others``: :func:`parse_other_tables`)."""
    out = []
    for s in values.get("services") or []:
        if not isinstance(s, dict):
            continue
        ip, proto, np = s.get("cluster_ip"), s.get("protocol"), s.get("node_port")
        for ns, (vips, nps) in others.items():
            if isinstance(ip, str) and ip in vips:
                out.append(Diagnostic.error("Cluster IP in use", f"{s.get('address')}: {ip} is already a "
                                            f"service address of namespace {ns} on node {node}.",
                                            address=str(s.get("address")),
                                            hint="set another cluster_ip on the service"))
            if isinstance(np, int) and (proto, np) in nps:
                out.append(Diagnostic.error("Node port in use", f"{s.get('address')}: node port {np}/{proto} "
                                            f"is already used by namespace {ns} on node {node}.",
                                            address=str(s.get("address")), hint="pick another node_port"))
    return out


def hosts_files(root: str, listed: list[dict[str, Any]], lineage: str) -> dict[str, str]:
    """The hosts file of each running pod of the state ``lineage`` among ``listed`` containers (pod address ->
    its infra container's hosts file under the engine's ``root`` directory): what the service names go into."""
    out = {}
    for c in listed:
        labels = c.get("Labels") or {}
        if labels.get(naming.LINEAGE) != lineage or labels.get(naming.ROLE) != naming.ROLE_INFRA:
            continue
        if (c.get("State") or "") != "running":
            continue
        out[str(labels.get(naming.ADDRESS))] = f"{root}/containers/{c['Id']}/hosts"
    return out


def services_drift(values: dict[str, Any], files: dict[str, str], output: str) -> list[str]:
    """Why a node's service program is not ``values`` (its peers resolved), from READ_BACK_SCRIPT's ``output``
    (the table as one ``@nft`` JSON line, then the namespace's section of each of ``files``, the pods' hosts
    files); [] when it is."""
    table, rest = "", []
    for line in output.splitlines():
        if line.startswith("@nft "):
            table = line[5:]
        else:
            rest.append(line)
    listing = json.loads(table) if table.strip() else None
    found = list(netrules.drift(values, listing))
    if files:
        ns = str(values.get("namespace") or "")
        sections = netrules.parse_hosts_read("\n".join(rest))
        want = netrules.hosts_section(ns, values.get("services") or [])
        stale = sorted(pod for pod, path in files.items() if sections.get(path, "").strip() != want.strip())
        if stale:
            found.append(f"service names missing or stale in the hosts file of {', '.join(stale)}")
    return found


def _services_status(o: StateObject, found: list[str] | Exception) -> StateObject:
    """A ``node_services`` object with the status of its read-back: running, degraded (what drifted) or, when
    the node could not be read, unknown."""
    if isinstance(found, Exception):
        status = ObjectStatus("unknown", reachable=False, message=str(found))
    else:
        status = ObjectStatus("degraded", message="; ".join(found)) if found else ObjectStatus("running")
    return StateObject(o.address, o.attributes, o.private, status)


def netrules_others(host: Host, namespace: str) -> dict[str, tuple[set[str], set[tuple[str, int]]]]:
    """Other namespaces' service tables on a node (one command): namespace -> (virtual IPs, node ports)."""
    got = host.run(["sh", "-c", OTHER_TABLES_SCRIPT, "sh", netrules.table_name(namespace)], check=False)
    return parse_other_tables(got.stdout)


def parse_other_tables(text: str) -> dict[str, tuple[set[str], set[tuple[str, int]]]]:
    """OTHER_TABLES_SCRIPT's output: namespace -> (virtual IPs, node ports) of its service table."""
    out: dict[str, tuple[set[str], set[tuple[str, int]]]] = {}
    for line in text.splitlines():
        name, _, listing = line.removeprefix("@").partition(" ")
        if not line.startswith("@orch-ns-") or not listing.strip():
            continue
        vips: set[str] = set()
        nps: set[tuple[str, int]] = set()
        for obj in json.loads(listing).get("nftables", []):
            m = obj.get("map")
            if not isinstance(m, dict):
                continue
            elems = m.get("elem") or []
            for e in elems if isinstance(elems, list) else [elems]:
                key = e[0] if isinstance(e, list) and e else e
                parts = key.get("concat") if isinstance(key, dict) else None
                if not isinstance(parts, list):
                    continue
                if m.get("name") == "services" and parts:
                    vips.add(str(parts[0]))
                elif m.get("name") == "nodeports" and len(parts) == 2:
                    nps.add((str(parts[0]), int(parts[1])))
        out[name.removeprefix("orch-ns-")] = (vips, nps)
    return out
