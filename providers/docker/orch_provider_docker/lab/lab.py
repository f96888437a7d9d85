"""The local multi-node lab: N Docker hosts as network namespaces on this machine.

Node ``nI`` (I = 1..N, N <= 15) is a network namespace with

* a veth pair: ``vnI`` on the bridge ``orchlab0`` (198.18.0.1/24, root namespace) and ``eth0``
  198.18.0.(10+I)/24 inside, default route via 198.18.0.1;
* its own ``dockerd`` (started with ``nsenter --net=`` and ``setsid``, never ``ip netns exec``,
  which remounts /sys and loses the cgroup mounts), with its own data-root, exec-root, socket,
  pid file, ``--bip 198.19.I.1/24`` and ``--default-address-pool base=198.19.(16+4(I-1)).0/22,size=24``
  (all below 198.19.76.0: orch's default pod range 198.19.128.0/17 stays free);
* ``net.ipv4.ip_forward=1`` and ``net.bridge.bridge-nf-call-iptables=1`` (``br_netfilter``), set in the
  node's namespace (they are per network namespace);
* its own ``sshd`` (``ip netns exec nI sshd -f CONFIG``) on 198.18.0.(10+I):22, root login by key
  only, its own host key, ``SetEnv DOCKER_HOST=unix://DIR/nI/docker.sock``, stock session limits;
* the base image ``orch/busybox:test``, imported from Debian's busybox-static (never pulled).

The pod network between the nodes (the ``orch`` bridge network, routes, nftables and iptables rules) is
orch's own doing, as on any user's hosts (see orch_provider_docker.podnet); the lab adds none. ``up``
removes the routes and rules that older labs added for it.

``up`` builds or repairs all of it, idempotently, and writes ``DIR/nodes.orch`` (the nodes as orch
configuration), ``DIR/known_hosts`` and the client key ``DIR/ssh/client``. Every failure is a
:class:`LabError` carrying a :class:`~orchdsl.diagnostics.Diagnostic`.

Only loopback, 198.18.0.0/24 and 198.19.0.0/16 are used. Every process the lab starts is found again
by its pid file *and* its command line (which names this lab's directory), and only those are ever
signalled.
"""

from __future__ import annotations

import fcntl
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from orchdsl.sdk import Diagnostic

from .rootfs import IMAGE, IMAGE_CMD, build_rootfs, find_busybox, is_static_elf, rootfs_tar

BRIDGE = "orchlab0"
BRIDGE_IP = "198.18.0.1"
BRIDGE_MAC = "02:00:c6:12:00:01"  # fixed: a bridge otherwise takes its lowest port's MAC, which changes
HOST_NET = "198.18.0.0/24"
POD_NET = "198.19.0.0/16"
ORCH_POD_CIDR = "198.19.128.0/17"  # orch's default pod range: no lab network may use it
# what older labs added for pod-to-pod traffic (orch does that itself now): removed by `up`
OLD_POD_RULES = (("filter", "DOCKER-USER", ("-s", POD_NET, "-d", POD_NET, "-j", "ACCEPT")),
                 ("nat", "POSTROUTING", ("-s", POD_NET, "-d", POD_NET, "-j", "RETURN")))
BRIDGE_NF = "/proc/sys/net/bridge/bridge-nf-call-iptables"
MAX_NODES = 15
DEFAULT_NODES = 3
DEFAULT_DIR = "/tmp/orch-lab"
NETNS_DIR = Path("/var/run/netns")
LOCK_FILE = Path("/run/orch-lab.lock")
APT_PACKAGES = ("docker.io", "openssh-server", "busybox-static", "iptables", "iproute2", "nftables", "conntrack")
SSHD = "/usr/sbin/sshd"
# `ip netns exec` gives its command a fresh /sys (the namespace's network devices) without the cgroup mounts a
# real host has; sshd's sessions (orch's host commands) then see no container cgroups. Mounted again, read-only,
# in that mount namespace only, before sshd starts: each v1 controller alone or as the host combines them, or v2.
SSHD_WITH_CGROUPS = r"""if mount -t tmpfs -o mode=755 orch-lab-cgroup /sys/fs/cgroup 2>/dev/null; then
  for c in cpu cpuacct cpu,cpuacct memory; do
    mkdir -p "/sys/fs/cgroup/$c" && mount -t cgroup -o "ro,$c" cgroup "/sys/fs/cgroup/$c" 2>/dev/null ||
      rmdir "/sys/fs/cgroup/$c"
  done
  if ! ls /sys/fs/cgroup | grep -q .; then mount -t cgroup2 -o ro cgroup2 /sys/fs/cgroup 2>/dev/null; fi
fi
exec "$@"
"""
# (binary, Debian package providing it)
_BINARIES = (("dockerd", "docker.io"), ("docker", "docker.io"), (SSHD, "openssh-server"),
             ("iptables", "iptables"), ("ip", "iproute2"), ("nft", "nftables"), ("conntrack", "conntrack"),
             ("nsenter", "util-linux"),
             ("setsid", "util-linux"), ("umount", "mount"))
_SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_MAX_SOCKET_PATH = 107  # sun_path, less the terminating NUL
DOCKERD_START_TIMEOUT = 90.0
SSHD_START_TIMEOUT = 15.0

Log = Callable[[str], None]


# ---- addresses ------------------------------------------------------------------------------------

def node_name(i: int) -> str:
    return f"n{i}"


def node_address(i: int) -> str:
    return f"198.18.0.{10 + i}"


def node_mac(i: int) -> str:
    """A fixed, locally administered MAC for node i's eth0 (02:00 + its IPv4 address): a rebuilt node keeps
    its MAC, so the other nodes' and the bridge's neighbour caches stay right."""
    return "02:00:c6:12:00:%02x" % (10 + i)


def node_bip(i: int) -> str:
    """The node's docker0 address (its default bridge network is 198.19.I.0/24)."""
    return f"198.19.{i}.1/24"


def node_bridge_net(i: int) -> str:
    return f"198.19.{i}.0/24"


def node_pool(i: int) -> str:
    """The node's address pool for user-defined Docker networks: a /22 (four /24 networks) above the
    bridges' 198.19.0.0/20, all of them below orch's default pod range 198.19.128.0/17."""
    return f"198.19.{16 + 4 * (i - 1)}.0/22"


def default_dir() -> Path:
    return Path(os.environ.get("ORCH_LAB_DIR") or DEFAULT_DIR)


def check_address_plan(n: int) -> None:
    """Every node's bridge /24 and pool /22 lie in 198.19.0.0/16 outside orch's default pod range
    198.19.128.0/17, and are pairwise disjoint."""
    import ipaddress

    if not 1 <= n <= MAX_NODES:
        raise LabError(Diagnostic.error(
            "Invalid number of lab nodes", f"{n} node(s) requested; the lab has 1 to {MAX_NODES}.",
            hint=f"198.19.0.0/16 holds one /24 bridge and one /22 address pool per node below orch's pod range "
                 f"{ORCH_POD_CIDR}: use --nodes 1..{MAX_NODES}"))
    pods = ipaddress.IPv4Network(POD_NET)
    orch = ipaddress.IPv4Network(ORCH_POD_CIDR)
    nets = []
    for i in range(1, n + 1):
        nets.append((f"bip({node_name(i)})", ipaddress.IPv4Network(node_bridge_net(i))))
        nets.append((f"pool({node_name(i)})", ipaddress.IPv4Network(node_pool(i))))
    for k, (a, na) in enumerate(nets):
        if not na.subnet_of(pods) or na.overlaps(orch):  # pragma: no cover - guarded by MAX_NODES
            raise LabError(Diagnostic.error("Lab address plan error",
                                            f"{a}={na} leaves {POD_NET} or overlaps {ORCH_POD_CIDR}."))
        for b, nb in nets[k + 1:]:
            if na.overlaps(nb):  # pragma: no cover - guarded by MAX_NODES
                raise LabError(Diagnostic.error("Lab address plan error", f"{a}={na} overlaps {b}={nb}."))


# ---- results ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NodeInfo:
    name: str
    address: str
    socket_path: str

    @property
    def docker_host(self) -> str:
        """The node's engine on this machine (no SSH)."""
        return f"unix://{self.socket_path}"


@dataclass
class LabInfo:
    nodes: list[NodeInfo]
    nodes_file: str
    known_hosts: str
    identity_file: str
    dir: str = ""
    changes: list[str] = field(default_factory=list)  # what this `up` did; empty when it found all in place
    seconds: float = 0.0


@dataclass
class NodeStatus:
    name: str
    address: str
    netns: bool
    dockerd_pid: int | None
    dockerd_alive: bool  # process alive and the engine answers on its socket
    sshd_pid: int | None
    sshd_alive: bool  # process alive and accepting connections
    containers: int | None
    image: bool
    expected: bool = True  # part of the lab's N nodes (False: a leftover above N)

    @property
    def healthy(self) -> bool:
        return self.netns and self.dockerd_alive and self.sshd_alive and self.image


@dataclass
class LabStatus:
    dir: str
    node_count: int  # N of the last `up` (0: none recorded)
    bridge: bool
    nodes: list[NodeStatus]

    @property
    def healthy(self) -> bool:
        expected = [s for s in self.nodes if s.expected]
        return self.node_count > 0 and self.bridge and len(expected) == self.node_count \
            and all(s.healthy for s in expected)

    def to_json(self) -> dict[str, Any]:
        return {"dir": self.dir, "node_count": self.node_count, "bridge": self.bridge,
                "healthy": self.healthy, "nodes": [dict(asdict(s), healthy=s.healthy) for s in self.nodes]}


class LabError(Exception):
    """A lab operation failed; ``diagnostic`` says what, where and what to do."""

    def __init__(self, diagnostic: Diagnostic):
        super().__init__(diagnostic.summary + (f": {diagnostic.detail}" if diagnostic.detail else ""))
        self.diagnostic = diagnostic


# ---- paths --------------------------------------------------------------------------------------------

class _Paths:
    def __init__(self, root: Path):
        self.root = root
        self.ssh = root / "ssh"
        self.client = self.ssh / "client"
        self.client_pub = self.ssh / "client.pub"
        self.authorized_keys = self.ssh / "authorized_keys"
        self.known_hosts = root / "known_hosts"
        self.nodes_file = root / "nodes.orch"
        self.meta = root / "lab.json"
        self.rootfs = root / "rootfs"

    def node(self, i: int) -> Path:
        return self.root / node_name(i)

    def sock(self, i: int) -> Path:
        return self.node(i) / "docker.sock"

    def docker_pid(self, i: int) -> Path:
        return self.node(i) / "docker.pid"

    def dockerd_log(self, i: int) -> Path:
        return self.node(i) / "dockerd.log"

    def daemon_json(self, i: int) -> Path:
        return self.node(i) / "daemon.json"

    def sshd_config(self, i: int) -> Path:
        return self.node(i) / "sshd_config"

    def sshd_pid(self, i: int) -> Path:
        return self.node(i) / "sshd.pid"

    def sshd_log(self, i: int) -> Path:
        return self.node(i) / "sshd.log"

    def hostkey(self, i: int) -> Path:
        return self.node(i) / "ssh_host_ed25519_key"


def _netns_path(i: int) -> Path:
    return NETNS_DIR / node_name(i)


def _netns_exists(i: int) -> bool:
    return os.path.ismount(_netns_path(i))


def _existing_netns() -> list[int]:
    try:
        names = os.listdir(NETNS_DIR)
    except OSError:
        return []
    return sorted(int(m.group(1)) for m in (re.fullmatch(r"n(\d+)", x) for x in names) if m)


# ---- processes -------------------------------------------------------------------------------------

def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _argv(pid: int) -> list[str]:
    """The command line of ``pid``, argument by argument ([] when it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]]


def _pid_from_file(pidfile: Path, marker: str) -> int | None:
    """The pid in ``pidfile`` if that process is alive and its command line contains ``marker``."""
    try:
        text = pidfile.read_text().strip()
    except OSError:
        return None
    if not text.isdigit():
        return None
    pid = int(text)
    cmd = _cmdline(pid)
    if not cmd or marker not in cmd:
        return None
    try:
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return None
    except (OSError, IndexError):
        return None
    return pid


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _netns_inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _procs_in_netns(ino: int) -> list[int]:
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            link = os.readlink(f"/proc/{d}/ns/net")
        except OSError:
            continue
        if link == f"net:[{ino}]":
            pids.append(int(d))
    return pids


def _in_netns(pid: int, i: int) -> bool:
    """Whether process ``pid`` lives in node i's current network namespace (not in an older, deleted one)."""
    ino = _netns_inode(_netns_path(i))
    try:
        return ino is not None and os.readlink(f"/proc/{pid}/ns/net") == f"net:[{ino}]"
    except OSError:
        return False


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _terminate(pid: int, marker: str, timeout: float) -> bool:
    """SIGTERM ``pid`` (if its command line still contains ``marker``), SIGKILL after ``timeout``.
    Returns True if it had to be killed."""
    if marker not in _cmdline(pid):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return False
        time.sleep(0.1)
    if marker in _cmdline(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        for _ in range(50):
            if not _alive(pid):
                break
            time.sleep(0.1)
    return True


# dockerd children started by this process (kept referenced so they are never reported as leaked)
_DAEMONS: list[subprocess.Popen[bytes]] = []


# ---- the docker engine API over the node's unix socket ----------------------------------------------

class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self._path)
        except OSError:
            s.close()
            raise
        self.sock = s


def _api(sock: Path, method: str, url: str, body: bytes | None = None, headers: dict[str, Any] | None = None,
         timeout: float = 10.0) -> tuple[int, bytes]:
    conn = _UnixHTTPConnection(str(sock), timeout)
    try:
        conn.request(method, url, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def _ping(sock: Path, timeout: float = 2.0) -> bool:
    try:
        status, body = _api(sock, "GET", "/_ping", timeout=timeout)
    except (OSError, http.client.HTTPException):
        return False
    return status == 200 and body.strip() == b"OK"


def _image_present(sock: Path, timeout: float = 5.0) -> bool:
    status, _ = _api(sock, "GET", f"/images/{urllib.parse.quote(IMAGE, safe='')}/json", timeout=timeout)
    return status == 200


def _container_count(sock: Path, timeout: float = 5.0) -> int:
    status, body = _api(sock, "GET", "/containers/json?all=1", timeout=timeout)
    if status != 200:
        raise OSError(f"GET /containers/json: HTTP {status}")
    return len(json.loads(body))


def _import_image(sock: Path, tar: bytes) -> str | None:
    """``docker import -c 'CMD ["/bin/sh"]' - orch/busybox:test``; returns an error message or None."""
    repo, tag = IMAGE.rsplit(":", 1)
    q = urllib.parse.urlencode({"fromSrc": "-", "repo": repo, "tag": tag, "changes": f"CMD {IMAGE_CMD}"})
    status, body = _api(sock, "POST", f"/images/create?{q}", body=tar,
                        headers={"Content-Type": "application/x-tar"}, timeout=120)
    if status != 200:
        return f"HTTP {status}: {body.decode(errors='replace').strip()}"
    for line in body.decode(errors="replace").splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if isinstance(msg, dict) and msg.get("error"):
            return str(msg["error"])
    return None


# ---- the lab --------------------------------------------------------------------------------------------

def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT", "NOTIFY_SOCKET")}
    path = env.get("PATH", "")
    env["PATH"] = ":".join(dict.fromkeys([p for p in path.split(":") if p] + _SBIN_PATH.split(":")))
    env.setdefault("LC_ALL", "C")
    return env


def _which(binary: str) -> str | None:
    if binary.startswith("/"):
        return binary if os.access(binary, os.X_OK) else None
    return shutil.which(binary, path=_env()["PATH"])


def _write_if_changed(path: Path, text: str, mode: int = 0o644) -> bool:
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return True


def _hcl_string(s: str) -> str:
    out = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    out = out.replace("${", "$${").replace("%{", "%%{")
    return f'"{out}"'


def _what(argv: Sequence[str]) -> str:
    """The program a command line runs, past nsenter/setsid/`ip netns exec` (``ip`` with its object and verb)."""
    a = list(argv)
    while a:
        if a[0] in ("nsenter", "setsid"):
            a = a[1:]
            while a and a[0].startswith("-"):
                a = a[1:]
        elif a[:3] == ["ip", "netns", "exec"]:
            a = a[4:]
        else:
            break
    if not a:
        return " ".join(argv[:1])
    name = Path(a[0]).name
    if name == "ip":
        words = [x for x in a[1:] if not x.startswith("-") and not re.fullmatch(r"n\d+", x)]
        return " ".join([name, *words[:2]])
    return name


def _need_root() -> None:
    if os.geteuid() != 0:
        raise LabError(Diagnostic.error(
            "orch lab needs root: it creates network namespaces and starts dockerd",
            f"Running as uid {os.geteuid()}. The lab creates a bridge, network namespaces and veth pairs, "
            "starts one dockerd and one sshd per node, and changes iptables rules.",
            hint="run it as root, e.g. `sudo orch lab up`"))


def missing_packages() -> list[str]:
    """Debian packages the lab needs that are not installed (judged by their binaries)."""
    pkgs = [pkg for binary, pkg in _BINARIES if _which(binary) is None]
    bb = find_busybox()
    if bb is None or not is_static_elf(bb):
        pkgs.append("busybox-static")
    return list(dict.fromkeys(pkgs))


def _install_packages(pkgs: Sequence[str], log: Log) -> None:
    env = dict(_env(), DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *pkgs]):
        log(f"running {shlex.join(argv)}")
        try:
            p = subprocess.run(argv, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
                               check=False)
        except FileNotFoundError:
            raise LabError(Diagnostic.error(
                "Cannot install the lab's packages",
                "apt-get was not found: this machine is not Debian-like.",
                hint=f"install the equivalents of: {' '.join(pkgs)}")) from None
        if p.returncode != 0:
            raise LabError(Diagnostic.error(
                "Installing the lab's packages failed",
                f"Command: {shlex.join(argv)}\nExit status: {p.returncode}\n"
                f"{(p.stderr or p.stdout).strip()[-3000:]}",
                hint="check the package sources (`apt-get update`), then run `orch lab up --install` again"))


def ensure_packages(install: bool = False, log: Log | None = None) -> None:
    log = log or (lambda _m: None)
    missing = missing_packages()
    if not missing:
        return
    if install or os.environ.get("ORCH_LAB_INSTALL") == "1":
        _install_packages(missing, log)
        missing = missing_packages()
        if not missing:
            return
    raise LabError(Diagnostic.error(
        "The lab needs packages that are not installed",
        f"Missing: {', '.join(missing)}.",
        hint=f"apt-get update && apt-get install -y {' '.join(APT_PACKAGES)}   "
             "(or run `orch lab up --install`, or set ORCH_LAB_INSTALL=1)"))


class _Lock:
    """One lab command at a time on this machine (the bridge and the namespaces are global)."""

    def __init__(self, log: Log, timeout: float = 600.0):
        self.log, self.timeout, self.fd = log, timeout, -1

    def __enter__(self) -> _Lock:  # noqa: PYI034
        self.fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        told = False
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self.fd)
                    raise LabError(Diagnostic.error(
                        "Another orch lab command is running", f"{LOCK_FILE} is locked.",
                        hint="wait for it to finish, then try again")) from None
                if not told:
                    self.log(f"waiting for another orch lab command ({LOCK_FILE})")
                    told = True
                time.sleep(0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


class _Lab:
    def __init__(self, root: Path, log: Log | None):
        self.p = _Paths(root)
        self.log: Log = log or (lambda _m: None)
        self.changes: list[str] = []
        self._mu = threading.Lock()
        self.env = _env()

    # -- plumbing
    def changed(self, what: str) -> None:
        with self._mu:
            self.changes.append(what)
        self.log(what)

    def run(self, argv: Sequence[str], node: str | None = None, check: bool = True,
            input: bytes | None = None, timeout: float = 120.0) -> subprocess.CompletedProcess[bytes]:
        try:
            p = subprocess.run(list(argv), capture_output=True, env=self.env, input=input, timeout=timeout,
                               stdin=None if input is not None else subprocess.DEVNULL, check=False)
        except FileNotFoundError:
            raise LabError(Diagnostic.error(
                f"Lab step failed{' on ' + node if node else ''}: {argv[0]} not found",
                f"Command: {shlex.join(argv)}",
                hint=f"apt-get update && apt-get install -y {' '.join(APT_PACKAGES)}")) from None
        except subprocess.TimeoutExpired:
            raise LabError(Diagnostic.error(
                f"Lab step timed out{' on ' + node if node else ''}",
                f"Command: {shlex.join(argv)}\nNo answer after {timeout:.0f} s.")) from None
        if check and p.returncode != 0:
            raise self.step_error(node, argv, p.returncode, p.stderr.decode(errors="replace") or
                                  p.stdout.decode(errors="replace"))
        return p

    @staticmethod
    def step_error(node: str | None, argv: Sequence[str], rc: int | None, stderr: str, more: str = "",
                   hint: str = "") -> LabError:
        where = f" on node {node}" if node else ""
        detail = f"Command: {shlex.join(argv)}"
        if rc is not None:
            detail += f"\nExit status: {rc}"
        detail += "\n" + (stderr.strip()[-3000:] or "(no error output)")
        if more:
            detail += "\n" + more
        return LabError(Diagnostic.error(
            f"Lab step failed{where}: {_what(argv)}", detail,
            hint=hint or "fix the cause, then run `orch lab up` again (it repairs what exists); "
                         "`orch lab down` removes the lab"))

    def out(self, argv: Sequence[str], node: str | None = None) -> str:
        return self.run(argv, node).stdout.decode(errors="replace")

    def ipj(self, args: Sequence[str], i: int | None = None) -> list[dict[str, Any]]:
        argv = ["ip", "-j", *(["-n", node_name(i)] if i else []), *args]
        text = self.out(argv, node_name(i) if i else None).strip()
        return json.loads(text) if text else []

    def nsenter(self, i: int) -> list[str]:
        return ["nsenter", f"--net={_netns_path(i)}"]

    # -- shared files
    def ensure_dirs(self, n: int) -> None:
        longest = str(self.p.node(n) / "exec" / "containerd" / "containerd.sock.ttrpc")
        if len(longest) > _MAX_SOCKET_PATH:
            raise LabError(Diagnostic.error(
                "Lab directory path too long", f"{self.p.root}: dockerd's sockets below it ({longest}) would "
                f"exceed the {_MAX_SOCKET_PATH}-byte limit of unix socket paths.",
                hint="use a shorter --dir (default /tmp/orch-lab)"))
        for d in [self.p.root, self.p.ssh] + [self.p.node(i) for i in range(1, n + 1)]:
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.p.ssh, 0o700)

    def ensure_key(self, key: Path, pub: Path, comment: str) -> str:
        """An ed25519 key pair in OpenSSH format; returns the public key line."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        if key.is_file():
            try:
                private = serialization.load_ssh_private_key(key.read_bytes(), password=None)
            except (ValueError, TypeError):
                private = None
        else:
            private = None
        if private is None:
            private = Ed25519PrivateKey.generate()
            data = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                         serialization.NoEncryption())
            fd = os.open(key.with_name(key.name + ".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(key.with_name(key.name + ".tmp"), key)
            self.changed(f"generated SSH key {key}")
        line = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                 serialization.PublicFormat.OpenSSH).decode() + f" {comment}"
        _write_if_changed(pub, line + "\n")
        if key.stat().st_mode & 0o077:
            os.chmod(key, 0o600)
        return line

    def ensure_client_key(self) -> None:
        line = self.ensure_key(self.p.client, self.p.client_pub, "orch-lab-client")
        if _write_if_changed(self.p.authorized_keys, line + "\n", 0o600):
            self.changed(f"wrote {self.p.authorized_keys}")

    def write_meta(self, n: int) -> None:
        _write_if_changed(self.p.meta, json.dumps({"nodes": n}) + "\n")

    # -- network
    def ensure_bridge(self) -> None:
        links = {x["ifname"]: x for x in self.ipj(["link", "show"])}
        if BRIDGE not in links:
            self.run(["ip", "link", "add", BRIDGE, "address", BRIDGE_MAC, "type", "bridge"])
            self.changed(f"created bridge {BRIDGE}")
            links = {x["ifname"]: x for x in self.ipj(["link", "show"])}
        addrs = self.ipj(["addr", "show", "dev", BRIDGE])
        have = {(a.get("local"), a.get("prefixlen")) for x in addrs for a in x.get("addr_info", [])}
        if (BRIDGE_IP, 24) not in have:
            self.run(["ip", "addr", "add", f"{BRIDGE_IP}/24", "dev", BRIDGE])
            self.changed(f"{BRIDGE}: address {BRIDGE_IP}/24")
        if links[BRIDGE].get("address") != BRIDGE_MAC:
            self.run(["ip", "link", "set", "dev", BRIDGE, "address", BRIDGE_MAC])
            self.changed(f"{BRIDGE}: address {BRIDGE_MAC}")
            self.flush_neighbours(BRIDGE_IP)
        if "UP" not in links[BRIDGE].get("flags", []):
            self.run(["ip", "link", "set", BRIDGE, "up"])
            self.changed(f"{BRIDGE}: up")

    def ensure_netns(self, i: int) -> None:
        name, veth = node_name(i), f"vn{i}"
        path = _netns_path(i)
        if not _netns_exists(i):
            if path.exists():  # a stale name without a namespace behind it
                self.run(["ip", "netns", "delete", name], name, check=False)
                path.unlink(missing_ok=True)
            self.run(["ip", "netns", "add", name], name)
            self.changed(f"{name}: created network namespace")
        links = {x["ifname"]: x for x in self.ipj(["link", "show"])}
        inner = {x["ifname"]: x for x in self.ipj(["link", "show"], i)}
        if veth not in links or "eth0" not in inner:
            if veth in links:
                self.run(["ip", "link", "del", veth], name)
            if "eth0" in inner:
                self.run(["ip", "-n", name, "link", "del", "eth0"], name)
            self.run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0",
                      "address", node_mac(i), "netns", name], name)
            self.changed(f"{name}: created veth {veth} <-> eth0")
            links = {x["ifname"]: x for x in self.ipj(["link", "show"])}
            inner = {x["ifname"]: x for x in self.ipj(["link", "show"], i)}
        if inner["eth0"].get("address") != node_mac(i):
            self.run(["ip", "-n", name, "link", "set", "dev", "eth0", "address", node_mac(i)], name)
            self.changed(f"{name}: eth0 MAC {node_mac(i)}")
            self.flush_neighbours(node_address(i))
        if links[veth].get("master") != BRIDGE:
            self.run(["ip", "link", "set", veth, "master", BRIDGE], name)
            self.changed(f"{name}: {veth} on {BRIDGE}")
        if "UP" not in links[veth].get("flags", []):
            self.run(["ip", "link", "set", veth, "up"], name)
            self.changed(f"{name}: {veth} up")
        for dev in ("lo", "eth0"):
            if "UP" not in inner.get(dev, {}).get("flags", []):
                self.run(["ip", "-n", name, "link", "set", dev, "up"], name)
                self.changed(f"{name}: {dev} up")
        addrs = self.ipj(["addr", "show", "dev", "eth0"], i)
        have = {(a.get("local"), a.get("prefixlen")) for x in addrs for a in x.get("addr_info", [])
                if a.get("family") == "inet"}
        if (node_address(i), 24) not in have:
            self.run(["ip", "-n", name, "addr", "add", f"{node_address(i)}/24", "dev", "eth0"], name)
            self.changed(f"{name}: eth0 {node_address(i)}/24")
        default = self.ipj(["route", "show", "default"], i)
        if not any(r.get("gateway") == BRIDGE_IP and r.get("dev") == "eth0" for r in default):
            self.run(["ip", "-n", name, "route", "replace", "default", "via", BRIDGE_IP, "dev", "eth0"], name)
            self.changed(f"{name}: default route via {BRIDGE_IP}")
        fwd = self.out([*self.nsenter(i), "cat", "/proc/sys/net/ipv4/ip_forward"], name).strip()
        if fwd != "1":
            self.run([*self.nsenter(i), "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], name)
            self.changed(f"{name}: ip_forward=1")
        self.ensure_bridge_nf(i)

    def ensure_bridge_nf(self, i: int) -> None:
        """``net.bridge.bridge-nf-call-iptables=1`` in node i's namespace (per namespace on this kernel):
        without it, traffic between two containers of one node bypasses iptables (policies, services)."""
        name = node_name(i)
        read = [*self.nsenter(i), "cat", BRIDGE_NF]
        p = self.run(read, name, check=False)
        if p.returncode != 0:  # no /proc/sys/net/bridge: br_netfilter is not loaded
            if _which("modprobe") is not None:
                self.run(["modprobe", "br_netfilter"], name, check=False)
                p = self.run(read, name, check=False)
            if p.returncode != 0:
                raise self.step_error(name, read, p.returncode, p.stderr.decode(errors="replace"),
                                      hint="load the br_netfilter kernel module (modprobe br_netfilter; "
                                           "apt-get install kmod), then run `orch lab up` again")
            self.changed("loaded br_netfilter")
        if p.stdout.decode(errors="replace").strip() != "1":
            self.run([*self.nsenter(i), "sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1"], name)
            self.changed(f"{name}: bridge-nf-call-iptables=1")

    def flush_neighbours(self, address: str) -> None:
        """Forget ``address``'s MAC in the root namespace and in every node (it has changed)."""
        self.run(["ip", "neigh", "flush", "to", address], check=False)
        for j in _existing_netns():
            if _netns_exists(j):
                self.run(["ip", "-n", node_name(j), "neigh", "flush", "to", address], check=False)

    def remove_old_routes(self, i: int) -> None:
        """Remove the routes to the other nodes' docker0 networks (198.19.J.0/24 via 198.18.0.(10+J)) that
        older labs added. orch's own routes (``proto 211``, to its pod subnets) are left alone."""
        name = node_name(i)
        for r in self.ipj(["route", "show"], i):
            m = re.fullmatch(r"198\.19\.(\d+)\.0/24", r.get("dst", ""))
            gw = r.get("gateway", "")
            if m and 1 <= int(m.group(1)) <= MAX_NODES and gw.startswith("198.18.0.") \
                    and r.get("protocol", "boot") == "boot":
                self.run(["ip", "-n", name, "route", "del", r["dst"], "via", gw], name)
                self.changed(f"{name}: removed old lab route {r['dst']} via {gw} (orch routes pod subnets now)")

    def _iptables(self, i: int | None, table: str) -> list[str]:
        return [*(self.nsenter(i) if i else []), "iptables", "-w", "-t", table]

    def ensure_rule(self, i: int | None, table: str, chain: str, spec: Sequence[str]) -> None:
        """The rule is present exactly once, first in its chain."""
        node = node_name(i) if i else None
        base = self._iptables(i, table)
        lines = self.out([*base, "-S", chain], node).splitlines()
        rules = [x.strip() for x in lines if x.startswith(f"-A {chain} ")]
        wanted = " ".join(["-A", chain, *spec])
        if rules and rules[0] == wanted and rules.count(wanted) == 1:
            return
        for _ in range(rules.count(wanted)):
            self.run([*base, "-D", chain, *spec], node)
        self.run([*base, "-I", chain, "1", *spec], node)
        self.changed(f"{node or 'root'}: iptables -t {table} {chain} {' '.join(spec)}")

    def delete_rule(self, i: int | None, table: str, chain: str, spec: Sequence[str]) -> bool:
        """Delete every copy of the rule; returns whether there was one."""
        base = self._iptables(i, table)
        found = False
        for _ in range(20):
            if self.run([*base, "-C", chain, *spec], check=False).returncode != 0:
                break
            found = True
            self.run([*base, "-D", chain, *spec], check=False)
        return found

    def remove_old_rules(self, i: int) -> None:
        """Remove the pod-to-pod iptables rules older labs added (orch's ORCH-FORWARD does it now)."""
        name = node_name(i)
        for table, chain, spec in OLD_POD_RULES:
            if self.delete_rule(i, table, chain, spec):
                self.changed(f"{name}: removed old lab rule iptables -t {table} {chain} {' '.join(spec)}")

    # -- dockerd
    def dockerd_pid(self, i: int) -> int | None:
        return _pid_from_file(self.p.docker_pid(i), str(self.p.sock(i)))

    def dockerd_argv(self, i: int) -> list[str]:
        d = self.p.node(i)
        return [*self.nsenter(i), "setsid", "dockerd",
                "--config-file", str(self.p.daemon_json(i)),
                "--data-root", str(d / "data"), "--exec-root", str(d / "exec"),
                "-H", f"unix://{self.p.sock(i)}", "--pidfile", str(self.p.docker_pid(i)),
                "--bip", node_bip(i), "--default-address-pool", f"base={node_pool(i)},size=24",
                "--shutdown-timeout", "3"]

    def foreign_dockerd(self, i: int) -> list[int]:
        """dockerd processes in node i's namespace that are not this lab's."""
        ino = _netns_inode(_netns_path(i))
        if ino is None:
            return []
        own = self.dockerd_pid(i)
        return [p for p in _procs_in_netns(ino) if _comm(p) == "dockerd" and p != own]

    def start_dockerd(self, i: int) -> subprocess.Popen[bytes] | None:
        name = node_name(i)
        pid = self.dockerd_pid(i)
        if pid is not None and not _in_netns(pid, i):
            # the namespace was deleted and made again under it: the engine is unreachable, restart it
            _terminate(pid, str(self.p.sock(i)), 60)
            self.changed(f"{name}: stopped dockerd {pid} (it ran in a deleted network namespace)")
            pid = None
        argv = self.dockerd_argv(i)
        own = argv[argv.index("dockerd"):]
        if pid is not None and _argv(pid) != own:
            # started with other options (an older lab's address pool): they are command-line flags, so only
            # a restart applies them. Its containers stop; they are left as they are.
            killed = _terminate(pid, str(self.p.sock(i)), 60)
            self.changed(f"{name}: {'killed' if killed else 'stopped'} dockerd {pid} (its options changed)")
            pid = None
        if pid is not None:
            return None
        foreign = self.foreign_dockerd(i)
        if foreign:
            raise LabError(Diagnostic.error(
                f"Node {name} is in use by another dockerd",
                f"Network namespace {name} runs dockerd pid(s) {', '.join(map(str, foreign))} that this lab "
                f"({self.p.root}) did not start: {_cmdline(foreign[0])[:300]}",
                hint="another lab (a different --dir, or bench/lab.sh) owns the namespace: "
                     "take that one down first (`orch lab down --dir OTHER` or `lab.sh down`)"))
        for stale in (self.p.docker_pid(i), self.p.sock(i)):
            stale.unlink(missing_ok=True)
        _write_if_changed(self.p.daemon_json(i), "{}\n")
        with open(self.p.dockerd_log(i), "ab") as logf:
            logf.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(argv)}\n".encode())
            logf.flush()
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                        env=self.env, close_fds=True)
            except FileNotFoundError:
                raise LabError(Diagnostic.error(f"Lab step failed on node {name}: nsenter not found",
                                                f"Command: {shlex.join(argv)}")) from None
        _DAEMONS.append(proc)
        self.changed(f"{name}: started dockerd")
        return proc

    def wait_dockerd(self, i: int, proc: subprocess.Popen[bytes] | None) -> None:
        name = node_name(i)
        deadline = time.monotonic() + DOCKERD_START_TIMEOUT
        while time.monotonic() < deadline:
            if _ping(self.p.sock(i)):
                return
            if proc is not None and proc.poll() is not None:
                argv = cast("Sequence[str]", proc.args)  # started from a list of strings
                raise self.step_error(name, argv, proc.returncode, _tail(self.p.dockerd_log(i)),
                                      f"(dockerd exited; log: {self.p.dockerd_log(i)})")
            if proc is None and self.dockerd_pid(i) is None:
                raise self.step_error(name, self.dockerd_argv(i), None, _tail(self.p.dockerd_log(i)),
                                      f"(dockerd is gone; log: {self.p.dockerd_log(i)})")
            time.sleep(0.1)
        raise self.step_error(name, self.dockerd_argv(i), None, _tail(self.p.dockerd_log(i)),
                              f"(dockerd did not answer on {self.p.sock(i)} within "
                              f"{DOCKERD_START_TIMEOUT:.0f} s; log: {self.p.dockerd_log(i)})")

    # -- sshd
    def sshd_config_text(self, i: int) -> str:
        return "\n".join([
            f"# sshd of lab node {node_name(i)}, written by `orch lab up`",
            "# started with the cgroup hierarchies mounted read-only, as a host's shell sees them",
            f"ListenAddress {node_address(i)}",
            "Port 22",
            f"HostKey {self.p.hostkey(i)}",
            f"PidFile {self.p.sshd_pid(i)}",
            f"AuthorizedKeysFile {self.p.authorized_keys}",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            # SHLVL=1: bash then skips ~/.bashrc for the commands sshd runs. root's .bashrc here is the machine's
            # running the lab (developer tooling: ~0.13 s of CPU per command on this one), not a lab node's: a
            # Docker host's root shell starts plainly. docs/lab.md
            f"SetEnv DOCKER_HOST=unix://{self.p.sock(i)} SHLVL=1",
            "",
        ])

    def sshd_pid(self, i: int) -> int | None:
        return _pid_from_file(self.p.sshd_pid(i), str(self.p.sshd_config(i)))

    def ensure_sshd(self, i: int) -> None:
        name = node_name(i)
        self.ensure_key(self.p.hostkey(i), self.p.hostkey(i).with_name(self.p.hostkey(i).name + ".pub"),
                        f"orch-lab-{name}")
        cfg = self.p.sshd_config(i)
        config_changed = _write_if_changed(cfg, self.sshd_config_text(i))
        pid = self.sshd_pid(i)
        if pid is not None and (config_changed or not _in_netns(pid, i)):
            _terminate(pid, str(cfg), 5)
            why = "its config changed" if config_changed else "it ran in a deleted network namespace"
            self.changed(f"{name}: stopped sshd {pid} ({why})")
            pid = None
        if pid is not None:
            return
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.p.sshd_pid(i).unlink(missing_ok=True)
        argv = ["ip", "netns", "exec", name, "sh", "-c", SSHD_WITH_CGROUPS, "sh",
                SSHD, "-f", str(cfg), "-E", str(self.p.sshd_log(i))]
        p = self.run(argv, name, check=False, timeout=30)
        if p.returncode != 0:
            raise self.step_error(name, argv, p.returncode,
                                  (p.stderr.decode(errors="replace") + "\n" + _tail(self.p.sshd_log(i), 8)))
        deadline = time.monotonic() + SSHD_START_TIMEOUT
        while self.sshd_pid(i) is None:
            if time.monotonic() > deadline:
                raise self.step_error(name, argv, None, _tail(self.p.sshd_log(i), 8),
                                      f"(sshd wrote no pid file {self.p.sshd_pid(i)})")
            time.sleep(0.05)
        self.changed(f"{name}: started sshd")

    def wait_sshd(self, i: int, timeout: float = SSHD_START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        err = ""
        while time.monotonic() < deadline:
            ok, err = _ssh_banner(node_address(i))
            if ok:
                return
            time.sleep(0.1)
        raise LabError(Diagnostic.error(
            f"sshd of node {node_name(i)} does not accept connections",
            f"{node_address(i)}:22: {err}\n{_tail(self.p.sshd_log(i), 8)}",
            hint="check the bridge and the node's address (`orch lab status`), then run `orch lab up` again"))

    # -- image
    def ensure_image(self, i: int, tar: Callable[[], bytes]) -> None:
        name = node_name(i)
        try:
            if _image_present(self.p.sock(i)):
                return
            err = _import_image(self.p.sock(i), tar())
        except (OSError, http.client.HTTPException) as e:
            err = str(e)
        if err is None and not _image_present(self.p.sock(i)):
            err = "the import reported no error, but the image is not there"
        if err:
            raise self.step_error(name, ["docker", "-H", f"unix://{self.p.sock(i)}", "import", "-c",
                                         f"CMD {IMAGE_CMD}", "-", IMAGE], None, err)
        self.changed(f"{name}: imported {IMAGE}")

    # -- files for orch
    def write_known_hosts(self, n: int) -> None:
        lines = []
        for i in range(1, n + 1):
            pub = self.p.hostkey(i).with_name(self.p.hostkey(i).name + ".pub").read_text().split()
            lines.append(f"{node_address(i)} {pub[0]} {pub[1]}")
        if _write_if_changed(self.p.known_hosts, "\n".join(lines) + "\n"):
            self.changed(f"wrote {self.p.known_hosts}")

    def nodes_file_text(self, n: int) -> str:
        out = [f"# The lab's nodes, written by `orch lab up` ({self.p.root}).",
               "# Copy this file into a configuration directory (or point orch at this one).",
               "# docker_host names the node's Docker socket: orch's SSH channels go straight to it.", ""]
        for i in range(1, n + 1):
            out += [f"node {_hcl_string(node_name(i))} {{",
                    f"  address       = {_hcl_string(node_address(i))}",
                    f"  user          = {_hcl_string('root')}",
                    f"  identity_file = {_hcl_string(str(self.p.client))}",
                    f"  known_hosts   = {_hcl_string(str(self.p.known_hosts))}",
                    f"  docker_host   = {_hcl_string('unix://' + str(self.p.sock(i)))}",
                    "}", ""]
        return "\n".join(out[:-1]) + "\n"

    def write_nodes_file(self, n: int) -> None:
        if _write_if_changed(self.p.nodes_file, self.nodes_file_text(n)):
            self.changed(f"wrote {self.p.nodes_file}")

    # -- verification over SSH
    def verify_ssh(self, i: int) -> None:
        name = node_name(i)
        cmd = "docker version --format '{{.Server.Version}}'"
        try:
            rc, out, err = ssh_exec(node_address(i), self.p.client, self.p.known_hosts, cmd)
        except Exception as e:  # noqa: BLE001 - paramiko raises many types; all mean "SSH does not work"
            raise LabError(Diagnostic.error(
                f"SSH to lab node {name} failed",
                f"ssh -i {self.p.client} -o UserKnownHostsFile={self.p.known_hosts} root@{node_address(i)} "
                f"{shlex.quote(cmd)}\n{type(e).__name__}: {e}\n{_tail(self.p.sshd_log(i), 8)}",
                hint="is root's account usable for key logins (not locked)? See the sshd log above")) \
                from None
        if rc != 0:
            raise self.step_error(name, ["ssh", f"root@{node_address(i)}", cmd], rc, err or out,
                                  hint="sshd should set DOCKER_HOST to the node's engine: check "
                                       f"{self.p.sshd_config(i)} and the docker CLI on this machine")

    # -- teardown
    def node_down(self, i: int) -> None:
        name = node_name(i)
        foreign = self.foreign_dockerd(i)
        if foreign:
            raise LabError(Diagnostic.error(
                f"Node {name} belongs to another lab",
                f"Its network namespace runs dockerd pid(s) {', '.join(map(str, foreign))} that this lab "
                f"({self.p.root}) did not start; it is left alone.",
                hint="run `orch lab down --dir OTHER` (or `lab.sh down`) for the lab that owns it"))
        d = self.p.node(i)
        pid = self.sshd_pid(i)
        if pid is not None:
            _terminate(pid, str(self.p.sshd_config(i)), 5)
            self.changed(f"{name}: stopped sshd {pid}")
        pid = self.dockerd_pid(i)
        if pid is not None:
            killed = _terminate(pid, str(self.p.sock(i)), 60)
            self.changed(f"{name}: {'killed' if killed else 'stopped'} dockerd {pid}")
        # dockerd's own children (containerd, shims) left behind by a hard stop: only those naming our dir
        ino = _netns_inode(_netns_path(i))
        if ino is not None:
            for p in _procs_in_netns(ino):
                if str(d) + "/" in _cmdline(p):
                    _terminate(p, str(d) + "/", 5)
                    self.changed(f"{name}: stopped leftover process {p} ({_comm(p)})")
        for m in _mounts_under(d):
            self.run(["umount", "-l", m], name, check=False)
        for f in (self.p.sshd_pid(i), self.p.docker_pid(i), self.p.sock(i)):
            f.unlink(missing_ok=True)
        if self.run(["ip", "link", "show", f"vn{i}"], check=False).returncode == 0:
            self.run(["ip", "link", "del", f"vn{i}"], name)
        if _netns_path(i).exists():
            self.run(["ip", "netns", "delete", name], name)
            self.changed(f"{name}: removed network namespace")

    def lab_nodes(self) -> list[int]:
        """Nodes that exist: a namespace, or a live process of this lab."""
        found = set(_existing_netns())
        for d in self.p.root.glob("n*"):
            m = re.fullmatch(r"n(\d+)", d.name)
            if m and d.is_dir():
                i = int(m.group(1))
                if self.dockerd_pid(i) or self.sshd_pid(i):
                    found.add(i)
        return sorted(found)


def _mounts_under(d: Path) -> list[str]:
    prefix = str(d).rstrip("/") + "/"
    mounts = []
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp.startswith(prefix):
                mounts.append(mp)
    except OSError:
        pass
    return sorted(mounts, key=len, reverse=True)


def _ssh_banner(address: str, timeout: float = 1.0) -> tuple[bool, str]:
    try:
        with socket.create_connection((address, 22), timeout=timeout) as s:
            s.settimeout(timeout)
            data = s.recv(64)
    except OSError as e:
        return False, str(e)
    return data.startswith(b"SSH-"), repr(data)


def ssh_exec(address: str, identity_file: str | os.PathLike[str], known_hosts: str | os.PathLike[str],
             command: str, timeout: float = 30.0, user: str = "root") -> tuple[int, str, str]:
    """Run ``command`` on a lab node over SSH (paramiko, host key checked against ``known_hosts``)."""
    import paramiko

    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(address, port=22, username=user, key_filename=str(identity_file), look_for_keys=False,
                       allow_agent=False, timeout=10, banner_timeout=10, auth_timeout=10)
        _stdin, stdout, stderr = client.exec_command(command, timeout=timeout)
        out = stdout.read().decode(errors="replace")
        err = stderr.read().decode(errors="replace")
        return stdout.channel.recv_exit_status(), out, err
    finally:
        client.close()


_T = TypeVar("_T")
_R = TypeVar("_R")


def _parallel(fn: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
    todo = list(items)
    if len(todo) <= 1:
        return [fn(x) for x in todo]
    with ThreadPoolExecutor(max_workers=min(8, len(todo))) as ex:
        futures = [ex.submit(fn, x) for x in todo]
        return [f.result() for f in futures]  # re-raises the first failure (in node order)


# ---- the API ------------------------------------------------------------------------------------------

def info(n: int, dir: str | os.PathLike[str] | None = None) -> LabInfo:
    """What ``up(n, dir)`` returns, without touching anything."""
    p = _Paths(Path(dir) if dir else default_dir())
    return LabInfo(nodes=[NodeInfo(node_name(i), node_address(i), str(p.sock(i))) for i in range(1, n + 1)],
                   nodes_file=str(p.nodes_file), known_hosts=str(p.known_hosts), identity_file=str(p.client),
                   dir=str(p.root))


def up(n: int = DEFAULT_NODES, dir: str | os.PathLike[str] | None = None, *, install: bool = False,
       verify: bool = True, log: Log | None = None) -> LabInfo:
    """Build or repair the lab with nodes n1..nN (idempotent); nodes above N are torn down.

    Raises :class:`LabError` (with a diagnostic) when something is missing or a step fails."""
    t0 = time.monotonic()
    root = (Path(dir) if dir else default_dir()).absolute()
    _need_root()
    check_address_plan(n)
    ensure_packages(install, log)
    lab = _Lab(root, log)
    with _Lock(lab.log):
        lab.ensure_dirs(n)
        lab.ensure_client_key()
        _parallel(lab.node_down, [i for i in lab.lab_nodes() if i > n])
        lab.write_meta(n)
        # 1. namespaces and the bridge
        lab.ensure_bridge()
        for i in range(1, n + 1):
            lab.ensure_netns(i)
        # 2. dockerd
        procs = {i: lab.start_dockerd(i) for i in range(1, n + 1)}
        _parallel(lambda i: lab.wait_dockerd(i, procs[i]), range(1, n + 1))
        # 3. sshd
        for i in range(1, n + 1):
            lab.ensure_sshd(i)
        _parallel(lab.wait_sshd, range(1, n + 1))
        # 4. the root namespace forwards between the nodes; the pod network is orch's (older labs' parts go)
        lab.ensure_rule(None, "filter", "FORWARD", ["-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"])
        for i in range(1, n + 1):
            lab.remove_old_routes(i)
            lab.remove_old_rules(i)
        # 5. the base image
        tar_cache: list[bytes] = []
        tar_mu = threading.Lock()

        def tar() -> bytes:
            with tar_mu:
                if not tar_cache:
                    bb = find_busybox()
                    if bb is None:  # pragma: no cover - ensure_packages checked it
                        raise LabError(Diagnostic.error("busybox not found",
                                                        hint="apt-get install busybox-static"))
                    tar_cache.append(rootfs_tar(build_rootfs(lab.p.rootfs, bb)))
                return tar_cache[0]

        _parallel(lambda i: lab.ensure_image(i, tar), range(1, n + 1))
        # 6. what orch needs to reach the nodes
        lab.write_known_hosts(n)
        lab.write_nodes_file(n)
        if verify:
            _parallel(lab.verify_ssh, range(1, n + 1))
    result = info(n, root)
    result.changes = lab.changes
    result.seconds = time.monotonic() - t0
    return result


def down(dir: str | os.PathLike[str] | None = None, *, purge: bool = False,
         log: Log | None = None) -> list[str]:
    """Stop the lab's own processes (by pid file), remove its namespaces, veths, bridge and rules;
    ``purge`` also deletes the lab directory. Returns what was done."""
    root = (Path(dir) if dir else default_dir()).absolute()
    _need_root()
    lab = _Lab(root, log)
    errors: list[LabError] = []
    with _Lock(lab.log):
        def one(i: int) -> None:
            try:
                lab.node_down(i)
            except LabError as e:
                errors.append(e)

        _parallel(one, lab.lab_nodes())
        if not _existing_netns():
            lab.delete_rule(None, "filter", "FORWARD", ["-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"])
            if lab.run(["ip", "link", "show", BRIDGE], check=False).returncode == 0:
                lab.run(["ip", "link", "del", BRIDGE])
                lab.changed(f"removed bridge {BRIDGE}")
        if errors:
            raise errors[0]
        if purge and root.exists():
            left = _mounts_under(root)
            if left:
                raise LabError(Diagnostic.error(
                    "Cannot purge the lab directory", f"{root} still has mounts: {', '.join(left[:5])}",
                    hint="unmount them (umount -l), then run `orch lab down --purge` again"))
            shutil.rmtree(root)
            lab.changed(f"deleted {root}")
    return lab.changes


def status(dir: str | os.PathLike[str] | None = None) -> LabStatus:
    """What runs: per node its namespace, dockerd, sshd, container count and base image."""
    root = (Path(dir) if dir else default_dir()).absolute()
    _need_root()
    lab = _Lab(root, None)
    try:
        n = int(json.loads(lab.p.meta.read_text()).get("nodes", 0))
    except (OSError, ValueError, AttributeError):
        n = 0
    bridge = lab.run(["ip", "link", "show", BRIDGE], check=False).returncode == 0
    indices = sorted(set(range(1, n + 1)) | set(lab.lab_nodes()))

    def one(i: int) -> NodeStatus:
        dpid, spid = lab.dockerd_pid(i), lab.sshd_pid(i)
        sock = lab.p.sock(i)
        answering = dpid is not None and _ping(sock)
        containers, image = None, False
        if answering:
            try:
                containers = _container_count(sock)
                image = _image_present(sock)
            except (OSError, ValueError, http.client.HTTPException):
                pass
        accepting = spid is not None and _ssh_banner(node_address(i))[0]
        return NodeStatus(node_name(i), node_address(i), _netns_exists(i), dpid, answering, spid, accepting,
                          containers, image, expected=i <= n)

    return LabStatus(str(root), n, bridge, _parallel(one, indices))
