"""How many replicas a pod should have: the Kubernetes Horizontal Pod Autoscaler's rule, as a pure function.

``orch reconcile`` measures each replica's CPU use, calls :func:`decide_scale` once per cycle with the
recommendations it kept from earlier cycles, and keeps the history it returns for the next call. Nothing here
reads a clock or a host: the time is an argument, so that the rule can be tested (and replayed) exactly.

The rule (https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/#algorithm-details):

- ratio = average CPU use / target; within the tolerance (|ratio - 1| <= 0.1 by default) nothing changes, so
  that a load hovering around the target does not make replicas come and go;
- otherwise the recommendation is ceil(current x ratio), clamped into [min_replicas, max_replicas];
- a scale-up applies at once; a scale-down goes no lower than the highest recommendation of the last
  ``scale_down_window`` seconds (the stabilization window), so that a short dip in load does not remove
  replicas a spike a minute later needs again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# Float noise: 3 x (60 / 50) is 3.5999999999999996 or 3.6000000000000005 depending on the order of the
# operations; ceil must not add a replica for the last bit, nor the tolerance test flip on it (55 / 50 - 1 is
# 0.10000000000000009, "within 10%" for a person).
_EPSILON = 1e-9


@dataclass(frozen=True)
class ScalePolicy:
    """A pod's autoscaling settings."""

    min_replicas: int
    max_replicas: int
    target_cpu: float          # percent of the CPU request (e.g. 50 = half the requested cores)
    scale_down_window: float   # seconds (Kubernetes' scale-down stabilization window, default 300)
    tolerance: float = 0.1     # no change while |usage/target - 1| <= tolerance

    def __post_init__(self) -> None:
        # The configuration's schema checks these for a person; here they guard the arithmetic (a target of 0
        # divides by zero, min > max has no answer).
        if self.min_replicas < 0 or self.max_replicas < max(self.min_replicas, 1):
            raise ValueError(f"replicas range [{self.min_replicas}, {self.max_replicas}]: need "
                             "0 <= min_replicas <= max_replicas and max_replicas >= 1")
        if not (math.isfinite(self.target_cpu) and self.target_cpu > 0):
            raise ValueError(f"target_cpu {self.target_cpu}: must be a positive percentage")
        if not (math.isfinite(self.scale_down_window) and self.scale_down_window >= 0):
            raise ValueError(f"scale_down_window {self.scale_down_window}: must be >= 0 seconds")
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise ValueError(f"tolerance {self.tolerance}: must be >= 0")

    def clamp(self, replicas: int) -> int:
        return min(max(replicas, self.min_replicas), self.max_replicas)


@dataclass(frozen=True)
class Recommendation:
    """One cycle's recommendation (already clamped), kept for the stabilization window."""

    at: float        # time (seconds, monotonic or wall, the caller's clock)
    replicas: int


@dataclass(frozen=True)
class ScaleDecision:
    current: int
    desired: int                 # what to set (== current: no change)
    recommendation: int          # this sample's recommendation, clamped into [min, max], before the window
    usage: float | None          # average CPU use in percent of the request over the measured replicas
    reason: str                  # one line for a person

    @property
    def changed(self) -> bool:
        return self.desired != self.current


def _pct(value: float) -> str:
    return f"{value:.0f}%"


def _num(value: float) -> str:
    # 50.0 -> "50", 12.5 -> "12.5", 0.1 * 100 -> "10" (not 10.000000000000002)
    return f"{round(value, 6):g}"


def _measured(usages: Sequence[float | None]) -> list[float]:
    # A missing reading is not a zero: averaging it in would scale down a pod because its metrics are late.
    # Non-finite or negative readings are broken ones: one inf must not scale a pod to max_replicas.
    return [u for u in usages if u is not None and math.isfinite(u) and u >= 0]


def _window(history: Sequence[Recommendation], policy: ScalePolicy, now: float) -> list[Recommendation]:
    """The recommendations still inside the window: made after now - scale_down_window."""
    start = now - policy.scale_down_window
    return [r for r in history if r.at > start]


def _compact(history: Sequence[Recommendation]) -> tuple[Recommendation, ...]:
    """Drop the recommendations that can no longer be the highest of any window: one followed by a later one
    at least as high (the later one stays in every window the earlier one is in). What remains is strictly
    decreasing in replicas, so at most max_replicas - min_replicas + 1 entries, whatever the cycle rate."""
    kept: list[Recommendation] = []
    for r in sorted(history, key=lambda r: r.at):
        while kept and kept[-1].replicas <= r.replicas:
            kept.pop()
        kept.append(r)
    return tuple(kept)


def _bounds_note(raw: int, clamped: int, policy: ScalePolicy) -> str:
    if clamped < raw:
        return f" (capped at max_replicas {policy.max_replicas})"
    if clamped > raw:
        return f" (floored at min_replicas {policy.min_replicas})"
    return ""


def _outcome(current: int, desired: int) -> str:
    return f"{current} -> {desired} replicas" if desired != current else f"stays at {current}"


def decide_scale(current: int, usages: Sequence[float | None], policy: ScalePolicy,
                 history: Sequence[Recommendation], now: float) -> tuple[ScaleDecision, tuple[Recommendation, ...]]:
    """This cycle's scale decision, and the history to pass to the next call.

    ``usages``: each replica's CPU use in percent of its request, None where it was not measured. ``history``:
    what the previous call returned (empty the first time). ``current`` may be 0 (no replica yet: brought up
    to min_replicas) or outside [min, max] after a configuration change (clamped into it at once)."""
    if current < 0:
        raise ValueError(f"current {current}: a number of replicas is >= 0")
    in_window = _window(history, policy, now)
    measured = _measured(usages)

    if not measured:
        # No information: no recommendation is recorded (as Kubernetes, which skips the cycle), so an outage of
        # the metrics neither holds nor releases a scale-down. A min/max change still applies.
        desired = policy.clamp(current)
        note = _bounds_note(current, desired, policy)
        reason = f"no CPU measurement: {_outcome(current, desired)}{note}"
        return (ScaleDecision(current, desired, desired, None, reason), _compact(in_window))

    usage = sum(measured) / len(measured)
    ratio = usage / policy.target_cpu
    over = f" over {len(measured)} of {len(usages)} replicas" if len(measured) < len(usages) else ""
    cpu = f"cpu {_pct(usage)} of request{over} (target {_num(policy.target_cpu)}%)"

    if abs(ratio - 1) <= policy.tolerance + _EPSILON:
        raw = current
        cpu = (f"cpu {_pct(usage)}{over} within {_num(policy.tolerance * 100)}% of target "
               f"{_num(policy.target_cpu)}%")
    else:
        raw = math.ceil(current * ratio - _EPSILON)
    recommendation = policy.clamp(raw)
    note = _bounds_note(raw, recommendation, policy)

    if recommendation >= current:
        # Scale-up (or no change) applies at once: under load, waiting costs requests.
        desired = recommendation
        reason = f"{cpu}: {_outcome(current, desired)}{note}"
    else:
        # Scale-down: no lower than the highest recommendation of the window, never above current (a held
        # scale-down is not a scale-up). Clamped again: an older recommendation may predate a lower
        # max_replicas, and a configuration change applies at once.
        highest = max([recommendation] + [r.replicas for r in in_window])
        desired = policy.clamp(min(current, highest))
        if desired > recommendation:
            held = (f"; scale-down held: highest recommendation in the last {_num(policy.scale_down_window)}s "
                    f"is {highest}")
            if desired < min(current, highest):
                held += f" (capped at max_replicas {policy.max_replicas})"
            reason = f"{cpu} recommends {recommendation}{note}{held}: {_outcome(current, desired)}"
        else:
            reason = f"{cpu}: {_outcome(current, desired)}{note}"

    kept = _compact([*in_window, Recommendation(now, recommendation)])
    return (ScaleDecision(current, desired, recommendation, usage, reason), kept)
