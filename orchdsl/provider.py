"""Finding providers: the entry-point group ``orch.providers`` (each entry point names a class implementing
:class:`orchdsl.sdk.Provider`), so the core never imports one. The protocol itself is the SDK's
(:mod:`orchdsl.sdk.protocol`).
"""

from __future__ import annotations

from importlib.metadata import entry_points

from .diagnostics import Diagnostic
from .sdk.protocol import Provider

ENTRY_POINT_GROUP = "orch.providers"


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
