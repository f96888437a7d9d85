"""Commands on a node, as argument vectors: never a shell string built from user values.

A :class:`Host` runs one command (``argv``) on the node and returns its exit status and output. Over SSH
(:class:`SSHHost`) the argv is joined with ``shlex.join`` into the SSH exec request, each element quoted for
the node's POSIX shell; with ``become = true`` it runs as ``sudo -n -- ARGV`` (passwordless sudo only: a
password prompt would hang an unattended run). Standard input, when given, is written to the command and
closed (``nft -f -``, ``iptables-restore``).

Tests substitute a fake host with the same ``run`` (providers/docker/tests/docker_fakes.py: FakeHost).
"""

from __future__ import annotations

import re
import shlex
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .transport import _SSHLink

SUDO = ("sudo", "-n", "--")
BECOME_HINT = "become = true needs passwordless sudo for the SSH user (a NOPASSWD rule in /etc/sudoers.d)"


@dataclass(frozen=True)
class CommandResult:
    rc: int
    stdout: str
    stderr: str


class HostCommandError(Exception):
    """A command on a node failed (``rc`` its exit status; None when it did not finish: timeout, lost link).

    The message names the node, the command and the last line of its error output; ``hint`` says what to do
    when that is known (sudo refusing, a missing program)."""

    def __init__(self, node: str, argv: Sequence[str], rc: int | None, stderr: str, hint: str = "",
                 why: str = ""):
        self.node = node
        self.argv = tuple(argv)
        self.rc = rc
        self.stderr = stderr
        self.hint = hint
        lines = [x.strip() for x in stderr.strip().splitlines() if x.strip()]
        last = lines[-1] if lines else ""
        status = why or (f"exit status {rc}" if rc is not None else "it did not finish")
        msg = f"node {node}: `{shown(self.argv)}` failed ({status})"
        if last:
            msg += f": {last}"
        super().__init__(msg)

    @property
    def summary(self) -> str:
        return f"Command failed on node {self.node}"

    @property
    def detail(self) -> str:
        return str(self)


def shown(argv: Sequence[str]) -> str:
    """``argv`` for messages: quoted like the command line, a script argument (several lines) elided."""
    parts = []
    for a in argv:
        if "\n" in a:
            parts.append(f"<script: {a.count(chr(10)) + 1} lines>")
        else:
            parts.append(shlex.quote(a) if len(a) <= 200 else shlex.quote(a[:200]) + "...")
    return " ".join(parts)


class Host(Protocol):
    """A node that runs commands (as root, or through sudo when ``become``)."""

    node: str

    def run(self, argv: Sequence[str], stdin: bytes | None = None, check: bool = True,
            timeout: float = 30.0) -> CommandResult: ...


_SUDO_MISSING = re.compile(r"\bsudo\b[^\n]*not found")
_SUDO_REFUSED = ("a password is required", "a terminal is required", "is not in the sudoers file",
                 "is not allowed to execute", "may not run sudo")


def sudo_problem(become: bool, rc: int, stderr: str) -> str | None:
    """Why sudo itself (not the command under it) failed, or None."""
    if not become:
        return None
    if rc == 127 and _SUDO_MISSING.search(stderr):
        return "sudo is not installed on the node"
    if rc != 0 and stderr.lstrip().startswith("sudo:") and any(s in stderr for s in _SUDO_REFUSED):
        return "sudo refused to run without a password"
    return None


class SSHHost:
    """Commands over the node's existing SSH connection (one exec channel per command)."""

    def __init__(self, link: _SSHLink, node: str, become: bool = False):
        self.link = link
        self.node = node
        self.become = become

    def command_line(self, argv: Sequence[str]) -> str:
        """The SSH exec request for ``argv``: every element quoted for the node's shell."""
        if not argv:
            raise ValueError("empty argv")
        return shlex.join([*SUDO, *argv] if self.become else list(argv))

    def run(self, argv: Sequence[str], stdin: bytes | None = None, check: bool = True,
            timeout: float = 30.0) -> CommandResult:
        line = self.command_line(argv)
        try:
            rc, out, err = self.link.exec(line, stdin=stdin, timeout=timeout)
        except TimeoutError:
            raise HostCommandError(self.node, argv, None, "", why=f"no answer within {timeout:g} s",
                                   hint="check the node's load; the command may still be running there") \
                from None
        except Exception as e:  # paramiko's SSHException, a dropped connection, OSError
            raise HostCommandError(self.node, argv, None, f"{type(e).__name__}: {e}",
                                   why="the SSH connection failed") from None
        res = CommandResult(rc, out.decode(errors="replace"), err.decode(errors="replace"))
        sudo = sudo_problem(self.become, rc, res.stderr)
        if sudo is not None:
            raise HostCommandError(self.node, [*SUDO, *argv], rc, res.stderr, hint=BECOME_HINT, why=sudo)
        if check and rc != 0:
            raise HostCommandError(self.node, argv, rc, res.stderr, hint=_hint(rc, argv, res.stderr))
        return res


def _hint(rc: int, argv: Sequence[str], stderr: str) -> str:
    if rc == 127 or "command not found" in stderr or ": not found" in stderr:
        return f"install {argv[0]} on the node"
    if "Permission denied" in stderr or "Operation not permitted" in stderr or "you must be root" in stderr:
        return "orch needs root on the node for its pod network: log in as root or set become = true"
    return ""


def read_channel(ch: object, stdin: bytes | None) -> tuple[int, bytes, bytes]:
    """Feed ``stdin`` to an exec channel (paramiko.Channel) and collect stdout and stderr (stderr on its own
    thread, so that neither stream can fill the channel's window while the other is read)."""
    import paramiko

    assert isinstance(ch, paramiko.Channel)
    err_parts: list[bytes] = []
    err_exc: list[BaseException] = []

    def read_err() -> None:
        try:
            while True:
                b = ch.recv_stderr(65536)
                if not b:
                    return
                err_parts.append(b)
        except BaseException as e:  # noqa: BLE001 - re-raised on the calling thread
            err_exc.append(e)

    t = threading.Thread(target=read_err, daemon=True)
    t.start()
    if stdin is not None:
        ch.sendall(stdin)
    ch.shutdown_write()
    out_parts: list[bytes] = []
    while True:
        b = ch.recv(65536)
        if not b:
            break
        out_parts.append(b)
    t.join(ch.gettimeout())
    if err_exc:
        raise err_exc[0]
    if not ch.status_event.wait(ch.gettimeout()):
        raise TimeoutError("no exit status")
    return ch.exit_status, b"".join(out_parts), b"".join(err_parts)
