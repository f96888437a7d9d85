"""jinjafile(path, vars): Jinja2 templates (Ansible's .j2 files) rendered through the real evaluator, with
templatefile's conventions (path resolution, vars checks, unknown and sensitive results, diagnostics);
and sensitivity propagating through every function of the standard library and through templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchdsl.config import evaluate_outputs, load_config
from orchdsl.eval import EvalContext, evaluate, from_python, standard_functions, string_val, unknown
from orchdsl.eval.functions import REGISTRY
from orchdsl.lang import parse_expression

SECRET = "s3cr3t-hunter2"

NGINX = """\
upstream {{ name }} {
{% for u in upstreams %}server {{ u.host }}:{{ u.port }};{% endfor %}
}
server {
  listen {{ port | default(80) }};
  server_name {{ name | upper }};
  # {{ items | join(", ") }}
{% if tls %}  ssl on;
{% else %}  ssl off;
{% endif %}}
"""


def _ctx(base: Path | str) -> EvalContext:
    return EvalContext({
        "var": from_python({"name": "web", "ports": [80, 443]}),
        "pw": string_val(SECRET).mark(),
        "unk": unknown(),
    }, standard_functions(base))


def ev(src: str, base: Path | str):
    expr, parse_diags = parse_expression(src)
    assert expr is not None and not parse_diags, parse_diags
    value, diags = evaluate(expr, _ctx(base))
    return value, [d for d in diags if d.is_error]


def ok(src: str, base: Path | str):
    value, errors = ev(src, base)
    assert not errors, "\n".join(d.render() for d in errors)
    return value


def error(src: str, base: Path | str):
    _, errors = ev(src, base)
    assert len(errors) == 1, f"expected one error for {src!r}, got {[d.render() for d in errors]}"
    return errors[0]


def _span(d) -> tuple[int, int]:
    return d.subject.start.column, d.subject.end.column


@pytest.fixture
def tpl(tmp_path):
    def write(name: str, text: str) -> Path:
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return p

    return write


# ---- rendering -------------------------------------------------------------------------------------------

def test_loops_filters_defaults_and_conditionals(tmp_path, tpl):
    tpl("nginx.conf.j2", NGINX)
    call = ('jinjafile("nginx.conf.j2", {name = "app", items = ["a", "b"], tls = %s, '
            'upstreams = [{host = "10.0.0.1", port = 8080}, {host = "10.0.0.2", port = 8081}]%s})')
    v = ok(call % ("true", ""), tmp_path)
    assert v.type.type_expr() == "string" and not v.sensitive
    assert v.raw == ("upstream app {\n"
                     "server 10.0.0.1:8080;server 10.0.0.2:8081;\n"
                     "}\n"
                     "server {\n"
                     "  listen 80;\n"
                     "  server_name APP;\n"
                     "  # a, b\n"
                     "  ssl on;\n"
                     "}\n")
    v = ok(call % ("false", ", port = 8443"), tmp_path)
    assert "listen 8443;" in v.raw and "ssl off;" in v.raw and "ssl on" not in v.raw


def test_path_is_relative_to_the_module_directory(tmp_path, tpl, monkeypatch):
    tpl("templates/a.j2", "{{ x }}")
    monkeypatch.chdir("/")
    assert ok('jinjafile("templates/a.j2", {x = "rel"})', tmp_path).raw == "rel"
    assert ok(f'jinjafile("{tmp_path}/templates/a.j2", {{x = "abs"}})', "/nonexistent").raw == "abs"


def test_trailing_newline_is_kept_and_none_added(tmp_path, tpl):
    tpl("nl.j2", "{{ x }}\n")
    tpl("nonl.j2", "{{ x }}")
    assert ok('jinjafile("nl.j2", {x = 1})', tmp_path).raw == "1\n"
    assert ok('jinjafile("nonl.j2", {x = 1})', tmp_path).raw == "1"


def test_no_autoescaping_and_utf8(tmp_path, tpl):
    (tmp_path / "u.j2").write_bytes("héllo {{ x }} ✓\n".encode())
    assert ok('jinjafile("u.j2", {x = "<a & b>"})', tmp_path).raw == "héllo <a & b> ✓\n"


def test_vars_become_plain_python(tmp_path, tpl):
    tpl("types.j2", "{{ n + 1 }} {{ n is integer }} {{ f * 2 }} {{ f is float }} {{ b }} {{ b is boolean }} "
                    "{{ z is none }} {{ l | sum }} {{ l is sequence }} {{ s | join('+') }} {{ m.k }} "
                    "{{ m is mapping }} {{ m | dictsort | first | last }} {{ o.nested[1].y }}")
    v = ok('jinjafile("types.j2", {n = 41, f = 0.25, b = true, z = null, l = [1, 2, 3], s = toset(["b", "a"]), '
           'm = tomap({k = "v"}), o = {nested = [{y = 1}, {y = 2}]}})', tmp_path)
    assert v.raw == "42 True 0.5 True True True True 6 True a+b v True v 2"


def test_the_template_sees_only_its_vars(tmp_path, tpl):
    tpl("scope.j2", "{{ var is defined }} {{ upper is defined }} {{ pw is defined }}")
    assert ok('jinjafile("scope.j2", {})', tmp_path).raw == "False False False"


def test_ansible_style_list_append_works(tmp_path, tpl):
    tpl("acc.j2", "{% set out = [] %}{% for x in xs %}{% set _ = out.append(x * 2) %}{% endfor %}{{ out }}")
    assert ok('jinjafile("acc.j2", {xs = [1, 2]})', tmp_path).raw == "[2, 4]"


# ---- arguments -------------------------------------------------------------------------------------------

def test_missing_file_directory_and_non_utf8_are_path_errors(tmp_path, tpl):
    d = error('jinjafile("nope.j2", {})', tmp_path)
    assert d.summary == "Invalid function argument"
    assert 'Invalid value for "path" parameter: no file exists at "nope.j2"' in d.detail
    assert _span(d) == (11, 20)
    (tmp_path / "dir.j2").mkdir()
    assert "is a directory" in error('jinjafile("dir.j2", {})', tmp_path).detail
    (tmp_path / "bin.j2").write_bytes(b"\xff\xfe{{ x }}")
    assert "not valid UTF-8" in error('jinjafile("bin.j2", {x = 1})', tmp_path).detail


@pytest.mark.parametrize("vars_,message", [
    ("1", "must be a map"), ('"x"', "must be a map"), ("[1]", "must be a map"), ("null", "must not be null"),
    ('{"a-b" = 1}', 'invalid template variable name "a-b"'),
])
def test_vars_must_be_a_map_of_jinja_names(tmp_path, tpl, vars_, message):
    tpl("t.j2", "x")
    d = error(f'jinjafile("t.j2", {vars_})', tmp_path)
    assert d.summary == "Invalid function argument"
    assert 'Invalid value for "vars" parameter' in d.detail and message in d.detail


@pytest.mark.parametrize("vars_", ["unk", "{x = unk}", "{x = [1, unk]}", "{x = {y = unk}}"])
def test_an_unknown_var_makes_the_result_unknown_like_templatefile(tmp_path, tpl, vars_):
    tpl("t.j2", "{{ x }}")
    tpl("t.tftpl", "${x}")
    for fn, name in (("jinjafile", "t.j2"), ("templatefile", "t.tftpl"), ("jinjafile", "not-yet.j2")):
        v = ok(f'{fn}("{name}", {vars_})', tmp_path)
        assert not v.is_known, fn


# ---- errors: diagnostics with the template's file and line -----------------------------------------------

def test_syntax_error_names_the_template_line(tmp_path, tpl):
    tpl("nginx.conf.j2", "server {\n  listen 80;\n  root {{ root }\n}\n")
    d = error('jinjafile("nginx.conf.j2", {root = "/srv"})', tmp_path)
    assert d.summary == "Invalid function argument"
    assert d.detail == 'Invalid value for "path" parameter: invalid template: nginx.conf.j2:3: unexpected \'}\'.'
    assert _span(d) == (11, 26)  # the path argument, as templatefile's parse errors


def test_unknown_filter_is_an_invalid_template(tmp_path, tpl):
    tpl("a.j2", "ok\n{{ x | to_nice_yaml }}\n")  # an Ansible filter, not Jinja2's
    d = error('jinjafile("a.j2", {x = 1})', tmp_path)
    assert "invalid template: a.j2:2: No filter named 'to_nice_yaml'" in d.detail


def test_undefined_variable_names_it_and_where_it_is_used(tmp_path, tpl):
    tpl("t.j2", "line one\n{% for u in ups %}\n  {{ u }} {{ nope }}\n{% endfor %}\n")
    d = error('jinjafile("t.j2", {ups = [1]})', tmp_path)
    # as templatefile's: 'vars map does not contain key "nope", referenced at t.tpl:2,3-7'
    assert d.summary == "Invalid function argument"
    assert d.detail == 'Invalid value for "vars" parameter: vars map does not contain key "nope", referenced ' \
                       "at t.j2:3."
    assert _span(d) == (19, 30)  # the vars argument
    tpl("tf.tpl", "line one\n${nope}\n")
    d2 = error('templatefile("tf.tpl", {ups = [1]})', tmp_path)
    assert d2.summary == d.summary and 'vars map does not contain key "nope", referenced at tf.tpl:2' in d2.detail


def test_undefined_attribute_is_an_error_in_the_call(tmp_path, tpl):
    tpl("t.j2", "a\n\n{{ u.host }}:{{ u.prot }}\n")
    d = error('jinjafile("t.j2", {u = {host = "h", port = 1}})', tmp_path)
    assert d.summary == "Error in function call"
    assert d.detail == ('Call to function "jinjafile" failed: t.j2:3: undefined value: \'dict object\' has no '
                        "attribute 'prot'.")


def test_undefined_inside_a_macro_points_at_the_use(tmp_path, tpl):
    tpl("m.j2", "{% macro row(x) %}\n{{ x }} {{ missing }}\n{% endmacro %}\nhead\n{{ row(1) }}\n")
    d = error('jinjafile("m.j2", {})', tmp_path)
    assert 'vars map does not contain key "missing", referenced at m.j2:2' in d.detail


def test_default_and_is_defined_handle_undefined(tmp_path, tpl):
    tpl("d.j2", "{{ a | default('x') }} {{ b.c | default('y') }} {% if z is defined %}z{% else %}-{% endif %}")
    assert ok('jinjafile("d.j2", {b = {}})', tmp_path).raw == "x y -"


@pytest.mark.parametrize("body", [
    "{{ ''.__class__ }}", "{{ x.__class__.__mro__ }}", "{{ cycler.__init__.__globals__ }}",
    "{{ ''.format_map }}{{ 'a'.__add__('b') }}",
])
def test_sandbox_refuses_unsafe_access(tmp_path, tpl, body):
    tpl("s.j2", "fine\n" + body + "\n")
    d = error('jinjafile("s.j2", {x = 1})', tmp_path)
    assert d.summary == "Error in function call"
    assert "s.j2:2: the template sandbox refused an unsafe operation: access to attribute" in d.detail


@pytest.mark.parametrize("tag", [
    "{% include 'other.j2' %}", "{% import 'other.j2' as o %}", "{% from 'other.j2' import m %}",
    "{% extends 'other.j2' %}", "{% if false %}{% include name %}{% endif %}",
])
def test_other_files_are_refused(tmp_path, tpl, tag):
    tpl("other.j2", "{% macro m() %}m{% endmacro %}other")
    tpl("main.j2", "one\ntwo\n" + tag + "\n")
    d = error('jinjafile("main.j2", {name = "other.j2"})', tmp_path)
    assert d.summary == "Invalid function argument"
    assert "invalid template: main.j2:3: {% " in d.detail and "is not supported" in d.detail


@pytest.mark.parametrize("body,message", [
    ("{{ 1 / 0 }}", "division by zero"),
    ("{{ 'a' + 1 }}", 'can only concatenate str (not "int") to str'),
    ("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", "recursion too deep"),
    ("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}",
     "range() would give more than 100,000 elements"),
    ("{{ 'x' * 10 ** 9 }}", "the repetition would give 1,000,000,000 characters"),
    ("{{ [1] * 10 ** 9 }}", "elements"),
    ("{{ 7 ** (10 ** 9) }}", "would be too large"),
    ("{{ range(10 ** 6) }}", "range() would give more than 100,000 elements"),
])
def test_runtime_errors_are_diagnostics_with_the_line(tmp_path, tpl, body, message):
    tpl("r.j2", "ok\n" + body + "\n")
    d = error('jinjafile("r.j2", {})', tmp_path)
    assert d.summary == "Error in function call"
    assert d.detail.startswith('Call to function "jinjafile" failed: r.j2:2: ') and message in d.detail, d.detail
    assert "internal error" not in d.detail and "Traceback" not in d.detail


def test_output_size_is_bounded(tmp_path, tpl, monkeypatch):
    from orchdsl.eval.functions import jinja

    monkeypatch.setattr(jinja, "MAX_STRING_LENGTH", 1000)
    tpl("big.j2", "{% for i in range(600) %}ab{% endfor %}")
    d = error('jinjafile("big.j2", {})', tmp_path)
    assert d.summary == "Error in function call" and "larger than" in d.detail


def test_a_named_pipe_is_refused(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.j2")
    assert "not a regular file" in error('jinjafile("pipe.j2", {})', tmp_path).detail


# ---- sensitivity -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("vars_", [
    "{name = pw}", "{name = \"x\", other = pw}", "{name = \"x\", l = [1, pw]}", "{name = \"x\", m = {k = pw}}",
    "{name = sensitive(\"x\")}", "sensitive({name = \"x\"})",
])
def test_a_sensitive_var_makes_the_whole_result_sensitive_like_templatefile(tmp_path, tpl, vars_):
    tpl("t.j2", "hello {{ name }}\n")
    tpl("t.tftpl", "hello ${name}\n")
    for call in (f'jinjafile("t.j2", {vars_})', f'templatefile("t.tftpl", {vars_})'):
        v = ok(call, tmp_path)
        assert v.sensitive, call  # even when the template does not use the sensitive value
        assert v.raw.startswith("hello ")
    v = ok('jinjafile("t.j2", {name = unk, x = pw})', tmp_path)
    assert not v.is_known and v.sensitive


def test_a_sensitive_path_makes_the_result_sensitive(tmp_path, tpl):
    tpl("t.j2", "x")
    assert ok('jinjafile(sensitive("t.j2"), {})', tmp_path).sensitive


def test_errors_do_not_quote_sensitive_vars(tmp_path, tpl):
    tpl("t.j2", "{{ {'a': 1}[pw] }}\n")
    d = error('jinjafile("t.j2", {pw = pw})', tmp_path)
    assert "t.j2:1" in d.detail and SECRET not in d.render()


def test_a_sensitive_rendering_in_an_output_must_be_declared_sensitive(tmp_path, tpl):
    tpl("mod/app.conf.j2", "password={{ pw }}\n")
    main = """
variable "pw" {
  type      = string
  default   = "%s"
  sensitive = true
}
output "conf" {
  value = jinjafile("mod/app.conf.j2", { pw = var.pw })%s
}
"""
    (tmp_path / "main.orch").write_text(main % (SECRET, ""))
    _, diags = load_config(tmp_path, env={})
    assert "Output refers to sensitive values" in [d.summary for d in diags]
    (tmp_path / "main.orch").write_text(main % (SECRET, "\n  sensitive = true"))
    cfg, diags = load_config(tmp_path, env={})
    assert not diags, [d.render() for d in diags]
    outputs, diags = evaluate_outputs(cfg, {})
    assert not diags and outputs["conf"].sensitive and outputs["conf"].value == f"password={SECRET}\n"


# Every function of the standard library, called with a sensitive argument (s: a sensitive string; a list,
# map or number argument holding or being a sensitive value otherwise). orch marks the whole result of any
# function one of whose arguments is (or contains) a sensitive value (Function.call; cty's rule for functions
# that do not handle marks themselves) -- more conservative than Terraform for length() and keys(), whose
# results Terraform leaves unmarked when only elements are sensitive.
S = 'sensitive("s3cret")'
SENSITIVE_CALLS: dict[str, str] = {
    # strings
    "chomp": f"chomp({S})", "endswith": f'endswith({S}, "t")', "format": f'format("%s!", {S})',
    "formatlist": f'formatlist("%s!", [{S}])', "indent": f"indent(2, {S})", "join": f'join(",", ["a", {S}])',
    "lower": f"lower({S})", "regex": f'regex("[a-z]+", {S})', "regexall": f'regexall("[a-z]+", {S})',
    "replace": f'replace({S}, "e", "E")', "split": f'split("c", {S})', "startswith": f'startswith({S}, "s")',
    "strcontains": f'strcontains({S}, "c")', "strrev": f"strrev({S})", "substr": f"substr({S}, 0, 2)",
    "title": f"title({S})", "trim": f'trim({S}, "s")', "trimprefix": f'trimprefix({S}, "s")',
    "trimspace": f"trimspace({S})", "trimsuffix": f'trimsuffix({S}, "t")', "upper": f"upper({S})",
    # collections
    "alltrue": "alltrue([sensitive(true)])", "anytrue": "anytrue([sensitive(false)])",
    "chunklist": f"chunklist([{S}], 1)", "coalesce": f'coalesce({S}, "x")', "coalescelist": f"coalescelist([{S}])",
    "compact": f'compact([{S}, ""])', "concat": f'concat([{S}], ["a"])', "contains": f'contains([{S}], "a")',
    "distinct": f"distinct([{S}, {S}])", "element": f"element([{S}], 0)", "flatten": f"flatten([[{S}]])",
    "index": f'index(["a", {S}], "a")', "keys": f"keys({{a = {S}}})", "length": f"length({S})",
    "lookup": f'lookup({{a = {S}}}, "a")', "matchkeys": f'matchkeys([{S}], ["k"], ["k"])',
    "merge": f"merge({{a = {S}}}, {{b = 1}})", "one": f"one([{S}])", "range": "range(sensitive(3))",
    "reverse": f'reverse([{S}, "a"])', "setintersection": f"setintersection([{S}], [{S}])",
    "setproduct": f'setproduct([{S}], ["a"])', "setsubtract": f'setsubtract([{S}], ["a"])',
    "setunion": f'setunion([{S}], ["a"])', "slice": f'slice([{S}, "a"], 0, 1)', "sort": f'sort([{S}, "a"])',
    "sum": "sum([sensitive(1), 2])", "transpose": f"transpose({{a = [{S}]}})", "values": f"values({{a = {S}}})",
    "zipmap": f'zipmap(["a"], [{S}])',
    # type conversion
    "tobool": 'tobool(sensitive("true"))', "tolist": f"tolist([{S}])", "tomap": f"tomap({{a = {S}}})",
    "tonumber": 'tonumber(sensitive("1"))', "toset": f"toset([{S}])", "tostring": f"tostring({S})",
    "try": f'try({S}, "x")',
    # numbers
    "abs": "abs(sensitive(-1))", "ceil": "ceil(sensitive(1.5))", "floor": "floor(sensitive(1.5))",
    "log": "log(sensitive(8), 2)", "max": "max(sensitive(1), 2)", "min": "min(sensitive(1), 2)",
    "parseint": 'parseint(sensitive("ff"), 16)', "pow": "pow(sensitive(2), 3)", "signum": "signum(sensitive(-2))",
    # encoding
    "base64decode": 'base64decode(sensitive("aGk="))', "base64encode": f"base64encode({S})",
    "csvdecode": 'csvdecode(sensitive("a,b\\n1,2\\n"))', "jsondecode": 'jsondecode(sensitive("{\\"a\\": 1}"))',
    "jsonencode": f"jsonencode({{a = {S}}})", "urlencode": f"urlencode({S})", "yamlencode": f"yamlencode({{a = {S}}})",
    # hashes
    "base64sha256": f"base64sha256({S})", "base64sha512": f"base64sha512({S})", "md5": f"md5({S})",
    "sha1": f"sha1({S})", "sha256": f"sha256({S})", "sha512": f"sha512({S})",
    # network
    "cidrhost": 'cidrhost(sensitive("10.0.0.0/24"), 1)', "cidrnetmask": 'cidrnetmask(sensitive("10.0.0.0/24"))',
    "cidrsubnet": 'cidrsubnet(sensitive("10.0.0.0/16"), 8, 1)',
    "cidrsubnets": 'cidrsubnets(sensitive("10.0.0.0/16"), 8, 8)',
    # filesystem
    "abspath": f"abspath({S})", "basename": f"basename({S})", "dirname": f"dirname({S})",
    "pathexpand": f"pathexpand({S})", "file": 'file(sensitive("plain.txt"))',
    "filebase64": 'filebase64(sensitive("plain.txt"))', "fileexists": 'fileexists(sensitive("plain.txt"))',
    "filemd5": 'filemd5(sensitive("plain.txt"))', "filesha1": 'filesha1(sensitive("plain.txt"))',
    "filesha256": 'filesha256(sensitive("plain.txt"))', "filesha512": 'filesha512(sensitive("plain.txt"))',
    "fileset": 'fileset(sensitive("."), "*.txt")', "templatefile": f'templatefile("t.tftpl", {{name = {S}}})',
    "jinjafile": f'jinjafile("t.j2", {{name = {S}}})',
    # sensitivity
    "sensitive": f"sensitive({S})",
}
# Functions whose result is by design not sensitive (as in Terraform): nonsensitive removes the mark;
# issensitive and can tell only whether a value is marked, or an expression succeeds.
NOT_SENSITIVE_CALLS = {"nonsensitive": f"nonsensitive({S})", "issensitive": f"issensitive({S})",
                       "can": f"can({S})"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    (d / "plain.txt").write_text("not a secret\n")
    (d / "t.tftpl").write_text("hello ${name}\n")
    (d / "t.j2").write_text("hello {{ name }}\n")
    return d


def test_the_table_covers_every_function():
    names = set(standard_functions(".")) | set(REGISTRY)
    assert set(SENSITIVE_CALLS) | set(NOT_SENSITIVE_CALLS) == names
    assert not set(SENSITIVE_CALLS) & set(NOT_SENSITIVE_CALLS)


@pytest.mark.parametrize("name", sorted(SENSITIVE_CALLS))
def test_sensitivity_propagates_through_every_function(files, name):
    v = ok(SENSITIVE_CALLS[name], files)
    assert v.sensitive, f"{SENSITIVE_CALLS[name]} dropped the sensitive mark: {v!r}"
    # and when the sensitive argument is not known yet
    # (try() of an argument not known yet is an unmarked unknown, as Terraform's: it cannot tell yet which
    # argument will succeed, and the known result is evaluated, and marked, again once it is known)
    unknown_call = SENSITIVE_CALLS[name].replace(S, "sensitive(unk)")
    if unknown_call != SENSITIVE_CALLS[name] and name != "try":
        u, errors = ev(unknown_call, files)
        assert not errors and u.sensitive, (unknown_call, u, [d.render() for d in errors])


@pytest.mark.parametrize("name", sorted(NOT_SENSITIVE_CALLS))
def test_functions_that_report_on_marks_give_plain_results(files, name):
    v = ok(NOT_SENSITIVE_CALLS[name], files)
    assert not v.sensitive


@pytest.mark.parametrize("src", [
    f'"x-${{{S}}}"', f'"%{{if {S} == "a"}}a%{{else}}b%{{endif}}"', f'"%{{for c in [{S}]}}${{c}}%{{endfor}}"',
    f'<<EOT\nhello ${{{S}}}\nEOT\n', f'[for c in [{S}] : upper(c)][0]', f'{S} == "x" ? "a" : "b"',
    f'upper(lower(format("%s", {S})))', f'jsonencode([{{a = [{S}]}}])',
])
def test_sensitivity_propagates_through_templates_and_expressions(tmp_path, src):
    v = ok(src, tmp_path)
    assert v.sensitive, src
