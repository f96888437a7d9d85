"""The provider protocol: the only thing the core knows about providers.

A provider realises resource types (``node``, ``pod``, ...) on one kind of
platform. The core calls it in four ways:

* ``resource_types()`` — which types it handles and which attributes force
  replacement or are computed (known only after apply);
* ``refresh(prior)`` — one bulk read of everything the state records (and
  any of the provider's own objects the state lost), never one call per
  resource;
* ``plan(address, prior, config)`` — the planned new values of one resource
  and the attribute paths that force its replacement (pure: no I/O);
* ``apply(change, progress)`` — carry out one planned change.

Values are plain JSON-like Python data; ``orchdsl.plan.UNKNOWN`` marks
values known only after apply. Providers are discovered through the
entry-point group ``orch.providers`` (each entry point names a class
implementing ``Provider``) so the core never imports one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable, Protocol, runtime_checkable

from .addrs import ResourceAddress
from .diagnostics import Diagnostic
from .plan.model import Path, ResourceChange

ENTRY_POINT_GROUP = "orch.providers"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ResourceTypeInfo:
    """What the planner needs to know about a resource type."""

    name: str
    force_new: frozenset[str] = frozenset()  # top-level attributes that cannot change in place
    computed: frozenset[str] = frozenset()  # attributes the provider fills in (ip, id...)


@dataclass
class StateObject:
    """One resource instance as the state (or refresh) knows it."""

    address: ResourceAddress
    attributes: dict[str, Any]
    private: dict[str, Any] = field(default_factory=dict)  # provider-only data, e.g. container ids


@dataclass
class RefreshResult:
    # address -> what exists now (None: the object is gone)
    current: dict[ResourceAddress, StateObject | None] = field(default_factory=dict)
    # objects the provider recognises as created by this state's lineage but unknown to the state
    # (an apply killed before it could record them): the planner adopts them.
    orphans: list[StateObject] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)


@dataclass
class PlannedObject:
    planned: dict[str, Any]  # values after apply; UNKNOWN where not known yet
    requires_replace: list[Path] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)


@dataclass
class ApplyResult:
    new: StateObject | None  # None after a delete
    diagnostics: list[Diagnostic] = field(default_factory=list)


@runtime_checkable
class Provider(Protocol):
    name: str

    def resource_types(self) -> dict[str, ResourceTypeInfo]: ...

    def configure(self, settings: dict[str, Any], lineage: str) -> list[Diagnostic]: ...

    def refresh(self, prior: list[StateObject]) -> RefreshResult: ...

    def plan(self, address: ResourceAddress, prior: StateObject | None,
             config: dict[str, Any] | None) -> PlannedObject: ...

    def apply(self, change: ResourceChange, prior: StateObject | None, progress: Progress) -> ApplyResult: ...


def discover() -> dict[str, type]:
    """Installed providers: entry-point name -> provider class."""
    found: dict[str, type] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep.load()
    return found


def providers_by_type(providers: list[Provider]) -> tuple[dict[str, Provider], list[Diagnostic]]:
    """Which provider realises each resource type; two providers claiming one type is an error."""
    out: dict[str, Provider] = {}
    diags: list[Diagnostic] = []
    for p in providers:
        for t in p.resource_types():
            if t in out:
                diags.append(Diagnostic.error("Conflicting providers",
                                              f'Both "{out[t].name}" and "{p.name}" provide resource type "{t}".',
                                              hint="install only one of them"))
                continue
            out[t] = p
    return out, diags
