"""``orch status DIR``: a compact live view of what was applied, for a person at a terminal.

    orch status [DIR] [--json] [--no-usage] [--state PATH] [--var NAME=VALUE] [--var-file FILE]

Read-only and lock-free: it reads the state, refreshes every object once (attributes and status, as
``orch plan`` does), asks the pod provider's optional ``metrics`` what the running pods use (``--no-usage``
skips it: Docker's stats take a second or two), and shows the nodes, the pods (health, restarts, CPU and memory
used against requested), the services with their ready endpoints, and the reconciler's last actions (the
history ``orch reconcile`` keeps beside the state). ``--json`` prints the same as one JSON document.

Exit status: 0 when the view is shown (also with nodes that do not answer: that is what the view is for, and
when nothing is applied yet); 1 when it cannot be made (a bad argument or configuration, an unreadable state,
a provider that fails) or when refresh met an error that concerns no object of the view.

The view is built by :func:`build_view` from plain data (state instances, observed status, usage, history)
and rendered by :func:`render_text` / :func:`to_json`: pure functions, testable without a host.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .addrs import ResourceAddress
from .diagnostics import Diagnostic
from .sdk.model import IMPLICIT_NODE, node_name
from .sdk.protocol import ObjectStatus, Usage

FORMAT_VERSION = 1
HISTORY_LAST = 10
NO_HISTORY = "No reconcile actions recorded."
NOTHING_APPLIED = "Nothing applied yet (no state): run orch apply first."


# ---- the view: plain data ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class NodeRow:
    name: str
    address: str | None
    pods: int
    state: str  # ready, degraded, unknown, not answering, not in the state
    reachable: bool = True
    schedulable: bool = True
    message: str = ""


@dataclass(frozen=True)
class PodRow:
    address: str
    node: str | None
    state: str  # running, degraded, stopped, unknown, missing (deleted outside orch)
    reachable: bool = True
    health: str | None = None  # healthy, unhealthy, starting; None: no health check (or not observed)
    ready: bool = True  # may take traffic (what a service's endpoints follow)
    restarts: int = 0
    ip: str | None = None
    cpu_used: float | None = None  # cores
    cpu_requested: float | None = None
    memory_used: int | None = None  # bytes
    memory_requested: int | None = None
    usage_detail: str = ""  # why not measured, if not
    problems: tuple[str, ...] = ()  # phrases after the address: "is unhealthy: 3 failing checks (...)"
    members: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Endpoint:
    pod: str
    ip: str | None
    node: str | None


@dataclass(frozen=True)
class ServiceRow:
    address: str
    name: str
    cluster_ip: str | None
    port: int | None
    protocol: str
    target_port: int | None
    node_port: int | None
    endpoints: tuple[Endpoint, ...]
    selected: int  # replicas its selector matches (ready or not)


@dataclass(frozen=True)
class HistoryLine:
    time: str
    action: str
    subject: str
    reason: str = ""


@dataclass
class StatusView:
    applied: bool = True
    nodes: list[NodeRow] = field(default_factory=list)
    pods: list[PodRow] = field(default_factory=list)
    services: list[ServiceRow] = field(default_factory=list)
    history: list[HistoryLine] = field(default_factory=list)
    usage: str = "measured"  # measured, skipped (--no-usage), not available (the provider has no metrics)


# ---- building it ----------------------------------------------------------------------------------------

def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def requested(attrs: Mapping[str, Any], what: str) -> float | None:
    """A pod's request of ``cpu`` (cores) or ``memory`` (bytes), as the scheduler counts it; None when it
    requests none."""
    from .cluster.placement import requests

    cpu, memory = requests(dict(attrs))
    total = cpu if what == "cpu" else memory
    return float(total) if total else None


def pod_health(status: ObjectStatus | None) -> str | None:
    """The worst health of a pod's containers (None: no check, or not observed)."""
    return status.health if status is not None and status.reachable else None


def _member(m: Any) -> dict[str, Any]:
    return {"name": m.name, "state": m.state, "exit_code": m.exit_code, "health": m.health,
            "failing_streak": m.failing_streak, "restarts": m.restarts, "last_output": m.last_output}


def _node_state(status: ObjectStatus | None) -> tuple[str, bool, str]:
    if status is None:
        return "ready", True, ""
    if not status.reachable:
        return "not answering", False, status.message
    if status.state == "running":
        return "ready", True, status.message
    return status.state, True, status.message


def build_view(instances: Iterable[Any], status: Mapping[ResourceAddress, ObjectStatus],
               usage: Mapping[ResourceAddress, Usage] | None, history: Sequence[Mapping[str, Any]],
               gone: Iterable[Any] = (), usage_mode: str | None = None,
               scrub: Callable[[str], str] = lambda s: s) -> StatusView:
    """The view of refreshed ``instances`` (each with ``.addr``, ``.type``, ``.attributes``): their observed
    ``status``, what pods use (``usage``; None: not measured), the reconciler's ``history`` (dicts with time,
    action, subject, reason), and ``gone``: pods the state records that no longer exist. ``scrub`` redacts
    texts read from hosts (status messages, health check output)."""
    from .cluster.services import ready, selects, service_entries

    insts = sorted(instances, key=lambda i: i.addr)
    pods_attrs = {i.addr: dict(i.attributes) for i in insts if i.type == "pod"}
    view = StatusView(usage=usage_mode or ("measured" if usage is not None else "not available"))

    for i in insts:
        if i.type != "pod":
            continue
        st = status.get(i.addr)
        u = (usage or {}).get(i.addr)
        a = i.attributes
        view.pods.append(PodRow(
            address=str(i.addr), node=_str(a.get("node")),
            state=st.state if st is not None else "unknown",
            reachable=st.reachable if st is not None else True,
            health=pod_health(st), ready=ready(st),
            restarts=sum(m.restarts for m in st.members) if st is not None else 0,
            ip=_str(a.get("ip")),
            cpu_used=u.cpu if u is not None else None, cpu_requested=requested(a, "cpu"),
            memory_used=u.memory if u is not None else None,
            memory_requested=_int_or_none(requested(a, "memory")),
            usage_detail=scrub(u.detail) if u is not None else "",
            problems=tuple(scrub(p) for p in st.problems()) if st is not None else (),
            members=tuple({**_member(m), "last_output": scrub(m.last_output)} for m in st.members)
            if st is not None else ()))
    for g in sorted(gone, key=lambda i: i.addr):
        if g.type == "pod":
            a = g.attributes
            view.pods.append(PodRow(str(g.addr), _str(a.get("node")), "missing", ready=False,
                                    ip=None, cpu_requested=requested(a, "cpu"),
                                    memory_requested=_int_or_none(requested(a, "memory")),
                                    problems=("is missing: deleted outside of orch",)))
    view.pods.sort(key=lambda p: ResourceAddress.parse(p.address))

    on_node: dict[str, int] = {}
    for p in view.pods:
        if p.node is not None and p.state != "missing":
            on_node[p.node] = on_node.get(p.node, 0) + 1
    known: set[str] = set()
    for i in insts:
        if i.type != "node":
            continue
        name = node_name(i.addr)
        known.add(name)
        state, reachable, message = _node_state(status.get(i.addr))
        a = i.attributes
        view.nodes.append(NodeRow(name, _str(a.get("address")) or _str(a.get("docker_host")),
                                  on_node.get(name, 0), state, reachable, a.get("schedulable") is not False,
                                  scrub(message)))
    for name in sorted(set(on_node) - known):  # the implicit node, or a node the state lost
        view.nodes.append(NodeRow(name, "(this machine)" if name == IMPLICIT_NODE else None, on_node[name],
                                  "ready" if name == IMPLICIT_NODE else "not in the state"))

    services = {i.addr: dict(i.attributes) for i in insts if i.type == "service"}
    for e in service_entries(services, pods_attrs, status):
        addr = ResourceAddress.parse(e["address"])
        selector = services[addr].get("selector")
        view.services.append(ServiceRow(
            address=e["address"], name=str(e["name"]), cluster_ip=_str(e.get("cluster_ip")),
            port=_int(e.get("port")), protocol=str(e.get("protocol") or "tcp"),
            target_port=_int(e.get("target_port")), node_port=_int(e.get("node_port")),
            endpoints=tuple(Endpoint(str(p["pod"]), _str(p.get("ip")), _str(p.get("node")))
                            for p in e.get("endpoints") or []),
            selected=sum(1 for v in pods_attrs.values() if selects(selector, v.get("labels")))))

    for h in history:
        view.history.append(HistoryLine(str(h.get("time", "")), str(h.get("action", "")),
                                        str(h.get("subject", "")), scrub(str(h.get("reason") or ""))))
    return view


def _int_or_none(v: float | None) -> int | None:
    return None if v is None else int(v)


# ---- rendering ------------------------------------------------------------------------------------------

def cores(v: float | None) -> str:
    """0.5 -> "0.5", 0.123 -> "0.12", 0.004 -> "0.004", None -> "-"."""
    if v is None:
        return "-"
    text = f"{v:.3f}" if 0 < abs(v) < 0.01 else f"{v:.2f}"
    return text.rstrip("0").rstrip(".") or "0"


def mem(v: int | float | None) -> str:
    """Bytes in binary units: 67108864 -> "64Mi", 1610612736 -> "1.5Gi", None -> "-"."""
    if v is None:
        return "-"
    n = float(v)
    for unit, size in (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if abs(n) >= size:
            q = n / size
            text = f"{q:.0f}" if q >= 100 or q == int(q) else f"{q:.1f}".rstrip("0").rstrip(".")
            return text + unit
    return f"{int(n)}B"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[c]) for r in [headers, *rows]) for c in range(len(headers))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [headers, *rows]]


def _node_cell(n: NodeRow) -> str:
    text = n.state
    if n.message:
        text += f" ({n.message})"
    if not n.schedulable:
        text += ", cordoned"
    return text


def _service_address(s: ServiceRow) -> str:
    text = f"{s.cluster_ip or '(none)'}:{s.port if s.port is not None else '-'}/{s.protocol}"
    if s.target_port is not None and s.target_port != s.port:
        text += f" -> {s.target_port}"
    if s.node_port is not None:
        text += f", node port {s.node_port}"
    return text


def _endpoints_cell(s: ServiceRow) -> str:
    if not s.selected:
        return "none (no pod matches its selector)"
    names = ", ".join(e.pod for e in s.endpoints) or "none"
    return f"{names} ({len(s.endpoints)} of {s.selected} ready)"


def _stamp(t: str) -> str:
    return re.sub(r"\.\d+Z$", "Z", t)


def render_text(view: StatusView) -> str:
    if not view.applied:
        return NOTHING_APPLIED
    out: list[str] = []
    if view.nodes:
        out += _table(["NODE", "ADDRESS", "PODS", "STATE"],
                      [[n.name, n.address or "-", str(n.pods), _node_cell(n)] for n in view.nodes])
        out.append("")
    if view.pods:
        out += _table(["POD", "NODE", "STATE", "HEALTH", "RESTARTS", "CPU (used/req)", "MEMORY (used/req)", "IP"],
                      [[p.address, p.node or "-", p.state if p.reachable else "unknown", p.health or "-",
                        str(p.restarts), f"{cores(p.cpu_used)}/{cores(p.cpu_requested)}",
                        f"{mem(p.memory_used)}/{mem(p.memory_requested)}", p.ip or "-"] for p in view.pods])
        out.append("")
        problems = [f"  {p.address} {text}" for p in view.pods for text in p.problems]
        if problems:
            out += ["Problems:", *problems, ""]
    else:
        out += ["No pods.", ""]
    if view.services:
        out += _table(["SERVICE", "ADDRESS", "ENDPOINTS"],
                      [[s.address, _service_address(s), _endpoints_cell(s)] for s in view.services])
        out.append("")
    if view.history:
        out.append("Last reconcile actions:")
        out += [f"  {_stamp(h.time)} {h.action} {h.subject}" + (f": {h.reason}" if h.reason else "")
                for h in view.history]
    else:
        out.append(NO_HISTORY)
    return "\n".join(out)


def to_json(view: StatusView) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "applied": view.applied,
        "usage": view.usage,
        "nodes": [{"name": n.name, "address": n.address, "pods": n.pods, "state": n.state, "reachable": n.reachable,
                   "schedulable": n.schedulable, "message": n.message} for n in view.nodes],
        "pods": [{"address": p.address, "node": p.node, "state": p.state, "reachable": p.reachable,
                  "health": p.health, "ready": p.ready, "restarts": p.restarts, "ip": p.ip,
                  "cpu": {"used": p.cpu_used, "requested": p.cpu_requested},
                  "memory": {"used": p.memory_used, "requested": p.memory_requested},
                  "usage_detail": p.usage_detail, "problems": list(p.problems), "members": list(p.members)}
                 for p in view.pods],
        "services": [{"address": s.address, "name": s.name, "cluster_ip": s.cluster_ip, "port": s.port,
                      "protocol": s.protocol, "target_port": s.target_port, "node_port": s.node_port,
                      "selected": s.selected, "ready": len(s.endpoints),
                      "endpoints": [{"pod": e.pod, "ip": e.ip, "node": e.node} for e in s.endpoints]}
                     for s in view.services],
        "reconcile": [{"time": h.time, "action": h.action, "subject": h.subject, "reason": h.reason}
                      for h in view.history],
    }


# ---- the command ----------------------------------------------------------------------------------------

def add_parser(sub: Any) -> None:
    st = sub.add_parser("status", help="what runs now: nodes, pods, services, the reconciler's last actions")
    st.add_argument("dir", nargs="?", default=".", help="configuration directory (default: .)")
    st.add_argument("--json", action="store_true", help="print the view as one JSON document")
    st.add_argument("--no-usage", action="store_true",
                    help="do not measure what pods use (the provider's stats take a second or two)")
    st.add_argument("--state", metavar="PATH", help="state file (default: DIR/orch.orchstate)")
    st.add_argument("--var", action="append", metavar="NAME=VALUE", help="set an input variable")
    st.add_argument("--var-file", action="append", metavar="FILE", help="load variable values from a file")
    st.set_defaults(func=cmd_status)


def measure(provider: Any, instances: Sequence[Any], status: Mapping[ResourceAddress, ObjectStatus]
            ) -> dict[ResourceAddress, Usage] | None:
    """What the running, reachable pods use, from the pod provider's optional ``metrics`` (None: it has
    none). Never raises: a failure is each pod's ``detail``."""
    from .engine.refresh import to_object

    metrics = getattr(provider, "metrics", None)
    if not callable(metrics):
        return None
    pods = [i for i in instances if i.type == "pod" and (s := status.get(i.addr)) is not None
            and s.reachable and s.state == "running"]
    if not pods:
        return {}
    # the node objects too: a provider learns how to reach the nodes from them (as it does at refresh)
    nodes = [i for i in instances if i.type == "node"]
    try:
        got = metrics([to_object(i) for i in nodes + pods])
    except Exception as e:  # noqa: BLE001 - usage is a convenience; the view goes on without it
        return {i.addr: Usage(None, None, f"not measured: {type(e).__name__}: {e}") for i in pods}
    return {i.addr: u for i in pods if isinstance(u := got.get(i.addr), Usage)} if isinstance(got, dict) else {}


def cmd_status(args: argparse.Namespace) -> int:
    from .cli import _color, _print_diags, _session, _stop_on_errors
    from .diagnostics import DiagnosticsError
    from .engine import workflow
    from .engine.refresh import refresh
    from .plan.model import Action
    from .reconcile.loop import read_history
    from .redact import current

    session, _ = _session(args)
    if _stop_on_errors(session.diagnostics, args):
        return 1
    code = 0
    try:
        try:
            state = session.backend.read() if session.backend.exists() else None
        except DiagnosticsError as e:
            _print_diags(e.diagnostics, _color(args))
            return 1
        if state is None or not len(state):
            _show(StatusView(applied=False, usage="skipped" if args.no_usage else "not available"), args)
            return 0
        current().add_state(state)
        if _stop_on_errors(workflow.configure_providers(session, state), args):
            return 1
        try:
            refreshed = refresh(state, session.providers)
        except Exception as e:  # noqa: BLE001 - a provider's bug is a diagnostic here, never a traceback
            _print_diags([Diagnostic.error("Refresh failed", f"{type(e).__name__}: {e}",
                                           hint="the provider could not read the objects; try again, or "
                                                "report it with this message")], _color(args))
            return 1
        # what concerns an object shown is in the view (a node that does not answer); the rest is said here
        shown = {str(a) for a in refreshed.status}
        rest = [d for d in refreshed.diagnostics if not d.address or d.address not in shown]
        _print_diags(rest, _color(args))
        if any(d.is_error and not d.address for d in rest):
            code = 1
        instances = list(refreshed.state)
        deleted = {d.address for d in refreshed.drift if d.action is Action.DELETE}
        gone = [i for i in state if i.addr in deleted]
        if args.no_usage:
            usage, mode = None, "skipped"
        else:
            usage = measure(session.providers.get("pod"), instances, refreshed.status)
            mode = "measured" if usage is not None else "not available"
        history = read_history(session.backend, last=HISTORY_LAST)
        view = build_view(instances, refreshed.status, usage, history, gone, mode, scrub=current().redact)
        _show(view, args)
    finally:
        for p in {id(p): p for p in session.providers.values()}.values():
            close = getattr(p, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:  # noqa: BLE001 - closing connections of a read-only view
                    pass
    return code


def _show(view: StatusView, args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps(to_json(view), indent=2))
    else:
        print(render_text(view))


__all__ = ["NodeRow", "PodRow", "ServiceRow", "StatusView", "add_parser", "build_view", "cmd_status", "cores",
           "measure", "mem", "render_text", "requested", "to_json"]
