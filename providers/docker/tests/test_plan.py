"""Planning pods: placement, in-place vs replacement, plan-time checks. Driven through orch's own planner."""

from __future__ import annotations

from orch_provider_docker import pods

from orchdsl.addrs import ResourceAddress
from orchdsl.plan.model import Action

from docker_fakes import FakeCluster
from docker_helpers import NODES, actions, apply, plan, write_config

A = ResourceAddress.parse


def test_first_plan_places_replicas_and_leaves_computed_unknown(tmp_path):
    write_config(tmp_path, replicas=4)
    p, diags = plan(tmp_path, FakeCluster("n1", "n2", "n3"))
    assert not [d for d in diags if d.is_error]
    after = {str(c.address): c.after for c in p.changes if c.address.type == "pod"}
    assert [after[f"pod.web[{i}]"]["node"] for i in range(4)] == ["n1", "n2", "n3", "n1"]
    from orchdsl.plan.model import UNKNOWN
    assert after["pod.web[0]"]["id"] is UNKNOWN and after["pod.web[0]"]["ip"] is UNKNOWN


def test_placement_survives_scaling_and_node_removal(tmp_path):
    cluster = FakeCluster("n1", "n2", "n3", "n9")
    write_config(tmp_path, replicas=3)
    apply(tmp_path, cluster)
    write_config(tmp_path, replicas=5)
    p, _ = plan(tmp_path, cluster)
    assert actions(p) == {"pod.web[3]": Action.CREATE, "pod.web[4]": Action.CREATE}
    nodes = {str(c.address): (c.after or {}).get("node") for c in p.changes}
    assert nodes["pod.web[0]"] == "n1" and nodes["pod.web[3]"] == "n1" and nodes["pod.web[4]"] == "n2"
    # n2 leaves the configuration: a replacement of pod.web[1] goes elsewhere; others stay put
    write_config(tmp_path, replicas=3, nodes=NODES.replace('node "n2"', 'node "n9"'))
    p, _ = plan(tmp_path, cluster, replace=[A("pod.web[1]")])
    nodes = {str(c.address): (c.after or {}).get("node") for c in p.changes}
    assert nodes["pod.web[0]"] == "n1" and nodes["pod.web[2]"] == "n3"
    assert nodes["pod.web[1]"] in ("n1", "n3", "n9")


def test_env_change_replaces_memory_change_updates(tmp_path):
    cluster = FakeCluster("n1", "n2", "n3")
    write_config(tmp_path, replicas=2)
    apply(tmp_path, cluster)
    write_config(tmp_path, replicas=2, greeting='"bye"')
    p, _ = plan(tmp_path, cluster)
    assert actions(p) == {"pod.web[0]": Action.REPLACE, "pod.web[1]": Action.REPLACE}
    assert p.changes[-1].replace_paths == [("container", 0, "env")]
    write_config(tmp_path, replicas=2, memory="64Mi")
    p, _ = plan(tmp_path, cluster)
    assert actions(p) == {"pod.web[0]": Action.UPDATE, "pod.web[1]": Action.UPDATE}


def test_replace_paths_classification():
    base = {"name": "web-0", "restart": "always", "labels": {"a": "1"}, "node_selector": {},
            "container": [{"name": "c", "image": "i:1", "env": {"A": "1"}, "pull": "missing",
                           "resources": {"memory": 100, "cpu": 0.5}}]}

    def with_(**kw):
        import copy
        v = copy.deepcopy(base)
        for k, x in kw.items():
            if k.startswith("c_"):
                v["container"][0][k[2:]] = x
            else:
                v[k] = x
        return v

    assert pods.replace_paths(base, with_(restart="no")) == []
    assert pods.replace_paths(base, with_(labels={"a": "2"})) == []
    assert pods.replace_paths(base, with_(c_resources={"memory": 200, "cpu": 1})) == []
    assert pods.replace_paths(base, with_(c_pull="always")) == []
    assert pods.replace_paths(base, with_(c_image="i:2")) == [("container", 0, "image")]
    assert pods.replace_paths(base, with_(c_env={"A": "2"})) == [("container", 0, "env")]
    assert pods.replace_paths(base, with_(hostname="h")) == [("hostname",)]
    two = with_()
    two["container"].append({"name": "d", "image": "i:1"})
    assert pods.replace_paths(base, two) == [("container",)]
    # a limit that goes away (with another change) cannot be lifted by docker update
    assert pods.replace_paths(base, with_(c_resources={"memory": 200})) == [("container", 0, "resources")]
    # a renamed container is replaced (a stopped one is a repair: status, not attributes)
    assert pods.replace_paths(base, with_(c_name="d")) == [("container", 0, "name")]
    assert pods.repair_reason(None, ["c"]) is not None and pods.repair_reason(None, None) is None
    # scheduling attributes change nothing on Docker (a pod they displace gets another node: the core's move)
    assert pods.replace_paths(base, with_(node_selector={"zone": "a"})) == []
    assert pods.replace_paths(base, with_(placement="binpack", anti_affinity="hard")) == []


def test_node_selector_change_that_excludes_the_node_replaces(tmp_path):
    cluster = FakeCluster("n1", "n2", "n3")
    write_config(tmp_path, replicas=2)
    apply(tmp_path, cluster)
    extra = ""
    text = (tmp_path / "main.orch").read_text().replace('labels   = { app = "web" }',
                                                         'labels   = { app = "web" }\n  node_selector = { zone = "b" }')
    (tmp_path / "main.orch").write_text(text + extra)
    p, _ = plan(tmp_path, cluster)
    # pod.web[0] is on n1 (no zone b): moves; pod.web[1] is on n2 (zone b): stays, in place
    assert actions(p) == {"pod.web[0]": Action.REPLACE, "pod.web[1]": Action.UPDATE}
    moved = next(c for c in p.changes if str(c.address) == "pod.web[0]")
    assert moved.after["node"] == "n2"


def test_missing_image_with_pull_never_fails_the_plan(tmp_path):
    cluster = FakeCluster("n1", "n2", "n3")
    cluster["n2"].images.clear()
    write_config(tmp_path, replicas=3)
    _, diags = plan(tmp_path, cluster)
    errors = [d for d in diags if d.is_error]
    assert len(errors) == 1
    assert errors[0].summary == "Image not on node" and errors[0].address == "pod.web[1]"
    assert "n2" in errors[0].detail and 'pull = "never"' in errors[0].detail
    # one inspect per node and image, however many pods
    assert sum(1 for c in cluster["n1"].calls if c[0] == "image") == 1


def test_unschedulable_pod_is_a_plan_error(tmp_path):
    write_config(tmp_path, replicas=1)
    text = (tmp_path / "main.orch").read_text().replace('labels   = { app = "web" }',
                                                         'node_selector = { gpu = "yes" }')
    (tmp_path / "main.orch").write_text(text)
    # no node can ever run it: found before any plan, by orch validate (plan loads the same way)
    from orchdsl.config import load_config

    _, diags = load_config(tmp_path, {}, [])
    err = [d for d in diags if d.is_error]
    assert err and err[0].summary == "No node can run pod.web[0]"
    assert "label gpu=yes not matched on node.n1 (no gpu label)" in err[0].detail
    assert err[0].subject is not None and err[0].subject.start.line > 1  # the pod block


def test_reserved_labels_and_bad_env_names_are_plan_errors(tmp_path):
    write_config(tmp_path, replicas=1)
    text = (tmp_path / "main.orch").read_text().replace('init    = true',
                                                         'init = true\n    labels = { "orch.lineage" = "x" }')
    text = text.replace('env     = { GREETING = "hello" }', 'env = { "A=B" = "x" }')
    (tmp_path / "main.orch").write_text(text)
    # the resource model refuses both, so orch validate does too; the provider's own check stays behind it
    from orchdsl.config import load_config

    _, diags = load_config(tmp_path, {}, [])
    errors = " ".join(sorted(d.detail for d in diags if d.is_error))
    assert "'A=B' is not a valid environment variable name" in errors and '"orch." are orch\'s own' in errors
    from orch_provider_docker.provider import _validate_pod

    pod = {"container": [{"name": "c", "labels": {"orch.lineage": "x"}, "env": {"A=B": "x"}}]}
    summaries = sorted(d.summary for d in _validate_pod(ResourceAddress.parse("pod.web[0]"), pod))
    assert summaries == ["Invalid environment variable name", "Reserved label"]
