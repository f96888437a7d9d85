"""The dependency graph: cycles, order, rendering, concurrent walk."""

from __future__ import annotations

import threading
import time

from orchdsl import graph


def test_order_and_cycles():
    g = graph.build({"c": ["b"], "b": ["a"], "a": [], "d": []})
    assert graph.order(g) == ["a", "b", "c", "d"] or graph.order(g) == ["a", "d", "b", "c"]
    assert not graph.cycle_diagnostics(g)
    cyc = graph.build({"x": ["y"], "y": ["z"], "z": ["x"]})
    (d,) = graph.cycle_diagnostics(cyc)
    assert d.summary == "Cycle in dependencies" and "x" in d.detail and "->" in d.detail and d.hint


def test_dot_and_mermaid():
    g = graph.build({"pod.web": ["node.n1"], "node.n1": []})
    assert '"pod.web" -> "node.n1"' in graph.to_dot(g)
    assert "-->" in graph.to_mermaid(g) and "flowchart" in graph.to_mermaid(g)


def test_walk_runs_independent_work_concurrently_and_in_dependency_order():
    g = graph.build({"a": [], "b": [], "c": ["a", "b"]})
    both_running = threading.Barrier(2, timeout=5)  # a and b must be in flight at the same time
    order: list[str] = []

    def visit(n):
        if n in ("a", "b"):
            both_running.wait()
        order.append(n)

    res = graph.walk(g, visit, parallelism=10)
    assert set(res.outcome.values()) == {graph.OK}
    assert order[-1] == "c"


def test_walk_failure_skips_dependents_only():
    g = graph.build({"a": [], "b": ["a"], "c": []})

    def visit(n):
        if n == "a":
            raise RuntimeError("boom")

    res = graph.walk(g, visit)
    assert res.outcome == {"a": graph.FAILED, "b": graph.SKIPPED, "c": graph.OK}
    assert str(res.errors["a"]) == "boom"


def test_walk_stop_finishes_in_flight_and_starts_nothing_new():
    g = graph.build({"a": [], "b": ["a"]})
    stop = threading.Event()

    def visit(n):
        stop.set()
        time.sleep(0.02)

    res = graph.walk(g, visit, stop=stop)
    assert res.outcome == {"a": graph.OK, "b": graph.CANCELLED}
