"""The provider protocol, version 1: how the core talks to a provider.

A provider realises resource types (``node``, ``pod``, ...) on one kind of platform. The core calls it:

* ``resource_types()`` — which types it handles, which attributes force replacement or are computed;
* ``configure(settings, lineage)`` — once per command, before anything else;
* ``refresh(prior)`` — one bulk read of everything the state records (never one call per resource):
  each object's current attributes and, separately, its observed :class:`ObjectStatus`; objects of this
  lineage the state lost (an apply killed before it could record them) come back as orphans;
* ``facts(world, new)`` — optional, read-only I/O before planning for good: what the platform says about
  objects the state does not record yet (a new host's capacity), as a data source would. The core plans once,
  asks for the facts of the objects to create, and plans again with them: each fact fills a value the
  provider's ``plan`` left unknown, so the scheduler and the plan use it; at apply the provider gets its own
  planned value back (unknown) and reports the real one, as without facts. Not called with ``--refresh=false``;
* ``plan(address, prior, config)`` — the planned values of one object and the paths that force its
  replacement; pure (no I/O): the same inputs always give the same answer;
* ``preflight(world, changes)`` — optional, read-only I/O after planning: can the plan be carried out
  (a new host reachable, an image present)? Problems are plan errors, before anything changes;
* ``create(request)`` / ``update(request)`` / ``delete(request)`` — carry out one change. Replacement is
  not the provider's business: the core sequences it (delete then create, or create then delete the
  *deposed* object with ``create_before_destroy``), and runs rolling updates in waves gated by health;
* ``status(objects)`` — optional, read-only: the observed status of exactly these recorded objects (a rolling
  update polls a new replica with it; without it the core refreshes the object);
* ``metrics(objects)`` — optional, read-only: what objects use now (:class:`Usage`), for the autoscaler and
  ``orch status``.

Everything crossing the protocol is plain JSON-like data (``UNKNOWN`` marks values known only after
apply) and the frozen dataclasses below; a provider keeps nothing from plan to apply in memory: what it
needs at apply time is in the request (its ``world`` holds the planned values of every object of the run).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..addrs import ResourceAddress
from ..diagnostics import Diagnostic
from ..eval.plain import Path

SDK_VERSION = 1

Progress = Callable[[str], None]

# What the core knows of every object of a run, by address: the planned values (``UNKNOWN`` where not
# known yet), or the recorded ones for objects that do not change. Read-only for providers.
World = Mapping[ResourceAddress, dict[str, Any]]


@dataclass(frozen=True)
class ResourceTypeInfo:
    """What the planner needs to know about a resource type."""

    name: str
    force_new: frozenset[str] = frozenset()  # top-level attributes that cannot change in place
    computed: frozenset[str] = frozenset()  # attributes the provider fills in (ip, id...)


@dataclass(frozen=True)
class MemberStatus:
    """One part of an object as observed (a container of a pod)."""

    name: str
    state: str  # running, exited, created, paused, restarting, dead, missing
    exit_code: int | None = None
    health: str | None = None  # healthy, unhealthy, starting; None: no health check
    failing_streak: int = 0  # consecutive failed checks
    restarts: int = 0
    last_output: str = ""  # the last health check's output (trimmed)


@dataclass(frozen=True)
class ObjectStatus:
    """What an object is doing, observed at refresh — kept apart from its attributes (what it *is*).

    ``reachable`` is False when the host holding the object did not answer: its attributes are then the
    recorded ones, not observed.
    """

    state: str = "unknown"  # running, degraded (a member not running or unhealthy), stopped, unknown
    reachable: bool = True
    members: tuple[MemberStatus, ...] = ()
    message: str = ""

    @property
    def health(self) -> str | None:
        """The worst health among its containers: unhealthy, then starting, then healthy; None: no check."""
        found = {m.health for m in self.members}
        return next((h for h in ("unhealthy", "starting", "healthy") if h in found), None)

    @property
    def healthy(self) -> bool:
        return self.reachable and self.state == "running" and all(
            m.state == "running" and m.health in (None, "healthy") for m in self.members)

    def problems(self) -> list[str]:
        """What a reader acts on, each a phrase after the object's address: "is unhealthy: 5 failing checks
        (container httpd)", "is degraded: container httpd exited (137)"."""
        if not self.reachable:
            return [f"is not observed: {self.message or 'its host did not answer'}; attributes are as recorded"]
        out = []
        for m in self.members:
            if m.state not in ("running", "restarting"):
                code = f" ({m.exit_code})" if m.exit_code is not None else ""
                verb = "exited" if m.state == "exited" else f"is {m.state}"
                out.append(f"is {self.state}: container {m.name} {verb}{code}")
            elif m.health == "unhealthy":
                streak = f": {m.failing_streak} failing check{'s' if m.failing_streak != 1 else ''}" \
                    if m.failing_streak else ""
                last = f', last output: "{m.last_output}"' if m.last_output else ""
                out.append(f"is unhealthy{streak} (container {m.name}{last})")
            elif m.health == "starting":
                out.append(f"is starting: container {m.name} has no health result yet")
            elif m.restarts:
                out.append(f"restarted {m.restarts} time{'s' if m.restarts != 1 else ''} (container {m.name})")
        if not out and self.state not in ("running", "unknown"):
            out.append(f"is {self.state}" + (f": {self.message}" if self.message else ""))
        return out

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "reachable": self.reachable, "healthy": self.healthy,
                "message": self.message,
                "members": [{"name": m.name, "state": m.state, "exit_code": m.exit_code, "health": m.health,
                             "failing_streak": m.failing_streak, "restarts": m.restarts,
                             "last_output": m.last_output} for m in self.members]}


@dataclass
class StateObject:
    """One resource instance as the state (or refresh) knows it."""

    address: ResourceAddress
    attributes: dict[str, Any]
    private: dict[str, Any] = field(default_factory=dict)  # provider-only data, e.g. container ids
    status: ObjectStatus | None = None  # observed at refresh; None: not observed


@dataclass
class RefreshResult:
    # address -> what exists now (None: the object is gone)
    current: dict[ResourceAddress, StateObject | None] = field(default_factory=dict)
    # objects the provider recognises as created by this state's lineage but unknown to the state
    orphans: list[StateObject] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)


@dataclass
class PlannedObject:
    planned: dict[str, Any]  # values after apply; UNKNOWN where not known yet
    requires_replace: list[Path] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    # the configuration matches but the observed status calls for an in-place repair (a stopped container
    # to start): a sentence saying why, which the plan shows as the update's reason
    repair: str | None = None


@dataclass(frozen=True)
class ChangeView:
    """A planned change as a provider sees it in ``preflight``."""

    address: ResourceAddress
    action: str  # create, update, delete, replace
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass
class Facts:
    """What ``facts`` read: per object to be created, values to use where its planned ones are unknown (nested
    like the attributes: ``{"capacity": {"cpu": 2}}``), and problems met on the way (an unreachable host)."""

    values: dict[ResourceAddress, dict[str, Any]] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)


@dataclass
class ApplyRequest:
    address: ResourceAddress
    planned: dict[str, Any] | None  # create/update: the values to realise (known by now)
    prior: StateObject | None  # update/delete: the object as recorded
    world: World
    progress: Progress
    # other objects of this address that this request must leave alone (a create_before_destroy replacement:
    # the deposed object while the new one is created, then the new one while the deposed one is deleted)
    keep: tuple[StateObject, ...] = ()
    # paths of ``planned`` whose values are sensitive (a secret): a provider keeps them out of what others can
    # read (labels, container configuration, disks) — a path covers everything below it
    sensitive: tuple[tuple[Any, ...], ...] = ()


@dataclass
class ApplyResult:
    new: StateObject | None  # None after a delete
    diagnostics: list[Diagnostic] = field(default_factory=list)


@dataclass(frozen=True)
class Usage:
    """What a pod uses now, as the optional ``metrics`` step measures it (read-only; for the autoscaler and
    ``orch status``)."""

    cpu: float | None  # cores used (sum over the pod's app containers), e.g. 0.37; None: not measured
    memory: int | None  # bytes used (sum), None: not measured
    detail: str = ""  # why not measured, if not


@runtime_checkable
class Provider(Protocol):
    name: str

    def resource_types(self) -> dict[str, ResourceTypeInfo]: ...

    def configure(self, settings: dict[str, Any], lineage: str) -> list[Diagnostic]: ...

    def refresh(self, prior: list[StateObject]) -> RefreshResult: ...

    def plan(self, address: ResourceAddress, prior: StateObject | None,
             config: dict[str, Any] | None) -> PlannedObject: ...

    def create(self, request: ApplyRequest) -> ApplyResult: ...

    def update(self, request: ApplyRequest) -> ApplyResult: ...

    def delete(self, request: ApplyRequest) -> ApplyResult: ...

    # optional:
    #   facts(world: World, new: list[ChangeView]) -> Facts
    #   preflight(world: World, changes: list[ChangeView]) -> list[Diagnostic]
    #   import_object(address: ResourceAddress, object_id: str, world: World) -> StateObject | None
    #   status(objects: list[StateObject]) -> dict[ResourceAddress, ObjectStatus]
    #       read-only: the status of exactly the recorded objects (their recorded ids), without a full refresh
    #   metrics(objects: list[StateObject]) -> dict[ResourceAddress, Usage]
    #       read-only: what objects (pods) use now; objects it cannot measure are absent or carry None with a detail
    #   close() -> None


__all__ = ["SDK_VERSION", "ApplyRequest", "ApplyResult", "ChangeView", "Facts", "MemberStatus", "ObjectStatus",
           "PlannedObject", "Progress", "Provider", "RefreshResult", "ResourceTypeInfo", "StateObject", "Usage",
           "World"]
