"""Refresh: one bulk read per provider, drift detection, adoption of lost objects."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..addrs import ResourceAddress
from ..diagnostics import Diagnostic
from ..plan.model import Action, DriftChange
from ..sdk.protocol import ObjectStatus, Provider, StateObject
from ..state import ResourceInstance, State
from ..sdk.values import configured_changes


@dataclass
class Refreshed:
    state: State  # a working copy reflecting what exists now
    drift: list[DriftChange] = field(default_factory=list)
    adopted: list[ResourceAddress] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    # observed status, apart from attributes; objects on a host that did not answer are "not reachable"
    status: dict[ResourceAddress, ObjectStatus] = field(default_factory=dict)


def to_object(inst: ResourceInstance, status: ObjectStatus | None = None) -> StateObject:
    private = inst.private if isinstance(inst.private, dict) else {}
    return StateObject(inst.addr, dict(inst.attributes), dict(private), status)


def refresh(state: State, providers: dict[str, Provider]) -> Refreshed:
    """Read every recorded object from its provider (one call per provider, not per resource)."""
    work = state.copy()
    out = Refreshed(work)
    by_provider: dict[str, list[ResourceInstance]] = {}
    for inst in state:
        p = providers.get(inst.type)
        if p is None:
            out.diagnostics.append(Diagnostic.error(
                "No provider for resource type", f'The state has "{inst.address}" but no installed provider '
                f'handles type "{inst.type}".', address=inst.address,
                hint="install the provider, or remove the object from the state with orch state rm"))
            continue
        by_provider.setdefault(p.name, []).append(inst)
    for p in {id(p): p for p in providers.values()}.values():
        prior = by_provider.get(p.name, [])
        result = p.refresh([to_object(i) for i in prior])
        out.diagnostics.extend(result.diagnostics)
        failed = {d.address for d in result.diagnostics if d.is_error and d.address}
        for inst in prior:
            if inst.address in failed or inst.addr not in result.current:
                # unreadable (e.g. node down): keep what the state says, and say it was not observed
                why = next((d.summary for d in result.diagnostics if d.is_error and d.address == inst.address),
                           "its provider could not read it")
                out.status[inst.addr] = ObjectStatus("unknown", reachable=False, message=why)
                continue
            now = result.current[inst.addr]
            if now is None:
                # a tainted record is an intent: its object may never have been made (an apply killed between
                # recording it and the provider's answer), so its absence is not a deletion by someone else
                if inst.status != "tainted":
                    out.drift.append(DriftChange(inst.addr, Action.DELETE, dict(inst.attributes), None,
                                                 "deleted outside of orch"))
                if inst.deposed:
                    # the current object is gone; its deposed ones are still to be deleted
                    work.set(inst.model_copy(update={"attributes": {}, "status": "tainted"}))
                else:
                    work.remove(inst.addr)
                continue
            if now.status is not None:
                out.status[inst.addr] = now.status
            changed = configured_changes(now.attributes, inst.attributes)
            if changed:
                out.drift.append(DriftChange(inst.addr, Action.UPDATE, dict(inst.attributes),
                                             dict(now.attributes), "changed outside of orch"))
            work.set(inst.model_copy(update={"attributes": now.attributes,
                                             "private": now.private or inst.private}))
        for orphan in result.orphans:
            if orphan.address in work:
                continue
            work.set(ResourceInstance.for_address(orphan.address, p.name, orphan.attributes,
                                                  private=orphan.private))
            out.adopted.append(orphan.address)
    return out
