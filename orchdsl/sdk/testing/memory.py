"""An in-process provider for tests and benchmarks: the "world" is a directory of JSON files.

Each object is one file (written atomically) named by a unique object id and labelled with the state's
lineage and its address, as the Docker provider labels containers: refresh is one directory read, drift is
made by editing files, objects survive a killed apply (crash tests), and two objects of one address (a
create_before_destroy replacement) coexist. A file's optional ``status`` entry is reported as the object's
observed status (tests make a pod "stopped" or "unhealthy" that way); a pod made from an
image tagged ``:unhealthy`` is born unhealthy.

Settings through the environment, so that ``orch`` run as a subprocess can use it
(``ORCH_PROVIDER_MODULES=orchdsl.sdk.testing.memory:MemoryProvider``): ``ORCH_MEMORY_WORLD`` (the
directory), ``ORCH_MEMORY_DELAY`` (seconds per change), ``ORCH_MEMORY_FAIL`` (addresses whose changes
fail; ``delete:ADDR`` fails only that verb), ``ORCH_MEMORY_LOG`` (a file that gets one line per call:
"create pod.web[0]"), ``ORCH_MEMORY_DOWN`` (nodes that do not answer: their objects and the pods on them
cannot be read or changed, as when a host is down). A file's optional ``usage`` entry (``{"cpu": cores}``) is
what ``metrics`` reports for the object (the autoscaler's tests set it with :func:`edit_world`).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..model import IMPLICIT_NODE
from ..protocol import (ApplyRequest, ApplyResult, MemberStatus, ObjectStatus, PlannedObject, RefreshResult,
                        ResourceTypeInfo, StateObject, Usage, World)
from ..values import UNKNOWN, configured_changes, merge_configured
from ...addrs import ResourceAddress
from ...diagnostics import Diagnostic

TYPES = ("node", "pod", "service", "network_policy", "node_services")
COMPUTED = {"pod": ("id", "ip", "node"), "node": ("id",)}
UPDATABLE_CONTAINER_FIELDS = {"resources"}  # like `docker update`: cpu and memory change in place


class MemoryProvider:
    name = "memory"

    def __init__(self, world: str | os.PathLike[str] | None = None, delay: float | None = None):
        self.world = Path(world or os.environ.get("ORCH_MEMORY_WORLD", ".memory-world"))
        self.delay = float(os.environ.get("ORCH_MEMORY_DELAY", "0")) if delay is None else delay
        self.lineage = ""
        self.fail: set[str] = set(filter(None, os.environ.get("ORCH_MEMORY_FAIL", "").split(",")))
        self.log_path = os.environ.get("ORCH_MEMORY_LOG")
        self._lock = threading.Lock()
        self._next_ip = 0
        self.down: set[str] = set(filter(None, os.environ.get("ORCH_MEMORY_DOWN", "").split(",")))

    # -- protocol --------------------------------------------------------------------------------------
    def resource_types(self) -> dict[str, ResourceTypeInfo]:
        return {t: ResourceTypeInfo(t, frozenset({"hostname"}) if t == "pod" else frozenset(),
                                    frozenset(COMPUTED.get(t, ("id",)))) for t in TYPES}

    def configure(self, settings: dict[str, Any], lineage: str) -> list[Diagnostic]:
        self.lineage = lineage
        return []

    def refresh(self, prior: list[StateObject]) -> RefreshResult:
        out = RefreshResult()
        by_id: dict[str, dict[str, Any]] = {}
        by_addr: dict[str, list[dict[str, Any]]] = {}
        for o in self._objects():
            by_id[o["attributes"].get("id", "")] = o
            by_addr.setdefault(o["address"], []).append(o)
        claimed: set[str] = set()
        for obj in prior:
            node = self._node_of(obj.address, obj.attributes)
            if node in self.down:
                out.diagnostics.append(Diagnostic.error("Cannot reach node", f"node {node} does not answer",
                                                        address=str(obj.address)))
                claimed.add(obj.attributes.get("id", ""))
                continue
            ident = obj.attributes.get("id")
            now = by_id.get(ident) if isinstance(ident, str) else None
            if now is None:  # an intent without id: the newest object of the address (an older one is deposed)
                candidates = sorted((o for o in by_addr.get(str(obj.address), [])
                                     if o["attributes"].get("id") not in {p.attributes.get("id") for p in prior}),
                                    key=lambda o: o.get("created", 0))
                now = candidates[-1] if candidates and not ident else None
            if now is None:
                out.current[obj.address] = None
                continue
            claimed.add(now["attributes"].get("id", ""))
            out.current[obj.address] = StateObject(obj.address, now["attributes"], status=_status(now))
        for o in by_id.values():
            if self._node_of(ResourceAddress.parse(o["address"]), o["attributes"]) in self.down:
                continue
            if o["attributes"].get("id") not in claimed and o["address"] not in {str(p.address) for p in prior}:
                out.orphans.append(StateObject(ResourceAddress.parse(o["address"]), o["attributes"]))
        return out

    def plan(self, address: ResourceAddress, prior: StateObject | None,
             config: dict[str, Any] | None) -> PlannedObject:
        computed = COMPUTED.get(address.type, ("id",))
        if prior is None:
            planned = dict(config or {})
            for c in computed:
                if c not in planned:  # a pod's node comes placed by the core's scheduler
                    planned[c] = UNKNOWN
            return PlannedObject(planned)
        planned = merge_configured(prior.attributes, config or {})
        replace = []
        if address.type == "pod":
            for path in configured_changes(prior.attributes, config or {}):
                if path[:1] == ("container",) and (len(path) < 3 or path[2] not in UPDATABLE_CONTAINER_FIELDS):
                    replace.append(path[:3] if len(path) >= 3 else path)
        repair = None
        if prior.status is not None and prior.status.state == "stopped":
            repair = "because " + "; ".join(prior.status.problems()).removeprefix("is stopped: ")
        return PlannedObject(planned, requires_replace=replace, repair=repair)

    def _unreachable(self, request: ApplyRequest) -> ApplyResult | None:
        for values in (request.planned or {}, request.prior.attributes if request.prior else {}):
            node = self._node_of(request.address, values)
            if node in self.down:
                return ApplyResult(None, [Diagnostic.error("Cannot reach node", f"node {node} does not answer",
                                                           address=str(request.address))])
        return None

    def create(self, request: ApplyRequest) -> ApplyResult:
        addr = request.address
        failed = self._call("create", addr) or self._unreachable(request)
        if failed is not None:
            return failed
        attrs = dict(request.planned or {})
        with self._lock:
            self._next_ip += 1
            n = self._next_ip
        attrs["id"] = hashlib.sha1(f"{addr}{time.time_ns()}{n}{os.getpid()}".encode()).hexdigest()[:12]
        if addr.type == "pod":
            attrs["ip"] = f"198.19.{n // 250 % 250}.{n % 250 + 2}"
            if not isinstance(attrs.get("node"), str):
                attrs["node"] = IMPLICIT_NODE
            node = request.world.get(ResourceAddress("node", attrs["node"]))
            if node is not None and node.get("fail_pods"):  # a node the world says is broken
                return ApplyResult(None, [Diagnostic.error("Node refused", f"node {attrs['node']} refused "
                                                           "the pod", address=f"node.{attrs['node']}")])
        attrs = {k: v for k, v in attrs.items() if v is not UNKNOWN}
        self._write(addr, attrs, status=_born_status(attrs))
        return ApplyResult(StateObject(addr, attrs))

    def update(self, request: ApplyRequest) -> ApplyResult:
        addr = request.address
        failed = self._call("update", addr) or self._unreachable(request)
        if failed is not None:
            return failed
        assert request.prior is not None
        attrs = {**request.prior.attributes, **(request.planned or {})}
        attrs = {k: v for k, v in attrs.items() if v is not UNKNOWN}
        self._write(addr, attrs, status=None)
        return ApplyResult(StateObject(addr, attrs))

    def delete(self, request: ApplyRequest) -> ApplyResult:
        addr = request.address
        failed = self._call("delete", addr) or self._unreachable(request)
        if failed is not None:
            return failed
        if request.prior is not None:
            self._remove(request.prior.attributes.get("id"))
        return ApplyResult(None)

    def import_object(self, address: ResourceAddress, object_id: str, world: World) -> StateObject | None:
        """Find an object by id (``orch import``), whatever address it was made under."""
        for o in self._objects_any_lineage():
            if o["attributes"].get("id") == object_id:
                return StateObject(address, o["attributes"])
        return None

    def metrics(self, objects: list[StateObject]) -> dict[ResourceAddress, Usage]:
        """What each object uses: the ``usage`` entry of its file (nothing measured without one)."""
        by_id = {o["attributes"].get("id"): o for o in self._objects()}
        out: dict[ResourceAddress, Usage] = {}
        for obj in objects:
            usage = (by_id.get(obj.attributes.get("id")) or {}).get("usage")
            if isinstance(usage, dict):
                out[obj.address] = Usage(usage.get("cpu"), usage.get("memory"))
            else:
                out[obj.address] = Usage(None, None, "no usage recorded")
        return out

    # -- the world -------------------------------------------------------------------------------------
    @staticmethod
    def _node_of(addr: ResourceAddress, attrs: dict[str, Any]) -> str | None:
        if addr.type == "node":
            return addr.name
        node = attrs.get("node")
        return node if isinstance(node, str) else None

    def _call(self, verb: str, addr: ResourceAddress) -> ApplyResult | None:
        if self.log_path:
            with self._lock, open(self.log_path, "a") as f:
                f.write(f"{verb} {addr}\n")
        if str(addr) in self.fail or f"{verb}:{addr}" in self.fail:
            return ApplyResult(None, [Diagnostic.error("Simulated failure", f"{addr} failed on purpose",
                                                       address=str(addr))])
        if self.delay:
            time.sleep(self.delay)
        return None

    def _objects_any_lineage(self) -> list[dict[str, Any]]:
        return [o for _, o in _read_all(self.world)]

    def _objects(self) -> list[dict[str, Any]]:
        return [o for o in self._objects_any_lineage() if o.get("lineage") == self.lineage]

    def _file(self, ident: str) -> Path:
        return self.world / f"{ident}.json"

    def _write(self, addr: ResourceAddress, attrs: dict[str, Any], status: Any = ...) -> None:
        self.world.mkdir(parents=True, exist_ok=True)
        f = self._file(attrs["id"])
        doc: dict[str, Any] = {"lineage": self.lineage, "address": str(addr), "attributes": attrs,
                               "created": time.time_ns()}
        try:
            before = json.loads(f.read_text())
        except (OSError, ValueError):
            before = {}
        doc["created"] = before.get("created", doc["created"])
        doc["status"] = before.get("status") if status is ... else status
        tmp = f.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps({k: v for k, v in doc.items() if v is not None}))
        os.replace(tmp, f)

    def _remove(self, ident: Any) -> None:
        if not isinstance(ident, str):
            return
        try:
            self._file(ident).unlink()
        except FileNotFoundError:
            pass


def _born_status(attrs: dict[str, Any]) -> dict[str, Any] | None:
    """A pod whose container image is tagged ``:unhealthy`` never passes its health check (tests of rolling
    updates and healing use it); any other object runs."""
    bad = [c.get("name", "main") for c in attrs.get("container") or [] if isinstance(c, dict)
           and str(c.get("image", "")).endswith(":unhealthy")]
    if not bad:
        return None
    return {"state": "degraded", "members": [{"name": n, "health": "unhealthy", "failing_streak": 3,
                                              "last_output": "connection refused"} for n in bad]}


def _status(o: dict[str, Any]) -> ObjectStatus:
    s = o.get("status")
    if not isinstance(s, dict):
        return ObjectStatus("running")
    members = tuple(MemberStatus(m.get("name", "main"), m.get("state", "running"), m.get("exit_code"),
                                 m.get("health"), int(m.get("failing_streak", 0)), int(m.get("restarts", 0)),
                                 m.get("last_output", "")) for m in s.get("members", []))
    return ObjectStatus(s.get("state", "running"), members=members, message=s.get("message", ""))


def _read_all(world: Path) -> list[tuple[Path, dict[str, Any]]]:
    if not world.is_dir():
        return []
    out = []
    for f in sorted(world.glob("*.json")):
        try:
            out.append((f, json.loads(f.read_text())))
        except (OSError, ValueError):
            continue
    return out


def world_objects(world: Path) -> dict[str, dict[str, Any]]:
    """address -> attributes of every object in a world directory (for assertions)."""
    return {o["address"]: o["attributes"] for _, o in _read_all(Path(world))}


def edit_world(world: Path, address: str, change: Callable[[dict[str, Any]], None] | None,
               status: dict[str, Any] | None = None, usage: dict[str, Any] | None = None) -> None:
    """Change an object behind orch's back (drift; ``change=None`` deletes it), or set its observed status or
    what it uses (``usage``: ``{"cpu": cores}``)."""
    for f, o in _read_all(Path(world)):
        if o["address"] == address:
            if change is None and status is None and usage is None:
                f.unlink()
                return
            if change is not None:
                change(o["attributes"])
            if status is not None:
                o["status"] = status
            if usage is not None:
                o["usage"] = usage
            f.write_text(json.dumps(o))
            return
    raise KeyError(address)
