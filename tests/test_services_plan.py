"""Services through the whole engine on the SDK's in-process provider: node programs planned with reasons,
the traffic review in text, Markdown and JSON, no perpetual diff, endpoints following scaling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.memory_provider import memory_config_dir, orch

NODES = "".join(f'node "n{i}" {{\n  address = "198.18.0.{10 + i}"\n}}\n' for i in (1, 2, 3))


def config(replicas: int = 3, extra: str = "") -> str:
    return NODES + f"""
orch {{
  namespace = "shop"
}}
pod "web" {{
  replicas = {replicas}
  labels   = {{ app = "web" }}
  container "httpd" {{
    image = "orch/busybox:test"
  }}
}}
service "web" {{
  selector    = {{ app = "web" }}
  port        = 80
  target_port = 8080
  node_port   = 30080
}}
{extra}
"""


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    return memory_config_dir(tmp_path, monkeypatch)


def write(cfg: Path, text: str) -> None:
    (cfg / "main.orch").write_text(text)


def test_first_plan_shows_services_and_node_programs(cfg, capsys):
    write(cfg, config())
    code, out, err = orch(capsys, "plan", "--detailed-exitcode", str(cfg))
    assert code == 2, err
    for i in (1, 2, 3):
        assert f"# node_services.n{i} will be created" in out
    assert "because the node carries 1 service" in out
    assert "Services (namespace shop):" in out and ":80/tcp -> 8080, node port 30080" in out
    assert "+ pod.web[2]" not in out  # a first plan lists endpoints without markers
    assert "pod_cidr" in out and "198.19.128.0/24" in out
    code, out, _ = orch(capsys, "plan", "-json", str(cfg))
    doc = json.loads(out)
    svc = doc["orch"]["services"]
    assert svc["namespace"] == "shop"
    [web] = svc["services"]
    assert web["address"] == "service.web" and web["cluster_ip"].startswith("198.18.")
    assert web["endpoints_added"] == ["pod.web[0]", "pod.web[1]", "pod.web[2]"]
    assert svc["nodes_changing"] == ["node.n1", "node.n2", "node.n3"]


def test_apply_then_no_changes_then_scaling_changes_endpoints(cfg, capsys):
    write(cfg, config())
    assert orch(capsys, "apply", "--auto-approve", str(cfg))[0] == 0
    code, out, _ = orch(capsys, "plan", "--detailed-exitcode", str(cfg))
    assert code == 0, out
    write(cfg, config(replicas=2))
    code, out, _ = orch(capsys, "plan", "--detailed-exitcode", str(cfg))
    assert code == 2
    assert "because service.web loses pod.web[2]" in out
    assert "- pod.web[2]" in out and "Rules change on: node.n1, node.n2, node.n3" in out
    code, md, _ = orch(capsys, "plan", "--format", "markdown", str(cfg))
    assert "#### Traffic (namespace `shop`)" in md and "`pod.web[2]` |" in md
    assert orch(capsys, "apply", "--auto-approve", str(cfg))[0] == 0
    assert orch(capsys, "plan", "--detailed-exitcode", str(cfg))[0] == 0


def test_a_service_added_later_and_removed(cfg, capsys):
    write(cfg, config())
    assert orch(capsys, "apply", "--auto-approve", str(cfg))[0] == 0
    write(cfg, config(extra='service "api" {\n  selector = { app = "web" }\n  port = 81\n}\n'))
    code, out, _ = orch(capsys, "plan", "--detailed-exitcode", str(cfg))
    assert code == 2 and "because service.api is added" in out
    assert orch(capsys, "apply", "--auto-approve", str(cfg))[0] == 0
    # no service left: the node programs go
    write(cfg, NODES + 'pod "web" {\n  container "c" {\n    image = "x"\n  }\n}\n')
    code, out, _ = orch(capsys, "plan", "--detailed-exitcode", str(cfg))
    assert code == 2 and "# node_services.n1 will be destroyed" in out
    assert "because the cluster layer no longer derives it" in out
    assert orch(capsys, "apply", "--auto-approve", str(cfg))[0] == 0
    assert orch(capsys, "destroy", "--auto-approve", str(cfg))[0] == 0


def test_address_errors_point_at_the_block(cfg, capsys):
    write(cfg, config(extra='service "api" {\n  selector = { app = "web" }\n  port = 81\n'
                            '  cluster_ip = "198.18.0.5"\n}\n'))
    code, _, err = orch(capsys, "plan", str(cfg))
    assert code == 1 and "cluster_ip outside the service range" in err and "main.orch:" in err


def test_invalid_orch_settings_are_validate_errors(cfg, capsys):
    write(cfg, 'orch {\n  namespace = "Shop"\n  pod_cidr = "198.19.0.0/25"\n  nope = 1\n}\n')
    code, _, err = orch(capsys, "validate", str(cfg))
    assert code == 1 and "Traceback" not in err
    assert err.count("Invalid orch setting") == 2 and 'An argument named "nope"' in err
    assert "main.orch:2:15" in err


def test_validate_catches_address_errors_without_a_host(cfg, capsys):
    """No state, no node: orch validate finds a cluster IP outside the range and a node port taken twice."""
    write(cfg, config(extra='service "api" {\n  selector = { app = "web" }\n  port = 81\n  node_port = 30080\n}\n'
                            'service "db" {\n  selector = { app = "db" }\n  port = 5432\n'
                            '  cluster_ip = "198.18.0.5"\n}\n'))
    code, _, err = orch(capsys, "validate", str(cfg))
    assert code == 1 and "Duplicate node port" in err and "cluster_ip outside the service range" in err
    assert "Traceback" not in err and "main.orch:" in err
