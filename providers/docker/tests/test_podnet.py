"""The node's pod network (podnet) and host commands (hostexec), against FakeHost/FakeEngine and a loopback sshd."""

from __future__ import annotations

import pytest
from orch_provider_docker import netrules, podnet
from orch_provider_docker.hostexec import BECOME_HINT, CommandResult, HostCommandError, SSHHost, sudo_problem
from orch_provider_docker.podnet import PROBE_ARGV, PodNetwork, PodNetworkError
from orch_provider_docker.transport import Engine, NodeSettings, connect

from docker_fakes import FakeEngine, FakeHost
from docker_sshd import FakeDockerHost

CLUSTER = "198.19.128.0/17"


def _want(**kw) -> PodNetwork:
    args = dict(node="n3", pod_cidr="198.19.130.0/24", cluster_cidr=CLUSTER,
                routes=(("198.19.129.0/24", "198.18.0.12"), ("198.19.128.0/24", "198.18.0.11")))
    args.update(kw)
    return PodNetwork(**args)


@pytest.fixture
def node():
    host, engine = FakeHost("n3"), FakeEngine("n3", subnet=3)
    engine.fake_host = host
    return host, engine


def _ensure(host, engine, want=None):
    return podnet.ensure(host, engine, want or _want())


# ---- what is wanted ------------------------------------------------------------------------------------

def test_pod_network_is_validated_and_routes_sorted():
    w = _want()
    assert w.routes == (("198.19.128.0/24", "198.18.0.11"), ("198.19.129.0/24", "198.18.0.12"))
    assert w.gateway == "198.19.130.1"
    with pytest.raises(ValueError):
        _want(pod_cidr="198.19.1.0/24")  # outside the cluster's range
    with pytest.raises(ValueError):
        _want(pod_cidr="198.19.130.1/24")  # host bits
    with pytest.raises(ValueError):
        _want(routes=(("198.19.129.0/24", "node2.example"),))  # an address, not a name
    with pytest.raises(ValueError):
        _want(routes=(("198.19.130.0/24", "198.18.0.12"),))  # its own subnet
    subnets = {"n1": ("198.19.128.0/24", "198.18.0.11"), "n2": ("198.19.129.0/24", "198.18.0.12"),
               "n3": ("198.19.130.0/24", "198.18.0.13")}
    assert PodNetwork.for_node("n3", CLUSTER, subnets) == w


def test_network_body_turns_dockers_masquerade_off():
    body = _want().network_body()
    assert body["Options"] == {"com.docker.network.bridge.name": "orch0",
                               "com.docker.network.bridge.enable_ip_masquerade": "false"}
    assert body["IPAM"]["Config"] == [{"Subnet": "198.19.130.0/24", "Gateway": "198.19.130.1"}]
    assert body["Labels"] == {"orch.pod-network": CLUSTER} and body["CheckDuplicate"] is True


def test_nat_script_replaces_the_table_in_one_transaction():
    text = _want().nat_script()
    assert text.splitlines()[:3] == ["table ip orch", "delete table ip orch", "table ip orch {"]
    assert 'ip saddr 198.19.130.0/24 ip daddr != 198.19.128.0/17 oifname != "orch0" masquerade' in text


# ---- preconditions -----------------------------------------------------------------------------------------

def test_preconditions_met_in_one_exec(node):
    host, _ = node
    assert podnet.preconditions(host) == []
    assert host.argvs() == [PROBE_ARGV]
    assert "sh" == PROBE_ARGV[0] and "{" not in PROBE_ARGV[2].replace("${", "")  # fixed text, no formatting


@pytest.mark.parametrize("change, expect", [
    (lambda h: h.tools.discard("nft"), "nft is not installed (apt-get install nftables)"),
    (lambda h: h.tools.discard("iptables-restore"), "iptables-restore is not installed (apt-get install iptables)"),
    (lambda h: h.sysctl.update({"bridge-nf-call-iptables": "0"}),
     "modprobe br_netfilter; sysctl -w net.bridge.bridge-nf-call-iptables=1"),
    (lambda h: h.sysctl.update({"bridge-nf-call-iptables": ""}), "br_netfilter is not loaded"),
    (lambda h: h.sysctl.update({"ip_forward": "0"}), "sysctl -w net.ipv4.ip_forward=1"),
    (lambda h: h.chains.pop("DOCKER-USER"), "orch needs dockerd with iptables enabled"),
    (lambda h: setattr(h, "uid", 1000), "set become = true"),
])
def test_each_missing_precondition_is_named_with_its_fix(node, change, expect):
    host, engine = node
    change(host)
    problems = podnet.preconditions(host)
    assert len(problems) == 1 and expect in problems[0], problems
    with pytest.raises(PodNetworkError) as e:
        _ensure(host, engine)
    assert expect in e.value.detail
    assert host.changing_calls() == [] and engine.nets == {}


# ---- ensure, observe, drift -----------------------------------------------------------------------------

def test_ensure_makes_everything_then_nothing_drifts(node):
    host, engine = node
    changes = _ensure(host, engine)
    assert changes[0] == "created network orch (198.19.130.0/24, bridge orch0)"
    assert "route 198.19.128.0/24 via 198.18.0.11" in changes and "route 198.19.129.0/24 via 198.18.0.12" in changes
    assert any(c.startswith("table ip orch") for c in changes)
    assert any(c.startswith("iptables ORCH-FORWARD") for c in changes)
    # the node: one network, orch's routes, the nat table, ORCH-FORWARD first in DOCKER-USER
    (net,) = engine.nets.values()
    assert net["Name"] == "orch" and net["IPAM"]["Config"][0]["Subnet"] == "198.19.130.0/24"
    assert host.routes == {"198.19.128.0/24": "198.18.0.11", "198.19.129.0/24": "198.18.0.12"}
    assert host.chains["DOCKER-USER"][0] == "-A DOCKER-USER -j ORCH-FORWARD"
    assert "orch" in host.nft
    # commands: the probe, one `ip -batch -` for the routes, nft and iptables-restore fed on stdin
    assert host.changing_calls() == [("ip", "-batch", "-"), ("nft", "-f", "-"), podnet.RESTORE]
    batch = dict(host.calls)[("ip", "-batch", "-")].decode()
    assert batch == ("route replace 198.19.128.0/24 via 198.18.0.11 proto 211\n"
                     "route replace 198.19.129.0/24 via 198.18.0.12 proto 211\n")

    seen = podnet.observe(host, engine)
    assert podnet.drift(_want(), seen) == []
    assert seen.network is not None and seen.network.subnet == "198.19.130.0/24"
    host.calls.clear()
    assert podnet.ensure(host, engine, _want(), seen) == []
    assert host.calls == []  # given a fresh observation: nothing to run at all
    assert _ensure(host, engine) == [] and host.changing_calls() == []


def test_observe_is_one_exec_and_one_api_call(node):
    host, engine = node
    _ensure(host, engine)
    host.calls.clear()
    engine.calls.clear()
    podnet.observe(host, engine)
    assert host.argvs() == [PROBE_ARGV]
    assert engine.calls == [("networks", "orch.pod-network")]


def test_a_route_deleted_by_hand_is_drift_and_ensure_puts_it_back(node):
    host, engine = node
    _ensure(host, engine)
    del host.routes["198.19.129.0/24"]
    reasons = podnet.drift(_want(), podnet.observe(host, engine))
    assert reasons == ["route to 198.19.129.0/24 via 198.18.0.12 is missing"]
    assert _ensure(host, engine) == ["route 198.19.129.0/24 via 198.18.0.12"]
    assert podnet.drift(_want(), podnet.observe(host, engine)) == []


def test_stale_and_misdirected_routes(node):
    host, engine = node
    _ensure(host, engine)
    host.routes["198.19.140.0/24"] = "198.18.0.20"  # a node that left
    host.routes["198.19.128.0/24"] = "198.18.0.99"  # a node that moved
    reasons = podnet.drift(_want(), podnet.observe(host, engine))
    assert reasons == ["route to 198.19.128.0/24 goes via 198.18.0.99, not 198.18.0.11",
                       "stale route to 198.19.140.0/24 via 198.18.0.20"]
    assert _ensure(host, engine) == ["route 198.19.128.0/24 via 198.18.0.11",
                                     "removed stale route 198.19.140.0/24 via 198.18.0.20"]
    assert host.routes == {"198.19.128.0/24": "198.18.0.11", "198.19.129.0/24": "198.18.0.12"}


def test_a_new_node_adds_one_route(node):
    host, engine = node
    _ensure(host, engine)
    more = _want(routes=_want().routes + (("198.19.131.0/24", "198.18.0.14"),))
    assert podnet.drift(more, podnet.observe(host, engine)) == ["route to 198.19.131.0/24 via 198.18.0.14 is missing"]
    assert podnet.ensure(host, engine, more) == ["route 198.19.131.0/24 via 198.18.0.14"]


def test_nat_table_edited_or_deleted_is_drift(node):
    host, engine = node
    _ensure(host, engine)
    host.nft["orch"] = host.nft["orch"][:2] + host.nft["orch"][3:]  # the masquerade rule removed
    assert podnet.drift(_want(), podnet.observe(host, engine)) == ["table ip orch is missing or changed"]
    assert _ensure(host, engine) == ["table ip orch (masquerade 198.19.130.0/24 leaving 198.19.128.0/17)"]
    del host.nft["orch"]
    assert podnet.drift(_want(), podnet.observe(host, engine)) == ["table ip orch is missing or changed"]
    _ensure(host, engine)
    assert podnet.drift(_want(), podnet.observe(host, engine)) == []


def test_other_namespace_tables_do_not_disturb_the_shared_table(node):
    host, engine = node
    _ensure(host, engine)
    host.nft["orch-ns-shop"] = []
    seen = podnet.observe(host, engine)
    assert seen.ns_tables == ("shop",)
    assert podnet.drift(_want(), seen) == []


def test_hook_moved_down_by_a_dockerd_restart_is_drift_and_repaired(node):
    host, engine = node
    _ensure(host, engine)
    host.chains["DOCKER-USER"].insert(0, "-A DOCKER-USER -s 198.18.0.0/24 -j RETURN")
    reasons = podnet.drift(_want(), podnet.observe(host, engine))
    assert len(reasons) == 1 and "ORCH-FORWARD is not first in DOCKER-USER" in reasons[0]
    changes = _ensure(host, engine)
    assert len(changes) == 1 and changes[0].startswith("iptables ORCH-FORWARD")
    assert host.chains["DOCKER-USER"][0] == "-A DOCKER-USER -j ORCH-FORWARD"
    assert host.chains["DOCKER-USER"].count("-A DOCKER-USER -j ORCH-FORWARD") == 1
    assert podnet.drift(_want(), podnet.observe(host, engine)) == []


def test_flushed_forward_chain_is_drift(node):
    host, engine = node
    _ensure(host, engine)
    host.chains["ORCH-FORWARD"] = []
    assert podnet.drift(_want(), podnet.observe(host, engine)) == [
        "chain ORCH-FORWARD is missing or was flushed"]
    _ensure(host, engine)
    assert host.chains["ORCH-FORWARD"] == netrules._forward_rules(CLUSTER)


# ---- the Docker network ----------------------------------------------------------------------------------

def test_network_with_another_subnet_and_no_containers_is_recreated(node):
    host, engine = node
    _ensure(host, engine, _want(pod_cidr="198.19.131.0/24"))
    seen = podnet.observe(host, engine)
    assert podnet.drift(_want(), seen)[0] == \
        "the existing pod network has subnet 198.19.131.0/24, not 198.19.130.0/24"
    changes = _ensure(host, engine)
    assert changes[:2] == ["removed network orch (subnet 198.19.131.0/24, not 198.19.130.0/24)",
                           "created network orch (198.19.130.0/24, bridge orch0)"]
    (net,) = engine.nets.values()
    assert net["IPAM"]["Config"][0]["Subnet"] == "198.19.130.0/24"


def test_network_with_another_subnet_in_use_is_an_error(node):
    host, engine = node
    _ensure(host, engine, _want(pod_cidr="198.19.131.0/24"))
    cid = engine.add_raw("web-0-infra", {"orch.namespace": "shop"})
    engine.containers[cid]["HostConfig"]["NetworkMode"] = "orch"
    with pytest.raises(PodNetworkError) as e:
        _ensure(host, engine)
    assert "differs and is in use" in e.value.summary and "web-0-infra" in e.value.detail
    assert "198.19.131.0/24" in e.value.hint
    assert len(engine.nets) == 1  # untouched


def test_network_with_other_options_is_drift(node):
    host, engine = node
    body = _want().network_body()
    body["Options"] = {}
    engine.create_network("orch", body)
    reasons = podnet.drift(_want(), podnet.observe(host, engine))
    assert "the bridge network orch has bridge device (docker-chosen), not orch0, Docker's masquerading on" in reasons
    _ensure(host, engine)
    (net,) = engine.nets.values()
    assert net["Options"]["com.docker.network.bridge.enable_ip_masquerade"] == "false"


def test_a_foreign_network_named_orch_is_a_clear_error(node):
    host, engine = node
    engine.create_network("orch", {"Driver": "bridge", "IPAM": {"Config": [{"Subnet": "198.19.77.0/24"}]}})
    with pytest.raises(PodNetworkError) as e:
        _ensure(host, engine)
    assert "orch did not make" in e.value.summary and "docker network rm orch" in e.value.hint


def test_overlapping_pod_subnet_is_a_clear_error(node):
    host, engine = node
    engine.create_network("mine", {"IPAM": {"Config": [{"Subnet": "198.19.130.0/25"}]}})
    with pytest.raises(PodNetworkError) as e:
        _ensure(host, engine)
    assert "pod_cidr" in e.value.hint and "overlaps" in e.value.detail


def test_unreachable_gateway_gets_a_hint(node):
    host, engine = node
    host.fail["ip"] = CommandResult(2, "", "Error: Nexthop has invalid gateway.\nCommand failed -:1\n")
    with pytest.raises(HostCommandError) as e:
        _ensure(host, engine)
    assert "one network segment" in e.value.hint
    assert "node n3" in str(e.value) and "ip -batch -" in str(e.value) and "Command failed -:1" in str(e.value)


# ---- teardown ----------------------------------------------------------------------------------------------

def test_teardown_of_the_last_namespace_removes_everything(node):
    host, engine = node
    _ensure(host, engine)
    host.nft["orch-ns-shop"] = []  # the namespace's own table, still there: it is the one leaving
    cid = engine.add_raw("web-0-infra", {"orch.namespace": "shop"}, state="exited")  # its own, stopped
    engine.containers[cid]["HostConfig"]["NetworkMode"] = "orch"
    changes = podnet.teardown(host, engine, "shop")
    assert changes == ["removed 2 pod route(s)", "removed table ip orch", "removed iptables ORCH-FORWARD",
                       "removed network orch"]
    assert host.routes == {} and "orch" not in host.nft and "ORCH-FORWARD" not in host.chains
    assert host.chains["DOCKER-USER"] == ["-A DOCKER-USER -j RETURN"] and engine.nets == {}
    assert podnet.teardown(host, engine, "shop") == []  # nothing left to do


def test_teardown_keeps_the_network_another_namespace_uses(node):
    host, engine = node
    _ensure(host, engine)
    host.nft["orch-ns-blog"] = []
    changes = podnet.teardown(host, engine, "shop")
    assert changes == ["kept the pod network of node n3: namespace blog still use(s) it"]
    assert host.changing_calls() == [("ip", "-batch", "-"), ("nft", "-f", "-"), podnet.RESTORE]
    assert len(engine.nets) == 1 and host.routes


def test_teardown_keeps_the_network_other_containers_use(node):
    host, engine = node
    _ensure(host, engine)
    for name, labels in (("blog-0-infra", {"orch.namespace": "blog"}), ("by-hand", {})):
        cid = engine.add_raw(name, labels, state="exited")
        engine.containers[cid]["HostConfig"]["NetworkMode"] = "orch"
    changes = podnet.teardown(host, engine, "shop")
    assert changes == ["kept the pod network of node n3: container by-hand, namespace blog still use(s) it"]


def test_teardown_keeps_the_network_another_state_of_the_namespace_uses(node):
    host, engine = node
    _ensure(host, engine)
    cid = engine.add_raw("web-0-infra", {"orch.namespace": "shop", "orch.lineage": "other"}, state="exited")
    engine.containers[cid]["HostConfig"]["NetworkMode"] = "orch"
    changes = podnet.teardown(host, engine, "shop", lineage="mine")
    assert changes == ["kept the pod network of node n3: another configuration of namespace shop (state lineage "
                       "other) still use(s) it"]


def test_teardown_with_our_own_containers_still_running_is_an_error(node):
    host, engine = node
    _ensure(host, engine)
    cid = engine.add_raw("web-0-infra", {"orch.namespace": "shop"})
    engine.containers[cid]["HostConfig"]["NetworkMode"] = "orch"
    with pytest.raises(PodNetworkError) as e:
        podnet.teardown(host, engine, "shop")
    assert "active endpoints" in e.value.detail


# ---- hostexec ----------------------------------------------------------------------------------------------

class _Link:
    def __init__(self, *results):
        self.results = list(results)
        self.seen: list[tuple[str, bytes | None]] = []

    def exec(self, command, stdin=None, timeout=None):
        self.seen.append((command, stdin))
        r = self.results.pop(0)
        if isinstance(r, BaseException):
            raise r
        return r


def test_ssh_host_quotes_every_argument():
    link = _Link((0, b"ok\n", b""))
    h = SSHHost(link, "n1")
    res = h.run(["echo", "a b", "$(reboot)", "it's"], stdin=b"data")
    assert res == CommandResult(0, "ok\n", "")
    assert link.seen == [("echo 'a b' '$(reboot)' 'it'\"'\"'s'", b"data")]


def test_become_runs_through_passwordless_sudo():
    link = _Link((0, b"", b""))
    SSHHost(link, "n1", become=True).run(["nft", "-f", "-"], stdin=b"x")
    assert link.seen[0][0] == "sudo -n -- nft -f -"


@pytest.mark.parametrize("rc, stderr", [
    (1, "sudo: a password is required\n"),
    (127, "bash: line 1: sudo: command not found\n"),
    (127, "sh: 1: sudo: not found\n"),
    (1, "sudo: alice is not in the sudoers file.  This incident will be reported.\n"),
])
def test_sudo_trouble_is_explained_even_unchecked(rc, stderr):
    h = SSHHost(_Link((rc, b"", stderr.encode())), "n1", become=True)
    with pytest.raises(HostCommandError) as e:
        h.run(["ip", "route"], check=False)
    assert e.value.hint == BECOME_HINT and "node n1" in str(e.value) and "sudo -n -- ip route" in str(e.value)


def test_failures_are_not_mistaken_for_sudo():
    assert sudo_problem(True, 1, "sudo: nft: command not found\n") is None  # the command is missing
    assert sudo_problem(False, 1, "sudo: a password is required\n") is None
    h = SSHHost(_Link((1, b"", b"sudo: nft: command not found\n")), "n1", become=True)
    assert h.run(["nft", "list", "tables"], check=False).rc == 1


def test_a_failed_command_names_node_command_and_last_stderr_line():
    h = SSHHost(_Link((2, b"", b"first\nError: Nexthop has invalid gateway.\n")), "n2")
    with pytest.raises(HostCommandError) as e:
        h.run(["ip", "route", "replace", "198.19.1.0/24", "via", "198.18.0.99"])
    err = e.value
    assert (err.node, err.rc, err.argv[:2]) == ("n2", 2, ("ip", "route"))
    assert str(err) == ("node n2: `ip route replace 198.19.1.0/24 via 198.18.0.99` failed (exit status 2): "
                        "Error: Nexthop has invalid gateway.")
    missing = SSHHost(_Link((127, b"", b"sh: 1: nft: not found\n")), "n2")
    with pytest.raises(HostCommandError) as e:
        missing.run(["nft", "list", "tables"])
    assert e.value.hint == "install nft on the node"


def test_timeout_and_lost_connection_are_command_errors():
    h = SSHHost(_Link(TimeoutError(), OSError("connection reset")), "n1")
    with pytest.raises(HostCommandError) as e:
        h.run(["true"], timeout=2)
    assert e.value.rc is None and "no answer within 2 s" in str(e.value)
    with pytest.raises(HostCommandError) as e:
        h.run(["true"])
    assert "the SSH connection failed" in str(e.value)


def test_engine_without_ssh_has_no_host():
    assert Engine(object(), "n1", "tcp://127.0.0.1:2375").host() is None
    fake = FakeEngine("n1")
    assert isinstance(fake.host(), FakeHost) and fake.host() is fake.host() and fake.host().node == "n1"
    fake.fake_host = None
    assert fake.host() is None


def test_ssh_host_over_a_real_ssh_connection(tmp_path):
    sshd = FakeDockerHost(tmp_path)
    try:
        kh = tmp_path / "known_hosts"
        kh.write_text(sshd.known_hosts_line())
        engine = connect(NodeSettings("n1", address="127.0.0.1", port=sshd.port, identity_file=sshd.identity_file,
                                      known_hosts=str(kh)))
        try:
            host = engine.host(become=True)
            assert host is not None and host.node == "n1"
            res = host.run(["printf", "%s\\n", "a b"], stdin=b"ignored")
            assert res.rc == 0 and res.stdout == "1.41\n"  # the fake sshd answers any command with its version
            assert sshd.commands[-1] == "sudo -n -- printf '%s\\n' 'a b'"
        finally:
            engine.close()
    finally:
        sshd.close()


def test_a_script_argument_is_elided_in_messages():
    h = SSHHost(_Link((127, b"", b"bash: line 1: sudo: command not found\n")), "n3", become=True)
    with pytest.raises(HostCommandError) as e:
        podnet.preconditions(h)
    assert str(e.value).startswith("node n3: `sudo -n -- sh -c <script: ")
    assert "sudo is not installed on the node" in str(e.value) and e.value.argv[-1] == podnet.PROBE


def test_only_paramikos_file_at_exit_is_kept_quiet(monkeypatch):
    """A stalled engine's channel file collected at interpreter exit prints nothing; anything else is reported."""
    from types import SimpleNamespace

    from orch_provider_docker import transport

    seen = []
    monkeypatch.setattr(transport, "_default_unraisablehook", seen.append)

    def buffered_file_del() -> None: ...
    buffered_file_del.__qualname__ = "BufferedFile.__del__"
    transport._quiet_channel_file_at_exit(SimpleNamespace(object=buffered_file_del, exc_value=ValueError("closed")))
    assert seen == []
    other = SimpleNamespace(object=print, exc_value=ValueError("x"))
    transport._quiet_channel_file_at_exit(other)
    assert seen == [other]
