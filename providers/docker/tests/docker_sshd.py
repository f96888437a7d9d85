"""A tiny SSH server on loopback (paramiko) that plays a Docker host for transport tests.

``docker system dial-stdio`` channels speak a minimal HTTP/1.1 Engine API
(``/version``, ``/info``, ``/containers/json``); modes simulate a host without
Docker (``no-docker``), with a too-old engine, or with an engine that accepts requests and never answers
(``stall``; ``stall-after-version``: only ``/version`` is answered). Like a stock sshd it refuses more than
``max_sessions`` concurrent channels, and it records the highest concurrency seen.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import paramiko


class FakeDockerHost:
    def __init__(self, tmp: Path, mode: str = "ok", api_version: str = "1.41", delay: float = 0.0,
                 max_sessions: int = 10, streamlocal: bool = False):
        self.host_key = paramiko.ECDSAKey.generate()
        self.client_key = paramiko.ECDSAKey.generate()
        self.identity_file = str(tmp / "client_key")
        self.client_key.write_private_key_file(self.identity_file)
        self.mode = mode
        self.api_version = api_version
        self.delay = delay
        self.max_sessions = max_sessions
        self.streamlocal = streamlocal  # accept direct-streamlocal@openssh.com channels (socket forwarding)
        self.streamlocal_channels: set[int] = set()
        self.open_sessions = 0
        self.peak = 0
        self.refused = 0
        self.requests = 0
        self.commands: list[str] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._transports: list[paramiko.Transport] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def known_hosts_line(self, key: paramiko.PKey | None = None) -> str:
        k = key or self.host_key
        return f"[127.0.0.1]:{self.port} {k.get_name()} {k.get_base64()}\n"

    # -- server ------------------------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            t = paramiko.Transport(conn)
            t.add_server_key(self.host_key)
            self._transports.append(t)
            try:
                t.start_server(server=_Server(self))
            except (paramiko.SSHException, EOFError, OSError):
                continue
            threading.Thread(target=self._drain, args=(t,), daemon=True).start()

    def _drain(self, t: paramiko.Transport) -> None:
        kept = []  # a paramiko Channel closes itself when garbage-collected
        while t.is_active() and not self._stop.is_set():
            ch = t.accept(0.2)
            if ch is not None:
                kept.append(ch)
                if ch.get_id() in self.streamlocal_channels:
                    threading.Thread(target=self.serve, args=(ch, "streamlocal dial-stdio"), daemon=True).start()

    def session_closed(self) -> None:
        with self._lock:
            self.open_sessions -= 1

    def serve(self, chan: paramiko.Channel, command: str) -> None:
        if not command.startswith("streamlocal"):
            time.sleep(0.05)  # let the transport acknowledge the exec request first, as sshd does
        try:
            if self.mode == "no-docker":
                chan.sendall_stderr(b"sh: 1: docker: not found\n")
                chan.send_exit_status(127)
                return
            if "dial-stdio" not in command:
                chan.sendall(self.api_version.encode() + b"\n")
                chan.send_exit_status(0)
                return
            self._http(chan)
        except (OSError, EOFError, paramiko.SSHException):
            pass
        finally:
            try:
                chan.close()
            except (OSError, EOFError, paramiko.SSHException):
                pass  # the client went away first
            self.session_closed()

    def _http(self, chan: paramiko.Channel) -> None:
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = chan.recv(65536)
                if not data:
                    return
                buf += data
            head, buf = buf.split(b"\r\n\r\n", 1)
            path = head.split(b" ")[1].decode()
            with self._lock:
                self.requests += 1
            if self.mode == "stall" or (self.mode == "stall-after-version" and not path.endswith("/version")):
                # an engine that accepts requests and never answers (a hung dockerd)
                while not self._stop.is_set() and not chan.closed:
                    time.sleep(0.05)
                return
            if self.delay:
                time.sleep(self.delay)
            if path.endswith("/version"):
                body = {"ApiVersion": self.api_version, "Version": "fake", "MinAPIVersion": "1.12"}
            elif path.endswith("/info"):
                body = {"ID": "FAKE", "NCPU": 2, "MemTotal": 1 << 30, "ServerVersion": "fake"}
            elif "/containers/json" in path:
                body = []
            else:
                body = {"message": f"page not found: {path}"}
            data = json.dumps(body).encode()
            status = b"200 OK" if not isinstance(body, dict) or "message" not in body else b"404 Not Found"
            chan.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: "
                         + str(len(data)).encode() + b"\r\n\r\n" + data)

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        for t in self._transports:
            t.close()


class _Server(paramiko.ServerInterface):
    def __init__(self, host: FakeDockerHost):
        self.host = host

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        ok = username == "root" and key.get_base64() == self.host.client_key.get_base64()
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "direct-streamlocal@openssh.com" and self.host.streamlocal:
            self.host.streamlocal_channels.add(chanid)
        elif kind != "session":
            return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        with self.host._lock:
            if self.host.open_sessions >= self.host.max_sessions:
                self.host.refused += 1
                return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
            self.host.open_sessions += 1
            self.host.peak = max(self.host.peak, self.host.open_sessions)
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        cmd = command.decode()
        self.host.commands.append(cmd)
        threading.Thread(target=self.host.serve, args=(channel, cmd), daemon=True).start()
        return True
