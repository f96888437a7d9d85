"""Saved plan files: JSON with a format version and a checksum, never code.

`orch plan --out FILE` writes one (0600, atomically, nothing left behind on failure); `orch show FILE` and
`orch apply FILE` read it and refuse, with one diagnostic and never a traceback, anything orch did not write:
an old pickled plan (never unpickled), a truncated or bit-flipped file, foreign JSON, another format version.
A plan read back is the plan that was written, and applying it does exactly what applying the plan in memory
does.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import stat
from decimal import Decimal
from pathlib import Path

import pytest

from orchdsl.addrs import ModuleStep, ResourceAddress
from orchdsl.cli import main
from orchdsl.cluster.derive import Summary
from orchdsl.diagnostics import DiagnosticsError
from orchdsl.plan import planfile
from orchdsl.plan.model import (UNKNOWN, Action, DriftChange, OutputChange, Plan, ResourceChange)
from orchdsl.plan.planfile import SavedPlan, loads_plan_file, read_plan_file, write_plan_file
from orchdsl.sdk.protocol import MemberStatus, ObjectStatus
from orchdsl.sdk.testing.memory import edit_world, world_objects
from orchdsl.state import ResourceInstance, State

REPO = Path(__file__).resolve().parents[1]


def addr(text: str) -> ResourceAddress:
    return ResourceAddress.parse(text)


def rich_plan() -> Plan:
    """Every field of the model set, with the values that JSON alone cannot tell apart."""
    prior = State(lineage="5f0c9a2e-lineage", serial=7, resources=[
        ResourceInstance.for_address("pod.web[0]", "memory", {"id": "c0ffee00", "name": "web-0", "ip": "10.0.0.2"},
                                     sensitive_attributes=(("env", "PASSWORD"),)),
        ResourceInstance.for_address('module.app["eu"].pod.db', "memory", {"id": "d"}, status="tainted",
                                     deposed=({"key": "00000001", "attributes": {"id": "old"}, "private": None},)),
    ])
    prior.set_output("url", "http://x", sensitive=True)
    web0, web1 = addr("pod.web[0]"), addr("pod.web[1]")
    db = ResourceAddress("pod", "db", None, (ModuleStep("app", "eu"),))
    odd = ResourceAddress("pod", "x", 'a"b\n\u00e9\U0001F600', (ModuleStep("m", 3),))
    after = {"name": "web-1", "ip": UNKNOWN, "cpu": Decimal("0.5"), "ratio": 1.5, "big": 10**30,
             "list": [1, UNKNOWN, None, True], "tuple": ("a", 1), "nested": {"$unknown": True, "$$x": [{}]},
             "env": {"Z": "1", "A": "2"}, "inf": float("inf"), "intkeys": {1: "one", 2: [UNKNOWN]}}
    return Plan(
        changes=[
            ResourceChange(web1, Action.CREATE, None, after, reason="because pod.web has 2 replicas",
                           after_sensitive=[("env", "A")], provider="memory", location="node.n2",
                           derived={"node": "n2"}, index=0, facts=[("capacity", "cpu")]),
            ResourceChange(web0, Action.REPLACE, {"id": "c0ffee00", "name": "web-0"}, {"id": UNKNOWN, "name": "w"},
                           action_reason="replace_because_cannot_update", replace_paths=[("container", 0, "image")],
                           before_sensitive=[("env",)], create_before_destroy=True, provider="memory", index=1),
            ResourceChange(db, Action.DELETE, {"id": "old"}, None, action_reason="delete_because_deposed",
                           deposed="00000001", index=2),
            ResourceChange(odd, Action.CREATE, None, {"pods": ["pod.web[0]"]}, derived_by="programs", index=3),
            ResourceChange(addr("node.n1"), Action.NOOP, {"id": "n"}, {"id": "n"}, index=4),
        ],
        drift=[DriftChange(web0, Action.UPDATE, {"name": "a"}, {"name": "b"}, reason="edited"),
               DriftChange(addr("pod.gone"), Action.DELETE, {"id": "g"}, None)],
        outputs=[OutputChange("ips", Action.CREATE, None, UNKNOWN),
                 OutputChange("pw", Action.UPDATE, "a", "b", sensitive=True),
                 OutputChange("n", Action.DELETE, 3, None)],
        lineage="5f0c9a2e-lineage", serial=7, refresh_only=False, destroy=False,
        variables={"replicas": 2, "ratio": Decimal("0.25"), "tags": ["a"], "m": {"k": None}},
        timestamp="2024-05-01T12:00:00Z",
        dependencies={web1: [addr("node.n2"), db], odd: [web0]},
        adopted=[web0],
        summaries=[Summary("scheduler", "All 2 replicas placed.", {"placed": 2, "nodes": [{"cpu": 0.5}]},
                           frozenset({"pod.web[1]", "pod.web[0]"}))],
        status={web0: ObjectStatus("degraded", True, (MemberStatus("httpd", "exited", 137, None, 0, 2, "x"),
                                                      MemberStatus("side", "running", None, "unhealthy", 5)),
                                   "msg"),
                db: ObjectStatus("unknown", reachable=False, message="node.n3 did not answer")},
        prior_state=prior,
    )


def saved(plan: Plan | None = None) -> SavedPlan:
    return SavedPlan(plan or rich_plan(), "envs/prod", {"replicas": "3", "pw": "s3cret"}, ["a.orchvars"])


def one_diag(excinfo: pytest.ExceptionInfo[DiagnosticsError]) -> str:
    diags = excinfo.value.diagnostics
    assert len(diags) == 1 and diags[0].is_error and diags[0].hint
    return diags[0].render()


# ---- the format ---------------------------------------------------------------------------------------------

def test_a_plan_read_back_is_the_plan_written(tmp_path):
    s = saved()
    path = tmp_path / "p.orchplan"
    write_plan_file(path, s)
    back = read_plan_file(path)
    assert back == s  # every field of every change, drift, output, summary, status...
    assert back.plan.prior_state.to_json() == s.plan.prior_state.to_json()
    after = back.plan.changes[0].after
    assert after["ip"] is UNKNOWN and after["list"][1] is UNKNOWN and after["intkeys"][2][0] is UNKNOWN
    assert isinstance(after["cpu"], Decimal) and isinstance(after["tuple"], tuple)
    assert after["nested"] == {"$unknown": True, "$$x": [{}]}  # data that looks like a tag stays data
    assert list(after["env"]) == ["Z", "A"]  # key order kept: what a provider is given is what it was given
    assert back.plan.changes[3].address.key == 'a"b\n\u00e9\U0001F600'
    assert back.plan.outputs[0].after is UNKNOWN
    assert back.plan.status[addr("pod.web[0]")].members[0].exit_code == 137


def test_every_field_of_the_model_is_saved():
    """A field added to the plan model must be added to the plan file (or the saved plan loses it)."""
    import dataclasses

    content = planfile.encode_saved(saved())
    plan = content["plan"]
    assert set(content) == {f.name for f in dataclasses.fields(SavedPlan)}
    assert set(plan) == {f.name for f in dataclasses.fields(Plan)}
    for key, model in (("changes", ResourceChange), ("drift", DriftChange), ("outputs", OutputChange),
                       ("summaries", Summary)):
        assert {k for entry in plan[key] for k in entry} == {f.name for f in dataclasses.fields(model)}, key
    members = {f.name for f in dataclasses.fields(MemberStatus)}
    for status in plan["status"].values():
        assert set(status) == {f.name for f in dataclasses.fields(ObjectStatus)}
        assert all(set(m) == members for m in status["members"])


def test_the_file_is_versioned_checksummed_json(tmp_path):
    path = tmp_path / "p.orchplan"
    write_plan_file(path, saved())
    raw = path.read_bytes()
    assert b"pickle" not in raw and raw.startswith(b'{"format":"orch-plan","format_version":1,')
    doc = json.loads(raw)
    assert doc["format"] == "orch-plan" and doc["format_version"] == planfile.PLAN_FORMAT_VERSION
    assert doc["checksum"].startswith("sha256:") and len(doc["checksum"]) == 7 + 64
    assert doc["content"]["directory"] == "envs/prod" and doc["content"]["var_files"] == ["a.orchvars"]
    change = doc["content"]["plan"]["changes"][0]
    assert change["address"] == "pod.web[1]" and change["action"] == "create"
    assert change["after"]["ip"] == {"$unknown": True} and change["after"]["cpu"] == {"$decimal": "0.5"}
    # reformatting the JSON (indentation) keeps it valid: the checksum is over the content, not the bytes
    path.write_text(json.dumps(doc, indent=2))
    assert read_plan_file(path) == saved()


def test_no_pickle_anywhere_in_orch():
    offenders = []
    for f in sorted((REPO / "orchdsl").rglob("*.py")) + sorted((REPO / "providers").rglob("*.py")):
        text = f.read_text()
        if "import pickle" in text or "pickle." in text or "__reduce__" in text or "__setstate__" in text:
            offenders.append(str(f.relative_to(REPO)))
    assert offenders == []


def test_plan_files_are_0600_whatever_the_umask_and_the_file_before(tmp_path):
    path = tmp_path / "p.orchplan"
    path.write_text("old")
    path.chmod(0o644)
    old = os.umask(0)
    try:
        write_plan_file(path, saved())
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.orchplan"]


@pytest.mark.parametrize("target", ["missing/p.orchplan", "adir"])
def test_saving_into_a_missing_directory_or_onto_a_directory_is_a_diagnostic(tmp_path, target):
    (tmp_path / "adir").mkdir()
    with pytest.raises(DiagnosticsError) as e:
        write_plan_file(tmp_path / target, saved())
    text = one_diag(e)
    assert "Cannot save the plan" in text
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["adir"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "p.orchplan"
    path.write_text("previous")

    def boom(fd, data):
        raise OSError(28, "No space left on device")

    from orchdsl.state import fileio

    monkeypatch.setattr(fileio, "write_all", boom)  # plan files are written by the shared atomic writer
    with pytest.raises(DiagnosticsError) as e:
        write_plan_file(path, saved())
    assert "No space left on device" in one_diag(e)
    assert path.read_text() == "previous" and sorted(p.name for p in tmp_path.iterdir()) == ["p.orchplan"]


# ---- refusing what orch did not write ---------------------------------------------------------------------

class _Payload:
    """What an attacker puts in a pickle: creating a file proves it ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_an_old_pickled_plan_file_is_refused_and_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    for data in (b"ORCHPLAN1\n" + pickle.dumps(_Payload(marker)), pickle.dumps(_Payload(marker))):
        with pytest.raises(DiagnosticsError) as e:
            loads_plan_file(data, "evil.plan")
        text = one_diag(e)
        assert "Unsupported plan file" in text and "pickle" in text
    assert not marker.exists()


def good_bytes() -> bytes:
    return planfile.dumps_plan_file(saved())


def _with_content(mutate) -> bytes:
    doc = json.loads(good_bytes())
    mutate(doc)
    return json.dumps(doc).encode()


def _resealed(mutate_content) -> bytes:
    """A file whose content is changed and whose checksum is recomputed: only validation can catch it."""
    def go(doc):
        mutate_content(doc["content"])
        doc["checksum"] = planfile._checksum(planfile._canonical(doc["content"]))
    return _with_content(go)


CASES = {
    "empty": (lambda: b"", "Not a plan file"),
    "binary": (lambda: b"\xff\xfe\x00garbage", "Not a plan file"),
    "truncated": (lambda: good_bytes()[:len(good_bytes()) // 2], "Damaged plan file"),
    "truncated at the end": (lambda: good_bytes()[:-3], "Damaged plan file"),
    "a changed value": (lambda: good_bytes().replace(b'"web-1"', b'"web-X"', 1), "Damaged plan file"),
    "no checksum": (lambda: _with_content(lambda d: d.pop("checksum")), "Damaged plan file"),
    "newer version": (lambda: _with_content(lambda d: d.update(format_version=2)), "Unsupported plan file version"),
    "version as text": (lambda: _with_content(lambda d: d.update(format_version="1")), "Damaged plan file"),
    "another format": (lambda: _with_content(lambda d: d.update(format="terraform-plan")), "Not a plan file"),
    "a JSON list": (lambda: b"[1, 2]", "Not a plan file"),
    "deeply nested JSON": (lambda: b"[" * 100000 + b"]" * 100000, "Not a plan file"),
    "NaN": (lambda: b'{"format": NaN}', "Not a plan file"),
    "a state file": (lambda: State().to_json().encode(), "Not a plan file"),
    "a rendered JSON plan": (lambda: b'{"format_version": "1.2", "resource_changes": []}', "Not a plan file"),
    "an unknown action": (lambda: _resealed(lambda c: c["plan"]["changes"][0].update(action="explode")),
                          "Invalid plan file"),
    "a bad address": (lambda: _resealed(lambda c: c["plan"]["changes"][0].update(address="pod.web[0")),
                      "Invalid plan file"),
    "an unknown tag": (lambda: _resealed(lambda c: c["plan"]["changes"][0].update(after={"$eval": "x"})),
                       "Invalid plan file"),
    "a missing field": (lambda: _resealed(lambda c: c["plan"].pop("changes")), "Invalid plan file"),
    "a bad prior state": (lambda: _resealed(lambda c: c["plan"].update(prior_state={"version": 1})),
                          "Invalid plan file"),
    "content not an object": (lambda: _resealed(lambda c: c.clear()), "Invalid plan file"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_anything_orch_did_not_write_is_one_clear_diagnostic(case):
    make, summary = CASES[case]
    with pytest.raises(DiagnosticsError) as e:
        loads_plan_file(make(), "p.orchplan")
    text = one_diag(e)
    assert summary in text and "p.orchplan" in text


def test_unreadable_paths_are_diagnostics(tmp_path):
    for path in (tmp_path / "nope.orchplan", tmp_path):
        with pytest.raises(DiagnosticsError) as e:
            read_plan_file(path)
        assert "Failed to read plan file" in one_diag(e)


def test_exact_addresses():
    for text in ["pod.web", "pod.web[0]", 'pod.web["a.b[c]"]', 'module.a[2].module.b["x"].pod.c[10]',
                 'pod.x["\\u00e9\\n"]', "node.n-1"]:
        assert str(planfile.parse_address_exact(text)) == text
    for bad in ["pod", "pod.", "pod.web[", "pod.web[01]", "pod.web[0]x", 'pod.web["a"', "module.a", ".x.y",
                "pod.web[true]", 'pod.web[""]]', "a.b.c"]:
        with pytest.raises(planfile.PlanFileError):
            planfile.parse_address_exact(bad)


# ---- through the CLI ------------------------------------------------------------------------------------------

CONFIG = """
node "n1" {
  address = "198.18.0.11"
  capacity {
    cpu    = 4
    memory = "4Gi"
  }
}

node "n2" {
  address = "198.18.0.12"
  capacity {
    cpu    = 4
    memory = "4Gi"
  }
}

variable "replicas" {
  type    = number
  default = 2
}

variable "greeting" {
  type      = string
  default   = "hello"
  sensitive = true
}

pod "db" {
  container "pg" {
    image = "orch/busybox:test"
    env   = { ROLE = "db" }
  }
}

pod "old" {
  container "c" {
    image = "orch/busybox:test"
  }
}

pod "cache" {
  lifecycle {
    create_before_destroy = true
  }
  container "c" {
    image = "orch/busybox:test"
    env   = { GREETING = var.greeting }
  }
}

pod "web" {
  replicas = var.replicas
  labels   = { app = "web" }
  container "httpd" {
    image = "orch/busybox:test"
    env   = { DB = pod.db.ip }
    resources {
      cpu    = 0.5
      memory = "64Mi"
    }
  }
}

output "web_ips" {
  value = pod.web[*].ip
}

output "greeting" {
  value     = var.greeting
  sensitive = true
}
"""


def orch(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def project(tmp_path, monkeypatch, capsys):
    """A project applied once, then edited so that the next plan creates, updates, replaces (create before
    destroy), deletes, repairs drift and places replicas. Paths are relative, so the directory can be copied."""
    root = tmp_path / "a"
    root.mkdir()
    (root / "main.orch").write_text(CONFIG)
    monkeypatch.chdir(root)
    monkeypatch.setenv("ORCH_PROVIDER_MODULES", "orchdsl.sdk.testing.memory:MemoryProvider")
    monkeypatch.setenv("ORCH_MEMORY_WORLD", "world")
    monkeypatch.delenv("ORCH_MEMORY_FAIL", raising=False)
    code, out, err = orch(capsys, "apply", "--auto-approve", "--parallelism", "1", ".")
    assert code == 0, err
    text = (root / "main.orch").read_text()
    text = text.replace('memory = "64Mi"', 'memory = "128Mi"').replace('"hello"', '"bonjour"')
    text = text.replace("default = 2", "default = 3")
    (root / "main.orch").write_text(text[:text.index('pod "old"')] + text[text.index('pod "cache"'):])
    edit_world(root / "world", "pod.web[1]", lambda a: a.update(labels={"app": "changed"}))
    return root


def _normalised(root: Path) -> tuple[dict, dict]:
    """The world and the state with the random object ids replaced by their order of appearance."""
    objects = world_objects(root / "world")
    state = json.loads((root / "orch.orchstate").read_text())
    ids: dict[str, str] = {}

    def norm(v):
        if isinstance(v, dict):
            return {k: (ids.setdefault(x, f"id{len(ids)}") if k == "id" and isinstance(x, str) else norm(x))
                    for k, x in sorted(v.items())}
        if isinstance(v, list):
            return [norm(x) for x in v]
        return v

    world = norm(dict(sorted(objects.items())))
    return world, norm({k: v for k, v in state.items() if k not in ("orch_version",)})


def test_applying_a_saved_plan_does_exactly_what_applying_it_in_memory_does(project, capsys, tmp_path,
                                                                         monkeypatch):
    from orchdsl.engine import workflow
    from orchdsl.engine.planner import PlanOptions

    twin = tmp_path / "b"
    shutil.copytree(project, twin)
    session = workflow.open_session(".")
    with session.backend.lock("plan"):
        state = session.backend.read()
        the_plan, diags = workflow.plan(session, state, PlanOptions())
    assert the_plan is not None and not [d for d in diags if d.is_error]
    actions = {c.action for c in the_plan.changes}
    assert {Action.CREATE, Action.UPDATE, Action.REPLACE, Action.DELETE} <= actions and the_plan.summaries
    assert the_plan.drift and the_plan.status and the_plan.dependencies and the_plan.prior_state is not None
    assert any(c.create_before_destroy for c in the_plan.changes) and any(c.location for c in the_plan.changes)
    write_plan_file(twin / "p.orchplan", SavedPlan(the_plan, ".", {}, []))

    # A: the plan as it is in memory
    lines_a: list[str] = []
    with session.backend.lock("apply"):
        outcome = workflow.apply(session, the_plan, session.backend.read(), lines_a.append, 1)
    assert outcome.ok
    # B: the same plan, saved and read back by another command
    monkeypatch.chdir(twin)
    code, out_b, err = orch(capsys, "apply", "--parallelism", "1", "p.orchplan")
    assert code == 0, err
    assert _normalised(project) == _normalised(twin)
    lines_b = [line for line in out_b.splitlines() if line.startswith(("pod.", "node."))]

    def progress(lines):
        return sorted(line.split(" after ")[0].split(" [id=")[0] for line in lines)

    assert progress(lines_a) == progress(lines_b)


def test_plan_out_show_and_apply_through_the_cli(project, capsys):
    code, out, err = orch(capsys, "plan", "--out", "p.orchplan", ".")
    assert code == 0, err
    assert stat.S_IMODE(Path("p.orchplan").stat().st_mode) == 0o600
    summary = next(line for line in out.splitlines() if line.startswith("Plan: "))
    code, shown, _ = orch(capsys, "show", "--no-color", "p.orchplan")
    assert code == 0 and summary in shown.splitlines()
    code, js, _ = orch(capsys, "show", "--json", "p.orchplan")
    assert code == 0 and json.loads(js)["resource_changes"]
    code, out, err = orch(capsys, "apply", "p.orchplan")
    assert code == 0 and "Apply complete!" in out, err


@pytest.mark.parametrize("target", ["missing/p.orchplan", "adir"])
def test_plan_out_to_a_bad_target_fails_before_planning_and_leaves_nothing(project, capsys, target):
    Path("adir").mkdir()
    before = sorted(str(p) for p in Path(".").rglob("*"))
    state_before = Path("orch.orchstate").read_bytes()
    code, out, err = orch(capsys, "plan", "--out", target, ".")
    assert code == 1 and "Cannot save the plan" in err and "Traceback" not in err
    assert "Plan:" not in out  # nothing was planned
    assert sorted(str(p) for p in Path(".").rglob("*")) == before
    assert Path("orch.orchstate").read_bytes() == state_before


@pytest.mark.parametrize("command", ["show", "apply"])
def test_a_crafted_plan_file_runs_nothing_through_the_cli(project, capsys, tmp_path, command):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.orchplan"
    evil.write_bytes(b"ORCHPLAN1\n" + pickle.dumps(_Payload(marker)))
    state_before = Path("orch.orchstate").read_bytes()
    code, out, err = orch(capsys, command, str(evil))
    assert code == 1 and "Unsupported plan file" in err and "Traceback" not in err
    assert not marker.exists() and Path("orch.orchstate").read_bytes() == state_before


def test_plan_json_of_fractional_numbers(project, capsys):
    """Numbers of the language are Decimals: `plan --json` and `show --json PLANFILE` write them as JSON numbers
    (a variable of 0.5 used to end `plan --json` in a TypeError traceback)."""
    text = Path("main.orch").read_text().replace('variable "replicas"', 'variable "ratio" {\n  default = 0.25\n}\n\n'
                                                   'variable "replicas"')
    Path("main.orch").write_text(text + '\noutput "ratio" {\n  value = var.ratio * 2\n}\n')
    code, out, err = orch(capsys, "plan", "--json", "--out", "p.orchplan", ".")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["variables"]["ratio"]["value"] == 0.25 and doc["variables"]["replicas"]["value"] == 3
    assert doc["planned_values"]["outputs"]["ratio"]["value"] == 0.5
    code, shown, _ = orch(capsys, "show", "--json", "p.orchplan")
    assert code == 0 and json.loads(shown)["variables"] == doc["variables"]
