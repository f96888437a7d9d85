"""The parser: syntax features, trees, ranges, and diagnostics for bad input."""

from __future__ import annotations

import pytest

from orchdsl.lang import ast as A
from orchdsl.lang import parse, parse_expression


def ok(text: str) -> A.Body:
    body, diags = parse(text, "t.orch")
    assert not diags, [d.render() for d in diags]
    return body


def expr(text: str) -> A.Expr:
    e, diags = parse_expression(text)
    assert not diags, [d.render() for d in diags]
    return e


def errors(text: str) -> list[tuple[str, int, int]]:
    _, diags = parse(text, "t.orch")
    return [(d.summary, d.subject.start.line, d.subject.start.column) for d in diags]


# ---- structure -------------------------------------------------------------------

def test_blocks_labels_attributes():
    body = ok('pod "web" {\n  replicas = 3\n  container "httpd" {\n    image = "busybox"\n  }\n}\n')
    (pod,) = body.blocks
    assert pod.type == "pod" and pod.labels == ["web"]
    assert pod.body.attributes["replicas"].expr.value == 3
    (c,) = pod.body.blocks
    assert c.labels == ["httpd"] and c.body.attributes["image"].expr.value == "busybox"


def test_one_line_blocks_and_bare_labels():
    body = ok("a {}\nb x { y = 1 }\nc {\n}\n")
    assert [b.type for b in body.blocks] == ["a", "b", "c"]
    assert body.blocks[1].labels == ["x"]
    assert body.blocks[1].body.attributes["y"].expr.value == 1


def test_file_may_end_without_newline_and_with_comments():
    body = ok("a = 1 # c\n// d\n/* e */ b = 2")
    assert set(body.attributes) == {"a", "b"}


def test_ranges_carry_line_column_byte():
    body = ok('x = 1\ny = "é${a}"\n')
    y = body.attributes["y"]
    r = y.range
    assert (r.start.line, r.start.column, r.start.byte) == (2, 1, 6)
    assert y.name_range.end.column == 2
    interp = y.expr.parts[1]
    assert (interp.range.start.line, interp.range.start.column) == (2, 9)
    assert interp.range.start.byte == 6 + 8 + 1  # "é" is two bytes


def test_unicode_identifiers():
    body = ok("größe = 1\nnom_été = größe\n")
    assert body.attributes["nom_été"].expr.name == "größe"


# ---- expressions -----------------------------------------------------------------------

def test_precedence_and_associativity():
    e = expr("1 + 2 * 3 - 4 / 2 == 5 || !a && b")
    assert e.op == "||" and e.rhs.op == "&&" and isinstance(e.rhs.lhs, A.UnaryOp)
    eq = e.lhs
    assert eq.op == "==" and eq.lhs.op == "-"
    assert eq.lhs.lhs.op == "+" and eq.lhs.lhs.rhs.op == "*" and eq.lhs.rhs.op == "/"
    sub = expr("10 - 2 - 3")
    assert sub.op == "-" and sub.lhs.op == "-"  # left associative


def test_unary_binds_tighter_than_binary():
    e = expr("-a.b * 2")
    assert e.op == "*" and isinstance(e.lhs, A.UnaryOp) and isinstance(e.lhs.operand, A.ScopeTraversal)


def test_conditional_is_right_associative():
    e = expr("a ? b : c ? d : e")
    assert isinstance(e.false_expr, A.Conditional)


def test_traversals_and_legacy_index():
    e = expr("var.list.0.name")
    assert isinstance(e, A.ScopeTraversal) and e.name == "var"
    assert [type(s).__name__ for s in e.steps] == ["GetAttr", "IndexKey", "GetAttr"]
    assert e.steps[1].key == 0
    dyn = expr("a[b].c")
    assert isinstance(dyn, A.RelativeTraversal) and isinstance(dyn.source, A.Index)


def test_splats():
    full = expr("a[*].b[0]")
    assert isinstance(full, A.Splat) and not full.attr_only
    assert [type(s).__name__ for s in full.each.steps] == ["GetAttr", "IndexKey"]
    attr = expr("a.*.b[0]")
    assert isinstance(attr, A.RelativeTraversal) and isinstance(attr.source, A.Splat) and attr.source.attr_only


def test_calls_expansion_and_namespaces():
    e = expr("f(1, [2]...)")
    assert e.name == "f" and e.expand_final and len(e.args) == 2
    assert expr("provider::ns::fn()").name == "provider::ns::fn"
    assert len(expr("f(\n  1,\n  2,\n)").args) == 2


def test_collections_and_object_keys():
    t = expr("[1, \"two\", [3],]")
    assert len(t.exprs) == 3
    o = expr('{a = 1, "b" = 2\n  (c) = 3\n  d: 4,\n}')
    keys = [k for k, _ in o.items]
    assert [k.force_non_literal for k in keys] == [False, False, True, False]
    assert isinstance(keys[2].wrapped, A.Parens)


def test_for_expressions():
    t = expr("[for i, v in xs : v * 2 if i > 0]")
    assert isinstance(t, A.For) and t.key_var == "i" and t.val_var == "v" and t.key_expr is None
    o = expr("{\n  for k, v in m :\n  k => v...\n  if v != null\n}")
    assert o.group and o.cond is not None and isinstance(o.key_expr, A.ScopeTraversal)


def test_for_keyword_has_priority_but_is_not_reserved():
    assert isinstance(expr("[(for), 1]").exprs[0], A.Parens)
    assert expr("x.for").steps[0].name == "for"
    assert isinstance(expr("a[for]").key if isinstance(expr("a[for]"), A.Index) else None, A.ScopeTraversal)
    assert ok("in = 1\nif = 2\n").attributes["if"].expr.value == 2


def test_newlines_ignored_inside_brackets_not_in_bodies():
    e = expr("(\n  a +\n  b\n)")
    assert isinstance(e, A.Parens)
    assert errors("a = b +\n  c\n")[0][0] == "Missing expression"


# ---- templates -------------------------------------------------------------------------

def test_single_interpolation_is_wrapped():
    assert isinstance(expr('"${x}"'), A.TemplateWrap)
    assert isinstance(expr('"a${x}"'), A.Template)


def test_escapes():
    assert expr(r'"a\n\t\"\\ \u00e9 \U0001F600"').value == 'a\n\t"\\ é 😀'
    assert expr('"$${x} %%{y} $ %"').value == "${x} %{y} $ %"


def test_nested_strings_in_interpolation():
    e = expr('"a ${f("b ${c}", {k = "}"})} d"')
    assert isinstance(e, A.Template) and isinstance(e.parts[1], A.FunctionCall)


def test_heredocs():
    h = expr("<<EOT\nline ${x}\n  two\nEOT")
    assert [p.value for p in h.parts if isinstance(p, A.Literal)] == ["line ", "\n  two\n"]
    flush = expr("<<-EOT\n    a\n      b\n    EOT")
    assert flush.value == "a\n  b\n"


def test_directives_and_strip_markers():
    e = expr('"%{ if a ~}  yes  %{~ else ~}  no  %{~ endif }"')
    (tif,) = e.parts if isinstance(e, A.Template) else (e,)
    assert isinstance(tif, A.TemplateIf)
    assert tif.true_tpl.parts[0].value == "yes"
    assert tif.false_tpl.parts[0].value == "no"
    loop = expr('"%{ for k, v in m }${k}=${v},%{ endfor }"').parts[0]
    assert isinstance(loop, A.TemplateJoin) and loop.tuple.key_var == "k"


# ---- bad input: every error, located, with a hint where one helps ----------------------

def test_all_errors_in_a_file_are_reported():
    text = "a = = 1\nb = 2\nc = [1 2]\nd = 4\ne {\n  f = ]\n}\ng = 7\n"
    got = errors(text)
    assert [(s, line) for s, line, _ in got] == [
        ("Invalid expression", 1), ("Missing item separator", 3), ("Invalid expression", 6)]
    body, _ = parse(text)
    assert {"b", "d", "g"} <= set(body.attributes)  # good items around the bad ones survive


@pytest.mark.parametrize("text, summary, line, col", [
    ("a = 1 b = 2\n", "Missing newline after argument", 1, 7),
    ("a = 1,\n", "Unexpected comma after argument", 1, 6),
    ("a = 'x'\n", "Invalid character", 1, 5),
    ('a = "x\n', "Invalid multi-line string", 1, 7),
    ("a = 1\na = 2\n", "Attribute redefined", 2, 1),
    ('r "a${b}" {}\n', "Invalid string literal", 1, 3),
    ("b { x = 1\n}\n", "Invalid single-argument block definition", 1, 10),
    ("b\n{\n}\n", "Invalid block definition", 1, 2),
    ("b = {\n", "Unexpected end of file", 2, 1),
    ("b {\n", "Unclosed configuration block", 2, 1),
    ("x = <<EOT\nabc\n", "Unterminated template string", 3, 1),
    ('x = "%{ if a }b"\n', "Unexpected end of template", 1, 6),
    ('x = "%{ endif }"\n', "Unexpected endif directive", 1, 6),
    ('x = "${a b}"\n', "Extra characters after interpolation expression", 1, 10),
    ('x = "\\q"\n', "Invalid escape sequence", 1, 6),
    ("x = a.0.1\n", "Invalid legacy index syntax", 1, 7),
    ("x = a & b\n", "Unsupported operator", 1, 7),
    ('"x" = 1\n', "Invalid argument name", 1, 1),
    ("x = {a = 1 b = 2}\n", "Missing attribute separator", 1, 12),
    ("x = f(1 2)\n", "Missing argument separator", 1, 9),
    ("x = [for a in b: a => a]\n", "Invalid 'for' expression", 1, 20),
    ("x = 1\xff\n".encode("latin-1").decode("utf-8", "surrogateescape"), "Invalid character encoding", 1, 6),
])
def test_error_messages(text, summary, line, col):
    got = errors(text)
    assert got, "expected an error"
    assert (summary, line, col) in got, got


def test_errors_render_snippet_with_caret_and_hint():
    _, diags = parse("a = 1\nb = 2 c\n", "main.orch")
    text = diags[0].render()
    assert "main.orch:2:7" in text and "b = 2 c" in text and "^" in text
    assert "Hint:" in text


def test_expression_parse_errors_point_into_the_expression():
    e, diags = parse_expression("1 +")
    assert e is None and diags and diags[0].subject.start.column == 4
