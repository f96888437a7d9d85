"""The ``pg`` state backend: the state in PostgreSQL, locked with an advisory lock, every version kept.

Selected in the root module's ``orch`` block (see ``backends.py``)::

    orch {
      namespace = "shop"
      backend "pg" {
        conn_str    = "postgres://orch@db.internal/orch"   # or ORCH_PG_CONN, or libpq's PG* variables
        schema_name = "orch"                               # default
      }
    }

Tables (schema and tables are created on first use, under a transaction-level advisory lock so that two first
users do not race), one state per ``(config, workspace)`` — ``config`` is the configuration's ``namespace``:

- ``states``: one row per written version (serial, lineage, the document exactly as a local state file holds
  it — encrypted when ``ORCH_STATE_PASSPHRASE`` is set). The newest is the state; the others are its history
  (``orch state history``, ``orch state pull --serial N``).
- ``journal``: the records of an apply in progress (the local journal's lines, same format), so that each
  change is durable before the apply goes on without rewriting the whole document; folded into a new version
  and deleted in one transaction when the apply ends. A killed apply's records are replayed by the next read.
- ``locks``: who holds the lock, for the messages of those who wait. The lock itself is a session-level
  advisory lock: held by the holder's connection, it disappears with it when the holder is killed.
- ``workspaces``: the workspaces made with ``orch workspace new``.
- ``events``: the reconciler's last actions, for ``orch status`` wherever it runs.

Every statement of a command that holds the lock goes through the connection that holds it: if that
connection is lost (the lock with it), the next write fails instead of writing without the lock.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..diagnostics import Diagnostic, DiagnosticsError
from .encryption import INVALID, EncryptionError, decrypt_document, encrypt_document, is_encrypted, \
    locked_diagnostic, passphrase_from_env, writer
from .journal import JournaledWrites, JournalFormatError, StateJournal, parse_journal, replay
from .lock import RECONCILE_CYCLE_WAIT, LockInfo, StateLock, _now_rfc3339, _who
from .backend import _body
from .model import State, StateFormatError, current_orch_version, gc_paused

if TYPE_CHECKING:
    import psycopg

CONN_ENV = "ORCH_PG_CONN"
DEFAULT_SCHEMA = "orch"
CONNECT_TIMEOUT = 5  # seconds: a server that does not answer is an error soon, not a hang
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def schema_problem(name: str) -> str | None:
    if _SCHEMA_NAME.fullmatch(name):
        return None
    return f'schema_name "{name[:80]}" is not a valid name: lower-case letters, digits and "_", not starting ' \
           "with a digit, at most 63 characters"


@dataclass(frozen=True)
class PgSettings:
    conn_str: str = ""  # "" : ORCH_PG_CONN, else libpq's environment (PGHOST, PGDATABASE, ...)
    schema_name: str = DEFAULT_SCHEMA

    def conninfo(self) -> str:
        return self.conn_str or os.environ.get(CONN_ENV, "")


def safe_conninfo(conninfo: str) -> str:
    """The connection string without its password, for messages."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(conninfo)
    except Exception:  # noqa: BLE001 - an unparsable string: show nothing of it
        return "(an invalid connection string)"
    shown = {k: v for k, v in parts.items() if k not in ("password", "passfile", "sslpassword")}
    if not shown:
        return "(libpq's defaults and PG* environment)"
    return " ".join(f"{k}={v}" for k, v in sorted(shown.items()))


def advisory_key(*parts: str) -> int:
    """A signed 64-bit key for pg_advisory_lock, stable across processes and machines."""
    digest = hashlib.blake2b("\x00".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PgError(Exception):
    """A database error, already a diagnostic."""


def connect(settings: PgSettings, purpose: str = "state") -> psycopg.Connection[Any]:
    """A new autocommit connection; raises DiagnosticsError (never a traceback) when it cannot be made."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    conninfo = settings.conninfo()
    try:
        given = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as e:
        raise DiagnosticsError([Diagnostic.error(
            "Invalid PostgreSQL connection string", f"The pg backend's connection string is not valid: {e}.",
            hint=f'write conn_str = "postgres://USER@HOST:PORT/DB" (or key=value pairs) in the orch block\'s '
                 f'backend "pg", or set {CONN_ENV}')]) from None
    extra: dict[str, Any] = {"application_name": f"orch {purpose}"}
    if "connect_timeout" not in given:
        extra["connect_timeout"] = CONNECT_TIMEOUT
    try:
        return psycopg.connect(make_conninfo(conninfo, **extra), autocommit=True)
    except psycopg.Error as e:
        first = (str(e).strip().splitlines() or ["unknown error"])[0]
        raise DiagnosticsError([Diagnostic.error(
            "Failed to connect to the state backend",
            f"orch could not connect to PostgreSQL ({safe_conninfo(conninfo)}): {first}",
            hint=f'check the conn_str of the orch block\'s backend "pg" (or {CONN_ENV} / PG* variables), that the '
                 "server runs and accepts this user; no state was read or written")]) from None


def _db_diag(e: Exception, doing: str) -> Diagnostic:
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return Diagnostic.error("State backend error", f"PostgreSQL failed while {doing}: {first}",
                            hint="check the server and the connection; nothing was written that is not whole "
                                 "(every write is one transaction)")


@dataclass(slots=True)
class _Seen:
    lineage: str
    serial: int  # as shown: the newest version's, + 1 when journal records were replayed on top
    body: str
    version_serial: int | None  # the newest version's serial (None: no version yet)
    replayed: bool = False


@dataclass(frozen=True)
class Version:
    serial: int
    lineage: str
    written_at: str
    written_by: str
    size: int


class PgBackend(JournaledWrites):
    """One state (``config`` + ``workspace``) in PostgreSQL. Same interface as ``LocalBackend``."""

    kind = "pg"

    def __init__(self, settings: PgSettings, config: str, workspace: str) -> None:
        self.settings = settings
        self.config = config
        self.workspace = workspace
        self.path: Path | None = None  # not a file
        self.journal_path = Path(f"pg:{settings.schema_name}.journal")  # in messages only
        self._conn: psycopg.Connection[Any] | None = None
        self._mutex = threading.RLock()  # one statement or transaction at a time on the connection
        self._seen: _Seen | None = None
        self._known = False
        self._journal: PgJournal | None = None
        self.passphrase = passphrase_from_env()
        self.encrypt_writes = self.passphrase is not None
        self._lock_held = False

    def describe(self) -> str:
        return f'pg state "{self.config}" workspace "{self.workspace}" (schema {self.settings.schema_name})'

    # ---- connection and schema -------------------------------------------------------------

    def connection(self) -> psycopg.Connection[Any]:
        with self._mutex:
            if self._conn is None or self._conn.closed:
                if self._lock_held:
                    raise DiagnosticsError([Diagnostic.error(
                        "Lost the state lock", f"The connection to PostgreSQL that held the lock of "
                        f"{self.describe()} was lost, and the lock with it.",
                        hint="nothing more is written by this command; run it again")])
                self._conn = connect(self.settings)
                _ensure_schema(self._conn, self.settings.schema_name)
            return self._conn

    def close(self) -> None:
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._lock_held = False

    @contextmanager
    def _db(self, doing: str) -> Iterator[tuple[psycopg.Connection[Any], Any]]:
        """The connection and this schema's SQL names; database errors become diagnostics."""
        import psycopg

        with self._mutex:
            conn = self.connection()
            try:
                yield conn, _Names(self.settings.schema_name)
            except psycopg.Error as e:
                raise DiagnosticsError([_db_diag(e, doing)]) from None

    @property
    def _key(self) -> tuple[str, str]:
        return self.config, self.workspace

    # ---- existence, workspaces ---------------------------------------------------------------

    def exists(self) -> bool:
        with self._db("looking for the state") as (conn, n):
            row = conn.execute(f"SELECT (SELECT count(*) FROM {n.states} WHERE config=%s AND workspace=%s) + "
                               f"(SELECT count(*) FROM {n.journal} WHERE config=%s AND workspace=%s)",
                               self._key * 2).fetchone()
        return bool(row and row[0])

    def workspaces(self) -> list[str]:
        """Workspaces made with ``orch workspace new`` and those that hold a state."""
        with self._db("listing the workspaces") as (conn, n):
            rows = conn.execute(f"SELECT workspace FROM {n.workspaces} WHERE config=%s UNION "
                                f"SELECT DISTINCT workspace FROM {n.states} WHERE config=%s",
                                (self.config, self.config)).fetchall()
        return sorted({r[0] for r in rows})

    def add_workspace(self, name: str) -> bool:
        with self._db("creating the workspace") as (conn, n):
            cur = conn.execute(f"INSERT INTO {n.workspaces} (config, workspace) VALUES (%s, %s) "
                               "ON CONFLICT DO NOTHING", (self.config, name))
            return cur.rowcount == 1

    def delete_workspace(self) -> None:
        """Delete this workspace's state, history, journal and record (hold its lock)."""
        with self._db("deleting the workspace") as (conn, n), conn.transaction():
            for table in (n.states, n.journal, n.workspaces, n.events, n.locks):
                conn.execute(f"DELETE FROM {table} WHERE config=%s AND workspace=%s", self._key)

    # ---- lock ----------------------------------------------------------------------------------

    def lock(self, operation: str, timeout_seconds: float = 0.0) -> PgLock:
        return PgLock(self, operation, timeout_seconds)

    def _try_lock(self, info: LockInfo) -> bool:
        with self._db("taking the state lock") as (conn, n):
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self._lock_key(),)).fetchone()
            if not row or not row[0]:
                return False
            conn.execute(f"INSERT INTO {n.locks} (config, workspace, info) VALUES (%s, %s, %s) ON CONFLICT "
                         "(config, workspace) DO UPDATE SET info = EXCLUDED.info", (*self._key, info.to_json()))
            self._lock_held = True
            return True

    def _unlock(self, info: LockInfo) -> None:
        with self._mutex:
            if self._conn is None or self._conn.closed:
                self._lock_held = False
                return
            try:
                with self._db("releasing the state lock") as (conn, n):
                    conn.execute(f"DELETE FROM {n.locks} WHERE config=%s AND workspace=%s AND info::json->>'ID'=%s",
                                 (*self._key, info.ID))
                    conn.execute("SELECT pg_advisory_unlock(%s)", (self._lock_key(),))
            except DiagnosticsError:
                self.close()  # closing the session releases its advisory locks
            self._lock_held = False

    def _lock_key(self) -> int:
        return advisory_key("orch-state", self.settings.schema_name, self.config, self.workspace)

    def lock_holder(self) -> LockInfo | None:
        """Who holds the lock, from the row its holder wrote; None when nobody holds it."""
        with self._db("reading the state lock") as (conn, n):
            held = conn.execute(_HELD_SQL, _lock_parts(self._lock_key())).fetchone()
            if not held or not held[0]:
                return None
            row = conn.execute(f"SELECT info FROM {n.locks} WHERE config=%s AND workspace=%s",
                               self._key).fetchone()
        if row is None:
            return LockInfo(ID="", Operation="", Who="(unknown)", Host="", PID=0, Created="", Path=self.describe())
        try:
            return LockInfo.from_json(row[0])
        except ValueError:
            return None

    def force_unlock(self, lock_id: str) -> LockInfo:
        """End the database session that holds the lock (when its ID is ``lock_id``): its lock goes with it."""
        holder = self.lock_holder()
        if holder is None:
            raise DiagnosticsError([Diagnostic.error(
                "Failed to unlock state", f"The {self.describe()} is not locked.",
                hint="nothing to do: a killed holder's lock went with its connection")])
        if holder.ID != lock_id.strip():
            raise DiagnosticsError([Diagnostic.error(
                "Failed to unlock state", f'Lock ID "{lock_id}" does not match the existing lock.\n'
                f"{holder.describe()}", hint='pass the ID shown in the "Error acquiring the state lock" message')])
        with self._db("ending the lock holder's session") as (conn, n):
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype='advisory' AND granted "
                         "AND classid=%s AND objid=%s AND objsubid=1", _lock_parts(self._lock_key()))
            conn.execute(f"DELETE FROM {n.locks} WHERE config=%s AND workspace=%s", self._key)
        return holder

    # ---- read ----------------------------------------------------------------------------------

    def read(self) -> State:
        """The newest version with a killed apply's journal replayed; a new empty state when there is none."""
        with self._db("reading the state") as (conn, n), conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            row = conn.execute(f"SELECT serial, data FROM {n.states} WHERE config=%s AND workspace=%s "
                               "ORDER BY serial DESC LIMIT 1", self._key).fetchone()
            version_serial = row[0] if row else None
            records = conn.execute(f"SELECT data FROM {n.journal} WHERE config=%s AND workspace=%s "
                                   "AND base_serial=%s ORDER BY seq", (*self._key, version_serial or 0)).fetchall()
        state = self._parse(bytes(row[1]), row[0]) if row else None
        replayed = False
        if records:
            journal = self._parse_journal(b"".join(bytes(r[0]) for r in records))
            if journal.lineage is not None:
                if state is not None and journal.lineage != state.lineage:
                    raise DiagnosticsError([Diagnostic.error(
                        "State journal does not match the state",
                        f"The journal of {self.describe()} belongs to lineage {journal.lineage}, the state to "
                        f"{state.lineage}; orch never writes such a pair.",
                        hint="delete the journal rows of this state if the newest version is the one you want")])
                if state is None:
                    state = State(lineage=journal.lineage, serial=0)
                with gc_paused():
                    replay(state, journal)
                replayed = bool(journal.changes)
                if replayed:
                    state.serial += 1
        if self._journal is not None:
            return state if state is not None else State()
        self._known = True
        if state is None:
            self._seen = None
            return State()
        self._seen = _Seen(state.lineage, state.serial, _body(state), version_serial, replayed)
        return state

    def _parse(self, data: bytes, serial: int) -> State:
        if is_encrypted(data):
            try:
                data = decrypt_document(data, self.passphrase)
            except EncryptionError as e:
                if e.reason != INVALID:
                    raise DiagnosticsError([locked_diagnostic(e, self.describe(), "state")]) from None
                raise DiagnosticsError([self._corrupt(serial, str(e))]) from None
        try:
            return State.from_json(data)
        except StateFormatError as e:
            raise DiagnosticsError([self._corrupt(serial, str(e))]) from None

    def _parse_journal(self, data: bytes) -> Any:
        try:
            with gc_paused():
                return parse_journal(data, self.passphrase)
        except EncryptionError as e:
            raise DiagnosticsError([locked_diagnostic(e, f"{self.describe()} journal", "state")]) from None
        except JournalFormatError as e:
            raise DiagnosticsError([Diagnostic.error(
                "Failed to load the state journal", f"The journal of {self.describe()} is not valid: {e}.",
                hint="orch never writes such records; delete the journal rows to use the newest version as it "
                     "is (objects they recorded may then exist without orch knowing)")]) from None

    def _corrupt(self, serial: int, reason: str) -> Diagnostic:
        return Diagnostic.error(
            "Failed to load the state", f"Version {serial} of {self.describe()} is not valid: {reason}.",
            hint="orch never writes such a version; orch state history lists the earlier ones, and "
                 "orch state pull --serial N prints one (push it back with orch state migrate)")

    # ---- history -------------------------------------------------------------------------------

    def history(self) -> list[Version]:
        with self._db("reading the state history") as (conn, n):
            rows = conn.execute(f"SELECT serial, lineage, written_at, written_by, octet_length(data) FROM "
                                f"{n.states} WHERE config=%s AND workspace=%s ORDER BY serial", self._key).fetchall()
        return [Version(r[0], r[1], r[2].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), r[3] or "", r[4])
                for r in rows]

    def read_serial(self, serial: int) -> State | None:
        with self._db("reading a state version") as (conn, n):
            row = conn.execute(f"SELECT data FROM {n.states} WHERE config=%s AND workspace=%s AND serial=%s",
                               (*self._key, serial)).fetchone()
        return self._parse(bytes(row[0]), serial) if row else None

    # ---- write ---------------------------------------------------------------------------------

    def rewrite(self, state: State) -> None:
        """Write ``state`` again as a new version (same content; encoded as ``encrypt_writes`` says)."""
        self._write(state, force=True)

    def store_copy(self, state: State) -> None:
        """Store ``state`` exactly (its lineage and serial) as the newest version: ``orch state migrate``."""
        newest = self._newest_serial()
        if newest is not None and newest >= state.serial:  # replacing a newer state (--force): a new version
            state = state.copy()
            state.serial = newest + 1
        self._insert(state.lineage, state.serial, state.to_json().encode(), expect=newest)
        self._seen = _Seen(state.lineage, state.serial, _body(state), state.serial)
        self._known = True

    def _newest_serial(self) -> int | None:
        with self._db("reading the state") as (conn, n):
            row = conn.execute(f"SELECT max(serial) FROM {n.states} WHERE config=%s AND workspace=%s",
                               self._key).fetchone()
        return row[0] if row else None

    def _write(self, state: State, journal: PgJournal | None = None, force: bool = False) -> bool:
        if not self._known:
            self.read()
        seen = self._seen
        if seen is not None and seen.lineage != state.lineage:
            raise DiagnosticsError([Diagnostic.error(
                "State lineage mismatch",
                f"The {self.describe()} holds another state (lineage {seen.lineage}) than the one being written "
                f"(lineage {state.lineage}); replacing it would make orch forget the objects it tracks.",
                hint="use another workspace or namespace, or orch state migrate --force to replace it")])
        body = _body(state)
        if seen is not None and body == seen.body:
            if not seen.replayed and not force:
                state.serial = seen.serial
                if journal is not None and journal.records:
                    self._clear_journal()
                return False
            serial = seen.serial if seen.replayed else seen.serial + 1
        else:
            serial = max(state.serial, seen.serial if seen is not None else 0) + 1
        text = body.replace('"serial": 0,', f'"serial": {serial},', 1)
        self._insert(state.lineage, serial, text.encode(), expect=seen.version_serial if seen else None)
        state.serial = serial
        state.orch_version = current_orch_version()
        self._seen = _Seen(state.lineage, serial, body, serial)
        return True

    def _insert(self, lineage: str, serial: int, plaintext: bytes, expect: int | None) -> None:
        """One transaction: the new version, the journal folded in (deleted). ``expect``: the newest serial
        this command read; anything else means another writer went around the lock."""
        data = encrypt_document(plaintext, self.passphrase) if self.encrypt_writes and self.passphrase else plaintext
        with self._db("writing the state") as (conn, n), conn.transaction():
            row = conn.execute(f"SELECT max(serial) FROM {n.states} WHERE config=%s AND workspace=%s",
                               self._key).fetchone()
            newest = row[0] if row else None
            if newest != expect:
                raise DiagnosticsError([Diagnostic.error(
                    "The state changed under this command",
                    f"The {self.describe()} is at serial {newest}, not {expect} as read: another command wrote it "
                    "without the lock.", hint="run the command again (it reads the new version)")])
            conn.execute(f"INSERT INTO {n.states} (config, workspace, serial, lineage, data, written_by) "
                         "VALUES (%s, %s, %s, %s, %s, %s)", (*self._key, serial, lineage, data, _writer_name()))
            conn.execute(f"DELETE FROM {n.journal} WHERE config=%s AND workspace=%s", self._key)

    def _clear_journal(self) -> None:
        with self._db("clearing the state journal") as (conn, n):
            conn.execute(f"DELETE FROM {n.journal} WHERE config=%s AND workspace=%s", self._key)

    # ---- journal -------------------------------------------------------------------------------

    def journal(self, state: State) -> PgJournal:
        """As ``LocalBackend.journal``: each change one durable row; the whole state written once at the end."""
        if self._journal is not None:
            raise RuntimeError(f"a journal of {self.describe()} is already open")
        if not self._known:
            self.read()
        if self._seen is None and len(state) == 0 and not state.outputs:
            serial = 0
        else:
            self._write(state)
            assert self._seen is not None and self._seen.version_serial is not None
            serial = self._seen.version_serial
        cipher = writer(self.passphrase) if self.encrypt_writes and self.passphrase else None
        self._journal = PgJournal(self, state, serial, 0o600, cipher)
        return self._journal

    def _append(self, base_serial: int, data: bytes) -> None:
        with self._db("recording a change in the state journal") as (conn, n):
            conn.execute(f"INSERT INTO {n.journal} (config, workspace, base_serial, data) VALUES (%s, %s, %s, %s)",
                         (*self._key, base_serial, data))

    def _compact(self, journal: StateJournal) -> bool:
        assert isinstance(journal, PgJournal)
        return self._write(journal.state, journal)

    def _journal_closed(self, journal: StateJournal) -> None:
        if self._journal is journal:
            self._journal = None
            self._known = False

    # ---- the reconciler's events ---------------------------------------------------------------

    def record_events(self, lines: list[str], keep: int) -> None:
        if not lines:
            return
        with self._db("recording the reconciler's actions") as (conn, n), conn.transaction():
            for line in lines:
                conn.execute(f"INSERT INTO {n.events} (config, workspace, data) VALUES (%s, %s, %s)",
                             (*self._key, line))
            conn.execute(f"DELETE FROM {n.events} WHERE config=%s AND workspace=%s AND seq <= (SELECT seq FROM "
                         f"{n.events} WHERE config=%s AND workspace=%s ORDER BY seq DESC OFFSET %s LIMIT 1)",
                         (*self._key, *self._key, keep))

    def event_lines(self, last: int) -> list[str]:
        with self._db("reading the reconciler's actions") as (conn, n):
            rows = conn.execute(f"SELECT data FROM {n.events} WHERE config=%s AND workspace=%s ORDER BY seq DESC "
                                "LIMIT %s", (*self._key, last)).fetchall()
        return [r[0] for r in reversed(rows)]


class PgJournal(StateJournal):
    """The journal's records as rows of the ``journal`` table (group commit as for the file: one INSERT holds
    the records of concurrent callers)."""

    def __init__(self, backend: PgBackend, state: State, serial: int, mode: int, cipher: Any = None) -> None:
        super().__init__(backend, state, serial, mode, cipher)
        self._pg = backend
        self._header_written = False

    def _open(self) -> None:
        self._fd = -1  # "has records": nothing to open

    def _write_batch(self, data: bytes) -> None:
        if self._fd is None:
            self._open()
        if self._cipher is not None and not self._header_written:
            data = self._cipher.header + b"\n" + data
        try:
            self._pg._append(self._serial, data)
        except DiagnosticsError as e:
            raise OSError(e.diagnostics[0].detail) from None
        self._header_written = True
        self._size += len(data)

    def mark_compacted(self, into: int) -> None:
        """Nothing to mark: the new version and the deletion of the records are one transaction."""

    def _close_fd(self) -> None:
        self._fd = None
        self._header_written = False

    def _failure_diag(self) -> Diagnostic:
        return Diagnostic.error(
            "Failed to write the state journal", f"Cannot record a change of {self._pg.describe()}: {self._failure}.",
            hint="the changes recorded before are safe in the database; check the server and run the command again")


class PgLock(StateLock):
    """The advisory lock of one pg state; waits as the file lock does (a reconcile cycle is waited for)."""

    def __init__(self, backend: PgBackend, operation: str, timeout_seconds: float) -> None:
        super().__init__(Path(backend.describe()), operation, timeout_seconds)
        self.backend = backend

    def _try_create(self, operation: str) -> LockInfo | None:
        import socket
        import uuid

        info = LockInfo(ID=str(uuid.uuid4()), Operation=operation, Who=_who(), Host=socket.gethostname(),
                        PID=os.getpid(), Created=_now_rfc3339(), Path=self.backend.describe(),
                        Version=current_orch_version(), Info=self.extra_info)
        return info if self.backend._try_lock(info) else None

    def _cycle_ending(self, overdue: float) -> bool:
        if overdue >= RECONCILE_CYCLE_WAIT:
            return False
        holder = self.backend.lock_holder()
        return holder is not None and holder.Operation == "reconcile"

    def _held_diag(self, timeout: float) -> Diagnostic:
        holder = self.backend.lock_holder()
        waited = f"; waited {_duration(timeout)}" if timeout else ""
        tail = ("orch acquires a state lock to protect the state from being written by several commands "
                "at the same time. Please resolve the issue above and try again.")
        if holder is None:
            return Diagnostic.error("Error acquiring the state lock", f"Error message: the {self.backend.describe()} "
                                    f"was locked{waited}; it was released just now.\n\n{tail}",
                                    hint="run the command again")
        return Diagnostic.error(
            "Error acquiring the state lock",
            f"Error message: the {self.backend.describe()} is locked (a PostgreSQL advisory lock held by another "
            f"session{waited})\n{holder.describe()}\n\n{tail}",
            hint="wait for that command to finish (--lock-timeout waits for it, e.g. --lock-timeout 2m); the lock "
                 "goes with its holder's connection if it is killed; if it hangs, orch force-unlock "
                 f"{holder.ID or 'ID'} ends its database session")

    def release(self) -> None:
        if self.info is None:
            return
        mine, self.info = self.info, None
        self.backend._unlock(mine)


def _duration(seconds: float) -> str:
    from .duration import format_duration

    return format_duration(seconds)


# ---- SQL ---------------------------------------------------------------------------------------

class _Names:
    """The schema-qualified, quoted table names of one schema (validated names only)."""

    def __init__(self, schema: str) -> None:
        q = f'"{schema}"'
        self.schema = q
        self.states, self.journal, self.locks = f"{q}.states", f"{q}.journal", f"{q}.locks"
        self.workspaces, self.events = f"{q}.workspaces", f"{q}.events"


_ENSURED: set[tuple[str, int, str, str]] = set()
_ENSURED_LOCK = threading.Lock()

# pg_locks shows a bigint advisory key as classid (high 32 bits) and objid (low 32 bits), objsubid 1
_HELD_SQL = "SELECT count(*) FROM pg_locks WHERE locktype='advisory' AND granted AND classid=%s AND objid=%s " \
            "AND objsubid=1"


def _lock_parts(key: int) -> tuple[int, int]:
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return unsigned >> 32, unsigned & 0xFFFFFFFF


def _ensure_schema(conn: psycopg.Connection[Any], schema: str) -> None:
    """Create the schema and tables on first use (idempotent; serialised by a transaction advisory lock)."""
    import psycopg

    ident = (conn.info.host, conn.info.port, conn.info.dbname, schema)
    with _ENSURED_LOCK:
        if ident in _ENSURED:
            return
    n = _Names(schema)
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_key("orch-schema", schema),))
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {n.schema}")
            conn.execute(f"""CREATE TABLE IF NOT EXISTS {n.states} (
                config text NOT NULL, workspace text NOT NULL, serial bigint NOT NULL, lineage text NOT NULL,
                data bytea NOT NULL, written_at timestamptz NOT NULL DEFAULT now(), written_by text,
                PRIMARY KEY (config, workspace, serial))""")
            conn.execute(f"""CREATE TABLE IF NOT EXISTS {n.journal} (
                config text NOT NULL, workspace text NOT NULL, seq bigserial, base_serial bigint NOT NULL,
                data bytea NOT NULL, PRIMARY KEY (config, workspace, seq))""")
            conn.execute(f"""CREATE TABLE IF NOT EXISTS {n.locks} (
                config text NOT NULL, workspace text NOT NULL, info text NOT NULL, PRIMARY KEY (config, workspace))""")
            conn.execute(f"""CREATE TABLE IF NOT EXISTS {n.workspaces} (
                config text NOT NULL, workspace text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (config, workspace))""")
            conn.execute(f"""CREATE TABLE IF NOT EXISTS {n.events} (
                config text NOT NULL, workspace text NOT NULL, seq bigserial, data text NOT NULL,
                PRIMARY KEY (config, workspace, seq))""")
    except psycopg.Error as e:
        raise DiagnosticsError([Diagnostic.error(
            "State backend error", f"Cannot create the schema {schema} and its tables: "
            f"{(str(e).strip().splitlines() or ['?'])[0]}",
            hint="grant this user CREATE on the database, or create them once as an owner (see docs/state.md)")]) \
            from None
    with _ENSURED_LOCK:
        _ENSURED.add(ident)


def _writer_name() -> str:
    return f"{_who()} pid {os.getpid()}"


__all__ = ["CONN_ENV", "DEFAULT_SCHEMA", "PgBackend", "PgJournal", "PgLock", "PgSettings", "Version", "advisory_key",
           "connect", "safe_conninfo", "schema_problem"]

