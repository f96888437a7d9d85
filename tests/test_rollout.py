"""Rolling updates: the waves (pure) for every surge/unavailable combination, and the executor carrying them
out on the SDK's in-process provider — order of steps, health gates, rollback, pause, plan files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchdsl.addrs import ResourceAddress
from orchdsl.cluster.rollout import Rollout, Strategy, Wave, plan_rollouts, plan_waves
from orchdsl.sdk import MemberStatus, ObjectStatus
from tests.support.memory_provider import memory_config_dir, orch, world_objects

A = [ResourceAddress.parse(f"pod.web[{i}]") for i in range(6)]


# -- waves (pure) ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("surge,unavailable", [(1, 0), (0, 1), (1, 1), (2, 0), (0, 2), (2, 1), (3, 3), (10, 0)])
def test_waves_respect_the_budget_and_cover_every_replica_once(n, surge, unavailable):
    waves = plan_waves(A[:n], Strategy(max_surge=surge, max_unavailable=unavailable))
    members = [a for w in waves for a in w.members]
    assert sorted(members) == sorted(A[:n]) and len(members) == n  # each exactly once
    for w in waves:
        assert len(w.surge) <= surge and len(w.unavailable) <= unavailable  # replicas+surge, replicas-unavailable
        assert w.members
    assert len(waves) == -(-n // (surge + unavailable))  # as few waves as the budget allows


def test_waves_go_in_index_order_unavailable_first_in_a_wave():
    waves = plan_waves(reversed(A[:4]), Strategy(max_surge=1, max_unavailable=1))
    assert waves == (Wave(surge=(A[1],), unavailable=(A[0],)), Wave(surge=(A[3],), unavailable=(A[2],)))


def test_replicas_not_serving_go_first_outside_the_budget():
    waves = plan_waves(A[:4], Strategy(max_surge=1, max_unavailable=0), not_serving=[A[2], A[3]])
    assert waves[0] == Wave(surge=(A[0],), unavailable=(A[2], A[3]))
    assert waves[1:] == (Wave(surge=(A[1],)),)


def test_recreate_is_one_wave_of_unavailable_replicas():
    assert plan_waves(A[:3], Strategy(type="recreate")) == (Wave(unavailable=tuple(A[:3])),)


def test_zero_budget_from_a_hand_made_plan_still_progresses():
    assert len(plan_waves(A[:2], Strategy(max_surge=0, max_unavailable=0))) == 2


def test_rollouts_group_by_block_and_skip_blocks_without_strategy():
    other = ResourceAddress.parse("pod.db[0]")
    replaced = {A[0]: {"strategy": {"max_surge": 1}}, A[1]: {"strategy": {"max_surge": 1}}, other: {}}
    unhealthy = ObjectStatus("degraded", members=(MemberStatus("httpd", "running", health="unhealthy"),))
    starting = ObjectStatus("running", members=(MemberStatus("httpd", "running", health="starting"),))
    assert plan_rollouts(replaced, {A[0]: starting})[0].waves[0] == Wave(surge=(A[0],))  # soon serving: in turn
    rollouts = plan_rollouts(replaced, {A[1]: unhealthy})
    assert [r.block for r in rollouts] == ["pod.web"]
    assert rollouts[0].waves[0].unavailable == (A[1],)  # the unhealthy one first
    healed = plan_rollouts(replaced, {}, default=Strategy())
    assert [r.block for r in healed] == ["pod.db", "pod.web"]


def test_rollout_round_trips_through_json():
    r = Rollout("pod.web", Strategy(max_surge=2, max_unavailable=1, healthy_deadline=30, on_failure="pause",
                                    drain_timeout=1.5), plan_waves(A[:5], Strategy(max_surge=2, max_unavailable=1)))
    assert Rollout.from_json(json.loads(json.dumps(r.to_json()))) == r


# -- through the engine ----------------------------------------------------------------------------------------

NODES = "".join(f'node "n{i}" {{\n  address = "198.18.0.{10 + i}"\n}}\n' for i in (1, 2))


def config(surge: int = 1, unavailable: int = 0, on_failure: str = "rollback", kind: str = "rolling") -> str:
    return NODES + f"""
variable "image" {{
  default = "orch/busybox:v1"
}}
variable "bad_index" {{
  type    = number
  default = -1
}}
pod "web" {{
  replicas = 4
  labels   = {{ app = "web" }}
  container "httpd" {{
    image = count.index == var.bad_index ? "orch/busybox:unhealthy" : var.image
  }}
  strategy {{
    type             = "{kind}"
    max_surge        = {surge}
    max_unavailable  = {unavailable}
    healthy_deadline = "2s"
    drain_timeout    = "0s"
    on_failure       = "{on_failure}"
  }}
}}
service "web" {{
  selector = {{ app = "web" }}
  port     = 80
}}
"""


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    d = memory_config_dir(tmp_path, monkeypatch)
    monkeypatch.setenv("ORCH_MEMORY_LOG", str(tmp_path / "calls.log"))
    return d


def setup(cfg: Path, capsys, text: str) -> Path:
    (cfg / "main.orch").write_text(text)
    code, _, err = orch(capsys, "apply", "-auto-approve", str(cfg))
    assert code == 0, err
    log = Path(str(cfg.parent / "calls.log"))
    log.write_text("")
    return log


def images(cfg: Path) -> dict[str, str]:
    world = world_objects(cfg.parent / "world")
    assert len([a for a in world if a.startswith("pod.")]) == 4  # never more than the replicas when settled
    return {a: o["container"][0]["image"] for a, o in world.items() if a.startswith("pod.")}


def calls(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if "pod.web" in line or "node_services" in line]


def test_plan_shows_the_waves_in_text_markdown_and_json(cfg, capsys):
    setup(cfg, capsys, config(surge=2, unavailable=1))
    code, out, _ = orch(capsys, "plan", "-var", "image=orch/busybox:v2", str(cfg))
    assert "Rolling update of pod.web: 4 replicas in 2 waves (max_surge 2, max_unavailable 1)" in out
    assert "wave 1: stop pod.web[0], then start successors; start successors of pod.web[1], pod.web[2]" in out
    assert "wave 2: stop pod.web[3], then start successors" in out
    code, out, _ = orch(capsys, "plan", "-json", "-var", "image=orch/busybox:v2", str(cfg))
    waves = json.loads(out)["orch"]["rollouts"]["rollouts"][0]["waves"]
    assert waves == [{"surge": ["pod.web[1]", "pod.web[2]"], "unavailable": ["pod.web[0]"]},
                     {"surge": [], "unavailable": ["pod.web[3]"]}]
    code, out, _ = orch(capsys, "plan", "--format", "markdown", "-var", "image=orch/busybox:v2", str(cfg))
    assert "#### Rolling update of pod.web" in out and "| 1 | `pod.web[1]`, `pod.web[2]` | `pod.web[0]` |" in out


def test_surge_creates_the_successor_before_the_old_one_goes(cfg, capsys):
    log = setup(cfg, capsys, config(surge=1, unavailable=0))
    code, out, err = orch(capsys, "apply", "-auto-approve", "-var", "image=orch/busybox:v2", str(cfg))
    assert code == 0, err
    steps = calls(log)
    for i in range(4):
        create, delete = steps.index(f"create pod.web[{i}]"), steps.index(f"delete pod.web[{i}]")
        assert create < delete
        # the node programs change between the successor being ready and the old one going
        assert any(s.startswith("update node_services") for s in steps[create:delete])
        if i:
            assert steps.index(f"delete pod.web[{i - 1}]") < create  # one wave after the other
    assert set(images(cfg).values()) == {"orch/busybox:v2"}
    assert "Apply complete! Resources: 4 added, 2 changed, 4 destroyed." in out
    code, out, _ = orch(capsys, "plan", "--detailed-exitcode", "-var", "image=orch/busybox:v2", str(cfg))
    assert code == 0, out


def test_unavailable_leaves_the_endpoints_and_goes_before_its_successor(cfg, capsys):
    log = setup(cfg, capsys, config(surge=0, unavailable=1))
    code, _, err = orch(capsys, "apply", "-auto-approve", "-var", "image=orch/busybox:v2", str(cfg))
    assert code == 0, err
    steps = calls(log)
    for i in range(4):
        delete, create = steps.index(f"delete pod.web[{i}]"), steps.index(f"create pod.web[{i}]")
        assert delete < create
        assert steps[delete - 1].startswith("update node_services")  # out of the endpoints, then stopped
    assert set(images(cfg).values()) == {"orch/busybox:v2"}


def test_a_replica_never_healthy_rolls_every_replica_back(cfg, capsys):
    setup(cfg, capsys, config(surge=1, unavailable=0))
    code, out, err = orch(capsys, "apply", "-auto-approve", "-var", "image=orch/busybox:v2", "-var", "bad_index=2",
                          str(cfg))
    assert code == 1
    assert "pod.web[2] did not become healthy within 2s: is unhealthy: 3 failing checks" in err
    assert 'last output: "connection refused"' in err
    assert "rolled back: every replica runs the previous version" in out
    assert sorted(images(cfg).values()) == ["orch/busybox:v1"] * 4  # exactly four, all old
    code, out, _ = orch(capsys, "plan", "--detailed-exitcode", "-var", "image=orch/busybox:v2",
                        "-var", "bad_index=2", str(cfg))
    assert code == 2 and "Rolling update of pod.web: 4 replicas" in out  # the change is still pending
    code, out, _ = orch(capsys, "plan", "--detailed-exitcode", str(cfg))
    assert code == 0, out  # and the state is exact: nothing to do for the old version


def test_pause_keeps_the_replicas_already_replaced(cfg, capsys):
    setup(cfg, capsys, config(surge=0, unavailable=1, on_failure="pause"))
    code, _, err = orch(capsys, "apply", "-auto-approve", "-var", "image=orch/busybox:v2", "-var", "bad_index=2",
                        str(cfg))
    assert code == 1 and "pod.web[2] did not become healthy" in err
    got = images(cfg)
    assert sorted(got.values()) == ["orch/busybox:v1"] * 2 + ["orch/busybox:v2"] * 2
    assert got["pod.web[2]"] == "orch/busybox:v1"  # the failed wave undone: remade with the old version


def test_a_saved_plan_rolls_too(cfg, capsys, tmp_path):
    log = setup(cfg, capsys, config(surge=1, unavailable=0))
    planfile = tmp_path / "p.plan"
    code, _, err = orch(capsys, "plan", "-var", "image=orch/busybox:v2", "--out", str(planfile), str(cfg))
    assert code == 0, err
    code, out, err = orch(capsys, "apply", str(planfile))
    assert code == 0, err
    assert "pod.web: wave 4/4: pod.web[3]" in out
    steps = calls(log)
    assert steps.index("create pod.web[0]") < steps.index("delete pod.web[0]")


def test_recreate_stops_every_replica_first(cfg, capsys):
    log = setup(cfg, capsys, config(kind="recreate"))
    code, _, err = orch(capsys, "apply", "-auto-approve", "-var", "image=orch/busybox:v2", str(cfg))
    assert code == 0, err
    steps = calls(log)
    last_delete = max(steps.index(f"delete pod.web[{i}]") for i in range(4))
    first_create = min(steps.index(f"create pod.web[{i}]") for i in range(4))
    assert last_delete < first_create


def test_an_old_replica_that_cannot_stop_gets_no_successor_and_the_state_stays_exact(cfg, capsys, monkeypatch):
    setup(cfg, capsys, config(surge=0, unavailable=1))
    monkeypatch.setenv("ORCH_MEMORY_FAIL", "delete:pod.web[1]")
    code, _, err = orch(capsys, "apply", "-auto-approve", "-var", "image=orch/busybox:v2", str(cfg))
    assert code == 1 and "pod.web[1] failed on purpose" in err
    world = world_objects(cfg.parent / "world")
    assert sorted(a for a in world if a.startswith("pod.web")) == [f"pod.web[{i}]" for i in range(4)]
    # rolled back: pod.web[0] (replaced in wave 1) is old again, pod.web[1] never stopped
    assert {o["container"][0]["image"] for a, o in world.items() if a.startswith("pod.web")} == {"orch/busybox:v1"}
    monkeypatch.delenv("ORCH_MEMORY_FAIL")
    code, out, _ = orch(capsys, "plan", "--detailed-exitcode", str(cfg))
    assert code == 0, out  # what the state says is what exists
