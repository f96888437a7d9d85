"""The scheduler inside plan/apply: capacities, selectors, cordon/drain, errors, summary. Fake engines."""

from __future__ import annotations

import json
from pathlib import Path

from orchdsl.plan.model import Action
from orchdsl.plan.render_json import render_plan_json
from orchdsl.plan.render_text import render_plan_text

from docker_fakes import FakeCluster
from docker_helpers import actions, apply, plan


def node(name: str, cpu: float = 2, memory: str = "2Gi", schedulable: bool = True, **labels: str) -> str:
    lab = ", ".join(f'{k} = "{v}"' for k, v in labels.items())
    return f'''
node "{name}" {{
  address     = "198.18.0.1{name[-1]}"
  labels      = {{ {lab} }}
  schedulable = {str(schedulable).lower()}
  capacity {{
    cpu    = {cpu}
    memory = "{memory}"
  }}
}}
'''


def pod(name: str, replicas: int, cpu: float = 0.5, memory: str = "256Mi", extra: str = "") -> str:
    return f'''
pod "{name}" {{
  replicas = {replicas}
  {extra}
  container "app" {{
    image   = "orch/busybox:test"
    command = ["sleep", "3600"]
    pull    = "never"
    resources {{
      cpu    = {cpu}
      memory = "{memory}"
    }}
  }}
}}
'''


def write(d: Path, *blocks: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "main.orch").write_text("".join(blocks))
    return d


def placed(p) -> dict[str, str]:
    return {str(c.address): c.location.removeprefix("node.") for c in p.changes if c.address.type == "pod" and c.location}


NODES = (node("n1"), node("n2"), node("n3"))


def test_replicas_spread_evenly_and_the_summary_shows_it(tmp_path):
    write(tmp_path, pod("web", 6), *NODES)  # pods before nodes in the file: order does not matter
    p, diags = plan(tmp_path, FakeCluster("n1", "n2", "n3"))
    assert not [d for d in diags if d.is_error]
    where = placed(p)
    assert sorted(where.values()) == ["n1", "n1", "n2", "n2", "n3", "n3"]
    assert where["pod.web[0]"] != where["pod.web[1]"] != where["pod.web[2]"]
    text = render_plan_text(p)
    assert f"(on node.{where['pod.web[3]']})" in text
    assert ("Scheduler dry-run:\n- All 6 replicas placed.\n"
            "  NODE     PODS  CPU        MEMORY\n"
            "  node.n1  2     1/2 (50%)  512Mi/2Gi (25%)\n") in text
    assert text.index("Scheduler dry-run:") < text.index("Plan: 9 to add")
    data = render_plan_json(p)["orch"]["scheduler"]
    assert data["placed"] == 6 and data["unplaced"] == [] and data["moves"] == []
    assert data["nodes"][0] == {"address": "node.n1", "name": "n1", "replicas": 2, "cpu": 1.0, "cpu_capacity": 2,
                                "memory": 512 << 20, "memory_capacity": 2 << 30, "schedulable": True}
    json.dumps(data)


def test_a_pod_that_fits_one_node_lands_there(tmp_path):
    write(tmp_path, node("n1"), node("n2", cpu=8, memory="16Gi"), node("n3"), pod("big", 1, cpu=4, memory="4Gi"))
    p, diags = plan(tmp_path, FakeCluster("n1", "n2", "n3"))
    assert not [d for d in diags if d.is_error]
    assert placed(p) == {"pod.big[0]": "n2"}


def test_selector_and_hard_anti_affinity(tmp_path):
    write(tmp_path, node("n1", zone="a"), node("n2", zone="b"), node("n3", zone="b"),
          pod("web", 2, extra='node_selector = { zone = "b" }\n  anti_affinity = "hard"'))
    p, diags = plan(tmp_path, FakeCluster("n1", "n2", "n3"))
    assert not [d for d in diags if d.is_error]
    assert placed(p) == {"pod.web[0]": "n2", "pod.web[1]": "n3"}


def test_a_pod_that_fits_nowhere_fails_the_plan_with_reasons(tmp_path):
    write(tmp_path, node("n1"), node("n2", zone="a"), node("n3", schedulable=False),
          pod("huge", 1, cpu=3, extra='node_selector = { zone = "a" }'))
    cluster = FakeCluster("n1", "n2", "n3")
    # no node can ever run it: found before any plan, by orch validate (plan loads the same way)
    from orchdsl.config import load_config

    _, diags = load_config(tmp_path, {}, [])
    err = [d for d in diags if d.is_error]
    assert len(err) == 1 and err[0].summary == "No node can run pod.huge[0]"
    detail = err[0].detail
    assert "pod.huge[0] requests 3 cpu and 256Mi memory; none of the 3 nodes can run it:" in detail
    assert "label zone=a not matched on node.n1 (no zone label)" in detail
    assert "cpu exhausted on node.n2 (0 of 2 cores allocated, 3 requested)" in detail
    assert "node.n3 is cordoned (schedulable = false)" in detail
    assert err[0].subject is not None and err[0].subject.filename.endswith("main.orch")
    rendered = err[0].render()
    assert 'pod "huge"' in rendered and "Hint:" in rendered
    assert not any(e.containers for e in cluster.engines.values())  # nothing applied (plan only)


def test_binpack_from_the_scheduler_block_and_per_pod_override(tmp_path):
    write(tmp_path, 'scheduler {\n  strategy = "binpack"\n}\n', *NODES,
          pod("a", 1), pod("b", 1), pod("c", 1, extra='placement = "spread"'))
    p, _ = plan(tmp_path, FakeCluster("n1", "n2", "n3"))
    where = placed(p)
    assert where["pod.a[0]"] == where["pod.b[0]"] == "n1"  # packed together
    assert where["pod.c[0]"] == "n2"  # spread: the least allocated


def test_cordon_drains_the_node_and_the_others_stay_put(tmp_path):
    cluster = FakeCluster("n1", "n2", "n3")
    write(tmp_path, *NODES, pod("web", 6))
    p, outcome, _ = apply(tmp_path, cluster)
    assert outcome.ok
    before = placed(p)
    write(tmp_path, node("n1"), node("n2"), node("n3", schedulable=False), pod("web", 6))
    p, diags = plan(tmp_path, cluster)
    assert not [d for d in diags if d.is_error]
    moved = {a for a, n in before.items() if n == "n3"}
    assert actions(p) == {"node.n3": Action.UPDATE, **{a: Action.REPLACE for a in moved}}
    for c in p.changes:
        if c.action is Action.REPLACE:
            assert c.location in ("node.n1", "node.n2")
            assert c.reason.startswith("because the scheduler moves it from node.n3 to node.n")
            assert c.reason.endswith("(node.n3 is cordoned)")
    assert "- All 6 replicas placed (2 moved)." in render_plan_text(p)
    _, outcome, _ = apply(tmp_path, cluster)
    assert outcome.ok
    assert not cluster.engines["n3"].containers
    p, _ = plan(tmp_path, cluster)
    assert actions(p) == {}  # stable: nothing moves again


def test_scaling_keeps_running_replicas_and_removes_the_highest(tmp_path):
    cluster = FakeCluster("n1", "n2", "n3", "n4")
    write(tmp_path, *NODES, pod("web", 3))
    p, outcome, _ = apply(tmp_path, cluster)
    first = placed(p)
    write(tmp_path, *NODES, node("n4"), pod("web", 5))
    p, outcome, _ = apply(tmp_path, cluster)
    # the other nodes get a route to node.n4's pod subnet
    assert actions(p) == {"node.n4": Action.CREATE, "pod.web[3]": Action.CREATE, "pod.web[4]": Action.CREATE,
                          "node.n1": Action.UPDATE, "node.n2": Action.UPDATE, "node.n3": Action.UPDATE}
    assert placed(p)["pod.web[3]"] == "n4"  # the empty node first
    assert all(placed(p)[a] == n for a, n in first.items())  # the running ones did not move
    write(tmp_path, *NODES, node("n4"), pod("web", 2))
    p, _ = plan(tmp_path, cluster)
    assert actions(p) == {"pod.web[2]": Action.DELETE, "pod.web[3]": Action.DELETE, "pod.web[4]": Action.DELETE}


def test_bigger_requests_move_only_what_no_longer_fits(tmp_path):
    cluster = FakeCluster("n1", "n2")
    write(tmp_path, node("n1"), node("n2"), pod("a", 1, cpu=1.5), pod("b", 1, cpu=0.5))
    p, outcome, _ = apply(tmp_path, cluster)
    assert placed(p) == {"pod.a[0]": "n1", "pod.b[0]": "n2"}
    # b now wants 1 cpu: n2 still has room, so b stays (an in-place update of its limits)
    write(tmp_path, node("n1"), node("n2"), pod("a", 1, cpu=1.5), pod("b", 1, cpu=1))
    p, _ = plan(tmp_path, cluster)
    assert actions(p) == {"pod.b[0]": Action.UPDATE}
    # a now wants 2.5 cpu: fits nowhere
    write(tmp_path, node("n1"), node("n2"), pod("a", 1, cpu=2.5), pod("b", 1, cpu=0.5))
    from orchdsl.config import load_config  # bigger than any node: orch validate says so, before any plan

    _, diags = load_config(tmp_path, {}, [])
    assert [d.summary for d in diags if d.is_error] == ["No node can run pod.a[0]"]


def test_pods_without_requests_spread_over_nodes(tmp_path):
    blocks = [f'pod "p{i}" {{\n  container "c" {{\n    image = "orch/busybox:test"\n    pull = "never"\n  }}\n}}\n'
              for i in range(6)]
    write(tmp_path, *NODES, *blocks)
    p, _ = plan(tmp_path, FakeCluster("n1", "n2", "n3"))
    assert sorted(placed(p).values()) == ["n1", "n1", "n2", "n2", "n3", "n3"]


def test_without_node_blocks_pods_go_to_the_local_engine(tmp_path):
    write(tmp_path, pod("web", 2))
    p, diags = plan(tmp_path, FakeCluster("local"))
    assert not [d for d in diags if d.is_error], [d.render() for d in diags]
    assert placed(p) == {"pod.web[0]": "local", "pod.web[1]": "local"}
    assert "node.local  2     1/?" in render_plan_text(p)


def test_two_nodes_with_one_name_are_a_diagnostic_not_a_crash(tmp_path):
    """node.n[1] is named n-1, like a node "n-1": a plan error naming both, never a traceback."""
    counted = 'node "n" {\n  count   = 2\n  address = "198.18.0.2${count.index + 1}"\n}\n'
    write(tmp_path, counted, node("n-1"), pod("web", 1))
    # found before any plan: orch validate reports it (the placement derivation checks it again at plan)
    from orchdsl.config import load_config

    _, diags = load_config(tmp_path, {}, [])
    err = [d for d in diags if d.is_error]
    assert [d.summary for d in err] == ["Duplicate node name"]
    assert err[0].detail.startswith('node.n-1 and node.n[1] are both named "n-1"')
    assert err[0].subject is not None and err[0].subject.start.line == 6  # the node "n-1" block
