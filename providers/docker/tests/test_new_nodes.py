"""Nodes orch has not recorded yet: their real capacity is read during plan (the provider's facts), so a first
plan rejects a pod that fits nowhere; `-refresh=false` reads nothing; and a node that cannot be used is
reported once per run, however many plan steps and changes meet it."""

from __future__ import annotations

import json

from orchdsl.addrs import ResourceAddress
from orchdsl.engine import workflow
from orchdsl.plan.planfile import decode_plan, encode_plan
from orchdsl.plan.render_text import render_plan_text

from docker_fakes import FakeCluster
from docker_helpers import Run, actions, apply, plan, state_of, write_config

A = ResourceAddress.parse

BIG = """
pod "big" {
  container "worker" {
    image   = "orch/busybox:test"
    command = ["sleep", "3600"]
    pull    = "never"
    resources {
      cpu    = %s
      memory = "64Mi"
    }
  }
}
"""


def test_a_first_plan_rejects_a_pod_that_fits_on_no_new_node(tmp_path):
    cluster = FakeCluster("n1", "n2", "n3")  # each reports 4 cores, 8 GiB
    write_config(tmp_path, replicas=0, extra=BIG % 64)
    p, diags = plan(tmp_path, cluster)
    errors = [d for d in diags if d.is_error]
    assert [d.summary for d in errors] == ["No node can run pod.big"], [d.render() for d in errors]
    for n in ("n1", "n2", "n3"):
        assert f"cpu exhausted on node.{n} (0 of 4 cores allocated, 64 requested)" in errors[0].detail
    assert all(e.containers == {} for e in cluster.engines.values())


def test_new_nodes_are_planned_with_what_they_report_and_record_it_as_reported(tmp_path):
    cluster = FakeCluster("n1", "n2", "n3")
    write_config(tmp_path, replicas=1, extra=BIG % 3)
    p, diags = plan(tmp_path, cluster)
    assert p is not None and not [d for d in diags if d.is_error], [d.render() for d in diags]
    n1 = next(c for c in p.changes if str(c.address) == "node.n1")
    assert n1.after["capacity"] == {"cpu": 4, "memory": 8 << 30}
    assert n1.after["engine_version"] == "20.10.24" and n1.after["id"] == "ENGINE-n1"
    text = render_plan_text(p, color=False)
    assert "\"cpu\"    = 4" in text  # shown as read, not "(known after apply)"
    assert "/4 (" in text  # the scheduler's table shows the real capacity
    _, outcome, _ = apply(tmp_path, cluster)
    assert outcome.ok, outcome.diagnostics
    node = state_of(tmp_path).get(A("node.n1"))
    assert node.attributes["capacity"] == {"cpu": 4, "memory": 8 << 30}
    assert node.private["reported"] == ["cpu", "memory"]  # refresh keeps following the host
    again, _ = plan(tmp_path, cluster)
    assert actions(again) == {} and not again.drift


def test_a_saved_plan_applied_by_a_new_process_records_reported_capacity(tmp_path):
    cluster = FakeCluster("n1", "n2", "n3")
    write_config(tmp_path, replicas=1)
    p, diags = Run(tmp_path, cluster).plan()
    assert p is not None and not [d for d in diags if d.is_error]
    p = decode_plan(json.loads(json.dumps(encode_plan(p))))  # through the plan file's format
    assert next(c for c in p.changes if str(c.address) == "node.n2").facts  # what the plan read ahead
    later = Run(tmp_path, cluster)  # a new provider: nothing kept from the plan
    assert not [d for d in workflow.prime(later.session, later.state) if d.is_error]
    outcome = workflow.apply(later.session, p, later.state, lambda s: None)
    assert outcome.ok, outcome.diagnostics
    assert state_of(tmp_path).get(A("node.n2")).private["reported"] == ["cpu", "memory"]


def test_refresh_false_connects_to_no_node(tmp_path):
    cluster = FakeCluster("n1", "n2", "n3")
    write_config(tmp_path, replicas=2, extra=BIG % 64)
    p, diags = plan(tmp_path, cluster, refresh=False)
    assert cluster.connects == []  # like Terraform's -refresh=false: nothing is read
    assert p is not None and not [d for d in diags if d.is_error]  # capacities unknown: no constraint
    n1 = next(c for c in p.changes if str(c.address) == "node.n1")
    assert n1.after["capacity"]["cpu"] is not None and n1.facts == []


def _told(diags, needle: str = "Connection refused") -> list:
    return [d for d in diags if needle in d.detail]


def test_a_new_node_that_cannot_be_reached_is_reported_once(tmp_path):
    cluster = FakeCluster("n1", "n2", "n3", unreachable=("n3",))
    write_config(tmp_path, replicas=3)
    _, diags = plan(tmp_path, cluster)
    assert len(_told(diags)) == 1 and _told(diags)[0].address == "node.n3"
    assert [d.address for d in diags if d.is_error] == ["node.n3"]
    assert cluster.connects.count("n3") == 1


def test_a_down_node_is_reported_in_full_once_per_run(tmp_path):
    cluster = FakeCluster("n1", "n2", "n3")
    write_config(tmp_path, replicas=3)
    apply(tmp_path, cluster)
    cluster.unreachable.add("n2")
    cluster.connects.clear()
    write_config(tmp_path, replicas=3, greeting='"bye"')  # every pod is replaced, n2's too
    run = Run(tmp_path, cluster)
    p, diags = run.plan()
    assert p is not None and len(_told(diags)) == 1 and _told(diags)[0].severity == "warning"
    outcome = workflow.apply(run.session, p, run.state, lambda line: None)
    failed = [d for d in outcome.diagnostics if d.is_error]
    assert len(failed) == 1 and failed[0].summary == "Node not available"
    assert "node.n2 is not available: Cannot reach node (see the diagnostic of node.n2)" in failed[0].detail
    assert _told(outcome.diagnostics) == []  # the story was told once, at plan
    assert cluster.connects.count("n2") == 1
