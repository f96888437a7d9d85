"""Signals during a command: SIGTERM and SIGHUP (CI cancellations, `timeout`, systemd, `docker stop`) behave
like the first Ctrl+C, and an interrupted apply always says so and exits 1 — also when every change was
already in flight when the interrupt came."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from orchdsl.engine import workflow
from orchdsl.engine.planner import PlanOptions
from orchdsl.sdk.protocol import ApplyRequest, ApplyResult
from orchdsl.sdk.testing.memory import MemoryProvider
from tests.support.memory_provider import world_objects

REPO = Path(__file__).resolve().parents[1]

PODS = """
variable "replicas" {
  type    = number
  default = 6
}
pod "web" {
  replicas = var.replicas
  container "httpd" {
    image = "orch/busybox:test"
  }
}
"""


def _env(world: Path, delay: str = "0.3") -> dict[str, str]:
    return {**os.environ, "ORCH_PROVIDER_MODULES": "tests.support.memory_provider:MemoryProvider",
            "ORCH_MEMORY_WORLD": str(world), "ORCH_MEMORY_DELAY": delay, "PYTHONPATH": str(REPO)}


def _cfg(tmp_path: Path) -> Path:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "main.orch").write_text(PODS)
    return cfg


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_during_apply_behave_like_ctrl_c(tmp_path, signum):
    cfg = _cfg(tmp_path)
    world = tmp_path / "world"
    p = subprocess.Popen([sys.executable, "-m", "orchdsl.cli", "apply", "--auto-approve", "--parallelism", "2",
                          str(cfg)], env=_env(world), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    assert p.stdout is not None
    lines = []
    for line in p.stdout:
        lines.append(line)
        if "Creating..." in line:
            p.send_signal(signum)
            break
    rest, _ = p.communicate(timeout=30)
    out = "".join(lines) + rest
    assert p.returncode == 1, out
    assert "Interrupt received" in out and "Apply interrupted" in out and "Traceback" not in out
    st = json.loads((cfg / "orch.orchstate").read_text())
    recorded = {r["address"] for r in st["resources"] if r["status"] == "ready"}
    assert set(world_objects(world)) == recorded  # the changes in flight finished and were recorded
    assert 1 <= len(recorded) < 6
    assert not (cfg / "orch.orchstate.lock").exists()


def test_sigterm_while_waiting_for_approval_releases_the_lock(tmp_path):
    cfg = _cfg(tmp_path)
    world = tmp_path / "world"
    p = subprocess.Popen([sys.executable, "-m", "orchdsl.cli", "apply", str(cfg)], env=_env(world, "0"), cwd=REPO,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert p.stdout is not None
    lines = []
    for line in p.stdout:
        lines.append(line)
        if "Only 'yes' will be accepted" in line:
            break
    assert (cfg / "orch.orchstate.lock").exists()  # held while the question waits
    p.send_signal(signal.SIGTERM)
    rest, _ = p.communicate(timeout=30)
    out = "".join(lines) + rest
    assert p.returncode != 0 and "Traceback" not in out, out
    assert not (cfg / "orch.orchstate.lock").exists()
    assert world_objects(world) == {}


class _InterruptOnCreate(MemoryProvider):
    """Ctrl+C arrives while every change of the plan is already in flight."""

    def __init__(self, world: Path, stop: threading.Event, changes: int):
        super().__init__(world)
        self.stop = stop
        self.barrier = threading.Barrier(changes, timeout=10)

    def create(self, request: ApplyRequest) -> ApplyResult:
        self.barrier.wait()  # all of them started
        self.stop.set()
        return super().create(request)


def test_an_interrupt_with_every_change_in_flight_is_still_an_interrupted_apply(tmp_path):
    cfg = _cfg(tmp_path)
    (cfg / "main.orch").write_text(PODS.replace("default = 6", "default = 3"))
    stop = threading.Event()
    provider = _InterruptOnCreate(tmp_path / "world", stop, 3)
    session = workflow.open_session(cfg, providers=[provider])
    state = session.backend.read()
    the_plan, diags = workflow.plan(session, state, PlanOptions())
    assert the_plan is not None and not [d for d in diags if d.is_error]
    outcome = workflow.apply(session, the_plan, state, lambda s: None, parallelism=10, stop=stop)
    assert outcome.added == 3  # nothing was left to cancel: every change finished
    assert outcome.interrupted and not outcome.ok
