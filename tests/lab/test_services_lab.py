"""Services on the lab, end to end through `orch`, with real packets: the pod network orch makes (the lab
installs no route or rule), virtual IPs and names from pods on every node, hairpin, node ports from the root
namespace, scaling, a service added later, udp, drift (a flushed table, a dockerd restart) repaired, two
namespaces side by side, and a destroy that leaves nothing behind."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import docker
import pytest

from orchdsl.addrs import ResourceAddress
from orchdsl.cli import main
from orchdsl.state import LocalBackend

from .conftest import app_container, destroy_or_remove

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]

WEB = """
pod "web" {
  replicas = %(replicas)d
  labels   = { app = "web" }
  container "httpd" {
    image   = "orch/busybox:test"
    pull    = "never"
    init    = true
    command = ["sh", "-c", "mkdir -p /tmp/w && hostname > /tmp/w/index.html && exec httpd -f -p 8080 -h /tmp/w"]
  }
}

pod "client" {
  replicas = 3
  container "sh" {
    image   = "orch/busybox:test"
    pull    = "never"
    init    = true
    command = ["sleep", "1000000"]
  }
}

service "web" {
  selector    = { app = "web" }
  port        = 80
  target_port = 8080
  node_port   = %(node_port)d
}
"""

UDP = """
pod "sink" {
  labels = { app = "sink" }
  container "nc" {
    image   = "orch/busybox:test"
    pull    = "never"
    init    = true
    command = ["sleep", "1000000"]
  }
}

service "sink" {
  selector = { app = "sink" }
  port     = 53
  target_port = 9000
  protocol = "udp"
}
"""

API = """
service "api" {
  selector    = { app = "web" }
  port        = 81
  target_port = 8080
}
"""

HTTP = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 %s %d"


def _orch(*args: str) -> int:
    return main(list(args))


def _clients(lab) -> list[docker.DockerClient]:
    return [docker.DockerClient(base_url=f"unix://{n.socket_path}") for n in lab.nodes]


def _netns(i: int, *argv: str) -> str:
    return subprocess.run(["ip", "netns", "exec", f"n{i}", *argv], capture_output=True, text=True,
                          check=False).stdout


class Cluster:
    def __init__(self, lab, directory: Path):
        self.lab, self.dir = lab, directory
        self.ns = directory.name  # the namespace: the directory's name

    @property
    def lineage(self) -> str:
        return LocalBackend.for_config_dir(self.dir).read().lineage

    def attrs(self, address: str) -> dict:
        inst = LocalBackend.for_config_dir(self.dir).read().get(ResourceAddress.parse(address))
        if inst is None:
            raise KeyError(address)
        return dict(inst.attributes)

    def container(self, address: str):
        return app_container(self.lab.nodes, self.dir, address)

    def sh(self, address: str, script: str) -> str:
        code, out = self.container(address).exec_run(["sh", "-c", script])
        return out.decode(errors="replace")

    def answers(self, client: str, target: str, port: int = 80, tries: int = 36) -> set[str]:
        """Who answers HTTP on target:port from a pod, over several connections (the body is the hostname; the
        service picks at random: 36 tries miss one of 3 endpoints in ~10^-6 runs)."""
        script = "; ".join([HTTP % (target, port)] * tries)
        return set(re.findall(r"web-\d+", self.sh(client, script)))


@pytest.fixture
def cluster(lab, tmp_path, monkeypatch):
    monkeypatch.delenv("ORCH_PROVIDER_MODULES", raising=False)
    made: list[Cluster] = []

    def make(name: str, text: str) -> Cluster:
        d = tmp_path / f"{name}-{secrets.token_hex(2)}"  # a namespace of this run's own
        d.mkdir(exist_ok=True)
        shutil.copy(lab.nodes_file, d / "nodes.orch")
        (d / "main.orch").write_text(text)
        c = Cluster(lab, d)
        made.append(c)
        return c

    yield make
    for c in made:
        destroy_or_remove(lab, c.dir)


def _node_of(cl: Cluster, address: str) -> str:
    return cl.attrs(address)["node"]


def test_services_end_to_end(lab, cluster, capsys):
    cl = cluster("shop", WEB % {"replicas": 3, "node_port": 30080} + UDP)
    assert _orch("apply", "--auto-approve", str(cl.dir)) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "node_services.n1: Creating" in out or "node_services.n1" in out
    ip = cl.attrs("service.web")["cluster_ip"]
    webs = {f"web-{i}" for i in range(3)}
    # the pod network is orch's: pods are in the nodes' /24s of 198.19.128.0/17, routes are orch's (proto 211)
    for i in (1, 2, 3):
        routes = _netns(i, "ip", "route", "show", "proto", "211")
        assert routes.count("via 198.18.0.") == 2, routes
    # from a pod on each node: the name and the cluster IP reach every backend, same node and other nodes
    clients = {_node_of(cl, f"pod.client[{i}]"): f"pod.client[{i}]" for i in range(3)}
    assert sorted(clients) == ["n1", "n2", "n3"]
    for node, client in sorted(clients.items()):
        assert cl.answers(client, "web") == webs, (node, client)
        assert cl.answers(client, ip) == webs
        assert cl.answers(client, f"web.{cl.ns}.svc.orch", tries=6)  # the fully qualified name resolves
    # hairpin: a pod reaches itself through its own service
    assert "web-0" in cl.answers("pod.web[0]", "web", tries=30)
    # the node port, from the root namespace (the lab's host), on every node's address, reaches every backend
    for n in lab.nodes:
        seen = set()
        for _ in range(24):
            with socket.create_connection((n.address, 30080), timeout=3) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                seen.add(s.makefile("rb").read().decode().split("\r\n\r\n", 1)[-1].strip())
        assert seen == webs, (n.name, seen)
    # udp: datagrams from another node's pod to the service name reach the backend's port 9000 (busybox has
    # no udp server: nothing listens there, so the sink's kernel counts them as NoPorts)
    sink_node = _node_of(cl, "pod.sink")
    far = next(c for n, c in clients.items() if n != sink_node)

    def no_ports() -> int:
        head, values = [line.split() for line in cl.sh("pod.sink", "grep Udp: /proc/net/snmp").splitlines()[:2]]
        return int(values[head.index("NoPorts")])

    before = no_ports()
    cl.sh(far, "timeout 3 nslookup probe.example sink")
    assert no_ports() > before
    assert _orch("plan", "--detailed-exitcode", str(cl.dir)) == 0, capsys.readouterr().out

    # scaling the backends changes who answers
    (cl.dir / "main.orch").write_text(WEB % {"replicas": 1, "node_port": 30080} + UDP)
    capsys.readouterr()
    assert _orch("plan", "--detailed-exitcode", str(cl.dir)) == 2
    out = capsys.readouterr().out
    assert "service.web loses pod.web[1], pod.web[2]" in out
    assert _orch("apply", "--auto-approve", str(cl.dir)) == 0
    assert cl.answers(clients["n3"], "web") == {"web-0"}

    # a service added later resolves from a pod that existed before, without restarting it
    started = cl.container(clients["n2"]).attrs["State"]["StartedAt"]
    (cl.dir / "main.orch").write_text(WEB % {"replicas": 1, "node_port": 30080} + UDP + API)
    assert _orch("apply", "--auto-approve", str(cl.dir)) == 0
    assert cl.answers(clients["n2"], "api", port=81) == {"web-0"}
    assert cl.container(clients["n2"]).attrs["State"]["StartedAt"] == started

    # drift: orch's table flushed on a node -> the plan names the node's rules, apply repairs
    table = f"orch-ns-{cl.ns}"
    subprocess.run(["ip", "netns", "exec", "n2", "nft", "flush", "table", "ip", table], check=True)
    assert cl.answers(clients["n2"], "web", tries=2) == set()
    capsys.readouterr()
    assert _orch("plan", "--detailed-exitcode", str(cl.dir)) == 2
    out = capsys.readouterr().out
    assert "node_services.n2 will be updated in-place" in out and "service rules drifted" in out
    assert _orch("apply", "--auto-approve", str(cl.dir)) == 0
    assert cl.answers(clients["n2"], "web") == {"web-0"}
    assert _orch("plan", "--detailed-exitcode", str(cl.dir)) == 0
    # drift: a rule put ahead of orch's forward filter (what another tool or an old Docker does) -> repaired
    subprocess.run(["ip", "netns", "exec", "n2", "iptables", "-I", "DOCKER-USER", "1", "-j", "RETURN"], check=True)
    capsys.readouterr()
    assert _orch("plan", "--detailed-exitcode", str(cl.dir)) == 2
    out = capsys.readouterr().out
    assert "node.n2 will be updated in-place" in out and "ORCH-FORWARD" in out, out
    assert _orch("apply", "--auto-approve", str(cl.dir)) == 0
    assert _netns(2, "iptables", "-S", "DOCKER-USER").splitlines()[1] == "-A DOCKER-USER -j ORCH-FORWARD"
    subprocess.run(["ip", "netns", "exec", "n2", "iptables", "-D", "DOCKER-USER", "-j", "RETURN"], check=False)


def test_a_dockerd_restart_is_drift_that_apply_repairs(lab, cluster, capsys):
    from orch_provider_docker.lab import lab as labmod

    cl = cluster("restart", WEB % {"replicas": 3, "node_port": 30081})
    assert _orch("apply", "--auto-approve", str(cl.dir)) == 0
    clients = {_node_of(cl, f"pod.client[{i}]"): f"pod.client[{i}]" for i in range(3)}
    pid = int((Path(lab.dir) / "n3" / "docker.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.2)
    labmod.up(len(lab.nodes), Path(lab.dir))  # the lab brings its dockerd back (containers restart)
    capsys.readouterr()
    assert _orch("plan", "--detailed-exitcode", str(cl.dir)) == 2
    out = capsys.readouterr().out
    # the restarted containers have hosts files Docker wrote anew (and new bridge ports without hairpin, set
    # again by the repair), maybe new addresses (then the endpoints change too)
    assert "# node_services.n3 is degraded: service names missing or stale in the hosts file" in out, out
    assert "node_services.n3 will be updated in-place" in out
    assert _orch("apply", "--auto-approve", str(cl.dir)) == 0
    for _ in range(5):  # Docker's restart policy may still be bringing an app container back
        capsys.readouterr()
        if _orch("plan", "--detailed-exitcode", str(cl.dir)) == 0:
            break
        assert _orch("apply", "--auto-approve", str(cl.dir)) == 0
        time.sleep(1)
    else:
        pytest.fail(capsys.readouterr().out)
    assert cl.answers(clients["n3"], "web") == {f"web-{i}" for i in range(3)}
    assert "web-" in " ".join(cl.answers(clients["n1"], "web"))


def _node_port_answers(lab, port: int, tries: int = 48) -> set[str]:
    """Who answers on a node port, over ``tries`` connections spread over the nodes. The service picks an endpoint
    at random: with 3 endpoints, 12 tries missed one in ~2% of runs (3 x (2/3)^12); 48 miss one in ~10^8."""
    seen = set()
    for n in lab.nodes:
        for _ in range(tries // len(lab.nodes)):
            with socket.create_connection((n.address, port), timeout=3) as conn:
                conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
                seen.update(re.findall(r"web-\d+", conn.makefile("rb").read().decode()))
    return seen


def test_two_namespaces_side_by_side_and_destroy_leaves_nothing(lab, cluster, capsys):
    """The quick start's configuration (examples/web, its node port moved: the quick start may be running on
    the lab) and a second configuration with the same pod and service names, in two directories."""
    quickstart = (REPO / "examples" / "web" / "main.orch").read_text().replace("30080", "30082")
    one = cluster("one", quickstart)
    two = cluster("two", WEB % {"replicas": 2, "node_port": 30083})
    assert _orch("apply", "--auto-approve", str(one.dir)) == 0
    assert _orch("apply", "--auto-approve", str(two.dir)) == 0, capsys.readouterr()
    assert one.attrs("service.web")["cluster_ip"] != two.attrs("service.web")["cluster_ip"]
    assert _node_port_answers(lab, 30082) == {"web-0", "web-1", "web-2"}
    assert two.answers("pod.client[0]", "web") == {"web-0", "web-1"}
    names = {c.name for cli in _clients(lab) for c in cli.containers.list()}
    assert {f"{one.ns}_web-0-httpd", f"{two.ns}_web-0-httpd"} <= names
    # a pod resolves its own namespace's service: "web" in two's pods is two's
    hosts = two.sh("pod.client[0]", "cat /etc/hosts")
    assert f'{two.attrs("service.web")["cluster_ip"]} web web.{two.ns} web.{two.ns}.svc.orch' in hosts, hosts
    assert one.attrs("service.web")["cluster_ip"] not in hosts
    assert _orch("destroy", "--auto-approve", str(one.dir)) == 0
    assert two.answers("pod.client[1]", "web") == {"web-0", "web-1"}
    assert _node_port_answers(lab, 30083) == {"web-0", "web-1"}
    for i in (1, 2, 3):
        tables = _netns(i, "nft", "list", "tables")
        assert f"orch-ns-{one.ns}" not in tables and f"orch-ns-{two.ns}" in tables
    assert _orch("destroy", "--auto-approve", str(two.dir)) == 0
    # nothing of orch's is left on any node: no table, chain, rule, route or bridge network -- unless another
    # configuration (the quick start's) still runs there, which keeps the shared pod network
    others = {c.labels.get("orch.namespace") for cli in _clients(lab) for c in cli.containers.list(all=True)
              if c.labels.get("orch.namespace")}
    for i, n in enumerate(lab.nodes, 1):
        tables = _netns(i, "nft", "list", "tables")
        assert f"orch-ns-{one.ns}" not in tables and f"orch-ns-{two.ns}" not in tables
        if others:
            continue
        assert "orch" not in tables, i
        assert "ORCH" not in _netns(i, "iptables", "-S"), i
        assert "ORCH" not in _netns(i, "iptables", "-t", "nat", "-S"), i
        assert _netns(i, "ip", "route", "show", "proto", "211").strip() == "", i
        assert "orch" not in [net.name for net in docker.DockerClient(
            base_url=f"unix://{n.socket_path}").networks.list()], i
