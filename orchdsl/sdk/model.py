"""The parts of orch's resource model a provider relies on (the model itself is the core's)."""

from __future__ import annotations

from ..addrs import ResourceAddress

# With no node resource in the configuration, the cluster layer places pods on this implicit node: the
# container engine of the machine running orch (each provider knows how to reach its own), so a laptop
# works without a node block.
IMPLICIT_NODE = "local"


def node_name(address: ResourceAddress) -> str:
    """The name pods use for a node (their ``node`` value): ``n1`` for ``node.n1``, ``n-2`` for ``node.n[2]``."""
    return address.name if address.key is None else f"{address.name}-{address.key}"


__all__ = ["IMPLICIT_NODE", "node_name"]
