"""The reachability review in the plan (text, Markdown, JSON) for a policy added, a label changed and a replica
count changed; `orch explain` as a CI policy test. On the SDK's in-process provider: no host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.memory_provider import memory_config_dir, orch

NODES = "".join(f'node "n{i}" {{\n  address = "198.18.0.{10 + i}"\n}}\n' for i in (1, 2))


def config(api_replicas: int = 2, web_label: str = "web", policy: bool = True) -> str:
    text = NODES + f"""
orch {{
  namespace = "shop"
}}
pod "api" {{
  replicas = {api_replicas}
  labels   = {{ app = "api" }}
  container "c" {{
    image = "x"
    ports = [8080]
  }}
}}
pod "web" {{
  labels = {{ app = "{web_label}" }}
  container "c" {{
    image = "x"
  }}
}}
pod "db" {{
  labels = {{ app = "db" }}
  container "c" {{
    image = "x"
    ports = [5432]
  }}
}}
"""
    if policy:
        text += """
network_policy "db" {
  pod_selector = { app = "db" }
  ingress {
    from {
      pod_selector = { app = "api" }
    }
    ports = [5432]
  }
}
"""
    return text


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    return memory_config_dir(tmp_path, monkeypatch)


def write(cfg: Path, text: str) -> None:
    (cfg / "main.orch").write_text(text)


def review(capsys, cfg: Path) -> tuple[list[str], str, dict]:
    """The text plan's Reachability section, the Markdown table, the JSON changes."""
    code, out, err = orch(capsys, "plan", "--detailed-exitcode", str(cfg))
    assert code == 2, out + err
    section = out.split("Reachability (namespace shop): what this apply changes\n", 1)[1].split("\n\n", 1)[0]
    _, md, _ = orch(capsys, "plan", "--format", "markdown", str(cfg))
    table = md.split("#### Reachability (namespace `shop`)\n", 1)[1].split("\n\n", 1)[0].strip()
    _, js, _ = orch(capsys, "plan", "-json", str(cfg))
    return section.splitlines(), table, json.loads(js)["orch"]["reachability"]


def test_a_policy_added(cfg, capsys):
    write(cfg, config(policy=False))
    assert orch(capsys, "apply", "--auto-approve", str(cfg))[0] == 0
    write(cfg, config())
    text, md, data = review(capsys, cfg)
    assert text == ["  - pod.web -> pod.db  5432/tcp  allowed -> denied  (network_policy.db)"]
    assert md.splitlines() == [
        "| | From | To | Port | Before | After | Because of |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        "| - | `pod.web` | `pod.db` | 5432/tcp | allowed | **denied** | `network_policy.db` |"]
    assert data == {"namespace": "shop", "changes": [
        {"from": "pod.web", "to": "pod.db", "port": "5432/tcp", "before": "allowed", "after": "denied",
         "policies": ["network_policy.db"]}]}


def test_a_label_changed(cfg, capsys):
    """No policy block changes: the web pod takes the label the policy allows."""
    write(cfg, config())
    assert orch(capsys, "apply", "--auto-approve", str(cfg))[0] == 0
    write(cfg, config(web_label="api"))
    text, md, data = review(capsys, cfg)
    assert "  + pod.web -> pod.db  5432/tcp  denied -> allowed  (network_policy.db)" in text
    assert "| + | `pod.web` | `pod.db` | 5432/tcp | denied | **allowed** | `network_policy.db` |" in md
    assert {"from": "pod.web", "to": "pod.db", "port": "5432/tcp", "before": "denied", "after": "allowed",
            "policies": ["network_policy.db"]} in data["changes"]


def test_a_replica_count_changed(cfg, capsys):
    """A new replica of an allowed pod: its pairs are new, the review lists them with the deciding policy."""
    write(cfg, config(api_replicas=1))
    assert orch(capsys, "apply", "--auto-approve", str(cfg))[0] == 0
    write(cfg, config(api_replicas=2))
    text, md, data = review(capsys, cfg)
    assert any(line.startswith("  + pod.api -> pod.api  8080/tcp  new -> allowed") for line in text), text
    assert all(c["after"] in ("allowed", "denied", "partial") for c in data["changes"])
    assert not any(c["to"] == "pod.db" and c["after"] == "denied" and c["from"] == "pod.api"
                   for c in data["changes"])


def test_no_review_without_a_change_of_reachability(cfg, capsys):
    write(cfg, config())
    assert orch(capsys, "apply", "--auto-approve", str(cfg))[0] == 0
    code, out, _ = orch(capsys, "plan", "--detailed-exitcode", str(cfg))
    assert code == 0 and "Reachability" not in out


def test_explain_is_a_policy_test(cfg, capsys):
    write(cfg, config())
    code, out, _ = orch(capsys, "explain", "--from", "pod.api", "--to", "pod.db", "--port", "5432/tcp", str(cfg))
    assert code == 0 and out.startswith("pod.api -> pod.db on 5432/tcp: ALLOWED")
    assert "allowed by network_policy.db ingress rule 1" in out
    code, out, _ = orch(capsys, "explain", "--from", "pod.web", "--to", "pod.db", "--port", "5432", str(cfg))
    assert code == 1 and "DENIED" in out and "no rule of network_policy.db allows it" in out
    code, out, _ = orch(capsys, "explain", "--from", "pod.api", "--to", "pod.db", "--port", "5433/tcp", str(cfg))
    assert code == 1
    code, out, _ = orch(capsys, "explain", "--json", "--from", "pod.db", "--to", "pod.web", "--port", "80",
                        str(cfg))
    doc = json.loads(out)
    assert code == 0 and doc["verdict"] == "allowed" and doc["pairs"][0]["allowed"] is True
    code, _, err = orch(capsys, "explain", "--from", "pod.nope", "--to", "pod.db", "--port", "80", str(cfg))
    assert code == 2 and 'no pod "pod.nope"' in err and "Traceback" not in err
    code, _, err = orch(capsys, "explain", "--to", "pod.db", "--port", "80/sctp", str(cfg))
    assert code == 2 and "--from" in err
