"""Rolling updates: which replicas are replaced together, and how (pure).

A pod block with a ``strategy`` block replaces its changed replicas in *waves*, as a Kubernetes Deployment's
rolling update does with ``maxSurge`` and ``maxUnavailable``:

* a *surge* replica's successor is created while the old one still serves; once the successor is healthy it
  joins the service endpoints on every node and the old one leaves them, drains, and stops;
* an *unavailable* replica leaves the endpoints first, drains and stops, then its successor is created and
  joins the endpoints once healthy.

A wave holds up to ``max_surge`` surge replicas and ``max_unavailable`` unavailable ones, so at any moment at
most ``replicas + max_surge`` replicas exist and at least ``replicas - max_unavailable`` serve. Replicas that
do not serve anyway (unhealthy, stopped, on a lost node) cost no availability: they go first, as unavailable
ones, outside the budget. ``type = "recreate"`` is one wave where every replica is unavailable.

The executor (``orchdsl/engine/apply.py``) carries the waves out, waiting for health between them, and rolls
back (or pauses) when a successor is not healthy within ``healthy_deadline``. The plan shows the waves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..addrs import ResourceAddress
from .derive import Summary

DEFAULT_DEADLINE = 300.0  # seconds: Nomad's update.healthy_deadline default
DEFAULT_DRAIN = 2.0  # seconds between leaving the endpoints and the stop: in-flight requests finish
NAME = "rollouts"


@dataclass(frozen=True)
class Wave:
    surge: tuple[ResourceAddress, ...] = ()  # successor first, old one stops after
    unavailable: tuple[ResourceAddress, ...] = ()  # old one stops first, successor after

    @property
    def members(self) -> tuple[ResourceAddress, ...]:
        return self.unavailable + self.surge


@dataclass(frozen=True)
class Strategy:
    type: str = "rolling"
    max_surge: int = 1
    max_unavailable: int = 0
    healthy_deadline: float = DEFAULT_DEADLINE
    on_failure: str = "rollback"
    drain_timeout: float = DEFAULT_DRAIN

    @classmethod
    def from_values(cls, raw: Any) -> Strategy | None:
        """The pod's planned ``strategy`` block (None: the block is absent, no rolling update)."""
        if not isinstance(raw, Mapping):
            return None
        d = cls()

        def num(key: str, default: float) -> float:
            v = raw.get(key)
            return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else default

        return cls(type=str(raw.get("type") or d.type), max_surge=int(num("max_surge", d.max_surge)),
                   max_unavailable=int(num("max_unavailable", d.max_unavailable)),
                   healthy_deadline=num("healthy_deadline", d.healthy_deadline),
                   on_failure=str(raw.get("on_failure") or d.on_failure),
                   drain_timeout=num("drain_timeout", d.drain_timeout))


@dataclass(frozen=True)
class Rollout:
    """One pod block's rolling update: its strategy and waves, in order."""

    block: str  # the block's address, "pod.web"
    strategy: Strategy
    waves: tuple[Wave, ...]

    @property
    def members(self) -> tuple[ResourceAddress, ...]:
        return tuple(a for w in self.waves for a in w.members)

    def to_json(self) -> dict[str, Any]:
        s = self.strategy
        return {"block": self.block, "type": s.type, "max_surge": s.max_surge,
                "max_unavailable": s.max_unavailable, "healthy_deadline": s.healthy_deadline,
                "on_failure": s.on_failure, "drain_timeout": s.drain_timeout,
                "waves": [{"surge": [str(a) for a in w.surge], "unavailable": [str(a) for a in w.unavailable]}
                          for w in self.waves]}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Rollout:
        waves = tuple(Wave(tuple(ResourceAddress.parse(a) for a in w.get("surge", ())),
                           tuple(ResourceAddress.parse(a) for a in w.get("unavailable", ())))
                      for w in raw.get("waves", ()))
        return cls(str(raw["block"]), Strategy.from_values(raw) or Strategy(), waves)


def plan_waves(members: Iterable[ResourceAddress], strategy: Strategy,
               not_serving: Iterable[ResourceAddress] = ()) -> tuple[Wave, ...]:
    """The waves replacing ``members`` (replicas of one block), in a stable order: those not serving first."""
    idle = set(not_serving)
    ordered = sorted(set(members), key=lambda a: a._order())
    first = tuple(a for a in ordered if a in idle)
    rest = [a for a in ordered if a not in idle]
    if strategy.type == "recreate":
        return (Wave(unavailable=first + tuple(rest)),) if ordered else ()
    surge, unavailable = max(0, strategy.max_surge), max(0, strategy.max_unavailable)
    if surge + unavailable == 0:  # the schema refuses it; never loop forever on a hand-made plan file
        surge = 1
    waves: list[Wave] = []
    leading = first
    while rest or leading:
        down = tuple(rest[:unavailable])
        del rest[:unavailable]
        up = tuple(rest[:surge])
        del rest[:surge]
        waves.append(Wave(surge=up, unavailable=leading + down))
        leading = ()
    return tuple(waves)


def describe(rollouts: list[Rollout]) -> tuple[str, str]:
    """(text, Markdown) of the waves, shown before apply."""
    lines, md = [], []
    for r in rollouts:
        s = r.strategy
        head = (f"Rolling update of {r.block}: {len(r.members)} replica{'s' if len(r.members) != 1 else ''} in "
                f"{len(r.waves)} wave{'s' if len(r.waves) != 1 else ''}")
        how = ("recreate: every replica stops, then the new ones start" if s.type == "recreate" else
               f"max_surge {s.max_surge}, max_unavailable {s.max_unavailable}")
        lines.append(f"{head} ({how}); each new replica must be healthy within {_secs(s.healthy_deadline)}, "
                     f"old ones drain {_secs(s.drain_timeout)}; on failure: {s.on_failure}")
        md.append(f"#### {head}")
        md.append("")
        md.append(f"{how}; healthy within {_secs(s.healthy_deadline)}; drain {_secs(s.drain_timeout)}; "
                  f"on failure: **{s.on_failure}**")
        md.append("")
        md.append("| Wave | Successor first (surge) | Old one first (unavailable) |")
        md.append("| --- | --- | --- |")
        for i, w in enumerate(r.waves, 1):
            parts = []
            if w.unavailable:
                parts.append(f"stop {_names(w.unavailable)}, then start successors")
            if w.surge:
                parts.append(f"start successors of {_names(w.surge)}, then stop them")
            lines.append(f"  wave {i}: " + "; ".join(parts))
            md.append(f"| {i} | {_names(w.surge, '`') or '—'} | {_names(w.unavailable, '`') or '—'} |")
        md.append("")
    return "\n".join(lines), "\n".join(md).rstrip()


def _names(addrs: tuple[ResourceAddress, ...], quote: str = "") -> str:
    return ", ".join(f"{quote}{a}{quote}" for a in addrs)


def _secs(v: float) -> str:
    if v >= 60 and v % 60 == 0:
        return f"{int(v // 60)}m"
    return f"{v:g}s"


def summary(rollouts: list[Rollout]) -> Summary | None:
    """The plan's ``rollouts`` summary (``orch.rollouts`` in JSON; the executor reads its data)."""
    if not rollouts:
        return None
    text, md = describe(rollouts)
    concerns = frozenset(str(a) for r in rollouts for a in r.members)
    return Summary(NAME, text, {"rollouts": [r.to_json() for r in rollouts]}, concerns, any_change=True,
                   markdown=md)


def from_summary(data: Mapping[str, Any] | None) -> list[Rollout]:
    if not isinstance(data, Mapping):
        return []
    return [Rollout.from_json(r) for r in data.get("rollouts", ()) if isinstance(r, Mapping)]


def serving(status: Any) -> bool:
    """Whether a replica takes traffic now (its observed status); not observed counts as serving."""
    from .services import ready

    return ready(status)


def failed(status: Any) -> bool:
    """Whether a replica serves nothing and will not by itself: unreachable, stopped, or unhealthy (Docker
    never restarts an unhealthy container). A replica still starting is not failed: it serves soon."""
    if status is None:
        return False
    if not getattr(status, "reachable", True) or getattr(status, "state", "running") not in ("running", "degraded"):
        return True
    return any(getattr(m, "health", None) == "unhealthy" or getattr(m, "state", "running") not in
               ("running", "restarting") for m in getattr(status, "members", ()))


def away(addr: ResourceAddress, values: Mapping[str, Any], status: Mapping[ResourceAddress, Any]) -> bool:
    """Whether an object, or the node it is on (its ``node`` value), did not answer at plan time."""
    node = values.get("node")
    return not getattr(status.get(addr), "reachable", True) or (
        isinstance(node, str) and not getattr(status.get(ResourceAddress("node", node)), "reachable", True))


def gated(values: Mapping[str, Any] | None) -> Strategy | None:
    """The strategy of a replica whose block rolls: a new replica of it must be ready before what depends
    on it (its node's program: the service endpoints) goes on."""
    return Strategy.from_values(values.get("strategy")) if isinstance(values, Mapping) else None


def plan_rollouts(replaced: Mapping[ResourceAddress, Mapping[str, Any]],
                  status: Mapping[ResourceAddress, Any],
                  default: Strategy | None = None) -> list[Rollout]:
    """Group the replaced replicas (address -> planned values) by block; a block with a ``strategy`` (or the
    ``default``, for the reconciler's heal) rolls. Replicas of a block without one are left to the ordinary
    replacement."""
    by_block: dict[str, list[ResourceAddress]] = {}
    strategies: dict[str, Strategy] = {}
    for addr, values in replaced.items():
        strat = Strategy.from_values(values.get("strategy")) or default
        if strat is None:
            continue
        block = str(addr.config)
        by_block.setdefault(block, []).append(addr)
        strategies.setdefault(block, strat)
    out = []
    for block in sorted(by_block):
        members = by_block[block]
        idle = [a for a in members if failed(status.get(a))]
        out.append(Rollout(block, strategies[block], plan_waves(members, strategies[block], idle)))
    return out


__all__ = ["DEFAULT_DEADLINE", "DEFAULT_DRAIN", "NAME", "Rollout", "Strategy", "Wave", "away", "describe",
           "failed", "from_summary", "gated", "plan_rollouts", "plan_waves", "serving", "summary"]
