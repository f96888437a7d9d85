"""The pg state backend against a real PostgreSQL server (tests/pgserver.py): reads and writes, history, the
journal of an apply, the advisory lock (waiting, naming the holder, released when the holder dies), workspaces,
state migrate, and clear errors for a wrong connection string or a down server."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchdsl.diagnostics import DiagnosticsError
from orchdsl.state import ResourceInstance, State
from orchdsl.state.backends import open_backend
from orchdsl.state.pg import PgBackend, PgSettings
from tests.support.forked import forked_orch
from tests.support.memory_provider import memory_config_dir, orch, world_objects

pytestmark = pytest.mark.pg
REPO = Path(__file__).resolve().parents[1]

CONFIG = """
variable "replicas" {
  type    = number
  default = 2
}

pod "web" {
  replicas = var.replicas
  container "httpd" {
    image = "orch/busybox:test"
  }
}
"""


def settings_block(schema: str, conn: str | None = None) -> str:
    extra = f'\n    conn_str = "{conn}"' if conn is not None else ""
    return f'orch {{\n  namespace = "shop"\n  backend "pg" {{\n    schema_name = "{schema}"{extra}\n  }}\n}}\n'


@pytest.fixture
def cfg(tmp_path, monkeypatch, pg_schema):
    d = memory_config_dir(tmp_path, monkeypatch)
    monkeypatch.delenv("ORCH_WORKSPACE", raising=False)
    (d / "main.orch").write_text(CONFIG)
    (d / "backend.orch").write_text(settings_block(pg_schema))
    return d


def backend_of(schema: str, workspace: str = "default") -> PgBackend:
    return PgBackend(PgSettings("", schema), "shop", workspace)


def inst(name: str, **attrs) -> ResourceInstance:
    return ResourceInstance.for_address(f"pod.{name}", "docker", {"id": name, **attrs})


# ---- the backend itself ---------------------------------------------------------------------------------------

def test_write_read_and_history(pg_schema):
    b = backend_of(pg_schema)
    assert not b.exists() and len(b.read()) == 0
    state = b.read()
    state.set(inst("a"))
    assert b.write(state) and state.serial == 1
    assert not b.write(state)  # unchanged: no new version
    state.set(inst("b"))
    assert b.write(state) and state.serial == 2
    other = backend_of(pg_schema)
    read = other.read()
    assert read.lineage == state.lineage and read.serial == 2 and sorted(str(i.addr) for i in read) == \
        ["pod.a", "pod.b"]
    assert [v.serial for v in other.history()] == [1, 2]
    first = other.read_serial(1)
    assert first is not None and [str(i.addr) for i in first] == ["pod.a"]
    # another workspace of the same configuration is another state
    assert len(backend_of(pg_schema, "staging").read()) == 0


def test_the_journal_survives_a_killed_command(pg_schema):
    b = backend_of(pg_schema)
    state = b.read()
    state.set(inst("a"))
    b.write(state)
    with b.lock("apply"):
        journal = b.journal(state)
        journal.set(inst("b"))
        journal.remove("pod.a")
        # killed here: no close, the connection (and the lock) just go
        b._conn.close()  # type: ignore[union-attr]
    again = backend_of(pg_schema)
    seen = again.read()
    assert sorted(str(i.addr) for i in seen) == ["pod.b"] and seen.serial == 2
    with again.lock("apply"):
        assert again.write(seen) and seen.serial == 2  # the journal folded in under the serial read showed
    assert [v.serial for v in again.history()] == [1, 2]
    assert [str(i.addr) for i in backend_of(pg_schema).read()] == ["pod.b"]


def test_many_journal_records_make_one_version(pg_schema):
    b = backend_of(pg_schema)
    state = b.read()
    with b.lock("apply"), b.journal(state) as journal:
        for i in range(50):
            journal.set(inst(f"p{i}"))
    assert [v.serial for v in b.history()] == [1]
    assert len(backend_of(pg_schema).read()) == 50


def test_the_lock_names_its_holder_and_goes_with_its_connection(pg_schema):
    holder = backend_of(pg_schema)
    lock = holder.lock("apply")
    lock.acquire()
    waiter = backend_of(pg_schema)
    t = time.monotonic()
    with pytest.raises(DiagnosticsError) as e:
        waiter.lock("plan", 1.0).acquire()
    assert time.monotonic() - t >= 1.0
    text = e.value.diagnostics[0].detail
    assert "Error acquiring the state lock" == e.value.diagnostics[0].summary
    assert "Operation: apply" in text and lock.info is not None and lock.info.ID in text
    holder._conn.close()  # type: ignore[union-attr]  # the holder dies: its session ends
    with waiter.lock("plan", 5.0):
        pass


def test_force_unlock_ends_the_holders_session(pg_schema):
    holder = backend_of(pg_schema)
    lock = holder.lock("apply")
    info = lock.acquire()
    other = backend_of(pg_schema)
    with pytest.raises(DiagnosticsError):
        other.force_unlock("not-the-id")
    assert other.force_unlock(info.ID).ID == info.ID
    with other.lock("apply", 5.0):
        pass


def test_encrypted_versions(pg_schema, monkeypatch):
    monkeypatch.setenv("ORCH_STATE_PASSPHRASE", "correct horse battery staple")
    b = backend_of(pg_schema)
    state = b.read()
    state.set(inst("a", secret="hunter2"))
    b.write(state)
    import psycopg

    with psycopg.connect(os.environ["ORCH_PG_CONN"]) as conn:
        (data,) = conn.execute(f'SELECT data FROM "{pg_schema}".states').fetchone()
    assert b"hunter2" not in bytes(data) and bytes(data).startswith(b'{"orch_encrypted":')
    assert [str(i.addr) for i in backend_of(pg_schema).read()] == ["pod.a"]
    monkeypatch.delenv("ORCH_STATE_PASSPHRASE")
    with pytest.raises(DiagnosticsError) as e:
        backend_of(pg_schema).read()
    assert "ORCH_STATE_PASSPHRASE" in str(e.value.diagnostics[0].render(color=False))


# ---- through orch -----------------------------------------------------------------------------------------------

def test_apply_plan_state_commands_on_pg(cfg, capsys, monkeypatch, pg_schema):
    assert orch(capsys, "apply", "-auto-approve", str(cfg))[0] == 0
    assert not (cfg / "orch.orchstate").exists()  # nothing local
    assert orch(capsys, "plan", "-detailed-exitcode", str(cfg))[0] == 0
    monkeypatch.chdir(cfg)
    code, out, _ = orch(capsys, "state", "list")
    assert code == 0 and out.split() == ["pod.web[0]", "pod.web[1]"]
    assert orch(capsys, "apply", "-auto-approve", "-var", "replicas=3", str(cfg))[0] == 0
    code, out, _ = orch(capsys, "state", "history", str(cfg))
    rows = out.strip().splitlines()[1:]
    assert code == 0 and rows[-1].endswith("(current)") and [int(r.split()[0]) for r in rows] == \
        list(range(1, len(rows) + 1))
    code, out, _ = orch(capsys, "state", "pull", "--serial", "1", str(cfg))
    assert code == 0 and len(json.loads(out)["resources"]) == 2 and json.loads(out)["serial"] == 1
    code, out, _ = orch(capsys, "state", "pull", str(cfg))
    assert json.loads(out)["serial"] == len(rows) and len(json.loads(out)["resources"]) == 3
    code, _, err = orch(capsys, "state", "pull", "--serial", "99", str(cfg))
    assert code == 1 and "No such state version" in err
    assert orch(capsys, "destroy", "-auto-approve", str(cfg))[0] == 0
    assert world_objects(cfg.parent / "world") == {}


def test_workspaces_on_pg(cfg, capsys):
    assert orch(capsys, "workspace", "new", "staging", str(cfg))[0] == 0
    assert orch(capsys, "workspace", "list", str(cfg))[1] == "  default\n* staging\n"
    assert orch(capsys, "apply", "-auto-approve", str(cfg))[0] == 0
    staging = open_backend(cfg)
    assert isinstance(staging, PgBackend) and staging.workspace == "staging" and len(staging.read()) == 2
    assert orch(capsys, "workspace", "select", "default", str(cfg))[0] == 0
    code, _, err = orch(capsys, "workspace", "delete", "staging", str(cfg))
    assert code == 1 and "Workspace is not empty" in err
    assert orch(capsys, "workspace", "delete", "--force", "staging", str(cfg))[0] == 0
    assert orch(capsys, "workspace", "list", str(cfg))[1] == "* default\n"


def test_migrate_local_pg_local_round_trips_exactly(tmp_path, monkeypatch, capsys, pg_schema):
    d = memory_config_dir(tmp_path, monkeypatch)
    (d / "main.orch").write_text(CONFIG + 'orch {\n  namespace = "shop"\n}\n')
    assert orch(capsys, "apply", "-auto-approve", "-var", "replicas=3", str(d))[0] == 0
    original = (d / "orch.orchstate").read_text()
    monkeypatch.setenv("ORCH_PG_CONN", os.environ["ORCH_PG_CONN"])
    # pg_choice without a backend block: ORCH_PG_CONN and schema "orch" -> use the test's schema via the block
    (d / "main.orch").write_text(CONFIG + settings_block(pg_schema))
    code, out, err = orch(capsys, "state", "migrate", "--from", "local", "--to", "pg", str(d))
    assert code == 0, err
    pg = open_backend(d)
    assert isinstance(pg, PgBackend) and pg.read().to_json() == State.from_json(original).to_json()
    code, _, err = orch(capsys, "state", "migrate", "--from", "pg", "--to", "local", str(d))
    assert code == 1 and "already holds a state" in err
    (d / "orch.orchstate").rename(d / "kept")
    code, out, err = orch(capsys, "state", "migrate", "--from", "pg", "--to", "local", str(d))
    assert code == 0, err
    assert (d / "orch.orchstate").read_text() == original  # byte for byte
    assert orch(capsys, "plan", "-detailed-exitcode", "-var", "replicas=3", str(d))[0] == 0  # pg is in use


def test_bad_connection_or_down_server_is_a_clear_error(tmp_path, monkeypatch, capsys, pg_schema):
    d = memory_config_dir(tmp_path, monkeypatch)
    (d / "main.orch").write_text(CONFIG + settings_block(pg_schema, "host=127.0.0.1 port=1 user=orch"))
    for argv in (("plan", str(d)), ("apply", "-auto-approve", str(d)), ("state", "history", str(d))):
        code, out, err = orch(capsys, *argv)
        assert code == 1 and "Failed to connect to the state backend" in err and "Traceback" not in err + out
        assert "port=1" in err and "No changes" not in out
    code, out, err = orch(capsys, "reconcile", "--once", str(d))  # the leader election cannot reach it
    assert code == 1 and "Failed to connect to the state backend" in out and "Traceback" not in err + out
    (d / "main.orch").write_text(CONFIG + settings_block(pg_schema, "postgres://orch:s3cret@127.0.0.1:1/x"))
    code, _, err = orch(capsys, "plan", str(d))
    assert code == 1 and "s3cret" not in err
    (d / "main.orch").write_text(CONFIG + settings_block(pg_schema, "not a = valid = string"))
    code, _, err = orch(capsys, "plan", str(d))
    assert code == 1 and "Invalid PostgreSQL connection string" in err


def test_validate_checks_the_backend_block(tmp_path, monkeypatch, capsys):
    d = memory_config_dir(tmp_path, monkeypatch)
    cases = {
        'orch {\n  namespace = "x"\n  backend "s3" {}\n}\n': 'Invalid backend',
        'orch {\n  namespace = "x"\n  backend "pg" {\n    conn = "x"\n  }\n}\n': 'did you mean "conn_str"',
        'orch {\n  backend "pg" {}\n}\n': "The pg backend needs a namespace",
        'orch {\n  namespace = "x"\n  backend "pg" {\n    schema_name = "Bad-Name"\n  }\n}\n': "Invalid schema_name",
        'orch {\n  namespace = "x"\n  backends "pg" {}\n}\n': "Unsupported block type",
    }
    for text, expected in cases.items():
        (d / "main.orch").write_text(CONFIG + text)
        code, _, err = orch(capsys, "validate", str(d))
        assert code == 1 and expected in err and "main.orch:" in err, (text, err)


# ---- processes ----------------------------------------------------------------------------------------------------

def _env(cfg: Path, delay: str = "0") -> dict[str, str]:
    return {**os.environ, "ORCH_PROVIDER_MODULES": "tests.support.memory_provider:MemoryProvider",
            "ORCH_MEMORY_WORLD": str(cfg.parent / "world"), "ORCH_MEMORY_DELAY": delay, "PYTHONPATH": str(REPO)}


def _orch(*argv: str) -> list[str]:
    return [sys.executable, "-m", "orchdsl.cli", *argv]


def test_two_applies_are_serialised(cfg):
    env = _env(cfg, "2")
    first = subprocess.Popen(_orch("apply", "-auto-approve", "-var", "replicas=4", str(cfg)), env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.2)
    try:
        for line in first.stdout:  # type: ignore[union-attr]
            if "Creating..." in line:
                break
        refused = subprocess.run(_orch("apply", "-auto-approve", "-lock-timeout", "0s", str(cfg)), env=env,
                                 capture_output=True, text=True)
        assert refused.returncode == 1 and "Error acquiring the state lock" in refused.stderr
        assert f"PID:       {first.pid}" in refused.stderr and "Operation: apply" in refused.stderr
        waited = subprocess.run(_orch("apply", "-auto-approve", "-var", "replicas=5", "-lock-timeout", "60s",
                                      str(cfg)), env=_env(cfg), capture_output=True, text=True)
        assert waited.returncode == 0, waited.stderr
    finally:
        first.communicate(timeout=60)
    assert first.returncode == 0
    backend = open_backend(cfg)
    assert isinstance(backend, PgBackend)
    assert len(backend.read()) == 5 and backend.history()[-1].serial == backend.read().serial


def test_killed_holder_releases_the_lock(cfg):
    env = _env(cfg, "2")
    p = subprocess.Popen(_orch("apply", "-auto-approve", str(cfg)), env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    for line in p.stdout:  # type: ignore[union-attr]
        if "Creating..." in line:
            break
    p.send_signal(signal.SIGKILL)
    p.communicate()
    done = subprocess.run(_orch("apply", "-auto-approve", "-lock-timeout", "0s", str(cfg)), env=_env(cfg),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr  # no force-unlock needed


def test_killed_applies_on_pg_leave_a_state_that_lists_every_object_once(cfg, monkeypatch):
    """The crash test on pg: 20 SIGKILLs at random points of applies; after each, every object that exists is in
    the state exactly once; the history keeps every version written."""
    monkeypatch.setenv("ORCH_MEMORY_DELAY", "0.01")
    (cfg / "main.orch").write_text(CONFIG.replace("default = 2", "default = 8"))
    rng = random.Random(15)
    kills, replicas = 0, 0
    world = cfg.parent / "world"
    written: set[int] = set()
    while kills < 20:
        replicas = rng.choice([r for r in (0, 3, 6, 8) if r != replicas])
        pid, out = forked_orch(["apply", "-auto-approve", "-parallelism", "4", "-lock-timeout", "10s",
                                 "-var", f"replicas={replicas}", str(cfg)])
        wanted, seen = rng.randint(1, 4), 0
        for line in out:
            if any(w in line for w in (": Creat", ": Destr", ": Modif", ": Replac")):
                seen += 1
                if seen >= wanted:
                    time.sleep(rng.uniform(0, 0.02))
                    os.kill(pid, signal.SIGKILL)
                    kills += 1
                    break
        out.close()
        os.waitpid(pid, 0)
        b = open_backend(cfg)
        state = b.read()
        addresses = [str(i.addr) for i in state]
        assert len(addresses) == len(set(addresses))
        assert set(world_objects(world)) <= set(addresses), set(world_objects(world)) - set(addresses)
        assert isinstance(b, PgBackend)
        written.update(v.serial for v in b.history())
        b.close()
    monkeypatch.setenv("ORCH_MEMORY_DELAY", "0")
    pid, out = forked_orch(["apply", "-auto-approve", "-lock-timeout", "10s", str(cfg)])
    text = out.read()
    assert os.waitpid(pid, 0)[1] == 0, text
    assert sorted(world_objects(world)) == [f"pod.web[{i}]" for i in range(8)]
    b = open_backend(cfg)
    assert isinstance(b, PgBackend)
    serials = [v.serial for v in b.history()]
    # every version ever written is still there, in order (a killed apply's records are folded into the next
    # version under the serial its readers were shown, so serials may skip one, never go back)
    assert written <= set(serials) and serials == sorted(set(serials)) and serials[-1] == b.read().serial
    b.close()


# ---- one active reconciler ------------------------------------------------------------------------------------

def test_leadership_one_leads_the_other_waits_then_takes_over(pg_schema):
    from orchdsl.reconcile.leader import Leadership

    first, second = Leadership(backend_of(pg_schema)), Leadership(backend_of(pg_schema))
    assert first.try_lead() == (True, "")
    leading, holder = second.try_lead()
    assert not leading and f"pid {os.getpid()}" in holder
    assert first.try_lead() == (True, "")  # still ours
    first._conn.close()  # type: ignore[union-attr]  # the leader dies
    assert second.try_lead() == (True, "")
    assert first.try_lead()[0] is False  # back, it waits
    first.close()
    second.close()


def test_reconcile_events_are_kept_in_the_database(pg_schema):
    from orchdsl.reconcile.loop import Event, read_history, record

    b = backend_of(pg_schema)
    record(b, [Event("replace", f"pod.web[{i}]", "unhealthy", at=1_790_000_000.0 + i) for i in range(250)])
    last = read_history(backend_of(pg_schema), last=10)
    assert [e["subject"] for e in last] == [f"pod.web[{i}]" for i in range(240, 250)]
    assert len(backend_of(pg_schema).event_lines(1000)) == 200  # the last 200 are kept
