"""One active reconciler among several: leader election over the pg backend.

Several ``orch reconcile --watch`` processes, on different machines, may run against one state in PostgreSQL so
that the loop survives the machine it runs on. Before each cycle a reconciler makes sure it is the *leader*: it
holds a session-level advisory lock of the state (another key than the state lock) on a connection of its own.
The others try to take it each cycle and wait quietly (saying once who leads). When the leader dies its
connection goes and the lock with it: at once for a killed process (the kernel closes its socket), within the
TCP keepalive settings below (~11 s) for a machine that is gone — the server drops the session. The next
attempt of another reconciler (each ``--interval``) takes over.

The state lock still serialises cycles and applies as before; leadership only decides who runs cycles, so two
reconcilers never act at once even across the moment of a takeover. With the local backend every reconciler
is its own leader (the state file's lock serialises them, as before).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..diagnostics import DiagnosticsError
from ..state.lock import _who
from ..state.pg import PgBackend, advisory_key, connect

if TYPE_CHECKING:
    import psycopg

# server-side keepalives of the leader's session: a vanished machine's leadership ends within ~5 + 3 × 2 s
_KEEPALIVE = ("SET tcp_keepalives_idle = 5", "SET tcp_keepalives_interval = 2", "SET tcp_keepalives_count = 3")


class Leadership:
    """The leader lock of one pg state. ``try_lead()`` → (leading, who leads when not us)."""

    def __init__(self, backend: PgBackend) -> None:
        self.backend = backend
        self.key = advisory_key("orch-reconcile-leader", backend.settings.schema_name, backend.config,
                                backend.workspace)
        self.name = f"orch reconcile {_who()} pid {os.getpid()}"
        self._conn: psycopg.Connection[Any] | None = None
        self.leading = False

    def try_lead(self) -> tuple[bool, str]:
        """Whether this process leads now (taking the lock when it is free); else who does. Raises
        DiagnosticsError when the server cannot be reached (then nobody here leads)."""
        import psycopg

        try:
            if self.leading and self._alive():
                return True, ""
            self.leading = False
            conn = self._connection()
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
            if row and row[0]:
                self.leading = True
                return True, ""
            return False, self._holder(conn)
        except psycopg.Error as e:
            self.close()
            from ..state.pg import _db_diag

            raise DiagnosticsError([_db_diag(e, "electing the active reconciler")]) from None

    def _alive(self) -> bool:
        import psycopg

        if self._conn is None or self._conn.closed:
            return False
        try:
            self._conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            self.close()
            return False

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.backend.settings, purpose="reconcile leader")
            for statement in _KEEPALIVE:
                self._conn.execute(statement)
            self._conn.execute("SELECT set_config('application_name', %s, false)", (self.name[:63],))
        return self._conn

    def _holder(self, conn: psycopg.Connection[Any]) -> str:
        unsigned = self.key & 0xFFFFFFFFFFFFFFFF
        row = conn.execute(
            "SELECT a.application_name, a.client_addr::text FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s AND l.objsubid = 1",
            (unsigned >> 32, unsigned & 0xFFFFFFFF)).fetchone()
        if row is None:
            return "another reconciler"
        name, addr = row
        name = (name or "another reconciler").removeprefix("orch reconcile ")
        return f"{name} (from {addr})" if addr else name

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
            self._conn = None
        self.leading = False

