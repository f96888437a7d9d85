"""`orch validate` runs every static check the planner runs (issue 10, class 3).

Each test is one configuration that used to pass `orch validate` and then fail (or hang, or stay unknown
forever) in plan or apply. Validation goes through `orchdsl.cli.main`, plans through the in-process provider.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from orchdsl.cli import main
from orchdsl.config import evaluate_outputs, load_config

PROVIDER = "orchdsl.sdk.testing.memory:MemoryProvider"


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("ORCH_PROVIDER_MODULES", PROVIDER)
    monkeypatch.setenv("ORCH_MEMORY_WORLD", str(tmp_path / "world"))
    for k in [k for k in __import__("os").environ if k.startswith("ORCH_VAR_")]:
        monkeypatch.delenv(k)
    return tmp_path


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    return root


def orch(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def validate(capsys, d: Path, *extra: str) -> tuple[int, str]:
    code, out, err = orch(capsys, "validate", *extra, str(d))
    return code, out + err


def errors(d: Path, **kw) -> list:
    _, diags = load_config(d, env={}, **kw)
    return [x for x in diags if x.is_error]


def one_error(d: Path, summary: str, line: int | None = None, **kw):
    errs = errors(d, **kw)
    assert [e.summary for e in errs] == [summary], "\n\n".join(e.render() for e in errs)
    if line is not None:
        assert errs[0].subject is not None and errs[0].subject.start.line == line, errs[0].render()
    return errs[0]


POD = """
pod "%s" {
  container "c" {
    image = "busybox"
%s
  }
}
"""


def pod(name: str = "web", body: str = "") -> str:
    return POD % (name, textwrap.indent(textwrap.dedent(body), "    "))


# ---- scope: outputs and locals of one name ----------------------------------------------------------------

def test_output_named_like_the_local_it_shows_is_known(tmp_path):
    write(tmp_path, {"main.orch": """
        locals { greeting = "hello" }
        output "greeting" { value = local.greeting }
        """})
    config, diags = load_config(tmp_path, env={})
    assert not diags
    outs, d = evaluate_outputs(config, {})
    assert not d and outs["greeting"].value == "hello"


def test_module_output_named_like_module_variable_is_known(tmp_path):
    write(tmp_path, {"main.orch": """
        module "m" {
          source = "./m"
          x      = "v"
        }
        output "x" { value = module.m.x }
        """, "m/main.orch": """
        variable "x" {}
        locals { x = var.x }
        output "x" { value = local.x }
        """})
    config, diags = load_config(tmp_path, env={})
    assert not diags
    outs, _ = evaluate_outputs(config, {})
    assert outs["x"].value == "v"


# ---- cycles: reported by validate with every member and its place -----------------------------------------

def test_reference_and_depends_on_cycle_is_reported_by_validate(env, capsys):
    write(env, {"main.orch": """
        pod "a" {
          depends_on = [pod.b]
          container "c" { image = "busybox" }
        }
        pod "b" {
          container "c" {
            image = "busybox"
            env   = { A = pod.a.ip }
          }
        }
        """})
    code, text = validate(capsys, env)
    assert code == 1 and "Cycle in dependencies" in text, text
    assert "pod.a (" in text and "main.orch:2:1)" in text and "pod.b (" in text and "main.orch:6:1)" in text
    assert "Traceback" not in text


def test_graph_command_reports_a_cycle_instead_of_crashing(env, capsys):
    write(env, {"main.orch": """
        pod "a" {
          depends_on = [pod.b]
          container "c" { image = "busybox" }
        }
        pod "b" {
          depends_on = [pod.a]
          container "c" { image = "busybox" }
        }
        """})
    code, out, err = orch(capsys, "graph", str(env))
    assert code == 1 and "Cycle in dependencies" in err and "Traceback" not in err
    code, out, err = orch(capsys, "graph", "--format", "mermaid", str(env))
    assert code == 1 and "Cycle in dependencies" in err


def test_cycle_through_module_input_and_output_is_an_error(env, capsys):
    write(env, {"main.orch": """
        module "m" {
          source = "./m"
          x      = module.m.y
        }
        output "o" { value = module.m.y }
        """, "m/main.orch": """
        variable "x" {}
        output "y" { value = var.x }
        """})
    code, text = validate(capsys, env)
    assert code == 1 and "Cycle in dependencies" in text, text
    assert "module.m.var.x (" in text and "/main.orch:4:3)" in text, text
    assert "module.m.output.y (" in text and "/m/main.orch:3:1)" in text, text


def test_resource_referring_to_itself_through_a_local_is_a_cycle(env, capsys):
    write(env, {"main.orch": pod("a", "env = { SELF = local.me }") + 'locals { me = pod.a.ip }\n'})
    code, text = validate(capsys, env)
    assert code == 1 and "Cycle in dependencies" in text and "local.me" in text and "pod.a" in text, text


def test_node_reading_a_pod_is_a_cycle_through_placement(env, capsys):
    write(env, {"main.orch": """
        node "n1" {
          address = "198.51.100.1"
          labels  = { ip = pod.web.ip }
        }
        """ + pod()})
    code, text = validate(capsys, env)
    assert code == 1 and "Cycle in dependencies" in text and "node.n1" in text and "pod.web" in text, text
    assert "placement" in text, text


def test_local_cycle_keeps_its_own_message(tmp_path):
    write(tmp_path, {"main.orch": """
        locals {
          a = local.b
          b = local.a
        }
        """})
    e = one_error(tmp_path, "Cycle in local values", 3)
    assert "local.a" in e.detail and "local.b" in e.detail


def test_graph_rendering_survives_a_cyclic_graph():
    from orchdsl import graph

    g = graph.build({"a": {"b"}, "b": {"a"}})
    assert '"a" -> "b"' in graph.to_dot(g) and "-->" in graph.to_mermaid(g)


# ---- variables: validate takes --var/--var-file; unset required variables are unknown -------------------

REQUIRED = """
variable "replicas" {
  type = number
  validation {
    condition     = var.replicas <= 5
    error_message = "at most 5 replicas."
  }
}
variable "image" { type = string }
pod "web" {
  replicas = var.replicas
  container "c" { image = var.image }
}
"""


def test_validate_accepts_unset_required_variables_as_unknown(env, capsys):
    write(env, {"main.orch": REQUIRED})
    code, text = validate(capsys, env)
    assert code == 0 and "Success" in text, text
    # plan still needs them
    code, out, err = orch(capsys, "plan", "--refresh=false", str(env))
    assert code == 1 and "No value for required variable" in err


def test_validate_takes_var_and_var_file(env, capsys):
    write(env, {"main.orch": REQUIRED, "bad.vars": 'replicas = 9\n'})
    code, text = validate(capsys, env, "--var", "replicas=7")
    assert code == 1 and "at most 5 replicas." in text, text
    code, text = validate(capsys, env, "--var", 'replicas="lots"')
    assert code == 1 and "Invalid value for input variable" in text, text
    code, text = validate(capsys, env, "--var-file", str(env / "bad.vars"))
    assert code == 1 and "at most 5 replicas." in text, text
    code, text = validate(capsys, env, "--var", "replicas=2", "--var", "image=busybox")
    assert code == 0, text
    code, text = validate(capsys, env, "--var", "nope=1")
    assert code == 1 and "nope" in text, text


# ---- the resource model: what Docker would refuse at apply is refused by validate ------------------------

def _pod_error(tmp_path, body: str, pod_body: str = "") -> list:
    text = 'pod "web" {\n' + pod_body + '  container "c" {\n' + \
        textwrap.indent(textwrap.dedent(body).strip() + "\n", "    ") + "  }\n}\n"
    write(tmp_path, {"main.orch": text})
    return errors(tmp_path)


@pytest.mark.parametrize("body, message", [
    ('image = "busybox"\nenv = { "" = "x" }', "environment variable name"),
    ('image = "busybox"\nenv = { "A=B" = "x" }', "environment variable name"),
    ('image = "busybox"\nenv = { "A\\u0000" = "x" }', "environment variable name"),
    ('image = ""', "image"),
    ('image = "Busybox"', "lowercase"),
    ('image = "busy box"', "not a valid image reference"),
    ('image = "busybox:"', "not a valid image reference"),
    ('image = "busybox"\nworking_dir = "app"', "absolute"),
    ('image = "busybox"\nmounts = [{ target = "data", tmpfs = true }]', "absolute"),
    ('image = "busybox"\nmounts = [{ target = "/data", host_path = "srv/data" }]', "absolute"),
    ('image = "busybox"\nmounts = [{ target = "/data", volume = "data" }]', "volume"),
    ('image = "busybox"\nports = ["80:8080", "80:9090"]', "host port 80/tcp"),
    ('image = "busybox"\nlabels = { "orch.address" = "x" }', "orch."),
    ('image = "busybox"\ncommand = ["echo", "a\\u0000b"]', "NUL"),
    ('image = "busybox"\nresources {\n  memory = "1Mi"\n}', "6Mi"),
    ('image = "busybox"\nresources {\n  cpu = "5m"\n}', "0.01"),
    ('image = "busybox"\nhealth {\n  command = ["true"]\n  interval = "500us"\n}', "1ms"),
])
def test_container_values_docker_would_refuse(tmp_path, body, message):
    errs = _pod_error(tmp_path, body)
    assert len(errs) == 1 and errs[0].subject is not None, [e.render() for e in errs]
    assert message in errs[0].detail, errs[0].render()


def test_host_port_twice_in_one_pod_across_containers(tmp_path):
    write(tmp_path, {"main.orch": """
        pod "web" {
          container "a" {
            image = "busybox"
            ports = ["8080:80"]
          }
          container "b" {
            image = "busybox"
            ports = [{ container_port = 81, host_port = 8080 }]
          }
        }
        """})
    (e,) = errors(tmp_path)
    assert "host port 8080/tcp" in e.detail, e.render()
    # one port per protocol is fine
    write(tmp_path, {"main.orch": pod("web", 'ports = ["53:53/udp", "53:53/tcp"]')})
    assert not errors(tmp_path)


@pytest.mark.parametrize("pod_body, message", [
    ('  hostname = "not a host name"\n', "host name"),
    ('  hostname = "' + "a" * 64 + '"\n', "host name"),
    ('  labels = { "orch.lineage" = "x" }\n', "orch."),
])
def test_pod_values_docker_would_refuse(tmp_path, pod_body, message):
    errs = _pod_error(tmp_path, 'image = "busybox"', pod_body)
    assert len(errs) == 1 and message in errs[0].detail, [e.render() for e in errs]


def test_valid_container_values_pass(tmp_path):
    errs = _pod_error(tmp_path, """
        image       = "registry.example.com:5000/team/app_x-y.z:1.2.3-rc1@sha256:0123456789abcdef0123456789abcdef"
        working_dir = "/srv"
        env         = { PATH = "/bin", _X = "" }
        mounts      = [{ target = "/data", host_path = "/srv/data" }, { target = "/tmp", tmpfs = true }]
        ports       = [8080, "80:8080", "53:53/udp"]
        labels      = { team = "web" }
        resources {
          cpu    = "10m"
          memory = "6Mi"
        }
        health {
          command  = ["true"]
          interval = "1ms"
        }
        """, '  hostname = "web-1.example"\n')
    assert not errs, [e.render() for e in errs]


@pytest.mark.parametrize("node_body, message", [
    ('docker_host = "http2://h"', "docker_host"),
    ('docker_host = "npipe:////./pipe/docker_engine"', "docker_host"),
    ('docker_host = "ssh://"', "names no host"),
    ('docker_host = "/var/run/docker.sock"', "docker_host"),
    ('address = ""', "address"),
    ('address = "a b"', "address"),
])
def test_node_values_orch_cannot_use(tmp_path, node_body, message):
    write(tmp_path, {"main.orch": 'node "n1" {\n  ' + node_body + "\n}\n"})
    errs = errors(tmp_path)
    assert len(errs) == 1 and message in errs[0].detail, [e.render() for e in errs]


def test_supported_docker_hosts_pass(tmp_path):
    write(tmp_path, {"main.orch": """
        node "a" {
          docker_host = "unix:///var/run/docker.sock"
        }
        node "b" {
          address     = "198.51.100.2"
          docker_host = "unix:///run/user/1000/docker.sock"
        }
        node "c" {
          docker_host = "ssh://deploy@198.51.100.3:2222"
        }
        node "d" {
          docker_host = "tcp://127.0.0.1:2375"
        }
        """})
    assert not errors(tmp_path)


# ---- host ports: a scheduling constraint -----------------------------------------------------------------

def test_scheduler_never_puts_two_users_of_one_host_port_on_a_node():
    from orchdsl.scheduler import NodeInfo, PodRequest, schedule

    nodes = [NodeInfo("n1", 4, 8 << 30), NodeInfo("n2", 4, 8 << 30)]
    web = [PodRequest(f"pod.web[{i}]", "pod.web", i, 0.1, 0, strategy="binpack",
                      host_ports=frozenset({"8080/tcp"})) for i in range(3)]
    dns = [PodRequest("pod.dns", "pod.dns", 0, 0.1, 0, host_ports=frozenset({"8080/udp"}))]
    p = schedule(nodes, web + dns)
    assert sorted(p.assignments[f"pod.web[{i}]"] for i in range(2)) == ["n1", "n2"]  # binpack or not
    assert "pod.dns" in p.assignments  # another protocol: no conflict
    (err,) = p.errors
    assert err.address == "pod.web[2]" and "host port 8080/tcp already used on node.n1 (by pod.web[0])" in \
        err.detail and "Host port 8080/tcp already used on 2 nodes" in err.detail, err.detail


def test_running_replica_keeps_its_host_port_and_the_newcomer_goes_elsewhere():
    from orchdsl.scheduler import NodeInfo, PodRequest, schedule

    nodes = [NodeInfo("n1", 4, 8 << 30), NodeInfo("n2", 4, 8 << 30)]
    old = PodRequest("pod.b", "pod.b", 0, 0.1, 0, current_node="n1", host_ports=frozenset({"80/tcp"}))
    new = PodRequest("pod.a", "pod.a", 0, 0.1, 0, node_selector={}, host_ports=frozenset({"80/tcp"}))
    p = schedule(nodes, [new, old])
    assert p.assignments == {"pod.b": "n1", "pod.a": "n2"} and not p.moves
    # two that both ran on n1 (the ports were added since): the first in (pod, index) order stays
    both = [PodRequest(f"pod.{x}", f"pod.{x}", 0, 0.1, 0, current_node="n1", host_ports=frozenset({"80/tcp"}))
            for x in "ab"]
    p = schedule(nodes, both)
    assert p.assignments == {"pod.a": "n1", "pod.b": "n2"} and p.moves == [("pod.b", "n1", "n2")]


HOST_PORT_PODS = """
node "n1" {
  address = "198.51.100.1"
}
pod "web" {
  replicas = 2
  container "c" {
    image = "busybox"
    ports = ["8080:80"]
  }
}
"""


def test_plan_fails_when_replicas_need_one_host_port_on_a_single_node(env, capsys):
    write(env, {"main.orch": HOST_PORT_PODS})
    code, out, err = orch(capsys, "plan", "--refresh=false", str(env))
    assert code == 1 and "No node can run pod.web[1]" in err, out + err
    assert "host port 8080/tcp already used on node.n1 (by pod.web[0])" in err, err
    write(env, {"main.orch": HOST_PORT_PODS.replace('node "n1"', 'node "n2" {\n  address = "198.51.100.2"\n}\n'
                                                    'node "n1"')})
    code, out, err = orch(capsys, "plan", "--refresh=false", str(env))
    assert code == 0 and "(on node.n1)" in out and "(on node.n2)" in out, out + err


# ---- two node resources, one Docker engine -----------------------------------------------------------------

@pytest.mark.parametrize("a, b", [
    ('address = "198.51.100.1"', 'address = "198.51.100.1"'),
    ('address = "Host.example"', 'address = "host.example"\n  port = 22'),
    ('address = "198.51.100.1"', 'docker_host = "ssh://deploy@198.51.100.1"'),
    ('docker_host = "unix:///var/run/docker.sock"', 'docker_host = "unix:///var/run/docker.sock"'),
])
def test_two_nodes_reaching_one_engine_are_refused(env, capsys, a, b):
    write(env, {"main.orch": f'node "a" {{\n  {a}\n}}\nnode "b" {{\n  {b}\n}}\n'})
    code, text = validate(capsys, env)
    assert code == 1 and "Duplicate node" in text and "node.a" in text and "main.orch:4:1" in text, text


def test_nodes_of_one_host_on_other_ports_or_sockets_are_distinct(tmp_path):
    write(tmp_path, {"main.orch": """
        node "a" {
          address = "198.51.100.1"
        }
        node "b" {
          address = "198.51.100.1"
          port    = 2222
        }
        node "c" {
          address     = "198.51.100.1"
          docker_host = "unix:///run/user/1000/docker.sock"
        }
        """})
    assert not errors(tmp_path)


def test_duplicate_nodes_from_for_each_are_refused_at_validate_and_plan(env, capsys):
    write(env, {"main.orch": """
        variable "hosts" {
          default = { a = "198.51.100.1", b = "198.51.100.1" }
        }
        node "n" {
          for_each = var.hosts
          address  = each.value
        }
        """})
    code, text = validate(capsys, env)
    assert code == 1 and 'node.n["b"]' in text and 'node.n["a"]' in text, text
    code, out, err = orch(capsys, "plan", "--refresh=false", str(env))
    assert code == 1 and "Duplicate node" in err


def test_two_nodes_of_one_name_are_refused_by_validate(env, capsys):
    write(env, {"main.orch": """
        node "n" {
          count   = 2
          address = "198.51.100.${count.index + 1}"
        }
        node "n-1" {
          address = "198.51.100.9"
        }
        """})
    code, text = validate(capsys, env)
    assert code == 1 and "Duplicate node name" in text and 'node.n-1 and node.n[1] are both named "n-1"' in text
    assert "main.orch:6:1" in text, text


def test_placement_still_checks_node_names_at_plan():
    from orchdsl.addrs import ResourceAddress
    from orchdsl.cluster.placement import schedule_pods

    nodes = {ResourceAddress.parse("node.n[1]"): {"address": "a"}, ResourceAddress.parse("node.n-1"): {"address": "b"}}
    placed = schedule_pods(nodes, {}, {}, "spread")
    assert [d.summary for d in placed.placement.errors] == ["Duplicate node name"]


# ---- replicas no node can ever run ---------------------------------------------------------------------------

NODES2 = """
node "n1" {
  address = "198.51.100.1"
  labels  = { zone = "a" }
  capacity {
    cpu    = 1
    memory = "1Gi"
  }
}
node "n2" {
  address = "198.51.100.2"
  labels  = { zone = "b" }
  capacity {
    cpu    = 2
    memory = "1Gi"
  }
}
"""


@pytest.mark.parametrize("pod_args, container_args, unplaced, reason", [
    ("", "resources {\n  cpu = 4\n}", "pod.web[0]", "cpu exhausted on node.n2"),
    ('node_selector = { disk = "ssd" }', "", "pod.web[0]", "label disk=ssd not matched on node.n1"),
    ('anti_affinity = "hard"', "", "pod.web[2]", "already runs a replica of pod.web"),
    ("", 'ports = ["8080:80"]', "pod.web[2]", "host port 8080/tcp already used"),
])
def test_replicas_no_node_can_ever_run_fail_validate(env, capsys, pod_args, container_args, unplaced, reason):
    write(env, {"main.orch": NODES2 + f"""
pod "web" {{
  replicas = 3
  {pod_args}
  container "c" {{
    image = "busybox"
{textwrap.indent(container_args, "    ")}
  }}
}}
"""})
    code, text = validate(capsys, env)
    assert code == 1 and f"No node can run {unplaced}" in text and reason in text, text
    assert "main.orch:19:1" in text, text  # the pod block


def test_what_fits_or_may_fit_passes_validate(env, capsys):
    # capacity not declared: what the host reports is known only at plan
    write(env, {"main.orch": 'node "n1" {\n  address = "198.51.100.1"\n}\n' + pod("web", """
        resources {
          cpu = 64
        }""")})
    code, text = validate(capsys, env)
    assert code == 0, text
    # node labels known only at plan: no verdict
    write(env, {"main.orch": """
        variable "zone" {}
        node "n1" {
          address = "198.51.100.1"
          labels  = { zone = var.zone }
        }
        pod "web" {
          node_selector = { zone = "a" }
          container "c" { image = "busybox" }
        }
        """})
    code, text = validate(capsys, env)
    assert code == 0, text


def test_two_pod_instances_of_one_name_are_refused(env, capsys):
    # pod.web["a"] is named web-a, like pod "web-a": their containers would take one name on a node
    write(env, {"main.orch": """
        pod "web" {
          for_each = toset(["a"])
          container "c" { image = "busybox" }
        }
        pod "web-a" {
          container "c" { image = "busybox" }
        }
        """})
    code, text = validate(capsys, env)
    assert code == 1 and "Duplicate pod name" in text and 'pod.web-a and pod.web["a"]' in text, text
    # in different modules, names do not meet (the provider tells them apart)
    write(env, {"main.orch": 'module "m" {\n  source = "./m"\n}\n' + pod("web-a"),
                "m/main.orch": 'pod "web" {\n  for_each = toset(["a"])\n  container "c" { image = "busybox" }\n}\n'})
    code, text = validate(capsys, env)
    assert code == 0, text
