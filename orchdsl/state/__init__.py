"""The state: what orch manages (model), where it is stored (backend), who may write it (lock).

Typical use by a command that changes the state::

    backend = LocalBackend(path)
    with backend.lock("apply", timeout_seconds):
        state = backend.read()
        ...
        state.set(instance)
        backend.write(state)   # after every change: atomic, cheap
"""

from .backend import DEFAULT_STATE_FILE, LocalBackend
from .duration import format_duration, parse_duration
from .lock import LockInfo, StateLock, force_unlock, read_lock
from .model import OutputValue, ResourceInstance, State, StateFormatError
from .targets import Target, parse_target

__all__ = ["DEFAULT_STATE_FILE", "LocalBackend", "LockInfo", "OutputValue", "ResourceInstance", "State",
           "StateFormatError", "StateLock", "Target", "force_unlock", "format_duration", "parse_duration",
           "parse_target", "read_lock"]
