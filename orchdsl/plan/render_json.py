"""The machine-readable plan, shaped like ``terraform show -json PLANFILE``.

Policy tools (OPA/conftest, Checkov-style checks) read Terraform's JSON plan
representation; this module emits the same shape (format version 1.2) so that
policies written for it work on orch plans:

- ``resource_changes[]`` / ``resource_drift[]``: address, module_address (not for
  the root module), mode, type, name, index (only for count/for_each instances),
  provider_name, ``change`` and ``action_reason`` (only when there is one);
- ``change``: ``actions``, ``before``, ``after`` (unknown values left out of
  objects and nulled in lists), ``after_unknown`` (``true`` where unknown),
  ``before_sensitive``/``after_sensitive`` (``true`` where sensitive),
  ``replace_paths`` (only for replacements);
- ``planned_values``, ``output_changes``, ``variables``, ``timestamp``,
  ``applyable``, ``complete``, ``errored``.

Unlike Terraform, sensitive values are never written: ``before``/``after``, ``planned_values``, sensitive
outputs and variables hold ``null`` where a value is sensitive, and the ``*_sensitive`` mirrors say where (a
plan JSON is pasted into CI logs and PR tools; a secret must not travel with it). orch's own data
(placement, reasons, lineage, serial) is under the ``orch`` key, which
Terraform consumers ignore as an unknown property.
"""

from __future__ import annotations

import json
from decimal import Decimal
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from ..addrs import ModulePath, ResourceAddress
from .model import UNKNOWN, Action, DriftChange, OutputChange, Path, Plan, ResourceChange

__all__ = [
    "FORMAT_VERSION",
    "dumps_plan_json",
    "omit_unknowns",
    "render_plan_json",
    "sensitive_as_bool",
    "unknown_as_bool",
]

FORMAT_VERSION = "1.2"

JSONValue = Any


def orch_version() -> str:
    try:
        return metadata.version("orch")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0"


# ---------------------------------------------------------------------------------------------------
# value transforms (jsonplan's omitUnknowns, unknownAsBool and jsonstate's SensitiveAsBool)


def omit_unknowns(value: Any) -> JSONValue:
    """A value with unknowns left out of objects and replaced by null in lists (order matters there)."""
    if isinstance(value, dict):
        return {str(k): omit_unknowns(v) for k, v in _sorted_items(value) if v is not UNKNOWN}
    if isinstance(value, (list, tuple)):
        return [None if v is UNKNOWN else omit_unknowns(v) for v in value]
    return None if value is UNKNOWN else value


def unknown_as_bool(value: Any) -> JSONValue:
    """``value``'s shape with ``true`` where unknown.

    Known leaves are ``false`` in lists and left out of objects; collections are always kept.
    """
    if value is UNKNOWN:
        return True
    if isinstance(value, dict):
        return _without_false({str(k): unknown_as_bool(v) for k, v in _sorted_items(value)})
    if isinstance(value, (list, tuple)):
        return [unknown_as_bool(v) for v in value]
    return False


def sensitive_as_bool(value: Any, paths: Sequence[Sequence[str | int]]) -> JSONValue:
    """``value``'s shape with ``true`` at each sensitive path; other leaves as in :func:`unknown_as_bool`."""
    return _sensitive_as_bool(value, frozenset(tuple(p) for p in paths), ())


def _sensitive_as_bool(value: Any, marked: frozenset[Path], at: Path) -> JSONValue:
    if at in marked:
        return True
    if isinstance(value, dict):
        return _without_false({str(k): _sensitive_as_bool(v, marked, at + (k,))
                               for k, v in _sorted_items(value)})
    if isinstance(value, (list, tuple)):
        return [_sensitive_as_bool(v, marked, at + (i,)) for i, v in enumerate(value)]
    return False


def _sorted_items(d: dict[str, Any]) -> list[tuple[Any, Any]]:
    """Object keys in order, as Terraform's encoder writes them (and stable whatever the planner's order)."""
    return sorted(d.items(), key=lambda kv: str(kv[0]))


def _without_false(d: dict[str, JSONValue]) -> dict[str, JSONValue]:
    return {k: v for k, v in d.items() if v is not False}


def _is_wholly_known(value: Any) -> bool:
    if value is UNKNOWN:
        return False
    if isinstance(value, dict):
        return all(_is_wholly_known(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_is_wholly_known(v) for v in value)
    return True


# ---------------------------------------------------------------------------------------------------
# resource changes


def _module_address(module: ModulePath) -> str:
    return ".".join(str(m) for m in module)


def _identity(address: ResourceAddress, provider: str, mode: str,
              module_address: bool = True) -> dict[str, JSONValue]:
    out: dict[str, JSONValue] = {"address": str(address)}
    if address.module and module_address:
        out["module_address"] = _module_address(address.module)
    out["mode"] = mode
    out["type"] = address.type
    out["name"] = address.name
    if address.key is not None:
        out["index"] = address.key
    if provider:
        out["provider_name"] = provider
    return out


def _mode(action: Action) -> str:
    return "data" if action is Action.READ else "managed"


def hide_sensitive(value: Any, paths: Sequence[Sequence[str | int]]) -> Any:
    """``value`` with ``None`` at each sensitive path (a path covers what is below it)."""
    marked = frozenset(tuple(p) for p in paths)
    if not marked:
        return value
    return _hide(value, marked, ())


def _hide(value: Any, marked: frozenset[Path], at: Path) -> Any:
    if at in marked:
        return None
    if isinstance(value, dict):
        return {k: _hide(v, marked, at + (k,)) for k, v in value.items()}
    if isinstance(value, list):
        return [_hide(v, marked, at + (i,)) for i, v in enumerate(value)]
    return value


def change_object(actions: list[str], before: dict[str, Any] | None, after: dict[str, Any] | None,
                  before_sensitive: Sequence[Path] = (), after_sensitive: Sequence[Path] = (),
                  replace_paths: Sequence[Path] = ()) -> dict[str, JSONValue]:
    """The ``change`` object of a resource change or drift."""
    out: dict[str, JSONValue] = {
        "actions": actions,
        "before": omit_unknowns(hide_sensitive(before, before_sensitive)),
        "after": omit_unknowns(hide_sensitive(after, after_sensitive)),
        # Terraform: {} when the whole value is known, else the full mirror (with {} and false in it)
        "after_unknown": {} if _is_wholly_known(after) else unknown_as_bool(after),
        "before_sensitive": sensitive_as_bool(before, before_sensitive) if before is not None else False,
        "after_sensitive": sensitive_as_bool(after, after_sensitive) if after is not None else False,
    }
    if replace_paths:
        out["replace_paths"] = [list(p) for p in replace_paths]
    return out


def resource_change(rc: ResourceChange) -> dict[str, JSONValue]:
    out = _identity(rc.address, rc.provider, _mode(rc.action))
    out["change"] = change_object(rc.action.terraform_actions(rc.create_before_destroy), rc.before, rc.after,
                                  rc.before_sensitive, rc.after_sensitive,
                                  rc.replace_paths if rc.action is Action.REPLACE else ())
    if rc.deposed:
        out["deposed"] = rc.deposed  # as Terraform: the key of the deposed object this change destroys
    if rc.action_reason:
        out["action_reason"] = rc.action_reason
    return out


def resource_drift(plan: Plan, drift: DriftChange) -> dict[str, JSONValue]:
    planned = next((c for c in plan.changes if c.address == drift.address), None)
    provider = planned.provider if planned else ""
    # DriftChange has no sensitivity of its own: what is sensitive in the object's change is here too.
    paths = [*planned.before_sensitive, *planned.after_sensitive] if planned else []
    out = _identity(drift.address, provider, "managed")
    out["change"] = change_object(drift.action.terraform_actions(), drift.before, drift.after, paths, paths)
    return out


# ---------------------------------------------------------------------------------------------------
# planned values


def _planned_resource(rc: ResourceChange) -> dict[str, JSONValue]:
    out = _identity(rc.address, rc.provider, _mode(rc.action), module_address=False)
    out["schema_version"] = 0
    if rc.after is not None:
        out["values"] = omit_unknowns(hide_sensitive(rc.after, rc.after_sensitive))
        out["sensitive_values"] = sensitive_as_bool(rc.after, rc.after_sensitive)
    return out


def _module_tree(changes: Sequence[ResourceChange]) -> dict[str, JSONValue]:
    """``root_module`` with ``resources`` and nested ``child_modules`` (each with its ``address``)."""
    by_module: dict[ModulePath, list[ResourceChange]] = {}
    for rc in changes:
        if rc.action is not Action.DELETE:
            by_module.setdefault(rc.address.module, []).append(rc)
            for depth in range(len(rc.address.module)):  # make sure every ancestor module exists
                by_module.setdefault(rc.address.module[:depth], [])

    def module(path: ModulePath) -> dict[str, JSONValue]:
        out: dict[str, JSONValue] = {}
        if path:
            out["address"] = _module_address(path)
        resources = sorted(by_module.get(path, []), key=lambda c: c.address)
        if resources:
            out["resources"] = [_planned_resource(c) for c in resources]
        children = sorted((m for m in by_module if len(m) == len(path) + 1 and m[:len(path)] == path),
                          key=_module_address)
        if children:
            out["child_modules"] = [module(c) for c in children]
        return out

    return module(())


def _planned_outputs(outputs: Sequence[OutputChange]) -> dict[str, JSONValue]:
    out: dict[str, JSONValue] = {}
    for oc in sorted(outputs, key=lambda o: o.name):
        if oc.action is Action.DELETE:
            continue
        entry: dict[str, JSONValue] = {"sensitive": oc.sensitive}
        if _is_wholly_known(oc.after):
            entry["value"] = None if oc.sensitive else omit_unknowns(oc.after)
        out[oc.name] = entry
    return out


def planned_values(plan: Plan) -> dict[str, JSONValue]:
    out: dict[str, JSONValue] = {}
    outputs = _planned_outputs(plan.outputs)
    if outputs:
        out["outputs"] = outputs
    out["root_module"] = _module_tree(plan.changes)
    return out


# ---------------------------------------------------------------------------------------------------
# outputs


def output_change(oc: OutputChange) -> dict[str, JSONValue]:
    out: dict[str, JSONValue] = {"actions": oc.action.terraform_actions(),
                                 "before": None if oc.sensitive else omit_unknowns(oc.before)}
    if oc.after is not UNKNOWN:  # Terraform leaves "after" out when the whole value is unknown
        out["after"] = None if oc.sensitive else omit_unknowns(oc.after)
    out["after_unknown"] = False if _is_wholly_known(oc.after) else unknown_as_bool(oc.after)
    out["before_sensitive"] = oc.sensitive
    out["after_sensitive"] = oc.sensitive
    return out


# ---------------------------------------------------------------------------------------------------
# the plan


def _orch_extras(plan: Plan) -> dict[str, JSONValue]:
    extras: dict[str, JSONValue] = {
        "lineage": plan.lineage,
        "serial": plan.serial,
        "refresh_only": plan.refresh_only,
        "destroy": plan.destroy,
        "placement": {str(c.address): c.location for c in plan.changes if c.location},
        "reasons": {str(c.address): c.reason for c in plan.changes if c.reason},
    }
    for summary in plan.summaries:
        extras[summary.name] = summary.data
    if plan.status:
        extras["status"] = {str(a): s.to_json() for a, s in sorted(plan.status.items())}
    return extras


def render_plan_json(plan: Plan, *, version: str | None = None) -> dict[str, JSONValue]:
    """The plan as ``terraform show -json`` shapes it, ready for :func:`json.dumps`.

    Changes keep the plan's order (graph order); ``version`` overrides ``orch_version``.
    """
    out: dict[str, JSONValue] = {
        "format_version": FORMAT_VERSION,
        "orch_version": version if version is not None else orch_version(),
    }
    if plan.variables:
        out["variables"] = {name: {"value": omit_unknowns(value)}
                            for name, value in sorted(plan.variables.items())}
    out["planned_values"] = planned_values(plan)
    out["resource_drift"] = [resource_drift(plan, d) for d in plan.drift
                             if plan.refresh_only or d.action is not Action.NOOP]
    out["resource_changes"] = [resource_change(c) for c in plan.changes]
    out["output_changes"] = {o.name: output_change(o) for o in sorted(plan.outputs, key=lambda o: o.name)}
    if plan.timestamp:
        out["timestamp"] = plan.timestamp
    out["applyable"] = plan.has_changes
    out["complete"] = True
    out["errored"] = False
    out["orch"] = _orch_extras(plan)
    return out


def dumps_plan_json(plan: Plan, *, indent: int | None = None, version: str | None = None) -> str:
    """The JSON text: one line like Terraform's by default, or indented."""
    data = render_plan_json(plan, version=version)
    if indent is None:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=_number)
    return json.dumps(data, ensure_ascii=False, indent=indent, default=_number)


def _number(value: object) -> int | float:
    """Numbers of the language are Decimals (``variable "ratio" { default = 0.5 }``): JSON numbers."""
    if isinstance(value, Decimal) and value.is_finite():
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
