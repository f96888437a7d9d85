"""Network policies on the lab, in the style of Kubernetes' network-policy e2e suite: four pods on three nodes
(two on one node), every ordered pair probed with real tcp connections (and udp datagrams) under each scenario;
the probed matrix equals the expected one and orch's own answer (`orch explain`) for every pair. Also: a pod
created under a deny-all policy refuses a connection as soon as its app starts; destroy leaves no policy rule."""

from __future__ import annotations

import secrets
import shutil
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

PODS = ("a", "b", "c", "d")
BASE = "".join(f"""
pod "{p}" {{
  labels = {{ app = "{p}" }}
  container "httpd" {{
    image   = "orch/busybox:test"
    pull    = "never"
    init    = true
    command = ["sh", "-c", "mkdir -p /tmp/w && echo pod-{p} > /tmp/w/index.html && exec httpd -f -p 8080 -h /tmp/w"]
    ports   = [8080]
  }}
}}
""" for p in PODS) + """
service "b" {
  selector    = { app = "b" }
  port        = 80
  target_port = 8080
  node_port   = %(node_port)d
}
"""


def _orch(*args: str) -> int:
    return main(list(args))


class Lab:
    def __init__(self, lab, d: Path):
        self.lab, self.dir = lab, d
        self.clients = [docker.DockerClient(base_url=f"unix://{n.socket_path}") for n in lab.nodes]

    def attrs(self, address: str) -> dict:
        inst = LocalBackend.for_config_dir(self.dir).read().get(ResourceAddress.parse(address))
        assert inst is not None, address
        return dict(inst.attributes)

    def container(self, pod: str):
        return app_container(self.lab.nodes, self.dir, f"pod.{pod}")

    def sh(self, pod: str, script: str) -> str:
        return self.container(pod).exec_run(["sh", "-c", script])[1].decode(errors="replace")

    def tcp(self, src: str, target: str, port: int = 8080) -> bool:
        """One connection from pod src: True when the page came back (busybox nc: no -z)."""
        out = self.sh(src, f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {target} {port}")
        return "pod-" in out

    def no_ports(self, pod: str) -> int:
        head, values = [line.split() for line in self.sh(pod, "grep Udp: /proc/net/snmp").splitlines()[:2]]
        return int(values[head.index("NoPorts")])

    def udp(self, src: str, dst: str) -> bool:
        """A DNS query (udp) from src to dst:53 (nothing listens: the kernel counts it in NoPorts when it arrives)."""
        before = self.no_ports(dst)
        self.sh(src, f"timeout 2 nslookup probe.example {self.attrs('pod.' + dst)['ip']} >/dev/null 2>&1")
        time.sleep(0.3)
        return self.no_ports(dst) > before

    def matrix(self) -> dict[tuple[str, str], bool]:
        ips = {p: self.attrs(f"pod.{p}")["ip"] for p in PODS}
        return {(s, d): self.tcp(s, ips[d]) for s in PODS for d in PODS if s != d}

    def explained(self, port: int = 8080, proto: str = "tcp") -> dict[tuple[str, str], bool]:
        out = {}
        for s in PODS:
            for d in PODS:
                if s != d:
                    out[(s, d)] = _orch("explain", str(self.dir), "--from", f"pod.{s}", "--to", f"pod.{d}",
                                        "--port", f"{port}/{proto}") == 0
        return out


def _expect(allowed: set[tuple[str, str]] | None = None, denied: set[tuple[str, str]] | None = None):
    """The full matrix: every pair allowed except ``denied``, or only ``allowed``."""
    pairs = [(s, d) for s in PODS for d in PODS if s != d]
    if allowed is not None:
        return {p: p in allowed for p in pairs}
    return {p: p not in (denied or set()) for p in pairs}


@pytest.fixture
def cluster(lab, tmp_path, monkeypatch):
    monkeypatch.delenv("ORCH_PROVIDER_MODULES", raising=False)
    d = tmp_path / f"pol-{secrets.token_hex(2)}"
    d.mkdir()
    shutil.copy(lab.nodes_file, d / "nodes.orch")
    yield Lab(lab, d)
    destroy_or_remove(lab, d)


def _apply(cl: Lab, policies: str, node_port: int = 30090) -> None:
    (cl.dir / "main.orch").write_text(BASE % {"node_port": node_port} + policies)
    assert _orch("apply", "--auto-approve", str(cl.dir)) == 0


def _node_port_open(lab, port: int) -> bool:
    try:
        with socket.create_connection((lab.nodes[0].address, port), timeout=2) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return b"pod-b" in s.makefile("rb").read()
    except OSError:
        return False


def test_policy_truth_tables(lab, cluster, capsys):
    cl = cluster
    _apply(cl, "")
    nodes = {p: cl.attrs(f"pod.{p}")["node"] for p in PODS}
    assert len({nodes["a"], nodes["b"], nodes["c"]}) == 3, nodes  # three pods on three nodes
    assert list(nodes.values()).count(nodes["d"]) == 2, nodes  # and a second pod on one of them
    ip = {p: cl.attrs(f"pod.{p}")["ip"] for p in PODS}
    vip = cl.attrs("service.b")["cluster_ip"]

    scenarios: list[tuple[str, str, dict]] = [
        ("no policy", "", _expect()),
        ("deny all ingress", 'network_policy "deny" {\n  pod_selector = {}\n}\n', _expect(allowed=set())),
        ("allow from a label", 'network_policy "b" {\n  pod_selector = { app = "b" }\n  ingress {\n'
                               '    from {\n      pod_selector = { app = "a" }\n    }\n  }\n}\n',
         _expect(denied={("c", "b"), ("d", "b")})),
        ("allow a port only", 'network_policy "c" {\n  pod_selector = { app = "c" }\n  ingress {\n'
                              '    ports = [9090]\n  }\n}\n',
         _expect(denied={("a", "c"), ("b", "c"), ("d", "c")})),
        # policy_types given: without it a policy isolates ingress too (Kubernetes' default)
        ("egress allow-list", 'network_policy "a" {\n  pod_selector = { app = "a" }\n'
                              '  policy_types = ["egress"]\n  egress {\n'
                              '    to {\n      pod_selector = { app = "b" }\n    }\n  }\n}\n',
         _expect(denied={("a", "c"), ("a", "d")})),
        ("egress deny-all", 'network_policy "d" {\n  pod_selector = { app = "d" }\n'
                            '  policy_types = ["egress"]\n}\n',
         _expect(denied={("d", "a"), ("d", "b"), ("d", "c")})),
        ("cidr with except", 'network_policy "b" {\n  pod_selector = { app = "b" }\n  ingress {\n'
                             f'    from {{\n      cidr = "198.19.128.0/17"\n      except = ["{ip["a"]}/32"]\n    }}\n'
                             '  }\n}\n',
         _expect(denied={("a", "b")})),
    ]
    for name, policies, expected in scenarios:
        _apply(cl, policies)
        probed = cl.matrix()
        assert probed == expected, (name, {k: v for k, v in probed.items() if v != expected[k]})
        assert cl.explained() == expected, name  # orch's own reachability agrees with the packets
        capsys.readouterr()

    # through a service VIP: the policy judges the real endpoint (b), whoever the client
    _apply(cl, 'network_policy "b" {\n  pod_selector = { app = "b" }\n  ingress {\n'
               '    from {\n      pod_selector = { app = "c" }\n    }\n  }\n}\n')
    via_vip = {s: cl.tcp(s, vip, 80) for s in ("a", "c", "d")}
    assert via_vip == {"a": False, "c": True, "d": False}, via_vip
    assert [_orch("explain", str(cl.dir), "--from", f"pod.{s}", "--to", "pod.b", "--port", "8080") == 0
            for s in ("a", "c", "d")] == [False, True, False]
    # through a node port: from the lab's host (198.18.0.1), masqueraded on the way to a remote endpoint
    assert not _node_port_open(lab, 30090)
    _apply(cl, 'network_policy "b" {\n  pod_selector = { app = "b" }\n  ingress {\n'
               '    from {\n      cidr = "198.18.0.0/24"\n    }\n  }\n}\n')
    assert _node_port_open(lab, 30090)
    assert not cl.tcp("a", ip["b"])  # pods (198.19.128.0/17) are not in 198.18.0.0/24
    # udp: a datagram to b arrives without a policy, not under an egress deny-all of its sender
    _apply(cl, 'network_policy "d" {\n  pod_selector = { app = "d" }\n  policy_types = ["egress"]\n}\n')
    assert not cl.udp("d", "b") and cl.udp("a", "b")
    # the policy removed again: everything open
    _apply(cl, "")
    assert cl.matrix() == _expect()
    assert cl.udp("d", "b")


def test_a_pod_created_under_deny_all_refuses_from_its_first_moment(lab, cluster, capsys):
    cl = cluster
    _apply(cl, 'network_policy "deny" {\n  pod_selector = { app = "e" }\n}\n')
    (cl.dir / "main.orch").write_text(BASE % {"node_port": 30091} +
                                      'network_policy "deny" {\n  pod_selector = { app = "e" }\n}\n' + """
pod "e" {
  labels = { app = "e" }
  container "httpd" {
    image   = "orch/busybox:test"
    pull    = "never"
    init    = true
    command = ["sh", "-c", "mkdir -p /tmp/w && echo pod-e > /tmp/w/index.html && exec httpd -f -p 8080 -h /tmp/w"]
  }
}
""")
    # a prober in pod a hammers the pod subnets' port 8080 while e is created: no connection may succeed
    probe = ("end=$(( $(date +%s) + 25 )); while [ $(date +%s) -lt $end ]; do "
             "for ip in $(cat /tmp/targets 2>/dev/null); do "
             "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 1 $ip 8080 2>/dev/null | grep -q pod-e && echo HIT $ip; "
             "done; done")
    others = {cl.attrs(f"pod.{p}")["ip"] for p in PODS}
    # every address e could get: the /24s of the three nodes, minus the pods that exist
    subnets = {cl.attrs(f"node.{n.name}")["pod_cidr"] for n in lab.nodes}
    targets = [f"{net.rsplit('.', 2)[0]}.{net.split('.')[2]}.{i}" for net in subnets for i in range(2, 12)]
    cl.sh("a", f"echo '{' '.join(t for t in targets if t not in others)}' > /tmp/targets")
    sock = next(n.socket_path for n in lab.nodes if n.name == cl.attrs("pod.a")["node"])
    prober = subprocess.Popen(["docker", "-H", f"unix://{sock}", "exec",
                               cl.container("a").id, "sh", "-c", probe], stdout=subprocess.PIPE, text=True)
    try:
        assert _orch("apply", "--auto-approve", str(cl.dir)) == 0
    finally:
        out, _ = prober.communicate(timeout=60)
    assert "HIT" not in out, out
    assert not cl.tcp("a", cl.attrs("pod.e")["ip"])


def test_destroy_leaves_no_policy_rule(lab, cluster):
    cl = cluster
    _apply(cl, 'network_policy "deny" {\n  pod_selector = {}\n}\n', node_port=30092)
    ns = cl.dir.name
    for i in range(1, len(lab.nodes) + 1):
        out = subprocess.run(["ip", "netns", "exec", f"n{i}", "nft", "list", "table", "ip", f"orch-ns-{ns}"],
                             capture_output=True, text=True).stdout
        assert "hook forward" in out
    assert _orch("destroy", "--auto-approve", str(cl.dir)) == 0
    for i in range(1, len(lab.nodes) + 1):
        tables = subprocess.run(["ip", "netns", "exec", f"n{i}", "nft", "list", "tables"], capture_output=True,
                                text=True).stdout
        assert f"orch-ns-{ns}" not in tables, (i, tables)


def test_a_peer_in_another_namespace(lab, cluster, tmp_path):
    """shop's pod b accepts only blog's api pods: blog's api reaches it, blog's other pod and shop's own do not;
    a pod blog adds later is found by the next plan (drift) and let in by the apply."""
    cl = cluster
    blog_dir = tmp_path / f"blog-{secrets.token_hex(2)}"
    blog_dir.mkdir()
    shutil.copy(lab.nodes_file, blog_dir / "nodes.orch")
    blog_pods = "".join(f"""
pod "{name}" {{
  replicas = %(replicas)d
  labels   = {{ app = "{label}" }}
  container "sh" {{
    image   = "orch/busybox:test"
    pull    = "never"
    init    = true
    command = ["sleep", "1000000"]
  }}
}}
""" for name, label in (("api", "api"), ("other", "other")))
    (blog_dir / "main.orch").write_text(blog_pods % {"replicas": 1})
    blog = Lab(lab, blog_dir)
    try:
        assert _orch("apply", "--auto-approve", str(blog_dir)) == 0
        _apply(cl, 'network_policy "b" {\n  pod_selector = { app = "b" }\n  ingress {\n    from {\n'
                   f'      namespace    = "{blog_dir.name}"\n      pod_selector = {{ app = "api" }}\n    }}\n'
                   '  }\n}\n', node_port=30093)
        b_ip = cl.attrs("pod.b")["ip"]
        assert blog.tcp("api[0]", b_ip) and not blog.tcp("other[0]", b_ip) and not cl.tcp("a", b_ip)
        assert _orch("plan", "--detailed-exitcode", str(cl.dir)) == 0
        # blog scales its api pods: shop's next plan sees the new address missing from b's peers
        (blog_dir / "main.orch").write_text(blog_pods % {"replicas": 2})
        assert _orch("apply", "--auto-approve", str(blog_dir)) == 0
        assert not blog.tcp("api[1]", b_ip)
        assert _orch("plan", "--detailed-exitcode", str(cl.dir)) == 2
        assert _orch("apply", "--auto-approve", str(cl.dir)) == 0
        assert blog.tcp("api[1]", b_ip)
    finally:
        destroy_or_remove(lab, blog_dir)
