"""The state lock: ``<state>.lock``, so that two orch commands never write one state at once.

Taking the lock is creating the file with O_CREAT|O_EXCL, which the kernel
makes atomic: exactly one process succeeds. The file holds who took it, as
JSON, for the message the others see. A lock left behind by a killed process
is never broken automatically (as in Terraform): a process on another host
may still be working, and a wrong guess corrupts the state, so a person
decides, with ``orch force-unlock ID``.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from ..diagnostics import Diagnostic, DiagnosticsError
from .duration import format_duration
from .model import current_orch_version

_MAX_RETRY_DELAY = 0.5  # seconds between attempts, at most: a waiter starts soon after a release
# how long any command waits, beyond its own --lock-timeout, for a running reconcile cycle to end
RECONCILE_CYCLE_WAIT = 600.0


def lock_path_for(state_path: str | os.PathLike[str]) -> Path:
    return Path(f"{os.fspath(state_path)}.lock")


@dataclass(frozen=True, slots=True)
class LockInfo:
    """The lock file's content; field names are Terraform's (``terraform force-unlock`` users know them)."""

    ID: str
    Operation: str
    Who: str
    Host: str
    PID: int
    Created: str
    Path: str
    Version: str = ""
    Info: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> LockInfo:
        """Raises ValueError when the text is not a lock file (as orch writes it: the fields' types checked)."""
        try:
            raw = json.loads(text)
        except RecursionError:
            raise ValueError("not a lock file (nested too deeply)") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("ID"), str):
            raise ValueError("not a lock file (no ID)")  # noqa: TRY004 - callers catch ValueError
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        for k, v in known.items():
            if k == "PID":
                if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 2**31:
                    raise ValueError(f"not a lock file (PID {json.dumps(v)[:40]} is not a process id)")
            elif not isinstance(v, str):
                raise ValueError(f"not a lock file ({k} is not text)")
        known.setdefault("Operation", "")
        known.setdefault("Who", "")
        known.setdefault("Host", "")
        known.setdefault("PID", 0)
        known.setdefault("Created", "")
        known.setdefault("Path", "")
        return cls(**known)

    def describe(self) -> str:
        """The ``Lock Info:`` block of Terraform's messages."""
        rows = [("ID", self.ID), ("Path", self.Path), ("Operation", self.Operation), ("Who", self.Who),
                ("PID", str(self.PID)), ("Version", self.Version), ("Created", self.Created),
                ("Info", self.Info)]
        return "Lock Info:\n" + "\n".join(f"  {k + ':':<10} {v}".rstrip() for k, v in rows)

    def holder_running(self) -> bool | None:
        """Whether the locking process still runs; None when it ran on another host (unknowable)."""
        if self.Host != socket.gethostname() or self.PID <= 0:
            return None
        return _pid_running(self.PID)


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # containers without a passwd entry for the uid
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def _now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Unreadable:
    """A lock file that exists but cannot be parsed (being written, or damaged)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _read(lock_path: Path) -> LockInfo | _Unreadable | None:
    # The holder creates the file empty and writes it right after; give it a moment
    # before calling the content unreadable.
    reason = ""
    for attempt in range(5):
        try:
            text = lock_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            return _Unreadable(e.strerror or str(e))
        try:
            return LockInfo.from_json(text)  # bytes: not UTF-8 is a ValueError (UnicodeDecodeError) too
        except (ValueError, TypeError) as e:
            reason = str(e) if text.strip() else "empty file"
        time.sleep(0.01 * (attempt + 1))
    return _Unreadable(reason)


def read_lock(state_path: str | os.PathLike[str]) -> LockInfo | None:
    """Who holds the lock of ``state_path``; None when unlocked. Raises DiagnosticsError when unreadable."""
    path = lock_path_for(state_path)
    info = _read(path)
    if isinstance(info, _Unreadable):
        raise DiagnosticsError([_unreadable_diag(path, info, "Failed to read the state lock")])
    return info


def _unreadable_diag(path: Path, info: _Unreadable, summary: str) -> Diagnostic:
    return Diagnostic.error(summary, f"The lock file {path} exists but cannot be read: {info.reason}.",
                            hint=f"if no orch command is running on this state, delete {path}")


class StateLock:
    """The lock of one state file. Use ``acquire``/``release`` or ``with StateLock(path, "apply", 30):``."""

    def __init__(self, state_path: str | os.PathLike[str], operation: str = "", timeout_seconds: float = 0.0,
                 info: str = "") -> None:
        self.state_path = Path(state_path)
        self.path = lock_path_for(state_path)
        self.operation = operation
        self.timeout_seconds = timeout_seconds
        self.extra_info = info
        self.info: LockInfo | None = None  # ours, while held

    @property
    def held(self) -> bool:
        return self.info is not None

    def acquire(self, operation: str | None = None, timeout_seconds: float | None = None) -> LockInfo:
        """Take the lock, retrying until ``timeout_seconds`` have passed (0: one attempt).

        Raises DiagnosticsError "Error acquiring the state lock" naming the holder.
        """
        if self.info is not None:
            raise RuntimeError("state lock already held by this object")
        op = operation if operation is not None else self.operation
        timeout = self.timeout_seconds if timeout_seconds is None else timeout_seconds
        deadline = time.monotonic() + max(0.0, timeout)
        delay = 0.02
        while True:
            info = self._try_create(op)
            if info is not None:
                self.info = info
                return info
            now = time.monotonic()
            if now >= deadline and not self._cycle_ending(now - deadline):
                raise DiagnosticsError([self._held_diag(max(0.0, timeout))])
            time.sleep(min(delay, deadline - now) if now < deadline else delay)
            delay = min(delay * 2, _MAX_RETRY_DELAY)

    def _cycle_ending(self, overdue: float) -> bool:
        """Whether to wait on past the timeout: the holder is an ``orch reconcile`` cycle, which holds the lock
        for one short cycle only (a command started meanwhile goes next instead of failing), and is alive."""
        if overdue >= RECONCILE_CYCLE_WAIT:
            return False
        holder = _read(self.path)
        return isinstance(holder, LockInfo) and holder.Operation == "reconcile" and holder.holder_running() is not False

    def _try_create(self, operation: str) -> LockInfo | None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return None
        except OSError as e:
            raise DiagnosticsError([Diagnostic.error(
                "Error acquiring the state lock", f"Cannot create the lock file {self.path}: {e.strerror or e}.",
                hint="check that the directory of the state file exists and is writable")]) from None
        info = LockInfo(ID=str(uuid.uuid4()), Operation=operation, Who=_who(), Host=socket.gethostname(),
                        PID=os.getpid(), Created=_now_rfc3339(), Path=str(self.state_path),
                        Version=current_orch_version(), Info=self.extra_info)
        try:
            os.write(fd, info.to_json().encode())
            os.fsync(fd)  # a lock that survives a machine crash must still say who took it
        except OSError as e:
            os.close(fd)
            os.unlink(self.path)
            raise DiagnosticsError([Diagnostic.error(
                "Error acquiring the state lock", f"Cannot write the lock file {self.path}: {e.strerror or e}.")]) \
                from None
        os.close(fd)
        return info

    def _held_diag(self, timeout: float) -> Diagnostic:
        holder = _read(self.path)
        waited_text = f"; waited {format_duration(timeout)}" if timeout else ""
        message = f"Error message: the state is locked (lock file {self.path} exists{waited_text})"
        tail = ("orch acquires a state lock to protect the state from being written by several commands "
                "at the same time. Please resolve the issue above and try again.")
        if holder is None:  # released between our attempt and now: rare, say so plainly
            return Diagnostic.error("Error acquiring the state lock",
                                    f"{message}; it was released just now.\n\n{tail}",
                                    hint="run the command again")
        if isinstance(holder, _Unreadable):
            d = _unreadable_diag(self.path, holder, "Error acquiring the state lock")
            d.detail = f"{message}\n{d.detail}\n\n{tail}"
            return d
        running = holder.holder_running()
        if running is False:
            hint = (f"the lock was taken by process {holder.PID} on this host, which is no longer running, so "
                    f"it is probably stale (the command was killed). If no other orch command is using this "
                    f"state, remove the lock with: orch force-unlock {holder.ID}")
        else:
            hint = (f"wait for that command to finish (--lock-timeout waits for it, e.g. --lock-timeout 2m); "
                    f"if it is gone, remove the lock with: orch force-unlock {holder.ID}")
        return Diagnostic.error("Error acquiring the state lock", f"{message}\n{holder.describe()}\n\n{tail}",
                                hint=hint)

    def release(self) -> None:
        """Remove the lock if it is still ours (it may have been force-unlocked and taken by another)."""
        if self.info is None:
            return
        mine, self.info = self.info, None
        current = _read(self.path)
        if isinstance(current, LockInfo) and current.ID == mine.ID:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def force_unlock(state_path: str | os.PathLike[str], lock_id: str) -> LockInfo:
    """Remove the lock of ``state_path`` if its ID is ``lock_id``; returns what was removed.

    Requiring the ID (as Terraform does) makes sure the lock removed is the one the
    user saw in the error message, not a newer one taken since.
    """
    path = lock_path_for(state_path)
    holder = _read(path)
    if holder is None:
        raise DiagnosticsError([Diagnostic.error(
            "Failed to unlock state", f"The state {state_path} is not locked (there is no {path}).",
            hint="nothing to do; check --state if you expected a lock")])
    if isinstance(holder, _Unreadable):
        raise DiagnosticsError([_unreadable_diag(path, holder, "Failed to unlock state")])
    if holder.ID != lock_id.strip():
        raise DiagnosticsError([Diagnostic.error(
            "Failed to unlock state",
            f'Lock ID "{lock_id}" does not match the existing lock.\n{holder.describe()}',
            hint="pass the ID shown in the \"Error acquiring the state lock\" message")])
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise DiagnosticsError([Diagnostic.error(
            "Failed to unlock state", f"Cannot remove {path}: {e.strerror or e}.")]) from None
    return holder
