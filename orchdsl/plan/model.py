"""The Plan: ordered resource changes with reasons, drift, and output changes.

Values in a plan are plain JSON-like Python data (dict, list, str, int,
float, bool, None) with one extra: ``UNKNOWN`` marks a value that is known
only after apply. A path is a tuple of keys and indexes, e.g.
``("container", 0, "env", "GREETING")``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..addrs import ResourceAddress
from ..cluster.derive import Summary
from ..eval.plain import UNKNOWN as UNKNOWN  # re-exported (X as X): the plan holds plain data
from ..eval.plain import Path as Path
from ..eval.plain import is_unknown as is_unknown


class Action(str, Enum):  # noqa: UP042 - a StrEnum would change str(Action.CREATE)
    NOOP = "no-op"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    REPLACE = "replace"  # delete then create, or create then delete with create_before_destroy
    READ = "read"

    def terraform_actions(self, create_before_destroy: bool = False) -> list[str]:
        """The ``actions`` list of ``terraform show -json``."""
        if self is Action.REPLACE:
            return ["create", "delete"] if create_before_destroy else ["delete", "create"]
        return [self.value]


# Reasons, with Terraform's names where Terraform has one (``action_reason`` in JSON).
REPLACE_BECAUSE_CANNOT_UPDATE = "replace_because_cannot_update"
REPLACE_BY_REQUEST = "replace_by_request"
REPLACE_BECAUSE_TAINTED = "replace_because_tainted"
DELETE_BECAUSE_NO_RESOURCE_CONFIG = "delete_because_no_resource_config"
DELETE_BECAUSE_COUNT_INDEX = "delete_because_count_index"
DELETE_BECAUSE_EACH_KEY = "delete_because_each_key"
DELETE_BECAUSE_NO_MODULE = "delete_because_no_module"
DELETE_BECAUSE_NOT_DERIVED = "delete_because_not_derived"  # orch: the cluster layer no longer produces it
DELETE_BECAUSE_DEPOSED = "delete_because_deposed"  # orch: the old object of an interrupted replacement
CREATE_BECAUSE_MISSING = "create_because_missing"  # orch: the object vanished outside orch
UPDATE_BECAUSE_DRIFT = "update_because_drift"  # orch: repaired drift
UPDATE_BECAUSE_STATUS = "update_because_status"  # orch: the configuration matches, the observed status does not


@dataclass
class ResourceChange:
    address: ResourceAddress
    action: Action
    before: dict[str, Any] | None  # prior (refreshed) attribute values; None when creating
    after: dict[str, Any] | None  # planned values, may contain UNKNOWN; None when deleting
    reason: str = ""  # human sentence shown in the text plan
    action_reason: str | None = None  # machine reason, Terraform's vocabulary where it has one
    replace_paths: list[Path] = field(default_factory=list)  # attributes that force replacement
    before_sensitive: list[Path] = field(default_factory=list)
    after_sensitive: list[Path] = field(default_factory=list)
    create_before_destroy: bool = False
    provider: str = ""
    location: str | None = None  # where the cluster layer put it ("node.n2"), for the reader
    derived: dict[str, Any] = field(default_factory=dict)  # values set by the cluster layer (re-used at apply)
    index: int | None = None  # position in graph order
    deposed: str | None = None  # the key of a deposed object this change deletes (not the current object)
    derived_by: str | None = None  # the derivation that produces this object (no block declares it)
    # paths of ``after`` filled from the provider's facts (read at plan, e.g. a new host's capacity): the
    # provider planned them unknown and reports them again at apply
    facts: list[Path] = field(default_factory=list)

    @property
    def type(self) -> str:
        return self.address.type

    @property
    def name(self) -> str:
        return self.address.name


@dataclass
class DriftChange:
    """An object changed outside orch since the last apply (found by refresh)."""

    address: ResourceAddress
    action: Action  # UPDATE (attributes differ) or DELETE (object gone)
    before: dict[str, Any] | None  # what the state recorded
    after: dict[str, Any] | None  # what exists now
    reason: str = ""


@dataclass
class OutputChange:
    name: str
    action: Action
    before: Any = None
    after: Any = None  # may be UNKNOWN
    sensitive: bool = False


@dataclass
class Plan:
    changes: list[ResourceChange] = field(default_factory=list)  # graph order
    drift: list[DriftChange] = field(default_factory=list)
    outputs: list[OutputChange] = field(default_factory=list)
    lineage: str | None = None  # of the state the plan was made against
    serial: int | None = None
    refresh_only: bool = False
    destroy: bool = False
    variables: dict[str, Any] = field(default_factory=dict)
    timestamp: str = ""
    # what each changed instance depends on (apply order; deletes go in reverse)
    dependencies: dict[ResourceAddress, list[ResourceAddress]] = field(default_factory=dict)
    # objects made by an interrupted apply that refresh found and the plan adopts
    adopted: list[ResourceAddress] = field(default_factory=list)
    # the cluster layer's overviews (the scheduler's placement table), by name
    summaries: list[Summary] = field(default_factory=list)
    # observed status of the objects refresh could read (orchdsl.sdk.ObjectStatus), by address
    status: dict[ResourceAddress, Any] = field(default_factory=dict)
    # the refreshed state the plan was made from (apply starts from it); engine-internal
    prior_state: Any = field(default=None, repr=False, compare=False)

    def summary(self, name: str) -> Summary | None:
        return next((s for s in self.summaries if s.name == name), None)

    @property
    def counts(self) -> tuple[int, int, int]:
        """(to add, to change, to destroy) as in ``Plan: X to add, Y to change, Z to destroy.``"""
        add = change = destroy = 0
        for c in self.changes:
            if c.action is Action.CREATE:
                add += 1
            elif c.action is Action.UPDATE:
                change += 1
            elif c.action is Action.DELETE:
                destroy += 1
            elif c.action is Action.REPLACE:
                add += 1
                destroy += 1
        return add, change, destroy

    @property
    def has_changes(self) -> bool:
        return any(c.action is not Action.NOOP for c in self.changes) or \
            any(o.action is not Action.NOOP for o in self.outputs) or (self.refresh_only and bool(self.drift))
