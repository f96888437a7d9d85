"""The engine workflow end to end through `orch`, on the in-process test provider.

validate, plan, apply, plan again (no changes), edits that update or replace exactly what they should,
scaling, drift, saved plans, failures, locks, destroy. The Docker provider repeats this on real hosts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from orchdsl.cli import main
from orchdsl.state import LocalBackend
from tests.support.memory_provider import edit_world, world_objects

REPO = Path(__file__).resolve().parents[1]

CONFIG = """
variable "replicas" {
  type    = number
  default = 2
}

pod "db" {
  container "pg" {
    image = "orch/busybox:test"
    env   = { ROLE = "db" }
  }
}

pod "web" {
  replicas = var.replicas
  labels   = { app = "web" }
  container "httpd" {
    image = "orch/busybox:test"
    env   = { DB = pod.db.ip }
    resources {
      memory = "64Mi"
    }
  }
}

output "web_ips" {
  value = pod.web[*].ip
}
"""


@pytest.fixture
def env(tmp_path, monkeypatch):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "main.orch").write_text(CONFIG)
    world = tmp_path / "world"
    monkeypatch.setenv("ORCH_PROVIDER_MODULES", "tests.support.memory_provider:MemoryProvider")
    monkeypatch.setenv("ORCH_MEMORY_WORLD", str(world))
    monkeypatch.delenv("ORCH_MEMORY_FAIL", raising=False)
    return cfg, world


def orch(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def state_of(cfg: Path) -> dict:
    return json.loads((cfg / "orch.orchstate").read_text())


def edit(cfg: Path, old: str, new: str) -> None:
    p = cfg / "main.orch"
    text = p.read_text()
    assert old in text
    p.write_text(text.replace(old, new))


def headers(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines() if line.startswith("  # ") and " will " in line
            or line.startswith("  # ") and " must be replaced" in line]


def test_full_workflow(env, capsys):
    cfg, world = env
    assert orch(capsys, "validate", str(cfg))[0] == 0
    code, out, _ = orch(capsys, "plan", "--detailed-exitcode", str(cfg))
    assert code == 2 and "Plan: 3 to add, 0 to change, 0 to destroy." in out
    code, out, err = orch(capsys, "apply", "--auto-approve", str(cfg))
    assert code == 0, err
    assert "pod.web[0]: Creation complete" in out and "Apply complete! Resources: 3 added" in out
    assert len(world_objects(world)) == 3
    db_ip = world_objects(world)["pod.db"]["ip"]
    assert world_objects(world)["pod.web[1]"]["container"][0]["env"] == {"DB": db_ip}  # known at apply
    st = state_of(cfg)
    assert {r["address"] for r in st["resources"]} == {"pod.db", "pod.web[0]", "pod.web[1]"}
    assert all(r["status"] == "ready" for r in st["resources"])
    assert len(st["outputs"]["web_ips"]["value"]) == 2

    code, out, _ = orch(capsys, "plan", "--detailed-exitcode", str(cfg))
    assert code == 0 and "No changes. Your infrastructure matches the configuration." in out

    # memory: in place; env of the db: replaces db and, through its new ip, the web pods
    edit(cfg, 'memory = "64Mi"', 'memory = "128Mi"')
    code, out, _ = orch(capsys, "plan", "--no-color", str(cfg))
    assert headers(out) == ["# pod.web[0] will be updated in-place", "# pod.web[1] will be updated in-place"]
    assert "Plan: 0 to add, 2 to change, 0 to destroy." in out
    assert orch(capsys, "apply", "--auto-approve", str(cfg))[0] == 0

    edit(cfg, 'ROLE = "db"', 'ROLE = "primary"')
    code, out, _ = orch(capsys, "plan", "--no-color", str(cfg))
    assert headers(out) == ["# pod.db must be replaced", "# pod.web[0] must be replaced",
                            "# pod.web[1] must be replaced"]
    assert "# forces replacement" in out
    assert orch(capsys, "apply", "--auto-approve", str(cfg))[0] == 0

    # scale 2 -> 5 -> 1
    code, out, _ = orch(capsys, "apply", "--auto-approve", "--var", "replicas=5", str(cfg))
    assert code == 0 and "Resources: 3 added, 0 changed, 0 destroyed." in out
    code, out, _ = orch(capsys, "plan", "--no-color", "--var", "replicas=1", str(cfg))
    assert headers(out) == ["# pod.web[4] will be destroyed", "# pod.web[3] will be destroyed",
                            "# pod.web[2] will be destroyed", "# pod.web[1] will be destroyed"]
    assert "(because index [4] is out of range" in out
    assert orch(capsys, "apply", "--auto-approve", "--var", "replicas=1", str(cfg))[0] == 0
    assert sorted(world_objects(world)) == ["pod.db", "pod.web[0]"]

    code, out, _ = orch(capsys, "destroy", "--auto-approve", str(cfg))
    assert code == 0 and "Destroy complete! Resources: 2 destroyed." in out
    assert world_objects(world) == {} and state_of(cfg)["resources"] == []


def test_drift_is_reported_and_repaired(env, capsys):
    cfg, world = env
    assert orch(capsys, "apply", "--auto-approve", str(cfg))[0] == 0
    edit_world(world, "pod.web[1]", None)  # removed by hand
    edit_world(world, "pod.web[0]", lambda a: a["labels"].update(app="hacked"))
    code, out, _ = orch(capsys, "plan", "--detailed-exitcode", "--no-color", str(cfg))
    assert code == 2
    assert "Objects have changed outside of orch" in out
    assert "# pod.web[1] has been deleted" in out and "# pod.web[0] has changed" in out
    assert "# pod.web[1] will be created" in out and "# pod.web[0] will be updated in-place" in out
    assert orch(capsys, "apply", "--auto-approve", str(cfg))[0] == 0
    assert world_objects(world)["pod.web[0]"]["labels"] == {"app": "web"}
    assert orch(capsys, "plan", "--detailed-exitcode", str(cfg))[0] == 0


def test_json_and_markdown_plans(env, capsys):
    cfg, _ = env
    code, out, _ = orch(capsys, "plan", "--json", str(cfg))
    doc = json.loads(out)
    assert doc["format_version"] and {c["address"] for c in doc["resource_changes"]} == \
        {"pod.db", "pod.web[0]", "pod.web[1]"}
    web0 = next(c for c in doc["resource_changes"] if c["address"] == "pod.web[0]")
    assert web0["change"]["actions"] == ["create"] and web0["change"]["after_unknown"]["ip"] is True
    code, out, _ = orch(capsys, "plan", "--format", "markdown", str(cfg))
    assert out.startswith("**Plan:** 3 to add") and "<details>" in out


def test_saved_plan_applies_exactly_and_stale_plans_are_refused(env, capsys, tmp_path):
    cfg, world = env
    planfile = tmp_path / "p.orchplan"
    assert orch(capsys, "plan", "--out", str(planfile), str(cfg))[0] == 0
    code, out, _ = orch(capsys, "show", str(planfile))
    assert "Plan: 3 to add" in out
    assert orch(capsys, "apply", str(planfile))[0] == 0
    assert len(world_objects(world)) == 3
    # a plan made, then the state moves on: the old plan is refused
    assert orch(capsys, "plan", "--out", str(planfile), "--var", "replicas=3", str(cfg))[0] == 0
    assert orch(capsys, "apply", "--auto-approve", "--var", "replicas=4", str(cfg))[0] == 0
    code, _, err = orch(capsys, "apply", str(planfile))
    assert code == 1 and "Saved plan is stale" in err
    assert len(world_objects(world)) == 5


def test_failure_names_the_resource_and_independent_work_completes(env, capsys, monkeypatch):
    cfg, world = env
    monkeypatch.setenv("ORCH_MEMORY_FAIL", "pod.web[1]")
    code, out, err = orch(capsys, "apply", "--auto-approve", str(cfg))
    assert code == 1
    assert "pod.web[1]" in err and "Simulated failure" in err
    assert set(world_objects(world)) == {"pod.db", "pod.web[0]"}
    st = state_of(cfg)
    assert {r["address"] for r in st["resources"]} == {"pod.db", "pod.web[0]"}
    monkeypatch.delenv("ORCH_MEMORY_FAIL")
    code, out, _ = orch(capsys, "apply", "--auto-approve", str(cfg))
    assert code == 0 and "1 added" in out


def test_targets_replace_refresh_flags(env, capsys):
    cfg, world = env
    code, out, _ = orch(capsys, "plan", "--no-color", "--target", "pod.db", str(cfg))
    assert headers(out) == ["# pod.db will be created"]
    assert orch(capsys, "apply", "--auto-approve", str(cfg))[0] == 0
    code, out, _ = orch(capsys, "plan", "--no-color", "--replace", "pod.web[0]", str(cfg))
    assert headers(out) == ["# pod.web[0] will be replaced, as requested"]
    edit_world(world, "pod.web[1]", None)
    code, out, _ = orch(capsys, "plan", "--detailed-exitcode", "--refresh=false", str(cfg))
    assert code == 0  # without refresh, the deletion is not seen
    code, out, _ = orch(capsys, "plan", "--refresh-only", "--no-color", str(cfg))
    assert "has been deleted" in out


def test_lifecycle_prevent_destroy_and_ignore_changes(env, capsys):
    cfg, world = env
    edit(cfg, 'pod "db" {', 'pod "db" {\n  lifecycle {\n    prevent_destroy = true\n  }')
    edit(cfg, '  labels   = { app = "web" }', '  labels   = { app = "web" }\n  lifecycle {\n'
                                               '    ignore_changes = [labels]\n  }')
    assert orch(capsys, "apply", "--auto-approve", str(cfg))[0] == 0
    edit(cfg, 'app = "web"', 'app = "other"')
    assert orch(capsys, "plan", "--detailed-exitcode", str(cfg))[0] == 0  # labels ignored
    code, _, err = orch(capsys, "destroy", "--auto-approve", str(cfg))
    assert code == 1 and "Instance cannot be destroyed" in err and "prevent_destroy" in err
    assert len(world_objects(world)) == 3


def test_graph_and_cycles(env, capsys, tmp_path):
    cfg, _ = env
    code, out, _ = orch(capsys, "graph", str(cfg))
    assert code == 0 and '"pod.web" -> "pod.db"' in out
    cyc = tmp_path / "cyc"
    cyc.mkdir()
    (cyc / "main.orch").write_text(textwrap.dedent("""
        pod "a" {
          container "c" {
            image = "x"
            env   = { B = pod.b.ip }
          }
        }
        pod "b" {
          container "c" {
            image = "x"
            env   = { A = pod.a.ip }
          }
        }
        """))
    code, _, err = orch(capsys, "plan", str(cyc))
    assert code == 1 and "Cycle" in err and "pod.a" in err and "main.orch" in err


def _holder(state: Path, seconds: float) -> subprocess.Popen:
    code = textwrap.dedent(f"""
        import sys, time
        from orchdsl.state import LocalBackend
        with LocalBackend({str(state)!r}).lock("apply", 0):
            print("locked", flush=True)
            time.sleep({seconds})
        """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert p.stdout.readline().strip() == "locked"
    return p


def test_concurrent_apply_waits_then_fails_naming_the_holder(env, capsys):
    cfg, _ = env
    holder = _holder(cfg / "orch.orchstate", 3)
    try:
        t = time.monotonic()
        code, _, err = orch(capsys, "apply", "--auto-approve", "--lock-timeout", "1s", str(cfg))
        waited = time.monotonic() - t
        assert code == 1 and "Error acquiring the state lock" in err
        assert "apply" in err and str(holder.pid) in err and "force-unlock" in err
        assert waited >= 1.0
    finally:
        holder.wait(timeout=10)
    assert orch(capsys, "apply", "--auto-approve", "--lock-timeout", "5s", str(cfg))[0] == 0


def test_killed_applies_leave_a_state_that_lists_every_object(tmp_path, monkeypatch):
    """SIGKILL apply at random points, many times: the state is always valid JSON and lists every object
    that exists; the next apply adopts or replaces them and converges without duplicates."""
    import random
    import signal

    from tests.support.forked import forked_orch

    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "main.orch").write_text(CONFIG.replace("default = 2", "default = 12"))
    world = tmp_path / "world"
    monkeypatch.setenv("ORCH_PROVIDER_MODULES", "tests.support.memory_provider:MemoryProvider")
    monkeypatch.setenv("ORCH_MEMORY_WORLD", str(world))
    monkeypatch.setenv("ORCH_MEMORY_DELAY", "0.01")
    rng = random.Random(7)
    kills = 0
    replicas = 0
    for round_ in range(12):
        replicas = rng.choice([r for r in (0, 4, 8, 12) if r != replicas])  # every round has work to do
        pid, out = forked_orch(["apply", "--auto-approve", "--parallelism", "4", "--var", f"replicas={replicas}",
                                str(cfg)])
        # Kill after a random number of progress lines (plus a random sliver of time): mid-apply for sure.
        wanted = rng.randint(1, 4)
        seen = 0
        for line in out:
            if ": Creat" in line or ": Destr" in line or ": Modif" in line or ": Replac" in line:
                seen += 1
                if seen >= wanted:
                    time.sleep(rng.uniform(0, 0.02))
                    os.kill(pid, signal.SIGKILL)
                    kills += 1
                    break
        out.close()
        os.waitpid(pid, 0)
        state_file = cfg / "orch.orchstate"
        if state_file.exists():
            json.loads(state_file.read_text())  # always valid JSON
        # what every orch command sees: the state file with the journal of the killed apply folded in
        recorded = {str(i.addr) for i in LocalBackend(state_file).read()}
        existing = set(world_objects(world))
        assert existing <= recorded, f"round {round_}: objects not in the state: {existing - recorded}"
        lock = cfg / "orch.orchstate.lock"
        if lock.exists():
            lock.unlink()  # the killed process cannot release it; force-unlock in real life
    assert kills >= 6
    monkeypatch.setenv("ORCH_MEMORY_DELAY", "0")
    pid, out = forked_orch(["apply", "--auto-approve", str(cfg)])
    text = out.read()
    assert os.waitpid(pid, 0)[1] == 0, text
    objs = world_objects(world)
    assert sorted(objs) == sorted(["pod.db"] + [f"pod.web[{i}]" for i in range(12)])
    pid, out = forked_orch(["plan", "--detailed-exitcode", str(cfg)])
    text = out.read()
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0, text


def test_import_adopts_an_existing_object(env, capsys, tmp_path):
    cfg, world = env
    assert orch(capsys, "apply", "--auto-approve", str(cfg))[0] == 0
    db_id = world_objects(world)["pod.db"]["id"]
    assert orch(capsys, "state", "rm", "--state", str(cfg / "orch.orchstate"), "pod.db")[0] == 0
    code, out, err = orch(capsys, "import", "--dir", str(cfg), "pod.db", db_id)
    assert code == 0, err
    assert "Import successful!" in out
    assert orch(capsys, "plan", "--detailed-exitcode", str(cfg))[0] == 0
    code, _, err = orch(capsys, "import", "--dir", str(cfg), "pod.db", db_id)
    assert code == 1 and "already in the state" in err


def test_ctrl_c_finishes_in_flight_work_and_saves_state(tmp_path):
    import signal

    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "main.orch").write_text(CONFIG.replace("default = 2", "default = 20"))
    world = tmp_path / "world"
    env = {**os.environ, "ORCH_PROVIDER_MODULES": "tests.support.memory_provider:MemoryProvider",
           "ORCH_MEMORY_WORLD": str(world), "ORCH_MEMORY_DELAY": "0.2", "PYTHONPATH": str(REPO)}
    p = subprocess.Popen([sys.executable, "-m", "orchdsl.cli", "apply", "--auto-approve", "--parallelism", "2",
                          str(cfg)], env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in p.stdout:
        lines.append(line)
        if "Creation complete" in line and "pod.web" in line:
            p.send_signal(signal.SIGINT)
            break
    rest, _ = p.communicate(timeout=30)
    out = "".join(lines) + rest
    assert p.returncode != 0
    assert "Interrupt received" in out and "Apply interrupted" in out
    st = json.loads((cfg / "orch.orchstate").read_text())
    recorded = {r["address"] for r in st["resources"] if r["status"] == "ready"}
    assert set(world_objects(world)) == recorded  # nothing in flight was lost
    assert 1 < len(recorded) < 21
    assert not (cfg / "orch.orchstate.lock").exists()


def test_validate_checks_the_resource_model(env, capsys):
    cfg, _ = env
    edit(cfg, 'image = "orch/busybox:test"\n    env   = { ROLE = "db" }', 'imag = "x"')
    code, _, err = orch(capsys, "validate", str(cfg))
    assert code == 1 and "main.orch" in err and "image" in err
