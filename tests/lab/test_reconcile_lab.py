"""`orch reconcile --watch` on the lab, end to end: a replica made unhealthy leaves the endpoints and is
replaced by a healthy one; a node made unreachable (its link down: SSH and pod traffic dropped) has its
replica moved after --lost-after while the service keeps answering, and its stale containers are removed
when it comes back; SIGTERM exits 0. Then the autoscaler: CPU burnt in an autoscaled pod scales it up to
max_replicas, idle after the window back to min_replicas, and the plan in between shows no changes."""

from __future__ import annotations

import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import docker
import pytest

from orchdsl.cli import main
from orchdsl.state import LocalBackend

from .conftest import app_container, destroy_or_remove
from .workloads import CLIENT_AND_SERVICE, request_loop

pytestmark = pytest.mark.lab

WEB = """
pod "web" {
  replicas = 3
  labels   = { app = "web" }
  container "httpd" {
    image   = "orch/busybox:test"
    pull    = "never"
    init    = true
    command = ["sh", "-c", join(" && ", ["mkdir -p /tmp/w", "cat /proc/sys/kernel/random/uuid > /tmp/w/index.html",
                                         "touch /tmp/ok", "exec httpd -f -p 8080 -h /tmp/w"])]
    health {
      command  = ["sh", "-c", "test -f /tmp/ok && nc -w 1 127.0.0.1 8080 </dev/null"]
      interval = "1s"
      timeout  = "1s"
      retries  = 2
    }
  }
}

""" + CLIENT_AND_SERVICE

BURN = """
pod "busy" {
  labels = { app = "busy" }
  container "cpu" {
    image   = "orch/busybox:test"
    pull    = "never"
    init    = true
    command = ["sh", "-c", "while true; do if [ -f /tmp/burn ]; then :; else sleep 0.2; fi; done"]
    resources {
      cpu = 0.1
      limits {
        cpu = 1
      }
    }
  }
  autoscale {
    min_replicas      = 1
    max_replicas      = 3
    target_cpu        = 50
    scale_down_window = "10s"
  }
}
"""

ANSWER = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
LOOP = request_loop(2)


class Watch:
    """`orch reconcile --watch` in a process of its own; its lines, with the time each arrived."""

    def __init__(self, directory: Path, *flags: str):
        orch = Path(sys.executable).with_name("orch")
        self.proc = subprocess.Popen([str(orch), "reconcile", "--watch", *flags, str(directory)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[tuple[float, str]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.rstrip()))

    def wait_for(self, pattern: str, timeout: float, since: float = 0.0) -> float:
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < deadline:
            for t, line in list(self.lines):
                if t >= since and rx.search(line):
                    return t
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"no line matching {pattern!r} in {timeout}s:\n" +
                             "\n".join(line for _, line in self.lines[-40:]))

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        finally:
            self.reader.join(5)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Cluster:
    def __init__(self, lab, directory: Path):
        self.lab, self.dir = lab, directory

    def state(self):
        return LocalBackend.for_config_dir(self.dir).read()

    def node_of(self, address: str) -> str:
        return next(i.attributes["node"] for i in self.state() if str(i.addr) == address)

    def app(self, address: str):
        return app_container(self.lab.nodes, self.dir, address)

    def containers_on(self, node: str, address: str) -> list:
        n = next(x for x in self.lab.nodes if x.name == node)
        cli = docker.DockerClient(base_url=f"unix://{n.socket_path}")
        # sparse: no inspect per container, which races with the reconciler removing them (404)
        return cli.containers.list(all=True, sparse=True, filters={"label": [f"orch.lineage={self.state().lineage}",
                                                                f"orch.address={address}"]})

    def log(self) -> list[str]:
        out = self.app("pod.client").exec_run(["sh", "-c", "cat /tmp/log 2>/dev/null"])[1].decode(errors="replace")
        return [line for line in out.splitlines() if line.strip()]

    def replicas(self, name: str) -> list[str]:
        return sorted(str(i.addr) for i in self.state() if i.type == "pod" and i.addr.name == name)


@pytest.fixture
def cluster(lab, tmp_path, monkeypatch):
    monkeypatch.delenv("ORCH_PROVIDER_MODULES", raising=False)
    made: list[Cluster] = []

    def make(name: str, text: str) -> Cluster:
        d = tmp_path / f"{name}-{secrets.token_hex(2)}"
        d.mkdir()
        shutil.copy(lab.nodes_file, d / "nodes.orch")
        (d / "main.orch").write_text(text)
        c = Cluster(lab, d)
        made.append(c)
        return c

    yield make
    for c in made:
        destroy_or_remove(lab, c.dir)


def _link(node: str, up: bool) -> None:
    subprocess.run(["ip", "link", "set", f"v{node}", "up" if up else "down"], check=True)


def test_reconcile_heals_moves_and_cleans_up(lab, cluster, capsys):
    cl = cluster("heal", WEB)
    assert main(["apply", "--auto-approve", str(cl.dir)]) == 0, capsys.readouterr()
    capsys.readouterr()
    client_node = cl.node_of("pod.client")
    cl.app("pod.client").exec_run(["sh", "-c", LOOP], detach=True)
    time.sleep(2)
    tokens = set(ANSWER.findall(" ".join(cl.log())))
    assert len(tokens) == 3, tokens
    watch = Watch(cl.dir, "--interval", "2s", "--lost-after", "15s")
    victim_node = None
    try:
        # 1. a replica made unhealthy: out of the endpoints within one cycle, replaced by a healthy one
        sick = "pod.web[0]"
        sick_token = cl.app(sick).exec_run(["cat", "/tmp/w/index.html"])[1].decode().strip()
        t0 = time.monotonic()
        cl.app(sick).exec_run(["rm", "/tmp/ok"])
        t_replace = watch.wait_for(r"replace pod\.web\[0\]: unhealthy", 30)
        t_new = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and t_new is None:
            fresh = set(ANSWER.findall(" ".join(cl.log()[-30:]))) - tokens
            if fresh:
                t_new = time.monotonic()
            time.sleep(0.2)
        assert t_new is not None, "the replacement never answered"
        print(f"unhealthy -> replaced and serving: {t_new - t0:.1f}s (replace decided after {t_replace - t0:.1f}s)")
        # the sick replica answers no more once it left the endpoints
        time.sleep(1)
        mark = len(cl.log())
        time.sleep(3)
        assert sick_token not in " ".join(cl.log()[mark:])
        tokens = set(ANSWER.findall(" ".join(cl.log()[-60:])))

        # 2. a node stops answering: its replica moves after --lost-after, the service keeps answering
        victim = next(a for a in cl.replicas("web") if cl.node_of(a) != client_node)
        victim_node = cl.node_of(victim)
        _link(victim_node, up=False)
        t_down = time.monotonic()
        watch.wait_for(rf"lost node\.{victim_node}", 60, since=t_down)
        watch.wait_for(rf"reschedule {re.escape(victim)}", 30, since=t_down)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and cl.node_of(victim) == victim_node:
            time.sleep(0.5)
        assert cl.node_of(victim) != victim_node, "\n".join(line for _, line in watch.lines[-30:])
        mark = len(cl.log())  # answers again (a request sent to the lost replica meanwhile timed out)...
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(ANSWER.fullmatch(x) for x in cl.log()[mark:]):
            time.sleep(0.5)
        time.sleep(3)  # ... and from healthy replicas only, the moved one included once it is ready
        mark = len(cl.log())
        time.sleep(6)
        after = cl.log()[mark:]
        assert after and all(ANSWER.fullmatch(line) for line in after), (
            after[:10], cl.app("pod.client").exec_run(["cat", "/etc/hosts"])[1].decode(errors="replace"),
            "\n".join(line for _, line in watch.lines[-12:]))
        assert next(i for i in cl.state() if str(i.addr) == victim).deposed  # its stale object stays recorded

        # 3. the node comes back: its stale containers go
        _link(victim_node, up=True)
        t_up = time.monotonic()
        watch.wait_for(rf"remove {re.escape(victim)}", 90, since=t_up)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and cl.containers_on(victim_node, victim):
            time.sleep(0.5)
        assert cl.containers_on(victim_node, victim) == []
        assert not next(i for i in cl.state() if str(i.addr) == victim).deposed
    finally:
        if victim_node is not None:
            _link(victim_node, up=True)
        code = watch.stop() if watch.proc.poll() is None else watch.proc.returncode
        watch.kill()
    assert code == 0, "\n".join(line for _, line in watch.lines[-20:])
    assert main(["plan", "--detailed-exitcode", str(cl.dir)]) == 0, capsys.readouterr().out


def test_autoscale_on_burnt_cpu_and_back(lab, cluster, capsys):
    cl = cluster("burn", BURN)
    assert main(["apply", "--auto-approve", str(cl.dir)]) == 0, capsys.readouterr()
    assert cl.replicas("busy") == ["pod.busy[0]"]
    watch = Watch(cl.dir, "--interval", "2s")
    try:
        cl.app("pod.busy[0]").exec_run(["touch", "/tmp/burn"])  # one core busy: 1000% of a 0.1 request
        t0 = time.monotonic()
        watch.wait_for(r"scale pod\.busy: 1 -> 3", 60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(cl.replicas("busy")) < 3:
            time.sleep(0.5)
        assert len(cl.replicas("busy")) == 3
        print(f"scaled up to max in {time.monotonic() - t0:.1f}s")
        # the autoscaler owns the count: the plan shows no change
        capsys.readouterr()
        assert main(["plan", "--detailed-exitcode", str(cl.dir)]) == 0, capsys.readouterr().out
        cl.app("pod.busy[0]").exec_run(["rm", "-f", "/tmp/burn"])
        t1 = time.monotonic()
        watch.wait_for(r"scale pod\.busy: 3 -> 1", 90, since=t1)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(cl.replicas("busy")) > 1:
            time.sleep(0.5)
        assert cl.replicas("busy") == ["pod.busy[0]"]
        # not before the window: 10 s after the last high recommendation, made up to a cycle before the burn stopped
        assert time.monotonic() - t1 >= 10 - 2 - 1
    finally:
        code = watch.stop() if watch.proc.poll() is None else watch.proc.returncode
        watch.kill()
    assert code == 0
