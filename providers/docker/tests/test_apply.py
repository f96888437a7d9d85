"""Apply on fake engines: create/update/delete/replace order, cleanup on failure, name conflicts, import."""

from __future__ import annotations

from orch_provider_docker import naming
from orch_provider_docker.provider import DockerProvider

from orchdsl.addrs import ResourceAddress
from orchdsl.plan.model import Action
from orchdsl.sdk import ApplyRequest, StateObject

from docker_fakes import FakeCluster
from docker_helpers import apply, plan, state_of, write_config

A = ResourceAddress.parse


def _ops(engine, kinds=("create", "start", "remove", "update", "rename")):
    return [(c[0], c[1]) for c in engine.calls if c[0] in kinds]


def test_container_names_carry_the_namespace(tmp_path):
    """Two configurations with a pod.web each share a node: their containers' names differ by namespace."""
    from docker_helpers import Run

    cluster = FakeCluster("n1", "n2", "n3")
    write_config(tmp_path / "shop", replicas=1, extra='orch {\n  namespace = "shop"\n}\n')
    _, outcome, _ = Run(tmp_path / "shop", cluster, namespaced=True).apply()
    assert outcome.ok, outcome.diagnostics
    infra = cluster["n1"].by_name("shop_web-0-infra")
    assert infra["Config"]["Labels"][naming.NAMESPACE] == "shop"
    assert infra["HostConfig"]["NetworkMode"] == "orch"  # orch's pod network on a node reached over SSH


def test_a_namespace_taken_by_another_configuration_fails_the_plan(tmp_path):
    """Two states, one namespace, one node: the second plan says so before anything collides."""
    from docker_helpers import Run

    cluster = FakeCluster("n1", "n2", "n3")
    for d in ("a", "b"):
        write_config(tmp_path / d, replicas=1, extra='orch {\n  namespace = "shop"\n}\n')
    _, outcome, _ = Run(tmp_path / "a", cluster, namespaced=True).apply()
    assert outcome.ok
    _, diags = Run(tmp_path / "b", cluster, namespaced=True).plan()
    [d] = [d for d in diags if d.is_error]
    assert d.summary == "Namespace used by another configuration" and 'namespace "shop"' in d.detail
    assert "orch { namespace" in d.hint


def test_create_makes_infra_then_apps_and_records_ids(tmp_path):
    cluster = FakeCluster("n1", "n2", "n3")
    write_config(tmp_path, replicas=1)
    _, outcome, lines = apply(tmp_path, cluster)
    assert outcome.ok, outcome.diagnostics
    eng = cluster["n1"]
    assert _ops(eng) == [("create", "web-0-infra"), ("start", "web-0-infra"),
                         ("create", "web-0-httpd"), ("start", "web-0-httpd")]
    infra, app = eng.by_name("web-0-infra"), eng.by_name("web-0-httpd")
    assert app["HostConfig"]["NetworkMode"] == f"container:{infra['Id']}"
    st = state_of(tmp_path).get(A("pod.web[0]"))
    assert st.attributes["id"] == infra["Id"][:12] and st.attributes["ip"] == infra["IP"]
    assert st.attributes["node"] == "n1"
    assert st.private == {"node": "n1", "infra": infra["Id"], "containers": {"httpd": app["Id"]}}
    lb = app["Config"]["Labels"]
    assert lb[naming.LINEAGE] == state_of(tmp_path).lineage and lb[naming.ADDRESS] == "pod.web[0]"
    assert any("running on n1" in line for line in lines)


def test_update_in_place_uses_docker_update(tmp_path):
    cluster = FakeCluster("n1", "n2", "n3")
    write_config(tmp_path, replicas=1)
    apply(tmp_path, cluster)
    cluster["n1"].calls.clear()
    write_config(tmp_path, replicas=1, memory="64Mi")
    _, outcome, _ = apply(tmp_path, cluster)
    assert outcome.changed == 1 and outcome.added == 0
    ups = [c for c in cluster["n1"].calls if c[0] == "update"]
    assert len(ups) == 1 and ups[0][1] == "web-0-httpd"
    assert ups[0][2]["Memory"] == 64 << 20 and ups[0][2]["MemorySwap"] == 64 << 20
    assert not [c for c in cluster["n1"].calls if c[0] in ("create", "remove")]
    assert state_of(tmp_path).get(A("pod.web[0]")).attributes["container"][0]["resources"]["memory"] == 64 << 20


def test_delete_removes_apps_before_infra(tmp_path):
    cluster = FakeCluster("n1", "n2", "n3")
    write_config(tmp_path, replicas=1)
    apply(tmp_path, cluster)
    cluster["n1"].calls.clear()
    _, outcome, _ = apply(tmp_path, cluster, destroy=True)
    assert outcome.ok and outcome.destroyed == 4  # 3 nodes + 1 pod
    assert _ops(cluster["n1"]) == [("remove", "web-0-httpd"), ("remove", "web-0-infra")]
    assert cluster["n1"].containers == {}


def test_replace_deletes_then_creates(tmp_path):
    cluster = FakeCluster("n1", "n2", "n3")
    write_config(tmp_path, replicas=1)
    apply(tmp_path, cluster)
    old = cluster["n1"].by_name("web-0-infra")["Id"]
    cluster["n1"].calls.clear()
    write_config(tmp_path, replicas=1, greeting='"bye"')
    _, outcome, _ = apply(tmp_path, cluster)
    assert outcome.added == 1 and outcome.destroyed == 1
    assert _ops(cluster["n1"]) == [("remove", "web-0-httpd"), ("remove", "web-0-infra"),
                                   ("create", "web-0-infra"), ("start", "web-0-infra"),
                                   ("create", "web-0-httpd"), ("start", "web-0-httpd")]
    assert cluster["n1"].by_name("web-0-infra")["Id"] != old
    assert "GREETING=bye" in cluster["n1"].by_name("web-0-httpd")["Config"]["Env"]


def test_create_before_destroy_creates_beside_the_deposed_pod_then_deletes_it(tmp_path):
    cluster = FakeCluster("n1", "n2", "n3")
    write_config(tmp_path, replicas=1)
    text = (tmp_path / "main.orch").read_text().replace(
        'labels   = { app = "web" }', 'labels   = { app = "web" }\n  lifecycle {\n    create_before_destroy = true\n  }')
    (tmp_path / "main.orch").write_text(text)
    apply(tmp_path, cluster)
    cluster["n1"].calls.clear()
    (tmp_path / "main.orch").write_text(text.replace('"hello"', '"bye"'))
    _, outcome, _ = apply(tmp_path, cluster)
    assert outcome.ok, outcome.diagnostics
    ops = _ops(cluster["n1"])
    kinds = [o[0] for o in ops]
    # the core sequences it: create the new pod (suffixed names: the old one still holds the plain names),
    # then delete the deposed one (apps before infra)
    assert kinds == ["create", "start", "create", "start", "remove", "remove"]
    assert ops[0][1].startswith("web-0-infra-next-") and ops[4][1] == "web-0-httpd" and ops[5][1] == "web-0-infra"
    assert [n.split("-next-")[0] for n in cluster["n1"].names()] == ["web-0-httpd", "web-0-infra"]
    st = state_of(tmp_path).get(A("pod.web[0]"))
    assert st.deposed == () and st.status == "ready"
    p, _ = plan(tmp_path, cluster)
    assert all(c.action is Action.NOOP for c in p.changes)


def test_failed_start_leaves_nothing_behind(tmp_path):
    cluster = FakeCluster("n1", "n2", "n3")
    cluster["n1"].fail_start.add("web-0-httpd")
    write_config(tmp_path, replicas=2)
    _, outcome, _ = apply(tmp_path, cluster)
    assert not outcome.ok
    err = [d for d in outcome.diagnostics if d.is_error]
    assert err[0].address == "pod.web[0]" and "failed to start web-0-httpd" in err[0].detail
    assert cluster["n1"].containers == {}  # the infra container was removed again
    assert cluster["n2"].names() == ["web-1-httpd", "web-1-infra"]  # the other pod is fine
    cluster["n1"].fail_start.clear()
    _, outcome, _ = apply(tmp_path, cluster)
    assert outcome.ok and cluster["n1"].names() == ["web-0-httpd", "web-0-infra"]


def test_name_conflicts_leftover_of_ours_is_replaced_foreign_is_an_error(tmp_path):
    cluster = FakeCluster("n1", "n2", "n3")
    write_config(tmp_path, replicas=0)
    apply(tmp_path, cluster)  # the state (and its lineage) exists
    write_config(tmp_path, replicas=2)
    lineage = state_of(tmp_path).lineage
    # a leftover of an earlier, interrupted attempt at pod.web[0] (not visible to refresh: new state)
    cluster["n1"].add_raw("web-0-infra", {naming.LINEAGE: lineage, naming.ADDRESS: "pod.web[0]",
                                          naming.ROLE: "app"})
    # someone else's container where pod.web[1] wants to be
    cluster["n2"].add_raw("web-1-infra", {"owner": "alice"})
    _, outcome, _ = apply(tmp_path, cluster)
    assert cluster["n1"].names() == ["web-0-httpd", "web-0-infra"]
    errs = [d for d in outcome.diagnostics if d.is_error]
    assert len(errs) == 1 and errs[0].address == "pod.web[1]"
    assert 'a container named "web-1-infra" already exists on node n2 (not made by orch)' in errs[0].detail
    assert cluster["n2"].by_name("web-1-infra")["Config"]["Labels"] == {"owner": "alice"}


def test_unreachable_node_names_the_node_at_plan_and_apply(tmp_path):
    cluster = FakeCluster("n1", "n2", "n3", unreachable=("n3",))
    write_config(tmp_path, replicas=6)
    # a new node is verified at plan time (and pods with pull = "never" check their images there)
    _, diags = plan(tmp_path, cluster)
    errs = [d for d in diags if d.is_error]
    assert {d.address for d in errs} == {"node.n3"} and errs[0].summary == "Cannot reach node"
    assert cluster.connects.count("n3") == 1  # one failed attempt per run, not one per pod
    # at apply (the node went away after the plan): the pod's change fails naming the node
    p = DockerProvider(connect=cluster.connect)
    p.configure({}, "L")
    world = {A("node.n3"): {"name": "n3", "address": "198.18.0.13"}}
    res = p.create(ApplyRequest(A("pod.web[2]"), {"name": "web-2", "node": "n3", "restart": "always",
                                                  "container": [{"name": "c", "image": "orch/busybox:test"}]},
                                None, world, lambda m: None))
    assert res.new is None and res.diagnostics[0].address == "node.n3"
    assert "pod.web[2]" in res.diagnostics[0].detail and "Connection refused" in res.diagnostics[0].detail
    assert cluster.connects.count("n3") == 2  # this provider's one attempt


def test_import_by_infra_id_or_name(tmp_path):
    cluster = FakeCluster("n1", "n2", "n3")
    write_config(tmp_path, replicas=1)
    apply(tmp_path, cluster)
    st = state_of(tmp_path)
    infra = cluster["n1"].by_name("web-0-infra")
    p = DockerProvider(connect=cluster.connect)
    p.configure({}, "another-lineage")
    p.refresh([StateObject(i.addr, dict(i.attributes)) for i in st if i.addr.type == "node"])
    for ref in (infra["Id"], infra["Id"][:12], "web-0-infra"):
        obj = p.import_object(A("pod.web[0]"), ref, {})
        assert obj is not None
        assert obj.attributes["container"][0]["env"] == {"GREETING": "hello"}
        assert obj.attributes["node"] == "n1"
        assert obj.private["lineage"] == st.lineage  # containers keep their labels: refresh finds them
    assert p.import_object(A("pod.web[0]"), "nope", {}) is None
    # refresh of the imported object under the other lineage finds it
    res = p.refresh([StateObject(i.addr, dict(i.attributes)) for i in st if i.addr.type == "node"]
                    + [obj])
    assert res.current[A("pod.web[0]")] is not None


def test_apply_without_lineage_refuses(tmp_path):
    p = DockerProvider(connect=FakeCluster("n1").connect)
    res = p.create(ApplyRequest(A("pod.web[0]"), {"node": "n1", "container": []}, None, {}, lambda m: None))
    assert res.new is None and res.diagnostics[0].summary == "Provider not configured"
