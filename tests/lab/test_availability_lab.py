"""Availability on the lab, end to end through `orch`: rolling updates of health-checked replicas behind a
service while a client pod sends requests through the service name without pause (0 failed requests), in
both wave shapes; a version that never becomes healthy rolled back with the old one serving throughout."""

from __future__ import annotations

import re
import secrets
import shutil
import time
from pathlib import Path

import pytest

from orchdsl.cli import main
from orchdsl.state import LocalBackend

from .conftest import app_container, destroy_or_remove
from .workloads import CLIENT_AND_SERVICE, request_loop

pytestmark = pytest.mark.lab

APP = """
variable "release" {
  default = "v1"
}

pod "web" {
  replicas = 4
  labels   = { app = "web" }
  container "httpd" {
    image   = "orch/busybox:test"
    pull    = "never"
    init    = true
    env     = { VERSION = var.release }
    command = ["sh", "-c", "mkdir -p /tmp/w && echo $VERSION > /tmp/w/index.html && exec httpd -f -p 8080 -h /tmp/w"]
    health {
      command  = ["sh", "-c", "%(check)s"]
      interval = "1s"
      timeout  = "1s"
      retries  = 2
    }
  }
  strategy {
    max_surge        = %(surge)d
    max_unavailable  = %(unavailable)d
    healthy_deadline = "%(deadline)s"
    drain_timeout    = "1s"
  }
}

"""

HEALTHY = "nc -w 1 127.0.0.1 8080 </dev/null"
LOOP = request_loop(3, log='case "$r" in v*) echo "$r" ;; *) echo "FAIL $r" ;; esac')


def config(surge: int = 1, unavailable: int = 0, deadline: str = "60s", healthy: bool = True) -> str:
    # a version that never becomes healthy: its check looks at a port nothing listens on
    return APP % {"surge": surge, "unavailable": unavailable, "deadline": deadline,
                  "check": HEALTHY if healthy else "nc -w 1 127.0.0.1 9999 </dev/null"} + CLIENT_AND_SERVICE


class App:
    def __init__(self, lab, directory: Path):
        self.lab, self.dir = lab, directory

    def write(self, text: str) -> None:
        (self.dir / "main.orch").write_text(text)

    def orch(self, *args: str) -> int:
        return main([*args, str(self.dir)])

    def client(self):
        return app_container(self.lab.nodes, self.dir, "pod.client")

    def start_traffic(self) -> None:
        self.client().exec_run(["sh", "-c", LOOP], detach=True)
        deadline = time.monotonic() + 10
        while not self.answers() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert self.answers(), "the client never got an answer"

    def answers(self) -> list[str]:
        out = self.client().exec_run(["sh", "-c", "cat /tmp/log 2>/dev/null"])[1].decode(errors="replace")
        return [line for line in out.splitlines() if line.strip()]

    def stop_traffic(self) -> list[str]:
        self.client().exec_run(["sh", "-c", "touch /tmp/stop; sleep 4"])
        return self.answers()

    def versions(self) -> set[str]:
        state = LocalBackend.for_config_dir(self.dir).read()
        return {c["env"]["VERSION"] for i in state if i.type == "pod" and i.addr.name == "web"
                for c in i.attributes["container"]}


@pytest.fixture
def app(lab, tmp_path, monkeypatch):
    monkeypatch.delenv("ORCH_PROVIDER_MODULES", raising=False)
    d = tmp_path / f"roll-{secrets.token_hex(2)}"
    d.mkdir()
    shutil.copy(lab.nodes_file, d / "nodes.orch")
    a = App(lab, d)
    yield a
    destroy_or_remove(lab, d)


def _counts(lines: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in lines:
        key = "FAIL" if line.startswith("FAIL") else line.strip()
        out[key] = out.get(key, 0) + 1
    return out


@pytest.mark.parametrize("surge,unavailable", [(1, 0), (0, 1)])
def test_rolling_update_loses_no_request(app, capsys, surge, unavailable):
    app.write(config(surge=surge, unavailable=unavailable))
    assert app.orch("apply", "--auto-approve") == 0, capsys.readouterr()
    capsys.readouterr()
    app.start_traffic()
    started = time.monotonic()
    code = app.orch("apply", "--auto-approve", "-var", "release=v2")
    took = time.monotonic() - started
    out = capsys.readouterr().out
    assert code == 0, out
    assert "pod.web: wave 4/4" in out
    after = app.stop_traffic()
    counts = _counts(after)
    assert counts.get("FAIL", 0) == 0, (counts, [line for line in after if line.startswith("FAIL")][:5])
    assert counts.get("v1", 0) > 10 and counts.get("v2", 0) > 10, counts
    # all answers new afterwards
    tail = after[-20:]
    assert set(tail) == {"v2"}, tail
    assert app.versions() == {"v2"}
    print(f"rolling update surge={surge} unavailable={unavailable}: {took:.1f}s, {len(after)} requests, {counts}")
    assert app.orch("plan", "--detailed-exitcode", "-var", "release=v2") == 0


def test_a_version_never_healthy_rolls_back_and_the_old_one_keeps_serving(app, capsys):
    app.write(config())
    assert app.orch("apply", "--auto-approve") == 0, capsys.readouterr()
    capsys.readouterr()
    app.start_traffic()
    app.write(config(deadline="20s", healthy=False))
    started = time.monotonic()
    code = app.orch("apply", "--auto-approve", "-var", "release=v2")
    took = time.monotonic() - started
    out, err = capsys.readouterr()
    assert code == 1, out
    assert took < 20 + 15, took  # within the deadline (plus the rollback of the wave)
    assert re.search(r"pod\.web\[0\] did not become healthy within 20s: is unhealthy", err), err
    assert "last output" in err or "failing check" in err
    counts = _counts(app.stop_traffic())
    assert counts.get("FAIL", 0) == 0 and set(counts) == {"v1"}, counts
    assert app.versions() == {"v1"}
    # the state is exact and the change still pending
    assert app.orch("plan", "--detailed-exitcode", "-var", "release=v2") == 2
    capsys.readouterr()
    app.write(config())
    assert app.orch("plan", "--detailed-exitcode") == 0, capsys.readouterr().out
