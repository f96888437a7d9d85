"""Reliability on the lab, through orch's CLI (issue 10, acceptance 4):

* a pod whose image holds one static binary and nothing else runs (its infra container is orch's pause image);
* a first plan on fresh nodes rejects a pod that fits nowhere (the nodes' real capacity, read during plan);
* SIGTERM during an apply of 6 pods behaves as Ctrl+C: in-flight changes finish, the state is exact (every
  container on the hosts is in the state and vice versa), the lock is released, exit 1;
* a stalled Docker endpoint (a node whose socket, reached over SSH, accepts and never answers) and a silent
  SSH port each fail within the documented timeout (10 s), with the right diagnosis, once.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

from orchdsl.cli import main

from .test_docker_provider import _clients, _lineage

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
ONE_BINARY = "orch/one-binary:test"
CONNECT_TIMEOUT = 10  # documented: docs/docker-provider.md, docs/reliability.md


def _nodes_hcl(lab, capacity: str = "") -> str:
    return "".join(f'''
node "{n.name}" {{
  address       = "{n.address}"
  identity_file = "{lab.identity_file}"
  known_hosts   = "{lab.known_hosts}"
  docker_host   = "unix://{n.socket_path}"{capacity}
}}
''' for n in lab.nodes)


def _containers(lab, lineage: str) -> list:
    return [x for c in _clients(lab).values()
            for x in c.containers.list(all=True, filters={"label": f"orch.lineage={lineage}"})]


@pytest.fixture
def cfg(lab, tmp_path, monkeypatch):
    monkeypatch.delenv("ORCH_PROVIDER_MODULES", raising=False)
    d = tmp_path / tmp_path.name  # its own namespace (the directory name): lab tests never share one
    d.mkdir()
    (d / "nodes.orch").write_text(_nodes_hcl(lab))
    yield d
    lineage = _lineage(d)
    if lineage:
        for x in _containers(lab, lineage):
            x.remove(force=True)


def _busybox() -> bytes:
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.isfile(p):
            return Path(p).read_bytes()
    pytest.fail("busybox-static is not installed (the lab needs it)")


def test_a_pod_of_one_static_binary_runs(lab, cfg, capsys):
    """The image holds /busybox and nothing else: no sleep, no shell. The infra container needs nothing from it."""
    data = _busybox()
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as t:
        info = tarfile.TarInfo("busybox")
        info.size, info.mode = len(data), 0o755
        t.addfile(info, io.BytesIO(data))
    for c in _clients(lab).values():
        c.api.import_image_from_data(tar.getvalue(), repository=ONE_BINARY.split(":")[0], tag="test")
    (cfg / "main.orch").write_text(f'''
pod "one" {{
  replicas = 3
  container "httpd" {{
    image   = "{ONE_BINARY}"
    command = ["/busybox", "httpd", "-f", "-p", "8080", "-h", "/"]
    pull    = "never"
  }}
}}
''')
    try:
        assert main(["apply", "--auto-approve", str(cfg)]) == 0, capsys.readouterr()
        lineage = _lineage(cfg)
        found = {x.labels["orch.address"] + "/" + x.labels["orch.role"]: x for x in _containers(lab, lineage)}
        assert sorted(found) == sorted(f"pod.one[{i}]/{r}" for i in range(3) for r in ("app", "infra"))
        for i in range(3):
            infra, app = found[f"pod.one[{i}]/infra"], found[f"pod.one[{i}]/app"]
            assert infra.status == "running" and app.status == "running"
            assert infra.attrs["Config"]["Image"].startswith("orch/pause:")
            assert infra.attrs["Config"]["Entrypoint"] == ["/pause"]
        # httpd answers inside the pod (the app reaches it on the infra container's loopback)
        app = found["pod.one[0]/app"]
        code, out = app.exec_run(["/busybox", "sh", "-c",
                                  "printf 'GET /busybox HTTP/1.0\\r\\n\\r\\n' | /busybox nc 127.0.0.1 8080"])
        assert out.startswith(b"HTTP/1."), (code, out[:200])
        # the pause program stops at once on SIGTERM, as PID 1 (no init, no stop timeout to wait for)
        assert main(["plan", "--detailed-exitcode", str(cfg)]) == 0
        infra = found["pod.one[2]/infra"]
        started = time.monotonic()
        infra.stop(timeout=10)
        assert time.monotonic() - started < 3
        infra.reload()
        assert infra.attrs["State"]["ExitCode"] == 0
    finally:
        main(["destroy", "--auto-approve", str(cfg)])
        for c in _clients(lab).values():
            c.images.remove(ONE_BINARY, force=True)


def test_a_first_plan_on_fresh_nodes_rejects_a_pod_that_fits_nowhere(lab, cfg, capsys):
    (cfg / "main.orch").write_text('''
pod "huge" {
  container "worker" {
    image   = "orch/busybox:test"
    command = ["sleep", "3600"]
    pull    = "never"
    resources {
      cpu = 64
    }
  }
}
''')
    assert not (cfg / "orch.orchstate").exists()  # nodes orch has not recorded: capacity unset in the config
    cpus = _clients(lab)["n1"].info()["NCPU"]
    assert main(["plan", str(cfg)]) == 1
    out, err = capsys.readouterr()
    assert "No node can run pod.huge" in err
    for n in lab.nodes[:3]:
        assert f"cpu exhausted on node.{n.name} (0 of {cpus} cores allocated, 64 requested)" in err
    assert main(["apply", "--auto-approve", str(cfg)]) == 1
    assert not (cfg / "orch.orchstate").exists() or not _containers(lab, _lineage(cfg) or "none")


def test_sigterm_during_an_apply_of_6_pods_behaves_as_ctrl_c(lab, cfg):
    (cfg / "main.orch").write_text('''
pod "web" {
  replicas = 6
  container "worker" {
    image   = "orch/busybox:test"
    command = ["sleep", "3600"]
    init    = true
    pull    = "never"
  }
}
''')
    env = {k: v for k, v in os.environ.items() if k != "ORCH_PROVIDER_MODULES"}
    p = subprocess.Popen([sys.executable, "-m", "orchdsl.cli", "apply", "--auto-approve", "--parallelism", "2",
                          str(cfg)], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert p.stdout is not None
    lines = []
    for line in p.stdout:
        lines.append(line)
        if line.startswith("pod.web[") and "Creating..." in line:
            p.send_signal(signal.SIGTERM)
            break
    rest, _ = p.communicate(timeout=120)
    out = "".join(lines) + rest
    assert p.returncode == 1, out
    assert "Interrupt received (SIGTERM)" in out and "Apply interrupted" in out and "Traceback" not in out
    started = {ln.split(":")[0] for ln in out.splitlines() if ln.startswith("pod.") and ln.endswith("Creating...")}
    finished = {ln.split(":")[0] for ln in out.splitlines() if ln.startswith("pod.") and "Creation complete" in ln}
    assert started and started == finished, out  # what was in flight finished
    assert not (cfg / "orch.orchstate.lock").exists()
    # the state is exact: every container on the hosts is in the state, and every pod in the state on a host
    st = json.loads((cfg / "orch.orchstate").read_text())
    pods = {r["address"]: r for r in st["resources"] if r["type"] == "pod"}
    assert set(pods) == finished and 0 < len(pods) < 6
    assert all(r["status"] == "ready" for r in pods.values())
    lineage = st["lineage"]
    on_hosts = _containers(lab, lineage)
    assert {x.labels["orch.address"] for x in on_hosts} == set(pods)
    recorded_ids = {i for r in pods.values() for i in [r["private"]["infra"], *r["private"]["containers"].values()]}
    assert {x.id for x in on_hosts} == recorded_ids
    assert all(x.status == "running" for x in on_hosts)
    # the next apply creates the rest, and nothing twice
    assert main(["apply", "--auto-approve", str(cfg)]) == 0
    assert len(_containers(lab, lineage)) == 12
    assert main(["destroy", "--auto-approve", str(cfg)]) == 0


class _Accepting:
    """Accepts connections (TCP on 127.0.0.1, or a unix socket) and never answers."""

    def __init__(self, path: str | None = None):
        if path is None:
            self.sock = socket.socket()
            self.sock.bind(("127.0.0.1", 0))
            self.port = self.sock.getsockname()[1]
        else:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(path)
            os.chmod(path, 0o666)
        self.sock.listen(16)
        self.accepted = 0
        self.held: list[socket.socket] = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.held:
            c.close()


def test_a_stalled_docker_endpoint_and_a_silent_ssh_port_fail_in_time_once(lab, tmp_path):
    """node "stall": the lab's n1 over SSH, its docker_host a socket (reached through a direct-streamlocal
    channel) that accepts and never answers; node "silent": a TCP port that accepts and says nothing."""
    sock_path = str(tmp_path / "stalled-docker.sock")
    stalled, silent = _Accepting(sock_path), _Accepting()
    n1 = lab.nodes[0]
    d = tmp_path / "stalls"
    d.mkdir()
    (d / "main.orch").write_text(f'''
node "stall" {{
  address       = "{n1.address}"
  identity_file = "{lab.identity_file}"
  known_hosts   = "{lab.known_hosts}"
  docker_host   = "unix://{sock_path}"
}}
node "silent" {{
  address       = "127.0.0.1"
  port          = {silent.port}
  identity_file = "{lab.identity_file}"
  known_hosts   = "{lab.known_hosts}"
}}
pod "web" {{
  replicas = 4
  container "httpd" {{
    image = "orch/busybox:test"
    pull  = "never"
  }}
}}
''')
    env = {k: v for k, v in os.environ.items() if k != "ORCH_PROVIDER_MODULES"}
    try:
        for command in (["plan"], ["apply", "--auto-approve"]):
            started = time.monotonic()
            done = subprocess.run([sys.executable, "-m", "orchdsl.cli", *command, str(d)], cwd=REPO, env=env,
                                  capture_output=True, text=True, timeout=120)
            took = time.monotonic() - started
            assert done.returncode == 1, done.stdout + done.stderr
            err = done.stderr
            assert took < CONNECT_TIMEOUT + 5, (command, took)  # both nodes at once, one timeout each
            assert err.count(f"Docker on node.stall did not answer within {CONNECT_TIMEOUT} s") == 1, err
            assert err.count("Error: Not an SSH server") == 1, err
            assert err.count(f"sent no SSH banner within {CONNECT_TIMEOUT} s") == 1, err
            assert "authentication" not in err.lower() and "Traceback" not in err and "Exception" not in err, err
            assert err.count("Error:") == 2, err
            print(f"{command[0]}: {took:.1f} s")
        assert stalled.accepted == 2 and silent.accepted == 2  # one connection per node per command
    finally:
        stalled.close()
        silent.close()
