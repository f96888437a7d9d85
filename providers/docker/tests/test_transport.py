"""The SSH transport against a loopback SSH server: host keys, failures as node diagnostics, channel bound."""

from __future__ import annotations

import concurrent.futures as cf
import socket

import paramiko
import pytest
from orch_provider_docker.provider import DockerProvider
from orch_provider_docker.transport import NodeError, NodeSettings, connect, fingerprint

from docker_sshd import FakeDockerHost


@pytest.fixture
def host(tmp_path):
    h = FakeDockerHost(tmp_path)
    yield h
    h.close()


def _settings(h: FakeDockerHost, known_hosts, **kw) -> NodeSettings:
    return NodeSettings("n1", address="127.0.0.1", port=h.port, identity_file=h.identity_file,
                        known_hosts=str(known_hosts), **kw)


def _trusted(h: FakeDockerHost, tmp_path, key=None):
    kh = tmp_path / "known_hosts"
    kh.write_text(h.known_hosts_line(key))
    return kh


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_fingerprint_matches_openssh_format(host):
    assert fingerprint(host.host_key) == host.host_key.fingerprint  # paramiko's own SHA256:... form


def test_unknown_host_key_is_refused_with_fingerprint(host, tmp_path):
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    with pytest.raises(NodeError) as e:
        connect(_settings(host, kh))
    err = e.value
    assert err.kind == "unknown_host_key" and err.node == "n1"
    assert fingerprint(host.host_key) in err.detail and 'node "n1"' in err.detail
    assert err.hint.endswith("orch trust n1")
    assert kh.read_text() == ""  # nothing was trusted behind the user's back


def test_missing_known_hosts_file_is_like_an_empty_one(host, tmp_path):
    with pytest.raises(NodeError) as e:
        connect(_settings(host, tmp_path / "does-not-exist"))
    assert e.value.kind == "unknown_host_key"


def test_changed_host_key_is_refused_naming_both_fingerprints(host, tmp_path):
    old = paramiko.ECDSAKey.generate()
    with pytest.raises(NodeError) as e:
        connect(_settings(host, _trusted(host, tmp_path, old)))
    err = e.value
    assert err.kind == "changed_host_key" and err.summary == "SSH host key changed"
    assert fingerprint(host.host_key) in err.detail and fingerprint(old) in err.detail
    assert "ssh-keygen -R" in err.hint


def test_unreachable_host(tmp_path):
    s = NodeSettings("n7", address="127.0.0.1", port=_free_port(), known_hosts=str(tmp_path / "kh"))
    with pytest.raises(NodeError) as e:
        connect(s, timeout=3)
    assert e.value.kind == "unreachable" and e.value.node == "n7" and e.value.summary == "Cannot reach node"


def test_authentication_failure(host, tmp_path):
    other = tmp_path / "other_key"
    paramiko.ECDSAKey.generate().write_private_key_file(str(other))
    s = NodeSettings("n1", address="127.0.0.1", port=host.port, identity_file=str(other),
                     known_hosts=str(_trusted(host, tmp_path)))
    with pytest.raises(NodeError) as e:
        connect(s)
    assert e.value.kind == "auth"


def test_missing_docker_is_diagnosed_on_the_node(tmp_path):
    h = FakeDockerHost(tmp_path, mode="no-docker")
    try:
        with pytest.raises(NodeError) as e:
            connect(_settings(h, _trusted(h, tmp_path)))
        assert e.value.kind == "no_docker"
        assert "docker CLI is not installed" in e.value.detail and "docker: not found" in e.value.detail
    finally:
        h.close()


def test_too_old_engine(tmp_path):
    h = FakeDockerHost(tmp_path, api_version="1.24")
    try:
        with pytest.raises(NodeError) as e:
            connect(_settings(h, _trusted(h, tmp_path)))
        assert e.value.kind == "too_old" and "1.24" in e.value.detail
    finally:
        h.close()


def test_one_connection_bounded_channels_under_load(host, tmp_path):
    """40 concurrent requests: one SSH connection, never more than max_channels channels (stock sshd
    would refuse the 11th)."""
    host.delay = 0.02
    eng = connect(_settings(host, _trusted(host, tmp_path)), max_channels=4)
    try:
        with cf.ThreadPoolExecutor(16) as ex:
            results = list(ex.map(lambda i: eng.list_containers([f"orch.lineage=L{i}"]), range(40)))
        assert results == [[]] * 40
        assert host.connections == 1
        assert host.peak <= 4 and host.refused == 0
        assert host.requests >= 41  # /version + 40 lists over reused channels
        assert sum(1 for c in host.commands if c == "docker system dial-stdio") <= 4
    finally:
        eng.close()


def test_remote_socket_reaches_the_node_quoted(host, tmp_path):
    """sshd refuses socket forwarding (this one does): the channel runs the docker CLI, path quoted."""
    eng = connect(_settings(host, _trusted(host, tmp_path), docker_host="unix:///run/my docker.sock"))
    eng.close()
    assert host.commands[0] == "docker -H 'unix:///run/my docker.sock' system dial-stdio"


def test_remote_socket_goes_straight_to_the_socket_when_sshd_forwards_it(tmp_path):
    """With docker_host naming the node's socket, channels are direct-streamlocal: no process on the node."""
    h = FakeDockerHost(tmp_path, streamlocal=True)
    try:
        eng = connect(_settings(h, _trusted(h, tmp_path), docker_host="unix:///var/run/docker.sock"))
        try:
            with cf.ThreadPoolExecutor(8) as ex:
                assert list(ex.map(lambda i: eng.list_containers([]), range(12))) == [[]] * 12
            assert eng.info()["NCPU"] == 2
        finally:
            eng.close()
        assert h.commands == [] and 1 <= len(h.streamlocal_channels) <= 6 and h.requests >= 14
    finally:
        h.close()


def test_provider_reports_refused_key_as_node_diagnostic(host, tmp_path):
    """Through the provider: plan of a node on an untrusted host, then a refresh."""
    from orchdsl.addrs import ResourceAddress
    from orchdsl.sdk import StateObject

    kh = tmp_path / "known_hosts"
    kh.write_text("")
    p = DockerProvider()
    p.configure({}, "L")
    attrs = {"name": "n1", "address": "127.0.0.1", "port": host.port, "identity_file": host.identity_file,
             "known_hosts": str(kh), "user": "root"}
    res = p.refresh([StateObject(ResourceAddress.parse("node.n1"), attrs)])
    assert len(res.diagnostics) == 1
    d = res.diagnostics[0]
    assert d.is_error and d.address == "node.n1" and d.summary == "Unknown SSH host key"
    assert fingerprint(host.host_key) in d.detail and "orch trust n1" in d.hint
    p.close()


def test_a_connect_timeout_without_a_message_says_no_answer(tmp_path, monkeypatch):
    def silent_timeout(*args, **kwargs):
        raise TimeoutError()

    monkeypatch.setattr(paramiko.SSHClient, "connect", silent_timeout)
    listener = socket.socket()  # accepts the TCP connection; the SSH handshake then times out
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    s = NodeSettings("n7", address="127.0.0.1", port=listener.getsockname()[1], known_hosts=str(tmp_path / "kh"))
    with pytest.raises(NodeError) as e:
        connect(s, timeout=3)
    listener.close()
    assert e.value.kind == "unreachable" and e.value.detail.endswith("timed out (no answer).")


def test_the_ssh_socket_is_prompt_from_the_first_byte_and_prefers_aes_gcm(host, tmp_path):
    """Nagle off before the handshake (it held a fleet's every connection ~40 ms twice), AES-GCM chosen when the
    server offers it (no per-packet HMAC in Python), requests' environment lookups off."""
    eng = connect(_settings(host, _trusted(host, tmp_path)))
    try:
        assert eng.link is not None and eng.link.client is not None
        t = eng.link.client.get_transport()
        assert t is not None
        assert t.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1  # type: ignore[union-attr]
        assert t.local_cipher == t.remote_cipher == "aes128-gcm@openssh.com"
        assert eng.api.trust_env is False
        assert eng.list_containers(["orch.lineage=L"]) == []
    finally:
        eng.close()


def test_known_hosts_is_parsed_once_per_version_of_the_file(host, tmp_path, monkeypatch):
    """N nodes, one known_hosts of N lines: read once, not N times; read again once it changes (orch trust)."""
    from orch_provider_docker import transport

    parsed = []
    real = paramiko.HostKeys

    def counting(path=None):
        parsed.append(path)
        return real(path)

    monkeypatch.setattr(paramiko, "HostKeys", counting)
    kh = _trusted(host, tmp_path)
    kh.write_text("".join(f"[10.0.0.{i}]:22 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0d"
                          f"h2l9GKJl\n" for i in range(20)) + kh.read_text())
    for _ in range(3):
        transport.open_ssh(_settings(host, kh), _settings(host, kh).endpoint()).close()
    assert parsed == [str(kh)]
    with open(kh, "a") as f:
        f.write("# a line more\n")
    transport.open_ssh(_settings(host, kh), _settings(host, kh).endpoint()).close()
    assert parsed == [str(kh), str(kh)]
