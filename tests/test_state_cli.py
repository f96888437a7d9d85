"""orch state list|show|rm|mv, orch force-unlock, orch output: output text and errors."""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os

import pytest

from orchdsl.state import LocalBackend, ResourceInstance, StateLock, read_lock
from orchdsl.state.commands import register


def run(capsys, *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="orch")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    rc = args.func(args)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def state(tmp_path):
    path = tmp_path / "orch.orchstate"
    b = LocalBackend(path)
    s = b.read()
    for i in range(3):
        s.set(ResourceInstance.for_address(
            f"pod.web[{i}]", "docker",
            {"id": f"c{i}", "image": "nginx:1.25", "env": {"MODE": "prod", "PASSWORD": "hunter2"},
             "ports": [80, 443], "labels": {}, "command": None, "restart": True, "template": "${x}"},
            sensitive_attributes=[("env", "PASSWORD")], dependencies=["network.app"]))
    s.set(ResourceInstance.for_address("network.app", "docker", {"id": "n1", "name": "app"}))
    s.set(ResourceInstance.for_address('module.db["main"].pod.pg', "docker", {"id": "p1"}, status="tainted"))
    s.set_output("url", "http://web.local:8080")
    s.set_output("password", "hunter2", sensitive=True)
    s.set_output("ips", ["10.0.0.1", "10.0.0.2"])
    s.set_output("replicas", 3)
    b.write(s)
    return path


def test_state_list(capsys, state):
    rc, out, err = run(capsys, "state", "list", "--state", str(state))
    assert rc == 0 and err == ""
    assert out.splitlines() == ["network.app", "pod.web[0]", "pod.web[1]", "pod.web[2]",
                                'module.db["main"].pod.pg']
    assert run(capsys, "state", "list", "--state", str(state), "pod.web[1]", "module.db")[1].splitlines() == \
        ["pod.web[1]", 'module.db["main"].pod.pg']
    assert run(capsys, "state", "list", "--state", str(state), "--id", "n1")[1] == "network.app\n"


def test_state_path_is_relative_to_chdir(capsys, state, monkeypatch):
    parser = argparse.ArgumentParser(prog="orch")
    parser.add_argument("--chdir")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["--chdir", str(state.parent), "state", "list", "network.app"])
    assert args.func(args) == 0
    assert capsys.readouterr().out == "network.app\n"
    monkeypatch.chdir(state.parent)
    assert run(capsys, "state", "list", "network.app")[1] == "network.app\n"  # default ./orch.orchstate


def test_state_show(capsys, state):
    rc, out, _ = run(capsys, "state", "show", "--state", str(state), "pod.web[0]")
    assert rc == 0
    assert out == """\
# pod.web[0]:
resource "pod" "web" {
    env      = {
        "MODE"     = "prod"
        "PASSWORD" = (sensitive value)
    }
    id       = "c0"
    image    = "nginx:1.25"
    labels   = {}
    ports    = [
        80,
        443,
    ]
    restart  = true
    template = "$${x}"
}
"""
    rc, out, _ = run(capsys, "state", "show", "--state", str(state), 'module.db["main"].pod.pg')
    assert out.splitlines()[:2] == ['# module.db["main"].pod.pg: (tainted)', 'resource "pod" "pg" {']
    assert run(capsys, "state", "show", "--state", str(state), "network.app")[0] == 0


@pytest.mark.parametrize("addr,summary", [
    ("pod.web", "Error: Multiple instances found for the given pattern!"),
    ("pod.web[7]", "Error: No instance found for the given address!"),
    ("module.db", "Error: Invalid address"),
    ("pod", "Error: Invalid address"),
])
def test_state_show_errors(capsys, state, addr, summary):
    rc, out, err = run(capsys, "state", "show", "--state", str(state), addr)
    assert rc == 1 and out == "" and err.startswith(summary)
    assert "Traceback" not in err


def test_state_commands_without_a_state_file(capsys, tmp_path):
    for argv in (["state", "list"], ["state", "show", "pod.a"], ["state", "rm", "pod.a"],
                 ["state", "mv", "pod.a", "pod.b"]):
        rc, _, err = run(capsys, *argv, "--state", str(tmp_path / "none.orchstate"))
        assert rc == 1 and err.startswith("Error: No state file was found!"), argv
    assert not (tmp_path / "none.orchstate").exists()


def test_state_rm(capsys, state):
    rc, out, err = run(capsys, "state", "rm", "--state", str(state), "pod.web[1]", "module.db")
    assert (rc, err) == (0, "")
    assert out == ('Removed pod.web[1]\nRemoved module.db["main"].pod.pg\n'
                   "Successfully removed 2 resource instance(s).\n")
    s = LocalBackend(state).read()
    assert [r.address for r in s] == ["network.app", "pod.web[0]", "pod.web[2]"] and s.serial == 2
    assert len(LocalBackend(f"{state}.backup").read()) == 5  # the state before the command
    assert read_lock(state) is None


def test_state_rm_dry_run_and_unknown_address_change_nothing(capsys, state):
    before = state.read_text()
    rc, out, _ = run(capsys, "state", "rm", "--state", str(state), "--dry-run", "pod.web")
    assert rc == 0 and out.endswith("Would have removed 3 resource instance(s).\n")
    rc, out, err = run(capsys, "state", "rm", "--state", str(state), "pod.web[0]", "pod.nope")
    assert rc == 1 and "Error: Invalid target address" in err and "No matching objects found for pod.nope" in err
    assert state.read_text() == before


def test_state_mv(capsys, state):
    rc, out, _ = run(capsys, "state", "mv", "--state", str(state), "pod.web", "pod.site")
    assert rc == 0
    assert out.splitlines() == ['Move "pod.web[0]" to "pod.site[0]"', 'Move "pod.web[1]" to "pod.site[1]"',
                                'Move "pod.web[2]" to "pod.site[2]"', "Successfully moved 3 object(s)."]
    s = LocalBackend(state).read()
    assert s.get("pod.site[2]").attributes["id"] == "c2" and s.list("pod.web") == []
    rc, _, err = run(capsys, "state", "mv", "--state", str(state), "pod.site[0]", "network.site")
    assert rc == 1 and "resource types don't match" in err


def test_writing_commands_wait_for_the_lock(capsys, state):
    lock = StateLock(state, "apply")
    lock.acquire()
    try:
        rc, _, err = run(capsys, "state", "rm", "--state", str(state), "--lock-timeout", "200ms", "pod.web[0]")
        assert rc == 1 and err.startswith("Error: Error acquiring the state lock")
        assert f"orch force-unlock {lock.info.ID}" in err
        rc, _, err = run(capsys, "state", "mv", "--state", str(state), "--lock-timeout", "soon", "pod.a", "pod.b")
        assert rc == 1 and err.startswith("Error: Invalid --lock-timeout")
    finally:
        lock.release()
    assert run(capsys, "state", "rm", "--state", str(state), "--lock-timeout", "1s", "pod.web[0]")[0] == 0


def _take_lock_and_die(path: str, ready) -> None:
    StateLock(path, "apply").acquire()
    ready.set()
    import os
    os._exit(0)  # exits without releasing, like a killed apply


def test_force_unlock(capsys, state, monkeypatch):
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    p = ctx.Process(target=_take_lock_and_die, args=(str(state), ready))
    p.start()
    p.join(5)
    lock_id = read_lock(state).ID

    rc, _, err = run(capsys, "force-unlock", "--state", str(state), "--force", "wrong-id")
    assert rc == 1 and "Error: Failed to unlock state" in err and lock_id in err
    monkeypatch.setattr("sys.stdin", io.StringIO("no\n"))
    rc, out, err = run(capsys, "force-unlock", "--state", str(state), lock_id)
    assert rc == 1 and "Do you really want to force-unlock?" in out and "force-unlock cancelled" in err
    assert read_lock(state).ID == lock_id

    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))
    rc, out, _ = run(capsys, "force-unlock", "--state", str(state), lock_id)
    assert rc == 0 and "successfully unlocked" in out and read_lock(state) is None
    rc, _, err = run(capsys, "force-unlock", "--state", str(state), "--force", lock_id)
    assert rc == 1 and "is not locked" in err


def test_output_text(capsys, state):
    rc, out, err = run(capsys, "output", "--state", str(state))
    assert (rc, err) == (0, "")
    assert out == """\
ips = [
  "10.0.0.1",
  "10.0.0.2",
]
password = (sensitive value)
replicas = 3
url = "http://web.local:8080"
"""
    assert run(capsys, "output", "--state", str(state), "url")[1] == '"http://web.local:8080"\n'
    # a human rendering never shows a secret, even asked for by name; --raw and --json print it
    rc, out, err = run(capsys, "output", "--state", str(state), "password")
    assert (rc, out) == (0, "(sensitive value)\n") and "hunter2" not in err and "--raw password" in err


def test_output_json(capsys, state):
    rc, out, _ = run(capsys, "output", "--state", str(state), "--json")
    assert rc == 0
    assert json.loads(out) == {
        "ips": {"sensitive": False, "type": ["tuple", ["string", "string"]], "value": ["10.0.0.1", "10.0.0.2"]},
        "password": {"sensitive": True, "type": "string", "value": "hunter2"},
        "replicas": {"sensitive": False, "type": "number", "value": 3},
        "url": {"sensitive": False, "type": "string", "value": "http://web.local:8080"},
    }
    assert json.loads(run(capsys, "output", "--state", str(state), "--json", "ips")[1]) == ["10.0.0.1", "10.0.0.2"]


def test_output_raw(capsys, state):
    assert run(capsys, "output", "--state", str(state), "--raw", "url")[1] == "http://web.local:8080"
    assert run(capsys, "output", "--state", str(state), "--raw", "replicas")[1] == "3"
    rc, _, err = run(capsys, "output", "--state", str(state), "--raw", "ips")
    assert rc == 1 and err.startswith("Error: Unsupported value for raw output") and "--json" in err
    rc, _, err = run(capsys, "output", "--state", str(state), "--raw")
    assert rc == 1 and "Output name required" in err
    rc, _, err = run(capsys, "output", "--state", str(state), "--raw", "--json", "url")
    assert rc == 1 and "mutually exclusive" in err


def test_output_missing(capsys, state, tmp_path):
    rc, _, err = run(capsys, "output", "--state", str(state), "nope")
    assert rc == 1 and err.startswith('Error: Output "nope" not found')
    rc, out, err = run(capsys, "output", "--state", str(tmp_path / "none"))
    assert rc == 0 and out == "" and err.startswith("Warning: No outputs found")
    assert run(capsys, "output", "--state", str(tmp_path / "none"), "--json")[1] == "{}\n"


def test_corrupt_state_is_a_diagnostic_not_a_traceback(capsys, state):
    state.write_text('{"version": 1, "serial"')
    for argv in (["state", "list"], ["output"], ["state", "rm", "pod.web[0]"]):
        rc, _, err = run(capsys, *argv, "--state", str(state))
        assert rc == 1 and err.startswith("Error: Failed to load the state") and ".backup" in err, argv
    assert read_lock(state) is None  # the lock taken by rm was released


def test_state_without_subcommand_prints_help(capsys):
    rc, _, err = run(capsys, "state")
    assert rc == 1 and "list" in err and "mv" in err


def test_commands_after_a_killed_apply_see_its_journal(capsys, state):
    """An apply killed mid-way leaves its lock and its journal: every command sees the recorded changes,
    force-unlock works as usual, and the next command that writes folds the journal into the file."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child, killed as by SIGKILL: no cleanup at all
        lock = StateLock(state, "apply")
        lock.acquire()
        b = LocalBackend(state)
        j = b.journal(b.read())
        j.set(ResourceInstance.for_address("pod.new", "docker", {"id": "n"}, status="tainted"))
        j.remove("pod.web[2]")
        os._exit(0)
    os.waitpid(pid, 0)
    journal = state.with_name(state.name + ".journal")
    assert journal.exists()

    rc, out, _ = run(capsys, "state", "list", "--state", str(state))
    assert rc == 0 and out.splitlines() == ["network.app", "pod.new", "pod.web[0]", "pod.web[1]",
                                            'module.db["main"].pod.pg']
    rc, out, _ = run(capsys, "state", "show", "--state", str(state), "pod.new")
    assert rc == 0 and "(tainted)" in out
    rc, _, err = run(capsys, "state", "rm", "--state", str(state), "pod.new")
    assert rc == 1 and "Error acquiring the state lock" in err
    info = read_lock(state)
    rc, _, _ = run(capsys, "force-unlock", "--state", str(state), "--force", info.ID)
    assert rc == 0 and journal.exists()
    rc, out, _ = run(capsys, "state", "rm", "--state", str(state), "pod.new")
    assert rc == 0 and not journal.exists()
    assert [r.address for r in LocalBackend(state).read()] == ["network.app", "pod.web[0]", "pod.web[1]",
                                                                'module.db["main"].pod.pg']
    # the backup is the state as the rm read it: file + journal
    assert [r.address for r in LocalBackend(f"{state}.backup").read()] == [
        "network.app", "pod.new", "pod.web[0]", "pod.web[1]", 'module.db["main"].pod.pg']


def test_a_journal_of_another_state_is_an_error_for_every_command(capsys, state):
    journal = state.with_name(state.name + ".journal")
    other = state.with_name("other.orchstate")
    b = LocalBackend(other)
    s = b.read()
    with b.journal(s) as j:  # a journal of another state, copied next to this one
        j.set(ResourceInstance.for_address("pod.x", "docker", {"id": "x"}))
        journal.write_bytes(j.path.read_bytes())
    for argv in (["state", "list"], ["state", "rm", "pod.web[0]"], ["output"]):
        rc, _, err = run(capsys, *argv, "--state", str(state))
        assert rc == 1 and "State journal does not match the state file" in err, (argv, err)
        assert "holds another state" in err
    assert journal.exists()
