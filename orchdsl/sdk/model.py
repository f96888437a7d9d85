"""The parts of orch's resource model a provider relies on (the model itself is the core's)."""

from __future__ import annotations

from typing import Any

from ..addrs import ResourceAddress

# With no node resource in the configuration, the cluster layer places pods on this implicit node: the
# container engine of the machine running orch (each provider knows how to reach its own), so a laptop
# works without a node block.
IMPLICIT_NODE = "local"


def node_name(address: ResourceAddress) -> str:
    """The name pods use for a node (their ``node`` value): ``n1`` for ``node.n1``, ``n-2`` for ``node.n[2]``."""
    return address.name if address.key is None else f"{address.name}-{address.key}"


def has_shell(values: dict[str, Any]) -> bool:
    """Whether orch reaches a node (its values) over SSH, so that it can run ``ip``, ``nft`` and ``iptables``
    there: such a node gets a pod network (the core allocates its subnet, the provider makes it); a node reached
    through a TCP or a local Docker socket does not."""
    dh = values.get("docker_host")
    if isinstance(dh, str) and dh.startswith("ssh://"):
        return True
    return isinstance(values.get("address"), str) and (dh is None or (isinstance(dh, str)
                                                                       and dh.startswith("unix://")))


__all__ = ["IMPLICIT_NODE", "has_shell", "node_name"]
