"""The conformance suite: what every provider must do for the core to rely on it.

A provider's tests call :func:`check_provider` with a factory and one :class:`Sample` per resource type it
handles, and assert that the returned list of failures is empty::

    failures = check_provider(lambda: MyProvider(...), [Sample(ResourceAddress("pod", "web"), config, ...)])
    assert not failures, "\\n".join(failures)

It drives the protocol the way the engine does (configure, refresh, plan, create, update, delete) and checks
the contract: plan is pure and fills computed attributes with UNKNOWN or values; what is created keeps the
configured values; refresh reads it back without drift, with a status, in one call; a plan against what exists
is a no-op; an in-place update is not a replacement and is read back; delete makes refresh report the object
gone; deleting again is harmless; objects are found by lineage (a provider configured with another lineage
does not claim them).
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...addrs import ResourceAddress
from ..protocol import ApplyRequest, ObjectStatus, Provider, StateObject
from ..values import UNKNOWN, configured_changes, contains_unknown


@dataclass
class Sample:
    """One object to put through the protocol."""

    address: ResourceAddress
    config: dict[str, Any]  # configured values, as the core passes them (nulls pruned, derived values set)
    update: dict[str, Any] | None = None  # a configuration that differs only in place (None: skip)
    world: dict[ResourceAddress, dict[str, Any]] = field(default_factory=dict)  # e.g. the node it runs on
    before: list[Sample] = field(default_factory=list)  # objects to create first (its node)
    external: bool = False  # the object outlives its resource (a host orch does not own): delete only forgets


def _noop(_: str) -> None:
    pass


def check_provider(factory: Callable[[], Provider], samples: list[Sample]) -> list[str]:
    """Run the suite; the failures, as sentences (empty: the provider conforms)."""
    failures: list[str] = []
    lineage = f"conformance-{secrets.token_hex(4)}"
    for sample in samples:
        p = factory()
        try:
            failures += [f"{sample.address}: {f}" for f in _check_one(p, sample, lineage)]
        except Exception as e:  # noqa: BLE001 - a provider that raises fails the suite, it does not stop it
            failures.append(f"{sample.address}: raised {type(e).__name__}: {e}")
        finally:
            close = getattr(p, "close", None)
            if close is not None:
                close()
    return failures


def _check_one(p: Provider, s: Sample, lineage: str) -> list[str]:
    out: list[str] = []
    types = p.resource_types()
    info = types.get(s.address.type)
    if info is None:
        return [f"resource_types() does not list {s.address.type}"]
    if p.configure({}, lineage):
        return ["configure() returned diagnostics"]
    world: dict[ResourceAddress, dict[str, Any]] = dict(s.world)
    made: list[StateObject] = []
    for dep in s.before:  # what the sample needs (its node), created through the protocol too
        planned = p.plan(dep.address, None, copy.deepcopy(dep.config)).planned
        world[dep.address] = planned
        res = p.create(ApplyRequest(dep.address, planned, None, world, _noop))
        if res.new is None:
            return [f"could not create prerequisite {dep.address}: {[d.summary for d in res.diagnostics]}"]
        world[dep.address] = res.new.attributes
        made.append(res.new)
    try:
        out += _lifecycle(p, s, info.computed, world, made, lineage)
    finally:
        for obj in reversed(made):
            p.delete(ApplyRequest(obj.address, None, obj, world, _noop))
    return out


def _lifecycle(p: Provider, s: Sample, computed: frozenset[str], world: dict[ResourceAddress, dict[str, Any]],
               made: list[StateObject], lineage: str) -> list[str]:
    out: list[str] = []
    addr, config = s.address, s.config
    first = p.plan(addr, None, copy.deepcopy(config))
    second = p.plan(addr, None, copy.deepcopy(config))
    if first.planned != second.planned:
        out.append("plan() is not deterministic for a new object")
    if any(d.is_error for d in first.diagnostics):
        return out + [f"plan() failed: {[d.summary for d in first.diagnostics]}"]
    for k in config:
        if k not in first.planned:
            out.append(f"planned values lack configured attribute {k!r}")
    for k in computed:
        if k not in config and k not in first.planned:
            out.append(f"computed attribute {k!r} is neither planned nor UNKNOWN")
    planned = first.planned
    world[addr] = planned
    created = p.create(ApplyRequest(addr, planned, None, world, _noop))
    if created.new is None:
        return out + [f"create() returned no object: {[d.summary for d in created.diagnostics]}"]
    obj = created.new
    made.append(obj)
    world[addr] = obj.attributes
    if contains_unknown(obj.attributes):
        out.append("create() returned UNKNOWN values")
    if configured_changes(obj.attributes, {k: v for k, v in config.items() if k not in computed}):
        out.append(f"created object differs from its configuration at "
                   f"{configured_changes(obj.attributes, config)}")
    # refresh: one call, the object as it is, a status
    read = p.refresh([StateObject(addr, obj.attributes, obj.private)])
    now = read.current.get(addr, UNKNOWN)
    if now is UNKNOWN:
        out.append("refresh() did not report the object at all")
    elif now is None:
        out.append("refresh() says the object just created is gone")
    else:
        if configured_changes(now.attributes, config):
            out.append(f"refresh() reads back drift at {configured_changes(now.attributes, config)}")
        if now.status is not None and not isinstance(now.status, ObjectStatus):
            out.append("refresh() status is not an ObjectStatus")
        if any(o.address == addr for o in read.orphans):
            out.append("refresh() reports the recorded object as an orphan too")
        obj = StateObject(addr, now.attributes, now.private or obj.private, now.status)
    # a plan against what exists: nothing to do
    again = p.plan(addr, obj, copy.deepcopy(config))
    if again.requires_replace:
        out.append(f"an unchanged configuration requires replacement at {again.requires_replace}")
    if again.repair:
        out.append(f"a healthy new object asks for repair: {again.repair}")
    # an in-place update
    if s.update is not None:
        upd = p.plan(addr, obj, copy.deepcopy(s.update))
        if upd.requires_replace:
            out.append(f"the in-place sample update requires replacement at {upd.requires_replace}")
        else:
            world[addr] = upd.planned
            res = p.update(ApplyRequest(addr, upd.planned, obj, world, _noop))
            if res.new is None:
                out.append(f"update() returned no object: {[d.summary for d in res.diagnostics]}")
            else:
                obj = res.new
                made[-1] = obj
                read = p.refresh([StateObject(addr, obj.attributes, obj.private)])
                now = read.current.get(addr)
                if now is None or configured_changes(now.attributes, s.update):
                    out.append("refresh() after update() does not read the updated values back")
    # another lineage does not claim it
    other = _other_lineage(p, addr, lineage)
    if other:
        out.append(other)
    # delete, then gone; deleting again is harmless
    res = p.delete(ApplyRequest(addr, None, obj, world, _noop))
    if any(d.is_error for d in res.diagnostics):
        out.append(f"delete() failed: {[d.summary for d in res.diagnostics]}")
    made.pop()
    read = p.refresh([StateObject(addr, obj.attributes, obj.private)])
    if not s.external and read.current.get(addr, UNKNOWN) is not None:
        out.append("refresh() after delete() does not report the object gone")
    res = p.delete(ApplyRequest(addr, None, obj, world, _noop))
    if any(d.is_error for d in res.diagnostics):
        out.append("delete() of an object already gone fails")
    return out


def _other_lineage(p: Provider, addr: ResourceAddress, lineage: str) -> str | None:
    """Orphans are this lineage's only: a provider configured for another state must not adopt the object."""
    p.configure({}, f"other-{secrets.token_hex(4)}")
    try:
        read = p.refresh([])
        if any(o.address == addr for o in read.orphans):
            return "refresh() under another lineage adopts this lineage's object"
        return None
    finally:
        p.configure({}, lineage)


__all__ = ["Sample", "check_provider"]
