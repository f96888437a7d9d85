"""Facts: what a provider reads, read-only, during plan about objects the state does not record yet (a new host's
capacity), so that the plan — the scheduler above all — works with real values instead of "known after apply".

The planner stays pure (facts are an input) and the engine generic (facts fill values a provider planned as
unknown, whatever they are); the provider reports those values again at apply.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from orchdsl.engine import workflow
from orchdsl.engine.planner import PlanOptions
from orchdsl.plan.model import Action
from orchdsl.sdk import UNKNOWN, ApplyRequest, ApplyResult, ChangeView, Facts, PlannedObject, ResourceAddress, World
from orchdsl.sdk.testing.memory import MemoryProvider

A = ResourceAddress.parse
REPORTED = {"cpu": 2, "memory": 1 << 30}

CONFIG = """
node "n1" {
  address = "h1"
  labels  = { zone = "a" }
}
node "n2" {
  address = "h2"
  labels  = { zone = "b" }
}
node "n3" {
  address = "h3"
  capacity {
    cpu = 1
  }
}
pod "web" {
  replicas = 2
  container "c" {
    image = "orch/busybox:test"
    resources {
      cpu = %s
    }
  }
}
"""


class Hosts(MemoryProvider):
    """A provider whose new nodes report their capacity (2 cores, 1 GiB), as Docker hosts do."""

    def __init__(self, world: Path):
        super().__init__(world)
        self.asked: list[list[str]] = []
        self.created: dict[str, dict[str, Any]] = {}

    def plan(self, address: ResourceAddress, prior: Any, config: dict[str, Any] | None) -> PlannedObject:
        planned = super().plan(address, prior, config)
        if address.type == "node" and prior is None and config is not None:
            cap = dict(planned.planned.get("capacity") or {})
            for dim in ("cpu", "memory"):
                cap.setdefault(dim, UNKNOWN)
            planned.planned["capacity"] = cap
        return planned

    def facts(self, world: World, new: list[ChangeView]) -> Facts:
        self.asked.append(sorted(str(c.address) for c in new))
        return Facts({c.address: {"capacity": REPORTED} for c in new if c.address.type == "node"})

    def create(self, request: ApplyRequest) -> ApplyResult:
        self.created[str(request.address)] = dict(request.planned or {})
        if request.address.type == "node":  # what the host reports, where the plan left it unknown
            cap = {k: REPORTED[k] if v is UNKNOWN else v for k, v in request.planned["capacity"].items()}
            request = replace(request, planned={**request.planned, "capacity": cap})
        return super().create(request)


def _session(tmp_path: Path, cpu: str) -> tuple[workflow.Session, Hosts]:
    cfg = tmp_path / "cfg"
    cfg.mkdir(exist_ok=True)
    (cfg / "main.orch").write_text(CONFIG % cpu)
    provider = Hosts(tmp_path / "world")
    return workflow.open_session(cfg, providers=[provider]), provider


def test_a_first_plan_uses_the_capacity_new_nodes_report(tmp_path):
    session, provider = _session(tmp_path, "64")
    the_plan, diags = workflow.plan(session, session.backend.read(), PlanOptions())
    errors = [d for d in diags if d.is_error]
    assert errors and all(d.summary.startswith("No node can run pod.web[") for d in errors), diags
    text = errors[0].detail
    assert "cpu exhausted on node.n1 (0 of 2 cores allocated, 64 requested)" in text
    assert "cpu exhausted on node.n3 (0 of 1 cores allocated, 64 requested)" in text  # configured wins
    assert provider.asked == [["node.n1", "node.n2", "node.n3", "pod.web[0]", "pod.web[1]"]]


def test_facts_show_in_the_plan_and_are_reported_again_at_apply(tmp_path):
    session, provider = _session(tmp_path, "1.5")
    state = session.backend.read()
    the_plan, diags = workflow.plan(session, state, PlanOptions())
    assert the_plan is not None and not [d for d in diags if d.is_error], diags
    changes = {str(c.address): c for c in the_plan.changes}
    n1, n3 = changes["node.n1"], changes["node.n3"]
    assert n1.action is Action.CREATE and n1.after["capacity"] == {"cpu": 2, "memory": 1 << 30}
    assert sorted(n1.facts) == [("capacity", "cpu"), ("capacity", "memory")]
    assert n3.after["capacity"] == {"cpu": 1, "memory": 1 << 30} and n3.facts == [("capacity", "memory")]
    # 1.5 cores fit on the 2-core nodes only
    assert {changes[f"pod.web[{i}]"].after["node"] for i in range(2)} == {"n1", "n2"}
    outcome = workflow.apply(session, the_plan, state, lambda s: None)
    assert outcome.ok, outcome.diagnostics
    # the provider gets the values it planned (unknown: to report), not what the plan read ahead of it
    assert provider.created["node.n1"]["capacity"] == {"cpu": UNKNOWN, "memory": UNKNOWN}
    assert provider.created["node.n3"]["capacity"] == {"cpu": 1, "memory": UNKNOWN}


def test_refresh_false_reads_nothing(tmp_path):
    session, provider = _session(tmp_path, "64")
    the_plan, diags = workflow.plan(session, session.backend.read(), PlanOptions(refresh=False))
    assert provider.asked == []  # like Terraform's -refresh=false: no reads at all
    assert the_plan is not None and not [d for d in diags if d.is_error]  # capacity unknown: no constraint
    n1 = next(c for c in the_plan.changes if str(c.address) == "node.n1")
    assert n1.after["capacity"]["cpu"] is UNKNOWN and n1.facts == []


def test_no_facts_asked_when_nothing_is_new(tmp_path):
    session, provider = _session(tmp_path, "0.5")
    state = session.backend.read()
    the_plan, _ = workflow.plan(session, state, PlanOptions())
    assert workflow.apply(session, the_plan, state, lambda s: None).ok
    provider.asked.clear()
    again, diags = workflow.plan(session, session.backend.read(), PlanOptions())
    assert again is not None and not again.has_changes
    assert provider.asked == []
