"""The Docker provider: ``node`` and ``pod`` on Docker hosts reached over SSH (or a local socket).

How the core's calls map to Docker:

* ``refresh(prior)`` — per node, in parallel (at most ``network.READ_WORKERS`` nodes at a time): ``docker info``
  (the node's facts), ONE container list filtered by the state's lineage label, and ONE command on the node
  reading its pod network and its service program back (``Networking.refresh_node``); every recorded pod is
  then reconstructed from that list (``pods.current_attributes``), and pods of this lineage missing from the
  state come back as orphans.
  Each pod's observed status (containers running or exited, Docker's health and failing streak, restarts)
  comes back apart from its attributes; pods on a node that did not answer are reported "not reachable".
* ``plan`` — pure: planned values and what forces a replacement; a stopped container that should run is an
  in-place repair. A pod arrives with its ``node`` chosen by the core's scheduler.
* ``facts`` — read-only, during plan: what a node not in the state yet reports (``docker info``: capacity,
  engine id and version), so that a first plan schedules against real capacity;
* ``preflight`` — read-only: a new node is connected to (a bad address or key fails the plan), and with
  ``pull = "never"`` the images of pods to create are checked on their node (one cached ``image inspect``
  per node and image), so that what cannot work fails the plan before any change.
* ``metrics`` — read-only: what pods use now (CPU cores, memory bytes of their app containers), from Docker's
  stats API, one call per container, all at once (:mod:`.stats`).
* ``create`` (orch's pause image made on the node on first use, then infra and apps, started in that order),
  ``update`` (``docker update``; start stopped containers), ``delete`` (apps then infra, forced). Replacement
  is the core's: during a create_before_destroy replacement the new pod's containers get a suffix, as the old
  ones still hold the names.

Nodes' connection settings come from the node resources themselves: from the state at refresh, from the
request's world (the planned values of the run) at preflight and apply. A pod's node is its ``node``
attribute.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, cast

from orchdsl.sdk import (IMPLICIT_NODE, UNKNOWN, ApplyRequest, ApplyResult, ChangeView, Diagnostic, Facts,
                         ObjectStatus, PlannedObject, RefreshResult, ResourceAddress, ResourceTypeInfo, StateObject,
                         Usage, World, contains_unknown, merge_configured, node_name)

from . import files, naming, network, pause, pods, stats
from .hostexec import HostCommandError
from .podnet import PodNetworkError
from .transport import (
    DEFAULT_MAX_CHANNELS,
    Conflict,
    Connections,
    Engine,
    EngineError,
    NodeError,
    NodeSettings,
    NotFound,
)
from .transport import connect as transport_connect

Progress = Callable[[str], None]
# Types the provider records without a Docker object of their own: what they mean is realised by the pods and
# each node's program (services, policies), or delivered into the pods that use them (secrets, as files).
SECRET = "secret"
VOLUME = "volume"  # recorded; its Docker volume is made on the node of each pod that mounts it, removed with it
RECORDS = (network.SERVICE, network.NETWORK_POLICY, SECRET, VOLUME)
METRICS_INTERVAL = 1.0  # seconds between the two readings of the containers' CPU counters (docker stats: ~1 s)

LOCAL_DOCKER_HOST = "unix:///var/run/docker.sock"
NODE_COMPUTED = frozenset({"id", "capacity", "engine_version"})
TICK_SECONDS = 10.0




class _Ticker:
    """Says "Still creating... [10s elapsed]" while a slow step runs."""

    def __init__(self, progress: Progress, verb: str, every: float = TICK_SECONDS):
        self.progress, self.verb, self.every = progress, verb, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._start = time.monotonic()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.progress(f"Still {self.verb}... [{int(time.monotonic() - self._start)}s elapsed]")

    def __enter__(self) -> _Ticker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()


class DockerProvider:
    name = "docker"

    def __init__(self, connect: Callable[[NodeSettings], Engine] | None = None,
                 max_channels: int = DEFAULT_MAX_CHANNELS):
        self.lineage = ""
        self.namespace = ""
        self._connect_timeout: float | None = None  # None: the transport's default (CONNECT_TIMEOUT)
        self._conns = Connections(connect or (lambda s: transport_connect(s, max_channels,
                                                                          timeout=self._connect_timeout)),
                                  max_channels)
        self._net = network.Networking(self)
        self._lock = threading.RLock()
        self._config_nodes: dict[str, NodeSettings] = {}  # node resources of the run (the requests' world)
        self._world_seen: int | None = None
        self._down: set[str] = set()  # nodes that did not answer at refresh (already reported)
        self._state_nodes: dict[str, NodeSettings] = {}  # node resources the state records
        self._node_addr: dict[str, str] = {}  # node name -> its address, for diagnostics
        self._observed: dict[str, list[dict[str, Any]]] = {}  # node -> its containers as listed at refresh
        self._pod_keys: dict[ResourceAddress, tuple[str, str]] = {}  # pod -> (lineage, address label)
        self._images: dict[tuple[str, str], bool] = {}  # (node, image) -> present
        self._reported: set[tuple[str, str, str]] = set()  # node failures already told (node, summary, detail)
        self._pause: dict[str, str | None] = {}  # node -> orch's pause image there (None: no program for its arch)
        self._pause_locks: dict[str, threading.Lock] = {}

    # ---- protocol ------------------------------------------------------------------------------------
    def resource_types(self) -> dict[str, ResourceTypeInfo]:
        return {
            "node": ResourceTypeInfo("node", frozenset(), NODE_COMPUTED),
            "pod": ResourceTypeInfo("pod", pods.FORCE_NEW_POD, frozenset(pods.COMPUTED_POD)),
            network.SERVICE: ResourceTypeInfo(network.SERVICE),
            network.NETWORK_POLICY: ResourceTypeInfo(network.NETWORK_POLICY),
            SECRET: ResourceTypeInfo(SECRET),
            VOLUME: ResourceTypeInfo(VOLUME),
            network.NODE_SERVICES: ResourceTypeInfo(network.NODE_SERVICES),
        }

    def configure(self, settings: dict[str, Any], lineage: str) -> list[Diagnostic]:
        self.lineage = lineage
        ns = settings.get("namespace")
        self.namespace = ns if isinstance(ns, str) else ""
        # the reconcile loop waits less for a node that does not answer: a lost node must not stall every cycle
        timeout = settings.get("connect_timeout")
        self._connect_timeout = float(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else None
        return []

    def close(self) -> None:
        self._conns.close()

    # ---- nodes: registry -----------------------------------------------------------------------------
    def _register(self, address: ResourceAddress, attrs: dict[str, Any], from_config: bool) -> NodeSettings:
        name = node_name(address)
        s = NodeSettings.from_attributes(name, attrs)
        self._net.learn(address, attrs, from_config)
        with self._lock:
            (self._config_nodes if from_config else self._state_nodes)[name] = s
            self._node_addr[name] = str(address)
        return s

    def _learn(self, world: World) -> None:
        """Register the run's nodes from a request's world (once per world: it is the same for a whole run)."""
        with self._lock:
            if self._world_seen == id(world):
                return
            self._world_seen = id(world)
        for addr, values in list(world.items()):
            if addr.type == "node":
                try:
                    self._register(addr, values, from_config=True)
                except NodeError:
                    continue  # reported where the node itself is planned or applied

    def _settings(self, name: str) -> NodeSettings | None:
        with self._lock:
            s = self._config_nodes.get(name) or self._state_nodes.get(name)
            if s is None and name == IMPLICIT_NODE and not self._config_nodes:
                # pods of a configuration without node blocks: the local engine
                s = NodeSettings.from_attributes(IMPLICIT_NODE, {"docker_host": LOCAL_DOCKER_HOST})
            return s

    def _addr_of(self, node: str) -> str:
        return self._node_addr.get(node, f"node.{node}")

    def _engine(self, node: str) -> Engine:
        s = self._settings(node)
        if s is None:
            raise NodeError(node, "Unknown node",
                            f'No node resource named "{node}" is known in this run.',
                            hint="declare the node in the configuration (apply a saved plan only together with "
                                 "its nodes)")
        return self._conns.engine(s)

    def _first_report(self, e: NodeError) -> bool:
        """Whether this node failure is news in this run (a failed node is not tried again: every later request
        for it fails the same way, and the reader needs the story once)."""
        with self._lock:
            key = (e.node, e.summary, e.detail)
            first = key not in self._reported
            self._reported.add(key)
            return first

    def _node_diag(self, e: NodeError, address: str | None = None, context: str = "") -> Diagnostic:
        """A node failure as a diagnostic: in full the first time in this run, then in one line."""
        if not self._first_report(e):
            node = self._addr_of(e.node)
            return Diagnostic.error(
                "Node not available", f"{context}{node} is not available: {e.summary} (see the diagnostic of {node}); "
                "orch tries a node once per command.", address=address or node)
        detail = f"{context}{e.detail}" if context else e.detail
        return Diagnostic.error(e.summary, detail, hint=e.hint, address=address or self._addr_of(e.node))

    # ---- refresh -------------------------------------------------------------------------------------
    def refresh(self, prior: list[StateObject]) -> RefreshResult:
        out = RefreshResult()
        node_objs = [o for o in prior if o.address.type == "node"]
        pod_objs = [o for o in prior if o.address.type == "pod"]
        node_values = {node_name(o.address): o.attributes for o in node_objs}
        net_drift: dict[str, list[str] | Exception] = {}
        for o in node_objs:
            self._register(o.address, o.attributes, from_config=False)
        lineages: dict[str, set[str]] = {}  # node -> lineages to list (ours, and those of imported pods)
        for p in pod_objs:
            node = p.attributes.get("node") or p.private.get("node")
            key = (p.private.get("lineage") or self.lineage, p.private.get("label_address") or str(p.address))
            self._pod_keys[p.address] = key
            if isinstance(node, str):
                lineages.setdefault(node, {self.lineage}).add(key[0])
        with self._lock:
            names = sorted(n for n in set(self._state_nodes) | set(lineages)
                           if n in self._state_nodes or n in self._config_nodes
                           or (n == IMPLICIT_NODE and not self._config_nodes))
        for n in names:
            lineages.setdefault(n, {self.lineage})

        results: dict[str, tuple[dict[str, Any], list[dict[str, Any]]] | NodeError | EngineError] = {}
        # each node's service program is read back with its pod network, in the same exec (one per node)
        programs = {o.attributes["node"]: o for o in prior
                    if o.address.type == network.NODE_SERVICES and isinstance(o.attributes.get("node"), str)}
        services: dict[ResourceAddress, StateObject] = {}

        def read(node: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
            eng = self._engine(node)
            info = eng.info()
            conts: list[dict[str, Any]] = []
            for lin in sorted(lineages[node]):
                conts.extend(eng.list_containers([naming.lineage_filter(lin)]))
            net_drift[node], program = self._net.refresh_node(node, node_values.get(node) or {},
                                                               programs.get(node), info, conts)
            if program is not None:
                services[program.address] = program
            return info, conts

        if names:
            with cf.ThreadPoolExecutor(min(network.READ_WORKERS, len(names))) as ex:
                futs = {n: ex.submit(read, n) for n in names}
                for n, f in futs.items():
                    try:
                        results[n] = f.result()
                    except (NodeError, EngineError) as e:
                        results[n] = e

        readable: dict[str, list[dict[str, Any]]] = {}
        with self._lock:
            self._down.update(n for n, r in results.items() if isinstance(r, Exception))
        for n, r in sorted(results.items()):
            if isinstance(r, NodeError):
                self._first_report(r)
                out.diagnostics.append(Diagnostic.error(
                    r.summary, r.detail, hint=(r.hint + "; " if r.hint else "") +
                    "if the node is gone for good, remove it and its pods from the state (orch state rm)",
                    address=self._addr_of(n)))
            elif isinstance(r, EngineError):
                out.diagnostics.append(Diagnostic.error("Cannot read node", f"node {n}: {r}",
                                                        address=self._addr_of(n)))
            else:
                readable[n] = r[1]
        with self._lock:
            self._observed.update(readable)

        # nodes
        for o in node_objs:
            name = node_name(o.address)
            found = results.get(name)
            if isinstance(found, tuple):
                node_attrs, node_private = _node_facts(o.attributes, o.private, found[0])
                wrong = net_drift.get(name)
                status = None
                if isinstance(wrong, Exception):
                    status = ObjectStatus("unknown", message=f"pod network not readable: {wrong}")
                elif wrong:
                    status = ObjectStatus("degraded", message="; ".join(wrong))
                out.current[o.address] = StateObject(o.address, node_attrs, node_private, status)

        # services (records) and each node's service program
        for o in prior:
            if o.address.type in RECORDS:
                out.current[o.address] = o
        out.current.update(services)
        out.current.update(self._net.refresh_services([o for o in prior if o.address.type == network.NODE_SERVICES
                                                       and o.address not in services]))

        # pods
        prefer = {self._pod_keys[p.address]: p.private["infra"] for p in pod_objs if p.private.get("infra")}
        groups = pods.group(readable, prefer)
        claimed: set[tuple[str, str]] = set()
        for p in pod_objs:
            key = self._pod_keys[p.address]
            claimed.add(key)
            node = p.attributes.get("node") or p.private.get("node")
            obs = groups.get(key)
            if obs is None:
                if node in readable:
                    out.current[p.address] = None  # its node answered and has none of its containers
                elif node in results:  # its node did not answer: as recorded, and said so
                    out.current[p.address] = StateObject(p.address, p.attributes, p.private, ObjectStatus(
                        "unknown", reachable=False, message=f"{self._addr_of(node)} did not answer"))
                else:
                    out.diagnostics.append(Diagnostic(
                        "warning", "Pod on an unknown node",
                        f"{p.address} is recorded on node {node!r}, which the state no longer lists; orch cannot "
                        "read it.", address=str(p.address), hint="orch state rm it if it is gone"))
                continue
            attrs, private = pods.current_attributes(p.attributes, obs)
            if attrs is None:
                out.current[p.address] = None
                continue
            if p.private.get("volumes"):  # its secret files' tmpfs volumes: not in the container list
                private["volumes"] = p.private["volumes"]
            if key[0] != self.lineage or key[1] != str(p.address):
                private.update(lineage=key[0], label_address=key[1])
            status = pods.pod_status(obs, [c["name"] for c in pods.containers_of(attrs)],
                                     self._details(obs))
            out.current[p.address] = StateObject(p.address, attrs, private, status)
        for (lin, label_addr), obs in sorted(groups.items()):
            if lin != self.lineage or (lin, label_addr) in claimed:
                continue
            try:
                addr = ResourceAddress.parse(label_addr)
            except ValueError:
                continue
            if addr.type != "pod":
                continue
            attrs, private = pods.orphan_attributes(obs)
            if attrs is not None:
                out.orphans.append(StateObject(addr, attrs, private))
        return out

    def _details(self, obs: pods.Observed) -> dict[str, dict[str, Any]]:
        """Inspect the containers whose list entry shows trouble (stopped, unhealthy): failing streak, last
        health output, restart count. Healthy pods cost nothing more than the one list call."""
        out: dict[str, dict[str, Any]] = {}
        for c in obs.apps.values():
            if not pods.needs_inspect(c):
                continue
            try:
                out[c["Id"]] = self._engine(obs.node).inspect(c["Id"])
            except (NodeError, EngineError):
                continue  # the status then lacks the details, not the state
        return out

    # ---- metrics -------------------------------------------------------------------------------------
    def status(self, objects: list[StateObject]) -> dict[ResourceAddress, ObjectStatus]:
        """The status of exactly the recorded containers of these pods (one inspect each, all at once): what a
        rolling update polls for a new replica, beside which an older generation of the same address may run.
        A pod whose node does not answer is not reachable; nothing raises."""
        jobs: list[tuple[ResourceAddress, str, str, str]] = []
        names: dict[ResourceAddress, list[str]] = {}
        out: dict[ResourceAddress, ObjectStatus] = {}
        for p in objects:
            if p.address.type != "pod":
                continue
            node = p.attributes.get("node") or p.private.get("node")
            ids = p.private.get("containers") or {}
            if not isinstance(node, str) or not isinstance(ids, dict):
                continue
            names[p.address] = [c["name"] for c in pods.containers_of(p.attributes)]
            jobs += [(p.address, node, n, ids[n]) for n in names[p.address] if isinstance(ids.get(n), str)]

        def inspect(job: tuple[ResourceAddress, str, str, str]) -> dict[str, Any] | None | Exception:
            try:
                return self._engine(job[1]).inspect(job[3])
            except NotFound:
                return None
            except (NodeError, EngineError) as e:
                return e

        docs: dict[ResourceAddress, dict[str, dict[str, Any] | None]] = {a: {} for a in names}
        if jobs:
            with cf.ThreadPoolExecutor(min(16, len(jobs))) as ex:
                for job, got in zip(jobs, ex.map(inspect, jobs), strict=True):
                    if isinstance(got, Exception):
                        out[job[0]] = ObjectStatus("unknown", reachable=False, message=str(got))
                    else:
                        docs[job[0]][job[2]] = got
        for addr, found in docs.items():
            if addr not in out:
                out[addr] = pods.status_from_inspect(names[addr], found)
        return out

    def metrics(self, objects: list[StateObject]) -> dict[ResourceAddress, Usage]:
        """What pods use now, read-only: CPU cores and memory bytes, summed over each pod's app containers (not
        its infra container), from Docker's stats API (``stats?stream=false``: 1-2 s per container, so every
        container of every pod is sampled at once; each node's engine bounds its own SSH channels).

        Nodes are known as at refresh, from the node objects among ``objects`` (and from what this run learnt
        before). Only pods are measured; a pod that cannot be (its node does not answer, a container is gone)
        gets ``Usage(None, None, why)``: nothing raises. A figure that one of a pod's containers lacks is None
        for the pod (a partial sum would understate it), with the reason in ``detail``."""
        for o in objects:
            if o.address.type == "node":
                try:
                    self._register(o.address, o.attributes, from_config=False)
                except NodeError:
                    continue
        out: dict[ResourceAddress, Usage] = {}
        jobs: list[tuple[ResourceAddress, str, str, str]] = []  # (pod, node, container name, container id)
        for p in objects:
            if p.address.type != "pod":
                continue
            node = p.attributes.get("node") or p.private.get("node")
            recorded = p.private.get("containers")
            infra = p.private.get("infra")
            apps = [(name, cid) for name, cid in recorded.items()
                    if isinstance(cid, str) and cid != infra] if isinstance(recorded, dict) else []
            if not isinstance(node, str):
                out[p.address] = Usage(None, None, "no node recorded")
            elif not apps:
                out[p.address] = Usage(None, None, "no app container recorded")
            else:
                jobs += [(p.address, node, str(name), cid) for name, cid in apps]

        def measure(job: tuple[ResourceAddress, str, str, str]) -> stats.Sample | str:
            _, node, name, cid = job
            try:
                return stats.sample(self._engine(node).stats(cid))
            except NodeError as e:
                return f"{self._addr_of(node)} is not available: {e.summary}" + (f" ({e.detail})" if e.detail else "")
            except NotFound:
                return f"container {name} ({cid[:12]}) is gone from node {node}"
            except EngineError as e:
                return f"container {name}: {e}"
            except Exception as e:  # noqa: BLE001 - metrics never fail their caller: the pod is just not measured
                return f"container {name}: {type(e).__name__}: {e}"

        if not jobs:
            return out
        fast = self._cgroup_samples(jobs)
        slow = [j for j in jobs if j[3] not in fast]
        if slow:
            with cf.ThreadPoolExecutor(min(32, len(slow))) as ex:
                fast.update({j[3]: got for j, got in zip(slow, ex.map(measure, slow), strict=True)})
        results = [fast[j[3]] for j in jobs]
        per_pod: dict[ResourceAddress, list[tuple[str, stats.Sample | str]]] = {}
        for (addr, _, name, _), got in zip(jobs, results):
            per_pod.setdefault(addr, []).append((name, got))
        for addr, got_all in per_pod.items():
            errors = [g for _, g in got_all if isinstance(g, str)]
            if errors:
                out[addr] = Usage(None, None, "; ".join(dict.fromkeys(errors)))
                continue
            samples = [(name, g) for name, g in got_all if isinstance(g, stats.Sample)]
            cpu, memory = stats.total(g for _, g in samples)
            out[addr] = Usage(cpu, memory, "; ".join(f"container {name}: {g.why}" for name, g in samples if g.why))
        return out

    def _cgroup_samples(self, jobs: list[tuple[ResourceAddress, str, str, str]]) -> dict[str, stats.Sample | str]:
        """Every container's use from its node's cgroups: one command per node reached over SSH (all nodes at
        once), sampling for METRICS_INTERVAL. Containers it does not find are left to the stats API."""
        by_node: dict[str, list[str]] = {}
        for _, node, _, cid in jobs:
            by_node.setdefault(node, []).append(cid)

        def read(node: str) -> dict[str, stats.Sample]:
            try:
                host = self._net._host(node)
                got = host.run(["sh", "-c", stats.CGROUP_SCRIPT, "sh", str(METRICS_INTERVAL), *by_node[node]],
                               check=False)
            except (NodeError, EngineError, HostCommandError):
                return {}  # no shell there (a tcp:// node), or it does not answer: the stats API says which
            return stats.parse_cgroup_samples(got.stdout) if got.rc == 0 else {}

        out: dict[str, stats.Sample | str] = {}
        with cf.ThreadPoolExecutor(min(8, len(by_node))) as ex:
            for found in ex.map(read, sorted(by_node)):
                out.update(found)
        return out

    # ---- plan ----------------------------------------------------------------------------------------
    def plan(self, address: ResourceAddress, prior: StateObject | None,
             config: dict[str, Any] | None) -> PlannedObject:
        if config is None:
            return PlannedObject(dict(prior.attributes) if prior else {})
        if address.type == "node":
            return self._plan_node(address, prior, config)
        if address.type == "pod":
            return self._plan_pod(address, prior, config)
        if address.type == network.SERVICE:
            return self._net.plan_service(address, prior, config)
        if address.type == network.NETWORK_POLICY:
            return self._net.plan_policy(address, prior, config)
        if address.type in (SECRET, VOLUME):
            return PlannedObject(dict(config))
        if address.type == network.NODE_SERVICES:
            return self._net.plan_services(address, prior, config)
        return PlannedObject(dict(config), diagnostics=[Diagnostic.error(
            "Unsupported resource type", f"The docker provider does not handle {address.type}.",
            address=str(address))])

    def _plan_node(self, address: ResourceAddress, prior: StateObject | None,
                   config: dict[str, Any]) -> PlannedObject:
        diags: list[Diagnostic] = []
        try:
            NodeSettings.from_attributes(node_name(address), config).endpoint()  # settings make sense
        except NodeError as e:
            diags.append(Diagnostic.error(e.summary, e.detail, hint=e.hint, address=str(address)))
        if prior is None:
            planned = dict(config)
            planned["id"] = UNKNOWN
            planned["engine_version"] = UNKNOWN
            planned["capacity"] = _planned_capacity(config.get("capacity"), None)
        else:
            planned = merge_configured(prior.attributes, config)
            planned["capacity"] = _planned_capacity(config.get("capacity"), prior.attributes.get("capacity"))
            if prior.status is not None and prior.status.state == "degraded":
                return PlannedObject(planned, diagnostics=diags, repair=f"because node {node_name(address)}'s pod "
                                     f"network drifted: {prior.status.message}")
        return PlannedObject(planned, diagnostics=diags)

    def _plan_pod(self, address: ResourceAddress, prior: StateObject | None,
                  config: dict[str, Any]) -> PlannedObject:
        """The pod's ``node`` is the core scheduler's choice (absent when it could not place the replica: the
        plan already fails with the reasons)."""
        diags = _validate_pod(address, config)
        node = config.get("node") if isinstance(config.get("node"), str) else None
        if prior is None:
            planned = dict(config)
            planned["node"] = node if node is not None else UNKNOWN
            planned["id"] = UNKNOWN
            planned["ip"] = UNKNOWN
            return PlannedObject(planned, diagnostics=diags)
        planned = merge_configured(prior.attributes, config)
        if pods.containers_of(config):
            planned["container"] = config["container"]
        planned["node"] = node if node is not None else prior.attributes.get("node")
        paths = pods.replace_paths(prior.attributes, config)
        return PlannedObject(planned, requires_replace=paths, diagnostics=diags,
                             repair=pods.repair_reason(prior.status, prior.private.get("not_running")))

    # ---- facts -----------------------------------------------------------------------------------------
    def facts(self, world: World, new: list[ChangeView]) -> Facts:
        """What new nodes report, read-only, before the plan is made for good: their capacity (``docker info``:
        ``NCPU``, ``MemTotal``), engine id and version. The scheduler then places pods against the real capacity
        of nodes orch has not recorded yet, instead of "known after apply". The connection is reused by
        preflight and apply."""
        self._learn(world)
        nodes = [c for c in new if c.address.type == "node" and c.after is not None and _connectable(c.after)]
        out = Facts()

        def read(c: ChangeView) -> tuple[ChangeView, dict[str, Any] | Diagnostic]:
            try:
                s = self._register(c.address, c.after or {}, from_config=True)
                info = self._conns.engine(s).info()
            except NodeError as e:
                return c, self._node_diag(e, str(c.address))
            except EngineError as e:
                return c, Diagnostic.error("Cannot read node", f"node {node_name(c.address)}: {e}",
                                           address=str(c.address))
            return c, {k: v for k, v in {"id": info.get("ID"), "engine_version": info.get("ServerVersion"),
                                         "capacity": {"cpu": info.get("NCPU"), "memory": info.get("MemTotal")}
                                         }.items() if v is not None}

        with cf.ThreadPoolExecutor(max(1, min(8, len(nodes)))) as ex:
            for c, got in ex.map(read, nodes):
                if isinstance(got, Diagnostic):
                    out.diagnostics.append(got)
                else:
                    out.values[c.address] = got
        return out

    # ---- preflight -----------------------------------------------------------------------------------
    def preflight(self, world: World, changes: list[ChangeView]) -> list[Diagnostic]:
        """Read-only checks before anything changes: new nodes reachable (trusted host key, Docker new
        enough; the connection is reused by the apply), images of pods to create present when never pulled."""
        self._learn(world)
        diags: list[Diagnostic] = []
        new_nodes = [c for c in changes if c.address.type == "node" and c.action in ("create", "replace")
                     and c.after is not None and not contains_unknown(c.after.get("address"))]
        pods_made = [c for c in changes if c.address.type == "pod" and c.action in ("create", "replace")
                     and c.after is not None and isinstance(c.after.get("node"), str)]
        moved = [c for c in changes if c.address.type == "pod" and c.action == "update" and c.after is not None
                 and c.before is not None and c.after.get("node") != c.before.get("node")]

        def connect(c: ChangeView) -> list[Diagnostic]:
            try:
                s = self._register(c.address, c.after or {}, from_config=True)
                self._conns.engine(s)
            except NodeError as e:
                # already reported when its facts were read: the plan fails on that, once
                return [self._node_diag(e, str(c.address))] if self._first_report_pending(e) else []
            return []

        def images(c: ChangeView) -> list[Diagnostic]:
            after = c.after or {}
            return self._check_images(c.address, after["node"], after)

        jobs = [(connect, c) for c in new_nodes]
        with cf.ThreadPoolExecutor(max(1, min(8, len(jobs)))) as ex:
            for result in ex.map(lambda j: j[0](j[1]), jobs):
                diags.extend(result)
        bad = {d.address for d in diags}
        for c in pods_made + moved:
            node = cast(str, (c.after or {}).get("node"))  # a planned pod has its node
            if self._addr_of(node) in bad:
                continue
            diags.extend(images(c))
        diags.extend(self._net.preflight(world, changes))
        return diags

    def _first_report_pending(self, e: NodeError) -> bool:
        with self._lock:
            return (e.node, e.summary, e.detail) not in self._reported

    def _check_images(self, address: ResourceAddress, node: str, config: dict[str, Any]) -> list[Diagnostic]:
        """With pull = "never" a missing image fails the plan, naming the node (one inspect per image)."""
        wanted = [c for c in pods.containers_of(config) if c.get("pull") == "never"
                  and isinstance(c.get("image"), str)]
        if not wanted or self._settings(node) is None or node in self._down:
            return []
        try:
            eng = self._engine(node)
            missing = []
            for c in wanted:
                if not self._image_present(eng, node, c["image"]):
                    missing.append(c)
        except NodeError as e:
            return [self._node_diag(e)] if self._first_report_pending(e) else []
        except EngineError as e:
            return [Diagnostic.error("Cannot check images", f"node {node}: {e}", address=self._addr_of(node))]
        return [Diagnostic.error(
            "Image not on node",
            f'Image "{c["image"]}" of container "{c.get("name")}" is not on node {node}, and pull = "never".',
            address=str(address),
            hint=f'load the image on {node} (docker load / docker build), or set pull = "missing"')
            for c in missing]

    def _image_present(self, eng: Engine, node: str, image: str) -> bool:
        key = (node, image)
        with self._lock:
            if key in self._images:
                return self._images[key]
        present = eng.image_present(image)
        with self._lock:
            self._images[key] = present
        return present

    # ---- apply ---------------------------------------------------------------------------------------
    def create(self, request: ApplyRequest) -> ApplyResult:
        return self._apply("create", request)

    def update(self, request: ApplyRequest) -> ApplyResult:
        return self._apply("update", request)

    def delete(self, request: ApplyRequest) -> ApplyResult:
        return self._apply("delete", request)

    def _apply(self, verb: str, request: ApplyRequest) -> ApplyResult:
        addr = request.address
        if not self.lineage and addr.type == "pod":
            return ApplyResult(None, [Diagnostic.error(
                "Provider not configured", "The docker provider has no state lineage to label containers with.",
                address=str(addr))])
        self._learn(request.world)
        try:
            if addr.type == "node":
                return self._apply_node(verb, request)
            if addr.type == "pod":
                return self._apply_pod(verb, request)
            if addr.type == VOLUME and verb == "delete":
                return self._delete_volume(request)
            if addr.type in RECORDS:
                return self._net.apply_service(verb, request)
            if addr.type == network.NODE_SERVICES:
                return (self._net.delete_services(request) if verb == "delete"
                        else self._net.sync_services(request))
        except HostCommandError as e:
            return ApplyResult(None, [Diagnostic.error("Command failed on the node", str(e), address=str(addr),
                                                       hint=e.hint)])
        except PodNetworkError as e:
            return ApplyResult(None, [Diagnostic.error(e.summary, f"node {e.node}: {e.detail}" if e.detail else
                                                       f"node {e.node}", address=str(addr), hint=e.hint)])
        except NodeError as e:
            return ApplyResult(None, [self._node_diag(e, context=f"{addr}: ")])
        except EngineError as e:
            return ApplyResult(None, [Diagnostic.error("Docker request failed", str(e), address=str(addr))])
        return ApplyResult(None, [Diagnostic.error("Unsupported resource type", str(addr.type),
                                                   address=str(addr))])

    def _apply_node(self, verb: str, request: ApplyRequest) -> ApplyResult:
        if verb == "delete":
            # orch does not own the host (its pods are deleted on their own), only the pod network it made there
            if request.prior is not None and node_name(request.address) not in self._down:
                self._register(request.address, request.prior.attributes, from_config=True)
                self._net.teardown_node(node_name(request.address), request.prior.attributes, request.progress)
            return ApplyResult(None)
        prior = request.prior
        planned_cap = (request.planned or {}).get("capacity")
        after = {k: v for k, v in (request.planned or {}).items() if v is not UNKNOWN}
        if prior is not None and isinstance(prior.attributes.get("capacity"), dict):
            after["capacity"] = {**prior.attributes["capacity"],
                                 **{k: v for k, v in (planned_cap or {}).items() if v is not UNKNOWN}} \
                if isinstance(planned_cap, dict) else prior.attributes["capacity"]
        s = self._register(request.address, after, from_config=True)
        eng = self._conns.engine(s)
        info = eng.info()
        self._net.ensure_node(node_name(request.address), after, request.progress)
        attrs, private = _node_facts(after, prior.private if prior else {}, info,
                                     planned=planned_cap if planned_cap is not None else {})
        return ApplyResult(StateObject(request.address, attrs, private))

    def _apply_pod(self, verb: str, request: ApplyRequest) -> ApplyResult:
        addr, prior, progress = request.address, request.prior, request.progress
        if verb == "delete":
            if prior is not None:
                self._delete_pod(addr, prior, progress, keep=request.keep)
            return ApplyResult(None)
        after = dict(request.planned or {})
        if contains_unknown({k: v for k, v in after.items() if k not in pods.COMPUTED_POD}) or \
                after.get("node") is UNKNOWN:
            return ApplyResult(None, [Diagnostic.error("Values still unknown",
                                                       f"{addr} has values that are unknown at apply time.",
                                                       address=str(addr))])
        if verb == "update":
            assert prior is not None
            attrs, private = self._update_pod(addr, prior, after, progress)
            return ApplyResult(StateObject(addr, attrs, private))
        # beside a deposed object (create_before_destroy) the usual names are taken: a suffix tells them apart
        attrs, private = self._create_pod(addr, after, progress, temp=secrets.token_hex(3) if request.keep else None,
                                          world=request.world, sensitive=request.sensitive)
        return ApplyResult(StateObject(addr, attrs, private))

    # create ----------------------------------------------------------------------------------------------
    def _create_pod(self, addr: ResourceAddress, after: dict[str, Any], progress: Progress,
                    temp: str | None = None, world: World | None = None,
                    sensitive: tuple[tuple[Any, ...], ...] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
        node = after["node"]
        eng = self._engine(node)
        attrs = {k: v for k, v in after.items() if v is not UNKNOWN}
        ident = pods.Identity(self.lineage, addr, node, pods.config_hash(attrs), self.namespace,
                              self._net.pod_network_of(node))
        base = naming.in_namespace(naming.base_name(addr, attrs.get("name")), self.namespace)

        def name_of(n: str) -> str:
            return naming.temporary(n, temp) if temp else n

        with _Ticker(progress, "creating"):
            self._ensure_images(eng, node, attrs, progress)
            pause_image = self._pause_image(eng, node, progress)
            if temp is None:
                self._remove_leftovers(eng, node, addr)
            made: list[str] = []
            ids: dict[str, str] = {}
            specs = files.files_of(attrs, sensitive)
            groups = files.secret_groups(specs)
            volumes = [name_of(f"{naming.infra_name(base)}-secrets-{g.key}") for g in groups]
            try:
                for name in volumes:  # tmpfs: a secret file never reaches the node's disk
                    eng.create_volume(name, files.TMPFS_OPTS, ident.labels(naming.ROLE_INFRA))
                infra_id = self._create_named(
                    eng, pods.infra_config(attrs, ident, pause_image, [
                        pods.secret_mount(v, f"{files.SECRETS_ROOT}/{g.key}") for g, v in zip(groups, volumes,
                                                                                               strict=True)]),
                    name_of(naming.infra_name(base)), addr)
                made.append(infra_id)
                eng.start(infra_id)
                for g in groups:
                    eng.put_archive(infra_id, f"{files.SECRETS_ROOT}/{g.key}", files.group_tar(g))
                # under an isolating network policy, the pod's address is closed before its apps start (the
                # node's policy rules for it come with the node's program, later in this apply)
                isolation = self._net.isolation_of(addr, node, world or {})
                if isolation is not None:
                    ip = pods.ip_of(eng.inspect(infra_id))
                    if ip:
                        self._net.close_pending(node, ip, *isolation)
                run = self._volume_mounts(eng, node, attrs, ident, world)  # volume blocks -> Docker volumes
                for c in pods.containers_of(run):
                    mounts = [pods.secret_mount(v, g.directory) for g, v in zip(groups, volumes, strict=True)
                              if g.container == c["name"]]
                    cid = self._create_named(eng, pods.app_config(run, c, infra_id, ident, mounts),
                                             name_of(naming.app_name(base, c["name"])), addr)
                    made.append(cid)
                    ids[c["name"]] = cid
                    plain = files.plain_tar(specs.get(c["name"], []))
                    if plain is not None:  # before its process starts
                        eng.put_archive(cid, "/", plain)
                    eng.start(cid)
                info = eng.inspect(infra_id)
            except EngineError:
                for cid in reversed(made):  # leave nothing half-made behind
                    try:
                        eng.remove(cid)
                    except EngineError:
                        pass
                for name in volumes:
                    try:
                        eng.remove_volume(name)
                    except EngineError:
                        pass
                raise
        attrs["id"] = infra_id[:12]
        ip = pods.ip_of(info)
        if ip:
            attrs["ip"] = ip
        attrs["node"] = node
        progress(f"infra {infra_id[:12]} and {len(ids)} container(s) running on {node}")
        private: dict[str, Any] = {"node": node, "infra": infra_id, "containers": ids}
        if volumes:
            private["volumes"] = volumes
        return attrs, private

    def _create_named(self, eng: Engine, body: dict[str, Any], name: str, addr: ResourceAddress) -> str:
        try:
            return eng.create(body, name)
        except Conflict as first:
            try:
                other = eng.inspect(name)
            except NotFound:
                raise first from None
            lb = (other.get("Config") or {}).get("Labels") or {}
            if lb.get(naming.LINEAGE) == self.lineage and lb.get(naming.ADDRESS) == str(addr):
                eng.remove(other["Id"])  # a leftover of an earlier attempt at this very pod
                return eng.create(body, name)
            owner = (f"made by orch for {lb.get(naming.ADDRESS)} of state lineage {lb.get(naming.LINEAGE)}"
                     if lb.get(naming.LINEAGE) else "not made by orch")
            raise EngineError(f'a container named "{name}" already exists on node {eng.node} ({owner}); '
                              "remove or rename it") from None

    def _ensure_images(self, eng: Engine, node: str, attrs: dict[str, Any], progress: Progress) -> None:
        policy: dict[str, str] = {}
        for c in pods.containers_of(attrs):
            p = c.get("pull") or "missing"
            prev = policy.get(c["image"])
            # the strictest wins: always > missing > never
            order = {"never": 0, "missing": 1, "always": 2}
            if prev is None or order.get(p, 1) > order.get(prev, 1):
                policy[c["image"]] = p
        for image, p in policy.items():
            if p == "always" or not self._image_present(eng, node, image):
                if p == "never":
                    raise EngineError(f'image "{image}" is not on node {node} and pull = "never"')
                progress(f"Pulling {image} on {node}...")
                eng.pull(image)
                with self._lock:
                    self._images[(node, image)] = True

    def _pause_image(self, eng: Engine, node: str, progress: Progress) -> str | None:
        """orch's pause image on the node (see :mod:`.pause`), made there on first use — ``docker import`` of an
        in-memory tar, never pulled — and then reused: one check per node and run. None where orch has no pause
        program for the node's architecture (the infra container then runs the first image's ``sleep``)."""
        with self._lock:
            if node in self._pause:
                return self._pause[node]
            lock = self._pause_locks.setdefault(node, threading.Lock())
        with lock:  # pods created at once on a new node: one import
            with self._lock:
                if node in self._pause:
                    return self._pause[node]
            arch = pause.architecture(eng.info().get("Architecture"))
            ref = pause.image_ref(arch) if arch is not None else None
            if arch is not None and ref is not None and not eng.image_present(ref):
                progress(f"making orch's pause image {ref} on {node}")
                repo, _, tag = ref.partition(":")
                eng.import_image(pause.image_tar(arch), repo, tag, [f"ENTRYPOINT {json.dumps(pause.ENTRYPOINT)}"])
            with self._lock:
                self._pause[node] = ref
            return ref

    def _leftovers(self, eng: Engine, node: str, addr: ResourceAddress, key: tuple[str, str] | None = None
                   ) -> list[str]:
        """Ids of the containers of one pod on its node, apps first: from the refresh's list if it covered
        the node, else one list call."""
        lineage, label_addr = key or self._pod_keys.get(addr, (self.lineage, str(addr)))
        with self._lock:
            listed = self._observed.get(node)
        if listed is None:
            listed = eng.list_containers([naming.lineage_filter(lineage), f"{naming.ADDRESS}={label_addr}"])
        groups = pods.group({node: listed})
        obs = groups.get((lineage, label_addr))
        return obs.ids if obs else []

    def _remove_leftovers(self, eng: Engine, node: str, addr: ResourceAddress) -> None:
        for cid in self._leftovers(eng, node, addr, (self.lineage, str(addr))):
            eng.remove(cid)

    # delete ----------------------------------------------------------------------------------------------
    def _delete_pod(self, addr: ResourceAddress, prior: StateObject, progress: Progress,
                    keep: tuple[StateObject, ...] = ()) -> None:
        """Remove the pod's containers: those recorded, and leftovers of its address (an interrupted create),
        except those of the objects to ``keep`` (the other generation of a create_before_destroy)."""
        node = prior.attributes.get("node") or prior.private.get("node")
        if not isinstance(node, str):
            return
        eng = self._engine(node)
        recorded = list((prior.private.get("containers") or {}).values())
        infra = prior.private.get("infra")
        kept = {i for k in keep for i in [k.private.get("infra"), *(k.private.get("containers") or {}).values()]
                if isinstance(i, str)}
        leftovers = [] if keep else self._leftovers(eng, node, addr)
        ids = [i for i in dict.fromkeys(recorded + leftovers + ([infra] if infra else [])) if i not in kept]
        # apps before infra: an app holds the infra container's namespaces
        apps = [i for i in ids if i != infra]
        with _Ticker(progress, "destroying"):
            for cid in apps + ([infra] if infra else []):
                eng.remove(cid)
            # the tmpfs volumes of its secret files (their content is gone with the last container using them)
            kept_volumes = {v for k in keep for v in (k.private.get("volumes") or [])}
            names = list(prior.private.get("volumes") or [])
            if not keep and any(c.get("file") for c in pods.containers_of(prior.attributes)):
                # also those of an interrupted create, by label (only a pod with files has any)
                key = self._pod_keys.get(addr, (self.lineage, str(addr)))
                names += [v.get("Name") for v in eng.volumes(naming.lineage_filter(key[0]))
                          if (v.get("Labels") or {}).get(naming.ADDRESS) == key[1]]
            for name in dict.fromkeys(names):
                if isinstance(name, str) and name not in kept_volumes:
                    eng.remove_volume(name)

    # volumes -------------------------------------------------------------------------------------------
    def _volume_mounts(self, eng: Engine, node: str, attrs: dict[str, Any], ident: pods.Identity,
                       world: World | None) -> dict[str, Any]:
        """The pod's attributes with each mount of a volume block's volume naming its Docker volume, made on
        this node if it is not there yet (with the block's driver and options)."""
        if not any(isinstance(m, dict) and m.get("volume") for c in pods.containers_of(attrs)
                   for m in c.get("mounts") or []):
            return attrs  # the common case: no volume, no look through the run's world
        blocks = {str(v.get("name")): v for a, v in (world or {}).items() if a.type == VOLUME}
        conts = []
        for c in pods.containers_of(attrs):
            mounts = []
            for m in c.get("mounts") or []:
                if isinstance(m, dict) and isinstance(m.get("volume"), str):
                    spec = blocks.get(m["volume"]) or {}
                    docker_name = naming.volume_name(m["volume"], self.namespace)
                    labels = {naming.LINEAGE: ident.lineage, naming.VOLUME: m["volume"],
                              **({naming.NAMESPACE: self.namespace} if self.namespace else {}),
                              **{str(k): str(v) for k, v in (spec.get("labels") or {}).items()}}
                    eng.create_volume(docker_name, {str(k): str(v) for k, v in (spec.get("driver_opts") or {}).items()},
                                      labels, str(spec.get("driver") or "local"))
                    m = {**m, "volume": docker_name}
                mounts.append(m)
            conts.append({**c, "mounts": mounts})
        return {**attrs, "container": conts}

    def _delete_volume(self, request: ApplyRequest) -> ApplyResult:
        """A volume block goes: its Docker volume goes from every node it was made on (after the pods that
        mounted it: they depend on it)."""
        prior = request.prior
        if prior is None:
            return ApplyResult(None)
        name = naming.volume_name(str(prior.attributes.get("name")), self.namespace)
        with self._lock:
            nodes = sorted(set(self._state_nodes) | set(self._config_nodes))
        for node in nodes:
            eng = self._engine(node)
            if any(v.get("Name") == name for v in eng.volumes(f"{naming.VOLUME}={prior.attributes.get('name')}")):
                eng.remove_volume(name)
                request.progress(f"removed volume {name} from {node}")
        return ApplyResult(None)

    # update ----------------------------------------------------------------------------------------------
    def _update_pod(self, addr: ResourceAddress, prior: StateObject, after: dict[str, Any],
                    progress: Progress) -> tuple[dict[str, Any], dict[str, Any]]:
        node = cast(str, prior.attributes.get("node") or prior.private.get("node"))  # a pod has its node
        eng = self._engine(node)
        private = dict(prior.private)
        ids = dict(private.get("containers") or {})
        if not ids or any(c["name"] not in ids for c in pods.containers_of(after)):
            key = self._pod_keys.get(addr, (self.lineage, str(addr)))
            listed = eng.list_containers([naming.lineage_filter(key[0]), f"{naming.ADDRESS}={key[1]}"])
            obs = pods.group({node: listed}).get(key)
            ids = {n: c["Id"] for n, c in (obs.apps if obs else {}).items()}
        not_running = set(private.pop("not_running", None) or [])
        for c in pods.containers_of(after):
            cid = ids.get(c["name"])
            if cid is None:
                raise EngineError(f'container "{c["name"]}" of {addr} is missing on node {node}')
            eng.update(cid, pods.update_body(after, c))
            if c["name"] in not_running:
                state = (eng.inspect(cid).get("State") or {})
                if state.get("Paused"):
                    eng.unpause(cid)
                elif not state.get("Running"):
                    eng.start(cid)
                progress(f"restarted {c['name']} ({cid[:12]})")
        attrs = {k: v for k, v in after.items() if v is not UNKNOWN}
        for k in pods.COMPUTED_POD:
            if k not in attrs and k in prior.attributes:
                attrs[k] = prior.attributes[k]
        private["containers"] = ids
        return attrs, private

    # ---- import --------------------------------------------------------------------------------------
    def import_object(self, address: ResourceAddress, object_id: str, world: World) -> StateObject | None:
        """Adopt a pod made by orch (any state) by its infra container's id or name.

        The provider must know the nodes (from the world or the state); each is asked in turn.
        """
        self._learn(world)
        if address.type != "pod":
            return None
        with self._lock:
            names = sorted(set(self._config_nodes) | set(self._state_nodes))
        for node in names:
            try:
                eng = self._engine(node)
                found = eng.inspect(object_id)
            except (NotFound, NodeError, EngineError):
                continue
            lb = (found.get("Config") or {}).get("Labels") or {}
            lineage, label_addr = lb.get(naming.LINEAGE), lb.get(naming.ADDRESS)
            if not lineage or not label_addr:
                continue
            listed = eng.list_containers([naming.lineage_filter(lineage), f"{naming.ADDRESS}={label_addr}"])
            obs = pods.group({node: listed}).get((lineage, label_addr))
            if obs is None:
                continue
            attrs, private = pods.orphan_attributes(obs)
            if attrs is None:
                continue
            if lineage != self.lineage or label_addr != str(address):
                private.update(lineage=lineage, label_address=label_addr)
            return StateObject(address, attrs, private)
        return None


# ---- helpers -------------------------------------------------------------------------------------------

def _connectable(values: dict[str, Any]) -> bool:
    """Whether a planned node's connection settings are known (not waiting for another resource)."""
    return not any(contains_unknown(values.get(k)) for k in
                   ("address", "port", "user", "identity_file", "known_hosts", "docker_host"))


def _planned_capacity(configured: Any, prior: Any) -> Any:
    """Capacity: each configured dimension, else what the host reports (known after apply)."""
    conf = configured if isinstance(configured, dict) else {}
    before = prior if isinstance(prior, dict) else {}
    out = {}
    for dim in ("cpu", "memory"):
        if conf.get(dim) is not None:
            out[dim] = conf[dim]
        elif dim in before:
            out[dim] = before[dim]
        else:
            out[dim] = UNKNOWN
    return out


def _node_facts(attrs: dict[str, Any], private: dict[str, Any], info: dict[str, Any],
                planned: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """A node's attributes with what ``docker info`` says: engine id, version, reported capacity.

    ``capacity`` holds, per dimension, the configured value or else what the host reports; the private
    ``reported`` list remembers which dimensions are reported, so refresh can update those only.
    ``planned``: the planned capacity at apply (unknown dimensions are to be reported).
    """
    out = dict(attrs)
    priv = dict(private or {})
    out["id"] = info.get("ID") or out.get("id")
    if info.get("ServerVersion"):
        out["engine_version"] = info["ServerVersion"]
    reported = {"cpu": info.get("NCPU"), "memory": info.get("MemTotal")}
    was_reported = set(priv.get("reported") or ())
    cap = {k: v for k, v in (out.get("capacity") or {}).items() if v is not UNKNOWN} \
        if isinstance(out.get("capacity"), dict) else {}
    if planned is not None:
        plan_cap = planned if isinstance(planned, dict) else {}
        dims = []
        for d in ("cpu", "memory"):
            v = plan_cap.get(d, UNKNOWN)
            if v is UNKNOWN or (d in was_reported and v == cap.get(d)):
                dims.append(d)
        was_reported = set(dims)
    elif "reported" not in priv:
        was_reported = {d for d in ("cpu", "memory") if d not in cap}
    priv["reported"] = sorted(was_reported)
    for dim in priv["reported"]:
        if reported.get(dim) is not None:
            cap[dim] = reported[dim]
    out["capacity"] = cap
    return out, priv


def _validate_pod(address: ResourceAddress, config: dict[str, Any]) -> list[Diagnostic]:
    diags = []
    for c in pods.containers_of(config):
        labels = c.get("labels")
        if isinstance(labels, dict):
            bad = naming.reserved_labels(labels)
            if bad:
                diags.append(Diagnostic.error(
                    "Reserved label", f'Container "{c.get("name")}" sets {", ".join(json.dumps(b) for b in bad)}: '
                    "labels starting with orch. are orch's own.", address=str(address),
                    hint="rename the label"))
        env = c.get("env")
        if isinstance(env, dict):
            for k in env:
                if not isinstance(k, str) or not k or "=" in k or "\x00" in k:
                    diags.append(Diagnostic.error(
                        "Invalid environment variable name",
                        f'Container "{c.get("name")}": {json.dumps(k)} cannot be an environment variable name.',
                        address=str(address), hint="names must be non-empty and contain no = or NUL"))
    return diags
