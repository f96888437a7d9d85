"""``orch reconcile``'s decisions: pure functions of what one cycle observed (and the time, an argument).

The loop (reading hosts, sleeping, applying) lives elsewhere; these decide, so that every rule is tested
without a host or a clock: :func:`decide_scale` (the Horizontal Pod Autoscaler's rule), :func:`heal` and
:func:`track_unreachable` (unhealthy replicas, lost nodes).
"""

from .autoscale import Recommendation, ScaleDecision, ScalePolicy, decide_scale
from .decide import Heal, NodeSeen, ReplicaView, heal, track_unreachable

__all__ = ["Heal", "NodeSeen", "Recommendation", "ReplicaView", "ScaleDecision", "ScalePolicy", "decide_scale",
           "heal", "track_unreachable"]
