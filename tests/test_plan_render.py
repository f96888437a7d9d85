"""Plan renderers: golden text / JSON / Markdown, and the contracts PR and policy tools rely on.

Regenerate the golden files after an intended change with ``ORCH_UPDATE_GOLDEN=1 pytest
tests/test_plan_render.py`` and review the diff line by line.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from orchdsl.addrs import ModuleStep, ResourceAddress
from orchdsl.plan.model import (CREATE_BECAUSE_MISSING, DELETE_BECAUSE_COUNT_INDEX, DELETE_BECAUSE_EACH_KEY,
                                REPLACE_BECAUSE_CANNOT_UPDATE, REPLACE_BECAUSE_TAINTED, UNKNOWN, Action,
                                DriftChange, OutputChange, Plan, ResourceChange)
from orchdsl.plan.render_json import dumps_plan_json, render_plan_json
from orchdsl.plan.render_markdown import diff_markdown, render_plan_markdown
from orchdsl.plan.render_text import render_plan_text, strip_ansi

GOLDEN = Path(__file__).parent / "golden" / "plan"
UPDATE = os.environ.get("ORCH_UPDATE_GOLDEN") == "1"
PROVIDER = "orch/docker"


def addr(type_: str, name: str, key: int | str | None = None, module: str | None = None) -> ResourceAddress:
    return ResourceAddress(type_, name, key, (ModuleStep(module),) if module else ())


def full_plan() -> Plan:
    """Every action kind, drift, sensitive values, outputs and placements, in graph order."""
    web0 = ResourceChange(
        addr("pod", "web", 0), Action.CREATE, None,
        {"name": "web-0", "id": UNKNOWN, "ip": UNKNOWN, "replicas_hint": None,
         "labels": {"app": "web"},
         "container": [{"name": "httpd", "image": "nginx:1.27",
                        "command": ["nginx", "-g", "daemon off;"],
                        "env": {"GREETING": "hello from n1", "DB_PASSWORD": "hunter2"},
                        "ports": [{"container": 80, "host": 8080}],
                        "resources": {"cpu": 0.25, "memory": "64Mi"}}]},
        after_sensitive=[("container", 0, "env", "DB_PASSWORD")],
        provider=PROVIDER, location="node.n1", reason="because pod.web has 4 replicas")
    service = ResourceChange(
        addr("service", "web"), Action.UPDATE,
        {"id": "svc-7f3a", "name": "web", "port": 80, "target_port": 8080, "selector": {"app": "web"},
         "labels": {"team": "payments", "tier": "frontend"}, "tls_key": "old-key", "ready": True},
        {"id": "svc-7f3a", "name": "web", "port": 80, "target_port": 8081, "selector": {"app": "web"},
         "labels": {"team": "checkout", "tier": "frontend", "owner": "sre"}, "tls_key": "new-key",
         "ready": True},
        before_sensitive=[("tls_key",)], after_sensitive=[("tls_key",)],
        provider=PROVIDER, reason="because target_port changed")
    web1 = ResourceChange(
        addr("pod", "web", 1), Action.REPLACE,
        {"name": "web-1", "id": "c0ffee01", "ip": "10.88.1.5", "labels": {"app": "web"},
         "container": [{"name": "httpd", "image": "nginx:1.25", "command": ["nginx", "-g", "daemon off;"]}]},
        {"name": "web-1", "id": UNKNOWN, "ip": UNKNOWN, "labels": {"app": "web"},
         "container": [{"name": "httpd", "image": "nginx:1.27", "command": ["nginx", "-g", "daemon off;"]}]},
        action_reason=REPLACE_BECAUSE_CANNOT_UPDATE, replace_paths=[("container", 0, "image")],
        provider=PROVIDER, location="node.n2")
    network = ResourceChange(
        addr("network", "backend"), Action.REPLACE,
        {"id": "net-1", "name": "backend", "subnet": "10.1.0.0/24"},
        {"id": UNKNOWN, "name": "backend", "subnet": "10.2.0.0/24"},
        action_reason=REPLACE_BECAUSE_CANNOT_UPDATE, replace_paths=[("subnet",)], create_before_destroy=True,
        provider=PROVIDER)
    web3 = ResourceChange(
        addr("pod", "web", 3), Action.DELETE,
        {"name": "web-3", "id": "c0ffee03", "ip": "10.88.1.9", "labels": {"app": "web"},
         "container": [{"name": "httpd", "image": "nginx:1.25"}]},
        None, action_reason=DELETE_BECAUSE_COUNT_INDEX, provider=PROVIDER, location="node.n1")
    web2 = ResourceChange(
        addr("pod", "web", 2), Action.NOOP,
        {"name": "web-2", "id": "c0ffee02", "labels": {"app": "web"}},
        {"name": "web-2", "id": "c0ffee02", "labels": {"app": "web"}}, provider=PROVIDER, location="node.n2")
    api = ResourceChange(
        addr("service", "api"), Action.CREATE, None,
        {"name": "api", "id": UNKNOWN, "port": 9000, "vip": UNKNOWN},
        action_reason=CREATE_BECAUSE_MISSING, provider=PROVIDER)
    volume = ResourceChange(
        addr("volume", "data", "old", module="cache"), Action.DELETE,
        {"name": "cache-old", "id": "vol-9", "size": "1Gi"}, None,
        action_reason=DELETE_BECAUSE_EACH_KEY, provider=PROVIDER)
    drift = [
        DriftChange(addr("pod", "web", 2), Action.UPDATE,
                    {"name": "web-2", "id": "c0ffee02", "labels": {"app": "web"}},
                    {"name": "web-2", "id": "c0ffee02", "labels": {"app": "web", "debug": "true"}},
                    reason="labels edited with docker"),
        DriftChange(addr("service", "api"), Action.DELETE,
                    {"name": "api", "id": "svc-0a1", "port": 9000, "vip": "10.96.0.12"}, None),
    ]
    outputs = [
        OutputChange("web_ips", Action.CREATE, None, UNKNOWN),
        OutputChange("image", Action.UPDATE, "nginx:1.25", "nginx:1.27"),
        OutputChange("db_password", Action.UPDATE, "old-secret", "new-secret", sensitive=True),
        OutputChange("region", Action.NOOP, "eu-west", "eu-west"),
        OutputChange("endpoints", Action.CREATE, None, {"web": "http://web.internal", "ports": [80, 443]}),
    ]
    return Plan(changes=[network, web0, service, web1, web3, web2, api, volume], drift=drift, outputs=outputs,
                lineage="5f0c9a2e-7d1b-4c3e-9a8f-1b2c3d4e5f60", serial=7, variables={"replicas": 3},
                timestamp="2024-05-01T12:00:00Z")


def no_changes_plan() -> Plan:
    web0 = ResourceChange(addr("pod", "web", 0), Action.NOOP, {"name": "web-0", "id": "c0ffee00"},
                          {"name": "web-0", "id": "c0ffee00"}, provider=PROVIDER, location="node.n1")
    return Plan(changes=[web0], outputs=[OutputChange("region", Action.NOOP, "eu-west", "eu-west")],
                lineage="5f0c9a2e-7d1b-4c3e-9a8f-1b2c3d4e5f60", serial=8, timestamp="2024-05-01T12:00:00Z")


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.is_file(), f"missing golden file {path}; run with ORCH_UPDATE_GOLDEN=1 to create it"
    assert actual == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


def json_text(plan: Plan) -> str:
    return json.dumps(render_plan_json(plan, version="0.0.0-test"), indent=2, ensure_ascii=False) + "\n"


# --- golden files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name,make", [("full", full_plan), ("no_changes", no_changes_plan)])
def test_golden_text(name: str, make: Any) -> None:
    check_golden(f"{name}.txt", render_plan_text(make()))


@pytest.mark.parametrize("name,make", [("full", full_plan), ("no_changes", no_changes_plan)])
def test_golden_json(name: str, make: Any) -> None:
    check_golden(f"{name}.json", json_text(make()))


@pytest.mark.parametrize("name,make", [("full", full_plan), ("no_changes", no_changes_plan)])
def test_golden_markdown(name: str, make: Any) -> None:
    check_golden(f"{name}.md", render_plan_markdown(make()))


# --- the text contract PR tools rely on --------------------------------------------------------------

# tfcmt's expressions (pkg/terraform/parser.go), applied line by line.
TFCMT = {
    "create": re.compile(r"^ *# (.*) will be created$"),
    "update": re.compile(r"^ *# (.*) will be updated in-place$"),
    "delete": re.compile(r"^ *# (.*) will be destroyed$"),
    "replace": re.compile(r"^ *# (.*?)(?: is tainted, so)? must be replaced$"),
}


def test_pr_tools_find_every_change() -> None:
    text = render_plan_text(full_plan())
    found: dict[str, list[str]] = {k: [] for k in TFCMT}
    for line in text.split("\n"):
        for kind, pattern in TFCMT.items():
            m = pattern.match(line)
            if m:
                found[kind].append(m.group(1))
    assert found == {
        "create": ["pod.web[0]", "service.api"],
        "update": ["service.web"],
        "delete": ["pod.web[3]", 'module.cache.volume.data["old"]'],
        "replace": ["network.backend", "pod.web[1]"],
    }
    assert re.search(r"(?m)^Plan: 4 to add, 1 to change, 4 to destroy\.$", text)
    assert re.search(r"(?m)^Changes to Outputs:$", text)
    assert re.search(r"(?m)^Note: Objects have changed outside of orch$", text)
    assert re.search(r"(?m)^Unless you have made equivalent changes to your configuration", text)


def test_no_changes_wording() -> None:
    text = render_plan_text(no_changes_plan())
    assert text.startswith("No changes. Your infrastructure matches the configuration.\n\n")
    assert "found no differences, so no changes are needed." in text
    assert "Plan:" not in text


def test_mode_wordings() -> None:
    refresh = render_plan_text(Plan(refresh_only=True))
    assert refresh.startswith("No changes. Your infrastructure still matches the configuration.")
    destroy = render_plan_text(Plan(destroy=True))
    assert destroy.startswith("No changes. No objects need to be destroyed.")
    drifted = Plan(refresh_only=True, drift=full_plan().drift)
    text = render_plan_text(drifted)
    assert "This is a refresh-only plan, so orch will not take any actions to undo" in text
    assert "No changes." not in text and "Plan:" not in text


def test_drift_alone_is_not_news() -> None:
    """As in Terraform: drift the plan does not act on (ignore_changes) is not reported."""
    plan = no_changes_plan()
    plan.drift = full_plan().drift
    assert "outside of orch" not in render_plan_text(plan)


def test_outputs_only() -> None:
    plan = Plan(outputs=[OutputChange("web_ips", Action.CREATE, None, ["10.0.0.1"])])
    text = render_plan_text(plan)
    assert text.startswith("Changes to Outputs:\n  + web_ips = [\n")
    assert "without changing any real infrastructure." in text
    assert "Plan:" not in text


def test_tainted_and_requested_replacements() -> None:
    tainted = ResourceChange(addr("pod", "web", 0), Action.REPLACE, {"id": "a"}, {"id": UNKNOWN},
                             action_reason=REPLACE_BECAUSE_TAINTED)
    text = render_plan_text(Plan(changes=[tainted]))
    assert "  # pod.web[0] is tainted, so must be replaced\n" in text
    assert TFCMT["replace"].match("  # pod.web[0] is tainted, so must be replaced")


def test_sensitive_values_never_shown() -> None:
    plan = full_plan()
    for text in (render_plan_text(plan), render_plan_text(plan, color=True), render_plan_markdown(plan)):
        for secret in ("hunter2", "old-key", "new-key", "old-secret", "new-secret"):
            assert secret not in text
    assert render_plan_text(plan).count("(sensitive value)") == 3


def test_color() -> None:
    plan = full_plan()
    plain = render_plan_text(plan, color=False)
    colored = render_plan_text(plan, color=True)
    assert "\x1b" not in plain
    assert "\x1b[32m+\x1b[0m" in colored and "\x1b[33m~\x1b[0m" in colored and "\x1b[31m-\x1b[0m" in colored
    assert "\x1b[1mPlan:\x1b[0m" in colored
    assert strip_ansi(colored) == plain  # colour only decorates: the words are the same


def test_multiline_and_json_strings() -> None:
    change = ResourceChange(addr("pod", "web", 0), Action.UPDATE,
                            {"config": "a\nb\nc\n", "spec": '{"replicas": 2, "labels": ["x"]}'},
                            {"config": "a\nB\nc\n", "spec": '{"replicas": 3, "labels": ["x"]}'})
    text = render_plan_text(Plan(changes=[change]))
    assert ("      ~ config = <<-EOT\n"
            "            a\n"
            "          - b\n"
            "          + B\n"
            "            c\n"
            "        EOT\n") in text
    assert ("      ~ spec   = jsonencode(\n"
            "          ~ {\n"
            "              ~ replicas = 2 -> 3\n"
            "                # (1 unchanged attribute hidden)\n"
            "            }\n"
            "        )\n") in text


def test_markdown_layout() -> None:
    md = render_plan_markdown(full_plan())
    first, rest = md.split("\n", 1)
    assert first == "**Plan:** 4 to add, 1 to change, 4 to destroy."
    assert ":warning: **2 objects changed outside of orch**" in rest.split("<details>")[0]
    assert rest.index("#### Create (2)") < rest.index("#### Update (1)") < rest.index("#### Replace (2)") \
        < rest.index("#### Destroy (2)") < rest.index("<details><summary>Show plan</summary>")
    body = md.split("```diff\n", 1)[1].split("\n```\n", 1)[0]
    assert "\x1b" not in body
    assert "-/+ resource \"pod\" \"web\" {" in body and "+/- resource \"network\" \"backend\" {" in body
    assert '+       name      = "web-0"' in body
    assert "!   resource \"service\" \"web\" {" in body
    assert render_plan_markdown(no_changes_plan()).startswith("**No changes.** Your infrastructure matches")


def test_markdown_truncates_to_comment_limit() -> None:
    md = render_plan_markdown(full_plan(), limit=2500)
    assert len(md) < 2500
    assert "(truncated: run `orch plan` to see the whole plan)" in md
    assert md.rstrip().endswith("</details>")


def test_diff_markdown_leaves_contents_alone() -> None:
    text = "      + config = <<-EOT\n            - item\n        EOT\n  ~ resource \"a\" \"b\" {\n"
    expected = "+       config = <<-EOT\n            - item\n        EOT\n!   resource \"a\" \"b\" {\n"
    assert diff_markdown(text) == expected


# --- the JSON contract policy tools rely on ------------------------------------------------------------


def mirrors(value: Any, shape: Any, what: str) -> None:
    """``shape`` (after_unknown / *_sensitive) follows ``value``'s structure, ``true`` marking leaves."""
    if shape is True:
        return
    if shape is False:
        assert not isinstance(value, (dict, list)) or what == "unknown", f"{what}: false for a collection"
        return
    if isinstance(shape, dict):
        assert isinstance(value, dict), f"{what}: object shape {shape!r} for {value!r}"
        for key, sub in shape.items():
            if sub is True and what == "unknown":
                assert key not in value, f"unknown {key!r} must be left out of after"
            else:
                assert key in value, f"{what}: {key!r} not in {value!r}"
                mirrors(value[key], sub, what)
        return
    assert isinstance(shape, list) and isinstance(value, list), (what, shape, value)
    assert len(shape) == len(value), (what, shape, value)
    for v, s in zip(value, shape):
        if s is True and what == "unknown":
            assert v is None, "unknown list elements are null in after"
        else:
            mirrors(v, s, what)


def test_json_structure() -> None:
    plan = full_plan()
    data = render_plan_json(plan)
    assert data["format_version"] == "1.2" and isinstance(data["orch_version"], str)
    assert {"planned_values", "resource_drift", "resource_changes", "output_changes", "errored",
            "applyable", "complete", "orch"} <= data.keys()
    assert data["errored"] is False and data["applyable"] is True
    assert [rc["address"] for rc in data["resource_changes"]] == [str(c.address) for c in plan.changes]
    for rc in data["resource_changes"] + data["resource_drift"]:
        assert {"address", "mode", "type", "name", "provider_name", "change"} <= rc.keys()
        assert rc["mode"] == "managed"
        change = rc["change"]
        assert {"actions", "before", "after", "after_unknown", "before_sensitive",
                "after_sensitive"} <= change.keys()
        if change["after"] is not None and change["after_unknown"] != {}:
            mirrors(change["after"], change["after_unknown"], "unknown")
        if change["before"] is None:
            assert change["before_sensitive"] is False
        else:
            mirrors(change["before"], change["before_sensitive"], "sensitive")
        if change["after"] is None:
            assert change["after_sensitive"] is False and change["after_unknown"] == {}
        else:
            mirrors(change["after"], change["after_sensitive"], "sensitive")
        if "replace_paths" in change:
            assert change["actions"] in (["delete", "create"], ["create", "delete"])
    by_address = {rc["address"]: rc for rc in data["resource_changes"]}
    assert by_address["network.backend"]["change"]["actions"] == ["create", "delete"]
    assert by_address["pod.web[1]"]["change"]["actions"] == ["delete", "create"]
    assert by_address["pod.web[1]"]["change"]["replace_paths"] == [["container", 0, "image"]]
    assert by_address["pod.web[1]"]["action_reason"] == "replace_because_cannot_update"
    assert "action_reason" not in by_address["service.web"]
    assert "index" not in by_address["service.web"] and "module_address" not in by_address["service.web"]
    volume = by_address['module.cache.volume.data["old"]']
    assert volume["module_address"] == "module.cache" and volume["index"] == "old"
    assert by_address["pod.web[0]"]["change"]["after_unknown"]["id"] is True
    assert "id" not in by_address["pod.web[0]"]["change"]["after"]
    assert data["output_changes"]["web_ips"]["after_unknown"] is True
    assert "after" not in data["output_changes"]["web_ips"]
    assert data["output_changes"]["db_password"]["after_sensitive"] is True
    planned = [r["address"] for r in data["planned_values"]["root_module"]["resources"]]
    assert "pod.web[3]" not in planned and "pod.web[2]" in planned
    assert data["orch"]["placement"] == {"pod.web[0]": "node.n1", "pod.web[1]": "node.n2", "pod.web[3]": "node.n1",
                                         "pod.web[2]": "node.n2"}
    assert data["orch"]["lineage"] == plan.lineage and data["orch"]["serial"] == 7
    json.loads(dumps_plan_json(plan))  # serialisable as is
