"""The Docker provider on the local lab, driven through orch's own CLI; checked through each node's own
Docker socket (docker SDK), never through orch.

One configuration directory (its own state, so its own lineage) goes through the whole life cycle:
create, no-op plan, env edit (replacement of exactly those pods), memory edit (in place), scaling,
drift by hand and its repair, destroy. A second test shows an unknown host key refused.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from orchdsl.cli import main

import docker  # the provider's own dependency: lab tests never skip for its absence

pytestmark = pytest.mark.lab

POD = """
variable "replicas" {
  type    = number
  default = 3
}
variable "memory" {
  type    = string
  default = "32Mi"
}
variable "api_greeting" {
  type    = string
  default = "hello"
}

pod "web" {
  replicas = var.replicas
  labels   = { app = "web" }
  container "httpd" {
    image   = "orch/busybox:test"
    command = ["httpd", "-f", "-p", "8080", "-h", "/"]
    env     = { GREETING = "it's $(not) a `shell` \\"string\\"" }
    init    = true
    pull    = "never"
    resources {
      cpu    = 0.1
      memory = var.memory
    }
  }
}

pod "api" {
  labels = { app = "api" }
  container "httpd" {
    image   = "orch/busybox:test"
    command = ["httpd", "-f", "-p", "9090", "-h", "/"]
    env     = { GREETING = var.api_greeting }
    init    = true
    pull    = "never"
  }
}
"""


@pytest.fixture
def workdir(lab, tmp_path, monkeypatch):
    monkeypatch.delenv("ORCH_PROVIDER_MODULES", raising=False)
    d = tmp_path / tmp_path.name  # its own namespace (the directory name): lab tests never share one
    d.mkdir()
    shutil.copy(lab.nodes_file, d / "nodes.orch")
    (d / "main.orch").write_text(POD)
    yield d
    # whatever happened, leave no container of this state behind
    lineage = _lineage(d)
    if lineage:
        for c in _containers(lab, lineage):
            c.remove(force=True)


def _lineage(d: Path) -> str | None:
    """The state's lineage as every orch command sees it (a killed apply's journal folded in)."""
    from orchdsl.state import LocalBackend

    backend = LocalBackend.for_config_dir(d)
    return backend.read().lineage if backend.exists() else None


def _clients(lab) -> dict[str, docker.DockerClient]:
    return {n.name: docker.DockerClient(base_url=f"unix://{n.socket_path}") for n in lab.nodes}


def _containers(lab, lineage: str) -> list:
    out = []
    for c in _clients(lab).values():
        out.extend(c.containers.list(all=True, filters={"label": f"orch.lineage={lineage}"}))
    return out


def _by_address(lab, lineage: str) -> dict[str, dict[str, object]]:
    """address -> {role or container name -> container} for this state's containers, on any node."""
    out: dict[str, dict[str, object]] = {}
    for c in _containers(lab, lineage):
        lb = c.labels
        key = "infra" if lb["orch.role"] == "infra" else lb["orch.container"]
        out.setdefault(lb["orch.address"], {})[key] = c
    return out


def _orch(*args: str) -> int:
    return main(list(args))


def test_pod_life_cycle_on_the_lab(lab, workdir, capsys):
    d = str(workdir)
    t0 = time.monotonic()
    assert _orch("apply", "--auto-approve", d) == 0
    created = time.monotonic() - t0
    lineage = _lineage(workdir)
    pods = _by_address(lab, lineage)
    assert sorted(pods) == ["pod.api", "pod.web[0]", "pod.web[1]", "pod.web[2]"]
    # the scheduler spreads web's replicas over the three nodes
    nodes = {a: p["infra"].labels["orch.node"] for a, p in pods.items()}
    assert sorted(nodes[f"pod.web[{i}]"] for i in range(3)) == ["n1", "n2", "n3"]
    for addr, p in pods.items():
        infra, app = p["infra"], p["httpd"]
        assert infra.status == "running" and app.status == "running"
        assert app.attrs["HostConfig"]["NetworkMode"] == f"container:{infra.id}"
        assert infra.attrs["Config"]["Hostname"] == addr.replace("pod.", "").replace("[", "-").rstrip("]")
    web0 = pods["pod.web[0]"]["httpd"]
    assert web0.attrs["HostConfig"]["Memory"] == 32 << 20
    assert web0.attrs["HostConfig"]["Init"] is True
    assert "GREETING=it's $(not) a `shell` \"string\"" in web0.attrs["Config"]["Env"]
    # httpd listens in the pod's network namespace, held by the infra container (which runs orch's pause program
    # and holds nothing else: the request comes from the app container, joined to that namespace)
    assert pods["pod.web[0]"]["infra"].attrs["Config"]["Entrypoint"] == ["/pause"]
    _, out = pods["pod.web[0]"]["httpd"].exec_run(
        ["sh", "-c", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 127.0.0.1 8080"])
    assert b"HTTP/1." in out, out
    ids = {a: {k: c.id for k, c in p.items()} for a, p in pods.items()}

    # nothing to do
    capsys.readouterr()
    assert _orch("plan", "--detailed-exitcode", d) == 0
    assert "No changes." in capsys.readouterr().out

    # env of the api pod: exactly that pod is replaced
    assert _orch("plan", "--detailed-exitcode", "--var", "api_greeting=bye", d) == 2
    out = capsys.readouterr().out
    assert "# pod.api must be replaced" in out and "Plan: 1 to add, 0 to change, 1 to destroy." in out
    assert _orch("apply", "--auto-approve", "--var", "api_greeting=bye", d) == 0
    pods = _by_address(lab, lineage)
    assert pods["pod.api"]["infra"].id != ids["pod.api"]["infra"]
    assert "GREETING=bye" in pods["pod.api"]["httpd"].attrs["Config"]["Env"]
    for a in ("pod.web[0]", "pod.web[1]", "pod.web[2]"):
        assert {k: c.id for k, c in pods[a].items()} == ids[a]

    # memory: in place, same containers
    args = ["--var", "api_greeting=bye", "--var", "memory=48Mi"]
    capsys.readouterr()
    assert _orch("apply", "--auto-approve", *args, d) == 0
    assert "0 added, 3 changed, 0 destroyed" in capsys.readouterr().out
    pods = _by_address(lab, lineage)
    for a in ("pod.web[0]", "pod.web[1]", "pod.web[2]"):
        assert {k: c.id for k, c in pods[a].items()} == ids[a]
        assert pods[a]["httpd"].attrs["HostConfig"]["Memory"] == 48 << 20
    assert _orch("plan", "--detailed-exitcode", *args, d) == 0

    # scale 3 -> 5 -> 2
    assert _orch("apply", "--auto-approve", *args, "--var", "replicas=5", d) == 0
    webs = sorted(a for a in _by_address(lab, lineage) if a.startswith("pod.web"))
    assert webs == [f"pod.web[{i}]" for i in range(5)]
    assert _orch("apply", "--auto-approve", *args, "--var", "replicas=2", d) == 0
    pods = _by_address(lab, lineage)
    assert sorted(a for a in pods if a.startswith("pod.web")) == ["pod.web[0]", "pod.web[1]"]
    assert len(_containers(lab, lineage)) == 6
    args += ["--var", "replicas=2"]

    # drift by hand: remove one pod's app container, stop another's
    pods["pod.web[0]"]["httpd"].remove(force=True)
    pods["pod.web[1]"]["httpd"].stop(timeout=1)
    capsys.readouterr()
    assert _orch("plan", "--detailed-exitcode", *args, d) == 2
    out = capsys.readouterr().out
    assert "Objects have changed outside of orch" in out
    assert "# pod.web[0] has been deleted" in out  # drift: attributes
    assert "Object status:" in out and "pod.web[1] is degraded: container httpd exited (" in out  # status
    assert "# pod.web[0] will be created" in out and "# pod.web[1] will be updated in-place" in out
    assert "container httpd is exited" in out  # the update's reason: a repair
    assert _orch("apply", "--auto-approve", *args, d) == 0
    pods = _by_address(lab, lineage)
    assert all(c.status == "running" for p in pods.values() for c in p.values())
    assert len(_containers(lab, lineage)) == 6  # the broken pod's leftover infra container was removed
    assert _orch("plan", "--detailed-exitcode", *args, d) == 0

    # destroy leaves nothing of this state
    assert _orch("destroy", "--auto-approve", *args, d) == 0
    assert _containers(lab, lineage) == []
    print(f"apply of 4 pods (8 containers) on 3 nodes: {created:.2f}s")


def test_unknown_host_key_is_refused(lab, workdir, capsys):
    empty = workdir / "empty_known_hosts"
    empty.write_text("")
    nodes = (workdir / "nodes.orch").read_text().replace(lab.known_hosts, str(empty))
    assert str(empty) in nodes
    (workdir / "nodes.orch").write_text(nodes)
    capsys.readouterr()
    assert _orch("plan", str(workdir)) == 1
    err = capsys.readouterr().err
    assert "Unknown SSH host key" in err and "SHA256:" in err and "orch trust n" in err
    assert "node.n1" in err
    assert empty.read_text() == ""
    assert _lineage(workdir) is None or _containers(lab, _lineage(workdir)) == []


def test_killed_apply_is_adopted_without_duplicates_or_leaks(lab, workdir, capsys):
    """SIGKILL an apply mid-way: the next apply adopts what exists (no duplicate, no leaked container)."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k != "ORCH_PROVIDER_MODULES"}
    p = subprocess.Popen([sys.executable, "-m", "orchdsl.cli", "apply", "--auto-approve", "--parallelism", "2",
                          "--var", "replicas=8", str(workdir)], cwd=repo, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    done = 0
    seen = []
    for line in p.stdout:
        seen.append(line)
        if "pod.web" in line and "Creation complete" in line:
            done += 1
            if done == 2:
                p.kill()
                break
    p.communicate()
    assert done == 2, "the apply finished before it could be killed:\n" + "".join(seen[-30:])
    lineage = _lineage(workdir)
    lock = workdir / "orch.orchstate.lock"
    if lock.exists():
        lock.unlink()  # the killed process could not release it (orch force-unlock in real life)
    assert _orch("apply", "--auto-approve", "--var", "replicas=8", str(workdir)) == 0
    pods = _by_address(lab, lineage)
    assert sorted(pods) == sorted(["pod.api"] + [f"pod.web[{i}]" for i in range(8)])
    assert all(set(v) == {"infra", "httpd"} for v in pods.values())
    assert len(_containers(lab, lineage)) == 2 * 9  # nothing duplicated, nothing leaked
    capsys.readouterr()
    assert _orch("plan", "--detailed-exitcode", "--var", "replicas=8", str(workdir)) == 0



def test_without_docker_host_channels_run_the_docker_cli(lab, workdir, capsys):
    """The lab's nodes file names each node's socket (channels go straight to it); without docker_host the
    channels run `docker system dial-stdio` on the node, which finds the engine through DOCKER_HOST."""
    import re

    nodes = re.sub(r'\n\s*docker_host\s*=.*', "", (workdir / "nodes.orch").read_text())
    assert "docker_host" not in nodes.replace("# docker_host", "")
    (workdir / "nodes.orch").write_text(nodes)
    assert _orch("apply", "--auto-approve", "--var", "replicas=1", str(workdir)) == 0
    lineage = _lineage(workdir)
    assert sorted(_by_address(lab, lineage)) == ["pod.api", "pod.web[0]"]
    capsys.readouterr()
    assert _orch("plan", "--detailed-exitcode", "--var", "replicas=1", str(workdir)) == 0
    assert _orch("destroy", "--auto-approve", "--var", "replicas=1", str(workdir)) == 0
    assert _containers(lab, lineage) == []


def test_a_down_node_fails_only_its_own_changes(lab, workdir, capsys):
    """n3's SSH port is made unreachable (connection refused): the memory update of the pods on n1 and n2
    completes, the one on n3 fails naming the node, and the next apply with n3 back converges."""
    import re

    nodes = (workdir / "nodes.orch").read_text()
    nodes = re.sub(r'(node "n3" \{\n)', r'\1  port = var.n3_port\n', nodes)
    (workdir / "nodes.orch").write_text(nodes + '\nvariable "n3_port" {\n  type    = number\n  default = 22\n}\n')
    d = str(workdir)
    assert _orch("apply", "--auto-approve", d) == 0
    lineage = _lineage(workdir)
    on = {a: p["infra"].labels["orch.node"] for a, p in _by_address(lab, lineage).items()}
    web_on_n3 = [a for a, n in on.items() if n == "n3" and a.startswith("pod.web")]
    assert len(web_on_n3) == 1
    capsys.readouterr()
    assert _orch("apply", "--auto-approve", "--var", "n3_port=1", "--var", "memory=40Mi", d) == 1
    captured = capsys.readouterr()
    assert "Cannot reach node" in captured.err and "node.n3" in captured.err
    pods = _by_address(lab, lineage)
    for a, n in on.items():
        if a.startswith("pod.web"):
            want = 32 << 20 if n == "n3" else 40 << 20
            assert pods[a]["httpd"].attrs["HostConfig"]["Memory"] == want, (a, n)
    state = json.loads((workdir / "orch.orchstate").read_text())
    mem = {r["address"]: r["attributes"]["container"][0]["resources"]["memory"]
           for r in state["resources"] if r["address"].startswith("pod.web")}
    assert mem[web_on_n3[0]] == 32 << 20 and sorted(mem.values()).count(40 << 20) == 2
    # n3 back: the one remaining change completes
    assert _orch("apply", "--auto-approve", "--var", "memory=40Mi", d) == 0
    assert _by_address(lab, lineage)[web_on_n3[0]]["httpd"].attrs["HostConfig"]["Memory"] == 40 << 20
    assert _orch("plan", "--detailed-exitcode", "--var", "memory=40Mi", d) == 0
