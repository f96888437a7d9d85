"""Where the state lives: a local JSON file, written atomically, and its journal.

Crash safety: the new document is written to a temporary file in the same
directory, fsynced, then renamed over the state file (``os.replace`` is
atomic on POSIX), and the directory is fsynced so the rename itself is
durable. A reader therefore sees the old document or the new one, complete,
whatever instant the writer is killed at; the worst a crash leaves is a
stray ``.<name>.<pid>.*.tmp`` file, removed by the next write.

Journal: rewriting the whole file after each change of an apply costs
O(state size) per change, so an apply records its changes in
``<path>.journal`` instead (``journal()``, see journal.py): one fsynced line
per change, the file rewritten once at the end. ``read`` replays a journal
left by a killed command on top of the file, so every command sees every
recorded change; the next write folds it into the file and deletes it. A
journal that does not extend the file (another lineage or serial: copied from
elsewhere, orch never leaves such a pair) is an error, never mixed in.

Backups: the first write of a ``LocalBackend`` that changes the file first
keeps the state as it was before this command as ``<path>.backup``: the file
it replaces, as Terraform does (not the previous of many writes of one
apply, which would make a useless backup), or, when a killed command left a
journal, that file with the journal replayed (what this command read).

Encryption: with ``ORCH_STATE_PASSPHRASE`` set, the file, its backup and the
journal are written encrypted (encryption.py), and a plain file is read as
before, so setting the passphrase migrates a plain state at its next write
(its backup too: re-encoded, never left plain). Without it, an encrypted file
is an error for every reader, never "no state". ``rewrite`` is the migration
of ``orch state encrypt``/``decrypt``: the same content in the other encoding.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..diagnostics import Diagnostic, DiagnosticsError
from .encryption import (
    INVALID,
    MAGIC,
    EncryptionError,
    decrypt_document,
    encrypt_document,
    is_encrypted,
    locked_diagnostic,
    passphrase_from_env,
    writer,
)
from .fileio import append_durably, fsync_dir, replace_atomically, unlink_quietly
from .journal import (
    JournalContents,
    JournaledWrites,
    JournalFormatError,
    StateJournal,
    journal_path_for,
    load_journal,
    marker_line,
    replay,
)
from .lock import StateLock
from .model import State, StateFormatError, current_orch_version, gc_paused

DEFAULT_STATE_FILE = "orch.orchstate"

# A reader without the lock may meet a compaction between reading the file and reading the journal;
# it reads both again (the file is replaced, never modified, so a new inode means a new version).
_READ_ATTEMPTS = 5


@dataclass(slots=True)
class _OnDisk:
    """What this backend last read or wrote: enough to detect changes without re-reading the file."""

    lineage: str
    serial: int  # as shown to the reader: the file's, + 1 when journal changes were replayed on top
    body: str  # the document with serial 0 and the current orch_version: compared to detect changes
    file_serial: int | None = None  # None: no state file (only a journal)
    replayed: bool = False  # the content includes journal changes that the file does not hold yet


class LocalBackend(JournaledWrites):
    """The state in one local file (default ``<config dir>/orch.orchstate``) and its journal.

    Not safe for concurrent writers by itself: hold ``lock()`` around read-modify-write.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.backup_path = Path(f"{self.path}.backup")
        self.journal_path = journal_path_for(self.path)
        self._disk: _OnDisk | None = None
        self._known = False  # _disk reflects the file (None then means: no file)
        self._leftover: JournalContents | None = None  # a journal file found by read(), not ours
        self._journal: StateJournal | None = None  # ours, while open
        self._backed_up = False
        self._mode: int | None = None
        # The passphrase reads encrypted files; with one, every write is encrypted (``orch state decrypt``
        # clears encrypt_writes to write plain text while still reading with it).
        self.passphrase = passphrase_from_env()
        self.encrypt_writes = self.passphrase is not None

    @classmethod
    def for_config_dir(cls, config_dir: str | os.PathLike[str]) -> LocalBackend:
        """The state of the configuration's selected workspace (``default``: ``DIR/orch.orchstate``)."""
        from . import workspace

        ws = workspace.current(config_dir)
        return cls(workspace.state_dir(config_dir, ws if not workspace.name_problem(ws) else workspace.DEFAULT)
                   / DEFAULT_STATE_FILE)

    def exists(self) -> bool:
        """Whether there is a state: a file, or a journal of a command killed before writing one."""
        return self.path.exists() or self.journal_path.exists()

    def lock(self, operation: str, timeout_seconds: float = 0.0) -> StateLock:
        """The lock of this state, to use as ``with backend.lock("apply", 30):``."""
        return StateLock(self.path, operation, timeout_seconds)

    def describe(self) -> str:
        return str(self.path)

    # ---- the reconciler's events (orch status shows the last ones) -----------------

    def record_events(self, lines: list[str], keep: int) -> None:
        """Append JSON lines to ``<state>.reconcile.jsonl``, keeping the last ``keep``. Raises OSError."""
        path = Path(f"{self.path}.reconcile.jsonl")
        try:
            old = path.read_text().splitlines()
        except FileNotFoundError:
            old = []
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text("\n".join((old + lines)[-keep:]) + "\n")
        tmp.replace(path)

    def event_lines(self, last: int) -> list[str]:
        """The last ``last`` lines recorded. Raises OSError."""
        try:
            return Path(f"{self.path}.reconcile.jsonl").read_text().splitlines()[-last:]
        except FileNotFoundError:
            return []

    # ---- read ----------------------------------------------------------------------

    def read(self) -> State:
        """The stored state (with a leftover journal replayed); a new empty state (fresh lineage)
        when there is neither file nor journal.

        Raises DiagnosticsError when the file or journal cannot be read, is not valid, or the
        journal does not extend the file.
        """
        data, journal = self._read_both()
        state = self._parse(data) if data is not None else None
        file_serial = state.serial if state is not None else None
        replayed = False
        if journal is not None and journal.lineage is not None and not journal.folded_into(file_serial):
            self._check_extends(journal, state)
            if state is None:  # the journal of a state whose first write never happened
                state = State(lineage=journal.lineage, serial=0)
            with gc_paused():
                replay(state, journal)
            replayed = bool(journal.changes)
            if replayed:
                state.serial += 1  # the serial this content gets when folded into the file
        if self._journal is not None:
            # Our own journal is open: what it extends (and what the backup will be) stays as it was.
            return state if state is not None else State()
        self._leftover, self._known = journal, True
        if state is None:
            self._disk = None
            return State()
        self._disk = _OnDisk(state.lineage, state.serial, _body(state), file_serial, replayed)
        return state

    def _read_both(self) -> tuple[bytes | None, JournalContents | None]:
        data: bytes | None = None
        journal: JournalContents | None = None
        for _ in range(_READ_ATTEMPTS):
            data, identity = self._read_file()
            if data is not None and is_encrypted(data):
                # Before the journal: a missing or wrong passphrase is reported for the state file.
                data = self._decrypt(data, self.path)
            journal = self._read_journal()
            if _identity(self.path) == identity:
                break
        return data, journal

    def _read_file(self) -> tuple[bytes | None, tuple[int, ...] | None]:
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                return f.read(), (st.st_dev, st.st_ino, st.st_mtime_ns)
        except FileNotFoundError:
            return None, None
        except OSError as e:
            raise DiagnosticsError([Diagnostic.error(
                "Failed to read the state", f"Cannot read {self.path}: {e.strerror or e}.",
                hint="check the path (--state) and its permissions")]) from None

    def _decrypt(self, data: bytes, path: Path) -> bytes:
        """The plaintext of an encrypted state file or backup; raises DiagnosticsError."""
        try:
            return decrypt_document(data, self.passphrase)
        except EncryptionError as e:
            if e.reason != INVALID:
                raise DiagnosticsError([locked_diagnostic(e, path, "state")]) from None
            if path == self.path:
                raise DiagnosticsError([self._corrupt_diag(str(e))]) from None
            raise DiagnosticsError([Diagnostic.error(
                "Failed to read the state backup", f"The state backup {path} is not valid: {e}.",
                hint=f"orch never writes such a file; move {path.name} away and retry")]) from None

    def _encode(self, plaintext: bytes) -> bytes:
        """The bytes of a state file or backup: encrypted when writes are."""
        if not self.encrypt_writes:
            return plaintext
        assert self.passphrase is not None
        return encrypt_document(plaintext, self.passphrase)

    def _read_journal(self) -> JournalContents | None:
        try:
            return load_journal(self.journal_path, self.passphrase)
        except EncryptionError as e:  # INVALID is a JournalFormatError
            raise DiagnosticsError([locked_diagnostic(e, self.journal_path, "state")]) from None
        except OSError as e:
            raise DiagnosticsError([Diagnostic.error(
                "Failed to read the state journal", f"Cannot read {self.journal_path}: {e.strerror or e}.",
                hint=f"it holds changes an orch command recorded and has not yet written into "
                     f"{self.path.name}; check its permissions")]) from None
        except JournalFormatError as e:
            name = self.path.name
            raise DiagnosticsError([Diagnostic.error(
                "Failed to load the state journal",
                f"The state journal {self.journal_path} is not valid: {e}.",
                hint=f"orch never writes such a journal, so it was changed outside orch. It holds changes "
                     f"not yet written into {name}: restore it from your own copy, or move it away to use "
                     f"{name} as it is (objects it recorded may then exist without orch knowing)")]) from None

    def _parse(self, data: bytes) -> State:
        if not data.strip():
            # orch never writes an empty file (writes are atomic), so this is damage, not "no state":
            # treating it as empty would make the next apply create everything again.
            raise DiagnosticsError([self._corrupt_diag("the file is empty")])
        try:
            return State.from_json(data)
        except StateFormatError as e:
            raise DiagnosticsError([self._corrupt_diag(str(e))]) from None

    def _check_extends(self, journal: JournalContents, state: State | None) -> None:
        """The journal's changes apply only to the file they were recorded against."""
        if state is None:
            if journal.serial == 0:
                return
            found = f"there is no {self.path.name}"
        elif journal.lineage != state.lineage:
            found = f"{self.path.name} holds another state (lineage {state.lineage})"
        elif journal.serial != state.serial:
            found = f"{self.path.name} is at serial {state.serial}"
        else:
            return
        raise DiagnosticsError([Diagnostic.error(
            "State journal does not match the state file",
            f"{self.journal_path} holds changes to the state of lineage {journal.lineage} at serial "
            f"{journal.serial}, but {found}. orch never leaves such a pair behind: one of the two files "
            f"was copied or restored from elsewhere, so the journal is not applied.",
            hint=f"if {self.path.name} is the state you want, move {self.journal_path.name} away (the "
                 f"objects it recorded may then exist without orch knowing: check them); otherwise restore "
                 f"the state file the journal extends (lineage {journal.lineage}, serial {journal.serial})")])

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

    # ---- journal -------------------------------------------------------------------

    def journal(self, state: State) -> StateJournal:
        """Record the changes of ``state`` in the journal from now on; hold the state lock.

        The journal extends the state file as it is: unsaved changes of ``state`` and a journal
        left by a killed command are written into the file first. Use as a context manager::

            with backend.journal(state) as journal:
                journal.set(instance)   # durable when it returns; many threads at once is fine
                journal.remove(address)
            # closed: the whole state written once (serial + 1), the journal deleted
        """
        if self._journal is not None:
            raise RuntimeError(f"a journal of {self.path} is already open")
        if not self._known:
            self.read()  # learn lineage and serial of what the journal will extend
        if self._disk is None and self._leftover is None and len(state) == 0 and not state.outputs:
            serial = 0  # nothing on disk and nothing to write yet: the journal extends "no state file"
        else:
            self._write(state)
            assert self._disk is not None and self._disk.file_serial is not None
            serial = self._disk.file_serial
        cipher = None
        if self.encrypt_writes:
            assert self.passphrase is not None
            cipher = writer(self.passphrase)
        self._journal = StateJournal(self, state, serial, self._journal_mode(), cipher)
        return self._journal

    def _journal_mode(self) -> int:
        try:
            return self.path.stat().st_mode & 0o777
        except OSError:
            return 0o600  # the state may hold secrets

    def _compact(self, journal: StateJournal) -> bool:
        return self._write(journal.state, journal)

    def _journal_closed(self, journal: StateJournal) -> None:
        if self._journal is journal:
            self._journal = None
            if self.journal_path.exists():  # its compaction failed: the next write must fold it in
                self._known = False

    # ---- write ---------------------------------------------------------------------

    def rewrite(self, state: State) -> None:
        """Write ``state`` (what ``read()`` returned) encoded as ``encrypt_writes`` says, also when its content is
        unchanged: the migration of ``orch state encrypt``/``decrypt``. Hold the lock. The lineage and serial
        stay (a leftover journal is folded in, under the serial ``read()`` showed); the backup keeps its content
        (the state before the last command that changed it), re-encoded. Raises DiagnosticsError, with nothing
        written when the backup cannot be read."""
        if self._journal is not None:
            raise RuntimeError(f"a journal of {self.path} is open")
        backup = self._read_backup()  # first: a backup orch cannot decrypt stops the command before any write
        if not self._backed_up:
            self._first_write_housekeeping(make_backup=False)  # the backup is re-encoded below instead
        self._write(state, force=True)
        if backup is None:
            return
        data, mode = backup
        try:
            replace_atomically(self.backup_path, self._encode(data), mode)
            fsync_dir(self.backup_path.parent)
        except OSError as e:
            raise DiagnosticsError([Diagnostic.error(
                "Failed to write the state backup", f"Cannot write {self.backup_path}: {e.strerror or e}.",
                hint=f"{self.path.name} is written; check free space and permissions, then run the command "
                     "again to re-encode the backup")]) from None

    def store_copy(self, state: State) -> None:
        """Store ``state`` exactly as it is (its lineage and serial), replacing what the file holds (kept as the
        backup) and any leftover journal: ``orch state migrate``. Hold the lock."""
        if self._journal is not None:
            raise RuntimeError(f"a journal of {self.path} is open")
        if not self._known:
            self.read()
        self._replace(self._encode(state.to_json().encode()))
        self._remove_journal()
        self._disk = _OnDisk(state.lineage, state.serial, _body(state), state.serial)

    def _read_backup(self) -> tuple[bytes, int] | None:
        try:
            data = self.backup_path.read_bytes()
            mode = self.backup_path.stat().st_mode & 0o777
        except FileNotFoundError:
            return None
        except OSError as e:
            raise DiagnosticsError([Diagnostic.error(
                "Failed to read the state backup", f"Cannot read {self.backup_path}: {e.strerror or e}.",
                hint="check its permissions, or move it away")]) from None
        return (self._decrypt(data, self.backup_path) if is_encrypted(data) else data), mode

    def _write(self, state: State, journal: StateJournal | None = None, force: bool = False) -> bool:
        if not self._known:
            self.read()  # learn lineage and serial of what we are about to replace
        disk = self._disk
        if disk is not None and disk.lineage != state.lineage:
            raise DiagnosticsError([Diagnostic.error(
                "State lineage mismatch",
                f"{self.path} holds another state (lineage {disk.lineage}) than the one being written "
                f"(lineage {state.lineage}); replacing it would make orch forget the objects it tracks.",
                hint="use another --state path, or move the existing file away if it is really obsolete")])
        leftover = self._leftover if self._journal is None else None  # our own journal seals itself
        body = _body(state)
        if disk is not None and body == disk.body:
            if not disk.replayed and not force:  # the file already holds this content
                state.serial = disk.serial
                if leftover is not None or (journal is not None and journal.has_file):
                    self._remove_journal()  # nothing in it that the file lacks
                return False
            serial = disk.serial  # fold the replayed journal in under the serial read() showed
        else:
            serial = max(state.serial, disk.serial if disk is not None else 0) + 1
        text = body.replace('"serial": 0,', f'"serial": {serial},', 1)  # the first one is top-level
        data = self._encode(text.encode())

        def seal() -> None:  # after the new file is on disk, before it replaces the old one
            if journal is not None:
                journal.mark_compacted(serial)
            elif leftover is not None:
                self._seal_leftover(leftover, serial, folding=disk is not None and disk.replayed)

        self._replace(data, seal)
        if journal is not None or leftover is not None:
            self._remove_journal()
        state.serial = serial
        state.orch_version = current_orch_version()
        self._disk = _OnDisk(state.lineage, serial, body, serial)
        self._leftover = None
        return True

    def _seal_leftover(self, leftover: JournalContents, serial: int, folding: bool) -> None:
        """Make a crash between the replacement and the journal's deletion harmless."""
        if not folding:  # torn only, or already folded into the file being replaced: nothing to keep
            unlink_quietly(str(self.journal_path))
            return
        assert leftover.lineage is not None and leftover.serial is not None
        fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            os.ftruncate(fd, leftover.valid_size)  # drop a torn last write, so the marker is readable
            append_durably(fd, marker_line(leftover.lineage, leftover.serial, serial, leftover.cipher))
        finally:
            os.close(fd)

    def _remove_journal(self) -> None:
        # Not fsynced: should the deletion be lost, the journal ends with its "compacted" marker,
        # which tells the next reader it is already in the file.
        unlink_quietly(str(self.journal_path))
        self._leftover = None

    def _replace(self, data: bytes, before_replace: Callable[[], None] | None = None) -> None:
        directory = self.path.parent
        try:
            if not self._backed_up:
                self._first_write_housekeeping()
            replace_atomically(self.path, data, self._mode, before_replace)
            fsync_dir(directory)  # make the rename durable
        except OSError as e:
            raise DiagnosticsError([Diagnostic.error(
                "Failed to write the state", f"Cannot write {self.path}: {e.strerror or e}.",
                hint="the previous state file is unchanged; check free space and permissions, then retry")]) \
                from None

    def _first_write_housekeeping(self, make_backup: bool = True) -> None:
        directory = self.path.parent
        _remove_stale_temp_files(directory, self.path.name)
        try:
            self._mode = self.path.stat().st_mode & 0o777
        except FileNotFoundError:
            self._mode = None  # new file: mkstemp's 0600, since the state may hold secrets
        disk = self._disk
        if not make_backup:
            self._backed_up = True
            return
        if disk is not None and disk.replayed:
            # What this command read is the file plus the journal of a killed command.
            text = disk.body.replace('"serial": 0,', f'"serial": {disk.serial},', 1)
            _write_backup(self.backup_path, self._encode(text.encode()), self._mode)
        elif self._mode is not None:
            self._backup_file()
        self._backed_up = True

    def _backup_file(self) -> None:
        with open(self.path, "rb") as f:
            encrypted = is_encrypted(f.read(len(MAGIC)))
        if encrypted == self.encrypt_writes:
            _make_backup(self.path, self.backup_path)
            return
        # The file is plain and this write is encrypted (the passphrase was just set): a hard link would leave
        # its secrets in clear in the backup. Re-encode it (a file orch cannot decrypt was refused by read()).
        data = self.path.read_bytes()
        plain = self._decrypt(data, self.path) if encrypted else data
        _write_backup(self.backup_path, self._encode(plain), self._mode)


def _body(state: State) -> str:
    return state.to_json(serial=0, orch_version=current_orch_version())


def _make_backup(path: Path, backup: Path) -> None:
    # A hard link is instant and atomic-with-rename; the state file is never modified in
    # place (only replaced), so the backup keeps the old content.
    tmp = backup.with_name(f".{backup.name}.{os.getpid()}.tmp")
    unlink_quietly(str(tmp))
    try:
        os.link(path, tmp)
    except OSError:  # filesystem without hard links
        shutil.copy2(path, tmp)
    os.replace(tmp, backup)


def _write_backup(backup: Path, data: bytes, mode: int | None) -> None:
    replace_atomically(backup, data, mode)


def _identity(path: Path) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns)


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
            unlink_quietly(str(directory / entry))
