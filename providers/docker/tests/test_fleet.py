"""A fleet on fake engines: each node read with one command at refresh and at plan time, the nodes at once but
never more than the provider's pool, and the pure parts (other namespaces' tables, clashes, hosts files)."""

from __future__ import annotations

import threading
import time

from orch_provider_docker import naming, network, podnet
from orch_provider_docker.provider import DockerProvider

from orchdsl.addrs import ResourceAddress
from orchdsl.sdk import StateObject

from docker_fakes import FakeCluster
from docker_helpers import Run, apply, state_of, write_config

A = ResourceAddress.parse

SERVICE = 'service "web" {\n  selector    = { app = "web" }\n  port        = 80\n  target_port = 8080\n}\n'


def _nodes(n: int) -> str:
    return "".join(f'node "n{i}" {{\n  address = "198.18.0.{10 + i}"\n}}\n' for i in range(1, n + 1))


def _fleet(tmp_path, n: int, replicas: int, extra: str = "") -> FakeCluster:
    cluster = FakeCluster(*[f"n{i}" for i in range(1, n + 1)])
    write_config(tmp_path, replicas=replicas, nodes=_nodes(n), extra=extra)
    return cluster


def _hosts(cluster: FakeCluster) -> dict:
    return {name: e.host() for name, e in cluster.engines.items()}


def _programs(tmp_path, cluster) -> list[StateObject]:
    """The node programs (node_services) a plan of the configuration with a service makes, as recorded objects."""
    p, _ = Run(tmp_path, cluster).plan()
    return [StateObject(c.address, dict(c.after or {}), {}) for c in p.changes
            if c.address.type == network.NODE_SERVICES]


def test_refresh_reads_each_node_with_one_command_and_three_engine_calls(tmp_path):
    """The pod network and the service program of a node come back from ONE command on it (a node's session and
    shell start-up cost more than the reading); the engine is asked for its facts, its containers and networks."""
    cluster = _fleet(tmp_path, 3, replicas=6)
    _, outcome, _ = apply(tmp_path, cluster)
    assert outcome.ok, outcome.diagnostics
    write_config(tmp_path, replicas=6, nodes=_nodes(3), extra=SERVICE)
    programs = _programs(tmp_path, cluster)
    assert sorted(str(o.address) for o in programs) == [f"node_services.n{i}" for i in (1, 2, 3)]
    st = state_of(tmp_path)
    prior = [StateObject(i.addr, dict(i.attributes), dict(i.private or {})) for i in st] + programs
    for e in cluster.engines.values():
        e.calls.clear()
        e.host().calls.clear()
    p = DockerProvider(connect=cluster.connect)
    p.configure({}, st.lineage)
    res = p.refresh(prior)
    assert not res.diagnostics
    for name, e in cluster.engines.items():
        assert [c[0] for c in e.calls] == ["info", "list", "networks"], name
        [argv] = e.host().argvs()
        assert argv[:3] == ("sh", "-c", network.REFRESH_SCRIPT), name
        # the table, the namespace, then the hosts file of each of its running pods there (from the one list)
        infra = [c for c in e.containers.values() if c["Config"]["Labels"].get(naming.ROLE) == naming.ROLE_INFRA]
        assert argv[3] == "sh" and argv[4] == f"orch-ns-{argv[5]}"
        assert sorted(argv[6:]) == sorted(f"/var/lib/docker/containers/{c['Id']}/hosts" for c in infra)
        assert len(infra) == 2
    for o in programs:
        status = res.current[o.address].status
        # this fake keeps no service table: the read-back says so, and the node's pod network is fine
        assert status is not None and status.state == "degraded" and "missing" in status.message
        node = res.current[A(f"node.{o.attributes['node']}")]
        assert node.status is None


def test_refresh_and_plan_checks_read_the_nodes_at_once_within_the_pool(tmp_path, monkeypatch):
    """20 nodes: read in parallel, but never more at once than the provider's pool (READ_WORKERS)."""
    monkeypatch.setattr(network, "READ_WORKERS", 5)
    cluster = _fleet(tmp_path, 20, replicas=20, extra=SERVICE)
    busy = {"now": 0, "max": 0}
    lock = threading.Lock()

    def slow(run):
        def wrapped(self, *args, **kwargs):
            with lock:
                busy["now"] += 1
                busy["max"] = max(busy["max"], busy["now"])
            time.sleep(0.02)
            try:
                return run(self, *args, **kwargs)
            finally:
                with lock:
                    busy["now"] -= 1
        return wrapped

    host_cls = type(next(iter(_hosts(cluster).values())))
    monkeypatch.setattr(host_cls, "run", slow(host_cls.run))
    p, diags = Run(tmp_path, cluster).plan()  # the plan's checks: each node's preconditions and service tables
    assert p is not None and not [d for d in diags if d.is_error], [d.render() for d in diags]
    assert busy["max"] == 5
    for name, h in _hosts(cluster).items():
        assert [a[2] for a in h.argvs()] == [network.PREFLIGHT_SCRIPT], name  # one command per node
    write_config(tmp_path, replicas=20, nodes=_nodes(20))  # (this fake plays no service program's apply)
    _, outcome, _ = apply(tmp_path, cluster)
    assert outcome.ok, outcome.diagnostics
    for h in _hosts(cluster).values():
        h.calls.clear()
    busy["max"] = 0
    p, _ = Run(tmp_path, cluster).plan()  # the refresh
    assert p is not None and not p.has_changes
    assert busy["max"] == 5
    for name, h in _hosts(cluster).items():
        assert [a[2] for a in h.argvs()] == [podnet.DRIFT_PROBE], name


def test_a_cluster_ip_or_node_port_another_namespace_uses_fails_the_plan(tmp_path):
    """Read with the node's preconditions, in the same command."""
    svc = SERVICE.replace("target_port = 8080", "target_port = 8080\n  node_port   = 30080")
    cluster = _fleet(tmp_path, 2, replicas=2, extra=svc)
    [ip] = {s["cluster_ip"] for o in _programs(tmp_path, cluster) for s in o.attributes["services"]}
    listing = {"nftables": [{"map": {"name": "services", "elem": [[{"concat": [ip, "tcp", 80]}, {"jump": "x"}]]}},
                            {"map": {"name": "nodeports", "elem": [[{"concat": ["tcp", 30080]}, {"jump": "y"}]]}}]}
    cluster["n2"].host().other_tables["orch-ns-other"] = listing
    for h in _hosts(cluster).values():
        h.calls.clear()
    _, diags = Run(tmp_path, cluster).plan()
    errors = sorted((d.summary, d.detail) for d in diags if d.is_error)
    assert errors == [("Cluster IP in use", f"service.web: {ip} is already a service address of namespace other on "
                                            "node n2."),
                      ("Node port in use", "service.web: node port 30080/tcp is already used by namespace other on "
                                           "node n2.")]
    for h in _hosts(cluster).values():
        assert len(h.argvs()) == 1


def test_parse_other_tables_and_clashes():
    text = ('@orch-ns-a {"nftables": [{"metainfo": {}}, {"map": {"name": "services", "elem": '
            '[[{"concat": ["198.18.128.5", "tcp", 80]}, {"jump": "s"}]]}}, {"map": {"name": "nodeports", "elem": '
            '[[{"concat": ["udp", 30053]}, {"jump": "n"}]]}}]}\n'
            '@orch-ns-b \n'  # a table that vanished between the listing and its read
            'noise\n')
    others = network.parse_other_tables(text)
    assert others == {"a": ({"198.18.128.5"}, {("udp", 30053)})}
    values = {"services": [
        {"address": "service.x", "cluster_ip": "198.18.128.5", "protocol": "tcp"},
        {"address": "service.y", "cluster_ip": "198.18.128.6", "protocol": "udp", "node_port": 30053},
        {"address": "service.z", "cluster_ip": "198.18.128.7", "protocol": "tcp", "node_port": 30053}]}
    assert [(d.summary, d.address) for d in network.clashes(values, "n1", others)] == [
        ("Cluster IP in use", "service.x"), ("Node port in use", "service.y")]


def test_hosts_files_are_those_of_the_running_pods_of_the_state():
    def c(cid, lineage, role, state="running"):
        return {"Id": cid, "State": state, "Labels": {naming.LINEAGE: lineage, naming.ROLE: role,
                                                       naming.ADDRESS: f"pod.web[{cid}]"}}

    listed = [c("1", "L", naming.ROLE_INFRA), c("2", "L", "app"), c("3", "L", naming.ROLE_INFRA, "exited"),
              c("4", "M", naming.ROLE_INFRA)]
    assert network.hosts_files("/d", listed, "L") == {"pod.web[1]": "/d/containers/1/hosts"}


def test_refresh_script_is_the_drift_probe_then_the_read_back():
    """Fixed text (no value of the configuration in it) whose sections podnet's parser reads."""
    assert network.REFRESH_SCRIPT.startswith(podnet.DRIFT_PROBE)
    assert network.PREFLIGHT_SCRIPT.startswith(podnet.PROBE)
    out = ("@@ routes\n[]\n@@ rc 0\n@@ services\n@nft {\"nftables\": []}\n=/f\n>x\n@@ rc 0\n")
    sections = podnet.parse_probe(out)
    assert sections["services"] == ('@nft {"nftables": []}\n=/f\n>x', 0) and sections["routes"] == ("[]", 0)
