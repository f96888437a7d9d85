"""The control-plane core on the lab: a saved plan of pods in a module, observed status in the plan (a stopped
and an unhealthy container), and the Docker provider through the SDK's conformance suite on real engines."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import docker
import pytest

from orchdsl.cli import main
from orchdsl.sdk import ResourceAddress
from orchdsl.sdk.testing import Sample, check_provider
from orchdsl.state import LocalBackend

pytestmark = pytest.mark.lab


def _orch(*args: str) -> int:
    return main(list(args))


def _containers(lab, lineage: str) -> list:
    out = []
    for n in lab.nodes:
        c = docker.DockerClient(base_url=f"unix://{n.socket_path}")
        out.extend(c.containers.list(all=True, filters={"label": f"orch.lineage={lineage}"}))
    return out


@pytest.fixture
def cfg(lab, tmp_path, monkeypatch):
    monkeypatch.delenv("ORCH_PROVIDER_MODULES", raising=False)
    d = tmp_path / tmp_path.name  # its own namespace (the directory name): lab tests never share one
    d.mkdir()
    shutil.copy(lab.nodes_file, d / "nodes.orch")
    yield d
    backend = LocalBackend.for_config_dir(d)
    if backend.exists():
        for c in _containers(lab, backend.read().lineage):
            c.remove(force=True)


def test_a_saved_plan_of_pods_in_a_module_applies_in_a_new_process(lab, cfg, capsys):
    (cfg / "app").mkdir()
    (cfg / "app" / "main.orch").write_text("""
variable "replicas" {
  type = number
}
pod "web" {
  replicas = var.replicas
  container "httpd" {
    image   = "orch/busybox:test"
    command = ["httpd", "-f", "-p", "8080", "-h", "/"]
    init    = true
    pull    = "never"
  }
}
""")
    (cfg / "main.orch").write_text('module "app" {\n  source   = "./app"\n  replicas = 3\n}\n')
    plan_file = cfg.parent / "app.plan"
    assert _orch("plan", "--out", str(plan_file), str(cfg)) == 0
    out = capsys.readouterr().out
    assert "module.app.pod.web[2] will be created" in out
    # the saved plan is applied by a new orch run: every pod finds its node (the plan's dependencies and
    # the providers' world carry them), whatever module the pods live in
    assert _orch("apply", str(plan_file)) == 0
    lineage = LocalBackend.for_config_dir(cfg).read().lineage
    running = {c.labels["orch.address"] for c in _containers(lab, lineage) if c.status == "running"}
    assert running == {f"module.app.pod.web[{i}]" for i in range(3)}
    assert _orch("plan", "--detailed-exitcode", str(cfg)) == 0
    assert _orch("destroy", "--auto-approve", str(cfg)) == 0
    assert _containers(lab, lineage) == []


def test_the_plan_shows_a_stopped_and_an_unhealthy_container(lab, cfg, capsys):
    (cfg / "main.orch").write_text("""
pod "stopped" {
  container "httpd" {
    image   = "orch/busybox:test"
    command = ["httpd", "-f", "-p", "8080", "-h", "/"]
    init    = true
    pull    = "never"
  }
}
pod "sick" {
  container "httpd" {
    image   = "orch/busybox:test"
    command = ["httpd", "-f", "-p", "8080", "-h", "/"]
    init    = true
    pull    = "never"
    health {
      command  = ["sh", "-c", "echo backend down; exit 1"]
      interval = "1s"
      timeout  = "1s"
      retries  = 2
    }
  }
}
""")
    assert _orch("apply", "--auto-approve", str(cfg)) == 0
    lineage = LocalBackend.for_config_dir(cfg).read().lineage
    apps = {c.labels["orch.address"]: c for c in _containers(lab, lineage) if c.labels["orch.role"] == "app"}
    apps["pod.stopped"].stop(timeout=1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        apps["pod.sick"].reload()
        health = apps["pod.sick"].attrs["State"].get("Health") or {}
        if health.get("Status") == "unhealthy" and health.get("FailingStreak", 0) >= 3:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"the container never became unhealthy: {apps['pod.sick'].attrs['State']}")
    capsys.readouterr()
    assert _orch("plan", "--detailed-exitcode", str(cfg)) == 2
    out = capsys.readouterr().out
    assert "Object status:" in out
    assert "pod.stopped is degraded: container httpd exited (" in out
    assert "pod.sick is unhealthy: " in out and "failing checks (container httpd" in out
    assert 'last output: "backend down"' in out
    assert "# pod.stopped will be updated in-place" in out  # restarted in place, not drift
    assert "changed outside of orch" not in out
    capsys.readouterr()
    assert _orch("plan", "--format", "json", str(cfg)) == 0
    status = json.loads(capsys.readouterr().out)["orch"]["status"]
    sick = status["pod.sick"]["members"][0]
    assert status["pod.sick"]["healthy"] is False and sick["health"] == "unhealthy" and sick["failing_streak"] >= 3
    assert status["pod.stopped"]["members"][0]["state"] == "exited"
    assert _orch("apply", "--auto-approve", str(cfg)) == 0
    apps["pod.stopped"].reload()
    assert apps["pod.stopped"].status == "running"
    assert _orch("destroy", "--auto-approve", str(cfg)) == 0


def test_the_docker_provider_conforms_on_real_engines(lab):
    from orch_provider_docker.provider import DockerProvider

    n1 = next(n for n in lab.nodes if n.name == "n1")
    node = {"name": "n1", "address": "198.18.0.11", "user": "root",
            "identity_file": str(Path(lab.nodes_file).parent / "ssh" / "client"),
            "known_hosts": str(lab.known_hosts), "docker_host": f"unix://{n1.socket_path}"}
    node_addr = ResourceAddress("node", "n1")
    pod = {"name": "conformance-0", "node": "n1", "restart": "always",
           "container": [{"name": "httpd", "image": "orch/busybox:test", "pull": "never", "init": True,
                          "command": ["httpd", "-f", "-p", "8080", "-h", "/"], "resources": {"memory": 32 << 20}}]}
    resized = {**pod, "container": [{**pod["container"][0], "resources": {"memory": 48 << 20}}]}
    failures = check_provider(DockerProvider, [
        Sample(node_addr, node, world={node_addr: node}, external=True),
        Sample(ResourceAddress("pod", "conformance", 0), pod, update=resized, world={node_addr: node}),
    ])
    assert not failures, "\n".join(failures)
