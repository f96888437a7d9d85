"""Dependency order of the configuration's resource blocks."""

from __future__ import annotations

from ..addrs import ConfigAddress
from ..config import Config
from ..diagnostics import Diagnostic
from .. import graph


def config_graph(config: Config):
    return graph.build({addr: set(decl.references) | set(decl.depends_on)
                        for addr, decl in config.resources.items()})


def config_order(config: Config) -> tuple[list[ConfigAddress], list[Diagnostic]]:
    """Plan order: dependencies first, and every node before every pod (the scheduler places all pods at
    once, from the planned nodes)."""
    g = config_graph(config)
    nodes = [a for a, d in config.resources.items() if d.type == "node"]
    for a, d in config.resources.items():
        if d.type == "pod":
            g.add_edges_from((n, a) for n in nodes)

    def where(addr: ConfigAddress) -> Diagnostic | None:
        decl = config.resources.get(addr)
        if decl is None:
            return None
        return Diagnostic.error("", "", decl.block.src, decl.block.start, decl.block.start + len(decl.type))

    diags = graph.cycle_diagnostics(g, where)
    if diags:
        return [], diags
    return graph.order(g), []
