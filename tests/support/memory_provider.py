"""An in-process provider used only by tests: the "world" is a directory of JSON files.

Each object is one file (written atomically), labelled with the state's
lineage and its address like the Docker provider labels containers, so
that refresh is one directory read, drift can be made by editing files, and
objects survive a killed apply (for crash tests).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path

from orchdsl.addrs import ResourceAddress
from orchdsl.diagnostics import Diagnostic
from orchdsl.engine.diff import configured_changes, merge_configured
from orchdsl.plan.model import UNKNOWN, Action, ResourceChange
from orchdsl.provider import (ApplyResult, PlannedObject, RefreshResult, ResourceTypeInfo, StateObject)

TYPES = ("node", "pod", "service", "network_policy", "volume", "secret")
COMPUTED = {"pod": ("id", "ip", "node"), "node": ("id",)}
UPDATABLE_CONTAINER_FIELDS = {"resources"}  # like `docker update`: cpu and memory change in place


class MemoryProvider:
    name = "memory"

    def __init__(self, world: str | os.PathLike | None = None, delay: float | None = None):
        self.world = Path(world or os.environ.get("ORCH_MEMORY_WORLD", ".memory-world"))
        self.delay = float(os.environ.get("ORCH_MEMORY_DELAY", "0")) if delay is None else delay
        self.lineage = ""
        self.fail: set[str] = set(filter(None, os.environ.get("ORCH_MEMORY_FAIL", "").split(",")))
        self._lock = threading.Lock()
        self._next_ip = 0

    # -- protocol --------------------------------------------------------------------------
    def resource_types(self) -> dict[str, ResourceTypeInfo]:
        return {t: ResourceTypeInfo(t, frozenset({"hostname"}) if t == "pod" else frozenset(),
                                    frozenset(COMPUTED.get(t, ("id",)))) for t in TYPES}

    def configure(self, settings: dict, lineage: str) -> list[Diagnostic]:
        self.lineage = lineage
        return []

    def refresh(self, prior: list[StateObject]) -> RefreshResult:
        out = RefreshResult()
        found = {ResourceAddress.parse(o["address"]): o for o in self._objects()}
        for obj in prior:
            now = found.pop(obj.address, None)
            out.current[obj.address] = None if now is None else StateObject(obj.address, now["attributes"])
        for addr, o in found.items():
            out.orphans.append(StateObject(addr, o["attributes"]))
        return out

    def plan(self, address: ResourceAddress, prior: StateObject | None, config: dict | None) -> PlannedObject:
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
        return PlannedObject(planned, requires_replace=replace)

    def apply(self, change: ResourceChange, prior: StateObject | None, progress) -> ApplyResult:
        addr = change.address
        if str(addr) in self.fail:
            return ApplyResult(None, [Diagnostic.error("Simulated failure", f"{addr} failed on purpose",
                                                       address=str(addr))])
        if self.delay:
            time.sleep(self.delay)
        if change.action is Action.DELETE:
            self._remove(addr)
            return ApplyResult(None)
        attrs = dict(change.after or {})
        if change.action in (Action.CREATE, Action.REPLACE):
            if change.action is Action.REPLACE:
                self._remove(addr)
            with self._lock:
                self._next_ip += 1
                n = self._next_ip
            ident = hashlib.sha1(f"{addr}{time.time_ns()}{n}".encode()).hexdigest()[:12]
            if attrs.get("id") is UNKNOWN or "id" in COMPUTED.get(addr.type, ("id",)):
                attrs["id"] = ident
            if addr.type == "pod":
                attrs["ip"] = f"198.19.0.{n % 250 + 2}"
                if not isinstance(attrs.get("node"), str):
                    attrs["node"] = "n1"
        else:
            attrs = {**(prior.attributes if prior else {}), **attrs}
        attrs = {k: v for k, v in attrs.items() if v is not UNKNOWN}
        self._write(addr, attrs)
        return ApplyResult(StateObject(addr, attrs))

    def import_object(self, address: ResourceAddress, object_id: str) -> StateObject | None:
        """Find an object by id (``orch import``), whatever address it was made under."""
        for o in self._objects_any_lineage():
            if o["attributes"].get("id") == object_id:
                return StateObject(address, o["attributes"])
        return None

    def _objects_any_lineage(self) -> list[dict]:
        return [json.loads(f.read_text()) for f in sorted(self.world.glob("*.json"))] if self.world.is_dir() \
            else []

    # -- the world --------------------------------------------------------------------------
    def _file(self, addr: ResourceAddress) -> Path:
        h = hashlib.sha1(f"{self.lineage}/{addr}".encode()).hexdigest()[:16]
        return self.world / f"{h}.json"

    def _objects(self) -> list[dict]:
        if not self.world.is_dir():
            return []
        out = []
        for f in sorted(self.world.glob("*.json")):
            try:
                o = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            if o.get("lineage") == self.lineage:
                out.append(o)
        return out

    def _write(self, addr: ResourceAddress, attrs: dict) -> None:
        self.world.mkdir(parents=True, exist_ok=True)
        f = self._file(addr)
        tmp = f.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps({"lineage": self.lineage, "address": str(addr), "attributes": attrs}))
        os.replace(tmp, f)

    def _remove(self, addr: ResourceAddress) -> None:
        try:
            self._file(addr).unlink()
        except FileNotFoundError:
            pass


def world_objects(world: Path) -> dict[str, dict]:
    """address -> attributes of every object in a world directory (for assertions)."""
    out = {}
    for f in Path(world).glob("*.json"):
        o = json.loads(f.read_text())
        out[o["address"]] = o["attributes"]
    return out


def edit_world(world: Path, address: str, change) -> None:
    """Change an object behind orch's back (drift)."""
    for f in Path(world).glob("*.json"):
        o = json.loads(f.read_text())
        if o["address"] == address:
            if change is None:
                f.unlink()
            else:
                change(o["attributes"])
                f.write_text(json.dumps(o))
            return
    raise KeyError(address)
