"""Encrypted state at rest (ORCH_STATE_PASSPHRASE): the state file, its backup and journal, and saved plans with
sensitive values are AES-256-GCM under a scrypt key; a missing or wrong passphrase is an error that writes
nothing; `orch state encrypt|decrypt` migrate; a killed apply leaves an encrypted journal that every reader
replays."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from orchdsl.addrs import ResourceAddress
from orchdsl.cli import main
from orchdsl.diagnostics import DiagnosticsError
from orchdsl.plan.model import Action, OutputChange, Plan, ResourceChange
from orchdsl.plan.planfile import SavedPlan, read_plan_file, write_plan_file
from orchdsl.sdk.testing.memory import world_objects
from orchdsl.state import LocalBackend, ResourceInstance, State, force_unlock, read_lock
from orchdsl.state.encryption import MAGIC, PASSPHRASE_ENV
from orchdsl.state.journal import journal_path_for
from tests.test_state_journal import crash_after

REPO = Path(__file__).resolve().parents[1]
SECRET = "hunter2-very-secret"
PASS = "correct horse battery staple"
# What a plain state or journal always contains: none of it may be readable in an encrypted file.
CLEAR_MARKERS = [SECRET.encode(), b"lineage", b"resources", b"attributes", b"pod.", b"serial"]


def inst(addr: str) -> ResourceInstance:
    return ResourceInstance.for_address(addr, "docker", {"id": f"id-{addr}", "env": {"PASSWORD": SECRET}},
                                        sensitive_attributes=(("env", "PASSWORD"),))


def addresses(state: State) -> list[str]:
    return [r.address for r in state]


def assert_encrypted(data: bytes) -> dict:
    """The file is a plain JSON header line (without a key), then only base64 lines; returns the header."""
    assert data.startswith(MAGIC)
    header_line, *lines = data.decode("ascii").splitlines()
    header = json.loads(header_line)
    assert header["orch_encrypted"] == 1 and header["method"] == "aes-256-gcm"
    assert {k: header["kdf"][k] for k in ("name", "n", "r", "p")} == {"name": "scrypt", "n": 2**15, "r": 8, "p": 1}
    assert len(base64.b64decode(header["kdf"]["salt"])) == 16
    assert set(header) == {"orch_encrypted", "method", "kdf", "check"}  # never the key
    assert lines
    for line in lines:
        base64.b64decode(line, validate=True)
    for marker in CLEAR_MARKERS:
        assert marker not in data, marker
    return header


@pytest.fixture
def path(tmp_path) -> Path:
    return tmp_path / "orch.orchstate"


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv(PASSPHRASE_ENV, PASS)


def saved_state(path: Path, *addrs: str) -> State:
    b = LocalBackend(path)
    s = b.read()
    for a in addrs:
        s.set(inst(a))
    s.set_output("password", SECRET, sensitive=True)
    b.write(s)
    return s


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(directory.iterdir())}


# ---- the state file ------------------------------------------------------------------------------

def test_round_trip_and_nothing_in_clear(path, secret_env):
    s = saved_state(path, "pod.a", "pod.b[0]")
    data = path.read_bytes()
    assert_encrypted(data)
    assert data.count(b"\n") == 2  # the header, then the state as one sealed line
    assert path.stat().st_mode & 0o777 == 0o600
    back = LocalBackend(path).read()
    assert back.to_json() == s.to_json() and back.serial == 1 and back.lineage == s.lineage
    assert back.outputs["password"].value == SECRET
    # the next write is encrypted too, and so is its backup (the previous encrypted file, linked)
    back.set(inst("pod.c"))
    b = LocalBackend(path)
    b.read()
    b.write(back)
    assert_encrypted(path.read_bytes())
    assert_encrypted(Path(f"{path}.backup").read_bytes())
    assert addresses(LocalBackend(path).read()) == ["pod.a", "pod.b[0]", "pod.c"]


@pytest.mark.parametrize("passphrase, summary", [(None, "State is encrypted"),
                                                  ("not the passphrase", "Cannot decrypt the state: wrong passphrase")])
def test_missing_or_wrong_passphrase_is_an_error_and_writes_nothing(path, monkeypatch, capsys, passphrase, summary):
    monkeypatch.setenv(PASSPHRASE_ENV, PASS)
    saved_state(path, "pod.a")
    b = LocalBackend(path)
    b.journal(b.read()).set(inst("pod.b"))  # a journal left behind, as by a killed apply
    if passphrase is None:
        monkeypatch.delenv(PASSPHRASE_ENV)
    else:
        monkeypatch.setenv(PASSPHRASE_ENV, passphrase)
    before = snapshot(path.parent)
    with pytest.raises(DiagnosticsError) as e:
        LocalBackend(path).read()
    (d,) = e.value.diagnostics
    assert d.summary == summary and str(path) in d.detail and PASSPHRASE_ENV in d.hint
    for argv in (["state", "list"], ["state", "rm", "pod.a"], ["state", "mv", "pod.a", "pod.z"], ["output"],
                 ["state", "encrypt"], ["state", "decrypt"]):
        code = main([*argv, "--state", str(path)])
        _, err = capsys.readouterr()
        expected = "No passphrase to encrypt with" if passphrase is None and argv[1:] == ["encrypt"] else summary
        assert code == 1 and expected in err and "Traceback" not in err, (argv, err)
    assert snapshot(path.parent) == before  # nothing written, nothing treated as "no state"


def test_empty_passphrase_is_no_passphrase(path, monkeypatch):
    monkeypatch.setenv(PASSPHRASE_ENV, "")
    saved_state(path, "pod.a")
    assert json.loads(path.read_bytes())["resources"][0]["address"] == "pod.a"


def test_a_plain_state_is_read_with_the_passphrase_and_encrypted_by_the_next_write(path, monkeypatch):
    s = saved_state(path, "pod.a")
    plain = path.read_bytes()
    monkeypatch.setenv(PASSPHRASE_ENV, PASS)
    b = LocalBackend(path)
    read = b.read()
    assert read.to_json() == s.to_json()
    assert b.write(read) is False and path.read_bytes() == plain  # nothing changed: not rewritten
    read.set(inst("pod.b"))
    assert b.write(read) is True
    assert_encrypted(path.read_bytes())
    backup = Path(f"{path}.backup").read_bytes()
    assert_encrypted(backup)  # the old plain file was re-encoded, not linked
    monkeypatch.setenv(PASSPHRASE_ENV, PASS)
    b2 = LocalBackend(path)
    assert b2._decrypt(backup, b2.backup_path) == plain


# ---- orch state encrypt / decrypt ----------------------------------------------------------------

def test_encrypt_and_decrypt_commands_round_trip_exactly(tmp_path, path, monkeypatch, capsys):
    saved_state(path, "pod.a")
    s = saved_state(path, "pod.a", "pod.b")  # serial 2, and a backup of serial 1
    backup_path = Path(f"{path}.backup")
    plain, plain_backup = path.read_bytes(), backup_path.read_bytes()

    assert main(["state", "encrypt", str(tmp_path)]) == 1  # no passphrase
    assert "No passphrase to encrypt with" in capsys.readouterr().err
    assert path.read_bytes() == plain

    monkeypatch.setenv(PASSPHRASE_ENV, PASS)
    assert main(["state", "encrypt", str(tmp_path)]) == 0
    assert "Encrypted" in capsys.readouterr().out
    assert_encrypted(path.read_bytes())
    assert_encrypted(backup_path.read_bytes())
    enc = LocalBackend(path).read()
    assert (enc.lineage, enc.serial, enc.to_json()) == (s.lineage, 2, s.to_json())  # a migration: same serial
    assert main(["state", "encrypt", "--state", str(path)]) == 0  # again: harmless
    capsys.readouterr()

    monkeypatch.delenv(PASSPHRASE_ENV)
    assert main(["state", "decrypt", str(tmp_path)]) == 1  # cannot read it
    assert "State is encrypted" in capsys.readouterr().err

    monkeypatch.setenv(PASSPHRASE_ENV, PASS)
    assert main(["state", "decrypt", str(tmp_path)]) == 0
    assert f"Unset {PASSPHRASE_ENV}" in capsys.readouterr().out
    assert path.read_bytes() == plain and backup_path.read_bytes() == plain_backup  # exact
    assert path.stat().st_mode & 0o777 == 0o600 and not Path(f"{path}.lock").exists()


def test_encrypt_folds_a_leftover_journal(path, monkeypatch, capsys):
    saved_state(path, "pod.a")
    crash_after(path, lambda j: (j.set(inst("pod.b")), j.remove("pod.a")))
    jpath = journal_path_for(path)
    assert SECRET.encode() in jpath.read_bytes()  # a plain journal: the passphrase was not set yet
    monkeypatch.setenv(PASSPHRASE_ENV, PASS)
    assert main(["state", "encrypt", "--state", str(path)]) == 0, capsys.readouterr().err
    assert not jpath.exists()
    assert_encrypted(path.read_bytes())
    s = LocalBackend(path).read()
    assert addresses(s) == ["pod.b"] and s.serial == 2  # the serial the replayed state showed


def test_decrypt_refuses_a_backup_it_cannot_read_before_writing_anything(path, monkeypatch, capsys):
    monkeypatch.setenv(PASSPHRASE_ENV, "an older passphrase")
    saved_state(path, "pod.a")
    backup = Path(f"{path}.backup")
    backup.write_bytes(path.read_bytes())  # a backup of another passphrase
    monkeypatch.setenv(PASSPHRASE_ENV, PASS)
    path.unlink()
    saved_state(path, "pod.a")
    before = snapshot(path.parent)
    assert main(["state", "decrypt", "--state", str(path)]) == 1
    err = capsys.readouterr().err
    assert "wrong passphrase" in err and str(backup) in err
    assert snapshot(path.parent) == before


# ---- the journal ---------------------------------------------------------------------------------

def test_journal_records_are_encrypted_one_per_line_and_replayed(path, secret_env):
    saved_state(path, "pod.a")
    crash_after(path, lambda j: (j.set(inst("pod.b")), j.set(inst("pod.c")), j.remove("pod.a")))
    jpath = journal_path_for(path)
    data = jpath.read_bytes()
    assert_encrypted(data)
    assert data.count(b"\n") == 4  # the header, then one line per record
    assert jpath.stat().st_mode & 0o777 == 0o600
    s = LocalBackend(path).read()
    assert addresses(s) == ["pod.b", "pod.c"] and s.serial == 2
    b = LocalBackend(path)
    b.write(b.read())  # the next write folds it in
    assert not jpath.exists() and addresses(LocalBackend(path).read()) == ["pod.b", "pod.c"]
    assert_encrypted(Path(f"{path}.backup").read_bytes())  # the replayed state, encrypted


def test_a_torn_last_encrypted_record_is_ignored(path, secret_env):
    saved_state(path, "pod.a")
    crash_after(path, lambda j: (j.set(inst("pod.b")), j.set(inst("pod.c"))))
    jpath = journal_path_for(path)
    whole = jpath.read_bytes()
    last = whole.splitlines(keepends=True)[-1]
    jpath.write_bytes(whole[:-len(last)] + last[:len(last) // 2])  # killed in the middle of a write
    assert addresses(LocalBackend(path).read()) == ["pod.a", "pod.b"]
    flipped = last[:5] + (b"A" if last[5:6] != b"A" else b"B") + last[6:]
    jpath.write_bytes(whole[:-len(last)] + flipped)  # a whole line, not authentic: a torn write too
    assert addresses(LocalBackend(path).read()) == ["pod.a", "pod.b"]
    header = whole[:whole.index(b"\n") + 1]
    jpath.write_bytes(header[:len(header) // 2])  # killed while writing the header
    assert addresses(LocalBackend(path).read()) == ["pod.a"]
    b = LocalBackend(path)
    assert b.write(b.read()) is False and not jpath.exists()


def test_a_damaged_record_in_the_middle_is_an_error(path, secret_env):
    saved_state(path, "pod.a")
    crash_after(path, lambda j: (j.set(inst("pod.b")), j.set(inst("pod.c"))))
    jpath = journal_path_for(path)
    lines = jpath.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1][:10] + (b"A" if lines[1][10:11] != b"A" else b"B") + lines[1][11:]
    jpath.write_bytes(b"".join(lines))
    with pytest.raises(DiagnosticsError) as e:
        LocalBackend(path).read()
    assert e.value.diagnostics[0].summary == "Failed to load the state journal"


def test_a_journal_without_a_state_file_is_never_read_as_empty(path, monkeypatch):
    monkeypatch.setenv(PASSPHRASE_ENV, PASS)
    crash_after(path, lambda j: j.set(inst("pod.a")))  # the first apply, killed before any state file
    assert not path.exists()
    assert addresses(LocalBackend(path).read()) == ["pod.a"]
    monkeypatch.setenv(PASSPHRASE_ENV, "wrong")
    with pytest.raises(DiagnosticsError) as e:
        LocalBackend(path).read()
    (d,) = e.value.diagnostics
    assert d.summary == "Cannot decrypt the state: wrong passphrase" and str(journal_path_for(path)) in d.detail


# ---- SIGKILL during an apply ---------------------------------------------------------------------

PODS = f"""
variable "password" {{
  type      = string
  default   = "{SECRET}"
  sensitive = true
}}
pod "web" {{
  replicas = 8
  container "httpd" {{
    image = "orch/busybox:test"
    env   = {{ PASSWORD = var.password }}
  }}
}}
"""


def test_sigkill_during_an_encrypted_apply_loses_no_object(tmp_path, monkeypatch, capsys):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "main.orch").write_text(PODS)
    world = tmp_path / "world"
    env = {**os.environ, "ORCH_PROVIDER_MODULES": "orchdsl.sdk.testing.memory:MemoryProvider",
           "ORCH_MEMORY_WORLD": str(world), "ORCH_MEMORY_DELAY": "0.2", "PYTHONPATH": str(REPO),
           PASSPHRASE_ENV: PASS}
    p = subprocess.Popen([sys.executable, "-m", "orchdsl.cli", "apply", "--auto-approve", "--parallelism", "2",
                          str(cfg)], env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert p.stdout is not None
    done = 0
    for line in p.stdout:
        done += b"Creation complete" in line
        if done == 3:
            p.send_signal(signal.SIGKILL)
            break
    p.communicate(timeout=30)
    assert p.returncode == -signal.SIGKILL

    state_file, jpath = cfg / "orch.orchstate", journal_path_for(cfg / "orch.orchstate")
    assert jpath.exists()  # the records since the last state write
    for f in (state_file, jpath):
        if f.exists():
            assert_encrypted(f.read_bytes())
    made = set(world_objects(world))
    assert 3 <= len(made) < 8
    monkeypatch.setenv(PASSPHRASE_ENV, PASS)
    state = LocalBackend(state_file).read()
    assert made <= set(addresses(state))  # every object that exists is known (those in flight: tainted)
    assert main(["state", "list", "--state", str(state_file)]) == 0
    assert made <= set(capsys.readouterr().out.split())
    monkeypatch.delenv(PASSPHRASE_ENV)
    assert main(["state", "list", "--state", str(state_file)]) == 1
    assert "State is encrypted" in capsys.readouterr().err

    monkeypatch.setenv(PASSPHRASE_ENV, PASS)
    info = read_lock(state_file)
    assert info is not None
    force_unlock(state_file, info.ID)
    b = LocalBackend(state_file)
    b.write(b.read())  # the next write folds the journal in
    assert not jpath.exists() and made <= set(addresses(LocalBackend(state_file).read()))
    assert_encrypted(state_file.read_bytes())


# ---- plan files ----------------------------------------------------------------------------------

def a_plan(sensitive: bool) -> SavedPlan:
    after = {"id": "x", "env": {"PASSWORD": SECRET}}
    plan = Plan(changes=[ResourceChange(ResourceAddress.parse("pod.web[0]"), Action.CREATE, None, after,
                                        after_sensitive=[("env", "PASSWORD")] if sensitive else [],
                                        provider="memory")],
                outputs=[OutputChange("pw", Action.CREATE, None, SECRET, sensitive=sensitive)],
                lineage="lin", serial=3, timestamp="2024-01-01T00:00:00Z", prior_state=State(lineage="lin", serial=3))
    return SavedPlan(plan, "cfg")


def test_plan_file_with_sensitive_values_is_encrypted(tmp_path, monkeypatch):
    f = tmp_path / "p.orchplan"
    monkeypatch.setenv(PASSPHRASE_ENV, PASS)
    write_plan_file(f, a_plan(sensitive=True))
    data = f.read_bytes()
    assert data.startswith(MAGIC) and SECRET.encode() not in data and b"orch-plan" not in data
    assert f.stat().st_mode & 0o777 == 0o600
    back = read_plan_file(f)
    assert back.plan.changes[0].after == {"id": "x", "env": {"PASSWORD": SECRET}} and back.plan.serial == 3

    for passphrase, summary in ((None, "Plan file is encrypted"),
                                ("wrong", "Cannot decrypt the plan file: wrong passphrase")):
        if passphrase is None:
            monkeypatch.delenv(PASSPHRASE_ENV)
        else:
            monkeypatch.setenv(PASSPHRASE_ENV, passphrase)
        with pytest.raises(DiagnosticsError) as e:
            read_plan_file(f)
        (d,) = e.value.diagnostics
        assert d.summary == summary and str(f) in d.detail and PASSPHRASE_ENV in d.hint

    monkeypatch.setenv(PASSPHRASE_ENV, PASS)
    f.write_bytes(data[:-20] + b"AAAAAAAAAAAAAAAAAAA\n")  # damaged after the header
    with pytest.raises(DiagnosticsError) as e:
        read_plan_file(f)
    assert e.value.diagnostics[0].summary == "Damaged plan file"


def test_plan_file_stays_plain_without_passphrase_or_without_secrets(tmp_path, monkeypatch):
    f = tmp_path / "p.orchplan"
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    write_plan_file(f, a_plan(sensitive=True))
    assert f.read_bytes().startswith(b'{"format":"orch-plan"') and f.stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv(PASSPHRASE_ENV, PASS)
    write_plan_file(f, a_plan(sensitive=False))
    assert f.read_bytes().startswith(b'{"format":"orch-plan"')
    assert read_plan_file(f).plan.serial == 3
