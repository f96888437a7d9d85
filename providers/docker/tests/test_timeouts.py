"""Stalls: an endpoint that accepts and never answers fails within the connect timeout, once, with the right
diagnosis — a hung Docker engine (over SSH, through a socket channel, or a local socket), a port that is not an
SSH server — and paramiko never prints tracebacks of its own."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from orch_provider_docker import transport
from orch_provider_docker.transport import EngineError, NodeError, NodeSettings, connect

from docker_sshd import FakeDockerHost


class SilentServer:
    """Accepts TCP connections (or unix ones at ``path``) and never says anything; ``reply`` is sent once,
    then the connection is closed."""

    def __init__(self, path: str | None = None, reply: bytes | None = None, hold: bool = False):
        self.reply = reply
        self.hold = hold  # keep the connection open after the reply
        if path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(path)
        else:
            self.sock = socket.socket()
            self.sock.bind(("127.0.0.1", 0))
            self.port = self.sock.getsockname()[1]
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
            if self.reply is not None:
                conn.sendall(self.reply)
                if not self.hold:
                    conn.close()
                    continue
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.held:
            c.close()


def _trusted(h: FakeDockerHost, tmp_path: Path) -> Path:
    kh = tmp_path / "known_hosts"
    kh.write_text(h.known_hosts_line())
    return kh


def _ssh_settings(h: FakeDockerHost, tmp_path: Path, **kw) -> NodeSettings:
    return NodeSettings("n1", address="127.0.0.1", port=h.port, identity_file=h.identity_file,
                        known_hosts=str(_trusted(h, tmp_path)), **kw)


def test_the_documented_timeouts():
    assert transport.CONNECT_TIMEOUT == 10.0  # docs/docker-provider.md, docs/reliability.md


@pytest.mark.parametrize("streamlocal", [False, True], ids=["dial-stdio", "socket-channel"])
def test_a_hung_engine_over_ssh_fails_within_the_connect_timeout(tmp_path, streamlocal):
    h = FakeDockerHost(tmp_path, mode="stall", streamlocal=streamlocal)
    try:
        started = time.monotonic()
        with pytest.raises(NodeError) as e:
            connect(_ssh_settings(h, tmp_path, docker_host="unix:///var/run/docker.sock"), timeout=1)
        took = time.monotonic() - started
    finally:
        h.close()
    assert took < 3, took
    err = e.value
    assert err.kind == "stalled" and err.summary == "Docker not answering"
    assert "Docker on node.n1 did not answer within 1 s" in err.detail
    assert h.requests == 1  # one request, one timeout
    assert not [c for c in h.commands if "version" in c]  # no second try to "diagnose" a hung engine


def test_a_hung_local_socket_fails_within_the_connect_timeout(tmp_path):
    path = str(tmp_path / "docker.sock")
    srv = SilentServer(path)
    try:
        started = time.monotonic()
        with pytest.raises(NodeError) as e:
            connect(NodeSettings("n1", docker_host=f"unix://{path}"), timeout=1)
        took = time.monotonic() - started
    finally:
        srv.close()
    assert took < 3, took
    assert e.value.kind == "stalled" and "Docker on node.n1 did not answer within 1 s" in e.value.detail
    assert srv.accepted == 1


def test_after_a_stall_the_node_fails_at_once(tmp_path):
    """An engine that stops answering after the connection check: the first request waits for the timeout,
    the next ones fail at once with the same diagnosis instead of waiting again."""
    h = FakeDockerHost(tmp_path, mode="stall-after-version")
    try:
        eng = connect(_ssh_settings(h, tmp_path), timeout=1, api_timeout=1)
        started = time.monotonic()
        with pytest.raises(EngineError) as first:
            eng.info()
        assert time.monotonic() - started < 3
        assert "Docker on node.n1 did not answer within 1 s" in str(first.value)
        asked = h.requests
        started = time.monotonic()
        with pytest.raises(EngineError) as again:
            eng.list_containers([])
        assert time.monotonic() - started < 0.2 and h.requests == asked
        assert str(again.value) == str(first.value)
        eng.close()
    finally:
        h.close()


def test_a_silent_port_is_not_an_ssh_server(tmp_path):
    srv = SilentServer()
    try:
        s = NodeSettings("n1", address="127.0.0.1", port=srv.port, known_hosts=str(tmp_path / "kh"))
        started = time.monotonic()
        with pytest.raises(NodeError) as e:
            connect(s, timeout=1)
        took = time.monotonic() - started
    finally:
        srv.close()
    assert took < 3, took
    err = e.value
    assert err.kind == "not_ssh" and err.summary == "Not an SSH server", (err.summary, err.detail)
    assert f"root@127.0.0.1:{srv.port} accepted the connection but sent no SSH banner within 1 s" in err.detail
    assert "authentication" not in err.detail.lower()
    assert srv.accepted == 1


def test_a_port_speaking_another_protocol_is_not_an_ssh_server(tmp_path):
    srv = SilentServer(reply=b"HTTP/1.0 400 Bad Request\r\n\r\n")
    try:
        s = NodeSettings("n1", address="127.0.0.1", port=srv.port, known_hosts=str(tmp_path / "kh"))
        with pytest.raises(NodeError) as e:
            connect(s, timeout=1)
    finally:
        srv.close()
    assert e.value.kind == "not_ssh" and e.value.summary == "Not an SSH server"


def test_a_server_that_stops_after_its_banner_is_a_failed_handshake(tmp_path):
    srv = SilentServer(reply=b"SSH-2.0-OpenSSH_9.2p1\r\n", hold=True)
    try:
        s = NodeSettings("n1", address="127.0.0.1", port=srv.port, known_hosts=str(tmp_path / "kh"))
        started = time.monotonic()
        with pytest.raises(NodeError) as e:
            connect(s, timeout=1)
        assert time.monotonic() - started < 4
    finally:
        srv.close()
    assert e.value.summary == "SSH handshake failed" and "SSH-2.0-OpenSSH_9.2p1" in e.value.detail
    assert "did not complete the SSH key exchange within 1 s" in e.value.detail


def test_importing_an_image_is_bounded_by_the_api_timeout(tmp_path):
    """docker-py's import_image_from_data waits forever; orch's import gives up after the API timeout."""
    h = FakeDockerHost(tmp_path, mode="stall-after-version")
    try:
        eng = connect(_ssh_settings(h, tmp_path), timeout=1, api_timeout=1)
        started = time.monotonic()
        with pytest.raises(EngineError) as e:
            eng.import_image(b"x" * 1024, "orch/pause", "t", ['ENTRYPOINT ["/pause"]'])
        assert time.monotonic() - started < 3 and e.value.stalled
        eng.close()
    finally:
        h.close()


def test_paramiko_prints_no_traceback(tmp_path):
    """paramiko logs the failed banner read of its transport thread with a traceback; orch says it once, as a
    diagnostic, and nothing else reaches the terminal."""
    srv = SilentServer()
    try:
        code = (
            "import time, sys\n"
            "from orch_provider_docker.transport import NodeError, NodeSettings, connect\n"
            f"s = NodeSettings('n1', address='127.0.0.1', port={srv.port}, known_hosts={str(tmp_path / 'kh')!r})\n"
            "try:\n"
            "    connect(s, timeout=1)\n"
            "except NodeError as e:\n"
            "    print(e.summary)\n"
            "time.sleep(1.5)\n")  # the transport thread gives up after the client: let it log, if it does
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    finally:
        srv.close()
    assert done.stdout.strip() == "Not an SSH server"
    assert done.stderr == ""


def test_a_refused_socket_channel_prints_nothing(tmp_path):
    """sshd refusing socket forwarding makes orch fall back to `docker system dial-stdio`, quietly (paramiko logs
    "Secsh channel 0 open FAILED" at ERROR)."""
    h = FakeDockerHost(tmp_path)  # refuses direct-streamlocal channels
    try:
        kh = _trusted(h, tmp_path)
        code = (
            "from orch_provider_docker.transport import NodeSettings, connect\n"
            f"s = NodeSettings('n1', address='127.0.0.1', port={h.port}, identity_file={h.identity_file!r}, "
            f"known_hosts={str(kh)!r}, docker_host='unix:///var/run/docker.sock')\n"
            "e = connect(s, timeout=5)\n"
            "print(e.info()['NCPU'])\n"
            "e.close()\n")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    finally:
        h.close()
    assert done.stdout.strip() == "2", done.stderr
    assert done.stderr == ""
