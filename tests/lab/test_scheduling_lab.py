"""The scheduler on the lab, through orch's CLI, checked through each node's own Docker socket.

Three lab nodes with declared capacities and zones:

* n1: 1 cpu, 1Gi, zone a      * n2: 2 cpu, 2Gi, zone b      * n3: 1 cpu, 1Gi, zone b

web (3 replicas of 0.25 cpu) spreads one per node; big (1.5 cpu) fits only on n2; huge (4 cpu) fits nowhere:
the plan fails with the reason for each node and nothing changes; cordoning n3 moves its replica away on
apply, and every other container stays as it was.
"""

from __future__ import annotations

import json
import shutil

import pytest

from orchdsl.cli import main

from .test_docker_provider import _clients, _lineage

pytestmark = pytest.mark.lab

CAPACITY = {"n1": (1, "1Gi", "a"), "n2": (2, "2Gi", "b"), "n3": (1, "1Gi", "b")}

PODS = """
variable "huge" {
  type    = bool
  default = false
}
variable "cordon_n3" {
  type    = bool
  default = false
}

pod "web" {
  replicas = 3
  labels   = { app = "web" }
  container "httpd" {
    image   = "orch/busybox:test"
    command = ["httpd", "-f", "-p", "8080", "-h", "/"]
    pull    = "never"
    resources {
      cpu    = 0.25
      memory = "64Mi"
    }
  }
}

pod "big" {
  container "worker" {
    image   = "orch/busybox:test"
    command = ["sleep", "3600"]
    pull    = "never"
    resources {
      cpu    = 1.5
      memory = "256Mi"
    }
  }
}

pod "huge" {
  replicas = var.huge ? 1 : 0
  container "worker" {
    image   = "orch/busybox:test"
    command = ["sleep", "3600"]
    pull    = "never"
    resources {
      cpu    = 4
      memory = "256Mi"
    }
  }
}
"""


def _nodes_hcl(lab) -> str:
    out = []
    for n in lab.nodes:
        cpu, mem, zone = CAPACITY[n.name]
        cordon = "\n  schedulable   = !var.cordon_n3" if n.name == "n3" else ""
        out.append(f'''
node "{n.name}" {{
  address       = "{n.address}"
  identity_file = "{lab.identity_file}"
  known_hosts   = "{lab.known_hosts}"
  labels        = {{ zone = "{zone}" }}{cordon}
  capacity {{
    cpu    = {cpu}
    memory = "{mem}"
  }}
}}
''')
    return "".join(out)


@pytest.fixture
def sched_dir(lab, tmp_path, monkeypatch):
    monkeypatch.delenv("ORCH_PROVIDER_MODULES", raising=False)
    d = tmp_path / "sched"
    d.mkdir()
    (d / "nodes.orch").write_text(_nodes_hcl(lab))
    (d / "main.orch").write_text(PODS)
    yield d
    lineage = _lineage(d)
    if lineage:
        for c in _clients(lab).values():
            for x in c.containers.list(all=True, filters={"label": f"orch.lineage={lineage}"}):
                x.remove(force=True)


def _where(lab, lineage: str) -> dict[str, tuple[str, str]]:
    """pod address -> (node whose socket holds its infra container, infra id), read from the nodes."""
    out = {}
    for node, c in _clients(lab).items():
        for x in c.containers.list(all=True, filters={"label": [f"orch.lineage={lineage}", "orch.role=infra"]}):
            out[x.labels["orch.address"]] = (node, x.id)
    return out


def _apps(lab, lineage: str) -> dict[str, dict]:
    out = {}
    for c in _clients(lab).values():
        for x in c.containers.list(all=True, filters={"label": [f"orch.lineage={lineage}", "orch.role=app"]}):
            out[x.labels["orch.address"]] = x.attrs
    return out


def test_scheduler_on_the_lab(lab, sched_dir, capsys):
    d = str(sched_dir)
    assert main(["plan", d]) == 0
    out = capsys.readouterr().out
    assert "Scheduler dry-run:\n- All 4 replicas placed." in out
    assert main(["apply", "--auto-approve", d]) == 0
    lineage = _lineage(sched_dir)
    where = _where(lab, lineage)
    assert sorted(where) == ["pod.big", "pod.web[0]", "pod.web[1]", "pod.web[2]"]
    # web spreads one replica per node; big fits only on n2 (the 2-cpu node)
    assert sorted(where[f"pod.web[{i}]"][0] for i in range(3)) == ["n1", "n2", "n3"]
    assert where["pod.big"][0] == "n2"
    # the requests are the limits Docker enforces
    apps = _apps(lab, lineage)
    assert apps["pod.big"]["HostConfig"]["NanoCpus"] == 1_500_000_000
    assert apps["pod.web[0]"]["HostConfig"]["Memory"] == 64 << 20
    state = json.loads((sched_dir / "orch.orchstate").read_text())
    recorded = {r["address"]: r["attributes"]["node"] for r in state["resources"] if r["type"] == "pod"}
    assert recorded == {a: n for a, (n, _) in where.items()}

    # a pod that fits nowhere: the plan fails naming each node's reason; apply changes nothing
    capsys.readouterr()
    assert main(["apply", "--auto-approve", "--var", "huge=true", d]) == 1
    err = capsys.readouterr().err
    assert "No node can run pod.huge[0]" in err
    # it fits no node even empty: found before anything else is looked at, with each node's reason
    assert "cpu exhausted on node.n1 (0 of 1 cores allocated, 4 requested)" in err
    assert "cpu exhausted on node.n2 (0 of 2 cores allocated, 4 requested)" in err
    assert "cpu exhausted on node.n3 (0 of 1 cores allocated, 4 requested)" in err
    assert _where(lab, lineage) == where

    # cordon n3: its web replica moves to n1 or n2, and the other pods keep their very containers
    on_n3 = next(a for a, (n, _) in where.items() if n == "n3")
    capsys.readouterr()
    assert main(["plan", "--detailed-exitcode", "--var", "cordon_n3=true", d]) == 2
    out = capsys.readouterr().out
    assert f"# {on_n3} must be replaced" in out
    assert "because the scheduler moves it from node.n3 to node.n" in out and "(node.n3 is cordoned)" in out
    assert "Plan: 1 to add, 1 to change, 1 to destroy." in out  # the pod moves; node.n3 is cordoned in place
    assert main(["apply", "--auto-approve", "--var", "cordon_n3=true", d]) == 0
    after = _where(lab, lineage)
    assert after[on_n3][0] in ("n1", "n2") and after[on_n3][1] != where[on_n3][1]
    assert {a: v for a, v in after.items() if a != on_n3} == {a: v for a, v in where.items() if a != on_n3}
    assert not [n for n, _ in after.values() if n == "n3"]
    capsys.readouterr()
    assert main(["plan", "--detailed-exitcode", "--var", "cordon_n3=true", d]) == 0
    assert main(["destroy", "--auto-approve", "--var", "cordon_n3=true", d]) == 0
    assert _where(lab, lineage) == {}
