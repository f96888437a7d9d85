"""The configuration loader on a valid configuration: declarations, references, expansion, outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchdsl.addrs import ConfigAddress as CA
from orchdsl.addrs import ModuleStep, ResourceAddress
from orchdsl.config import expand, evaluate_outputs, load_config
from orchdsl.plan import UNKNOWN

VALID = Path(__file__).parent / "fixtures" / "config" / "valid"
APP = (ModuleStep("app"),)


@pytest.fixture(scope="module")
def config():
    cfg, diags = load_config(VALID, env={})
    # the fixture passes a sensitive variable through env on purpose (its sensitivity is tested below): the
    # one warning is that advice
    assert [d.summary for d in diags] == ["Sensitive value in an environment variable"], \
        "\n".join(d.render() for d in diags)
    return cfg


def _planned(cfg, *names):
    """ctx_values for the given resources, expanded in order, with made-up computed attributes."""
    ctx: dict = {}
    for name in names:
        decl = cfg.resources[name]
        instances, diags = expand(decl, ctx)
        assert not diags, "\n".join(d.render() for d in diags)
        values = []
        for i in instances:
            v = dict(i.values)
            if decl.type == "pod":
                v["ip"] = f"10.0.0.{i.key if isinstance(i.key, int) else 9}"
            values.append(v)
        ctx[decl.address] = values if decl.mode == "count" else \
            {i.key: v for i, v in zip(instances, values, strict=True)} if decl.mode == "for_each" else values[0]
    return ctx


def test_declarations(config):
    assert set(map(str, config.resources)) == {
        "node.n1", "node.n2", "pod.db", "pod.web", "pod.edge", "module.app.pod.api"}
    assert config.resources[CA("pod", "api", APP)].module == APP
    assert set(config.root_outputs) == {"web_ips", "api_url", "db_password"}
    assert (APP, "url") in config.outputs and ((), "db_url") in config.locals
    call = config.module_calls[APP]
    assert call.name == "app" and call.parent == () and set(call.inputs) == {"name", "db_url", "replicas"}


def test_variables_default_file_and_optional_attributes(config):
    v = config.variables
    assert v["replicas"].raw == 2
    assert v["env"].raw == "staging"  # from a.orchvars, over the default
    assert {k: x.raw for k, x in v["db"].raw.items()} == {"image": "orch/postgres:test", "memory": "256Mi",
                                                          "port": 5432}
    assert v["db_password"].sensitive


def test_modes_lifecycle_depends_on(config):
    web, edge, db = (config.resources[CA("pod", n)] for n in ("web", "edge", "db"))
    assert web.mode == "count" and web.count_argument == "replicas" and web.for_each_expr is None
    assert edge.mode == "for_each" and db.mode == "single"
    assert web.depends_on == [CA("pod", "db")]
    assert web.lifecycle.create_before_destroy and not web.lifecycle.prevent_destroy
    assert web.lifecycle.ignore_changes == [("labels",), ("container", 0, "env")]
    assert db.lifecycle.prevent_destroy


def test_references_through_locals_and_modules(config):
    refs = {str(a): sorted(map(str, d.references)) for a, d in config.resources.items()}
    # local.db_url -> local.db_host -> pod.db.ip; node.n1.name in a template
    assert refs["pod.web"] == ["node.n1", "pod.db"]
    assert refs["pod.db"] == []
    assert refs["pod.edge"] == ["pod.web"]
    # a module's resources see the root resources behind their module arguments
    assert refs["module.app.pod.api"] == ["pod.db"]
    api_url = config.outputs[((), "api_url")]
    assert api_url.references == {CA("pod", "api", APP)}


def test_expand_count_addresses_and_values(config):
    instances, diags = expand(config.resources[CA("pod", "web")], {})
    assert not diags
    assert [str(i.address) for i in instances] == ["pod.web[0]", "pod.web[1]"]
    first = instances[0].values
    assert first["name"] == "web-0" and "ip" not in first
    c = first["container"][0]
    assert c["name"] == "httpd"
    assert c["resources"] == {"cpu": 0.25, "memory": 64 * 2**20, "limits": {"cpu": None, "memory": 128 * 2**20}}
    assert c["health"]["interval"] == 5.0 and c["health"]["retries"] == 3
    assert c["ports"][1] == {"container_port": 9090, "host_port": None, "protocol": "udp", "name": None}
    assert c["env"]["DB_URL"] is UNKNOWN  # pod.db's ip is not known yet
    assert c["env"]["GREETING"] == "hello from n1 (0)"
    assert first["labels"] == {"app": "web", "env": "staging"}


def test_expand_for_each_addresses(config):
    instances, diags = expand(config.resources[CA("pod", "edge")], {})
    assert not diags
    assert [i.address for i in instances] == [ResourceAddress("pod", "edge", "a"), ResourceAddress("pod", "edge", "b")]
    assert str(instances[1].address) == 'pod.edge["b"]'
    assert instances[1].values["node_selector"] == {"zone": "b"}
    assert instances[1].values["name"] == "edge-b"


def test_expand_with_planned_values_and_sensitive_paths(config):
    ctx = _planned(config, CA("node", "n1"), CA("pod", "db"), CA("pod", "web"))
    db = expand(config.resources[CA("pod", "db")], ctx)[0][0]
    assert db.values["container"][0]["env"]["POSTGRES_PASSWORD"] == "hunter2"  # a sensitive variable
    assert ("container", 0, "env", "POSTGRES_PASSWORD") in db.sensitive_paths
    assert db.values["container"][0]["mounts"][0]["host_path"] == "/srv/pgdata"  # a directory of the node
    web = expand(config.resources[CA("pod", "web")], ctx)[0]
    assert web[1].values["container"][0]["env"]["DB_URL"] == "postgres://10.0.0.9:5432"
    edge = expand(config.resources[CA("pod", "edge")], ctx)[0]
    assert edge[0].values["container"][0]["env"]["UPSTREAM"] == "10.0.0.0,10.0.0.1"


def test_module_instances_and_outputs(config):
    instances, diags = expand(config.resources[CA("pod", "api", APP)], {})
    assert not diags
    assert [str(i.address) for i in instances] == ["module.app.pod.api[0]"]  # replicas = 1 from the module block
    assert instances[0].values["labels"] == {"app": "api"}
    outputs, diags = evaluate_outputs(config, {CA("pod", "api", APP): [{"ip": "10.0.0.7"}],
                                               CA("pod", "web"): [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]})
    assert not diags
    assert outputs["api_url"].value == "http://10.0.0.7:8000"
    assert outputs["web_ips"].value == ["10.0.0.1", "10.0.0.2"]
    assert outputs["db_password"].sensitive and outputs["db_password"].value is UNKNOWN


def test_outputs_unknown_before_apply(config):
    outputs, diags = evaluate_outputs(config, {})
    assert not diags
    assert outputs["web_ips"].value is UNKNOWN and not outputs["web_ips"].sensitive


def test_unknown_count_is_a_diagnostic(tmp_path):
    (tmp_path / "main.orch").write_text(
        'node "a" {\n  address = "h"\n}\nnode "b" {\n  count   = length(node.a.labels)\n  address = "h"\n}\n')
    cfg, diags = load_config(tmp_path, env={})
    assert not diags  # validation accepts a count known only later
    instances, diags = expand(cfg.resources[CA("node", "b")], {})
    assert instances == []
    [d] = diags
    assert d.summary == "Invalid count argument"
    assert "cannot be determined until apply" in d.detail and "known before apply" in d.hint
    assert (d.subject.start.line, d.subject.start.column) == (5, 13)
    instances, diags = expand(cfg.resources[CA("node", "b")], {CA("node", "a"): {"labels": {"x": "1"}}})
    assert not diags and [str(i.address) for i in instances] == ["node.b[0]"]


def test_unknown_for_each_keys_and_sensitive_count(tmp_path):
    (tmp_path / "main.orch").write_text(
        'variable "n" {\n  default   = 1\n  sensitive = true\n}\n'
        'node "a" {\n  address = "h"\n}\n'
        'node "b" {\n  for_each = toset([node.a.address, "x"])\n  address  = each.key\n}\n'
        'node "c" {\n  count   = var.n\n  address = "h"\n}\n')
    cfg, diags = load_config(tmp_path, env={})
    assert [d.summary for d in diags] == ["Invalid count argument"]  # sensitive count, found by validation
    _, diags = expand(cfg.resources[CA("node", "b")], {})
    assert [d.summary for d in diags] == ["Invalid for_each argument"]
    instances, diags = expand(cfg.resources[CA("node", "b")], {CA("node", "a"): {"address": "a"}})
    assert not diags and [i.key for i in instances] == ["a", "x"]


def test_unknown_values_pass_schema_validation(tmp_path):
    (tmp_path / "main.orch").write_text(
        # (a node reading a pod would be a cycle: every node is planned before any pod)
        'node "db" {\n  address = "x"\n}\n'
        'node "n" {\n  address = node.db.address\n  labels  = { db = node.db.address }\n'
        '  port    = length(node.db.address)\n}\n')
    cfg, diags = load_config(tmp_path, env={})
    assert not diags
    [n], diags = expand(cfg.resources[CA("node", "n")], {})
    assert not diags
    assert n.values["port"] is UNKNOWN and n.values["labels"] == {"db": UNKNOWN}
    assert n.values["address"] is UNKNOWN
    assert n.values["user"] == "root"  # defaults filled around the unknowns


def test_value_errors_found_with_known_values(tmp_path):
    (tmp_path / "main.orch").write_text(
        'node "a" {\n  address = "h"\n}\n'
        'node "s" {\n  address = "h"\n  port = length(node.a.labels)\n}\n')
    cfg, diags = load_config(tmp_path, env={})
    assert not diags
    _, diags = expand(cfg.resources[CA("node", "s")], {CA("node", "a"): {"labels": {}}})
    [d] = diags
    assert d.summary == "Invalid argument value" and "greater than or equal to 1" in d.detail
    assert (d.subject.start.line, d.subject.start.column) == (6, 10)


def test_depends_on_module_expands_to_its_resources(tmp_path):
    (tmp_path / "m").mkdir()
    # (pods, not nodes, in the module: two node resources of one name or one address are an error)
    pod = 'pod "%s" {\n  container "c" {\n    image = "busybox"\n  }\n}\n'
    (tmp_path / "m" / "main.orch").write_text(pod % "x" + pod % "y")
    (tmp_path / "main.orch").write_text(
        'module "m" {\n  source = "./m"\n}\npod "z" {\n  depends_on = [module.m]\n  container "c" {\n'
        '    image = "busybox"\n  }\n}\nmodule "n" {\n  source     = "./m"\n  depends_on = [pod.z]\n}\n')
    cfg, diags = load_config(tmp_path, env={})
    assert not diags
    M, N = (ModuleStep("m"),), (ModuleStep("n"),)
    assert cfg.resources[CA("pod", "z")].depends_on == [CA("pod", "x", M), CA("pod", "y", M)]
    assert cfg.resources[CA("pod", "x", N)].depends_on == [CA("pod", "z")]


def test_missing_directory():
    _, diags = load_config("/nonexistent/orch-config", env={})
    assert [d.summary for d in diags] == ["No configuration directory"]
