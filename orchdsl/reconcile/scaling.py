"""What the autoscaler reads: which pods are autoscaled (their policy) and their CPU use in percent of the
request, measured by the provider (``metrics``: Docker's stats API for the Docker provider)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..addrs import ConfigAddress
from ..cluster.placement import requests
from ..sdk.protocol import ObjectStatus
from ..state import ResourceInstance
from .autoscale import ScalePolicy

DEFAULT_TARGET = 80.0
DEFAULT_WINDOW = 300.0


def autoscaled(config: Any) -> dict[ConfigAddress, ScalePolicy]:
    """Each autoscaled pod block's policy, evaluated in its module."""
    from ..config.evaluate import Scope, autoscale_bounds
    from ..eval import evaluate
    from ..state.duration import parse_duration

    out: dict[ConfigAddress, ScalePolicy] = {}
    for caddr, decl in config.resources.items():
        block = decl.autoscale_block
        if block is None:
            continue
        mod = config.modules[decl.module]
        exprs = [a.expr for a in block.body.attributes.values()]
        ctx = Scope(config, {}).context(mod, exprs)
        low, high, _ = autoscale_bounds(decl, ctx)
        values: dict[str, Any] = {}
        for name in ("target_cpu", "scale_down_window"):
            attr = block.body.attributes.get(name)
            if attr is not None:
                v, _ = evaluate(attr.expr, ctx)
                values[name] = v.raw
        target = values.get("target_cpu")
        window = values.get("scale_down_window")
        if isinstance(window, str):
            try:
                window = parse_duration(window)
            except ValueError:
                window = None
        out[caddr] = ScalePolicy(low, high,
                                 float(target) if isinstance(target, (int, float)) and target > 0 else DEFAULT_TARGET,
                                 float(window) if isinstance(window, (int, float)) and window >= 0 else DEFAULT_WINDOW)
    return out


def cpu_percent(replicas: list[ResourceInstance], status: Mapping[Any, ObjectStatus],
                providers: Mapping[str, Any]) -> list[float | None]:
    """Each replica's CPU use in percent of its request (None: not measured, or nothing requested). Replicas
    not running (starting, unreachable) are not measured, as the HPA ignores pods not ready."""
    from ..engine.refresh import to_object

    if not replicas:
        return []
    provider = providers.get(replicas[0].type)
    measure = getattr(provider, "metrics", None)
    if not callable(measure):
        return [None] * len(replicas)
    running = [r for r in replicas if _running(status.get(r.addr))]
    used = measure([to_object(r) for r in running]) if running else {}
    out: list[float | None] = []
    for r in replicas:
        u = used.get(r.addr)
        request = requests(dict(r.attributes))[0]  # as the scheduler counts it
        cpu = getattr(u, "cpu", None)
        out.append(None if cpu is None or request <= 0 else cpu / request * 100.0)
    return out


def _running(status: ObjectStatus | None) -> bool:
    return status is not None and status.reachable and status.state == "running"


__all__ = ["autoscaled", "cpu_percent"]
