"""Drive orch's own plan/apply workflow with the Docker provider on fake engines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orch_provider_docker.provider import DockerProvider

from orchdsl.addrs import ResourceAddress
from orchdsl.config import load_config
from orchdsl.engine import workflow
from orchdsl.engine.planner import PlanOptions
from orchdsl.eval.plain import prune_nulls as _prune_nulls
from orchdsl.plan.model import Action

NODES = """
node "n1" {
  address = "198.18.0.11"
}
node "n2" {
  address = "198.18.0.12"
  labels  = { zone = "b" }
}
node "n3" {
  address = "198.18.0.13"
}
"""

POD = """
pod "web" {
  replicas = %(replicas)s
  labels   = { app = "web" }
  container "httpd" {
    image   = "orch/busybox:test"
    command = ["httpd", "-f", "-p", "8080", "-h", "/"]
    env     = { GREETING = %(greeting)s }
    init    = true
    pull    = "never"
    ports   = [8080] # no host port: a node can publish one to one replica, and there are more replicas
    resources {
      cpu    = 0.25
      memory = "%(memory)s"
    }
  }
}
"""


def write_config(d: Path, replicas: int = 2, greeting: str = '"hello"', memory: str = "32Mi",
                 nodes: str = NODES, extra: str = "") -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "main.orch").write_text(nodes + POD % {"replicas": replicas, "greeting": greeting, "memory": memory}
                                 + extra)
    return d


class Unnamespaced(DockerProvider):
    """The provider as these tests know it: container names without the configuration's namespace (a
    provider told no namespace), so that expectations read "web-0-infra" whatever the test directory is
    called. test_apply.py checks the names within a namespace."""

    def configure(self, settings: dict[str, Any], lineage: str) -> list[Any]:
        return super().configure({k: v for k, v in settings.items() if k != "namespace"}, lineage)


class Run:
    """One orch command's worth of provider (a new instance per command, as the CLI does)."""

    def __init__(self, d: Path, cluster: Any, namespaced: bool = False):
        self.d = d
        self.cluster = cluster
        self.provider = (DockerProvider if namespaced else Unnamespaced)(connect=cluster.connect)
        self.session = workflow.open_session(d, providers=[self.provider])
        assert not [x for x in self.session.diagnostics if x.is_error], self.session.diagnostics
        self.state = self.session.backend.read()

    def plan(self, **opts: Any):
        p, diags = workflow.plan(self.session, self.state, PlanOptions(**opts))
        return p, diags

    def apply(self, **opts: Any):
        p, diags = self.plan(**opts)
        assert p is not None, [d.render() for d in diags]
        errors = [x for x in diags if x.is_error]
        assert not errors, [d.render() for d in errors]
        lines: list[str] = []
        outcome = workflow.apply(self.session, p, self.state, lines.append)
        return p, outcome, lines


def plan(d: Path, cluster: Any, **opts: Any):
    return Run(d, cluster).plan(**opts)


def apply(d: Path, cluster: Any, **opts: Any):
    return Run(d, cluster).apply(**opts)


def actions(p) -> dict[str, Action]:
    return {str(c.address): c.action for c in p.changes if c.action is not Action.NOOP}


def state_of(d: Path):
    return workflow.open_session(d, providers=[DockerProvider(connect=lambda s: None)]).backend.read()


def pod_values(hcl: str, tmp: Path, address: str = "pod.web[0]") -> dict:
    """What the core hands the provider for one instance."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "main.orch").write_text(hcl)
    cfg, diags = load_config(tmp, {}, [])
    assert not [x for x in diags if x.is_error], [x.render() for x in diags]
    want = ResourceAddress.parse(address)
    for decl in cfg.resources.values():
        insts, _ = cfg.expand(decl, {})
        for i in insts:
            if i.address == want:
                return _prune_nulls(i.values)
    raise KeyError(address)
