"""The write-ahead journal of the local backend: ``<state>.journal``.

Why: an apply records every change durably before going on (an object that
may exist must be in the state whatever instant orch is killed at). Rewriting
the whole state file for every change costs O(size of the state), so an
apply of N instances cost O(N²). Instead, while the state lock is held, each
change is appended to the journal as one line and fsynced; the state file is
rewritten once, when the journal is closed (compaction). Concurrent changes
share one write and one fsync (group commit).

A line is ``<crc32 of the JSON, 8 hex digits> <JSON>\\n``; the JSON carries
the lineage of the state and the serial of the state file the journal
extends, then one operation::

    {"lineage": "...", "serial": 7, "op": "set", "instance": {...}}
    {"lineage": "...", "serial": 7, "op": "remove", "address": "pod.web[0]"}
    {"lineage": "...", "serial": 7, "op": "compacted", "into": 8}

``compacted`` is appended (and fsynced) just before the state file with
serial ``into``, which holds every change above it, replaces the old one:
if orch is killed between that replacement and the deletion of the journal,
the next reader knows the journal is already folded in. The lines after the
last complete, valid one (a write cut short by a kill) are ignored: no caller
was told they were durable.

Encrypted (``ORCH_STATE_PASSPHRASE``, see encryption.py): the first line is
the plain encryption header, and each record is the JSON above sealed on its
own line (``base64(nonce || ciphertext || tag)``; the tag replaces the crc),
so a torn last record is told apart and ignored exactly as a plain one.

Reading (``load_journal``/``replay``) is what ``LocalBackend.read`` does with
a journal left by a killed command; ``StateJournal`` is the writer.
"""

from __future__ import annotations

import json
import os
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from pydantic import ValidationError

from ..addrs import AddressError, ResourceAddress, parse_address
from ..diagnostics import Diagnostic, DiagnosticsError
from .encryption import INVALID, Cipher, EncryptionError, is_encrypted, reader
from .fileio import append_durably, fsync_dir, write_all
from .model import ResourceInstance, State, _to_address, gc_paused

if TYPE_CHECKING:
    from .backend import LocalBackend
    from .pg import PgBackend

JOURNAL_SUFFIX = ".journal"


def journal_path_for(state_path: str | os.PathLike[str]) -> Path:
    return Path(f"{os.fspath(state_path)}{JOURNAL_SUFFIX}")


# ---- reading -----------------------------------------------------------------------------

class JournalFormatError(ValueError):
    """The journal is damaged in a way a kill cannot explain; the message names the line."""


@dataclass(frozen=True, slots=True)
class Change:
    """One recorded change: ``instance`` set, or the instance at ``address`` removed."""

    instance: ResourceInstance | None = None
    address: ResourceAddress | None = None


@dataclass(slots=True)
class JournalContents:
    """What a journal file holds, as far as it is complete and valid."""

    lineage: str | None = None  # None: no valid line at all (empty, or only a torn write)
    serial: int | None = None  # of the state file the changes extend
    changes: list[Change] = field(default_factory=list)
    compacted_into: int | None = None  # the last valid line says: folded into the file of this serial
    valid_size: int = 0  # bytes up to the end of the last valid line; what follows is a torn write
    torn_lines: int = 0
    cipher: Cipher | None = None  # of an encrypted journal: a marker appended to it is sealed with it

    def folded_into(self, file_serial: int | None) -> bool:
        """Whether the state file (of ``file_serial``) already holds every change of this journal."""
        return self.compacted_into is not None and self.compacted_into == file_serial


def load_journal(path: Path, passphrase: str | None = None) -> JournalContents | None:
    """The journal at ``path``; None when there is none. Raises JournalFormatError, OSError, and
    EncryptionError when it is encrypted and ``passphrase`` is missing or wrong."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    with gc_paused():
        return parse_journal(data, passphrase)


def parse_journal(data: bytes, passphrase: str | None = None) -> JournalContents:
    out = JournalContents()
    pos, number = 0, 0
    if is_encrypted(data):
        end = data.find(b"\n")
        if end < 0:  # killed while writing the header, before any record
            out.torn_lines = 1
            return out
        try:
            out.cipher = reader(data[:end], passphrase)
        except EncryptionError as e:
            if e.reason == INVALID:
                raise JournalFormatError(f"line 1: {e}") from None
            raise
        pos = out.valid_size = end + 1
        number = 1
    bad: tuple[int, str] | None = None  # the first invalid line; fine only if nothing valid follows
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end < 0:  # no newline: the last write was cut short
            out.torn_lines += 1
            break
        number += 1
        line, pos = data[pos:end], end + 1
        record, reason = _decode_line(line, out.cipher)
        if record is None:
            bad = bad or (number, reason)
            out.torn_lines += 1
            continue
        if bad is not None:
            raise JournalFormatError(f"line {bad[0]}: {bad[1]} (and valid records follow it)")
        _add(out, record, number)
        out.valid_size = pos
    return out


def _decode_line(line: bytes, cipher: Cipher | None) -> tuple[dict[str, Any] | None, str]:
    if cipher is not None:
        payload = cipher.open(line)
        if payload is None:
            return None, "not an authentic encrypted record"
    else:
        if len(line) < 10 or line[8:9] != b" ":
            return None, "not a journal record"
        payload = line[9:]
        try:
            crc = int(line[:8], 16)
        except ValueError:
            return None, "not a journal record"
        if zlib.crc32(payload) != crc:
            return None, "checksum mismatch"
    try:
        record = json.loads(payload)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply
        return None, "invalid JSON"
    if not isinstance(record, dict):
        return None, "not a journal record"
    return record, ""


def _add(out: JournalContents, record: dict[str, Any], number: int) -> None:
    """Check one checksummed record and add it. A checksummed record that makes no sense was not
    torn by a kill: JournalFormatError."""
    lineage, serial, op = record.get("lineage"), record.get("serial"), record.get("op")
    if not isinstance(lineage, str) or not isinstance(serial, int) or isinstance(serial, bool):
        raise JournalFormatError(f"line {number}: a record without lineage and serial")
    if out.lineage is None:
        out.lineage, out.serial = lineage, serial
    elif (lineage, serial) != (out.lineage, out.serial):
        raise JournalFormatError(f"line {number}: a record of lineage {lineage} serial {serial} after "
                                 f"records of lineage {out.lineage} serial {out.serial}")
    out.compacted_into = None  # only a marker that is the last valid line covers every change
    if op == "set":
        try:
            instance = ResourceInstance.model_validate(record.get("instance"))
        except ValidationError as e:
            raise JournalFormatError(f"line {number}: invalid instance: {e.errors()[0]['msg']}") from None
        except RecursionError:
            raise JournalFormatError(f"line {number}: invalid instance: nested too deeply") from None
        out.changes.append(Change(instance=instance))
    elif op == "remove":
        address = record.get("address")
        try:
            addr = parse_address(address) if isinstance(address, str) else None
        except AddressError:
            addr = None
        if addr is None:
            raise JournalFormatError(f"line {number}: invalid address {address!r}")
        out.changes.append(Change(address=addr))
    elif op == "compacted" and isinstance(record.get("into"), int):
        out.compacted_into = record["into"]
    else:
        raise JournalFormatError(f"line {number}: unknown operation {op!r}")


def replay(state: State, contents: JournalContents) -> None:
    """Apply the journal's changes to ``state``, in order."""
    for change in contents.changes:
        if change.instance is not None:
            state.set(change.instance)
        elif change.address is not None:
            state.discard(change.address)


# ---- writing -----------------------------------------------------------------------------

class JournaledWrites:
    """What both backends share: ``write`` while a journal is open is the journal's checkpoint."""

    _journal: StateJournal | None

    def _write(self, state: State) -> bool:
        raise NotImplementedError

    def write(self, state: State) -> bool:
        """Store ``state``; False (and nothing written) when its content is unchanged.

        Increments ``state.serial`` when the content changed. Raises DiagnosticsError when the stored state
        belongs to another state (different lineage) or cannot be written. While a journal is open, writing its
        state is its ``checkpoint()``.
        """
        journal = self._journal
        if journal is not None:
            if state is not journal.state:
                raise RuntimeError("a journal is open on this backend: only its state may be written")
            return journal.checkpoint()
        return self._write(state)



def _encode(payload: bytes, cipher: Cipher | None = None) -> bytes:
    if cipher is not None:
        return cipher.seal(payload) + b"\n"
    return b"%08x %b\n" % (zlib.crc32(payload), payload)


def _prefix(lineage: str, serial: int) -> bytes:
    return b'{"lineage":%b,"serial":%d,' % (json.dumps(lineage).encode(), serial)


def marker_line(lineage: str, serial: int, into: int, cipher: Cipher | None = None) -> bytes:
    """The "compacted into serial ``into``" line of a journal extending ``serial`` (sealed with the journal's
    ``cipher`` when it is encrypted)."""
    return _encode(_prefix(lineage, serial) + b'"op":"compacted","into":%d}' % into, cipher)


class StateJournal:
    """Records changes of one ``State`` durably, one line each; see the module docstring.

    Made by ``LocalBackend.journal(state)``, with the state lock held; use as a context
    manager (``close`` on exit, also on exceptions). ``set``/``remove`` may be called
    from many threads at once: each returns once its record is on disk, and the records
    of concurrent callers share one write and one fsync. ``checkpoint``/``close`` rewrite
    the state file (serial + 1) and empty the journal; call them when no ``set``/``remove``
    is in flight (a call that arrives meanwhile waits, which is correct, only later).
    """

    def __init__(self, backend: LocalBackend | PgBackend, state: State, serial: int, mode: int,
                 cipher: Cipher | None = None) -> None:
        self.state = state
        self._cipher = cipher  # None: plain records
        self.path = backend.journal_path  # a PgBackend's names its table (messages only)
        self._backend = backend
        self._mode = mode
        self._serial = serial  # of the state file the records extend
        self._prefix = _prefix(state.lineage, serial)
        # One change in memory and its record's place in the file are one step, so the file
        # replays to the same state even when two threads change one address.
        self._order = threading.Lock()
        self._cond = threading.Condition(threading.Lock())  # the group commit below
        self._pending: list[bytes] = []
        self._queued = 0  # records handed to the writer, numbered from 1
        self._durable = 0  # records 1.._durable are on disk
        self._writing = False  # a thread is writing a batch (outside every lock)
        self._failure: str | None = None
        self._fd: int | None = None
        self._size = 0  # bytes in the file, all of them valid records
        self._closed = False
        self.writes = 0  # write+fsync rounds since the journal was opened: how well commits were grouped
        self.records = 0  # records made durable since the journal was opened

    @property
    def serial(self) -> int:
        """The serial of the state file the records extend."""
        return self._serial

    @property
    def closed(self) -> bool:
        return self._closed

    # ---- changes ---------------------------------------------------------------------

    def set(self, instance: ResourceInstance) -> None:
        """``state.set(instance)``, durable when this returns. Raises DiagnosticsError."""
        body = instance.model_dump_json().encode()  # the costly part, outside the locks
        with self._order:
            if self._closed:
                return self._set_after_close(instance)
            self._check_healthy()
            self.state.set(instance)
            seq = self._enqueue(self._prefix + b'"op":"set","instance":' + body + b"}")
        self._wait(seq)

    def remove(self, addr: ResourceAddress | str) -> ResourceInstance | None:
        """Remove exactly the instance at ``addr`` (not a pattern), durable when this returns.

        Returns the removed instance; None (and nothing recorded) when there was none.
        """
        addr = _to_address(addr)
        with self._order:
            if self._closed:
                return self._remove_after_close(addr)
            self._check_healthy()
            removed = self.state.discard(addr)
            if removed is None:
                return None
            seq = self._enqueue(self._prefix + b'"op":"remove","address":' + json.dumps(str(addr)).encode()
                                + b"}")
        self._wait(seq)
        return removed

    # A thread still running after close (an apply interrupted a second time) must not lose
    # its change: record it the slow way, by rewriting the state file.
    def _set_after_close(self, instance: ResourceInstance) -> None:
        self.state.set(instance)
        self._backend.write(self.state)

    def _remove_after_close(self, addr: ResourceAddress) -> ResourceInstance | None:
        removed = self.state.discard(addr)
        if removed is not None:
            self._backend.write(self.state)
        return removed

    def _check_healthy(self) -> None:
        if self._failure is not None:
            raise DiagnosticsError([self._failure_diag()])

    # ---- group commit ----------------------------------------------------------------

    def _enqueue(self, payload: bytes) -> int:
        line = _encode(payload, self._cipher)  # sealing a record costs microseconds: fine under _order
        with self._cond:
            self._pending.append(line)
            self._queued += 1
            return self._queued

    def _wait(self, seq: int) -> None:
        """Return once record ``seq`` is on disk: write it (and everything pending) ourselves
        unless another thread is writing, in which case its batch or the next one covers us."""
        with self._cond:
            while self._durable < seq:
                if self._failure is not None:
                    raise DiagnosticsError([self._failure_diag()])
                if not self._writing:
                    break
                self._cond.wait()
            else:
                return
            batch, upto = self._pending, self._queued
            self._pending, self._writing = [], True
        try:
            self._write_batch(b"".join(batch))
        except OSError as e:
            with self._cond:
                self._failure = e.strerror or str(e)
                self._writing = False
                self._cond.notify_all()
            raise DiagnosticsError([self._failure_diag()]) from None
        with self._cond:
            self._durable = upto
            self._writing = False
            self.writes += 1
            self.records += len(batch)
            self._cond.notify_all()

    def _write_batch(self, data: bytes) -> None:
        if self._fd is None:
            self._open()
        assert self._fd is not None
        try:
            append_durably(self._fd, data)
        except OSError:
            try:  # leave only whole records behind, so that a later marker line stays readable
                os.ftruncate(self._fd, self._size)
            except OSError:
                pass
            raise
        self._size += len(data)

    def _open(self) -> None:
        # Created on the first record: an apply that changes nothing leaves no journal behind.
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC
        fd = os.open(self.path, flags, self._mode)
        try:
            os.fchmod(fd, self._mode)  # the records hold the same secrets as the state
        except OSError:
            pass
        size = 0
        if self._cipher is not None:
            # How to decrypt the lines after it; made durable by the first batch's fdatasync. Torn, it is
            # ignored as a torn record is (nothing after it was reported durable).
            try:
                write_all(fd, self._cipher.header + b"\n")
            except OSError:
                os.close(fd)
                raise
            size = len(self._cipher.header) + 1
        fsync_dir(self.path.parent)  # a record is durable only if the file's name is too
        self._fd, self._size = fd, size

    def _drain(self) -> None:
        """Wait until every queued record is on disk (the caller holds ``_order``: none can be added)."""
        with self._cond:
            seq = self._queued
        self._wait(seq)

    def _failure_diag(self) -> Diagnostic:
        return Diagnostic.error(
            "Failed to write the state journal", f"Cannot append to {self.path}: {self._failure}.",
            hint=f"the changes recorded before are safe in {self.path.name}, and orch writes the whole state "
                 f"when the command ends; check free space and permissions")

    # ---- compaction ------------------------------------------------------------------

    def checkpoint(self) -> bool:
        """Write the whole state (serial + 1 when it changed) and empty the journal.

        Returns whether the state file changed. Raises DiagnosticsError (the journal is
        kept then, so nothing recorded is lost).
        """
        with self._order:
            if self._closed:
                return self._backend.write(self.state)
            return self._compact()

    def close(self) -> None:
        """Compact (see ``checkpoint``) and stop journaling. Idempotent."""
        with self._order:
            if self._closed:
                return
            try:
                self._compact()
            finally:
                self._closed = True
                self._close_fd()
                self._backend._journal_closed(self)  # the backend made us

    def _compact(self) -> bool:
        try:
            self._drain()
        except DiagnosticsError:
            pass  # what could not be appended is in memory: the full write below records it
        changed = self._backend._compact(self)  # the backend made us
        # The file now holds everything and the journal is gone: extend the new file from now on.
        self._close_fd()
        self._serial = self.state.serial
        self._prefix = _prefix(self.state.lineage, self._serial)
        with self._cond:
            # Records a failed write left queued are in the file now; they must not reach the next
            # journal, whose records extend another serial.
            self._pending, self._durable, self._failure = [], self._queued, None
            self._cond.notify_all()
        return changed

    def mark_compacted(self, into: int) -> None:
        """Called by the backend once the new state file is written, before it replaces the old one."""
        if self._fd is None:
            return  # no record since the last compaction: nothing to mark
        if self._failure is not None:
            os.ftruncate(self._fd, self._size)  # a failed write may have left part of a line
        append_durably(self._fd, marker_line(self.state.lineage, self._serial, into, self._cipher))

    @property
    def has_file(self) -> bool:
        return self._fd is not None

    def _close_fd(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
