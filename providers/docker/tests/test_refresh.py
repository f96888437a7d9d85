"""Refresh: one list per node, reconstruction of each pod, drift, orphans, unreachable nodes."""

from __future__ import annotations

import json

from orch_provider_docker import naming
from orch_provider_docker.provider import DockerProvider

from orchdsl.addrs import ResourceAddress
from orchdsl.sdk.values import configured_changes
from orchdsl.plan.model import Action
from orchdsl.plan.render_text import render_plan_text
from orchdsl.sdk import StateObject

from docker_fakes import FakeCluster
from docker_helpers import actions, apply, plan, state_of, write_config

A = ResourceAddress.parse


def _deployed(tmp_path, replicas=3):
    cluster = FakeCluster("n1", "n2", "n3")
    write_config(tmp_path, replicas=replicas)
    apply(tmp_path, cluster)
    return cluster


def _prior(tmp_path) -> tuple[str, list[StateObject]]:
    st = state_of(tmp_path)
    return st.lineage, [StateObject(i.addr, dict(i.attributes), dict(i.private or {})) for i in st]


def _refresh(tmp_path, cluster):
    lineage, prior = _prior(tmp_path)
    p = DockerProvider(connect=cluster.connect)
    p.configure({}, lineage)
    return p.refresh(prior), prior


def test_one_list_call_per_node_and_no_drift(tmp_path):
    cluster = _deployed(tmp_path, replicas=9)
    for e in cluster.engines.values():
        e.calls.clear()
    res, prior = _refresh(tmp_path, cluster)
    assert not res.diagnostics and not res.orphans
    for e in cluster.engines.values():
        # not one call per pod: the node, its containers, its pod network
        assert [c[0] for c in e.calls] == ["info", "list", "networks"]
    for obj in prior:
        now = res.current[obj.address]
        assert now is not None
        assert configured_changes(now.attributes, obj.attributes) == [], obj.address
    p, _ = plan(tmp_path, cluster)
    assert actions(p) == {} and not p.drift


def test_missing_infra_or_app_container_means_gone(tmp_path):
    cluster = _deployed(tmp_path)
    cluster["n1"].remove(cluster["n1"].by_name("web-0-infra")["Id"])
    cluster["n2"].remove(cluster["n2"].by_name("web-1-httpd")["Id"])
    res, _ = _refresh(tmp_path, cluster)
    assert res.current[A("pod.web[0]")] is None
    assert res.current[A("pod.web[1]")] is None
    assert res.current[A("pod.web[2]")] is not None
    p, _ = plan(tmp_path, cluster)
    assert actions(p) == {"pod.web[0]": Action.CREATE, "pod.web[1]": Action.CREATE}
    assert {str(d.address) for d in p.drift} == {"pod.web[0]", "pod.web[1]"}


def test_stopped_infra_means_gone_stopped_app_is_status_repaired_in_place(tmp_path):
    cluster = _deployed(tmp_path)
    cluster["n1"].stop("web-0-infra")
    cluster["n2"].stop("web-1-httpd", code=143)
    res, _ = _refresh(tmp_path, cluster)
    assert res.current[A("pod.web[0]")] is None
    now = res.current[A("pod.web[1]")]
    assert now.attributes["container"][0]["name"] == "httpd"  # attributes say what it is, status what it does
    assert now.private["not_running"] == ["httpd"]
    assert now.status.state == "degraded" and now.status.members[0].state == "exited"
    assert now.status.members[0].exit_code == 143
    p, _ = plan(tmp_path, cluster)
    assert actions(p) == {"pod.web[0]": Action.CREATE, "pod.web[1]": Action.UPDATE}
    assert "pod.web[1]" not in {str(d.address) for d in p.drift}  # not drift: status
    web1 = next(c for c in p.changes if str(c.address) == "pod.web[1]")
    assert web1.action_reason == "update_because_status" and "container httpd is exited (143)" in web1.reason
    assert str(A("pod.web[1]")) + " is degraded: container httpd exited (143)" in render_plan_text(p)
    # apply restarts it, and the next plan is clean
    apply(tmp_path, cluster)
    assert cluster["n2"].by_name("web-1-httpd")["State"] == "running"
    p, _ = plan(tmp_path, cluster)
    assert actions(p) == {} and not p.drift


def test_exited_job_with_restart_no_is_not_drift(tmp_path):
    cluster = FakeCluster("n1", "n2", "n3")
    write_config(tmp_path, replicas=1)
    text = (tmp_path / "main.orch").read_text().replace('labels   = { app = "web" }', 'restart = "no"')
    (tmp_path / "main.orch").write_text(text)
    apply(tmp_path, cluster)
    cluster["n1"].stop("web-0-httpd", code=0)
    p, _ = plan(tmp_path, cluster)
    assert actions(p) == {} and not p.drift


def test_changed_image_is_drift_that_replaces(tmp_path):
    cluster = _deployed(tmp_path, replicas=1)
    # the tag now names another image: Docker lists the container's image by ID
    cluster["n1"].by_name("web-0-httpd")["Image"] = "sha256:0123456789ab"
    res, _ = _refresh(tmp_path, cluster)
    assert res.current[A("pod.web[0]")].attributes["container"][0]["image"] == "sha256:0123456789ab"
    p, _ = plan(tmp_path, cluster)
    assert actions(p) == {"pod.web[0]": Action.REPLACE}


def test_containers_from_another_spec_show_that_spec(tmp_path):
    """Recreated by hand (or by another orch) with our labels but other settings: the config hash differs,
    and the spec label tells what they are."""
    cluster = _deployed(tmp_path, replicas=1)
    eng = cluster["n1"]
    infra = eng.by_name("web-0-infra")
    spec = json.loads(infra["Config"]["Labels"][naming.SPEC])
    spec["container"][0]["env"] = {"GREETING": "tampered"}
    for c in eng.containers.values():
        c["Config"]["Labels"][naming.CONFIG_HASH] = "v1:other"
    infra["Config"]["Labels"][naming.SPEC] = json.dumps(spec)
    res, _ = _refresh(tmp_path, cluster)
    assert res.current[A("pod.web[0]")].attributes["container"][0]["env"] == {"GREETING": "tampered"}
    p, _ = plan(tmp_path, cluster)
    assert actions(p) == {"pod.web[0]": Action.REPLACE}


def test_orphans_of_our_lineage_are_adopted_others_ignored(tmp_path):
    cluster = _deployed(tmp_path, replicas=2)
    lineage, prior = _prior(tmp_path)
    # the state lost pod.web[1] (an apply killed before it could record it)
    prior = [o for o in prior if str(o.address) != "pod.web[1]"]
    # another state's pod on the same node
    cluster["n1"].add_raw("x-infra", {naming.LINEAGE: "someone-else", naming.ADDRESS: "pod.x",
                                      naming.ROLE: "infra"})
    p = DockerProvider(connect=cluster.connect)
    p.configure({}, lineage)
    res = p.refresh(prior)
    assert [str(o.address) for o in res.orphans] == ["pod.web[1]"]
    orphan = res.orphans[0]
    assert orphan.attributes["node"] == "n2" and orphan.attributes["container"][0]["name"] == "httpd"
    assert orphan.attributes["id"] == cluster["n2"].by_name("web-1-infra")["Id"][:12]


def test_unreachable_node_is_a_diagnostic_naming_it(tmp_path):
    cluster = _deployed(tmp_path)
    cluster.unreachable.add("n2")
    res, _ = _refresh(tmp_path, cluster)
    errs = [d for d in res.diagnostics if d.is_error]
    assert len(errs) == 1
    assert errs[0].address == "node.n2" and errs[0].summary == "Cannot reach node"
    assert "Connection refused" in errs[0].detail
    assert A("node.n2") not in res.current  # kept as the state says
    down = res.current[A("pod.web[1]")]  # as recorded, and marked not observed
    assert not down.status.reachable and "node.n2 did not answer" in down.status.message
    assert res.current[A("pod.web[0]")] is not None
    # The plan goes on without the down node (its objects keep what the state says), warning about it:
    # changes there fail at apply, on their own, while the other nodes' changes complete.
    p, diags = plan(tmp_path, cluster)
    assert p is not None
    assert any(d.severity == "warning" and d.address == "node.n2" for d in diags)
    assert not any(d.is_error for d in diags)


def test_node_facts_refresh_reported_capacity_only(tmp_path):
    cluster = FakeCluster("n1", "n2", "n3")
    write_config(tmp_path, replicas=0, nodes='node "n1" {\n address = "198.18.0.11"\n capacity {\n cpu = 1\n }\n}\n'
                 'node "n2" {\n address = "198.18.0.12"\n}\nnode "n3" {\n address = "198.18.0.13"\n}\n')
    apply(tmp_path, cluster)
    st = state_of(tmp_path)
    n1 = st.get(A("node.n1"))
    assert n1.attributes["capacity"] == {"cpu": 1, "memory": 8 << 30}
    assert n1.attributes["id"] == "ENGINE-n1" and n1.attributes["engine_version"] == "20.10.24"
    assert st.get(A("node.n2")).attributes["capacity"] == {"cpu": 4, "memory": 8 << 30}
    p, _ = plan(tmp_path, cluster)
    assert actions(p) == {} and not p.drift


def test_a_down_node_fails_only_its_own_changes(tmp_path):
    from docker_helpers import Run

    cluster = _deployed(tmp_path)  # pod.web[0..2] on n1, n2, n3
    placed = {str(i.addr): i.attributes.get("node") for i in state_of(tmp_path) if i.type == "pod"}
    down_pod = next(a for a, n in placed.items() if n == "n2")
    cluster.unreachable.add("n2")
    write_config(tmp_path, replicas=3, greeting='"bye"')  # every pod must be replaced
    run = Run(tmp_path, cluster)
    p, diags = run.plan()
    assert p is not None and not [d for d in diags if d.is_error]
    assert set(actions(p)) == set(placed)
    from orchdsl.engine import workflow

    outcome = workflow.apply(run.session, p, run.state, lambda line: None)
    failed = {d.address for d in outcome.diagnostics if d.is_error}
    assert failed == {down_pod}  # the down node's pod fails, named; nothing else does
    assert outcome.added == 2 and outcome.destroyed == 2


def test_group_keeps_each_app_container_with_its_infra_on_the_same_node() -> None:
    """A replica moved off a node that stopped answering: when the node answers again, its older generation
    (same spec, same address) is listed too; the current pod's app container is the one beside its infra."""
    from orch_provider_docker import naming, pods

    def c(cid: str, role: str, created: int = 0) -> dict:
        labels = {naming.LINEAGE: "L", naming.ADDRESS: "pod.web[1]", naming.ROLE: role, naming.CONFIG_HASH: "h"}
        if role == naming.ROLE_APP:
            labels[naming.CONTAINER] = "httpd"
        return {"Id": cid, "Labels": labels, "Created": created, "State": "running"}

    listed = {"n2": [c("old-infra", naming.ROLE_INFRA, 1), c("old-app", naming.ROLE_APP, 1)],
              "n3": [c("new-infra", naming.ROLE_INFRA, 2), c("new-app", naming.ROLE_APP, 2)]}
    obs = pods.group(listed, prefer={("L", "pod.web[1]"): "new-infra"})[("L", "pod.web[1]")]
    assert obs.node == "n3" and obs.infra is not None and obs.infra["Id"] == "new-infra"
    assert obs.apps["httpd"]["Id"] == "new-app"
    assert sorted(x["Id"] for x in obs.extra) == ["old-app", "old-infra"]
