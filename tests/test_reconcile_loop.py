"""`orch reconcile` cycles on the SDK's in-process provider: heal an unhealthy replica (rolling: successor
first), recreate a deleted one, restart a stopped one, leave configuration changes to apply, move the
replicas of a lost node and remove their stale objects when it answers again, and autoscale (HPA rule, the
plan never undoing it). The decisions themselves are tested in test_reconcile_decide.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchdsl.reconcile.loop import Reconciler, Settings
from orchdsl.state import LocalBackend
from tests.support.memory_provider import edit_world, memory_config_dir, orch, world_objects

NODES = "".join(f'node "n{i}" {{\n  address = "198.18.0.{10 + i}"\n}}\n' for i in (1, 2, 3))

WEB = NODES + """
variable "image" {
  default = "orch/busybox:v1"
}
pod "web" {
  %(count)s
  labels   = { app = "web" }
  container "httpd" {
    image = var.image
    resources {
      cpu = 0.5
    }
  }
}
service "web" {
  selector = { app = "web" }
  port     = 80
}
"""

UNHEALTHY = {"state": "degraded", "members": [{"name": "httpd", "health": "unhealthy", "failing_streak": 3,
                                                "last_output": "connection refused"}]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    d = memory_config_dir(tmp_path, monkeypatch)
    monkeypatch.setenv("ORCH_MEMORY_LOG", str(tmp_path / "calls.log"))
    return d


def world(cfg: Path) -> Path:
    return cfg.parent / "world"


def setup(cfg: Path, capsys, count: str = "replicas = 3") -> None:
    (cfg / "main.orch").write_text(WEB % {"count": count})
    code, _, err = orch(capsys, "apply", "-auto-approve", str(cfg))
    assert code == 0, err
    (cfg.parent / "calls.log").write_text("")


def reconciler(cfg: Path, clock: Clock | None = None, lost_after: float = 300.0) -> tuple[Reconciler, list]:
    lines: list = []
    rec = Reconciler(cfg, Settings(interval=1, lost_after=lost_after), lines.append, clock=clock or Clock())
    return rec, lines


def kinds(events) -> list[tuple[str, str]]:
    return [(e.kind, e.subject) for e in events]


def state_of(cfg: Path):
    return LocalBackend.for_config_dir(cfg).read()


def test_an_unhealthy_replica_leaves_the_endpoints_and_is_replaced(cfg, capsys):
    setup(cfg, capsys)
    old_id = world_objects(world(cfg))["pod.web[1]"]["id"]
    edit_world(world(cfg), "pod.web[1]", lambda a: None, status=UNHEALTHY)
    rec, lines = reconciler(cfg)
    result = rec.cycle()
    assert result.ok, lines
    assert ("replace", "pod.web[1]") in kinds(lines)
    assert 'last output: "connection refused"' in next(e.reason for e in lines if e.kind == "replace")
    assert any(e.kind == "endpoints" for e in lines)
    log = (cfg.parent / "calls.log").read_text().splitlines()
    # out of the endpoints before anything else; it serves nothing, so it goes before its successor comes
    assert log.index("update node_services.n1") < log.index("delete pod.web[1]") < log.index("create pod.web[1]")
    assert world_objects(world(cfg))["pod.web[1]"]["id"] != old_id
    # healed: the next cycle has nothing to do, and neither has the plan
    lines.clear()
    assert rec.cycle().ok and lines == []
    code, out, _ = orch(capsys, "plan", "--detailed-exitcode", str(cfg))
    assert code == 0, out


def test_deleted_replica_is_recreated_and_stopped_one_restarted(cfg, capsys):
    setup(cfg, capsys)
    edit_world(world(cfg), "pod.web[0]", None)
    edit_world(world(cfg), "pod.web[2]", lambda a: None, status={"state": "stopped", "members": [
        {"name": "httpd", "state": "exited", "exit_code": 1}]})
    rec, lines = reconciler(cfg)
    assert rec.cycle().ok, lines
    assert ("recreate", "pod.web[0]") in kinds(lines)
    assert ("restart", "pod.web[2]") in kinds(lines)
    assert "pod.web[0]" in world_objects(world(cfg))


def test_configuration_changes_are_left_to_apply_and_said_once(cfg, capsys):
    setup(cfg, capsys)
    (cfg / "main.orch").write_text((WEB % {"count": "replicas = 3"}).replace("busybox:v1", "busybox:v2"))
    rec, lines = reconciler(cfg)
    assert rec.cycle().ok
    assert kinds(lines) == [("pending", "configuration")]
    assert "3 change(s) not applied by the reconciler" in lines[0].reason
    assert rec.cycle().ok and len(lines) == 1  # a standing condition is said when it changes
    images = {o["container"][0]["image"] for a, o in world_objects(world(cfg)).items() if a.startswith("pod.")}
    assert images == {"orch/busybox:v1"}


def test_a_lost_nodes_replicas_move_and_its_stale_objects_go_when_it_answers(cfg, capsys, monkeypatch):
    setup(cfg, capsys)
    st = state_of(cfg)
    on = {i.attributes["node"]: str(i.addr) for i in st if i.type == "pod"}
    victim = on["n2"]
    clock = Clock()
    rec, lines = reconciler(cfg, clock, lost_after=60)
    monkeypatch.setenv("ORCH_MEMORY_DOWN", "n2")
    assert rec.cycle().ok, lines
    # not lost yet: nothing moves, but its replica leaves the other nodes' endpoints at once
    assert kinds(lines) == [("waiting", "node.n2"), ("endpoints", "node_services.n1, node_services.n3")]
    lines.clear()
    clock.now += 61
    result = rec.cycle()
    assert result.ok, lines
    assert ("lost", "node.n2") in kinds(lines) and ("reschedule", victim) in kinds(lines)
    inst = next(i for i in state_of(cfg) if str(i.addr) == victim)
    assert inst.attributes["node"] in ("n1", "n3") and inst.deposed  # the stale object stays recorded
    lines.clear()
    assert rec.cycle().ok and [k for k in kinds(lines) if k[0] != "waiting"] == []  # quiet while it is away
    monkeypatch.setenv("ORCH_MEMORY_DOWN", "")
    lines.clear()
    assert rec.cycle().ok, lines
    assert ("back", "node.n2") in kinds(lines) and ("remove", victim) in kinds(lines)
    assert not next(i for i in state_of(cfg) if str(i.addr) == victim).deposed
    assert len([a for a in world_objects(world(cfg)) if a == victim]) == 1
    code, out, _ = orch(capsys, "plan", "--detailed-exitcode", str(cfg))
    assert code == 0, out  # the replica stays where it went (stable placement)


def _usage(cfg: Path, cores: float) -> None:
    for a in world_objects(world(cfg)):
        if a.startswith("pod.web["):
            edit_world(world(cfg), a, lambda x: None, usage={"cpu": cores})


def test_autoscale_up_to_max_then_down_after_the_window(cfg, capsys):
    setup(cfg, capsys, 'autoscale {\n    min_replicas = 1\n    max_replicas = 4\n    target_cpu = 50\n'
                       '    scale_down_window = "30s"\n  }')
    assert sorted(a for a in world_objects(world(cfg)) if a.startswith("pod.")) == ["pod.web[0]"]
    clock = Clock()
    rec, lines = reconciler(cfg, clock)
    _usage(cfg, 0.5)  # 100% of the 0.5 request, target 50%: twice as many
    assert rec.cycle().ok, lines
    assert ("scale", "pod.web") in kinds(lines) and "1 -> 2" in lines[0].reason
    _usage(cfg, 0.5)
    clock.now += 5
    rec.cycle()
    assert len([a for a in world_objects(world(cfg)) if a.startswith("pod.web[")]) == 4  # 2 x 2 = 4 (max)
    # the plan does not undo the autoscaler, and says why
    code, out, _ = orch(capsys, "plan", "--detailed-exitcode", str(cfg))
    assert code == 0, out
    code, out, _ = orch(capsys, "plan", "-json", str(cfg))
    assert json.loads(out)["orch"]["autoscale"]["counts"]["pod.web"]["now"] == 4
    # idle: held by the window, then down to the minimum
    _usage(cfg, 0.0)
    lines.clear()
    clock.now += 5
    rec.cycle()
    assert [k for k in kinds(lines) if k[0] == "scale"] == []
    clock.now += 31
    _usage(cfg, 0.0)
    rec.cycle()
    assert ("scale", "pod.web") in kinds(lines)
    assert sorted(a for a in world_objects(world(cfg)) if a.startswith("pod.web[")) == ["pod.web[0]"]


def test_replicas_and_autoscale_together_is_an_error(cfg, capsys):
    (cfg / "main.orch").write_text(WEB % {"count": "replicas = 2\n  autoscale {\n    max_replicas = 3\n  }"})
    code, _, err = orch(capsys, "validate", str(cfg))
    assert code == 1 and 'Invalid combination of "replicas" and "autoscale"' in err


def test_reconcile_command_once_and_json(cfg, capsys):
    setup(cfg, capsys)
    edit_world(world(cfg), "pod.web[0]", lambda a: None, status=UNHEALTHY)
    code, out, err = orch(capsys, "reconcile", "--once", "--json", str(cfg))
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert {"replace", "endpoints"} <= {e["action"] for e in events}
    code, out, err = orch(capsys, "reconcile", "--interval", "0s", str(cfg))
    assert code == 1 and "Invalid --interval" in err
