"""Derived desired state: values no single resource block says, computed purely from the whole configuration.

A :class:`Derivation` reads the planned values of some resource types (``reads``: planned first) and sets
values of instances of others (``writes``): placement reads nodes and sets each pod replica's ``node``.
The planner runs each derivation once, when it reaches the first block of a type the derivation writes
(or, for a derivation that writes none, after every block), and merges the derived values over the
configured ones. A derivation can also *produce* objects no block declares (``produces``: their types), such
as one network program per node: the planner plans them like configured instances, after everything they
depend on, and the executor derives their values again at apply once what they depend on exists. What it
derives is shown in the plan as ordinary changes with reasons. Today: addresses (ipam), placement, services
(endpoints, each node's program); next: network policies, rollout waves (see docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import Any, Protocol

from ..addrs import ResourceAddress
from ..diagnostics import Diagnostic


@dataclass(frozen=True)
class DerivedInstance:
    """What the cluster layer decides for one resource instance."""

    values: dict[str, Any]  # attributes set by the cluster layer, over the configured ones
    # a derived value that differs from the current one in a way only a new object can carry, and why
    # ("because the scheduler moves it from node.n3 to node.n1 (node.n3 is cordoned)")
    replace_reason: str | None = None
    depends_on: tuple[ResourceAddress, ...] = ()  # instances it must come after at apply (its node)
    location: str | None = None  # shown to the reader: "(on node.n2)"


@dataclass(frozen=True)
class DerivedObject:
    """An object the cluster layer produces (not declared by a block): planned like any instance."""

    values: dict[str, Any]
    reason: str  # why it exists or changes, for the reader ("node.n1 runs 3 pods")
    depends_on: tuple[ResourceAddress, ...] = ()  # applied after these (the node's pods)
    location: str | None = None


@dataclass(frozen=True)
class Summary:
    """A derivation's overview for the plan reader (the scheduler's dry-run table) and for JSON."""

    name: str  # the JSON key: orch.<name>
    text: str
    data: dict[str, Any]
    concerns: frozenset[str] = frozenset()  # addresses whose creation/replacement makes the text worth showing
    any_change: bool = False  # shown when any change (not only a creation/replacement) concerns it
    markdown: str = ""  # for the PR comment, outside the collapsed plan (empty: not shown there)


@dataclass
class Derived:
    instances: dict[ResourceAddress, DerivedInstance] = field(default_factory=dict)
    objects: dict[ResourceAddress, DerivedObject] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)  # with an address; the planner adds ranges
    summary: Summary | None = None


@dataclass(frozen=True)
class Inputs:
    """What a derivation sees: the whole configuration's relevant instances, as plain values."""

    read: dict[ResourceAddress, dict[str, Any]]  # planned values of the instances of ``reads`` types
    # (at apply, when objects are derived again: the recorded values, known by then)
    wanted: dict[ResourceAddress, dict[str, Any]]  # configured values of the instances of ``writes`` types
    current: dict[ResourceAddress, dict[str, Any]]  # recorded attributes of those that exist
    settings: dict[str, Any]  # root-module settings (scheduler strategy, namespace, address ranges)
    # observed status of the instances read (ObjectStatus), for those the refresh saw and this run does not
    # change: a replica created or changed now counts as ready
    status: Mapping[ResourceAddress, Any] = field(default_factory=dict)
    # the state's attributes of the instances of ``reads`` types, as before this run (what changes, for a review)
    recorded: Mapping[ResourceAddress, dict[str, Any]] = field(default_factory=dict)


class Derivation(Protocol):
    name: str
    reads: frozenset[str]
    writes: frozenset[str]
    produces: frozenset[str]  # types of the objects it produces (none for placement)

    def derive(self, inputs: Inputs) -> Derived: ...
