"""Terraform habits: single-dash long options (`-out=p.plan`, `-auto-approve`, `-var 'a=b'`, `-refresh=false`,
`-list=false`...) work wherever the double-dash form does, on every subcommand; `-no-color` is accepted by
every command; `fmt -` with `-check`/`-diff` behaves as `terraform fmt` does on standard input."""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import pytest

from orchdsl.cli import build_parser, main, terraform_argv

REPO = Path(__file__).resolve().parents[1]


def subcommands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """(argv prefix, parser) of every command and nested command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen = set()
            for name, sub in action.choices.items():
                if id(sub) in seen:  # an alias
                    continue
                seen.add(id(sub))
                yield (*prefix, name), sub
                yield from subcommands(sub, (*prefix, name))


def positionals(parser: argparse.ArgumentParser) -> list[str]:
    """Placeholder values for the positionals a command requires."""
    out = []
    for a in parser._actions:
        if not a.option_strings and not isinstance(a, argparse._SubParsersAction) and a.nargs in (None, "+"):
            out.append(a.choices[0] if a.choices else "x")
    return out


def sample(action: argparse.Action) -> str:
    if action.choices:
        return str(list(action.choices)[-1])
    if action.type is int:
        return "4"
    if action.type is not None and getattr(action.type, "__name__", "") == "_bool":
        return "false"
    return "v-1"


PARSER = build_parser()  # parse_args does not change it: one for every parse


def parse(argv: list[str]) -> argparse.Namespace:
    try:
        ns = PARSER.parse_args(terraform_argv(PARSER, argv))
    except SystemExit as e:
        raise AssertionError(f"orch {' '.join(argv)}: argparse exited {e.code}") from None
    ns.func = getattr(ns.func, "__name__", ns.func)
    return ns


def long_options(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
            continue
        for opt in action.option_strings:
            if opt.startswith("--") and not opt.startswith("--no-") or opt == "--no-color":
                yield opt, action


COMMANDS = list(subcommands(PARSER))


def test_the_walk_finds_every_command():
    names = {" ".join(c) for c, _ in COMMANDS}
    assert {"validate", "fmt", "console", "plan", "apply", "destroy", "show", "graph", "import", "state list",
            "state show", "state rm", "state mv", "output", "force-unlock"} <= names


@pytest.mark.parametrize("command", [c for c, _ in COMMANDS], ids=[" ".join(c) for c, _ in COMMANDS])
def test_every_long_option_of_every_command_has_its_single_dash_form(command):
    sub = dict(COMMANDS)[command]
    pos = positionals(sub)
    checked = 0
    for opt, action in long_options(sub):
        single = "-" + opt[2:]
        if action.nargs == 0:
            forms = [([opt], [single]), ([opt], [single + "=true"]), ([], [single + "=false"])]
            if isinstance(action, argparse.BooleanOptionalAction):
                forms.append(([f"--no-{opt[2:]}"], [single + "=false"]))
                forms.remove(([], [single + "=false"]))
        else:
            v = sample(action)
            forms = [([opt, v], [single, v]), ([f"{opt}={v}"], [f"{single}={v}"]), ([opt, v], [f"{single}={v}"])]
        for double_form, single_form in forms:
            want = parse([*command, *double_form, *pos])
            got = parse([*command, *single_form, *pos])
            assert vars(got) == vars(want), (command, double_form, single_form)
        checked += 1
    assert checked, f"orch {' '.join(command)} has no long option?"


@pytest.mark.parametrize("command", [c for c, _ in COMMANDS], ids=[" ".join(c) for c, _ in COMMANDS])
def test_every_command_takes_no_color_and_help_in_both_forms(command, capsys):
    sub = dict(COMMANDS)[command]
    pos = positionals(sub)
    assert parse([*command, "-no-color", *pos]).no_color is True
    assert parse([*command, "--no-color", *pos]).no_color is True
    for form in ("-help", "--help", "-h"):
        with pytest.raises(SystemExit) as e:
            PARSER.parse_args(terraform_argv(PARSER, [*command, form]))
        assert e.value.code == 0
        assert capsys.readouterr().out.startswith("usage: orch ")


def test_the_rewrite_leaves_values_short_options_and_positionals_alone():
    p = build_parser()
    assert terraform_argv(p, ["plan", "-var", "-out=x", "-out", "-json"]) == ["plan", "--var=-out=x", "--out=-json"]
    assert terraform_argv(p, ["plan", "--var=a=-json", "-"]) == ["plan", "--var=a=-json", "-"]
    assert terraform_argv(p, ["fmt", "-r", "-", "--", "-check"]) == ["fmt", "-r", "-", "--", "-check"]
    assert terraform_argv(p, ["plan", "-nope", "-x"]) == ["plan", "-nope", "-x"]  # unknown: argparse reports it
    assert terraform_argv(p, ["-no-color", "plan", "-json"]) == ["--no-color", "plan", "--json"]
    assert terraform_argv(p, ["state", "list", "-state=s.json", "-id=abc"]) == \
        ["state", "list", "--state=s.json", "--id=abc"]
    assert terraform_argv(p, ["apply", "-auto-approve=false", "-parallelism", "-1"]) == \
        ["apply", "--parallelism=-1"]


def test_unknown_single_dash_options_are_still_errors(capsys):
    with pytest.raises(SystemExit) as e:
        main(["plan", "-frobnicate"])
    assert e.value.code == 2 and "-frobnicate" in capsys.readouterr().err


# ---- end to end, as a Terraform user types them -------------------------------------------------------------

CONFIG = """
variable "replicas" {
  type    = number
  default = 1
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
  }
}

output "n" {
  value = var.replicas
}
"""


@pytest.fixture
def env(tmp_path, monkeypatch):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "main.orch").write_text(CONFIG)
    monkeypatch.setenv("ORCH_PROVIDER_MODULES", "orchdsl.sdk.testing.memory:MemoryProvider")
    monkeypatch.setenv("ORCH_MEMORY_WORLD", str(tmp_path / "world"))
    monkeypatch.delenv("ORCH_MEMORY_FAIL", raising=False)
    return cfg


def orch(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_terraform_session_typed_with_single_dashes(env, capsys, tmp_path):
    cfg = env
    plan = tmp_path / "p.plan"
    (tmp_path / "prod.orchvars").write_text("replicas = 2\n")
    code, out, err = orch(capsys, "validate", "-json", str(cfg))
    assert code == 0 and json.loads(out)["valid"] is True, err
    code, out, err = orch(capsys, "plan", f"-out={plan}", "-var-file", str(tmp_path / "prod.orchvars"),
                          "-detailed-exitcode", "-no-color", "-lock-timeout=5s", str(cfg))
    assert code == 2 and "Plan: 3 to add" in out and plan.is_file(), err
    code, out, _ = orch(capsys, "show", "-json", str(plan))
    assert code == 0 and len(json.loads(out)["resource_changes"]) == 3
    code, out, err = orch(capsys, "apply", "-auto-approve", "-parallelism=4", "-lock-timeout=5s", str(plan))
    assert code == 0 and "Apply complete! Resources: 3 added" in out, err
    code, out, _ = orch(capsys, "plan", "-var", "replicas=3", "-target=pod.web", "-refresh=false",
                        "-detailed-exitcode", str(cfg))
    assert code == 2 and "Plan: 1 to add" in out
    code, out, _ = orch(capsys, "plan", "-replace=pod.db", "-json", str(cfg))
    changes = json.loads(out)["resource_changes"]
    assert code == 0 and any(c["change"]["actions"] == ["delete", "create"] for c in changes)
    state = str(cfg / "orch.orchstate")
    code, out, _ = orch(capsys, "output", "-json", f"-state={state}")
    assert code == 0 and json.loads(out)["n"]["value"] == 2
    code, out, _ = orch(capsys, "state", "list", f"-state={state}")
    assert code == 0 and "pod.db" in out
    code, out, _ = orch(capsys, "destroy", "-auto-approve", "-no-color", str(cfg))
    assert code == 0 and "Destroy complete! Resources: 3 destroyed." in out


def test_fmt_flags_in_terraform_form(tmp_path, capsys):
    f = tmp_path / "a.orch"
    f.write_text("x={a=1}\n")
    code, out, _ = orch(capsys, "fmt", "-check", "-diff", "-list=false", str(tmp_path))
    assert code == 3 and "+x = { a = 1 }" in out and not out.startswith(str(f))
    code, out, _ = orch(capsys, "fmt", "-write=false", "-recursive", str(tmp_path))
    assert code == 0 and out == f"{f}\n" and f.read_text() == "x={a=1}\n"
    code, out, _ = orch(capsys, "fmt", "-no-color", str(tmp_path))
    assert code == 0 and f.read_text() == "x = { a = 1 }\n"


# ---- fmt on standard input ------------------------------------------------------------------------------------

def fmt_stdin(capsys, monkeypatch, text: str, *flags: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    return orch(capsys, "fmt", *flags, "-")


UGLY, PRETTY = "x={a=1}\n", "x = { a = 1 }\n"


@pytest.mark.parametrize("check", ["--check", "-check"])
def test_fmt_check_on_stdin_exits_3_when_unformatted_and_prints_nothing(capsys, monkeypatch, check):
    assert fmt_stdin(capsys, monkeypatch, UGLY, check) == (3, "", "")
    assert fmt_stdin(capsys, monkeypatch, PRETTY, check) == (0, "", "")


@pytest.mark.parametrize("diff", ["--diff", "-diff"])
def test_fmt_diff_on_stdin_prints_the_diff(capsys, monkeypatch, diff):
    code, out, _ = fmt_stdin(capsys, monkeypatch, UGLY, diff)
    assert code == 0 and out.startswith("--- old/<stdin>\n+++ new/<stdin>\n") and "-x={a=1}\n+x = { a = 1 }\n" in out
    assert fmt_stdin(capsys, monkeypatch, PRETTY, diff) == (0, "", "")
    code, out, _ = fmt_stdin(capsys, monkeypatch, UGLY, "--check", diff)
    assert code == 3 and "+x = { a = 1 }" in out


def test_fmt_stdin_without_flags_prints_the_result_and_errors_exit_1(capsys, monkeypatch):
    assert fmt_stdin(capsys, monkeypatch, UGLY) == (0, PRETTY, "")
    code, out, err = fmt_stdin(capsys, monkeypatch, "a = \n", "--check")
    assert code == 1 and out == "" and "Missing expression" in err


# ---- JSON variable files (terraform.tfvars.json, -var-file=x.tfvars.json) ------------------------------------

JSON_CONFIG = """
variable "replicas" {
  type    = number
  default = 1
}

variable "zones" {
  type    = list(string)
  default = []
}

variable "db" {
  type = object({ image = string, ratio = optional(number, 1) })
  default = { image = "postgres:15" }
}

output "all" {
  value = { replicas = var.replicas, zones = var.zones, db = var.db }
}
"""


def outputs_of(capsys, cfg: Path, *flags: str) -> tuple[int, dict | str]:
    code, out, err = orch(capsys, "plan", "-json", *flags, str(cfg))
    if code != 0:
        return code, err
    return code, json.loads(out)["planned_values"]["outputs"]["all"]["value"]


def test_json_variable_files_auto_loaded_and_given_with_var_file(env, capsys, tmp_path):
    cfg = env
    (cfg / "main.orch").write_text(JSON_CONFIG)
    (cfg / "a.orchvars.json").write_text('{"replicas": 2, "zones": ["a", "b"]}')
    (cfg / "b.orchvars").write_text('replicas = 3\n')  # alphabetical order across both kinds: b wins
    code, values = outputs_of(capsys, cfg)
    assert code == 0 and values == {"replicas": 3, "zones": ["a", "b"], "db": {"image": "postgres:15", "ratio": 1}}
    prod = tmp_path / "prod.orchvars.json"
    prod.write_text(json.dumps({"db": {"image": "postgres:16", "ratio": 0.5}, "replicas": 4}))
    code, values = outputs_of(capsys, cfg, f"-var-file={prod}")
    assert code == 0 and values["replicas"] == 4 and values["db"] == {"image": "postgres:16", "ratio": 0.5}
    code, values = outputs_of(capsys, cfg, "-var-file", str(prod), "-var", "replicas=5")
    assert code == 0 and values["replicas"] == 5  # --var still wins


def test_json_variable_file_errors_point_into_the_file(env, capsys, tmp_path):
    cfg = env
    (cfg / "main.orch").write_text(JSON_CONFIG)
    bad = tmp_path / "bad.orchvars.json"
    for text, summary, where in [
        ('{"replicas": 2,\n "zones": [1, 2', "Invalid JSON in variables file", "bad.orchvars.json:2:"),
        ('{"replicas": "many"}', "Invalid value for input variable", "bad.orchvars.json:1:14"),
        ('[1, 2]', "Invalid variables file", "bad.orchvars.json:1:1"),
        ('{"replicas": NaN}', "Invalid JSON in variables file", "bad.orchvars.json:1:14"),
        ('{"replicas": 2} 3', "Invalid JSON in variables file", "bad.orchvars.json:1:17"),
    ]:
        bad.write_text(text)
        code, err = outputs_of(capsys, cfg, "--var-file", str(bad))
        assert code == 1 and summary in err and where in err, (text, err)
    bad.write_text('{"replicas": 2, "replica": 3}')
    code, out, err = orch(capsys, "plan", "--var-file", str(bad), str(cfg))
    assert code == 0 and "Value for undeclared variable" in err and 'did you mean "replicas"' in err.lower()
    bad.write_bytes(b'{"zones": ["\xff"]}')
    code, err = outputs_of(capsys, cfg, "--var-file", str(bad))
    assert code == 1 and "UTF-8" in err
