"""Every address, count and path argument of every command is checked: an empty or blank one never means
"everything", one that matches nothing is an error with a did-you-mean, one that means nothing in its context
is refused. Terraform's behaviour is the floor (docs/reliability.md, "Arguments: addresses, counts and paths").
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from orchdsl.cli import main
from orchdsl.state import LocalBackend, StateLock
from tests.support.memory_provider import world_objects

CONFIG = """
variable "replicas" {
  type    = number
  default = 2
}

pod "db" {
  container "pg" {
    image = "orch/busybox:test"
  }
}

pod "web" {
  replicas = var.replicas
  container "httpd" {
    image = "orch/busybox:test"
    env   = { DB = pod.db.ip }
  }
}

output "web_ips" {
  value = pod.web[*].ip
}
"""


@pytest.fixture
def env(tmp_path, monkeypatch):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "main.orch").write_text(CONFIG)
    world = tmp_path / "world"
    monkeypatch.setenv("ORCH_PROVIDER_MODULES", "tests.support.memory_provider:MemoryProvider")
    monkeypatch.setenv("ORCH_MEMORY_WORLD", str(world))
    monkeypatch.delenv("ORCH_MEMORY_FAIL", raising=False)
    monkeypatch.chdir(tmp_path)
    return cfg, world


@pytest.fixture
def applied(env, capsys):
    cfg, world = env
    assert main(["apply", "--auto-approve", str(cfg)]) == 0
    capsys.readouterr()
    return cfg, world


def orch(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def fails(capsys, *argv: str, summary: str, says: str = "", hint: str = "") -> str:
    """Run orch; it must fail with a diagnostic (not a usage error, not a traceback)."""
    code, out, err = orch(capsys, *argv)
    assert code == 1, (argv, out, err)
    assert f"Error: {summary}" in err, (argv, err)
    assert says in err, (argv, err)
    assert hint in err, (argv, err)
    assert "Traceback" not in err
    return err


def state_text(cfg: Path) -> str:
    return (cfg / "orch.orchstate").read_text()


# ---- empty and blank addresses ----------------------------------------------------------------

@pytest.mark.parametrize("blank", ["", " ", "\t"])
def test_an_empty_address_never_means_everything(applied, capsys, blank):
    cfg, world = applied
    before = state_text(cfg)
    st = ["--state", str(cfg / "orch.orchstate")]
    for argv in (["state", "rm", *st, blank], ["state", "rm", *st, "pod.db", blank],
                 ["state", "list", *st, blank], ["state", "show", *st, blank],
                 ["state", "mv", *st, blank, "pod.x"], ["state", "mv", *st, "pod.db", blank]):
        fails(capsys, *argv, summary="Invalid address", says="empty address", hint="unset shell variable")
    assert state_text(cfg) == before
    for argv in (["plan", "--target", blank, str(cfg)], ["plan", "--replace", blank, str(cfg)],
                 ["apply", "--auto-approve", "--target", blank, str(cfg)],
                 ["destroy", "--auto-approve", "--target", blank, str(cfg)],
                 ["import", "--dir", str(cfg), blank, "x"]):
        fails(capsys, *argv, summary="Invalid", says="empty address")
    assert state_text(cfg) == before and len(world_objects(world)) == 3


def test_state_addresses_that_match_nothing_name_the_close_ones(applied, capsys):
    cfg, _ = applied
    st = ["--state", str(cfg / "orch.orchstate")]
    fails(capsys, "state", "rm", *st, "pod.wbe", summary="Invalid target address", hint='did you mean "pod.web"')
    fails(capsys, "state", "show", *st, "pod.dbb", summary="No instance found", hint='did you mean "pod.db"')
    fails(capsys, "state", "mv", *st, "pod.dbb", "pod.x", summary="Invalid source address")
    code, out, err = orch(capsys, "state", "list", *st, "pod.wbe", "pod.db")
    assert (code, out) == (0, "pod.db\n")  # a filter: what matches is listed, exit 0, as Terraform
    assert "Warning: No matching instances" in err and 'did you mean "pod.web"' in err


def test_state_rm_with_repeated_or_overlapping_addresses(applied, capsys):
    cfg, _ = applied
    code, out, err = orch(capsys, "state", "rm", "--state", str(cfg / "orch.orchstate"), "--dry-run",
                          "pod.web", "pod.web[0]", "pod.web")
    assert code == 0, err
    assert out == "Would remove pod.web[0]\nWould remove pod.web[1]\nWould have removed 2 resource instance(s).\n"


def test_state_mv_to_itself_is_refused(applied, capsys):
    cfg, _ = applied
    before = state_text(cfg)
    for src, dst in (("pod.db", "pod.db"), ("pod.web", " pod.web"), ("pod.web[1]", "pod.web[1]")):
        fails(capsys, "state", "mv", "--state", str(cfg / "orch.orchstate"), src, dst,
              summary="Invalid state move", says="to itself")
    assert state_text(cfg) == before


def test_empty_names_and_ids_are_refused(applied, capsys):
    cfg, _ = applied
    st = ["--state", str(cfg / "orch.orchstate")]
    fails(capsys, "output", *st, "", summary="Invalid output name", says="empty")
    fails(capsys, "state", "list", *st, "--id", "", summary="Invalid --id", says="empty")
    fails(capsys, "import", "--dir", str(cfg), "pod.db", " ", summary="Invalid import id", says="empty")
    with StateLock(cfg / "orch.orchstate", "apply"):
        fails(capsys, "force-unlock", "--force", *st, "", summary="Invalid lock ID", says="empty")
        assert (cfg / "orch.orchstate.lock").exists()


# ---- paths ------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["plan", ""], ["apply", "--auto-approve", ""], ["destroy", "--auto-approve", ""], ["graph", ""],
    ["console", ""], ["validate", ""], ["validate", "--syntax-only", ""], ["fmt", ""], ["fmt", "--check", ""],
    ["show", "--dir", ""], ["show", ""], ["import", "--dir", "", "pod.db", "x"],
])
def test_an_empty_path_is_not_the_current_directory(env, capsys, argv):
    cfg, _ = env
    (Path.cwd() / "main.orch").write_text(CONFIG)  # a configuration in the working directory: not used
    fails(capsys, *argv, summary="Invalid", says="empty", hint="unset shell variable")
    assert not (Path.cwd() / "orch.orchstate").exists()


@pytest.mark.parametrize("argv", [["show", "--dir", "nope"], ["plan", "nope"], ["graph", "nope"],
                                  ["console", "nope"], ["import", "--dir", "nope", "pod.db", "x"]])
def test_a_missing_directory_is_an_error(env, capsys, argv):
    fails(capsys, *argv, summary="No configuration directory", says="nope")


def test_a_file_where_a_directory_is_expected(env, capsys):
    cfg, _ = env
    fails(capsys, "plan", str(cfg / "main.orch"), summary="No configuration directory", says="not a directory")
    fails(capsys, "show", "--dir", str(cfg / "main.orch"), summary="No configuration directory")


def test_state_path_must_name_a_file(applied, capsys):
    cfg, _ = applied
    for argv in (["plan", "--state", "", str(cfg)], ["apply", "--auto-approve", "--state", "", str(cfg)],
                 ["show", "--state", ""], ["state", "list", "--state", ""], ["output", "--state", ""],
                 ["force-unlock", "--force", "--state", "", "x"]):
        fails(capsys, *argv, summary="Invalid --state", says="empty")
    for argv in (["plan", "--state", str(cfg), str(cfg)], ["state", "list", "--state", str(cfg)],
                 ["show", "--state", str(cfg)], ["output", "--state", str(cfg)]):
        fails(capsys, *argv, summary="Invalid --state", says="is a directory")


def test_empty_plan_and_variable_file_paths(applied, capsys):
    cfg, _ = applied
    fails(capsys, "plan", "--out", "", str(cfg), summary="Invalid --out", says="empty")
    fails(capsys, "plan", "--var-file", "", str(cfg), summary="Invalid --var-file", says="empty")


def test_plan_out_never_overwrites_the_state_or_the_configuration(applied, capsys, tmp_path):
    cfg, _ = applied
    (tmp_path / "prod.orchvars").write_text("replicas = 3\n")
    for target in (cfg / "orch.orchstate", cfg / "main.orch", cfg / "orch.orchstate.backup",
                   tmp_path / "prod.orchvars", tmp_path / "prod.orchvars.json", tmp_path / "other.orchstate"):
        before = target.read_bytes() if target.exists() else None
        fails(capsys, "plan", "--out", str(target), str(cfg), summary="Invalid --out", says="would overwrite")
        assert (target.read_bytes() if target.exists() else None) == before
    fails(capsys, "plan", "--out", "orch.orchstate", "--state", "orch.orchstate", str(cfg),
          summary="Invalid --out", says="the state file")


# ---- a directory without configuration files ---------------------------------------------------

def test_a_directory_without_configuration_files_is_not_an_empty_configuration(applied, capsys, tmp_path):
    cfg, world = applied
    (cfg / "main.orch").rename(tmp_path / "away.orch")
    (cfg / "notes.txt").write_text("not configuration")
    before = state_text(cfg)
    fails(capsys, "plan", str(cfg), summary="No configuration files", says="--destroy")
    fails(capsys, "apply", "--auto-approve", str(cfg), summary="No configuration files", says="orch destroy")
    fails(capsys, "graph", str(cfg), summary="No configuration files")
    fails(capsys, "import", "--dir", str(cfg), "pod.db", "x", summary="No configuration files")
    assert state_text(cfg) == before and len(world_objects(world)) == 3
    # destroying everything stays possible, explicitly
    code, out, _ = orch(capsys, "plan", "--destroy", "--no-color", str(cfg))
    assert code == 0 and "Plan: 0 to add, 0 to change, 3 to destroy." in out
    code, out, err = orch(capsys, "destroy", "--auto-approve", str(cfg))
    assert code == 0, err
    assert world_objects(world) == {}


# ---- targets and replace that match nothing ------------------------------------------------------

def test_targets_that_match_nothing_are_errors_with_did_you_mean(applied, capsys):
    cfg, _ = applied
    fails(capsys, "plan", "--target", "pod.wbe", str(cfg), summary="Target matches nothing",
          says="pod.wbe", hint='did you mean "pod.web"')
    fails(capsys, "plan", "--target", "pod.web[9]", str(cfg), summary="Target matches nothing",
          hint="pod.web[0], pod.web[1]")
    fails(capsys, "plan", "--target", "module.app", str(cfg), summary="Target matches nothing")
    fails(capsys, "apply", "--auto-approve", "--target", "pod.dbb", str(cfg), summary="Target matches nothing",
          hint='did you mean "pod.db"')
    fails(capsys, "destroy", "--auto-approve", "--target", "pod.wb", str(cfg), summary="Target matches nothing",
          hint='did you mean "pod.web"')
    fails(capsys, "plan", "--refresh-only", "--target", "pod.nope", str(cfg), summary="Target matches nothing")
    # one good target among bad ones is still an error: nothing is planned
    fails(capsys, "plan", "--target", "pod.db", "--target", "pod.nope", str(cfg),
          summary="Target matches nothing", says="pod.nope")
    # what exists only in the state (a block removed) can be targeted: its deletion is planned
    code, out, _ = orch(capsys, "plan", "--no-color", "--target", "pod.web[1]", "--var", "replicas=1", str(cfg))
    assert code == 0 and "pod.web[1] will be destroyed" in out


def test_replace_that_matches_no_instance_is_an_error(applied, capsys):
    cfg, world = applied
    fails(capsys, "plan", "--replace", "pod.web", str(cfg), summary="Invalid --replace",
          says="pod.web has 2 instances", hint="pod.web[0], pod.web[1]")
    fails(capsys, "plan", "--replace", "pod.web[5]", str(cfg), summary="Invalid --replace",
          says="pod.web[5]", hint="pod.web[0], pod.web[1]")
    fails(capsys, "plan", "--replace", "pod.dbx", str(cfg), summary="Invalid --replace",
          hint='did you mean "pod.db"')
    fails(capsys, "plan", "--replace", "pod.web[1]", "--var", "replicas=1", str(cfg),
          summary="Invalid --replace", says="destroys it")
    fails(capsys, "plan", "--replace", "pod.db", "--target", "pod.web", str(cfg), summary="Invalid --replace",
          says="not targeted")
    fails(capsys, "apply", "--auto-approve", "--replace", "pod.wbe[0]", str(cfg), summary="Invalid --replace")
    assert len(world_objects(world)) == 3


@pytest.mark.parametrize("flags,says", [
    (["--destroy", "--refresh-only"], "mutually exclusive"),
    (["--refresh=false", "--refresh-only"], "nothing to do"),
    (["--replace", "pod.db", "--refresh-only"], "--refresh-only"),
    (["--replace", "pod.db", "--destroy"], "--destroy"),
    (["--json", "--format", "markdown"], "--format"),
])
def test_plan_options_that_contradict_each_other(applied, capsys, flags, says):
    cfg, _ = applied
    fails(capsys, "plan", *flags, str(cfg), summary="Incompatible", says=says)


def test_destroy_with_replace_is_refused(applied, capsys):
    cfg, world = applied
    fails(capsys, "destroy", "--auto-approve", "--replace", "pod.db", str(cfg), summary="Incompatible")
    assert len(world_objects(world)) == 3


# ---- counts --------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["0", "-1"])
@pytest.mark.parametrize("command", ["apply", "destroy"])
def test_parallelism_must_be_positive(env, capsys, command, value):
    cfg, world = env
    if command == "destroy":
        assert orch(capsys, "apply", "--auto-approve", str(cfg))[0] == 0
    before = (cfg / "orch.orchstate").read_text() if (cfg / "orch.orchstate").exists() else None
    fails(capsys, command, "--auto-approve", f"--parallelism={value}", str(cfg), summary="Invalid --parallelism",
          says="at least 1")
    after = (cfg / "orch.orchstate").read_text() if (cfg / "orch.orchstate").exists() else None
    assert after == before  # nothing applied, no outputs written
    assert len(world_objects(world)) == (3 if command == "destroy" else 0)


def test_the_executor_refuses_a_parallelism_below_one(applied):
    from orchdsl.diagnostics import DiagnosticsError
    from orchdsl.engine import workflow
    from orchdsl.engine.planner import PlanOptions

    cfg, _ = applied
    session = workflow.open_session(cfg)
    state = session.backend.read()
    the_plan, _ = workflow.plan(session, state, PlanOptions(destroy=True))
    assert the_plan is not None
    with pytest.raises(DiagnosticsError, match="parallelism"):
        workflow.apply(session, the_plan, state, lambda line: None, parallelism=0)


@pytest.mark.parametrize("value", ["abc", "-1s", "1x", ""])
@pytest.mark.parametrize("command", ["plan", "apply", "destroy", "import"])
def test_lock_timeout_garbage_is_a_diagnostic(applied, capsys, command, value):
    cfg, _ = applied
    args = ["--dir", str(cfg), "pod.db", "x"] if command == "import" else ["--auto-approve", str(cfg)] \
        if command != "plan" else [str(cfg)]
    fails(capsys, command, f"--lock-timeout={value}", *args, summary="Invalid --lock-timeout")


# ---- saved plans -----------------------------------------------------------------------------------

@pytest.mark.parametrize("flags,says", [
    (["--var", "replicas=3"], "variables"),
    (["--var-file", "x.orchvars"], "variables"),
    (["--target", "pod.db"], "--target"),
    (["--replace", "pod.db"], "--replace"),
    (["--refresh=false"], "--refresh"),
])
def test_apply_of_a_saved_plan_refuses_planning_options(env, capsys, tmp_path, flags, says):
    cfg, world = env
    planfile = tmp_path / "p.orchplan"
    assert orch(capsys, "plan", "--out", str(planfile), str(cfg))[0] == 0
    err = fails(capsys, "apply", *flags, str(planfile), summary="Can't", says=says)
    assert "when applying a saved plan" in err
    assert world_objects(world) == {}
    assert orch(capsys, "apply", str(planfile))[0] == 0


# ---- import --------------------------------------------------------------------------------------

def test_import_refuses_an_object_already_managed_at_another_address(applied, capsys):
    cfg, world = applied
    db_id = world_objects(world)["pod.db"]["id"]
    (cfg / "main.orch").write_text(CONFIG + '\npod "db2" {\n  container "pg" {\n    image = "orch/busybox:test"\n'
                                            "  }\n}\n")
    before = state_text(cfg)
    fails(capsys, "import", "--dir", str(cfg), "pod.db2", db_id, summary="Object already managed",
          says="pod.db", hint="orch state mv")
    assert state_text(cfg) == before


def test_import_checks_the_instance_key_against_the_block(applied, capsys):
    cfg, world = applied
    db_id = world_objects(world)["pod.db"]["id"]
    assert orch(capsys, "state", "rm", "--state", str(cfg / "orch.orchstate"), "pod.db")[0] == 0
    fails(capsys, "import", "--dir", str(cfg), "pod.db[0]", db_id, summary="Invalid import address",
          says="no count")
    fails(capsys, "import", "--dir", str(cfg), 'pod.db["a"]', db_id, summary="Invalid import address")
    assert orch(capsys, "state", "rm", "--state", str(cfg / "orch.orchstate"), "pod.web[1]")[0] == 0
    web1 = world_objects(world)["pod.web[1]"]["id"]
    fails(capsys, "import", "--dir", str(cfg), "pod.web", web1, summary="Invalid import address",
          hint="pod.web[0]")
    fails(capsys, "import", "--dir", str(cfg), "pod.web[7]", web1, summary="Invalid import address",
          says="pod.web[0], pod.web[1]")
    code, _, err = orch(capsys, "import", "--dir", str(cfg), "pod.web[1]", web1)
    assert code == 0, err
    assert json.loads(state_text(cfg))["serial"] > 0


def test_graph_needs_no_variable_values(env, capsys, tmp_path):
    cfg, _ = env
    (cfg / "main.orch").write_text(CONFIG.replace("  default = 2\n", ""))  # replicas: required, no value
    code, out, err = orch(capsys, "graph", str(cfg))
    assert code == 0, err
    assert '"pod.web" -> "pod.db"' in out


def test_console_reads_expressions_not_arguments(env, capsys, monkeypatch):
    cfg, _ = env
    monkeypatch.setattr(sys, "stdin", io.StringIO("var.replicas\n"))
    assert orch(capsys, "console", str(cfg)) == (0, "2\n", "")


def test_state_commands_keep_the_state_file_intact_on_bad_arguments(applied, capsys):
    cfg, _ = applied
    backend = LocalBackend(cfg / "orch.orchstate")
    serial = backend.read().serial
    for argv in (["state", "rm", "--lock-timeout=-5s", "pod.db"], ["state", "mv", "--lock-timeout=x", "pod.db",
                                                                    "pod.db2"]):
        fails(capsys, *argv[:2], "--state", str(cfg / "orch.orchstate"), *argv[2:], summary="Invalid --lock-timeout")
    assert LocalBackend(cfg / "orch.orchstate").read().serial == serial
