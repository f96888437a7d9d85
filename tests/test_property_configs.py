"""Whole configurations, generated: `orch validate` and `orch plan --refresh=false` end in a plan or diagnostics
(exit 0, 1 or 2, with text), never a traceback, and each within 5 s (issue 10, acceptance 2).

Configurations mix nodes and pods, references between them (attributes, depends_on, count.index), locals,
variables, a module with inputs and outputs, and values at type and size extremes (huge and tiny numbers,
long and odd strings, nulls, wrong types, unknown-forever cycles). Plans run in-process with the SDK's
in-process provider. Set ORCH_PROPERTY_EXAMPLES to run more examples (and with random seeds) locally.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
import traceback
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchdsl.cli import main

PROVIDER = "orchdsl.sdk.testing.memory:MemoryProvider"
EXAMPLES = int(os.environ.get("ORCH_PROPERTY_EXAMPLES", "40"))
SECONDS = 5.0

# Values at type and size extremes. Each pool is (ordinary, odd): a configuration is "odd" or not (half
# of them); an ordinary one takes only ordinary values, so that its plan gets past loading and exercises
# evaluation, scheduling and rendering; an odd one takes an odd value now and then.
NUMBERS = (["1", "2", "3", "0", "1.5", "1e3", "pow(2, 2000)", "9" * 120, 'parseint("zz", 36)', "floor(2.7)",
            "length(local.l)", "var.n", "1e-300"],
           ["-1", "1e999999", "1e-999999", "-1e400", "10001", "pow(0, -1)", "1/0", "1e3999 * 10", "pow(10, 5000)"])
STRINGS = (['"x"', '"busybox"', '"ünï ☃"', '"${local.s}"', '"' + "s" * 2000 + '"', '"/abs/path"',
            'format("%05d", 3)', 'join(",", ["a", "b"])', "upper(local.s)", 'regex("(a+)+$", "aaaa")',
            'replace("aaaa", "/a/", "b")', "tostring(1e300)", "jsonencode({a = 1})", "var.s"],
           ['""', '"a=b"', '"\\u0000"', '"rel/path"', '"Busybox"', '"8080:80"', 'regex("(?=a)", "a")',
            'file("/dev/zero")', 'fileset("/proc", "**")'])
COLLECTIONS = (["[]", "{}", "[1, 2, 3]", '["a", "b"]', '{ a = "1", b = 2 }', "range(1024)",
                "setproduct(range(30), range(30))", "[for i in range(100) : i * i]",
                '{ for k in ["x", "y"] : k => k }', 'toset(["a", "a"])'],
               ["null", "range(2000)", "[for i in range(1000) : [for j in range(1000) : j]]"])


class Ctx:
    """What a configuration declares, so that most references resolve; ``odd``: whether odd values may come."""

    def __init__(self, nodes: dict[str, str], pods: dict[str, str], module: bool, odd: bool) -> None:
        self.nodes, self.pods, self.module = nodes, pods, module  # name -> "single" | "count" | "for_each"
        self.odd = odd

    def refs(self, counted: bool) -> tuple[list[str], list[str]]:
        out = ["local.x", "local.s", "var.s", "var.n"] + (["count.index"] if counted else [])
        for kind, names in (("node", self.nodes), ("pod", self.pods)):
            for n, mode in names.items():
                attr = "name" if kind == "node" else "ip"
                out.append(f"{kind}.{n}.{attr}" if mode == "single" else
                           f"{kind}.{n}[0].{attr}" if mode == "count" else f'values({kind}.{n})[*].{attr}')
        if self.module:
            out.append("module.m.out")
        return out, ["pod.nope.ip", "module.nope.x", "count.index", "each.key"]


def pick(draw, ctx: Ctx, pool: tuple[list[str], list[str]]) -> str:
    ordinary, odd = pool
    if ctx.odd and odd and draw(st.integers(0, 4)) == 0:
        return draw(st.sampled_from(odd))
    return draw(st.sampled_from(ordinary))


@st.composite
def expressions(draw, ctx: Ctx, depth: int = 0, counted: bool = False) -> str:
    kinds = ["number", "string", "collection", "null", "bool", "ref", "ref"] + (["cond"] if depth < 2 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "number":
        return pick(draw, ctx, NUMBERS) if not counted or draw(st.booleans()) else "count.index"
    if kind == "string":
        return pick(draw, ctx, STRINGS)
    if kind == "ref":
        return pick(draw, ctx, ctx.refs(counted))
    if kind == "collection":
        return pick(draw, ctx, COLLECTIONS)
    if kind == "cond":
        a = draw(expressions(ctx, depth + 1, counted))
        b = draw(expressions(ctx, depth + 1, counted))
        return f"(length(local.l) > 1 ? {a} : {b})"
    if kind == "bool":
        return draw(st.sampled_from(["true", "false", '"true"']))
    return "null"


@st.composite
def string_maps(draw, ctx: Ctx, counted: bool = False) -> str:
    keys = draw(st.lists(st.sampled_from(["A", "B_2", "zone", "disk", "app"]), max_size=3, unique=True))
    if ctx.odd and draw(st.integers(0, 4)) == 0:
        keys.append(draw(st.sampled_from(['"A=B"', '""', '"x y"', '"orch.k"'])))
    values = (['"a"', '"ssd"', '"${local.s}"', "var.s", '"${var.n}"'] + (['"${count.index}"'] if counted else []),
              ["[1]", "null", "pod.nope.ip", draw(expressions(ctx, 1, counted))])
    return "{ " + ", ".join(f"{k} = {pick(draw, ctx, values)}" for k in keys) + " }"


def _count_line(draw, ctx: Ctx, mode: str, arg: str, pool: tuple[list[str], list[str]]) -> list[str]:
    if mode == "count":
        return [f"  {arg} = " + pick(draw, ctx, pool)]
    if mode == "for_each":
        return ["  for_each = " + pick(draw, ctx, (['toset(["a", "b"])', '{ x = 1 }', 'toset(["k"])'],
                                                   ["[1]", "null", '{ for i in range(20000) : "k${i}" => i }']))]
    return []


@st.composite
def node_block(draw, ctx: Ctx, name: str) -> str:
    mode = ctx.nodes[name]
    counted = mode == "count"
    lines = [f'node "{name}" {{'] + _count_line(draw, ctx, mode, "count", (["1", "2", "var.n", "0"],
                                                                            ["1e9", "-1", "1.5"]))
    i = str(len(name) * 10 + ord(name[-1]) % 10)
    host = {"count": f'"198.51.{i}.${{count.index}}"', "for_each": f'"${{each.key}}.{i}.example"'}.get(
        mode, f'"h{i}.example"')
    lines.append("  address = " + pick(draw, ctx, ([host], ['"a b"', '""', '"u@h"', "null", '"198.51.100.1"'])))
    if draw(st.integers(0, 3)) == 0:
        lines.append("  docker_host = " + pick(draw, ctx, (['"unix:///var/run/docker.sock"'],
                                                           ['"ssh://"', '"npipe://x"', '"ssh://u@h:99999"'])))
    if draw(st.booleans()):
        lines.append("  labels = " + draw(st.sampled_from(['{ zone = "a" }', '{ zone = "b", disk = "ssd" }',
                                                           draw(string_maps(ctx, counted))])))
    if draw(st.integers(0, 3)) == 0:
        lines.append("  schedulable = " + pick(draw, ctx, (["true", "false"], ["null", "1", '"no"'])))
    if draw(st.integers(0, 3)) == 0:
        lines.append("  depends_on = [" + pick(draw, ctx, ([f"node.{n}" for n in ctx.nodes if n != name] or
                                                           ["module.m"] if ctx.module else ["null"],
                                                           [f"node.{name}", "pod.web", "local.x"])) + "]")
    if draw(st.booleans()):
        cpu = pick(draw, ctx, (["1", "2", "4", '"250m"', "var.n"], ["0", "-1", "1e30", '"x"', "0.0001"]))
        mem = pick(draw, ctx, (['"1Gi"', '"4Gi"', "1073741824"], ['"0"', "1e30", '"5Zi"', '"-1Mi"']))
        lines += ["  capacity {", f"    cpu    = {cpu}", f"    memory = {mem}", "  }"]
    lines.append("}")
    return "\n".join(line for line in lines if not line.endswith("[null]"))


@st.composite
def pod_block(draw, ctx: Ctx, name: str) -> str:
    mode = ctx.pods[name]
    counted = mode == "count"
    arg = draw(st.sampled_from(["replicas", "count"]))
    lines = [f'pod "{name}" {{'] + _count_line(draw, ctx, mode, arg, (["1", "3", "0", "var.n", "length(local.l)"],
                                                                       ["10001", "1e9", "-1", "1.5", '"2"', "null"]))
    for attr, pool in (("node_selector", (['{ zone = "a" }', '{ disk = "ssd" }', "{}"], ['{ x = [1] }'])),
                       ("labels", (['{ app = "web" }', "{}"], ['{ "orch.x" = "1" }'])),
                       ("anti_affinity", (['"hard"', '"soft"'], ['"maybe"'])),
                       ("placement", (['"binpack"', '"spread"'], ["1"])),
                       ("hostname", (['"web-1"'], ['"not a host"', '"' + "h" * 70 + '"'])),
                       ("spread_by", (['"zone"', '"node"'], ['""']))):
        if draw(st.integers(0, 3)) == 0:
            lines.append(f"  {attr} = {pick(draw, ctx, pool)}")
    others = [f"pod.{n}" for n in ctx.pods if n != name] + [f"node.{n}" for n in ctx.nodes] + \
        (["module.m"] if ctx.module else [])
    if others and draw(st.integers(0, 3)) == 0:
        lines.append(f"  depends_on = [{draw(st.sampled_from(others))}]")
    for c in range(draw(st.integers(1, 2))):
        lines.append(f'  container "c{c}" {{')
        lines.append("    image = " + pick(draw, ctx, (['"busybox"', "var.s", '"registry.example:5000/a/b:1@sha256:'
                                                          + "a" * 64 + '"'], ['""', '"Busybox"', "local.l"])))
        if draw(st.booleans()):
            lines.append(f"    env = {draw(string_maps(ctx, counted))}")
        if draw(st.booleans()):
            lines.append("    ports = " + pick(draw, ctx, (['[8080]', '["8080:80"]', '["53/udp", 9090]'],
                                                            ['["80:80", "80:81"]', '[{ container_port = 0 }]',
                                                             '["x"]', "[70000]"])))
        if draw(st.integers(0, 3)) == 0:
            lines.append("    mounts = " + pick(draw, ctx, (['[{ target = "/d", tmpfs = true }]',
                                                             '[{ target = "/d", host_path = "/srv/d" }]'],
                                                            ['[{ target = "d", host_path = "/x" }]',
                                                             '[{ target = "/d", volume = "v" }]',
                                                             '[{ target = "/d" }]'])))
        if draw(st.integers(0, 3)) == 0:
            lines.append("    working_dir = " + pick(draw, ctx, (['"/srv"', '"/${local.s}"'], ['"rel"', "1"])))
        if draw(st.booleans()):
            cpu = pick(draw, ctx, (["0.25", "0.5", "1", "var.n"] + (["count.index + 1"] if counted else []),
                                   ['"5m"', "1e9", "-1"]))
            mem = pick(draw, ctx, (['"64Mi"', '"256Mi"'], ['"1Mi"', "1e30", '"x"']))
            lines += ["    resources {", f"      cpu    = {cpu}", f"      memory = {mem}", "    }"]
        if draw(st.integers(0, 3)) == 0:
            lines += ["    health {", "      command  = " + pick(draw, ctx, (['["true"]'], ["[]", "null"])),
                      "      interval = " + pick(draw, ctx, (['"5s"', '"1m30s"'], ['"500us"', '"-1s"', "1e999"])),
                      "    }"]
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines)


MODES = ["single", "single", "count", "for_each"]


@st.composite
def configurations(draw) -> dict[str, str]:
    nodes = {n: draw(st.sampled_from(MODES)) for n in draw(st.lists(st.sampled_from(["n1", "n2", "a"]),
                                                                    max_size=3, unique=True))}
    pods = {n: draw(st.sampled_from(MODES)) for n in draw(st.lists(st.sampled_from(["web", "db", "b"]),
                                                                   max_size=3, unique=True))}
    ctx = Ctx(nodes, pods, draw(st.booleans()), draw(st.booleans()))
    blocks = [
        'variable "n" {\n  type    = number\n  default = ' + pick(draw, ctx, (["1", "2", "0"], ["1e9", "-1"])) + "\n}",
        'variable "s" {\n  type = string\n' + pick(draw, ctx, (['  default = "busybox"\n'], [""])) + "}",
        "locals {\n  l = " + pick(draw, ctx, COLLECTIONS) + "\n  s = " + draw(st.sampled_from(STRINGS[0][:3]))
        + "\n  x = " + draw(expressions(ctx)).replace("local.x", "local.s") + "\n}",
    ]
    blocks += [draw(node_block(ctx, n)) for n in nodes]
    blocks += [draw(pod_block(ctx, n)) for n in pods]
    files = {}
    if ctx.module:
        blocks.append('module "m" {\n  source = "./m"\n  in     = ' +
                      draw(expressions(ctx)).replace("module.m.out", "local.s") + "\n}")
        files["m/main.orch"] = ('variable "in" {}\noutput "out" {\n  value = ' +
                                draw(st.sampled_from(["var.in", "pod.p.ip", "[var.in]"])) +
                                '\n}\npod "p" {\n  container "c" {\n    image = "busybox"\n  }\n}\n')
    for i in range(draw(st.integers(0, 2))):
        blocks.append(f'output "o{i}" {{\n  value = {draw(expressions(ctx))}\n}}')
    files["main.orch"] = ("# with odd values\n" if ctx.odd else "") + "\n\n".join(blocks) + "\n"
    return files


def _run(argv: list[str]) -> tuple[int, str, float]:
    out, err = io.StringIO(), io.StringIO()
    start = time.monotonic()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except BaseException:  # noqa: BLE001 - any escaping exception is the failure this test looks for
        pytest.fail(f"orch {' '.join(argv[:2])} raised:\n{traceback.format_exc()}")
    return code, out.getvalue() + err.getvalue(), time.monotonic() - start


def _check(files: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "cfg"
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        os.environ["ORCH_MEMORY_WORLD"] = str(Path(tmp) / "world")
        for argv in (["validate", str(root)], ["plan", "--refresh=false", str(root)]):
            code, text, took = _run(argv)
            shown = f"{' '.join(argv[:2])} of\n{files['main.orch']}\n---\n{text[-3000:]}"
            assert code in (0, 1, 2), shown
            assert "Traceback" not in text and "internal error" not in text, shown
            assert code == 0 or "Error" in text, shown  # a failure says why
            assert took < SECONDS, f"{took:.1f}s: {shown}"


@pytest.fixture(autouse=True)
def _provider(monkeypatch):
    monkeypatch.setenv("ORCH_PROVIDER_MODULES", PROVIDER)
    for k in [k for k in os.environ if k.startswith("ORCH_VAR_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("ORCH_MEMORY_WORLD", "")  # set per example
    _check({"main.orch": 'pod "warm" {\n  container "c" {\n    image = "busybox"\n  }\n}\n'})  # imports


@settings(max_examples=EXAMPLES, deadline=None, derandomize="ORCH_PROPERTY_EXAMPLES" not in os.environ,
          database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(configurations())
def test_generated_configurations_give_a_plan_or_diagnostics(files):
    _check(files)
