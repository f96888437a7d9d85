"""The state: what orch manages (model), where it is stored (backend), who may write it (lock).

Typical use by a command that changes the state::

    backend = LocalBackend(path)
    with backend.lock("state rm", timeout_seconds):
        state = backend.read()
        state.remove(target)
        backend.write(state)   # atomic: the whole file, once

A command that records many changes, each durable before it goes on (apply)::

    with backend.lock("apply", timeout_seconds):
        state = backend.read()
        with backend.journal(state) as journal:
            journal.set(instance)      # appended to <state>.journal and fsynced; thread-safe
            journal.remove(address)
        # closed: the whole state written once, the journal deleted
"""

from .backend import DEFAULT_STATE_FILE, LocalBackend
from .duration import format_duration, parse_duration
from .journal import StateJournal
from .lock import LockInfo, StateLock, force_unlock, read_lock
from .model import OutputValue, ResourceInstance, State, StateFormatError
from .targets import Target, parse_target

__all__ = ["DEFAULT_STATE_FILE", "LocalBackend", "LockInfo", "OutputValue", "ResourceInstance", "State",
           "StateFormatError", "StateJournal", "StateLock", "Target", "force_unlock", "format_duration",
           "parse_duration", "parse_target", "read_lock"]
