"""The state lock between real processes: contention, timeout, stale locks, force-unlock."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import time
from datetime import datetime

import pytest

from orchdsl.diagnostics import DiagnosticsError
from orchdsl.state import LocalBackend, StateLock, force_unlock, read_lock

ctx = multiprocessing.get_context("fork")


def _hold(state_path: str, operation: str, ready, release, hold_seconds: float) -> None:
    """Child: take the lock, report, keep it until told (or for hold_seconds), release."""
    lock = StateLock(state_path, operation)
    lock.acquire()
    ready.set()
    release.wait(hold_seconds)
    lock.release()


def _start_holder(state_path, operation="apply", hold_seconds=30.0):
    ready, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold, args=(str(state_path), operation, ready, release, hold_seconds), daemon=True)
    p.start()
    assert ready.wait(10), "holder did not take the lock"
    return p, release


@pytest.fixture
def state_path(tmp_path):
    return tmp_path / "orch.orchstate"


def test_lock_file_content(state_path):
    with StateLock(state_path, "apply") as lock:
        raw = json.loads((state_path.parent / "orch.orchstate.lock").read_text())
        assert raw["ID"] == lock.info.ID and raw["Operation"] == "apply" and raw["PID"] == os.getpid()
        assert raw["Who"].endswith("@" + socket.gethostname()) and raw["Host"] == socket.gethostname()
        assert raw["Path"] == str(state_path)
        assert datetime.fromisoformat(raw["Created"]).tzinfo is not None  # RFC 3339
        assert read_lock(state_path) == lock.info
    assert not (state_path.parent / "orch.orchstate.lock").exists()
    assert read_lock(state_path) is None


def test_second_process_waits_then_fails_naming_the_holder(state_path):
    holder, release = _start_holder(state_path, "apply")
    try:
        info = read_lock(state_path)
        t = time.monotonic()
        with pytest.raises(DiagnosticsError) as e:
            StateLock(state_path).acquire("plan", timeout_seconds=0.3)
        waited = time.monotonic() - t
        assert 0.3 <= waited < 1.5
        d = e.value.diagnostics[0]
        assert d.summary == "Error acquiring the state lock"
        for text in (info.ID, info.Who, "Operation: apply", info.Created, f"PID:       {holder.pid}",
                     "waited 300ms"):
            assert text in d.detail, text
        assert f"orch force-unlock {info.ID}" in d.hint and "--lock-timeout" in d.hint
        assert "stale" not in d.hint  # the holder is alive
    finally:
        release.set()
        holder.join(5)


def test_second_process_gets_the_lock_when_the_first_releases(state_path):
    holder, _ = _start_holder(state_path, "apply", hold_seconds=0.4)
    t = time.monotonic()
    with StateLock(state_path, "plan", timeout_seconds=5) as lock:
        waited = time.monotonic() - t
        assert read_lock(state_path).ID == lock.info.ID and lock.info.Operation == "plan"
    holder.join(5)
    assert 0.2 < waited < 3


def test_killed_holder_leaves_a_lock_reported_stale_but_not_broken(state_path):
    holder, _ = _start_holder(state_path, "apply")
    info = read_lock(state_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(5)
    with pytest.raises(DiagnosticsError) as e:
        StateLock(state_path).acquire("apply", 0)
    d = e.value.diagnostics[0]
    assert "probably stale" in d.hint and f"orch force-unlock {info.ID}" in d.hint
    assert read_lock(state_path) == info  # still there: a person decides

    with pytest.raises(DiagnosticsError) as e:
        force_unlock(state_path, "not-the-id")
    assert e.value.diagnostics[0].summary == "Failed to unlock state"
    assert 'Lock ID "not-the-id" does not match' in e.value.diagnostics[0].detail
    assert read_lock(state_path) == info

    assert force_unlock(state_path, info.ID) == info
    assert read_lock(state_path) is None
    with StateLock(state_path, "apply"):
        pass


def test_force_unlock_without_lock(state_path):
    with pytest.raises(DiagnosticsError, match="Failed to unlock state"):
        force_unlock(state_path, "x")


def test_release_does_not_remove_a_lock_taken_since(state_path):
    first = StateLock(state_path, "apply")
    first.acquire()
    force_unlock(state_path, first.info.ID)
    second = StateLock(state_path, "apply")
    second.acquire()
    first.release()  # must not remove the second's lock
    assert read_lock(state_path).ID == second.info.ID
    second.release()
    assert read_lock(state_path) is None


def test_unreadable_lock_file(state_path):
    (state_path.parent / "orch.orchstate.lock").write_text("garbage")
    with pytest.raises(DiagnosticsError) as e:
        StateLock(state_path).acquire("apply", 0)
    assert "cannot be read" in e.value.diagnostics[0].detail
    assert "orch.orchstate.lock" in e.value.diagnostics[0].hint


def test_missing_directory_is_a_diagnostic(tmp_path):
    with pytest.raises(DiagnosticsError) as e:
        StateLock(tmp_path / "nope" / "orch.orchstate").acquire("apply")
    assert "Cannot create the lock file" in e.value.diagnostics[0].detail


def test_backend_lock_round_trip(state_path):
    b = LocalBackend(state_path)
    with b.lock("apply", 0):
        s = b.read()
        b.write(s)
    assert read_lock(state_path) is None


def test_a_command_waits_for_a_reconcile_cycle_beyond_its_timeout(state_path):
    """A reconcile cycle holds the lock briefly: an apply started meanwhile goes next instead of failing."""
    p, release = _start_holder(state_path, operation="reconcile", hold_seconds=0.6)
    started = time.monotonic()
    with StateLock(state_path, "apply", 0):  # no --lock-timeout given
        waited = time.monotonic() - started
    p.join(10)
    assert 0.2 < waited < 10


def test_no_waiting_beyond_the_timeout_for_other_holders(state_path):
    p, release = _start_holder(state_path, operation="apply", hold_seconds=5)
    try:
        with pytest.raises(DiagnosticsError):
            StateLock(state_path, "apply", 0).acquire()
    finally:
        release.set()
        p.join(10)
