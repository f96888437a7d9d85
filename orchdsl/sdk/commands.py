"""What provider commands (entry-point group ``orch.commands``, e.g. ``orch trust``) may ask of the core."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..addrs import ResourceAddress
from ..diagnostics import Diagnostic
from ..eval.plain import prune_nulls


def configured_instances(directory: str | Path, resource_type: str, var_overrides: dict[str, str] | None = None
                         ) -> tuple[dict[ResourceAddress, dict[str, Any]], list[Diagnostic]]:
    """The configured values of every instance of ``resource_type`` in a configuration directory (values
    that depend on other resources are ``UNKNOWN``), or the configuration's errors."""
    from ..config import load_config

    config, diags = load_config(Path(directory), var_overrides or {}, [])
    errors = [d for d in diags if d.is_error]
    if config is None or errors:
        return {}, errors or [Diagnostic.error("Cannot load configuration", str(directory))]
    out: dict[ResourceAddress, dict[str, Any]] = {}
    for decl in config.resources.values():
        if decl.type != resource_type:
            continue
        instances, _ = config.expand(decl, {})
        for inst in instances:
            out[inst.address] = prune_nulls(inst.values)
    return out, []


__all__ = ["configured_instances"]
