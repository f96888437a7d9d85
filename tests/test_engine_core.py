"""The control-plane core on the SDK's in-process provider: replacement sequenced by the core (delete then
create; create_before_destroy with a deposed object), observed status in the plan, derivations, gates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchdsl.cli import main
from orchdsl.state import LocalBackend
from tests.support.memory_provider import edit_world, world_objects

REPO = Path(__file__).resolve().parents[1]

CONFIG = """
pod "web" {
  replicas = 2
  %(lifecycle)s
  container "httpd" {
    image = "orch/busybox:test"
    env   = { GREETING = "%(greeting)s" }
  }
}
"""

CBD = "lifecycle {\n    create_before_destroy = true\n  }"


@pytest.fixture
def env(tmp_path, monkeypatch):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    world = tmp_path / "world"
    log = tmp_path / "calls.log"
    monkeypatch.setenv("ORCH_PROVIDER_MODULES", "orchdsl.sdk.testing.memory:MemoryProvider")
    monkeypatch.setenv("ORCH_MEMORY_WORLD", str(world))
    monkeypatch.setenv("ORCH_MEMORY_LOG", str(log))
    monkeypatch.delenv("ORCH_MEMORY_FAIL", raising=False)
    return cfg, world, log


def write(cfg: Path, greeting: str = "hello", lifecycle: str = "") -> None:
    (cfg / "main.orch").write_text(CONFIG % {"greeting": greeting, "lifecycle": lifecycle})


def orch(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def calls(log: Path, address: str) -> list[str]:
    return [line.split()[0] for line in log.read_text().splitlines() if line.split()[1] == address]


def test_replacement_is_delete_then_create_by_default(env, capsys):
    cfg, world, log = env
    write(cfg)
    assert orch(capsys, "apply", "--auto-approve", str(cfg))[0] == 0
    before = world_objects(world)["pod.web[0]"]["id"]
    log.write_text("")
    write(cfg, greeting="bye")
    code, out, _ = orch(capsys, "apply", "--auto-approve", str(cfg))
    assert code == 0, out
    assert "-/+ destroy and then create replacement" in out
    assert calls(log, "pod.web[0]") == ["delete", "create"]  # the provider never sees a "replace"
    now = world_objects(world)["pod.web[0]"]
    assert now["id"] != before and now["container"][0]["env"] == {"GREETING": "bye"}
    assert len(list(world.glob("*.json"))) == 2


def test_create_before_destroy_deposes_the_old_object_then_deletes_it(env, capsys):
    cfg, world, log = env
    write(cfg, lifecycle=CBD)
    assert orch(capsys, "apply", "--auto-approve", str(cfg))[0] == 0
    old = world_objects(world)["pod.web[0]"]["id"]
    log.write_text("")
    write(cfg, greeting="bye", lifecycle=CBD)
    code, out, _ = orch(capsys, "apply", "--auto-approve", str(cfg))
    assert code == 0, out
    assert "+/- create replacement and then destroy" in out
    assert calls(log, "pod.web[0]") == ["create", "delete"]
    assert "pod.web[0] (deposed object" not in out or "Destruction complete" in out
    st = LocalBackend(cfg / "orch.orchstate").read()
    assert st.get("pod.web[0]").deposed == () and st.get("pod.web[0]").attributes["id"] != old
    assert len(list(world.glob("*.json"))) == 2


def test_a_deposed_object_left_behind_is_destroyed_by_the_next_plan(env, capsys, monkeypatch):
    cfg, world, log = env
    write(cfg, lifecycle=CBD)
    assert orch(capsys, "apply", "--auto-approve", str(cfg))[0] == 0
    old = world_objects(world)["pod.web[0]"]["id"]
    write(cfg, greeting="bye", lifecycle=CBD)
    monkeypatch.setenv("ORCH_MEMORY_FAIL", "delete:pod.web[0]")  # the old one cannot be deleted now
    code, out, err = orch(capsys, "apply", "--auto-approve", str(cfg))
    assert code == 1 and "pod.web[0]" in err
    st = LocalBackend(cfg / "orch.orchstate").read()
    inst = st.get("pod.web[0]")
    assert inst.status == "ready" and inst.attributes["container"][0]["env"] == {"GREETING": "bye"}
    assert [d["attributes"]["id"] for d in inst.deposed] == [old]  # the old object is recorded, deposed
    assert len(list(world.glob("*.json"))) == 3  # both generations of web[0] exist
    monkeypatch.delenv("ORCH_MEMORY_FAIL")
    code, out, _ = orch(capsys, "plan", "--detailed-exitcode", str(cfg))
    key = inst.deposed[0]["key"]
    assert code == 2 and f"# pod.web[0] (deposed object {key}) will be destroyed" in out
    assert "Plan: 0 to add, 0 to change, 1 to destroy." in out
    assert orch(capsys, "apply", "--auto-approve", str(cfg))[0] == 0
    assert len(list(world.glob("*.json"))) == 2 and old not in {o["id"] for o in world_objects(world).values()}
    assert LocalBackend(cfg / "orch.orchstate").read().get("pod.web[0]").deposed == ()
    assert orch(capsys, "plan", "--detailed-exitcode", str(cfg))[0] == 0


@pytest.mark.parametrize("lifecycle", ["", CBD], ids=["delete-then-create", "create-before-destroy"])
def test_killed_replacements_lose_no_object(tmp_path, lifecycle):
    """SIGKILL replacements at random points: every object that exists is in the state (current or deposed),
    and the next apply converges to exactly one object per address."""
    import random

    cfg = tmp_path / "cfg"
    cfg.mkdir()
    world = tmp_path / "world"
    env = {**os.environ, "ORCH_PROVIDER_MODULES": "orchdsl.sdk.testing.memory:MemoryProvider",
           "ORCH_MEMORY_WORLD": str(world), "ORCH_MEMORY_DELAY": "0.02", "PYTHONPATH": str(REPO)}
    env.pop("ORCH_MEMORY_FAIL", None)
    orch_cmd = [sys.executable, "-m", "orchdsl.cli"]
    write(cfg, "v0", lifecycle.replace("%", "%%"))
    subprocess.run(orch_cmd + ["apply", "--auto-approve", str(cfg)], env=env, cwd=REPO, check=True,
                   capture_output=True)
    rng = random.Random(11)
    kills = 0
    for round_ in range(1, 5):
        write(cfg, f"v{round_}", lifecycle)
        p = subprocess.Popen(orch_cmd + ["apply", "--auto-approve", "--parallelism", "1", str(cfg)], env=env,
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(rng.uniform(0.35, 0.6))
        if p.poll() is None:
            p.kill()
            kills += 1
        p.communicate()
        st = LocalBackend(cfg / "orch.orchstate").read()
        recorded_ids = {i.attributes.get("id") for i in st} | {d["attributes"].get("id") for i in st
                                                              for d in i.deposed}
        recorded_addrs = {str(i.addr) for i in st}
        for f in world.glob("*.json"):
            o = json.loads(f.read_text())
            assert o["attributes"]["id"] in recorded_ids or o["address"] in recorded_addrs, \
                f"round {round_}: {o['address']} {o['attributes']['id']} exists but the state lost it"
        lock = cfg / "orch.orchstate.lock"
        if lock.exists():
            lock.unlink()
    assert kills >= 2
    done = subprocess.run(orch_cmd + ["apply", "--auto-approve", str(cfg)], env=env, cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    objs = [json.loads(f.read_text()) for f in world.glob("*.json")]
    assert sorted(o["address"] for o in objs) == ["pod.web[0]", "pod.web[1]"]  # no duplicate, no leak
    assert all(o["attributes"]["container"][0]["env"] == {"GREETING": "v4"} for o in objs)
    again = subprocess.run(orch_cmd + ["plan", "--detailed-exitcode", str(cfg)], env=env, cwd=REPO,
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stdout


def test_status_is_shown_apart_from_drift_and_carried_in_json(env, capsys):
    cfg, world, _ = env
    write(cfg)
    assert orch(capsys, "apply", "--auto-approve", str(cfg))[0] == 0
    edit_world(world, "pod.web[1]", None, status={"state": "degraded", "members": [
        {"name": "httpd", "state": "running", "health": "unhealthy", "failing_streak": 5,
         "last_output": "connection refused"}]})
    edit_world(world, "pod.web[0]", None, status={"state": "stopped", "members": [
        {"name": "httpd", "state": "exited", "exit_code": 137}]})
    code, out, _ = orch(capsys, "plan", "--detailed-exitcode", str(cfg))
    assert "Object status:" in out
    assert 'pod.web[1] is unhealthy: 5 failing checks (container httpd, last output: "connection refused")' in out
    assert "pod.web[0] is stopped: container httpd exited (137)" in out
    assert "changed outside of orch" not in out  # status is not drift
    # a stopped object is repaired in place (the in-process provider's rule), with the reason
    assert code == 2 and "# pod.web[0] will be updated in-place" in out and "because container httpd" in out
    code, out, _ = orch(capsys, "plan", "--format", "json", str(cfg))
    status = json.loads(out)["orch"]["status"]
    assert status["pod.web[1]"]["healthy"] is False and status["pod.web[1]"]["members"][0]["failing_streak"] == 5
    assert status["pod.web[0]"]["members"][0]["exit_code"] == 137


def test_a_gate_stops_what_depends_on_an_unready_object(env, capsys):
    from orchdsl.diagnostics import Diagnostic
    from orchdsl.engine import workflow
    from orchdsl.engine.apply import Executor
    from orchdsl.engine.planner import PlanOptions

    cfg, world, log = env
    (cfg / "main.orch").write_text(CONFIG % {"greeting": "x", "lifecycle": ""} + """
pod "api" {
  container "c" {
    image = "orch/busybox:test"
    env   = { WEB = pod.web[0].ip }
  }
}
""")
    session = workflow.open_session(cfg)
    state = session.backend.read()
    plan, diags = workflow.plan(session, state, PlanOptions())
    assert plan is not None and not [d for d in diags if d.is_error]
    seen = []

    def gate(change, obj):
        seen.append(str(change.address))
        if str(change.address) == "pod.web[0]":
            return [Diagnostic.error("Not ready", "pod.web[0] never became healthy", address="pod.web[0]")]
        return []

    work = plan.prior_state.copy()
    outcome = Executor(plan, session.config, work, session.backend, session.providers, lambda s: None,
                       gate=gate).run()
    assert not outcome.ok and [d.summary for d in outcome.diagnostics] == ["Not ready"]
    assert "pod.web[0]" in seen and "pod.api" not in seen
    assert "pod.api" not in world_objects(world)  # what depends on the unready object did not start


def test_the_engine_runs_any_derivation_without_knowing_the_types(env):
    """A derivation reads the planned values of some types and sets values of others; the planner orders the
    blocks, merges the derived values, adds the dependencies and shows the summary — knowing no type."""
    from orchdsl.cluster import Derived, DerivedInstance, Inputs, Summary
    from orchdsl.engine import workflow
    from orchdsl.engine.planner import PlanOptions, make_plan
    from orchdsl.engine.refresh import refresh
    from orchdsl.sdk import ResourceAddress

    class Tagger:
        name = "tagger"
        reads = frozenset({"node"})
        writes = frozenset({"pod"})
        produces: frozenset[str] = frozenset()

        def derive(self, inputs: Inputs) -> Derived:
            first = min(inputs.read)
            out = Derived(summary=Summary("tagger", "tagged", {"n": len(inputs.wanted)},
                                          frozenset(str(a) for a in inputs.wanted)))
            for addr in inputs.wanted:
                out.instances[addr] = DerivedInstance({"restart": "no"}, None, (first,), f"near {first}")
            return out

    cfg, _, _ = env
    # the pod block comes first in the file and refers to nothing: only the derivation orders it after nodes
    (cfg / "main.orch").write_text(CONFIG % {"greeting": "x", "lifecycle": ""} + """
node "a" {
  address = "198.18.0.11"
}
""")
    session = workflow.open_session(cfg)
    state = session.backend.read()
    plan, diags = make_plan(session.config, state, refresh(state, session.providers), session.providers,
                            PlanOptions(), derivations=(Tagger(),))
    assert not [d for d in diags if d.is_error]
    order = [str(c.address) for c in plan.changes]
    assert order.index("node.a") < order.index("pod.web[0]")
    web0 = next(c for c in plan.changes if str(c.address) == "pod.web[0]")
    assert web0.after["restart"] == "no" and web0.location == "near node.a" and web0.derived == {"restart": "no"}
    assert ResourceAddress("node", "a") in plan.dependencies[web0.address]
    assert plan.summary("tagger").data == {"n": 2}


def test_objects_the_cluster_layer_produces_are_planned_applied_after_their_inputs_and_removed(env):
    """A per-node object no block declares (a node's network program, later): derived from the placed pods,
    planned with a reason, applied after the pods it depends on with their real IPs, updated and removed as
    the pods change — all through the same engine, which knows none of these types."""
    from orchdsl.cluster import DERIVATIONS, Derived, DerivedObject, Inputs
    from orchdsl.engine import workflow
    from orchdsl.engine.apply import Executor
    from orchdsl.engine.planner import PlanOptions, make_plan
    from orchdsl.engine.refresh import refresh
    from orchdsl.plan.model import Action
    from orchdsl.sdk import ResourceAddress, ResourceTypeInfo
    from orchdsl.sdk.testing import MemoryProvider

    class Programs:
        name = "programs"
        reads = frozenset({"pod"})
        writes: frozenset[str] = frozenset()
        produces = frozenset({"program"})

        def derive(self, inputs: Inputs) -> Derived:
            by_node: dict[str, list[ResourceAddress]] = {}
            for addr, values in sorted(inputs.read.items()):
                by_node.setdefault(values["node"], []).append(addr)
            out = Derived()
            for node, pods in by_node.items():
                ips = [inputs.read[a].get("ip") for a in pods]
                out.objects[ResourceAddress("program", node)] = DerivedObject(
                    {"pods": [str(a) for a in pods], "ips": ips}, f"because node.{node} runs {len(pods)} pods",
                    tuple(pods), f"node.{node}")
            return out

    class WithPrograms(MemoryProvider):
        def resource_types(self):
            return {**super().resource_types(), "program": ResourceTypeInfo("program", computed=frozenset({"id"}))}

    cfg, world, _ = env
    derivations = (*DERIVATIONS, Programs())
    provider = WithPrograms(world)

    def plan_and_apply(text: str):
        (cfg / "main.orch").write_text(text)
        session = workflow.open_session(cfg, providers=[provider])
        with session.backend.lock("apply"):
            state = session.backend.read()
            for p in {id(p): p for p in session.providers.values()}.values():
                p.configure({}, state.lineage)
            refreshed = refresh(state, session.providers)
            plan, diags = make_plan(session.config, state, refreshed, session.providers, PlanOptions(),
                                    derivations=derivations)
            assert not [d for d in diags if d.is_error], diags
            outcome = Executor(plan, session.config, refreshed.state.copy(), session.backend, session.providers,
                               lambda s: None, derivations=derivations).run()
            assert outcome.ok, outcome.diagnostics
        return {str(c.address): c for c in plan.changes}

    changes = plan_and_apply(CONFIG % {"greeting": "x", "lifecycle": ""})
    prog = changes["program.local"]
    assert prog.action is Action.CREATE and prog.reason == "because node.local runs 2 pods"
    assert prog.derived_by == "programs" and prog.location == "node.local"
    objs = world_objects(world)
    assert objs["program.local"]["ips"] == [objs["pod.web[0]"]["ip"], objs["pod.web[1]"]["ip"]]  # known at apply
    changes = plan_and_apply(CONFIG % {"greeting": "x", "lifecycle": ""})
    assert changes["program.local"].action is Action.NOOP
    changes = plan_and_apply((CONFIG % {"greeting": "x", "lifecycle": ""}).replace("replicas = 2", "replicas = 1"))
    assert changes["program.local"].action is Action.UPDATE
    assert changes["program.local"].reason == "because node.local runs 1 pods"
    assert world_objects(world)["program.local"]["pods"] == ["pod.web[0]"]
    changes = plan_and_apply('node "n1" {\n  address = "198.18.0.11"\n}\n')
    assert changes["program.local"].action is Action.DELETE
    assert changes["program.local"].action_reason == "delete_because_not_derived"
    assert "program.local" not in world_objects(world)


def test_the_pr_comment_warns_about_object_status(env, capsys):
    cfg, world, _ = env
    write(cfg)
    assert orch(capsys, "apply", "--auto-approve", str(cfg))[0] == 0
    edit_world(world, "pod.web[1]", None, status={"state": "degraded", "members": [
        {"name": "httpd", "state": "running", "health": "unhealthy", "failing_streak": 2}]})
    code, out, _ = orch(capsys, "plan", "--format", "markdown", str(cfg))
    assert ":warning: **Object status:** `pod.web[1]` is unhealthy: 2 failing checks (container httpd)." in out


def test_an_intent_whose_object_was_never_made_is_not_drift(env, capsys):
    """Killed after recording the intent of a replacement's new object but before the provider made it: the next
    plan creates it, without claiming it was "deleted outside of orch" (it never existed)."""
    from orchdsl.state import ResourceInstance

    cfg, world, _ = env
    write(cfg)
    assert orch(capsys, "apply", "--auto-approve", str(cfg))[0] == 0
    backend = LocalBackend(cfg / "orch.orchstate")
    st = backend.read()
    gone = st.get("pod.web[1]")
    for f in world.glob("*.json"):
        if json.loads(f.read_text())["address"] == "pod.web[1]":
            f.unlink()  # the old object deleted by the replacement
    st.set(ResourceInstance.for_address(gone.addr, gone.provider, {"name": "web-1"}, status="tainted"))
    backend.write(st)
    code, out, _ = orch(capsys, "plan", "--detailed-exitcode", str(cfg))
    assert code == 2 and "# pod.web[1] will be created" in out
    assert "deleted outside of orch" not in out and "has been deleted" not in out
