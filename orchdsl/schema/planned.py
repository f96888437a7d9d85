"""What the resource model describes but nothing realises yet: "planned, not supported yet".

The schemas of this package describe the whole model orch is heading for (services, network policies,
rolling updates...). Only part of it is realised today: by the Docker provider (``node`` and ``pod``
containers) and by the scheduler (placement). Accepting the rest and silently doing nothing would be a lie,
so the configuration loader rejects every use of what is listed here with a "Not supported yet" error at
``orch validate`` (and so at plan and apply, which load the configuration the same way).

This module is the one place that says what is planned. When a feature lands, delete its entries here (and
the "planned" marks in docs/resources.md); ``tests/test_not_supported.py`` checks every entry.

The schemas stay complete on purpose: the future work starts from them, and they remain tested directly
(``normalize``), only configurations cannot use the planned parts yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

DOCS_HINT = "remove it; see docs/resources.md for what works today"


@dataclass(frozen=True)
class Planned:
    """One planned thing: the feature it waits for (as the roadmap names it), and how to do without."""

    feature: str
    hint: str = DOCS_HINT


# Whole resource types: a schema exists, no provider realises them (plan would fail with "No provider").
PLANNED_TYPES: Mapping[str, Planned] = MappingProxyType({
})

# Arguments and blocks of supported types that nothing reads, keyed by their path in the schema: the
# resource type, the nested block types, then the argument or block name (("pod", "container", "x") would
# be the argument x of a pod's container blocks).
PLANNED_ATTRIBUTES: Mapping[tuple[str, ...], Planned] = MappingProxyType({
})


def planned_type(resource_type: str) -> Planned | None:
    return PLANNED_TYPES.get(resource_type)


def planned_attribute(path: tuple[str, ...]) -> Planned | None:
    return PLANNED_ATTRIBUTES.get(path)


def type_detail(resource_type: str, planned: Planned) -> str:
    return f'resource type "{resource_type}" is planned ({planned.feature}) but not supported yet.'


def attribute_detail(path: tuple[str, ...], planned: Planned) -> str:
    owner, name = path[0], ".".join(path[1:])
    return f'{owner} attribute "{name}" is planned ({planned.feature}) but not supported yet.'


__all__ = ["Planned", "PLANNED_TYPES", "PLANNED_ATTRIBUTES", "DOCS_HINT", "planned_type", "planned_attribute",
           "type_detail", "attribute_detail"]
