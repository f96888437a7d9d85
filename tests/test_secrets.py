"""Sensitive values are never shown in clear by a human-readable rendering or a diagnostic.

Every path: the text and Markdown plan, ``orch show`` (state and saved plan), ``orch state show``,
``orch output``, the apply's outputs and progress lines, ``orch console``, function errors, schema errors,
a provider's error and progress messages. JSON keeps Terraform's behaviour: values present, ``*_sensitive``
mirrors say what to hide (docs/reliability.md, "Secrets: what is redacted where").
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from orchdsl.cli import main
from orchdsl.eval import EvalContext, evaluate, number_val, object_val, standard_functions, string_val
from orchdsl.lang import parse_expression
from orchdsl.redact import SENSITIVE, Secrets

SECRET = "s3cr3t-hunter2"

CONFIG = f"""
variable "pw" {{
  type      = string
  default   = "{SECRET}"
  sensitive = true
}}

pod "db" {{
  container "pg" {{
    image = "orch/busybox:test"
    env   = {{ PASSWORD = var.pw, ROLE = "db" }}
  }}
}}

output "pw" {{
  value     = var.pw
  sensitive = true
}}

output "role" {{
  value = "db"
}}
"""


@pytest.fixture
def env(tmp_path, monkeypatch):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "main.orch").write_text(CONFIG)
    monkeypatch.setenv("ORCH_PROVIDER_MODULES", "tests.support.memory_provider:MemoryProvider")
    monkeypatch.setenv("ORCH_MEMORY_WORLD", str(tmp_path / "world"))
    monkeypatch.delenv("ORCH_MEMORY_FAIL", raising=False)
    return cfg


def orch(capsys, *argv: str, stdin: str | None = None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def applied(capsys, cfg: Path) -> tuple[str, str]:
    code, out, err = orch(capsys, "apply", "--auto-approve", "--no-color", str(cfg))
    assert code == 0, err
    return out, err


# ---- renderings -----------------------------------------------------------------------------

def test_apply_plan_and_outputs_never_show_the_secret(env, capsys):
    out, err = applied(capsys, env)
    assert SECRET not in out + err
    assert '"PASSWORD" = (sensitive value)' in out  # the plan shown before applying
    assert out.rstrip().endswith('Outputs:\n\npw = (sensitive value)\nrole = "db"')  # as terraform apply
    assert "<sensitive>" not in out


def test_plan_text_markdown_and_json_never_hold_the_secret(env, capsys):
    applied(capsys, env)
    code, out, err = orch(capsys, "plan", "--no-color", "--var", "pw=n3w-s3cr3t-value", str(env))
    assert code == 0 and "n3w-s3cr3t-value" not in out + err and SECRET not in out + err
    assert '~ "PASSWORD" = (sensitive value)' in out
    code, out, err = orch(capsys, "plan", "--format", "markdown", "--var", "pw=n3w-s3cr3t-value", str(env))
    assert code == 0 and "n3w-s3cr3t-value" not in out + err and SECRET not in out + err
    code, out, _ = orch(capsys, "plan", "--json", "--var", "pw=n3w-s3cr3t-value", str(env))
    assert "n3w-s3cr3t-value" not in out and SECRET not in out  # unlike terraform show -json: never written
    doc = json.loads(out)
    change = doc["resource_changes"][0]["change"]
    assert change["after"]["container"][0]["env"]["PASSWORD"] is None  # null where sensitive...
    assert change["after_sensitive"]["container"][0]["env"]["PASSWORD"] is True  # ... and marked
    assert doc["output_changes"]["pw"]["after_sensitive"] is True


def test_show_renders_the_state_as_hcl_blocks_with_secrets_redacted(env, capsys):
    applied(capsys, env)
    code, out, err = orch(capsys, "show", "--no-color", "--dir", str(env))
    assert code == 0 and err == ""
    assert SECRET not in out
    assert "{'" not in out and "': " not in out  # no Python reprs
    assert out.startswith("# pod.db:\nresource \"pod\" \"db\" {\n")
    assert '"PASSWORD" = (sensitive value)' in out and '"ROLE"     = "db"' in out
    assert out.endswith('\nOutputs:\n\npw = (sensitive value)\nrole = "db"\n')
    # JSON: the state document itself, as Terraform's show -json keeps values, with sensitive_attributes
    code, out, _ = orch(capsys, "show", "--json", "--dir", str(env))
    doc = json.loads(out)
    assert SECRET in out and doc["resources"][0]["sensitive_attributes"] == [["container", 0, "env", "PASSWORD"]]


def test_show_of_a_saved_plan_redacts(env, capsys, tmp_path):
    planfile = tmp_path / "p.orchplan"
    assert orch(capsys, "plan", "--out", str(planfile), str(env))[0] == 0
    code, out, err = orch(capsys, "show", "--no-color", str(planfile))
    assert code == 0 and SECRET not in out + err and "(sensitive value)" in out


def test_output_redacts_unless_asked_for_a_machine_format(env, capsys):
    applied(capsys, env)
    state = str(env / "orch.orchstate")
    code, out, _ = orch(capsys, "output", "--state", state)
    assert (code, out) == (0, 'pw = (sensitive value)\nrole = "db"\n')
    code, out, err = orch(capsys, "output", "--state", state, "pw")
    assert code == 0 and out == "(sensitive value)\n" and SECRET not in err
    assert "--raw" in err  # how to get the value
    assert orch(capsys, "output", "--state", state, "--raw", "pw")[1] == SECRET
    assert json.loads(orch(capsys, "output", "--state", state, "--json", "pw")[1]) == SECRET
    doc = json.loads(orch(capsys, "output", "--state", state, "--json")[1])
    assert doc["pw"] == {"sensitive": True, "type": "string", "value": SECRET}


def test_state_show_redacts(env, capsys):
    applied(capsys, env)
    code, out, _ = orch(capsys, "state", "show", "--state", str(env / "orch.orchstate"), "pod.db")
    assert code == 0 and SECRET not in out and '"PASSWORD" = (sensitive value)' in out


def test_observed_status_text_is_scrubbed(env, capsys, tmp_path):
    from tests.support.memory_provider import edit_world

    applied(capsys, env)
    edit_world(tmp_path / "world", "pod.db", lambda attrs: None, status={
        "state": "degraded", "members": [{"name": "pg", "health": "unhealthy", "failing_streak": 3,
                                          "last_output": f"login failed for password {SECRET}"}]})
    for fmt in ("text", "markdown"):
        code, out, err = orch(capsys, "plan", "--no-color", "--format", fmt, str(env))
        assert code == 0 and "is unhealthy: 3 failing checks" in out.replace("`pod.db` ", "pod.db ")
        assert SECRET not in out + err and "login failed for password (sensitive value)" in out


# ---- console -------------------------------------------------------------------------------------

@pytest.mark.parametrize("expr,shown", [
    ("var.pw", "(sensitive value)"),
    ("{ a = var.pw }", '{\n  "a" = (sensitive value)\n}'),
    ("upper(var.pw)", "(sensitive value)"),
    ("nonsensitive(var.pw)", f'"{SECRET}"'),  # asked for in clear, explicitly
])
def test_console_keeps_sensitivity(env, capsys, monkeypatch, expr, shown):
    code, out, err = orch(capsys, "console", str(env), stdin=expr + "\n", monkeypatch=monkeypatch)
    assert code == 0, err
    assert out.rstrip("\n") == shown


def test_console_json_does_not_print_a_sensitive_value(env, capsys, monkeypatch):
    code, out, err = orch(capsys, "console", "--json", str(env), stdin="var.pw\n", monkeypatch=monkeypatch)
    assert code == 1 and out == "" and SECRET not in err and "sensitive" in err
    code, out, _ = orch(capsys, "console", "--json", str(env), stdin="nonsensitive(var.pw)\n",
                        monkeypatch=monkeypatch)
    assert code == 0 and json.loads(out) == SECRET


def test_console_var_override_of_a_sensitive_variable_stays_sensitive(env, capsys, monkeypatch):
    code, out, _ = orch(capsys, "console", "--var", "pw=0th3r-s3cr3t", str(env), stdin="var.pw\n",
                        monkeypatch=monkeypatch)
    assert code == 0 and out == "(sensitive value)\n"


# ---- diagnostics ---------------------------------------------------------------------------------

@pytest.mark.parametrize("expr", [
    "tonumber(var.pw)", "tobool(var.pw)", "file(var.pw)", "filebase64(var.pw)", "templatefile(var.pw, {})",
    "cidrhost(var.pw, 1)", "cidrsubnet(var.pw, 8, 1)", "cidrnetmask(var.pw)", "base64decode(var.pw)",
    "parseint(var.pw, 10)", "lookup({}, var.pw)", "element(var.l, 5)", "tonumber(var.n)",
    "parseint(upper(var.pw), 10)", 'format("%d", var.pw)', "jsondecode(var.pw)",
])
def test_function_errors_do_not_quote_sensitive_arguments(tmp_path, expr):
    pw = string_val(SECRET).mark()
    ctx = EvalContext({"var": object_val({"pw": pw, "n": string_val("n0t-a-numb3r").mark(),
                                          "l": object_val({"k": number_val(1)})})},
                      standard_functions(str(tmp_path)))
    node, _ = parse_expression(expr)
    _, diags = evaluate(node, ctx)
    assert diags, expr
    text = "\n".join(d.render() for d in diags)
    for secret in (SECRET, SECRET.upper(), "n0t-a-numb3r"):
        assert secret not in text, text


def test_function_error_through_the_cli_is_redacted(env, capsys):
    p = env / "main.orch"
    p.write_text(p.read_text().replace('ROLE = "db"', "ROLE = tonumber(var.pw)"))
    code, out, err = orch(capsys, "plan", "--no-color", str(env))
    assert code == 1 and SECRET not in out + err
    assert "cannot convert (sensitive value) to number" in err


def test_schema_error_quoting_a_sensitive_value_is_redacted(env, capsys):
    p = env / "main.orch"
    p.write_text(p.read_text().replace('image = "orch/busybox:test"',
                                       'image = "orch/busybox:test"\n    resources {\n      memory = var.pw\n    }'))
    for argv in (["validate", str(env)], ["plan", str(env)]):
        code, out, err = orch(capsys, *argv)
        assert code == 1 and SECRET not in out + err, argv
        assert "is not a memory size" in err


def test_a_sensitive_variable_given_on_the_command_line_is_not_echoed(env, capsys):
    p = env / "main.orch"
    p.write_text(p.read_text().replace("type      = string", "type      = number"))
    code, out, err = orch(capsys, "plan", "--var", "pw=n0t-a-numb3r", str(env))
    assert code == 1 and "n0t-a-numb3r" not in out + err


def test_provider_errors_and_progress_lines_are_scrubbed(env, capsys, monkeypatch):
    monkeypatch.setenv("ORCH_PROVIDER_MODULES", "tests.support.leaky_provider:LeakyProvider")
    code, out, err = orch(capsys, "apply", "--auto-approve", str(env))
    assert code == 0 and SECRET not in out + err
    assert "pod.db: starting with env" in out and '"PASSWORD": (sensitive value)' in out
    monkeypatch.setenv("ORCH_LEAKY_FAIL", "1")
    code, out, err = orch(capsys, "apply", "--auto-approve", "--replace", "pod.db", str(env))
    assert code == 1 and "Container refused" in err and SECRET not in out + err
    assert "PASSWORD=(sensitive value)" in err


# ---- the redaction path itself ---------------------------------------------------------------------

def test_secrets_redact_quoted_and_bare_forms():
    s = Secrets()
    s.add({"a": ["hunter2", 5432], "b": True, "c": ""})
    s.add_paths({"env": {"K": "ab", "L": "visible"}}, [("env", "K")])
    assert s.redact('got "hunter2" and \'hunter2\' and hunter2-x') == \
        f"got {SENSITIVE} and {SENSITIVE} and {SENSITIVE}-x"
    assert s.redact("port 5432") == f"port {SENSITIVE}"
    # short secrets only where quoted: "ab" is a secret, the letters ab in "about" are not
    assert s.redact('about "ab"') == f"about {SENSITIVE}"
    assert s.redact("true visible") == "true visible"  # booleans and empty strings are not secrets


def test_secrets_of_deeply_nested_values_need_no_recursion():
    from orchdsl.eval import tuple_val

    v = string_val("d33p-s3cret").mark()
    for _ in range(5000):
        v = tuple_val([v, number_val(1)])
    s = Secrets()
    s.add_value(v)
    data: object = "d33p-pl4in"
    for _ in range(5000):
        data = [data]
    s.add(data)
    assert s.redact("d33p-s3cret d33p-pl4in") == f"{SENSITIVE} {SENSITIVE}"


def test_validate_warns_of_a_secret_in_an_environment_variable(tmp_path, capsys):
    from orchdsl.cli import main

    (tmp_path / "main.orch").write_text(
        'variable "pw" {\n  type = string\n  sensitive = true\n  default = "x"\n}\n'
        'pod "db" {\n  container "db" {\n    image = "orch/busybox:test"\n'
        '    env = { PASSWORD = var.pw, USER = "u" }\n  }\n}\n')
    assert main(["validate", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "Warning: Sensitive value in an environment variable" in err
    assert 'env PASSWORD' in err and "USER" not in err and 'file "/run/secrets/password"' in err
