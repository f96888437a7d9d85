"""The state journal: durable changes without rewriting the state, replay by every reader, compaction,
mismatch detection, and records surviving SIGKILL."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from orchdsl.diagnostics import DiagnosticsError
from orchdsl.state import LocalBackend, ResourceInstance, State, force_unlock, read_lock
from orchdsl.state.journal import journal_path_for

REPO = Path(__file__).resolve().parents[1]


def inst(addr: str, **fields) -> ResourceInstance:
    return ResourceInstance.for_address(addr, "docker", {"id": f"id-{addr}"}, **fields)


def addresses(state: State) -> list[str]:
    return [r.address for r in state]


@pytest.fixture
def path(tmp_path) -> Path:
    return tmp_path / "orch.orchstate"


def saved_state(path: Path, *addrs: str) -> State:
    """A state file holding ``addrs`` (serial 1), as a previous command left it."""
    b = LocalBackend(path)
    s = b.read()
    for a in addrs:
        s.set(inst(a))
    b.write(s)
    return s


def crash_after(path: Path, work) -> None:
    """Run ``work(journal)`` in a forked child that then dies without closing the journal (as on SIGKILL)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            b = LocalBackend(path)
            work(b.journal(b.read()))
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


# ---- set / remove / close ----------------------------------------------------------------------

def test_set_and_remove_are_visible_to_a_fresh_read_before_close(path):
    saved_state(path, "network.app", "pod.old")
    b = LocalBackend(path)
    s = b.read()
    with b.journal(s) as j:
        j.set(inst("pod.web[0]", status="tainted"))  # the intent, before the provider acts
        assert addresses(LocalBackend(path).read()) == ["network.app", "pod.old", "pod.web[0]"]
        j.set(inst("pod.web[0]"))
        assert j.remove("pod.old").address == "pod.old"
        assert j.remove("pod.nothing") is None
        other = LocalBackend(path).read()
        assert addresses(other) == ["network.app", "pod.web[0]"]
        assert other.get("pod.web[0]").status == "ready"
        assert other.serial == 2  # the serial it gets once folded in; the file is still at 1
        assert json.loads(path.read_text())["serial"] == 1
        assert j.path.exists() and j.path == journal_path_for(path)
        assert addresses(s) == ["network.app", "pod.web[0]"]  # the in-memory state follows too
    assert not j.path.exists()  # compacted: the file holds everything, serial + 1
    doc = json.loads(path.read_text())
    assert doc["serial"] == 2 and [r["address"] for r in doc["resources"]] == ["network.app", "pod.web[0]"]
    assert s.serial == 2
    assert addresses(LocalBackend(b.backup_path).read()) == ["network.app", "pod.old"]  # before the command


def test_remove_is_exact_not_a_pattern(path):
    saved_state(path, "pod.web", "pod.web[0]")
    b = LocalBackend(path)
    with b.journal(b.read()) as j:
        j.remove("pod.web")  # a keyless instance; its keyed sibling (count added) is another object
    assert addresses(LocalBackend(path).read()) == ["pod.web[0]"]


def test_close_without_changes_writes_nothing(path):
    saved_state(path, "pod.a")
    mtime = path.stat().st_mtime_ns
    b = LocalBackend(path)
    with b.journal(b.read()) as j:
        pass
    assert not j.path.exists() and path.stat().st_mtime_ns == mtime and not b.backup_path.exists()


def test_changes_that_cancel_out_leave_the_file_alone(path):
    saved_state(path, "pod.a")
    mtime = path.stat().st_mtime_ns
    b = LocalBackend(path)
    with b.journal(b.read()) as j:
        j.set(inst("pod.b", status="tainted"))
        j.remove("pod.b")  # e.g. the provider made nothing: the intent is dropped
    assert not j.path.exists() and path.stat().st_mtime_ns == mtime
    assert json.loads(path.read_text())["serial"] == 1


def test_close_compacts_on_exception_too(path):
    saved_state(path, "pod.a")
    b = LocalBackend(path)
    with pytest.raises(KeyError), b.journal(b.read()) as j:
        j.set(inst("pod.b"))
        raise KeyError("boom")
    assert not j.path.exists() and json.loads(path.read_text())["serial"] == 2
    assert addresses(LocalBackend(path).read()) == ["pod.a", "pod.b"]


def test_journal_extends_unsaved_changes_and_a_new_state(path):
    b = LocalBackend(path)
    s = b.read()
    with b.journal(s) as j:  # no file yet and nothing to write: the journal extends "no state"
        assert not path.exists() and j.serial == 0
        j.set(inst("pod.a"))
        assert LocalBackend(path).exists() and not path.exists()
        fresh = LocalBackend(path).read()
        assert (addresses(fresh), fresh.lineage, fresh.serial) == (["pod.a"], s.lineage, 1)
    assert json.loads(path.read_text())["serial"] == 1

    s.set(inst("pod.unsaved"))  # changed in memory only: written before journaling starts
    with b.journal(s) as j:
        assert json.loads(path.read_text())["serial"] == 2 and j.serial == 2
        j.set(inst("pod.b"))
        assert addresses(LocalBackend(path).read()) == ["pod.a", "pod.b", "pod.unsaved"]
    assert json.loads(path.read_text())["serial"] == 3


def test_outputs_and_checkpoint(path):
    saved_state(path, "pod.a")
    b = LocalBackend(path)
    s = b.read()
    with b.journal(s) as j:
        j.set(inst("pod.b"))
        s.set_output("url", "http://x")  # outputs are not journaled: the checkpoint writes them
        assert j.checkpoint() is True
        assert not j.path.exists() and j.serial == 2 and json.loads(path.read_text())["serial"] == 2
        assert LocalBackend(path).read().outputs["url"].value == "http://x"
        j.set(inst("pod.c"))  # later records extend the new file
        assert b"\"serial\":2," in j.path.read_bytes()
        assert addresses(LocalBackend(path).read()) == ["pod.a", "pod.b", "pod.c"]
        assert b.write(s) is True  # writing the journal's state is a checkpoint
        assert not j.path.exists() and json.loads(path.read_text())["serial"] == 3
        with pytest.raises(RuntimeError):
            b.write(State(lineage=s.lineage))  # another state would leave the journal behind
        with pytest.raises(RuntimeError):
            b.journal(s)
    assert json.loads(path.read_text())["serial"] == 3  # nothing new at close
    assert addresses(LocalBackend(b.backup_path).read()) == ["pod.a"]  # still: before the command


def test_reading_through_the_open_journal_keeps_the_backup_of_before_the_command(path):
    saved_state(path, "pod.a")
    b = LocalBackend(path)
    s = b.read()
    with b.journal(s) as j:
        j.set(inst("pod.b"))
        assert addresses(b.read()) == ["pod.a", "pod.b"]  # the same backend sees its own records
        j.set(inst("pod.c"))
    assert addresses(LocalBackend(b.backup_path).read()) == ["pod.a"]
    assert json.loads(path.read_text())["serial"] == 2


def test_set_after_close_still_records(path):
    """A worker still running when the journal closed (second Ctrl-C) must not lose its record."""
    saved_state(path, "pod.a")
    b = LocalBackend(path)
    s = b.read()
    j = b.journal(s)
    j.close()
    j.close()  # idempotent
    j.set(inst("pod.late"))
    assert addresses(LocalBackend(path).read()) == ["pod.a", "pod.late"] and not j.path.exists()
    j.remove("pod.late")
    assert addresses(LocalBackend(path).read()) == ["pod.a"]


def test_concurrent_sets_from_ten_threads(path):
    saved_state(path, "network.app")
    b = LocalBackend(path)
    s = b.read()
    n_threads, per_thread = 10, 60
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(per_thread):
                addr = f"pod.t{t}[{i}]"
                j.set(inst(addr, status="tainted"))
                j.set(inst(addr))
                if i % 3 == 0:
                    j.remove(addr)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    with b.journal(s) as j:
        threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        expected = ["network.app"] + sorted(
            (f"pod.t{t}[{i}]" for t in range(n_threads) for i in range(per_thread) if i % 3),
            key=lambda a: (a.split("[")[0], int(a.split("[")[1][:-1])))
        fresh = LocalBackend(path).read()  # replayed from the journal alone
        assert addresses(fresh) == expected == addresses(s)
        assert all(r.status == "ready" for r in fresh)
        records = n_threads * per_thread * 2 + n_threads * per_thread // 3
        assert j.records == records and len(j.path.read_bytes().splitlines()) == records
        assert 0 < j.writes <= records  # concurrent callers share writes (how many depends on the disk)
    assert addresses(LocalBackend(path).read()) == expected


# ---- replay by the next command -------------------------------------------------------------

def test_killed_apply_is_replayed_by_every_reader_and_folded_by_the_next_write(path):
    saved_state(path, "pod.a", "pod.gone")

    def work(j):
        j.set(inst("pod.b", status="tainted"))
        j.set(inst("pod.c"))
        j.remove("pod.gone")

    crash_after(path, work)
    jpath = journal_path_for(path)
    assert jpath.exists() and json.loads(path.read_text())["serial"] == 1

    b = LocalBackend(path)
    s = b.read()
    assert addresses(s) == ["pod.a", "pod.b", "pod.c"] and s.serial == 2
    assert s.get("pod.b").status == "tainted"  # the next plan replaces it
    assert b.write(s) is True  # nothing changed, but the journal is folded in, under the serial shown
    assert not jpath.exists() and json.loads(path.read_text())["serial"] == 2
    # the backup is the state as this command read it: file + journal
    assert addresses(LocalBackend(b.backup_path).read()) == ["pod.a", "pod.b", "pod.c"]
    s.set(inst("pod.d"))
    assert b.write(s) and s.serial == 3


def test_changing_a_replayed_state_gets_a_new_serial(path):
    saved_state(path, "pod.a")
    crash_after(path, lambda j: j.set(inst("pod.b")))
    b = LocalBackend(path)
    s = b.read()
    assert s.serial == 2  # what a plan saved now records
    s.remove("pod.a")
    b.write(s)
    assert json.loads(path.read_text())["serial"] == 3  # not 2: a plan saved against the replay is stale
    assert not journal_path_for(path).exists()


def test_next_journal_folds_a_leftover_one_first(path):
    saved_state(path, "pod.a")
    crash_after(path, lambda j: j.set(inst("pod.b")))
    b = LocalBackend(path)
    s = b.read()
    with b.journal(s) as j:
        assert json.loads(path.read_text())["serial"] == 2 and j.serial == 2  # leftover folded in
        assert not j.path.exists()
        j.set(inst("pod.c"))
    assert json.loads(path.read_text())["serial"] == 3
    assert addresses(LocalBackend(path).read()) == ["pod.a", "pod.b", "pod.c"]


def test_torn_last_line_is_ignored(path):
    saved_state(path, "pod.a")
    crash_after(path, lambda j: (j.set(inst("pod.b")), j.set(inst("pod.c"))))
    jpath = journal_path_for(path)
    whole = jpath.read_bytes()
    last = whole.splitlines(keepends=True)[-1]
    jpath.write_bytes(whole[:-len(last)] + last[:len(last) // 2])  # killed in the middle of a write
    assert addresses(LocalBackend(path).read()) == ["pod.a", "pod.b"]
    jpath.write_bytes(whole + b"\0" * 100 + b"\n" + b"\0" * 50)  # a block the disk never wrote
    assert addresses(LocalBackend(path).read()) == ["pod.a", "pod.b", "pod.c"]
    b = LocalBackend(path)
    s = b.read()
    b.write(s)  # folds the valid part in
    assert not jpath.exists() and addresses(LocalBackend(path).read()) == ["pod.a", "pod.b", "pod.c"]


def test_a_journal_of_only_torn_lines_changes_nothing(path):
    saved_state(path, "pod.a")
    jpath = journal_path_for(path)
    jpath.write_bytes(b"0123abcd {\"lineage\":")
    b = LocalBackend(path)
    s = b.read()
    assert addresses(s) == ["pod.a"] and s.serial == 1
    assert b.write(s) is False and not jpath.exists()


def test_damage_in_the_middle_is_an_error(path):
    saved_state(path, "pod.a")
    crash_after(path, lambda j: (j.set(inst("pod.b")), j.set(inst("pod.c"))))
    jpath = journal_path_for(path)
    lines = jpath.read_bytes().splitlines(keepends=True)
    jpath.write_bytes(lines[0].replace(b"pod.b", b"pod.x") + lines[1])  # checksum no longer matches
    with pytest.raises(DiagnosticsError) as e:
        LocalBackend(path).read()
    d = e.value.diagnostics[0]
    assert d.summary == "Failed to load the state journal"
    assert "line 1: checksum mismatch" in d.detail and str(jpath) in d.detail
    assert "move it away" in d.hint


@pytest.mark.parametrize("change,found", [
    ("lineage", "holds another state"),
    ("serial", "is at serial 2"),
    ("no file", "there is no orch.orchstate"),
])
def test_a_journal_that_does_not_extend_the_file_is_refused(path, change, found):
    saved_state(path, "pod.a")
    crash_after(path, lambda j: j.set(inst("pod.b")))  # extends serial 1
    jpath = journal_path_for(path)
    if change == "lineage":  # another state's file copied over this one
        path.write_text(State(resources=[inst("pod.z")]).to_json(serial=1))
    elif change == "serial":  # a newer file of the same state restored from elsewhere
        s = State.from_json(path.read_bytes())
        path.write_text(s.to_json(serial=2))
    else:
        path.unlink()
    journal_before = jpath.read_bytes()
    for reader in (lambda: LocalBackend(path).read(), lambda: LocalBackend(path).journal(State())):
        with pytest.raises(DiagnosticsError) as e:
            reader()
        d = e.value.diagnostics[0]
        assert d.summary == "State journal does not match the state file"
        assert found in d.detail and "serial 1" in d.detail and "not applied" in d.detail, d.detail
        assert f"move {jpath.name} away" in d.hint
    assert jpath.read_bytes() == journal_before  # nothing was mixed in or deleted


def test_a_journal_already_folded_in_is_ignored(path, monkeypatch):
    """Killed after the compacted state replaced the file but before the journal was deleted."""
    saved_state(path, "pod.a")
    b = LocalBackend(path)
    s = b.read()
    j = b.journal(s)
    j.set(inst("pod.b"))
    j.remove("pod.a")
    monkeypatch.setattr(LocalBackend, "_remove_journal", lambda self: None)
    j.close()
    monkeypatch.undo()
    assert j.path.exists() and b'"op":"compacted","into":2' in j.path.read_bytes().splitlines()[-1]
    b2 = LocalBackend(path)
    s2 = b2.read()
    assert addresses(s2) == ["pod.b"] and s2.serial == 2  # not replayed again, not an error
    s2.set(inst("pod.c"))
    b2.write(s2)
    assert not j.path.exists() and json.loads(path.read_text())["serial"] == 3


def test_a_leftover_folded_by_a_write_is_marked_before_the_file_is_replaced(path, monkeypatch):
    saved_state(path, "pod.a")
    crash_after(path, lambda j: j.set(inst("pod.b")))
    b = LocalBackend(path)
    s = b.read()
    s.set(inst("pod.c"))
    monkeypatch.setattr(LocalBackend, "_remove_journal", lambda self: None)  # killed right after the rename
    b.write(s)
    monkeypatch.undo()
    fresh = LocalBackend(path).read()
    assert addresses(fresh) == ["pod.a", "pod.b", "pod.c"] and fresh.serial == 3


def test_journal_write_failure_is_a_diagnostic_and_close_still_writes_everything(path, monkeypatch):
    import orchdsl.state.journal as journal_module

    saved_state(path, "pod.a")
    b = LocalBackend(path)
    s = b.read()
    j = b.journal(s)
    j.set(inst("pod.b"))
    real = journal_module.append_durably

    def full(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal_module, "append_durably", full)
    with pytest.raises(DiagnosticsError) as e:
        j.set(inst("pod.c"))
    assert e.value.diagnostics[0].summary == "Failed to write the state journal"
    assert "No space left on device" in e.value.diagnostics[0].detail
    with pytest.raises(DiagnosticsError):
        j.set(inst("pod.d"))  # the journal stays failed: a record that cannot be durable is an error
    monkeypatch.setattr(journal_module, "append_durably", real)
    assert j.checkpoint()  # the full write records what is in memory, pod.c included
    assert addresses(LocalBackend(path).read()) == ["pod.a", "pod.b", "pod.c"] and not j.path.exists()
    j.set(inst("pod.e"))  # healthy again, and only new records in the new journal
    assert [json.loads(line.split(b" ", 1)[1])["serial"] for line in j.path.read_bytes().splitlines()] == [2]
    j.close()
    assert addresses(LocalBackend(path).read()) == ["pod.a", "pod.b", "pod.c", "pod.e"]


def _failing_replace(monkeypatch):
    import orchdsl.state.backend as backend_module

    def replace(src, dst):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(backend_module.os, "replace", replace)


def test_failed_checkpoint_keeps_the_journal_going(path, monkeypatch):
    saved_state(path, "pod.a")
    b = LocalBackend(path)
    s = b.read()
    with b.journal(s) as j:
        j.set(inst("pod.b"))
        with monkeypatch.context() as m:
            _failing_replace(m)
            with pytest.raises(DiagnosticsError) as e:
                j.checkpoint()
        assert e.value.diagnostics[0].summary == "Failed to write the state"
        assert json.loads(path.read_text())["serial"] == 1 and j.path.exists()
        j.set(inst("pod.c"))  # after the "compacted" line of the failed attempt: still replayed
        assert addresses(LocalBackend(path).read()) == ["pod.a", "pod.b", "pod.c"]
    assert not j.path.exists() and json.loads(path.read_text())["serial"] == 2
    assert addresses(LocalBackend(path).read()) == ["pod.a", "pod.b", "pod.c"]


def test_failed_close_leaves_the_journal_for_the_next_write(path, monkeypatch):
    saved_state(path, "pod.a")
    b = LocalBackend(path)
    s = b.read()
    j = b.journal(s)
    j.set(inst("pod.b"))
    with monkeypatch.context() as m:
        _failing_replace(m)
        with pytest.raises(DiagnosticsError):
            j.close()
    assert j.closed and j.path.exists()
    assert addresses(LocalBackend(path).read()) == ["pod.a", "pod.b"]  # nothing recorded is lost
    j.set(inst("pod.c"))  # a late change: written in full, folding the journal in
    assert not j.path.exists()
    fresh = LocalBackend(path).read()
    assert addresses(fresh) == ["pod.a", "pod.b", "pod.c"]
    assert fresh.serial == json.loads(path.read_text())["serial"]


def test_journal_file_is_private_like_the_state(path):
    saved_state(path, "pod.a")
    path.chmod(0o640)
    b = LocalBackend(path)
    with b.journal(b.read()) as j:
        j.set(inst("pod.b"))
        assert j.path.stat().st_mode & 0o777 == 0o640
    b = LocalBackend(path.with_name("new.orchstate"))
    with b.journal(b.read()) as j:
        j.set(inst("pod.b"))
        assert j.path.stat().st_mode & 0o777 == 0o600


def test_saved_plans_hold_the_state_as_json(path):
    from orchdsl.plan.model import Plan
    from orchdsl.plan.planfile import SavedPlan, dumps_plan_file, loads_plan_file

    s = State(resources=[inst("pod.b"), inst("pod.a")])
    s.set_output("x", 1)
    back = loads_plan_file(dumps_plan_file(SavedPlan(Plan(prior_state=s), "."))).plan.prior_state
    assert back.to_json() == s.to_json() and addresses(back) == ["pod.a", "pod.b"]
    back.set(inst("pod.c"))
    assert "pod.c" in back and "pod.c" not in s


# ---- SIGKILL --------------------------------------------------------------------------------------

CHILD = r"""
import sys, threading
from orchdsl.state import LocalBackend, ResourceInstance, StateLock

path, run, checkpoints = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
out_lock = threading.Lock()

def say(line):
    with out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()  # reported only after the call returned: the parent checks these

def inst(addr, status):
    return ResourceInstance.for_address(addr, "docker", {"id": addr, "pad": "x" * 300}, status=status)

def work(t):
    for i in range(100000):
        addr = f"pod.r{run}_t{t}[{i}]"
        j.set(inst(addr, "tainted"))
        say(f"tainted {addr}")
        j.set(inst(addr, "ready"))
        say(f"ready {addr}")
        if i % 4 == 0:
            j.remove(addr)
            say(f"removed {addr}")
        if checkpoints and t == 0 and i % 50 == 49:
            j.checkpoint()

lock = StateLock(path, "apply")
lock.acquire()
b = LocalBackend(path)
j = b.journal(b.read())
say("started")
threads = [threading.Thread(target=work, args=(t,)) for t in range(10)]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""


def test_sigkill_at_random_moments_loses_no_reported_record(tmp_path, path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    rng = random.Random(4321)
    reported: dict[str, str] = {}  # address -> the last state the child reported durable
    kills = 8
    for run in range(kills):
        child = subprocess.Popen([sys.executable, str(script), str(path), str(run), str(run % 2)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        first = child.stdout.readline()
        assert first == b"started\n", child.stderr.read().decode()
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(child.pid, signal.SIGKILL)
        out, _ = child.communicate()
        assert child.returncode == -signal.SIGKILL
        lines = out.decode().splitlines()
        if lines and not lines[-1].count(" "):
            lines.pop()  # a line the kill cut short
        for line in lines:
            what, addr = line.split(" ", 1)
            reported[addr] = what

        state = LocalBackend(path).read()  # what any command sees now
        for addr, what in reported.items():
            got = state.get(addr)
            may_be_removed = int(addr.rsplit("[", 1)[1][:-1]) % 4 == 0  # a removal may be in flight
            if what == "removed":
                assert got is None, addr
            elif what == "ready":
                assert (got is not None and got.status == "ready") or (got is None and may_be_removed), addr
            else:  # tainted: the final record may be in flight, or even the removal after it
                assert got is not None or may_be_removed, addr
        info = read_lock(path)
        assert info is not None  # the killed child's lock: a person removes it
        force_unlock(path, info.ID)
    assert sum(1 for w in reported.values() if w == "ready") > 100  # the children did work
    # the next command folds the leftover journal in and removes it
    b = LocalBackend(path)
    s = b.read()
    b.write(s)
    assert not journal_path_for(path).exists()
    assert LocalBackend(path).read().to_json() == s.to_json()
