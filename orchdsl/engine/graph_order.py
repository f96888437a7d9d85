"""Dependency order of the configuration's resource blocks."""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx

from .. import graph
from ..addrs import ConfigAddress
from ..cluster import Derivation
from ..config import Config
from ..diagnostics import Diagnostic


def config_graph(config: Config) -> nx.DiGraph[ConfigAddress]:
    return graph.build({addr: set(decl.references) | set(decl.depends_on)
                        for addr, decl in config.resources.items()})


def config_order(config: Config, derivations: Sequence[Derivation] = ()
                 ) -> tuple[list[ConfigAddress], list[Diagnostic]]:
    """Plan order: dependencies first, and for each derivation every block of a type it reads before every
    block of a type it writes (placement reads all nodes before it places any pod)."""
    g = config_graph(config)
    for dv in derivations:
        sources = [a for a, d in config.resources.items() if d.type in dv.reads]
        for a, d in config.resources.items():
            if d.type in dv.writes:
                g.add_edges_from((s, a) for s in sources if s != a)

    def where(addr: ConfigAddress) -> Diagnostic | None:
        decl = config.resources.get(addr)
        if decl is None:
            return None
        return Diagnostic.error("", "", decl.block.src, decl.block.start, decl.block.start + len(decl.type))

    diags = graph.cycle_diagnostics(g, where)
    if diags:
        return [], diags
    return graph.order(g), []
