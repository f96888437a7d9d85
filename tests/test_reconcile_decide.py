"""orch reconcile's pure decisions: the autoscaler's rule (tolerance, ceil, bounds, stabilization window) and
healing (unhealthy replicas, unreachable and lost nodes). No host, no clock: the time is an argument."""

from __future__ import annotations

import pytest

from orchdsl.addrs import ResourceAddress
from orchdsl.reconcile import (Heal, NodeSeen, Recommendation, ReplicaView, ScalePolicy, decide_scale, heal,
                               track_unreachable)


def policy(lo: int = 1, hi: int = 10, target: float = 50, window: float = 300, tolerance: float = 0.1) -> ScalePolicy:
    return ScalePolicy(min_replicas=lo, max_replicas=hi, target_cpu=target, scale_down_window=window,
                       tolerance=tolerance)


def recs(*pairs: tuple[float, int]) -> tuple[Recommendation, ...]:
    return tuple(Recommendation(at, n) for at, n in pairs)


# -- autoscale: the ratio, the tolerance, the bounds --------------------------------------------------------

@pytest.mark.parametrize("usage", [45.0, 50.0, 52.0, 55.0])  # 55/50 - 1 is 0.1 plus float noise: still within
def test_within_tolerance_no_change(usage):
    d, hist = decide_scale(2, [usage, usage], policy(), (), now=1000)
    assert (d.desired, d.recommendation) == (2, 2)
    assert d.reason == f"cpu {usage:.0f}% within 10% of target 50%: stays at 2"
    assert hist == recs((1000, 2))


@pytest.mark.parametrize(("current", "usages", "desired"), [
    (2, [90, 90], 4),            # 2 x 1.8 = 3.6 -> 4
    (3, [60, 60, 60], 4),        # 3 x 1.2 = 3.6 -> 4
    (4, [100] * 4, 8),           # exactly 2x: 8, not 9 (no float noise added)
    (3, [70, 80, 90], 5),        # average 80: 3 x 1.6 = 4.8 -> 5
])
def test_scale_up_by_ceil(current, usages, desired):
    d, _ = decide_scale(current, usages, policy(), (), now=0)
    assert d.desired == d.recommendation == desired
    assert d.reason.endswith(f": {current} -> {desired} replicas")


def test_scale_up_capped_at_max():
    d, hist = decide_scale(2, [180, 180], policy(hi=4), (), now=0)
    assert (d.desired, d.recommendation, d.usage) == (4, 4, 180)
    assert d.reason == "cpu 180% of request (target 50%): 2 -> 4 replicas (capped at max_replicas 4)"
    assert hist == recs((0, 4))


def test_scale_down_floored_at_min():
    d, _ = decide_scale(4, [5] * 4, policy(lo=2, window=0), (), now=0)  # 4 x 0.1 = 0.4 -> 1, floor 2
    assert d.desired == d.recommendation == 2
    assert d.reason == "cpu 5% of request (target 50%): 4 -> 2 replicas (floored at min_replicas 2)"


@pytest.mark.parametrize(("current", "lo", "hi", "desired"), [
    (8, 1, 4, 4),   # max lowered below current: down at once, although the load is on target
    (1, 3, 10, 3),  # min raised above current: up at once
])
def test_current_outside_the_range_after_a_configuration_change(current, lo, hi, desired):
    history = recs((900, current))  # a higher recommendation in the window does not hold a lowered max
    d, _ = decide_scale(current, [50] * current, policy(lo=lo, hi=hi), history, now=1000)
    assert d.desired == desired


def test_no_measurement_no_change_and_nothing_recorded():
    history = recs((900, 3))
    d, hist = decide_scale(2, [None, None], policy(), history, now=1000)
    assert (d.desired, d.usage) == (2, None)
    assert d.reason == "no CPU measurement: stays at 2"
    assert hist == history  # an outage of the metrics neither holds nor releases a scale-down


def test_no_measurement_still_applies_the_bounds():
    d, _ = decide_scale(6, [], policy(hi=4), (), now=0)
    assert d.desired == 4
    assert d.reason == "no CPU measurement: 6 -> 4 replicas (capped at max_replicas 4)"


@pytest.mark.parametrize("bad", [None, float("nan"), float("inf"), -5.0])
def test_partial_measurements_average_over_the_measured_ones(bad):
    d, _ = decide_scale(3, [100, bad, 80], policy(), (), now=0)  # average 90, not 60: 3 x 1.8 = 5.4 -> 6
    assert (d.usage, d.desired) == (90, 6)
    assert d.reason == "cpu 90% of request over 2 of 3 replicas (target 50%): 3 -> 6 replicas"


# -- autoscale: the stabilization window ----------------------------------------------------------------

def test_scale_down_held_by_a_higher_recommendation_inside_the_window():
    history = recs((800, 3), (900, 2))
    d, hist = decide_scale(4, [10] * 4, policy(), history, now=1000)  # recommends 1
    assert (d.recommendation, d.desired) == (1, 3)
    assert d.reason == ("cpu 10% of request (target 50%) recommends 1; scale-down held: highest recommendation "
                        "in the last 300s is 3: 4 -> 3 replicas")
    assert hist == recs((800, 3), (900, 2), (1000, 1))


def test_scale_down_held_never_above_current():
    d, _ = decide_scale(2, [10, 10], policy(), recs((900, 5)), now=1000)
    assert d.desired == 2
    assert d.reason.endswith("highest recommendation in the last 300s is 5: stays at 2")


def test_scale_down_released_once_the_window_has_passed():
    history = recs((700, 3), (800, 2))
    # at 1000 the recommendation of 700 is exactly 300s old: out of the window (at > now - window)
    d, hist = decide_scale(4, [10] * 4, policy(), history, now=1000)
    assert d.desired == 2 and Recommendation(700, 3) not in hist
    d, hist = decide_scale(2, [10, 10], policy(), hist, now=1101)
    assert d.desired == 1
    assert hist == recs((1101, 1))


def test_a_held_scale_down_still_respects_a_lowered_max():
    d, _ = decide_scale(8, [10] * 8, policy(hi=6), recs((900, 7)), now=1000)
    assert (d.recommendation, d.desired) == (2, 6)
    assert d.reason.endswith("highest recommendation in the last 300s is 7 (capped at max_replicas 6): 8 -> 6 replicas")


@pytest.mark.parametrize(("tolerance", "desired"), [(0.0, 3), (0.25, 2)])
def test_the_tolerance_is_the_policy_s(tolerance, desired):
    d, _ = decide_scale(2, [60, 60], policy(tolerance=tolerance), (), now=0)  # ratio 1.2: 2 x 1.2 = 2.4 -> 3
    assert d.desired == desired and d.changed == (desired != 2)


def test_window_zero_scales_down_at_once():
    d, _ = decide_scale(4, [10] * 4, policy(window=0), recs((999.5, 4)), now=1000)
    assert d.desired == 1
    assert d.reason == "cpu 10% of request (target 50%): 4 -> 1 replicas"


def test_scale_up_is_immediate_whatever_the_history():
    d, _ = decide_scale(2, [150, 150], policy(), recs((990, 1), (995, 2)), now=1000)
    assert d.desired == 6


def test_history_stays_bounded_over_many_cycles():
    hist: tuple[Recommendation, ...] = ()
    p = policy(lo=1, hi=10)
    for i in range(2000):  # one cycle a second, load going up and down
        d, hist = decide_scale(5, [20 + (i * 37) % 100], p, hist, now=float(i))
        assert len(hist) <= p.max_replicas - p.min_replicas + 1
        assert all(r.at > i - p.scale_down_window for r in hist)


@pytest.mark.parametrize(("usages", "desired"), [([], 2), ([90], 2)])
def test_current_zero_is_brought_up_to_min(usages, desired):
    d, _ = decide_scale(0, usages, policy(lo=2), (), now=0)
    assert (d.current, d.desired) == (0, desired)


@pytest.mark.parametrize("kwargs", [dict(lo=5, hi=4), dict(lo=-1), dict(lo=0, hi=0), dict(target=0),
                                    dict(window=-1), dict(tolerance=-0.1)])
def test_an_impossible_policy_is_refused(kwargs):
    with pytest.raises(ValueError):
        policy(**kwargs)


# -- heal -----------------------------------------------------------------------------------------------

def replica(addr: str, health: str | None = "healthy", state: str = "running", node: str | None = "n1",
            reachable: bool = True, detail: str = "") -> ReplicaView:
    return ReplicaView(ResourceAddress.parse(addr), node, state, reachable, health, detail)


def test_unhealthy_reachable_replicas_are_replaced_in_address_order():
    h = heal([replica("pod.web[10]", "unhealthy"), replica("pod.api", "unhealthy", state="degraded"),
              replica("pod.web[2]", "unhealthy", detail="3 failing checks,\n last output: connection refused")],
             {}, now=100, lost_after=60)
    assert [str(a) for a, _ in h.replace] == ["pod.api", "pod.web[2]", "pod.web[10]"]
    assert h.replace[1][1] == "unhealthy: 3 failing checks, last output: connection refused"
    assert h.replace[0][1] == "unhealthy: its health check failed all its retries"
    assert (h.lost_nodes, h.waiting) == ((), ())


@pytest.mark.parametrize(("health", "state"), [
    ("healthy", "running"), ("starting", "running"), (None, "running"),  # fine, not decided yet, no check
    ("unhealthy", "stopped"), ("unhealthy", "missing"), ("unhealthy", "unknown"),  # the plan's job, or a guess
])
def test_not_replaced(health, state):
    assert heal([replica("pod.web[0]", health, state)], {}, now=100, lost_after=60) == Heal((), (), ())


def test_replicas_on_an_unreachable_node_are_not_replaced_one_by_one():
    replicas = [replica("pod.web[0]", "unhealthy", node="n2", reachable=False),
                replica("pod.web[1]", "unhealthy", node="n2")]  # read before n2 went away: still not replaced
    h = heal(replicas, {"n2": 90}, now=100, lost_after=60)
    assert h.replace == ()
    assert h.waiting == (("n2", "unreachable for 10s; lost after 60s"),)


@pytest.mark.parametrize(("first", "lost"), [(40.0, True), (40.5, False), (38.0, True), (99.5, False)])
def test_a_node_is_lost_after_lost_after_exactly_at_the_boundary(first, lost):
    h = heal([], {"n1": first}, now=100, lost_after=60)
    assert (len(h.lost_nodes), len(h.waiting)) == ((1, 0) if lost else (0, 1))
    if first == 40.0:
        assert h.lost_nodes == (("n1", "unreachable for 60s (lost after 60s)"),)
    if first == 40.5:
        assert h.waiting == (("n1", "unreachable for 59s; lost after 60s"),)  # 59.5s: never shown as 60s


def test_lost_and_waiting_nodes_are_sorted_by_name():
    h = heal([replica("pod.a", node="c", reachable=False)], {"b": 0, "a": 10, "d": 95}, now=100, lost_after=60)
    assert [n for n, _ in h.lost_nodes] == ["a", "b"]
    # c: its replica could not be read but it is not tracked yet: it waits from now
    assert h.waiting == (("c", "unreachable for 0s; lost after 60s"), ("d", "unreachable for 5s; lost after 60s"))


def test_track_unreachable_keeps_the_first_time_and_drops_recovered_nodes():
    since = track_unreachable({}, [NodeSeen("a", False), NodeSeen("b", True)], now=10)
    assert since == {"a": 10}
    since = track_unreachable(since, [NodeSeen("a", False), NodeSeen("b", False), NodeSeen("c", True)], now=20)
    assert since == {"a": 10, "b": 20}
    since = track_unreachable(since, [NodeSeen("a", True), NodeSeen("b", False)], now=30)
    assert since == {"b": 20}
    since = track_unreachable(since, [NodeSeen("a", False)], now=40)  # a again: a new count; b removed
    assert since == {"a": 40}
