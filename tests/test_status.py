"""`orch status`: the live view (nodes, pods with health and usage, services' ready endpoints, the reconciler's
last actions) on the SDK's in-process provider, and its pure rendering over plain data."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from orchdsl.addrs import ResourceAddress
from orchdsl.reconcile.loop import Event, record
from orchdsl.sdk.protocol import MemberStatus, ObjectStatus, Usage
from orchdsl.state import LocalBackend
from orchdsl.status import StatusView, build_view, cores, measure, mem, render_text, to_json
from tests.support.memory_provider import edit_world, memory_config_dir, orch

CONFIG = """
node "n1" {
  address = "198.18.0.11"
}
node "n2" {
  address = "198.18.0.12"
}
pod "web" {
  replicas = 3
  labels   = { app = "web" }
  container "httpd" {
    image = "orch/busybox:v1"
    resources {
      cpu    = 0.5
      memory = "64Mi"
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


@pytest.fixture
def cfg(tmp_path, monkeypatch, capsys):
    d = memory_config_dir(tmp_path, monkeypatch)
    (d / "main.orch").write_text(CONFIG)
    code, _, err = orch(capsys, "apply", "-auto-approve", str(d))
    assert code == 0, err
    return d


def world(cfg: Path) -> Path:
    return cfg.parent / "world"


def row(out: str, first: str) -> list[str]:
    """The cells of the table row that starts with ``first``."""
    return next(line.split() for line in out.splitlines() if line.split()[:1] == [first])


def test_text_view_after_apply(cfg, capsys):
    code, out, err = orch(capsys, "status", str(cfg))
    assert code == 0, err
    assert err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["NODE", "ADDRESS", "PODS", "STATE"]
    n1, n2 = row(out, "n1"), row(out, "n2")
    assert n1[:2] == ["n1", "198.18.0.11"] and n2[:2] == ["n2", "198.18.0.12"]
    assert int(n1[2]) + int(n2[2]) == 3 and n1[3] == n2[3] == "ready"
    header = next(line for line in lines if line.startswith("POD "))
    assert header.split("  ")[0] == "POD" and "CPU (used/req)" in header and "MEMORY (used/req)" in header
    for i in range(3):
        r = row(out, f"pod.web[{i}]")
        assert r[2:5] == ["running", "-", "0"]
        assert r[5] == "-/0.5" and r[6] == "-/64Mi"  # nothing measured yet by the test provider
        assert r[7].startswith("198.19.")
    # columns are aligned: every row of the pod table has its CPU cell where the header has it
    start, cpu = lines.index(header), header.index("CPU (used/req)")
    assert all(line[cpu:].startswith("-/0.5 ") for line in lines[start + 1:start + 4])
    assert row(out, "service.web")[1].endswith(":80/tcp")
    assert "pod.web[0], pod.web[1], pod.web[2] (3 of 3 ready)" in out
    assert "Problems:" not in out
    assert out.rstrip().endswith("No reconcile actions recorded.")


def test_an_unhealthy_replica_shows_its_health_and_leaves_the_endpoints(cfg, capsys):
    edit_world(world(cfg), "pod.web[1]", lambda a: None, status=UNHEALTHY)
    code, out, err = orch(capsys, "status", str(cfg))
    assert code == 0, err
    assert row(out, "pod.web[1]")[2:4] == ["degraded", "unhealthy"]
    assert row(out, "pod.web[0]")[2] == "running"
    assert 'pod.web[1] is unhealthy: 3 failing checks (container httpd, last output: "connection refused")' in out
    assert "pod.web[0], pod.web[2] (2 of 3 ready)" in out


def test_usage_is_shown_and_no_usage_skips_it(cfg, capsys):
    edit_world(world(cfg), "pod.web[0]", lambda a: None, usage={"cpu": 0.123, "memory": 12 * 2**20})
    edit_world(world(cfg), "pod.web[2]", lambda a: None, usage={"cpu": 0.4, "memory": 3 * 2**19})
    # a replica that is not running is not measured, whatever the provider would say
    edit_world(world(cfg), "pod.web[2]", lambda a: None, status=UNHEALTHY)
    code, out, err = orch(capsys, "status", str(cfg))
    assert code == 0, err
    assert row(out, "pod.web[0]")[5:7] == ["0.12/0.5", "12Mi/64Mi"]
    assert row(out, "pod.web[1]")[5:7] == ["-/0.5", "-/64Mi"]
    assert row(out, "pod.web[2]")[5:7] == ["-/0.5", "-/64Mi"]
    code, out, err = orch(capsys, "status", "--no-usage", str(cfg))
    assert code == 0, err
    assert row(out, "pod.web[0]")[5:7] == ["-/0.5", "-/64Mi"]
    code, out, _ = orch(capsys, "status", "--no-usage", "--json", str(cfg))
    assert json.loads(out)["usage"] == "skipped"


def test_json_document(cfg, capsys):
    edit_world(world(cfg), "pod.web[0]", lambda a: None, usage={"cpu": 0.25, "memory": 2**20})
    edit_world(world(cfg), "pod.web[2]", lambda a: None, status=UNHEALTHY)
    code, out, err = orch(capsys, "status", "--json", str(cfg))
    assert code == 0, err
    doc = json.loads(out)
    assert doc["format_version"] == 1 and doc["applied"] is True and doc["usage"] == "measured"
    assert [(n["name"], n["address"], n["state"], n["reachable"]) for n in doc["nodes"]] == [
        ("n1", "198.18.0.11", "ready", True), ("n2", "198.18.0.12", "ready", True)]
    assert sum(n["pods"] for n in doc["nodes"]) == 3
    pods = {p["address"]: p for p in doc["pods"]}
    assert list(pods) == ["pod.web[0]", "pod.web[1]", "pod.web[2]"]
    assert pods["pod.web[0]"]["cpu"] == {"used": 0.25, "requested": 0.5}
    assert pods["pod.web[0]"]["memory"] == {"used": 2**20, "requested": 64 * 2**20}
    bad = pods["pod.web[2]"]
    assert (bad["state"], bad["health"], bad["ready"]) == ("degraded", "unhealthy", False)
    assert bad["members"][0]["failing_streak"] == 3 and bad["problems"][0].startswith("is unhealthy")
    (svc,) = doc["services"]
    assert svc["address"] == "service.web" and svc["port"] == 80 and svc["protocol"] == "tcp"
    assert (svc["selected"], svc["ready"]) == (3, 2)
    assert [e["pod"] for e in svc["endpoints"]] == ["pod.web[0]", "pod.web[1]"]
    assert all(e["ip"].startswith("198.19.") for e in svc["endpoints"])
    assert doc["reconcile"] == []


def test_the_reconcilers_last_actions(cfg, capsys):
    state_path = LocalBackend.for_config_dir(cfg).path
    record(state_path, [Event("restart", f"pod.web[{i % 3}]", f"because of #{i}", at=1_790_000_000.0 + i)
                        for i in range(12)])
    record(state_path, [Event("replace", "pod.web[1]", "unhealthy: 3 failing checks", at=1_790_000_100.5)])
    code, out, err = orch(capsys, "status", str(cfg))
    assert code == 0, err
    tail = out[out.index("Last reconcile actions:"):].splitlines()
    assert len(tail) == 11  # the heading and the last ten, newest last
    assert tail[1] == "  2026-09-21T14:13:23Z restart pod.web[0]: because of #3"
    assert tail[-1] == "  2026-09-21T14:15:00Z replace pod.web[1]: unhealthy: 3 failing checks"
    code, out, _ = orch(capsys, "status", "--json", str(cfg))
    last = json.loads(out)["reconcile"][-1]
    assert (last["action"], last["subject"], last["reason"]) == ("replace", "pod.web[1]",
                                                                 "unhealthy: 3 failing checks")


def test_a_node_that_does_not_answer_and_a_pod_deleted_outside(cfg, capsys, monkeypatch):
    st = LocalBackend.for_config_dir(cfg).read()
    on_n2 = sorted(str(i.addr) for i in st if i.type == "pod" and i.attributes["node"] == "n2")
    on_n1 = sorted(str(i.addr) for i in st if i.type == "pod" and i.attributes["node"] == "n1")
    assert on_n2 and on_n1
    edit_world(world(cfg), on_n1[0], None)
    monkeypatch.setenv("ORCH_MEMORY_DOWN", "n2")
    # status takes no lock: it works while an apply (here: a lock held) is under way
    with LocalBackend.for_config_dir(cfg).lock("apply"):
        code, out, err = orch(capsys, "status", str(cfg))
    assert code == 0, err
    assert "Traceback" not in err
    assert row(out, "n2")[3:] == ["not", "answering", "(Cannot", "reach", "node)"]
    for a in on_n2:
        assert row(out, a)[2] == "unknown"
        assert f"{a} is not observed: Cannot reach node" in out
    assert row(out, on_n1[0])[2] == "missing"
    assert f"{on_n1[0]} is missing: deleted outside of orch" in out
    ready = on_n1[1:]  # the deleted replica is no endpoint, and neither are those not observed
    assert f"{', '.join(ready)} ({len(ready)} of {len(ready) + len(on_n2)} ready)" in out


def test_nothing_applied_and_errors(tmp_path, monkeypatch, capsys):
    d = memory_config_dir(tmp_path, monkeypatch)
    (d / "main.orch").write_text(CONFIG)
    code, out, err = orch(capsys, "status", str(d))
    assert (code, out.strip(), err) == (0, "Nothing applied yet (no state): run orch apply first.", "")
    code, out, _ = orch(capsys, "status", "--json", str(d))
    doc = json.loads(out)
    assert code == 0 and doc["applied"] is False and doc["pods"] == []
    assert not (d / "orch.orchstate").exists()  # read-only: nothing written
    code, out, err = orch(capsys, "status", str(tmp_path / "nowhere"))
    assert code == 1 and out == "" and "Error:" in err and "Traceback" not in err
    code, out, err = orch(capsys, "status", "--var", "novalue", str(d))
    assert code == 1 and "Invalid --var option" in err
    (d / "main.orch").write_text('pod "x" {\n  replicas = \n}\n')
    code, out, err = orch(capsys, "status", str(d))
    assert code == 1 and out == "" and "Error:" in err


# ---- pure parts ---------------------------------------------------------------------------------------

def inst(where: str, /, **attrs):
    """A state instance as the view reads it (``address`` is a node's attribute, hence ``where``)."""
    a = ResourceAddress.parse(where)
    return SimpleNamespace(addr=a, type=a.type, attributes=attrs, private=None)


def pod_attrs(node: str, ip: str, cpu: float | None = 0.25, memory: int | None = 64 * 2**20):
    res = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    return {"node": node, "ip": ip, "labels": {"app": "web"},
            "container": [{"name": "app", "resources": res}, {"name": "side", "resources": {"cpu": 0.25}}]}


def test_render_over_plain_data():
    instances = [
        inst("node.n1", address="198.18.0.11", schedulable=False), inst("node.n2", address="198.18.0.12"),
        inst("pod.web[0]", **pod_attrs("n1", "198.19.128.2")),
        inst("pod.web[1]", **pod_attrs("n1", "198.19.128.3")),
        inst("pod.web[10]", **pod_attrs("n2", "198.19.129.2", cpu=None, memory=None)),
        inst("service.web", cluster_ip="198.18.231.65", port=80, protocol="tcp", target_port=8080,
             selector={"app": "web"}),
        inst("service.none", cluster_ip="198.18.231.66", port=53, protocol="udp", selector={"app": "db"}),
    ]
    A = ResourceAddress.parse
    status = {
        A("node.n2"): ObjectStatus("unknown", reachable=False, message="198.18.0.12 did not answer"),
        A("pod.web[0]"): ObjectStatus("running", members=(MemberStatus("app", "running", health="healthy",
                                                                       restarts=2),)),
        A("pod.web[1]"): ObjectStatus("degraded", members=(MemberStatus("app", "running", health="unhealthy",
                                                                        failing_streak=5, last_output="s3cret"),)),
        A("pod.web[10]"): ObjectStatus("unknown", reachable=False, message="198.18.0.12 did not answer"),
    }
    usage = {A("pod.web[0]"): Usage(0.1234, 12 * 2**20)}
    history = [{"time": "2026-11-30T19:53:27.123456Z", "action": "replace", "subject": "pod.web[1]",
                "reason": "unhealthy: s3cret"}]
    view = build_view(instances, status, usage, history, scrub=lambda s: s.replace("s3cret", "(sensitive value)"))
    assert isinstance(view, StatusView)
    assert [p.address for p in view.pods] == ["pod.web[0]", "pod.web[1]", "pod.web[10]"]  # by index, not text
    text = render_text(view)
    assert text.splitlines()[:3] == [
        "NODE  ADDRESS      PODS  STATE",
        "n1    198.18.0.11  2     ready, cordoned",
        "n2    198.18.0.12  1     not answering (198.18.0.12 did not answer)",
    ]
    pods = text.splitlines()[4:8]
    assert pods == [
        "POD          NODE  STATE     HEALTH     RESTARTS  CPU (used/req)  MEMORY (used/req)  IP",
        "pod.web[0]   n1    running   healthy    2         0.12/0.5        12Mi/64Mi          198.19.128.2",
        "pod.web[1]   n1    degraded  unhealthy  0         -/0.5           -/64Mi             198.19.128.3",
        "pod.web[10]  n2    unknown   -          0         -/0.25          -/-                198.19.129.2",
    ]
    assert "s3cret" not in text and "(sensitive value)" in text
    assert "service.web   198.18.231.65:80/tcp -> 8080  pod.web[0] (1 of 3 ready)" in text
    assert "service.none  198.18.231.66:53/udp          none (no pod matches its selector)" in text
    assert text.endswith("Last reconcile actions:\n"
                         "  2026-11-30T19:53:27Z replace pod.web[1]: unhealthy: (sensitive value)")
    doc = to_json(view)
    json.dumps(doc)  # plain data
    assert doc["pods"][0]["restarts"] == 2 and doc["pods"][0]["cpu"] == {"used": 0.1234, "requested": 0.5}
    assert doc["pods"][2]["memory"] == {"used": None, "requested": None}
    assert doc["nodes"][0]["schedulable"] is False
    assert render_text(StatusView(applied=False)).startswith("Nothing applied yet")
    assert render_text(StatusView()) == "No pods.\n\nNo reconcile actions recorded."


def test_quantities_and_measure():
    assert [cores(v) for v in (None, 0, 0.5, 0.25, 0.123, 0.004, 2.0, 1.25)] == \
        ["-", "0", "0.5", "0.25", "0.12", "0.004", "2", "1.25"]
    assert [mem(v) for v in (None, 512, 2048, 64 * 2**20, 1536 * 2**20, 12_582_912, 300 * 2**20)] == \
        ["-", "512B", "2Ki", "64Mi", "1.5Gi", "12Mi", "300Mi"]
    pods = [inst("pod.web[0]"), inst("pod.web[1]"), inst("pod.web[2]")]
    A = ResourceAddress.parse
    status = {A("pod.web[0]"): ObjectStatus("running"), A("pod.web[1]"): ObjectStatus("stopped"),
              A("pod.web[2]"): ObjectStatus("running", reachable=False)}
    assert measure(object(), pods, status) is None  # a provider without metrics: not available

    class Measuring:
        asked: list = []

        def metrics(self, objects):
            Measuring.asked = [str(o.address) for o in objects]
            return {o.address: Usage(0.1, 100) for o in objects}

    assert measure(Measuring(), pods, status) == {A("pod.web[0]"): Usage(0.1, 100)}
    assert Measuring.asked == ["pod.web[0]"]  # only running, reachable pods are measured

    class Broken:
        def metrics(self, objects):
            raise RuntimeError("stats API gone")

    got = measure(Broken(), pods, status)
    assert got is not None and got[A("pod.web[0]")].cpu is None
    assert "stats API gone" in got[A("pod.web[0]")].detail
