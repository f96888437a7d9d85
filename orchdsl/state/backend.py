"""Where the state lives: a local JSON file, written atomically.

Crash safety: the new document is written to a temporary file in the same
directory, fsynced, then renamed over the state file (``os.replace`` is
atomic on POSIX), and the directory is fsynced so the rename itself is
durable. A reader therefore sees the old document or the new one, complete,
whatever instant the writer is killed at; the worst a crash leaves is a
stray ``.<name>.<pid>.*.tmp`` file, removed by the next write.

Backups: the first write of a ``LocalBackend`` that changes the file first
keeps the file it replaces as ``<path>.backup`` — the state as it was before
this command, as Terraform does (not the previous of many writes of one
apply, which would make a useless backup).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..diagnostics import Diagnostic, DiagnosticsError
from .lock import StateLock
from .model import State, StateFormatError, current_orch_version

DEFAULT_STATE_FILE = "orch.orchstate"


@dataclass(slots=True)
class _OnDisk:
    """What this backend last read or wrote: enough to detect changes without re-reading the file."""

    lineage: str
    serial: int
    body: str  # the document with serial 0 and the current orch_version: compared to detect changes


class LocalBackend:
    """The state in one local file (default ``<config dir>/orch.orchstate``).

    Not safe for concurrent writers by itself: hold ``lock()`` around read-modify-write.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.backup_path = Path(f"{self.path}.backup")
        self._disk: _OnDisk | None = None
        self._known = False  # _disk reflects the file (None then means: no file)
        self._backed_up = False
        self._mode: int | None = None

    @classmethod
    def for_config_dir(cls, config_dir: str | os.PathLike[str]) -> LocalBackend:
        return cls(Path(config_dir) / DEFAULT_STATE_FILE)

    def exists(self) -> bool:
        return self.path.exists()

    def lock(self, operation: str, timeout_seconds: float = 0.0) -> StateLock:
        """The lock of this state, to use as ``with backend.lock("apply", 30):``."""
        return StateLock(self.path, operation, timeout_seconds)

    # ---- read ----------------------------------------------------------------------

    def read(self) -> State:
        """The stored state; a new empty state (fresh lineage) when there is no file yet.

        Raises DiagnosticsError when the file cannot be read or is not a valid state.
        """
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            self._disk, self._known = None, True
            return State()
        except OSError as e:
            raise DiagnosticsError([Diagnostic.error(
                "Failed to read the state", f"Cannot read {self.path}: {e.strerror or e}.",
                hint="check the path (--state) and its permissions")]) from None
        if not data.strip():
            # orch never writes an empty file (writes are atomic), so this is damage, not "no state":
            # treating it as empty would make the next apply create everything again.
            raise DiagnosticsError([self._corrupt_diag("the file is empty")])
        try:
            state = State.from_json(data)
        except StateFormatError as e:
            raise DiagnosticsError([self._corrupt_diag(str(e))]) from None
        self._disk = _OnDisk(state.lineage, state.serial, _body(state))
        self._known = True
        return state

    def _corrupt_diag(self, reason: str) -> Diagnostic:
        if self.backup_path.exists():
            hint = (f"{self.backup_path} holds the state as it was before the last command that changed it; "
                    f"if it looks right, copy it over {self.path} (orch never leaves a half-written state "
                    f"file, so the file was changed outside orch)")
        else:
            hint = (f"orch never leaves a half-written state file, so it was changed outside orch; restore it "
                    f"from your own copy (there is no {self.backup_path.name})")
        return Diagnostic.error("Failed to load the state", f"The state file {self.path} is not valid: {reason}.",
                                hint=hint)

    # ---- write ---------------------------------------------------------------------

    def write(self, state: State) -> bool:
        """Store ``state`` atomically; False (and nothing written) when its content is unchanged.

        Increments ``state.serial`` when the content changed. Raises DiagnosticsError when
        the file on disk belongs to another state (different lineage) or cannot be written.
        """
        if not self._known:
            self.read()  # learn lineage and serial of what we are about to replace
        disk = self._disk
        if disk is not None and disk.lineage != state.lineage:
            raise DiagnosticsError([Diagnostic.error(
                "State lineage mismatch",
                f"{self.path} holds another state (lineage {disk.lineage}) than the one being written "
                f"(lineage {state.lineage}); replacing it would make orch forget the objects it tracks.",
                hint="use another --state path, or move the existing file away if it is really obsolete")])
        body = _body(state)
        if disk is not None and body == disk.body:
            state.serial = disk.serial
            return False
        serial = max(state.serial, disk.serial if disk is not None else 0) + 1
        text = body.replace('"serial": 0,', f'"serial": {serial},', 1)  # the first one is top-level
        self._replace(text.encode())
        state.serial = serial
        state.orch_version = current_orch_version()
        self._disk = _OnDisk(state.lineage, serial, body)
        return True

    def _replace(self, data: bytes) -> None:
        directory = self.path.parent
        try:
            if not self._backed_up:
                self._first_write_housekeeping()
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.{os.getpid()}.", suffix=".tmp")
            try:
                try:
                    if self._mode is not None:
                        os.fchmod(fd, self._mode)
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    os.fsync(fd)  # the data must be on disk before the rename makes it the state
                finally:
                    os.close(fd)
                os.replace(tmp, self.path)
            except BaseException:
                _unlink_quietly(tmp)
                raise
            _fsync_dir(directory)  # make the rename durable
        except OSError as e:
            raise DiagnosticsError([Diagnostic.error(
                "Failed to write the state", f"Cannot write {self.path}: {e.strerror or e}.",
                hint="the previous state file is unchanged; check free space and permissions, then retry")]) \
                from None

    def _first_write_housekeeping(self) -> None:
        directory = self.path.parent
        _remove_stale_temp_files(directory, self.path.name)
        try:
            self._mode = self.path.stat().st_mode & 0o777
        except FileNotFoundError:
            self._mode = None  # new file: mkstemp's 0600, since the state may hold secrets
        else:
            _make_backup(self.path, self.backup_path)
        self._backed_up = True


def _body(state: State) -> str:
    return state.to_json(serial=0, orch_version=current_orch_version())


def _make_backup(path: Path, backup: Path) -> None:
    # A hard link is instant and atomic-with-rename; the state file is never modified in
    # place (only replaced), so the backup keeps the old content.
    tmp = backup.with_name(f".{backup.name}.{os.getpid()}.tmp")
    _unlink_quietly(str(tmp))
    try:
        os.link(path, tmp)
    except OSError:  # filesystem without hard links
        shutil.copy2(path, tmp)
    os.replace(tmp, backup)


_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]*\.?tmp$")


def _remove_stale_temp_files(directory: Path, name: str) -> None:
    """Temp files of writers that died mid-write (SIGKILL, crash); only of processes that are gone."""
    from .lock import _pid_running

    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for entry in entries:
        if not entry.startswith(f".{name}") or not entry.endswith(".tmp"):
            continue
        m = _TEMP_NAME.match(entry)
        if m is None or m.group("name") not in (name, f"{name}.backup"):
            continue
        pid = int(m.group("pid"))
        if pid != os.getpid() and not _pid_running(pid):
            _unlink_quietly(str(directory / entry))


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # platforms that cannot open directories: the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
