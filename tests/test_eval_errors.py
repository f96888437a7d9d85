"""Evaluation diagnostics: summaries, source ranges, "did you mean" hints, no escaping exceptions."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchdsl.eval import (DYNAMIC_VAL, EvalContext, evaluate, from_python, parse_template, standard_functions,
                          unknown)
from orchdsl.eval.functions import REGISTRY
from orchdsl.lang import parse_expression


def _ctx(base: Path | str = ".") -> EvalContext:
    return EvalContext({
        "var": from_python({"name": "web", "ports": [80, 443], "tags": {"env": "prod"}}),
        "local": from_python({"region": "eu"}),
        "unk": unknown(),
    }, standard_functions(base))


def _errors(src: str, ctx: EvalContext | None = None):
    expr, parse_diags = parse_expression(src)
    assert expr is not None and not parse_diags
    value, diags = evaluate(expr, ctx or _ctx())
    errors = [d for d in diags if d.is_error]
    assert errors, f"expected an error for {src!r}"
    return value, errors


def _span(d) -> tuple[int, int, int, int]:
    s = d.subject
    return (s.start.line, s.start.column, s.end.line, s.end.column)


def test_unknown_variable_has_range_and_hint():
    value, [d] = _errors("loacl.region")
    assert d.summary == "Unknown variable"
    assert 'no variable named "loacl"' in d.detail
    assert d.hint == 'did you mean "local"?'
    assert _span(d) == (1, 1, 1, 13)
    assert value is DYNAMIC_VAL


def test_unsupported_attribute_points_at_the_step():
    _, [d] = _errors("var.nmae")
    assert d.summary == "Unsupported attribute"
    assert d.hint == 'did you mean "name"?'
    assert _span(d) == (1, 4, 1, 9)


def test_invalid_index_points_at_the_key():
    _, [d] = _errors("var.ports[2]")
    assert d.summary == "Invalid index"
    assert "2 elements" in d.detail
    assert _span(d) == (1, 10, 1, 13)
    _, [d] = _errors("var.ports[local.region]")
    assert d.summary == "Invalid index"
    assert _span(d) == (1, 11, 1, 23)


def test_operand_errors_point_at_the_operand():
    _, [d] = _errors('(1 +\n  "abc")')
    assert d.summary == "Invalid operand"
    assert "right operand" in d.detail
    assert _span(d) == (2, 3, 2, 8)
    _, [d] = _errors("10 / (2 - 2)")
    assert d.summary == "Division by zero"
    assert _span(d) == (1, 6, 1, 13)
    assert d.hint


def test_function_errors():
    _, [d] = _errors('uppr("a")')
    assert d.summary == "Call to unknown function"
    assert d.hint == 'did you mean "upper"?'
    _, [d] = _errors('upper("a", "b")')
    assert d.summary == "Too many function arguments"
    assert _span(d) == (1, 12, 1, 15)
    _, [d] = _errors('join(",")')
    assert d.summary == "Error in function call"
    _, [d] = _errors("substr()")
    assert d.summary == "Not enough function arguments"
    assert 'Missing value for "str"' in d.detail
    _, [d] = _errors('join(",", [1, [2]])')
    assert d.summary == "Invalid function argument"
    assert d.detail.startswith('Invalid value for "lists" parameter:')
    assert _span(d) == (1, 11, 1, 19)
    assert "join(separator: string" in d.hint


def test_function_error_ranges_for_expanded_arguments():
    _, [d] = _errors('cidrsubnet("10.0.0.0/8", var.ports...)')
    assert d.summary == "Invalid function argument"
    assert _span(d) == (1, 26, 1, 35)


def test_nested_errors_are_reported_once():
    # The failing reference makes everything around it unknown, silently.
    _, errors = _errors('upper("${nope}-x") == "A" ? 1 : 0')
    assert [d.summary for d in errors] == ["Unknown variable"]
    _, errors = _errors('[upper("${nope}-x") == "A", length(nope2) + 1]')
    assert [d.summary for d in errors] == ["Unknown variable", "Unknown variable"]


def test_conditional_mismatch_explains_the_difference():
    _, [d] = _errors('true ? {a = 1} : [1]')
    assert d.summary == "Inconsistent conditional result types"
    assert "The 'true' value is object, but the 'false' value is tuple" in d.detail
    assert _span(d) == (1, 8, 1, 21)


def test_for_duplicate_key_has_hint():
    _, [d] = _errors('{for s in ["a", "a"] : s => 1}')
    assert d.summary == "Duplicate object key"
    assert "..." in d.hint
    assert _span(d) == (1, 24, 1, 25)


def test_try_reports_every_failure():
    _, [d] = _errors("try(nope, var.nope)")
    assert d.summary == "Error in function call"
    assert "no expression succeeded" in d.detail
    assert 'no variable named "nope"' in d.detail
    assert "Unsupported attribute" in d.detail


def test_templatefile_errors_name_the_template_position(tmp_path):
    (tmp_path / "t.tpl").write_text("line one\n${nope}\n")
    (tmp_path / "broken.tpl").write_text("x ${ \n")
    ctx = _ctx(tmp_path)
    _, [d] = _errors('templatefile("t.tpl", {})', ctx)
    assert d.summary == "Invalid function argument"
    assert 'vars map does not contain key "nope"' in d.detail
    assert "t.tpl:2,3-7" in d.detail
    _, [d] = _errors('templatefile("broken.tpl", {})', ctx)
    assert "failed to parse template" in d.detail


def test_parse_template_positions():
    expr, diags = parse_template("ab\n${x}\n", "f.tpl")
    assert not diags
    ref = expr.parts[1]
    assert (ref.range.start.line, ref.range.start.column) == (2, 3)
    expr, diags = parse_template("EOT\n${x", "g.tpl")
    assert diags and diags[0].subject.filename == "g.tpl"


def test_diagnostics_render_with_source_snippet():
    _, [d] = _errors("var.ports[9]")
    text = d.render()
    assert "Invalid index" in text and "var.ports[9]" in text and "^^^" in text
    assert d.to_json()["range"]["start"]["column"] == 10


WEIRD = [
    "1/0", "-true", "!1", "null.a", "null[0]", "var[0]", "unk.a.b[1][*].c", "[for x in unk: x.y]",
    "{for k, v in var: v => k}", "upper(unk...)", "max(var...)", "length(var.ports...)", "[1, 2][*][0]",
    '"${var}"', '"%{for x in var}${x}%{endfor}"', '"%{if var}x%{endif}"', "tolist(var)", "toset([[1], 1])",
    "merge(var.ports)", "flatten(var)", "zipmap(var.ports, var.ports)", "setproduct(var.ports)",
    'format("%[9]d", 1)', 'format("%z", 1)', 'format("%", 1)', "range(1e9)", "pow(-1, 0.5)", "log(0, 10)",
    'regex("(", "x")', 'regex("(?P<a>x)(y)", "xy")', 'cidrsubnet("x", 1, 1)', 'cidrhost("::/0", -1)',
    "jsondecode(\"[1,\")", "base64decode(\"/w==\")", "element(var.ports, -1)", "slice(var.ports, 2, 1)",
    "chunklist(var.ports, -1)", "parseint(\"1\", 99)", 'templatefile("/", {})', "file(\"/\")",
    "can()", "try()", "can(1, 2)", "try(1...)", "coalescelist(1)", "sum([\"a\"])", "one(toset([1, 2]))",
    "transpose({a = [null]})", "lookup(var, \"name\", 1, 2)", "sort([null])", "distinct(1)",
    "keys(1)", "values(1)", "index(var.ports, 1)", "abs(\"x\")", "signum(null)", "ceil(1e400)",
    "substr(\"abc\", 0.5, 1)", "indent(-1, \"x\")", "title(unk)", "var.ports[0.5]", "var.ports[unk]",
    "{(unk) = 1}", "[for x in [1] : x if unk]", "unk ? unk : unk", "sensitive(unk)[0]",
]


@pytest.mark.parametrize("src", WEIRD)
def test_no_exception_escapes(src):
    expr, _ = parse_expression(src)
    value, diags = evaluate(expr, _ctx())
    assert value is not None
    for d in diags:
        assert d.summary and (d.subject is not None), (src, d)
        assert "internal error" not in d.detail, (src, d.detail)


def test_docs_cover_every_function():
    from orchdsl.eval.functions.reference import render_reference

    doc = (Path(__file__).resolve().parents[1] / "docs" / "functions.md").read_text()
    names = set(REGISTRY) | set(standard_functions(".").keys())
    missing = sorted(n for n in names if f"`{n}(" not in doc)
    assert not missing, f"docs/functions.md lacks {missing}"
    assert doc == render_reference(), \
        "docs/functions.md is stale: python -m orchdsl.eval.functions.reference > docs/functions.md"


def test_function_calls_need_a_function_table():
    expr, _ = parse_expression('upper("a")')
    _, [d] = evaluate(expr, EvalContext({}))
    assert d.summary == "Function calls not allowed"
