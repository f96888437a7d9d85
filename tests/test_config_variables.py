"""Input variables: type constraints, optional attributes, precedence, validation, diagnostics."""

from __future__ import annotations

import pytest

from orchdsl.config import load_config, parse_type
from orchdsl.eval import from_python, to_python
from orchdsl.lang import parse_expression

DECLS = '''
variable "name" {
  type    = string
  default = "default"
}

variable "count_" {
  type    = number
  default = 1
}

variable "tags" {
  type    = list(string)
  default = []
}

variable "untyped" {
  default = "d"
}
'''


def _load(tmp_path, text=DECLS, files=None, **kw):
    (tmp_path / "main.orch").write_text(text)
    for name, content in (files or {}).items():
        (tmp_path / name).write_text(content)
    kw.setdefault("env", {})
    return load_config(tmp_path, **kw)


def _values(cfg):
    return {k: to_python(v) for k, v in cfg.variables.items()}


def test_defaults(tmp_path):
    cfg, diags = _load(tmp_path)
    assert not diags
    assert _values(cfg) == {"name": "default", "count_": 1, "tags": [], "untyped": "d"}


def test_precedence_env_files_var_file_var(tmp_path):
    env = {"ORCH_VAR_name": "env", "ORCH_VAR_count_": "2", "ORCH_VAR_tags": '["e"]', "ORCH_VAR_untyped": "u"}
    files = {"a.orchvars": 'name = "a"\ncount_ = 3\n', "b.orchvars": 'name = "b"\n',
             "extra.vars": 'name = "extra"\ntags = ["x", "y"]\n', "last.vars": 'tags = ["z"]\n'}
    cfg, diags = _load(tmp_path, files=files, env=env)
    assert not diags
    assert _values(cfg) == {"name": "b", "count_": 3, "tags": ["e"], "untyped": "u"}
    cfg, diags = _load(tmp_path, files=files, env=env,
                       var_files=[str(tmp_path / "extra.vars"), str(tmp_path / "last.vars")])
    assert not diags
    assert _values(cfg) == {"name": "extra", "count_": 3, "tags": ["z"], "untyped": "u"}
    cfg, diags = _load(tmp_path, files=files, env=env, var_files=[str(tmp_path / "extra.vars")],
                       var_overrides={"name": "cli", "tags": '["c"]', "count_": "4 + 1"})
    assert not diags
    assert _values(cfg) == {"name": "cli", "count_": 5, "tags": ["c"], "untyped": "u"}


def test_var_strings_stay_strings_for_string_and_untyped(tmp_path):
    cfg, diags = _load(tmp_path, var_overrides={"name": "[1, 2]", "untyped": "1 + 1"})
    assert not diags
    assert _values(cfg)["name"] == "[1, 2]" and _values(cfg)["untyped"] == "1 + 1"


def test_var_wrong_type_points_at_the_value(tmp_path):
    _, diags = _load(tmp_path, var_overrides={"tags": "{a = [1]}"})
    [d] = diags
    assert d.summary == "Invalid value for input variable"
    assert d.subject.filename == "<value for var.tags>" and d.subject.start.column == 1
    assert "list of string required" in d.detail and d.hint == "var.tags must be list(string)"


def test_var_bare_word_for_typed_variable(tmp_path):
    _, diags = _load(tmp_path, var_overrides={"count_": "many"})
    [d] = diags
    assert d.summary == "Variables not allowed" and "type is number" in d.detail


def test_undeclared_var_on_command_line_is_an_error(tmp_path):
    _, diags = _load(tmp_path, var_overrides={"nmae": "x"})
    [d] = diags
    assert d.summary == "Value for undeclared variable" and d.is_error
    assert d.subject.filename == "<command line>" and d.subject.start.column == 7
    assert d.hint == 'did you mean "name"?'
    assert "--var nmae=x" in d.render()


def test_undeclared_in_file_is_a_warning_and_environment_is_ignored(tmp_path):
    cfg, diags = _load(tmp_path, files={"x.orchvars": 'nmae = "x"\n'}, env={"ORCH_VAR_other": "1"})
    [d] = diags
    assert d.severity == "warning" and d.summary == "Value for undeclared variable"
    assert (d.subject.filename.endswith("x.orchvars"), d.subject.start.line, d.subject.start.column) == (True, 1, 1)


def test_missing_var_file(tmp_path):
    _, diags = _load(tmp_path, var_files=[str(tmp_path / "nope.vars")])
    [d] = diags
    assert d.summary == "Failed to read variables file" and d.hint == "check the --var-file path"


def test_required_variable_from_env(tmp_path):
    text = 'variable "image" {\n  type = string\n}\n'
    _, diags = _load(tmp_path, text)
    assert [d.summary for d in diags] == ["No value for required variable"]
    cfg, diags = _load(tmp_path, text, env={"ORCH_VAR_image": "busybox"})
    assert not diags and _values(cfg) == {"image": "busybox"}


def test_validation_rules(tmp_path):
    text = '''variable "port" {
  type = number
  validation {
    condition     = var.port > 1024
    error_message = "Use an unprivileged port, not ${var.port}."
  }
  validation {
    condition     = var.port < 65536
    error_message = "Ports end at 65535."
  }
}
'''
    cfg, diags = _load(tmp_path, text, var_overrides={"port": "8080"})
    assert not diags
    _, diags = _load(tmp_path, text, var_overrides={"port": "80"})
    [d] = diags
    assert d.summary == "Invalid value for variable" and d.detail.startswith("Use an unprivileged port, not 80.")
    assert "validation rule at" in d.detail and d.subject.filename == "<value for var.port>"
    _, diags = _load(tmp_path, text, files={"p.orchvars": "port = 70000\n"})
    [d] = diags
    assert d.detail.startswith("Ports end at 65535.") and d.subject.filename.endswith("p.orchvars")
    assert (d.subject.start.line, d.subject.start.column) == (1, 8)


def test_validation_may_only_refer_to_the_variable(tmp_path):
    text = 'variable "a" {\n  default = 1\n  validation {\n    condition     = var.b > 0\n' \
           '    error_message = "x"\n  }\n}\nvariable "b" {\n  default = 1\n}\n'
    _, diags = _load(tmp_path, text)
    [d] = diags
    assert d.summary == "Invalid reference in variable validation" and d.subject.start.line == 4


def test_sensitive_and_nullable(tmp_path):
    text = '''variable "password" {
  type      = string
  sensitive = true
  default   = "x"
}
variable "size" {
  type     = number
  nullable = false
  default  = 3
}
variable "strict" {
  type     = string
  nullable = false
}
'''
    cfg, diags = _load(tmp_path, text, files={"a.orchvars": "size = null\nstrict = \"s\"\n"})
    assert not diags
    assert cfg.variables["password"].sensitive
    assert to_python(cfg.variables["size"]) == 3  # null means "use the default" when not nullable
    _, diags = _load(tmp_path, text, files={"a.orchvars": "strict = null\n"})
    [d] = diags
    assert d.summary == "Invalid value for input variable" and "not nullable" in d.detail


def test_default_may_not_refer_to_values(tmp_path):
    _, diags = _load(tmp_path, 'variable "a" {\n  default = var.b\n}\nvariable "b" {\n  default = 1\n}\n')
    [d] = diags
    assert d.summary == "Variables not allowed" and (d.subject.start.line, d.subject.start.column) == (2, 13)


# ---- type constraints ----------------------------------------------------------------------------------

def _tc(text):
    expr, diags = parse_expression(text)
    assert not diags
    return parse_type(expr)


@pytest.mark.parametrize("text", [
    "string", "number", "bool", "any", "list(string)", "set(number)", "map(bool)", "list(any)",
    "tuple([string, number, bool])", "map(list(string))", "object({a = string, b = list(number)})",
])
def test_type_round_trip(text):
    tc, diags = _tc(text)
    assert not diags and tc.type.type_expr() == text


def test_optional_attributes_and_defaults():
    tc, diags = _tc('object({name = string, port = optional(number, 80), tags = optional(list(string)), '
                    'inner = optional(object({x = optional(bool, true)}), {})})')
    assert not diags
    assert to_python(tc.convert(from_python({"name": "web"}))) == {
        "name": "web", "port": 80, "tags": None, "inner": {"x": True}}
    assert to_python(tc.convert(from_python({"name": "web", "port": 8080, "inner": {"x": False}}))) == {
        "name": "web", "port": 8080, "tags": None, "inner": {"x": False}}
    tc, _ = _tc("map(object({port = optional(number, 1)}))")
    assert to_python(tc.convert(from_python({"a": {}, "b": {"port": 2}}))) == {"a": {"port": 1}, "b": {"port": 2}}


def test_missing_required_attribute_message(tmp_path):
    text = 'variable "svc" {\n  type = object({name = string, port = optional(number, 80)})\n}\n'
    cfg, diags = _load(tmp_path, text, var_overrides={"svc": '{name = "web"}'})
    assert not diags and to_python(cfg.variables["svc"]) == {"name": "web", "port": 80}
    _, diags = _load(tmp_path, text, var_overrides={"svc": "{port = 1}"})
    [d] = diags
    assert 'attribute "name" is required' in d.detail


@pytest.mark.parametrize("text,summary,hint", [
    ("strin", "Invalid type specification", 'did you mean "string"?'),
    ('"string"', "Invalid quoted type constraints", "remove the quotes: type = string"),
    ("list", "Invalid type specification", "write list(string)"),
    ("list(string, number)", "Invalid type specification", ""),
    ("optional(string)", "Invalid type specification", ""),
    ("object([string])", "Invalid type specification", "write object({name = string, port = number})"),
    ("object({a = optional(number, \"x\")})", "Invalid default value for optional attribute", ""),
    ("1 + 1", "Invalid type specification", ""),
])
def test_invalid_type_constraints(text, summary, hint):
    _, diags = _tc(text)
    assert diags and diags[0].summary == summary and hint in diags[0].hint
