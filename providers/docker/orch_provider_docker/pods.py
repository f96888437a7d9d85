"""Pods on Docker: pure functions from pod attributes to Engine API bodies and back.

A pod replica is an *infra* container holding the network and IPC namespaces
and the hostname (orch's pause program, from the pause image the provider makes
on each node: see :mod:`.pause`), plus one *app* container per ``container`` block joined to it with
``NetworkMode``/``IpcMode`` = ``container:<infra id>`` — the layout of
Kubernetes' dockershim. Ports are published on the infra container, since
the apps share its network namespace.

Nothing here does I/O: the provider feeds these functions with plan values
and with the results of one ``list containers`` call per node.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, cast

from orchdsl.sdk import UNKNOWN, MemberStatus, ObjectStatus, Path, ResourceAddress, configured_changes

from . import files, naming, pause

NETWORK = "bridge"  # Docker's default bridge: pods of nodes without orch's pod network (no SSH)
POD_NETWORK = "orch"  # orch's pod network on a node (providers/docker/orch_provider_docker/podnet.py)
INFRA_COMMAND = ["sleep", "2147483647"]  # only where orch has no pause program for the node's architecture
HASH_VERSION = "v1"

# Attributes of a pod that change without touching its containers' identity:
# restart and resources through `docker update`; the rest lives only in orch's state.
# scheduling attributes change nothing on Docker: a pod they displace gets a new "node", which forces the move
IN_PLACE_POD = frozenset({"restart", "labels", "node_selector", "spread_by", "placement", "anti_affinity",
                          "strategy", "autoscale"})  # how orch manages the pod, nothing in Docker
IN_PLACE_CONTAINER = frozenset({"resources", "pull"})
FORCE_NEW_POD = frozenset({"hostname"})
COMPUTED_POD = ("id", "ip", "node")

RUNNING_STATES = frozenset({"running", "restarting"})


# ---- helpers ------------------------------------------------------------------------------------------

def _ns(seconds: Any) -> int:
    return round(float(seconds) * 1_000_000_000)


def _norm(v: Any) -> Any:
    """Canonical form for hashing: 5.0 and 5 are one number (state files round-trip through JSON)."""
    if isinstance(v, dict):
        return {str(k): _norm(x) for k, x in v.items() if x is not None}
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def canonical_json(v: Any) -> str:
    return json.dumps(_norm(v), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def containers_of(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    cs = attrs.get("container")
    return [c for c in cs if isinstance(c, dict)] if isinstance(cs, list) else []


def instance_name(address: ResourceAddress, attrs: dict[str, Any]) -> str:
    n = attrs.get("name")
    if isinstance(n, str) and n:
        return n
    return address.name if address.key is None else f"{address.name}-{address.key}"


_HOST_BAD = re.compile(r"[^a-z0-9-]+")


def hostname_for(address: ResourceAddress, attrs: dict[str, Any]) -> str:
    """The pod's hostname: ``hostname`` if set, else the instance name made a valid host name."""
    h = attrs.get("hostname")
    if isinstance(h, str) and h:
        return h
    out = _HOST_BAD.sub("-", instance_name(address, attrs).lower()).strip("-")
    return (out or "pod")[:63]


def config_hash(attrs: dict[str, Any]) -> str:
    """Hash of everything that cannot change in place: two containers with one hash were made from one spec.

    Computed from orch's attributes (not from the Docker request), so that a new orch version mapping
    attributes differently does not make every pod look foreign.
    """
    conts = [{k: v for k, v in c.items() if k not in IN_PLACE_CONTAINER} for c in containers_of(attrs)]
    basis = {"container": conts, "hostname": attrs.get("hostname"), "name": attrs.get("name")}
    return f"{HASH_VERSION}:" + hashlib.sha256(canonical_json(basis).encode()).hexdigest()[:32]


def spec_label(attrs: dict[str, Any]) -> str:
    """The pod's attributes as created, stored on the infra container to adopt it after a crash."""
    plain = files.without_contents(attrs)  # a label is readable by anyone who can inspect: no file content
    return canonical_json({k: v for k, v in plain.items() if k not in COMPUTED_POD and v is not UNKNOWN})


# ---- Docker requests ------------------------------------------------------------------------------

def restart_policy(restart: Any) -> dict[str, Any]:
    name = restart if restart in ("always", "on-failure", "unless-stopped", "no") else "always"
    if name == "on-failure":
        return {"Name": "on-failure", "MaximumRetryCount": 0}
    return {"Name": name}


def resource_limits(resources: Any) -> dict[str, Any]:
    """Docker HostConfig resource fields from a container's ``resources`` block.

    Limits default to the requests (the schema's rule). The memory limit is hard (no swap on top:
    MemorySwap = Memory); the memory request becomes a soft reservation and the CPU request relative
    CPU shares (1024 per core), so that requests matter under contention.
    """
    if not isinstance(resources, dict):
        return {}
    limits = resources.get("limits")
    if not isinstance(limits, dict):
        limits = {}
    cpu_req, mem_req = resources.get("cpu"), resources.get("memory")
    cpu_lim = limits.get("cpu", None) if limits.get("cpu") is not None else cpu_req
    mem_lim = limits.get("memory", None) if limits.get("memory") is not None else mem_req
    out: dict[str, int] = {}
    if cpu_lim is not None:
        out["NanoCpus"] = round(float(cpu_lim) * 1e9)
    if cpu_req is not None:
        out["CpuShares"] = max(2, round(float(cpu_req) * 1024))
    if mem_lim is not None:
        out["Memory"] = int(mem_lim)
        out["MemorySwap"] = int(mem_lim)
    if mem_req is not None:
        out["MemoryReservation"] = int(mem_req)
    return out


def healthcheck(health: Any) -> dict[str, Any] | None:
    if not isinstance(health, dict) or not health.get("command"):
        return None
    out: dict[str, Any] = {"Test": ["CMD", *[str(a) for a in health["command"]]]}
    for key, attr in (("Interval", "interval"), ("Timeout", "timeout"), ("StartPeriod", "start_period")):
        if health.get(attr) is not None:
            out[key] = _ns(health[attr])
    if health.get("retries") is not None:
        out["Retries"] = int(health["retries"])
    return out


def mounts(container: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for m in container.get("mounts") or []:
        if not isinstance(m, dict):
            continue
        ro = m.get("read_only") is True
        if m.get("volume"):
            out.append({"Type": "volume", "Source": str(m["volume"]), "Target": str(m["target"]), "ReadOnly": ro})
        elif m.get("host_path"):
            out.append({"Type": "bind", "Source": str(m["host_path"]), "Target": str(m["target"]),
                        "ReadOnly": ro})
        elif m.get("tmpfs"):
            out.append({"Type": "tmpfs", "Target": str(m["target"]), "ReadOnly": ro})
    return out


def ports(attrs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(ExposedPorts, PortBindings) of the pod: every container's ports, published on the infra container."""
    exposed: dict[str, dict[str, Any]] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for c in containers_of(attrs):
        for p in c.get("ports") or []:
            if not isinstance(p, dict) or p.get("container_port") is None:
                continue
            key = f"{int(p['container_port'])}/{p.get('protocol') or 'tcp'}"
            exposed[key] = {}
            if p.get("host_port") is not None:
                bindings.setdefault(key, []).append({"HostIp": "", "HostPort": str(int(p["host_port"]))})
    return exposed, bindings


def env_list(env: Any) -> list[str]:
    if not isinstance(env, dict):
        return []
    return [f"{k}={v}" for k, v in sorted(env.items())]


@dataclass(frozen=True)
class Identity:
    """What labels a pod replica's containers: whose state, which address, which spec, where."""

    lineage: str
    address: ResourceAddress
    node: str
    config_hash: str
    namespace: str = ""  # the configuration's namespace ("" for a provider not told one)
    network: str = NETWORK  # the Docker network the infra container joins: orch's pod network, or Docker's bridge

    def labels(self, role: str, container: str | None = None) -> dict[str, str]:
        out = {naming.LINEAGE: self.lineage, naming.ADDRESS: str(self.address), naming.ROLE: role,
               naming.CONFIG_HASH: self.config_hash, naming.NODE: self.node}
        if self.namespace:
            out[naming.NAMESPACE] = self.namespace
        if container is not None:
            out[naming.CONTAINER] = container
        return out


def secret_mount(volume: str, target: str) -> dict[str, Any]:
    return {"Type": "volume", "Source": volume, "Target": target, "ReadOnly": not target.startswith(
        files.SECRETS_ROOT)}


def infra_config(attrs: dict[str, Any], ident: Identity, pause_image: str | None = None,
                 mounts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Create body of the infra container: orch's pause program from ``pause_image`` (it handles SIGTERM itself,
    as PID 1, and needs nothing else); without one (an architecture orch has no pause program for), ``sleep``
    from the first container's image under Docker's init."""
    exposed, bindings = ports(attrs)
    labels = ident.labels(naming.ROLE_INFRA)
    labels[naming.SPEC] = spec_label(attrs)
    if pause_image is not None:
        run: dict[str, Any] = {"Image": pause_image, "Entrypoint": list(pause.ENTRYPOINT), "Cmd": None}
    else:
        run = {"Image": containers_of(attrs)[0]["image"], "Entrypoint": [INFRA_COMMAND[0]], "Cmd": INFRA_COMMAND[1:]}
    return {
        **run,
        "Hostname": hostname_for(ident.address, attrs),
        "Labels": labels,
        "ExposedPorts": exposed,
        "HostConfig": {
            "NetworkMode": ident.network,
            "IpcMode": "shareable",
            "Init": pause_image is None,
            "RestartPolicy": {"Name": "always"},
            "PortBindings": bindings,
            **({"Mounts": mounts} if mounts else {}),
        },
    }


def app_config(attrs: dict[str, Any], container: dict[str, Any], infra_id: str,
               ident: Identity, extra_mounts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Create body of one app container, joined to the infra container's namespaces."""
    labels = {str(k): str(v) for k, v in (container.get("labels") or {}).items()}
    labels.update(ident.labels(naming.ROLE_APP, container["name"]))
    host = {
        "NetworkMode": f"container:{infra_id}",
        "IpcMode": f"container:{infra_id}",
        "RestartPolicy": restart_policy(attrs.get("restart")),
        "Init": container.get("init") is True,
        "ReadonlyRootfs": container.get("read_only") is True,
        "Mounts": mounts(container) + list(extra_mounts or []),
        **resource_limits(container.get("resources")),
    }
    body: dict[str, Any] = {
        "Image": container["image"],
        "Env": env_list(container.get("env")),
        "Labels": labels,
        "HostConfig": host,
    }
    if container.get("command") is not None:
        body["Cmd"] = [str(a) for a in container["command"]]
    if container.get("entrypoint") is not None:
        body["Entrypoint"] = [str(a) for a in container["entrypoint"]]
    if container.get("working_dir"):
        body["WorkingDir"] = str(container["working_dir"])
    if container.get("user"):
        body["User"] = str(container["user"])
    hc = healthcheck(container.get("health"))
    if hc:
        body["Healthcheck"] = hc
    if container.get("stop_timeout") is not None:
        body["StopTimeout"] = round(float(container["stop_timeout"]))
    return body


def update_body(attrs: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """``POST /containers/{id}/update`` body: what changes in place (restart policy, cpu, memory)."""
    return {"RestartPolicy": restart_policy(attrs.get("restart")), **resource_limits(container.get("resources"))}


# ---- planning -----------------------------------------------------------------------------------------

def replace_paths(prior: dict[str, Any], config: dict[str, Any]) -> list[Path]:
    """Which of the changed paths force a new pod (in place: restart policy, resources, labels...).

    A pod that must run elsewhere arrives with another ``node`` (the scheduler's choice), which is a
    replacement.
    """
    out: list[Path] = []
    prior_conts = containers_of(prior)
    for path in configured_changes(prior, config):
        if not path:
            out.append(path)
            continue
        head = path[0]
        if head == "container":
            if len(path) < 3:
                out.append(path[:2])
                continue
            field_ = path[2]
            if field_ in IN_PLACE_CONTAINER:
                if field_ == "resources" and _limit_removed(prior_conts, config, path[1]):
                    out.append(path[:3])
                continue
            out.append(path[:3])
        elif head in FORCE_NEW_POD:
            out.append(path[:1])
        elif head in IN_PLACE_POD:
            continue
        else:
            out.append(path[:1])
    return list(dict.fromkeys(out))  # without duplicates, in order


def _limit_removed(prior_conts: list[dict[str, Any]], config: dict[str, Any], index: Any) -> bool:
    """Docker's update cannot lift a limit (0 means "unchanged"): a limit that disappears needs a new
    container."""
    conts = containers_of(config)
    if not isinstance(index, int) or index >= len(prior_conts) or index >= len(conts):
        return False
    before = resource_limits(prior_conts[index].get("resources"))
    after = resource_limits(conts[index].get("resources"))
    return any(k in before and k not in after for k in ("NanoCpus", "Memory", "MemoryReservation", "CpuShares"))


# ---- refresh ------------------------------------------------------------------------------------------

@dataclass
class Observed:
    """A pod replica as the node's container list shows it."""

    node: str
    infra: dict[str, Any] | None = None
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)  # container block name -> list entry
    extra: list[dict[str, Any]] = field(default_factory=list)  # older generations, duplicates

    @property
    def ids(self) -> list[str]:
        """Every container id, apps before infra (the removal order)."""
        apps = [c["Id"] for c in self.apps.values()] + [c["Id"] for c in self.extra
                                                           if _role(c) != naming.ROLE_INFRA]
        infra = ([self.infra["Id"]] if self.infra else []) + [c["Id"] for c in self.extra
                                                              if _role(c) == naming.ROLE_INFRA]
        return apps + infra


def _labels(c: dict[str, Any]) -> dict[str, Any]:
    return c.get("Labels") or {}


def _role(c: dict[str, Any]) -> str | None:
    return _labels(c).get(naming.ROLE)


def group(containers_by_node: dict[str, list[dict[str, Any]]],
          prefer: dict[tuple[str, str], str] | None = None) -> dict[tuple[str, str], Observed]:
    """orch's containers grouped by pod: (``orch.lineage``, ``orch.address``) -> Observed.

    ``prefer``: pod key -> infra container id recorded in the state, chosen when a pod has several
    infra containers (an interrupted replacement left one behind); otherwise the newest wins.
    """
    prefer = prefer or {}
    out: dict[tuple[str, str], Observed] = {}
    where: dict[str, str] = {}  # container id -> node
    for node, containers in sorted(containers_by_node.items()):
        for c in containers:
            where[c.get("Id", "")] = node
            lb = _labels(c)
            if not lb.get(naming.LINEAGE) or not lb.get(naming.ADDRESS):
                continue
            key = (lb[naming.LINEAGE], lb[naming.ADDRESS])
            obs = out.get(key)
            if obs is None:
                obs = out[key] = Observed(node)
            if lb.get(naming.ROLE) == naming.ROLE_INFRA:
                if obs.infra is None:
                    obs.infra, obs.node = c, node
                elif c["Id"] == prefer.get(key) or (obs.infra["Id"] != prefer.get(key)
                                                    and c.get("Created", 0) > obs.infra.get("Created", 0)):
                    obs.extra.append(obs.infra)
                    obs.infra, obs.node = c, node
                else:
                    obs.extra.append(c)
            else:
                name = lb.get(naming.CONTAINER, "")
                if name in obs.apps:
                    obs.extra.append(c)
                else:
                    obs.apps[name] = c
    # an app container belongs with the infra container it was made with: same config hash, same node (a
    # replica moved off a node that stopped answering has an older generation there, made from the same spec)
    for obs in out.values():
        if obs.infra is None:
            continue
        h = _labels(obs.infra).get(naming.CONFIG_HASH)
        for c in list(obs.extra):
            name = _labels(c).get(naming.CONTAINER) or ""
            cur = obs.apps.get(name)
            if _role(c) == naming.ROLE_APP and cur is not None and \
                    _belongs(c, h, obs.node, where) > _belongs(cur, h, obs.node, where):
                obs.extra.remove(c)
                obs.extra.append(cur)
                obs.apps[name] = c
    return out


def _belongs(c: dict[str, Any], config_hash: Any, node: str, where: dict[str, str]) -> tuple[bool, bool]:
    """How well an app container matches an infra container: (same spec, same node), compared as a tuple."""
    return _labels(c).get(naming.CONFIG_HASH) == config_hash, where.get(c.get("Id", "")) == node


def ip_of(c: dict[str, Any]) -> str | None:
    nets = ((c.get("NetworkSettings") or {}).get("Networks") or {})
    for name in [POD_NETWORK, NETWORK] + sorted(nets):
        ip: str | None = (nets.get(name) or {}).get("IPAddress")
        if ip:
            return ip
    ip = (c.get("NetworkSettings") or {}).get("IPAddress")
    return ip or None


_EXIT = re.compile(r"Exited \((-?\d+)\)")


def exit_code(c: dict[str, Any]) -> int | None:
    m = _EXIT.search(c.get("Status") or "")
    return int(m.group(1)) if m else None


def should_run(c: dict[str, Any], restart: Any) -> bool:
    """Whether a stopped app container is drift, given the pod's restart policy.

    ``no``: a container that ran and exited stays exited (a job). ``on-failure``: a clean exit (0) is
    final. A container that was never started (``created``) or is paused is always drift.
    """
    state = c.get("State")
    if state in RUNNING_STATES:
        return False
    if state in ("created", "paused"):
        return True
    if restart == "no":
        return False
    if restart == "on-failure" and exit_code(c) == 0:
        return False
    return True


def current_attributes(prior: dict[str, Any], obs: Observed) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """What a recorded pod is now, from the container list: (attributes or None if gone, private).

    * infra container missing or not running: the pod's sandbox is gone -> None (recreated whole);
    * an app container missing -> None;
    * containers made from another spec (config-hash label differs from the state's): the attributes
      they were created with (the spec label), so the plan shows what differs and replaces;
    * an image reference that no longer resolves to the container's image (the tag moved): the image
      the container reports (an ID), so the plan replaces it;
    * an app container stopped while its restart policy says it should run: listed in the private
      ``not_running`` (the status says so; the plan restarts it in place).
    """
    infra = obs.infra
    if infra is None or infra.get("State") not in RUNNING_STATES:
        return None, {}
    attrs = json.loads(json.dumps(prior))  # a deep copy of plain data
    want_hash = config_hash(prior)
    if any(_labels(c).get(naming.CONFIG_HASH) != want_hash for c in [infra, *obs.apps.values()]):
        made = _from_spec(infra)
        if made is None:
            return None, {}
        for k in IN_PLACE_POD:  # in-place attributes are not in the spec label's hash: keep the state's
            if k in prior:
                made[k] = prior[k]
        for c in containers_of(made):
            for p in containers_of(prior):
                if p.get("name") == c.get("name"):
                    for k in IN_PLACE_CONTAINER:
                        if k in p:
                            c[k] = p[k]
        attrs = {**made, **{k: prior[k] for k in COMPUTED_POD if k in prior}}
    not_running: list[str] = []
    ids: dict[str, str] = {}
    for c in containers_of(attrs):
        name = cast(str, c.get("name"))  # the schema requires it
        seen = obs.apps.get(name)
        if seen is None:
            return None, {}
        ids[name] = seen["Id"]
        image = seen.get("Image")
        if isinstance(image, str) and image and image != c.get("image"):
            c["image"] = image
        if should_run(seen, attrs.get("restart")):
            not_running.append(name)
    attrs["id"] = infra["Id"][:12]
    ip = ip_of(infra)
    if ip:
        attrs["ip"] = ip
    attrs["node"] = obs.node
    private = {"node": obs.node, "infra": infra["Id"], "containers": ids}
    if not_running:
        private["not_running"] = not_running
    return attrs, private


_HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")


def member_status(c: dict[str, Any], details: dict[str, Any] | None = None) -> MemberStatus:
    """One app container's status from its list entry (state, exit code, health) and, when it was inspected
    (unhealthy or stopped ones only), its failing streak, last check output and restart count."""
    m = _HEALTH.search(c.get("Status") or "")
    health = None if m is None else ("starting" if m.group(1) == "health: starting" else m.group(1))
    name = _labels(c).get(naming.CONTAINER, "")
    streak, last, restarts = 0, "", 0
    if details:
        restarts = int(details.get("RestartCount") or 0)
        h = (details.get("State") or {}).get("Health") or {}
        streak = int(h.get("FailingStreak") or 0)
        log = h.get("Log") or []
        if log and isinstance(log[-1], dict):
            last = " ".join(str(log[-1].get("Output") or "").split())[:200]
    return MemberStatus(name, c.get("State") or "unknown", exit_code(c) if c.get("State") == "exited" else None,
                        health, streak, restarts, last)


def pod_status(obs: Observed, names: list[str], details: dict[str, dict[str, Any]]) -> ObjectStatus:
    """The pod's status: running when every container runs and none is unhealthy, else degraded."""
    members = []
    for n in names:
        c = obs.apps.get(n)
        if c is None:
            members.append(MemberStatus(n, "missing"))
        else:
            members.append(member_status(c, details.get(c["Id"])))
    bad = any(m.state not in RUNNING_STATES or m.health == "unhealthy" for m in members)
    return ObjectStatus("degraded" if bad else "running", members=tuple(members))


def status_from_inspect(names: list[str], docs: dict[str, dict[str, Any] | None]) -> ObjectStatus:
    """A pod's status from its app containers' inspect documents (by container block name; None: gone) — what
    a rolling update polls while it waits for a new replica to be healthy: exactly the containers recorded."""
    members = []
    for n in names:
        doc = docs.get(n)
        if doc is None:
            members.append(MemberStatus(n, "missing"))
            continue
        st = doc.get("State") or {}
        h = st.get("Health") or {}
        log = h.get("Log") or []
        last = " ".join(str(log[-1].get("Output") or "").split())[:200] if log and isinstance(log[-1], dict) else ""
        state = str(st.get("Status") or "unknown")
        members.append(MemberStatus(n, state, int(st.get("ExitCode") or 0) if state == "exited" else None,
                                    h.get("Status") or None, int(h.get("FailingStreak") or 0),
                                    int(doc.get("RestartCount") or 0), last))
    bad = any(m.state not in RUNNING_STATES or m.health == "unhealthy" for m in members)
    return ObjectStatus("degraded" if bad else "running", members=tuple(members))


def needs_inspect(c: dict[str, Any]) -> bool:
    """Whether refresh inspects this container for details: only when something is wrong with it."""
    return c.get("State") not in RUNNING_STATES or "(unhealthy)" in (c.get("Status") or "")


def repair_reason(status: ObjectStatus | None, not_running: Any) -> str | None:
    """Why an unchanged pod needs an in-place update: containers that should run and do not (Docker's
    restart policy gave up, or someone stopped them)."""
    names = set(not_running or ())
    if not names:
        return None
    words = []
    for m in (status.members if status is not None else ()):
        if m.name in names:
            code = f" ({m.exit_code})" if m.exit_code is not None else ""
            words.append(f"container {m.name} is {m.state}{code}")
    if not words:
        words = [f"container {n} is not running" for n in sorted(names)]
    return "because " + ", ".join(words) + " and its restart policy wants it running: orch starts it"


def _from_spec(infra: dict[str, Any]) -> dict[str, Any] | None:
    try:
        made = json.loads(_labels(infra).get(naming.SPEC) or "")
    except ValueError:
        return None
    return made if isinstance(made, dict) and containers_of(made) else None


def orphan_attributes(obs: Observed) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """An object of this lineage that the state does not list (an apply was killed before recording it):
    its attributes from the spec label, or None when it cannot be read back."""
    if obs.infra is None:
        return None, {}
    made = _from_spec(obs.infra)
    if made is None:
        return None, {}
    made["id"] = obs.infra["Id"][:12]
    made["node"] = obs.node
    attrs, private = current_attributes(made, obs)
    return attrs, private
