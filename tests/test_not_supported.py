"""Nothing accepted and ignored: every planned part of the resource model is an error at `orch validate`.

The entries come from ``orchdsl.schema.planned``; each one must be rejected with "Not supported yet", its
file:line:col and a hint, and a configuration using everything that works must still validate.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from orchdsl.cli import main
from orchdsl.config import load_config
from orchdsl.config.loader import NOT_SUPPORTED
from orchdsl.schema import PLANNED_ATTRIBUTES, PLANNED_TYPES, RESOURCE_TYPES, describe

REPO = Path(__file__).resolve().parents[1]

# The smallest valid body of each supported type, to put a planned argument or block next to.
BASE = {"node": ['address = "h"'], "pod": ['container "c" {', '  image = "x"', "}"]}

# How a configuration would use an entry; an entry missing here is written generically (a block `NAME {}`,
# an argument `NAME = null`), so that a new entry is checked without touching this file.
USES = {
    "volume": ['volume "data" {', '  driver = "local"', "}"],
    ("pod", "autoscale"): ["autoscale {", "  max_replicas = 5", "}"],
}

PREAMBLE = ["# a planned thing, used", ""]


def _write(tmp_path: Path, lines: list[str]) -> Path:
    (tmp_path / "main.orch").write_text("\n".join(lines) + "\n")
    return tmp_path / "main.orch"


def _type_config(rtype: str) -> tuple[list[str], int, int]:
    """Lines using resource type ``rtype``, with the line and column the error must point at."""
    use = USES.get(rtype, [f'{rtype} "x" {{', "}"])
    return PREAMBLE + use, len(PREAMBLE) + 1, 1


def _attribute_config(path: tuple[str, ...]) -> tuple[list[str], int, int]:
    """Lines of a ``path[0]`` resource using the planned argument or block ``path[-1]``, nested in the blocks
    ``path[1:-1]`` (labelled ``"l"``), with the line and column the error must point at."""
    rtype, nesting, name = path[0], path[1:-1], path[-1]
    spec = describe(RESOURCE_TYPES[rtype])
    lines = PREAMBLE + [f'{rtype} "x" {{'] + ["  " + line for line in BASE.get(rtype, [])]
    depth = 1
    for block in nesting:
        bs = spec.blocks[block]
        lines.append("  " * depth + " ".join([block] + ['"l"'] * len(bs.labels)) + " {")
        spec, depth = bs.spec, depth + 1
    generic = [f"{name} {{", "}"] if name in spec.blocks else [f"{name} = null"]
    at = len(lines) + 1
    lines += ["  " * depth + line for line in USES.get(path, generic)]
    lines += ["  " * d + "}" for d in range(depth - 1, -1, -1)]
    return lines, at, 2 * depth + 1


def _not_supported(diags) -> list:
    return [d for d in diags if d.summary == NOT_SUPPORTED]


def _case_id(entry) -> str:
    return entry if isinstance(entry, str) else ".".join(entry)


# Nothing is planned today: the mechanism is then checked on the volume type marked planned (planned_volume)
ENTRIES = [(t, _type_config(t)) for t in PLANNED_TYPES] + \
    [(p, _attribute_config(p)) for p in PLANNED_ATTRIBUTES] or [("volume", _type_config("volume"))]


# ---- the registry itself --------------------------------------------------------------------------------

@pytest.fixture
def planned_volume(monkeypatch):
    """Nothing is planned today: the mechanism is exercised with the volume type marked planned again."""
    from types import MappingProxyType

    from orchdsl.schema import planned

    if not planned.PLANNED_TYPES and not planned.PLANNED_ATTRIBUTES:
        monkeypatch.setattr(planned, "PLANNED_TYPES", MappingProxyType({"volume": planned.Planned(
            "volumes", "remove it (see docs/resources.md)")}))


def test_registry_names_real_schema_entries():
    """A renamed or removed schema field must not leave a stale entry behind (nor a planned type a typo)."""
    for rtype in PLANNED_TYPES:
        assert rtype in RESOURCE_TYPES
    for path, planned in PLANNED_ATTRIBUTES.items():
        assert path[0] in RESOURCE_TYPES and path[0] not in PLANNED_TYPES, path
        spec = describe(RESOURCE_TYPES[path[0]])
        for block in path[1:-1]:
            spec = spec.blocks[block].spec
        name = path[-1]
        assert name in spec.blocks or name in spec.settable(), path
        # A required planned argument could be neither set nor left out.
        assert name in spec.blocks and spec.blocks[name].min_items == 0 or \
            name in spec.attributes and not spec.attributes[name].required, path
        assert planned.feature and planned.hint


def test_the_known_gaps_are_listed():
    assert set(PLANNED_TYPES) == set()  # services, policies, rollouts, autoscaling, secrets, volumes landed
    assert not PLANNED_ATTRIBUTES  # rolling updates and autoscaling landed
    # realised by the Docker provider (pods.py) or the scheduler: never planned
    for path in [("pod", "container"), ("pod", "restart"), ("pod", "strategy"), ("pod", "autoscale"),
                 ("pod", "hostname"), ("pod", "node_selector"),
                 ("pod", "spread_by"), ("pod", "placement"), ("pod", "anti_affinity"), ("node", "address"),
                 ("node", "capacity"), ("node", "labels"), ("node", "schedulable"), ("node", "docker_host")]:
        assert path not in PLANNED_ATTRIBUTES


def _docs_planned_table() -> dict[tuple[str, ...] | str, str]:
    """The rows of the "Planned — not supported yet" table of docs/resources.md: entry -> "waits for"."""
    doc = (REPO / "docs" / "resources.md").read_text()
    section = doc.split("## Planned — not supported yet", 1)[1].split("\n## ", 1)[0]
    out: dict = {}
    for m in re.finditer(r"^\| (resource type|node|pod) (.+?) \| (.+?) \|$", section, re.M):
        names = re.findall(r"`(\w+)", m.group(2))
        for name in names:
            out[name if m.group(1) == "resource type" else (m.group(1), name)] = m.group(3)
    return out


def test_docs_list_exactly_the_registry():
    table = _docs_planned_table()
    assert set(table) == set(PLANNED_TYPES) | set(PLANNED_ATTRIBUTES)
    for entry, waits_for in table.items():
        planned = PLANNED_TYPES[entry] if isinstance(entry, str) else PLANNED_ATTRIBUTES[entry]
        assert waits_for.startswith(planned.feature), entry


# ---- every entry is rejected ----------------------------------------------------------------------------

@pytest.mark.parametrize("entry,case", ENTRIES, ids=[_case_id(e) for e, _ in ENTRIES])
def test_validate_rejects_each_entry(planned_volume, tmp_path, capsys, entry, case):
    lines, line, col = case
    f = _write(tmp_path, lines)
    code = main(["validate", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in out + err
    assert f"Error: {NOT_SUPPORTED}" in err and f"{f}:{line}:{col}" in err, err
    from orchdsl.schema import planned as registry  # as patched by planned_volume when nothing is planned

    if isinstance(entry, str):
        detail = f'resource type "{entry}" is planned ({registry.PLANNED_TYPES[entry].feature}) but not supported yet'
        hint = registry.PLANNED_TYPES[entry].hint
    else:
        planned = PLANNED_ATTRIBUTES[entry]
        detail = f'{entry[0]} attribute "{".".join(entry[1:])}" is planned ({planned.feature}) but not ' \
            "supported yet"
        hint = planned.hint
    assert detail in err and f"Hint: {hint}" in err, err


@pytest.mark.parametrize("entry,case", ENTRIES, ids=[_case_id(e) for e, _ in ENTRIES])
def test_load_config_gives_one_located_error(planned_volume, tmp_path, entry, case):
    lines, line, col = case
    _write(tmp_path, lines)
    _, diags = load_config(tmp_path, env={})
    [d] = _not_supported(diags)
    assert d.is_error and d.subject is not None and d.hint
    where = (Path(d.subject.filename).name, d.subject.start.line, d.subject.start.column)
    assert where == ("main.orch", line, col)
    if entry in USES:  # a realistic use is otherwise valid: this is its only error
        assert [x.summary for x in diags if x.is_error] == [NOT_SUPPORTED]


def test_validate_json_reports_the_range(planned_volume, tmp_path, capsys):
    lines, line, col = _type_config("volume")
    _write(tmp_path, lines)
    assert main(["validate", "--json", str(tmp_path)]) == 1
    doc = json.loads(capsys.readouterr().out)
    [d] = doc["diagnostics"]
    assert d["summary"] == NOT_SUPPORTED and d["range"]["start"]["line"] == line
    assert d["range"]["start"]["column"] == col and d["range"]["end"]["column"] == col + len('volume "data"')
    assert "volumes" in d["detail"]


def test_every_use_is_reported_at_once(planned_volume, tmp_path):
    """Several planned things in one configuration: one error each, the rest of the file still checked."""
    _write(tmp_path, [
        'node "n1" {', '  address  = "h"', "}",
        'volume "data" {}',
        'pod "web" {', '  container "c" {', '    image  = "x"',
        "    mounts = [{ volume = volume.data.name, target = \"/d\" }]", "  }",
        "  autoscale {", "    max_replicas = 3", "  }", "  strategy {", "  }", "}",  # both work
        'output "o" {', "  value = pod.web[0].nope", "}",
    ])
    _, diags = load_config(tmp_path, env={})
    located = sorted((d.subject.start.line, d.subject.start.column) for d in _not_supported(diags))
    assert located == [(4, 1)]  # the reference to volume.data is not one more
    assert "Unsupported attribute" in [d.summary for d in diags]


def test_references_to_planned_things(planned_volume, tmp_path):
    _write(tmp_path, [
        'pod "web" {', '  container "c" {', '    image = "x"',
        "    env   = { V = volume.data.name }", "  }",
        "  lifecycle {", "    ignore_changes = [autoscale]", "  }", "}",
        'output "scale" {', "  value = pod.web.autoscale", "}",
    ])
    _, diags = load_config(tmp_path, env={})
    got = {(d.subject.start.line, d.subject.start.column): d for d in diags if d.is_error}
    assert all(d.summary == NOT_SUPPORTED for d in got.values()), [d.render() for d in got.values()]
    assert sorted(got) == [(4, 19)]  # pod.web.autoscale and ignore_changes = [autoscale] work
    # not "declare it": a declaration would be rejected too
    assert "declare it" not in got[(4, 19)].hint and "volumes" in got[(4, 19)].detail


def test_planned_types_are_not_suggested(planned_volume, tmp_path):
    _write(tmp_path, ['volumes "data" {}', 'output "o" {', "  value = nope.x", "}"])
    _, diags = load_config(tmp_path, env={})
    block, ref = diags
    assert block.summary == "Unsupported block type" and "volume" not in block.hint
    assert ref.summary == "Unknown variable" and "volume" not in ref.detail and "pod" in ref.detail


def test_in_a_module_too(planned_volume, tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "main.orch").write_text('volume "s" {\n  driver = "local"\n}\n')
    _write(tmp_path, ['module "m" {', '  source = "./m"', "}"])
    _, diags = load_config(tmp_path, env={})
    [d] = diags
    assert d.summary == NOT_SUPPORTED and d.subject.start.line == 1
    assert d.subject.filename.endswith("m/main.orch")


def test_plan_stops_at_the_same_errors(planned_volume, tmp_path, capsys):
    """plan loads the configuration as validate does: it stops there, before any node or state is touched
    (providers are only constructed, which does no I/O)."""
    lines = PREAMBLE + USES["volume"]
    line, col = len(PREAMBLE) + 1, 1
    f = _write(tmp_path, lines)
    code = main(["plan", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 1 and f"{f}:{line}:{col}" in err and NOT_SUPPORTED in err and "Traceback" not in out + err
    assert "No provider" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["main.orch"]  # no state, no lock


# ---- what works still validates -------------------------------------------------------------------------

SUPPORTED = """\
variable "password" {
  type      = string
  sensitive = true
  default   = "hunter2"
}

scheduler {
  strategy = "binpack"
}

orch {
  namespace    = "shop"
  pod_cidr     = "198.19.128.0/17"
  service_cidr = "198.18.128.0/17"
}

node "n1" {
  address       = "198.18.0.11"
  port          = 2222
  user          = "orch"
  become        = true
  pod_cidr      = "198.19.130.0/24"
  identity_file = "~/.ssh/lab"
  known_hosts   = "~/.ssh/known_hosts"
  docker_host   = "unix:///var/run/docker.sock"
  labels        = { zone = "a" }
  schedulable   = true
  capacity {
    cpu    = 2
    memory = "2Gi"
  }
}

node "n2" { # a replica per node: each publishes host port 80
  address = "198.18.0.12"
  labels  = { zone = "a" }
}

pod "web" {
  replicas      = 2
  labels        = { app = "web" }
  node_selector = { zone = "a" }
  spread_by     = "zone"
  placement     = "spread"
  anti_affinity = "soft"
  restart       = "on-failure"
  hostname      = "web-${count.index}"
  container "httpd" {
    image        = "orch/busybox:test"
    command      = ["httpd", "-f", "-p", "8080"]
    entrypoint   = ["/bin/sh", "-c"]
    env          = { GREETING = "hi from ${node.n1.name}" }
    working_dir  = "/www"
    user         = "1000:1000"
    ports        = [8080, "53/udp", "80:8081", { container_port = 9090, protocol = "tcp", name = "admin" }]
    mounts = [
      { host_path = "/srv/www", target = "/www", read_only = true },
      { host_path = "/srv", target = "/srv" },
      { tmpfs = true, target = "/tmp" },
      { volume = volume.data.name, target = "/data" },
    ]
    labels       = { team = "web" }
    init         = true
    pull         = "missing"
    read_only    = true
    stop_timeout = "5s"
    resources {
      cpu    = "250m"
      memory = "64Mi"
      limits {
        cpu    = 0.5
        memory = "128Mi"
      }
    }
    file "/etc/app/app.conf" {
      content = "password = ${secret.db.data.password}\\n"
      mode    = "0400"
    }
    health {
      command      = ["nc", "-z", "127.0.0.1", "8080"]
      interval     = "5s"
      timeout      = "2s"
      retries      = 3
      start_period = "1s"
    }
  }
  strategy {
    type             = "rolling"
    max_surge        = 1
    max_unavailable  = 1
    healthy_deadline = "2m"
    on_failure       = "rollback"
    drain_timeout    = "3s"
  }
  lifecycle {
    create_before_destroy = true
    ignore_changes        = [labels]
  }
}

volume "data" {
  driver      = "local"
  driver_opts = {}
  labels      = { team = "web" }
}

secret "db" {
  data   = { password = var.password }
  labels = { team = "web" }
}

pod "api" {
  container "api" {
    image = "orch/busybox:test"
  }
  autoscale {
    min_replicas      = 1
    max_replicas      = 4
    target_cpu        = 60
    scale_down_window = "2m"
  }
}

service "web" {
  selector    = { app = "web" }
  port        = 80
  target_port = 8080
  protocol    = "tcp"
  node_port   = 30080
  cluster_ip  = "198.18.130.7"
}

network_policy "web" {
  pod_selector = { app = "web" }
  policy_types = ["ingress", "egress"]
  ingress {
    from {
      pod_selector = { app = "api" }
    }
    from {
      cidr   = "198.18.0.0/24"
      except = ["198.18.0.1/32"]
    }
    ports = [8080, { port = 9000, end_port = 9010, protocol = "tcp" }]
  }
  egress {
    to {
      pod_selector = {}
    }
    to {
      namespace    = "blog"
      pod_selector = { app = "api" }
    }
  }
}

output "ips" {
  value = pod.web[*].ip
}
"""


def test_a_configuration_of_supported_things_validates(tmp_path, capsys):
    (tmp_path / "main.orch").write_text(SUPPORTED)
    code = main(["validate", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Success! The configuration is valid." in out and not err


def test_the_supported_configuration_uses_every_supported_argument_and_block():
    """So that the test above covers everything the registry leaves supported (node, pod, their blocks)."""
    missing = []

    def walk(model, path: tuple[str, ...], labels: tuple[str, ...] = ()) -> None:
        spec = describe(model)
        for name in [*spec.settable(), *spec.blocks]:
            if name in labels or path + (name,) in PLANNED_ATTRIBUTES:
                continue
            if f"\n{'  ' * len(path)}{name} " not in SUPPORTED:
                missing.append(".".join(path + (name,)))
        for name, bs in spec.blocks.items():
            if path + (name,) not in PLANNED_ATTRIBUTES:
                walk(bs.model, path + (name,), bs.labels)

    for rtype, model in RESOURCE_TYPES.items():
        if rtype not in PLANNED_TYPES:
            walk(model, (rtype,))
    assert not missing


@pytest.mark.parametrize("example", sorted(p.name for p in (REPO / "examples").iterdir() if p.is_dir()))
def test_examples_validate(example, capsys):
    code = main(["validate", str(REPO / "examples" / example)])
    out, err = capsys.readouterr()
    assert code == 0, err
