"""Resource schemas: what each resource block of a configuration may contain.

One module per resource type, each a pydantic model (see ``base`` for the
markers the configuration loader reads). The engine and providers use:

* ``RESOURCE_TYPES``: block type -> model class (``"pod"`` -> ``Pod``);
* ``describe(model)`` -> ``ModelSpec`` (arguments, blocks, exported attributes);
* ``normalize(type, data)`` -> ``(values, errors)``: validate plain data
  (nested dicts/lists, ``UNKNOWN`` leaves allowed) and return it normalised
  (quantities in bytes/cores/seconds, shorthands expanded, defaults filled),
  or the errors as ``(path, message)`` pairs;
* ``exported_attributes(type)``: the attributes an expression can read from an
  instance (arguments, blocks and computed attributes such as a pod's ``ip``);
* ``PLANNED_TYPES``, ``PLANNED_ATTRIBUTES`` (``planned.py``): the parts of the
  model nothing realises yet, which configurations cannot use ("Not supported
  yet" at ``orch validate``).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from .base import (AttributeSpec, BlockSpec, ModelSpec, Resource, Schema, describe, dump, hcl_type,
                   sensitive_paths)
from .network_policy import NetworkPolicy
from .node import Node
from .planned import PLANNED_ATTRIBUTES, PLANNED_TYPES, Planned
from .pod import Pod
from .quantities import format_memory, parse_cpu, parse_duration, parse_memory
from .secret import Secret
from .service import Service
from .volume import Volume

RESOURCE_TYPES: dict[str, type[Resource]] = {
    m.type_name: m for m in (Node, Pod, Service, NetworkPolicy, Volume, Secret)
}

ErrorPath = tuple[str | int, ...]


def normalize(resource_type: str, data: dict[str, Any]) -> tuple[dict[str, Any] | None, list[tuple[ErrorPath, str]]]:
    """Validate ``data`` against the schema of ``resource_type``; normalised data or errors."""
    model = RESOURCE_TYPES[resource_type]
    try:
        obj = model.model_validate(data)
    except ValidationError as e:
        return None, [(tuple(err["loc"]), _message(err)) for err in e.errors()]
    return dump(obj), []


def _message(err: dict) -> str:
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    return msg


def exported_attributes(resource_type: str) -> list[str]:
    spec = describe(RESOURCE_TYPES[resource_type])
    return spec.names()


__all__ = ["RESOURCE_TYPES", "normalize", "describe", "dump", "hcl_type", "sensitive_paths", "exported_attributes",
           "AttributeSpec", "BlockSpec", "ModelSpec", "Resource", "Schema", "Node", "Pod", "Service",
           "NetworkPolicy", "Volume", "Secret", "parse_memory", "parse_cpu", "parse_duration",
           "format_memory", "PLANNED_TYPES", "PLANNED_ATTRIBUTES", "Planned"]
