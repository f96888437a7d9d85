"""Reaching a node's Docker Engine: one SSH connection per node, a few channels at a time.

Over SSH, every HTTP connection to the Engine API is an SSH *channel* on the
node's one paramiko transport. When ``docker_host`` names the socket on the
node (``unix:///var/run/docker.sock``), the channel goes straight to that
socket (OpenSSH's ``direct-streamlocal@openssh.com``, like ``ssh -L
local:/remote.sock``): no process on the node. Otherwise, or when sshd
refuses socket forwarding, the channel runs ``docker system dial-stdio`` (the
Docker CLI on the node relays it to its engine; ~0.1 s per channel to start
the CLI). docker-py's
own ``ssh://`` adapter keeps one connection pool per request URL, so a burst of
concurrent requests opens more channels than sshd's stock ``MaxSessions 10``
allows (``ChannelException(2, 'Connect failed')``). Here each node has exactly
one pool of at most ``max_channels`` (default 6) connections, shared by every
request; callers beyond that wait for a free channel.

Host keys are verified against the node's ``known_hosts`` file (default
``~/.ssh/known_hosts``). An unknown or changed key refuses the connection with
a message naming the node and the key's SHA256 fingerprint; trusting a host is
an explicit act (``orch trust NODE``).

``docker_host`` selects another endpoint: ``unix:///path`` (a local socket when
the node has no ``address``; with an ``address`` the socket path on the node,
reached over SSH), ``ssh://user@host:port`` or ``tcp://host:port`` (plain
HTTP, for loopback test engines only).

The API client is docker-py's low-level ``APIClient`` with our adapter
mounted, so request building and error types are docker-py's.
"""

from __future__ import annotations


import base64
import hashlib
import logging
import os
import queue
import shlex
import socket
import struct
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:  # imported lazily at run time (see _paramiko, _http_classes)
    import paramiko
    import requests
    import requests.adapters

    from .hostexec import Host

MIN_API_VERSION = "1.30"  # Docker 17.06: Mounts, Init, NanoCpus, Healthcheck.StartPeriod
DEFAULT_MAX_CHANNELS = 6  # below sshd's stock MaxSessions 10, leaving room for an interactive session
# Reaching a node: the TCP connection, the SSH banner, key exchange and authentication, a channel, and the
# engine's first answer (GET /version) each get this long. A node that stalls there fails once, in this time.
CONNECT_TIMEOUT = 10.0
# Each later Engine API request (a container create or remove may take a while on a busy host). The first
# request that gets no answer in this time marks the node as not answering: its later requests fail at once.
API_TIMEOUT = 120.0
STREAMLOCAL = "direct-streamlocal@openssh.com"
_MSG_CHANNEL_OPEN = 90


_default_unraisablehook = sys.unraisablehook


def _quiet_channel_file_at_exit(unraisable: Any) -> None:
    """paramiko's channel file objects of a connection that died mid-request (a stalled engine) can be
    collected only while the interpreter shuts down, and their ``__del__`` then fails on an already closed buffer
    ("Exception ignored in BufferedFile.__del__", a traceback on a user's terminal after a clean error report).
    That one harmless case is dropped; every other unraisable exception is reported as usual."""
    where = getattr(unraisable.object, "__qualname__", "")
    if where == "BufferedFile.__del__" and isinstance(unraisable.exc_value, ValueError):
        return
    _default_unraisablehook(unraisable)


sys.unraisablehook = _quiet_channel_file_at_exit


def _paramiko() -> ModuleType:
    """paramiko, imported without ``invoke``: paramiko.config imports it only to run ``Match exec`` lines of
    an ssh_config, which orch never reads; that saves ~50 ms on every run."""
    if "paramiko" not in sys.modules and "invoke" not in sys.modules:
        sys.modules["invoke"] = None  # type: ignore[assignment]  # makes `import invoke` fail
        try:
            import paramiko
        finally:
            del sys.modules["invoke"]
    # paramiko logs what its transport threads run into (a missing banner with a traceback, a refused channel)
    # at ERROR; with no handler configured Python prints that on stderr. orch reports each failure once, as a
    # diagnostic: paramiko's own account goes nowhere unless the application sets up logging.
    quiet = logging.getLogger("paramiko")
    if not any(isinstance(h, logging.NullHandler) for h in quiet.handlers):
        quiet.addHandler(logging.NullHandler())
    import paramiko
    return paramiko


# ---- settings ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NodeSettings:
    """How to reach one node: the connection-relevant attributes of a ``node`` resource."""

    name: str
    address: str | None = None
    port: int = 22
    user: str = "root"
    identity_file: str | None = None
    known_hosts: str | None = None
    docker_host: str | None = None
    become: bool = False
    labels: tuple[tuple[str, str], ...] = ()
    schedulable: bool = True

    @classmethod
    def from_attributes(cls, name: str, attrs: dict[str, Any]) -> NodeSettings:
        def s(key: str) -> str | None:
            v = attrs.get(key)
            return v if isinstance(v, str) and v != "" else None

        port = attrs.get("port")
        labels = attrs.get("labels")
        if not isinstance(labels, dict):
            labels = {}
        return cls(name=name, address=s("address"),
                   port=int(port) if isinstance(port, (int, float)) and not isinstance(port, bool) else 22,
                   user=s("user") or "root", identity_file=s("identity_file"), known_hosts=s("known_hosts"),
                   docker_host=s("docker_host"), become=attrs.get("become") is True,
                   labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())),
                   schedulable=attrs.get("schedulable") is not False)

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    def endpoint(self) -> Endpoint:
        """Where the Engine API is, decided from ``docker_host`` and ``address``."""
        dh = self.docker_host
        if dh is None:
            if self.address is None:
                raise NodeError(self.name, "Node has no address",
                                f'node "{self.name}" has neither "address" nor "docker_host".',
                                hint='set address = "HOST" (SSH) or docker_host = "unix:///var/run/docker.sock"')
            return Endpoint("ssh", host=self.address, port=self.port, user=self.user)
        u = urllib.parse.urlsplit(dh)
        if u.scheme == "unix":
            path = (u.netloc + u.path) or "/var/run/docker.sock"
            if self.address is None:
                return Endpoint("unix", path=path)
            return Endpoint("ssh", host=self.address, port=self.port, user=self.user, remote_socket=dh)
        if u.scheme == "ssh":
            if not u.hostname:
                raise NodeError(self.name, "Invalid docker_host", f'"{dh}" names no host.',
                                hint="write ssh://USER@HOST[:PORT]")
            return Endpoint("ssh", host=u.hostname, port=u.port or self.port, user=u.username or self.user)
        if u.scheme in ("tcp", "http"):
            if not u.hostname:
                raise NodeError(self.name, "Invalid docker_host", f'"{dh}" names no host.',
                                hint="write tcp://HOST:PORT")
            return Endpoint("tcp", host=u.hostname, port=u.port or 2375)
        raise NodeError(self.name, "Unsupported docker_host",
                        f'"{dh}": orch reaches Docker through unix://, ssh:// or tcp:// endpoints.',
                        hint="leave docker_host unset to use the node's Docker socket over SSH")


@dataclass(frozen=True)
class Endpoint:
    kind: str  # "ssh", "unix" or "tcp"
    host: str | None = None
    port: int | None = None
    user: str | None = None
    path: str | None = None  # unix
    remote_socket: str | None = None  # ssh: docker -H this on the node

    @property
    def remote_path(self) -> str | None:
        """The socket path on the node named by ``docker_host = "unix:///..."`` (SSH endpoints only)."""
        if self.kind != "ssh" or not self.remote_socket:
            return None
        u = urllib.parse.urlsplit(self.remote_socket)
        return (u.netloc + u.path) or None

    def describe(self) -> str:
        if self.kind == "unix":
            return f"unix://{self.path}"
        if self.kind == "tcp":
            return f"tcp://{self.host}:{self.port}"
        return f"ssh://{self.user}@{self.host}:{self.port}"

    def dial_command(self, subcommand: str = "system dial-stdio") -> str:
        """The command run on the node for a channel. The socket path is quoted: no user value reaches
        the node's shell unquoted."""
        host = f" -H {shlex.quote(self.remote_socket)}" if self.remote_socket else ""
        return f"docker{host} {subcommand}"


# ---- errors -----------------------------------------------------------------------------------------

class NodeError(Exception):
    """A node cannot be used; rendered as a diagnostic with address ``node.NAME``."""

    def __init__(self, node: str, summary: str, detail: str = "", hint: str = "", kind: str = "error"):
        super().__init__(f"{summary}: {detail}" if detail else summary)
        self.node = node
        self.summary = summary
        self.detail = detail
        self.hint = hint
        self.kind = kind


class EngineError(Exception):
    """The Engine refused or failed a request (``stalled``: it did not answer in time)."""

    def __init__(self, message: str, status: int | None = None, stalled: bool = False):
        super().__init__(message)
        self.status = status
        self.stalled = stalled


class NotFound(EngineError):
    pass


class Conflict(EngineError):
    pass


class UnknownHostKey(Exception):
    def __init__(self, hostname: str, key: Any):
        super().__init__(hostname)
        self.hostname = hostname
        self.key = key


def fingerprint(key: Any) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint of a paramiko key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


# ---- SSH --------------------------------------------------------------------------------------------

def _known_hosts_path(settings: NodeSettings) -> str:
    return os.path.expanduser(settings.known_hosts or "~/.ssh/known_hosts")


def _host_id(ep: Endpoint) -> str:
    host = cast(str, ep.host)  # SSH endpoints always have a host
    return host if ep.port == 22 else f"[{host}]:{ep.port}"


def open_ssh(settings: NodeSettings, ep: Endpoint, timeout: float | None = None) -> paramiko.SSHClient:
    """A connected, host-key-verified ``paramiko.SSHClient``; raises NodeError."""
    _paramiko()  # the first import, without invoke
    import paramiko

    timeout = CONNECT_TIMEOUT if timeout is None else timeout

    class _Refuse(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
            raise UnknownHostKey(hostname, key)

    client = paramiko.SSHClient()
    kh = _known_hosts_path(settings)
    if os.path.isfile(kh):
        try:
            known = _known_hosts(kh).lookup(_host_id(ep))
        except (OSError, paramiko.SSHException, ValueError) as e:
            raise NodeError(settings.name, "Cannot read known_hosts", f"{kh}: {e}",
                            hint="fix or remove the broken line") from None
        for keytype, key in (known or {}).items():  # only this host's keys: what the handshake looks up
            client.get_host_keys().add(_host_id(ep), keytype, key)
    client.set_missing_host_key_policy(_Refuse())
    key_file = os.path.expanduser(settings.identity_file) if settings.identity_file else None
    if key_file and not os.path.isfile(key_file):
        raise NodeError(settings.name, "SSH identity file not found", f"{key_file} does not exist.",
                        hint="set identity_file to an existing private key, or leave it unset to use the SSH "
                             "agent and ~/.ssh keys")
    where = f"{ep.user}@{ep.host}:{ep.port}"
    try:
        sock = _tcp_connect(cast(str, ep.host), ep.port or 22, timeout)
        try:
            client.connect(cast(str, ep.host), port=ep.port or 22, username=ep.user, key_filename=key_file,
                           timeout=timeout, banner_timeout=timeout, auth_timeout=timeout, channel_timeout=timeout,
                           allow_agent=True, look_for_keys=key_file is None, sock=sock,
                           transport_factory=_transport_class())
        finally:
            if client.get_transport() is None:
                sock.close()  # paramiko failed before taking it over (client.close() closes it otherwise)
    except UnknownHostKey as e:
        client.close()
        raise NodeError(
            settings.name, "Unknown SSH host key",
            f'node "{settings.name}" ({where}) presented a {e.key.get_name()} host key with fingerprint '
            f"{fingerprint(e.key)}, which is not in {kh}. orch does not trust new hosts implicitly.",
            hint=f"check the fingerprint with the host's administrator, then run: orch trust {settings.name}",
            kind="unknown_host_key") from None
    except paramiko.BadHostKeyException as e:
        client.close()
        raise NodeError(
            settings.name, "SSH host key changed",
            f'node "{settings.name}" ({where}) presented a {e.key.get_name()} host key with fingerprint '
            f"{fingerprint(e.key)}, but {kh} records {fingerprint(e.expected_key)} for it. Someone may be "
            "intercepting the connection, or the host was reinstalled.",
            hint=f"if the host was reinstalled, remove the old key (ssh-keygen -R {_host_id(ep)} -f {kh}) and "
                 f"run: orch trust {settings.name}", kind="changed_host_key") from None
    except paramiko.AuthenticationException as e:
        client.close()
        raise NodeError(settings.name, "SSH authentication failed", f"{where}: {e}",
                        hint="check user and identity_file, and that the key is in the node's "
                             "authorized_keys", kind="auth") from None
    except TimeoutError as e:
        client.close()
        raise NodeError(settings.name, "Cannot reach node", f"{where}: timed out ({str(e) or 'no answer'}).",
                        hint="check the address and that sshd runs on the node", kind="unreachable") from None
    except (OSError, paramiko.SSHException, EOFError) as e:
        t = client.get_transport()
        refused = t is not None and t.is_active() and not t.is_authenticated()
        # the server's identification line ("SSH-2.0-..."), "" until one arrived; the key exchange's result
        banner, kex_done = (t.remote_version, t.session_id is not None) if t is not None else (None, False)
        client.close()
        if banner == "":
            # a port that accepts TCP and says nothing (or something else): paramiko then reports a banner
            # error, or, when its overall timeout comes first, "No existing session" at authentication
            raise NodeError(settings.name, "Not an SSH server",
                            f"{where} accepted the connection but sent no SSH banner within {timeout:g} s: it is "
                            "not an SSH server, or one too busy to answer.",
                            hint="check the address and port (SSH is usually port 22), and that sshd runs there",
                            kind="not_ssh") from None
        if banner is not None and not kex_done:
            raise NodeError(settings.name, "SSH handshake failed",
                            f"{where} ({banner}) did not complete the SSH key exchange within {timeout:g} s "
                            f"({getattr(e, 'strerror', None) or e or type(e).__name__}).",
                            hint="check that sshd on the node is healthy (its log says why)",
                            kind="unreachable") from None
        detail = getattr(e, "strerror", None) or str(e) or type(e).__name__
        if refused:  # paramiko re-raises a key-loading error after the server refused every key
            raise NodeError(settings.name, "SSH authentication failed",
                            f"{where}: the server accepted none of the keys offered ({detail})",
                            hint="check user and identity_file, and that the key is in the node's "
                                 "authorized_keys", kind="auth") from None
        raise NodeError(settings.name, "Cannot reach node", f"{where}: {detail}",
                        hint="check the address and port, and that sshd runs on the node",
                        kind="unreachable") from None
    transport = client.get_transport()
    if transport is not None:
        transport.set_keepalive(30)
        if ep.remote_path:
            _enable_streamlocal(transport, ep.remote_path)
    return client


_known_hosts_cache: dict[str, tuple[int, int, Any]] = {}  # path -> (mtime_ns, size, its paramiko.HostKeys)
_known_hosts_lock = threading.Lock()


def _known_hosts(path: str) -> Any:
    """The known_hosts file parsed (a ``paramiko.HostKeys``), once per version of the file in this process:
    a fleet's N connections would otherwise parse the whole file N times (its N lines each: N² key loads)."""
    import paramiko

    st = os.stat(path)
    with _known_hosts_lock:
        cached = _known_hosts_cache.get(path)
        if cached is None or cached[:2] != (st.st_mtime_ns, st.st_size):
            cached = (st.st_mtime_ns, st.st_size, paramiko.HostKeys(path))
            _known_hosts_cache[path] = cached
        return cached[2]


_transport_cls: Any = None


def _transport_class() -> Any:
    """paramiko's Transport preferring AES-GCM (``aes128-gcm@openssh.com``, then ``aes256-gcm``, both in
    OpenSSH's default list) over its default AES-CTR with HMAC-SHA2: an AEAD cipher authenticates each
    packet inside ``cryptography``, where CTR + HMAC has paramiko build an HMAC object and compare the MAC in
    Python for every packet (a sixth of the client's CPU in a fleet's refresh). A server without GCM gets
    paramiko's usual choice."""
    global _transport_cls
    if _transport_cls is None:
        _paramiko()  # the first import, without invoke
        import paramiko

        # paramiko's documented way to change the order (the stubs leave it out)
        default: tuple[str, ...] = tuple(paramiko.Transport._preferred_ciphers)  # type: ignore[attr-defined]

        class PreferGCM(paramiko.Transport):
            _preferred_ciphers = tuple(sorted(default, key=lambda c: not c.endswith("-gcm@openssh.com")))

        _transport_cls = PreferGCM
    return _transport_cls


_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux


class _PromptSocket(socket.socket):
    """A TCP socket for SSH's request/response exchanges, which are small packets each waiting for the other
    side's answer: Nagle's algorithm off (TCP_NODELAY) from the first byte, and every read acknowledged at once
    (TCP_QUICKACK, Linux; it does not stick, so it is set again before each read). Otherwise a sender's Nagle
    waits for a delayed ACK (~40 ms) at two places of every connection: between the client's NEWKEYS and its
    service request, and — on sshd's side, which leaves Nagle on for sessions without a terminal — between
    its host-keys announcement after authentication and the answer to the first channel. That made connecting
    to a node cost ~115 ms instead of ~30."""

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if _QUICKACK is not None:
            try:
                self.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                pass
        return super().recv(bufsize, flags)


def _tcp_connect(host: str, port: int, timeout: float) -> socket.socket:
    """A connected :class:`_PromptSocket` to ``host:port`` (each address getaddrinfo gives, in turn, as
    ``socket.create_connection`` does); raises OSError (TimeoutError when the host does not answer)."""
    error: OSError | None = None
    for family, kind, proto, _, addr in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        sock = _PromptSocket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.connect(addr)
            return sock
        except OSError as e:
            sock.close()
            error = e
    raise error if error is not None else OSError(f"no address for {host}")


def _enable_streamlocal(transport: Any, path: str) -> None:
    """Make ``transport.open_channel(STREAMLOCAL)`` open a channel to the unix socket ``path`` on the server.

    paramiko writes the type-specific fields of a channel-open request only for the types it knows; for
    ``direct-streamlocal@openssh.com`` OpenSSH's PROTOCOL file specifies: string socket path, string
    reserved, uint32 reserved. They are appended to our own requests on their way out.
    """
    send = transport._send_user_message
    kind = STREAMLOCAL.encode()
    head = bytes([_MSG_CHANNEL_OPEN]) + struct.pack(">I", len(kind)) + kind

    def send_user_message(m: Any) -> None:
        with m.packet.getbuffer() as view:  # every data packet passes here: look at its head, copy nothing more
            ours = view[:len(head)] == head
        if ours:
            m.add_string(path)
            m.add_string("")
            m.add_int(0)
        send(m)

    transport._send_user_message = send_user_message


def scan_host_key(settings: NodeSettings, timeout: float | None = None) -> paramiko.PKey:
    """The node's host key, read without trusting it (for ``orch trust``)."""
    _paramiko()  # the first import, without invoke
    import paramiko

    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    ep = settings.endpoint()
    if ep.kind != "ssh":
        raise NodeError(settings.name, "Not an SSH node", f"{ep.describe()} needs no host key.")
    try:
        sock = socket.create_connection((ep.host, ep.port or 22), timeout=timeout)
    except OSError as e:
        raise NodeError(settings.name, "Cannot reach node", f"{ep.host}:{ep.port}: {e.strerror or e}",
                        kind="unreachable") from None
    t = paramiko.Transport(sock)
    try:
        t.start_client(timeout=timeout)
        return t.get_remote_server_key()
    except paramiko.SSHException as e:
        raise NodeError(settings.name, "SSH handshake failed", str(e), kind="unreachable") from None
    finally:
        t.close()


def trust_host(settings: NodeSettings, key: Any) -> str:
    """Append the node's host key to its known_hosts file; returns the file's path."""
    ep = settings.endpoint()
    path = _known_hosts_path(settings)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a", encoding="ascii") as f:
        f.write(f"{_host_id(ep)} {key.get_name()} {key.get_base64()}\n")
    return path


# ---- HTTP over channels ---------------------------------------------------------------------------

_Opener = Callable[[], Any]  # a new connected socket or SSH channel


def _http_classes() -> Callable[[_Opener, float, int], requests.adapters.HTTPAdapter]:
    """urllib3/requests classes, built lazily so that importing this module stays cheap."""
    import requests.adapters
    import urllib3
    import urllib3.connection
    import urllib3.connectionpool

    class ChannelConnection(urllib3.connection.HTTPConnection):
        """An HTTP connection whose socket comes from an opener (SSH channel, unix or TCP socket)."""

        def __init__(self, opener: Callable[[], Any], timeout: float):
            super().__init__("localhost", timeout=timeout)
            self._opener = opener

        def connect(self) -> None:
            self.sock = self._opener()

    class ChannelPool(urllib3.connectionpool.HTTPConnectionPool):
        """One bounded pool: ``block=True`` makes callers wait for a free connection, so the node never
        sees more than ``maxsize`` channels from us."""

        def __init__(self, opener: Callable[[], Any], timeout: float, maxsize: int):
            super().__init__("localhost", timeout=timeout, maxsize=maxsize, block=True)
            self._opener = opener
            self._conn_timeout = timeout

        def _new_conn(self) -> ChannelConnection:
            return ChannelConnection(self._opener, self._conn_timeout)

        # urllib3's liveness check polls the socket's fileno(); a paramiko channel makes a pipe for it.
        # Ask the channel instead.
        def _get_conn(self, timeout: float | None = None) -> urllib3.connection.HTTPConnection:
            try:
                conn = self.pool.get(block=self.block, timeout=timeout)  # type: ignore[union-attr]
            except AttributeError as e:  # pool closed (self.pool is None)
                raise urllib3.exceptions.ClosedPoolError(self, "Pool is closed.") from e
            except queue.Empty:
                raise urllib3.exceptions.EmptyPoolError(self, "Pool reached maximum size.") from None
            if conn is not None and _dropped(conn.sock):
                conn.close()
                conn = None
            return conn or self._new_conn()

    class ChannelAdapter(requests.adapters.HTTPAdapter):
        def __init__(self, opener: Callable[[], Any], timeout: float, maxsize: int):
            self._pool = ChannelPool(opener, timeout, maxsize)
            super().__init__(pool_connections=1, pool_maxsize=maxsize)

        def get_connection(self, url: str | bytes, proxies: Mapping[str, str] | None = None) -> ChannelPool:
            return self._pool

        def get_connection_with_tls_context(
                self, request: requests.PreparedRequest, verify: bool | str | None,
                proxies: Mapping[str, str] | None = None,
                cert: tuple[str, str] | str | None = None) -> ChannelPool:
            return self._pool

        def request_url(self, request: requests.PreparedRequest, proxies: Mapping[str, str] | None) -> str:
            return request.path_url

        def close(self) -> None:
            self._pool.close()
            super().close()

    return ChannelAdapter


def _dropped(sock: Any) -> bool:
    if sock is None:
        return True
    closed = getattr(sock, "closed", None)
    if isinstance(closed, bool):  # paramiko Channel
        return closed or bool(getattr(sock, "eof_received", False))
    return False


# ---- the Engine -------------------------------------------------------------------------------------

class Engine:
    """The few Engine API calls the provider makes, with errors turned into EngineError/NotFound/Conflict.

    Tests substitute a fake with the same methods.
    """

    def __init__(self, api: Any, node: str, endpoint: str, on_close: Callable[[], None] | None = None,
                 link: _SSHLink | None = None):
        self.api = api
        self.node = node
        self.endpoint = endpoint
        self._on_close = on_close
        self.link = link  # the node's SSH connection (None: not reached over SSH)
        self.version_info: dict[str, Any] = {}
        self.stalled: str | None = None  # set when a request got no answer in time: later ones fail at once

    # errors
    def _call(self, fn: Callable[[], Any]) -> Any:
        if self.stalled is not None:
            raise EngineError(self.stalled, stalled=True)
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - translated below, or re-raised as it is
            err = self._translate(e)
            if err is None:
                raise
        # raised outside the handler: the EngineError carries no context, so nothing keeps the failed request's
        # frames (and the dead channel's file objects) alive after it is handled
        raise err

    def _translate(self, e: Exception) -> EngineError | None:
        import docker.errors
        import requests

        if isinstance(e, docker.errors.NotFound):
            return NotFound(_explain(e), 404)
        if isinstance(e, docker.errors.APIError):
            status = e.status_code
            if status == 409:
                return Conflict(_explain(e), 409)
            return EngineError(_explain(e), status)
        if isinstance(e, docker.errors.DockerException):
            return EngineError(str(e))
        if isinstance(e, (requests.RequestException, OSError, EOFError)):
            if _timed_out(e):
                timeout = getattr(self.api, "timeout", None)
                within = f" within {timeout:g} s" if isinstance(timeout, (int, float)) else " in time"
                self.stalled = f"Docker on node.{self.node} did not answer{within} ({self.endpoint})"
                return EngineError(self.stalled, stalled=True)
            return EngineError(f"connection to the Docker Engine of node {self.node} failed: {e}")
        if type(e).__module__.startswith("paramiko"):  # SSHException, ChannelException and friends
            return EngineError(f"SSH channel to node {self.node} failed: {e!r}")
        return None

    # calls
    def version(self) -> dict[str, Any]:
        return cast("dict[str, Any]", self._call(lambda: self.api.version(api_version=False)))

    def info(self) -> dict[str, Any]:
        return cast("dict[str, Any]", self._call(self.api.info))

    def list_containers(self, labels: Iterable[str]) -> list[dict[str, Any]]:
        return cast("list[dict[str, Any]]",
                    self._call(lambda: self.api.containers(all=True, filters={"label": list(labels)})))

    def create(self, config: dict[str, Any], name: str) -> str:
        return cast(str, self._call(lambda: self.api.create_container_from_config(config, name=name))["Id"])

    def start(self, cid: str) -> None:
        self._call(lambda: self.api.start(cid))

    def inspect(self, cid: str) -> dict[str, Any]:
        return cast("dict[str, Any]", self._call(lambda: self.api.inspect_container(cid)))

    def stats(self, cid: str) -> dict[str, Any]:
        """``GET /containers/{cid}/stats?stream=false``: one document with both samples (``precpu_stats``
        filled; the engine takes 1-2 s for it), see :mod:`.stats`. docker-py refuses ``decode=True`` without
        streaming: with ``stream=False`` it returns the decoded document."""
        return cast("dict[str, Any]", self._call(lambda: self.api.stats(cid, stream=False)))

    def remove(self, cid: str) -> None:
        try:
            self._call(lambda: self.api.remove_container(cid, force=True, v=True))
        except NotFound:
            pass

    def update(self, cid: str, body: dict[str, Any]) -> None:
        def call() -> Any:
            res = self.api._post_json(self.api._url("/containers/{0}/update", cid), data=body)
            return self.api._result(res, True)
        self._call(call)

    def rename(self, cid: str, name: str) -> None:
        self._call(lambda: self.api.rename(cid, name))

    def unpause(self, cid: str) -> None:
        self._call(lambda: self.api.unpause(cid))

    def image_present(self, ref: str) -> bool:
        try:
            self._call(lambda: self.api.inspect_image(ref))
            return True
        except NotFound:
            return False

    def import_image(self, data: bytes, repository: str, tag: str, changes: list[str]) -> None:
        """``docker import`` of an in-memory tar (``POST /images/create?fromSrc=-``), within the API timeout
        (docker-py's own ``import_image_from_data`` waits forever)."""
        def call() -> Any:
            res = self.api._post(self.api._url("/images/create"), data=data,
                                 params={"fromSrc": "-", "repo": repository, "tag": tag, "changes": changes},
                                 headers={"Content-Type": "application/tar"}, timeout=self.api.timeout)
            return self.api._result(res)
        self._call(call)

    def pull(self, ref: str) -> None:
        repo, tag = _split_ref(ref)

        def call() -> None:
            for event in self.api.pull(repo, tag=tag, stream=True, decode=True):
                if isinstance(event, dict) and event.get("error"):
                    raise EngineError(f'pulling "{ref}" failed: {event["error"]}')
        self._call(call)

    # the node itself (commands) and Docker networks
    def host(self, become: bool = False) -> Host | None:
        """Commands on the node over its SSH connection (through ``sudo -n`` when ``become``); None when the
        node is not reached over SSH (tcp://, http://, a local unix:// socket): orch runs no commands there."""
        if self.link is None:
            return None
        from .hostexec import SSHHost

        return SSHHost(self.link, self.node, become)

    def put_archive(self, cid: str, path: str, data: bytes) -> None:
        """``PUT /containers/{id}/archive``: extract a tar into a container (created or running) at ``path``."""
        self._call(lambda: self.api.put_archive(cid, path, data))

    def create_volume(self, name: str, driver_opts: Mapping[str, str], labels: Mapping[str, str],
                      driver: str = "local") -> None:
        """``POST /volumes/create``; an existing volume of that name is kept as it is (Docker's rule)."""
        self._call(lambda: self.api.create_volume(name, driver, dict(driver_opts), dict(labels)))

    def volumes(self, label: str) -> list[dict[str, Any]]:
        """``GET /volumes`` filtered by a label."""
        found = self._call(lambda: self.api.volumes(filters={"label": [label]}))
        return list((found or {}).get("Volumes") or [])

    def remove_volume(self, name: str) -> None:
        try:
            self._call(lambda: self.api.remove_volume(name, force=True))
        except NotFound:
            pass

    def networks(self, label: str) -> list[dict[str, Any]]:
        """``GET /networks`` filtered by a label (``KEY`` or ``KEY=VALUE``)."""
        return cast("list[dict[str, Any]]", self._call(lambda: self.api.networks(filters={"label": [label]})))

    def create_network(self, name: str, body: Mapping[str, Any]) -> str:
        """``POST /networks/create`` with ``body`` (the API's NetworkCreate fields but Name); returns its id."""
        def call() -> Any:
            res = self.api._post_json(self.api._url("/networks/create"), data={"Name": name, **body})
            return self.api._result(res, True)
        return cast(str, self._call(call)["Id"])

    def inspect_network(self, nid: str) -> dict[str, Any]:
        return cast("dict[str, Any]", self._call(lambda: self.api.inspect_network(nid)))

    def remove_network(self, nid: str) -> None:
        try:
            self._call(lambda: self.api.remove_network(nid))
        except NotFound:
            pass

    def close(self) -> None:
        try:
            self.api.close()
        finally:
            self.link = None  # no reference left to the closed connection: collected now, not at exit
            if self._on_close:
                self._on_close()


def _timed_out(e: BaseException) -> bool:
    """A request that got no answer in time (requests wraps urllib3's ReadTimeoutError in several ways)."""
    import requests
    import urllib3.exceptions

    seen: set[int] = set()
    todo: list[Any] = [e]
    while todo:
        x = todo.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)):
            return True
        todo += [x.__cause__, x.__context__, *[a for a in getattr(x, "args", ()) if isinstance(a, BaseException)],
                 getattr(x, "reason", None)]
    return False


def _explain(e: Any) -> str:
    ex = getattr(e, "explanation", None)
    if isinstance(ex, bytes):
        ex = ex.decode(errors="replace")
    return str(ex or e)


def _split_ref(ref: str) -> tuple[str, str | None]:
    if "@" in ref:
        return ref, None
    name, sep, tag = ref.rpartition(":")
    if sep and "/" not in tag:
        return name, tag
    return ref, "latest"


def _version_tuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in v.split("."))
    except ValueError:
        return (0,)


def negotiate(api: Any, node: str, endpoint: str, info: dict[str, Any]) -> str:
    """The API version to speak: the engine's, capped at docker-py's, at least MIN_API_VERSION."""
    import docker.constants

    server = str(info.get("ApiVersion") or "")
    if not server or _version_tuple(server) < _version_tuple(MIN_API_VERSION):
        raise NodeError(node, "Docker Engine too old",
                        f"{endpoint} speaks Docker API {server or '(unknown)'} (Docker "
                        f"{info.get('Version', '?')}); orch needs API {MIN_API_VERSION} (Docker 17.06) or newer.",
                        hint="upgrade Docker on the node", kind="too_old")
    ours = docker.constants.DEFAULT_DOCKER_API_VERSION
    return server if _version_tuple(server) <= _version_tuple(ours) else ours


# ---- connecting ---------------------------------------------------------------------------------------

@dataclass
class _SSHLink:
    """The one SSH connection of a node; reconnects once if it dropped."""

    settings: NodeSettings
    endpoint: Endpoint
    timeout: float
    client: paramiko.SSHClient | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    streamlocal: bool = True  # False once sshd refused a socket channel: dial-stdio from then on

    def transport(self) -> paramiko.Transport:
        with self.lock:
            t = self.client.get_transport() if self.client is not None else None
            if t is None or not t.is_active():
                if self.client is not None:
                    self.client.close()
                self.client = open_ssh(self.settings, self.endpoint, self.timeout)
                t = self.client.get_transport()
            assert t is not None  # open_ssh returns a connected client
            return t

    def channel(self, command: str, api_timeout: float) -> paramiko.Channel:
        t = self.transport()
        if self.streamlocal and self.endpoint.remote_path:
            try:
                ch = t.open_channel(STREAMLOCAL, timeout=self.timeout)
                ch.settimeout(api_timeout)
                return ch
            except _paramiko().ChannelException:  # AllowStreamLocalForwarding no, or no such socket
                self.streamlocal = False
        ch = t.open_session(timeout=self.timeout)
        ch.settimeout(api_timeout)
        ch.exec_command(command)
        return ch

    def run(self, command: str, timeout: float | None = None) -> tuple[int, str, str]:
        """Run a command on the node (fixed strings and quoted values only); returns (status, out, err)."""
        ch = self.transport().open_session(timeout=self.timeout)
        try:
            ch.settimeout(self.timeout if timeout is None else timeout)
            ch.exec_command(command)
            # closed here, not by the garbage collector: a channel file collected at interpreter exit, after its
            # buffers, prints "Exception ignored in BufferedFile.__del__"
            with ch.makefile("rb") as f:
                out = f.read().decode(errors="replace")
            with ch.makefile_stderr("rb") as f:
                err = f.read().decode(errors="replace")
            return ch.recv_exit_status(), out, err
        finally:
            ch.close()

    def exec(self, command: str, stdin: bytes | None = None, timeout: float | None = None) -> tuple[int, bytes, bytes]:
        """Run ``command`` (an SSH exec request: fixed strings and quoted values only, see hostexec.SSHHost)
        with ``stdin`` written to it and closed; returns (status, stdout, stderr). A command that does not
        finish in ``timeout`` raises TimeoutError."""
        from .hostexec import read_channel

        ch = self.transport().open_session(timeout=self.timeout)
        try:
            ch.settimeout(self.timeout if timeout is None else timeout)
            ch.exec_command(command)
            return read_channel(ch, stdin)
        finally:
            ch.close()

    def close(self) -> None:
        with self.lock:
            if self.client is not None:
                self.client.close()
                self.client = None


def connect(settings: NodeSettings, max_channels: int = DEFAULT_MAX_CHANNELS,
            timeout: float | None = None, api_timeout: float | None = None) -> Engine:
    """Connect to a node's engine (one SSH connection, a pool of at most ``max_channels`` channels) and
    check it: reachable, trusted, Docker present, API new enough. Raises NodeError.

    ``timeout`` (default CONNECT_TIMEOUT) bounds each step of connecting, the engine's first answer included;
    ``api_timeout`` (default API_TIMEOUT) each later request."""
    import docker

    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    api_timeout = API_TIMEOUT if api_timeout is None else api_timeout
    ep = settings.endpoint()
    link: _SSHLink | None = None
    if ep.kind == "ssh":
        link = _SSHLink(settings, ep, timeout)
        link.transport()  # connect now: unreachable host, refused key, failed auth surface here

        def opener() -> socket.socket | paramiko.Channel:
            return link.channel(ep.dial_command(), api_timeout)
    elif ep.kind == "unix":
        if not os.path.exists(ep.path or ""):
            raise NodeError(settings.name, "Docker socket not found", f"{ep.path} does not exist.",
                            hint="is Docker running? check docker_host", kind="unreachable")

        def opener() -> socket.socket | paramiko.Channel:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(api_timeout)
            s.connect(cast(str, ep.path))  # checked above
            return s
    else:
        def opener() -> socket.socket | paramiko.Channel:
            s = socket.create_connection((ep.host, ep.port), timeout=timeout)
            s.settimeout(api_timeout)
            return s

    adapter_cls = _http_classes()
    # timeout: any number works (requests'), the stub says int
    api = docker.APIClient(base_url="unix:///var/run/docker.sock", version=MIN_API_VERSION,
                           timeout=api_timeout)  # type: ignore[arg-type]
    api.mount("http+docker://", adapter_cls(opener, api_timeout, max_channels))
    api.base_url = "http+docker://localhost"
    # requests would look up proxies (all of os.environ, twice) and ~/.netrc for every request: none applies
    # to a channel to the node's engine
    api.trust_env = False
    where = ep.describe() + (f" (socket {ep.remote_path} on the node)" if ep.remote_path else "")
    engine = Engine(api, settings.name, where, on_close=link.close if link else None, link=link)
    api.timeout = timeout  # type: ignore[assignment]  # the first answer is part of connecting (any number works)
    try:
        info = engine.version()
    except EngineError as e:
        if e.stalled:
            engine.close()
            raise NodeError(settings.name, "Docker not answering",
                            f"{e}: the endpoint accepted the connection but sent no reply. orch does not try this "
                            "node again during this run.",
                            hint="check that Docker runs on the node and is not hung (docker info there), and "
                                 "that docker_host names its socket", kind="stalled") from None
        detail = _diagnose(link, ep) if link is not None else ""
        engine.close()
        raise NodeError(settings.name, "Docker Engine not reachable",
                        f"{ep.describe()}: {detail or e}",
                        hint="install Docker on the node (the docker CLI is needed for `docker system "
                             "dial-stdio`) and check that the SSH user may use it" if link else
                             "is Docker running? check docker_host", kind="no_docker") from None
    try:
        api._version = negotiate(api, settings.name, ep.describe(), info)  # type: ignore[attr-defined]
    except NodeError:
        engine.close()
        raise
    api.timeout = api_timeout  # type: ignore[assignment]  # requests takes any number; the stub says int
    engine.version_info = info
    return engine


def _diagnose(link: _SSHLink, ep: Endpoint) -> str:
    """Why ``docker system dial-stdio`` failed on the node, in the node's own words."""
    try:
        status, out, err = link.run(ep.dial_command("version --format '{{.Server.APIVersion}}'"))
    except Exception as e:  # noqa: BLE001 - diagnosis must not hide the first failure
        return f"the API request failed and running docker on the node failed too ({e})"
    text = (err.strip() or out.strip()).splitlines()
    msg = text[-1] if text else ""
    if status == 127:
        return f"the docker CLI is not installed on the node ({msg or 'command not found'})"
    if status != 0:
        return f"docker on the node failed (exit {status}): {msg}"
    return f"docker works on the node (API {out.strip()}) but `docker system dial-stdio` failed"


# what a node's connection depends on: name, address, port, user, identity_file, known_hosts, docker_host
_NodeKey = tuple[str, str | None, int, str, str | None, str | None, str | None]


class Connections:
    """The engines of the nodes used in one orch run, one per node, connected on first use.

    A node that failed to connect keeps failing for the rest of the run without new attempts, so an
    unreachable node costs one timeout, not one per pod.
    """

    def __init__(self, factory: Callable[[NodeSettings], Engine] | None = None,
                 max_channels: int = DEFAULT_MAX_CHANNELS):
        self._factory = factory or (lambda s: connect(s, max_channels))
        self._engines: dict[_NodeKey, Engine] = {}
        self._failed: dict[_NodeKey, NodeError] = {}
        self._locks: dict[_NodeKey, threading.Lock] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(s: NodeSettings) -> _NodeKey:
        return (s.name, s.address, s.port, s.user, s.identity_file, s.known_hosts, s.docker_host)

    def engine(self, settings: NodeSettings) -> Engine:
        key = self._key(settings)
        with self._lock:
            if key in self._engines:
                return self._engines[key]
            if key in self._failed:
                raise self._failed[key]
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # one connection attempt per node, even with many pods asking at once
            with self._lock:
                if key in self._engines:
                    return self._engines[key]
                if key in self._failed:
                    raise self._failed[key]
            try:
                eng = self._factory(settings)
            except NodeError as e:
                # kept for the rest of the run without what it was raised from: the chained exceptions' frames
                # would keep the dead connection's objects (paramiko's channel files) alive until interpreter
                # exit, whose collection then prints "Exception ignored in BufferedFile.__del__"
                e.__context__ = e.__cause__ = None
                with self._lock:
                    self._failed[key] = e
                raise e.with_traceback(None) from None
            with self._lock:
                self._engines[key] = eng
            return eng

    def forget_failures(self) -> None:
        with self._lock:
            self._failed.clear()

    def close(self) -> None:
        with self._lock:
            engines = list(self._engines.values())
            self._engines.clear()
            self._failed.clear()
        for e in engines:
            try:
                e.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
