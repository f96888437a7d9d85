"""What ``orch reconcile`` heals in one cycle: unhealthy replicas to replace, nodes lost or still awaited.

Pure decisions over what the cycle observed; the loop does the reading, keeps :func:`track_unreachable`'s map
from one cycle to the next, and acts on the :class:`Heal` it gets (through the ordinary plan and apply).

Why reconcile replaces unhealthy replicas itself: Docker's restart policies restart a container that exits,
never one that runs but fails its health check; by the time Docker says "unhealthy" the check's retries are
already exhausted, so nothing else will ever fix it. Stopped or missing replicas are not healed here: the
ordinary plan already sees them and restarts or recreates them.

Why a node is "lost" only after ``lost_after`` seconds: an SSH timeout or a reboot makes a node unreachable
for a moment, and moving its replicas elsewhere is disruptive (new addresses, cold caches, and the old ones
still running when the node comes back). Until then its replicas are left alone, "waiting".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..addrs import ResourceAddress

# States in which a replica's container runs, so that its health status is current. An exited container keeps
# its last health status, and "unknown" could not be read: replacing (deleting) on either would act on a guess.
_RUNNING_STATES = frozenset({"running", "degraded"})


@dataclass(frozen=True)
class ReplicaView:
    """One replica as the cycle observed it."""

    address: ResourceAddress      # e.g. ResourceAddress.parse("pod.web[0]")
    node: str | None              # node name it runs on
    state: str                    # "running" | "degraded" | "stopped" | "unknown" | "missing"
    reachable: bool               # False when its node could not be read
    health: str | None            # "healthy" | "unhealthy" | "starting" | None (no check)
    detail: str = ""              # e.g. last health output, for the reason line


@dataclass(frozen=True)
class NodeSeen:
    name: str
    reachable: bool


@dataclass(frozen=True)
class Heal:
    replace: tuple[tuple[ResourceAddress, str], ...]   # unhealthy replicas to replace, with a reason
    lost_nodes: tuple[tuple[str, str], ...]            # nodes unreachable for longer than lost_after, with a reason
    waiting: tuple[tuple[str, str], ...]               # nodes unreachable but not lost yet, with a reason

    @property
    def empty(self) -> bool:
        return not (self.replace or self.lost_nodes or self.waiting)


def track_unreachable(since: Mapping[str, float], nodes: Sequence[NodeSeen], now: float) -> dict[str, float]:
    """When each unreachable node was first seen unreachable (kept across cycles); reachable nodes drop out.

    A node not in ``nodes`` (removed from the configuration) drops out too: nothing is left to wait for. A node
    that recovers and fails again starts a new count, as the time to lose it is the time it stayed away."""
    out: dict[str, float] = {}
    for node in sorted(nodes, key=lambda n: n.name):
        if not node.reachable:
            out[node.name] = since.get(node.name, now)
    return out


def _seconds(value: float) -> str:
    # Whole seconds, rounded down: "unreachable for 60s" must not be shown for a node waiting at 59.6s.
    return f"{math.floor(max(value, 0.0))}s"


def _limit(value: float) -> str:
    return f"{round(value, 3):g}s"


def _replace_reason(replica: ReplicaView) -> str:
    detail = " ".join(replica.detail.split())  # one line for a person, whatever the check printed
    return f"unhealthy: {detail}" if detail else "unhealthy: its health check failed all its retries"


def heal(replicas: Sequence[ReplicaView], unreachable_since: Mapping[str, float], now: float,
         lost_after: float) -> Heal:
    """This cycle's healing: which replicas to replace and which unreachable nodes are lost or awaited.

    ``unreachable_since``: :func:`track_unreachable`'s map. A node is lost when
    ``unreachable_since[node] <= now - lost_after`` (at the boundary exactly: lost)."""
    if not (math.isfinite(lost_after) and lost_after >= 0):
        raise ValueError(f"lost_after {lost_after}: must be >= 0 seconds")
    since: dict[str, float] = dict(unreachable_since)
    # A replica whose node could not be read although the map does not know the node (its first cycle away,
    # tracked with an older node list): unreachable from now on, so it waits rather than vanishes.
    for replica in replicas:
        if not replica.reachable and replica.node is not None:
            since.setdefault(replica.node, now)

    replace: list[tuple[ResourceAddress, str]] = []
    for replica in sorted(replicas, key=lambda r: r.address):
        # On an unreachable node nothing is replaced one by one: the node as a whole is lost or waiting, and the
        # health seen last may be stale.
        on_unreachable = not replica.reachable or (replica.node is not None and replica.node in since)
        if on_unreachable or replica.state not in _RUNNING_STATES:
            continue
        if replica.health == "unhealthy":
            replace.append((replica.address, _replace_reason(replica)))

    lost: list[tuple[str, str]] = []
    waiting: list[tuple[str, str]] = []
    for name in sorted(since):
        first = since[name]
        away = _seconds(now - first)
        if first <= now - lost_after:
            lost.append((name, f"unreachable for {away} (lost after {_limit(lost_after)})"))
        else:
            waiting.append((name, f"unreachable for {away}; lost after {_limit(lost_after)}"))
    return Heal(tuple(replace), tuple(lost), tuple(waiting))
