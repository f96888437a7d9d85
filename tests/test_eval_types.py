"""Conversion, unification, type constraints, Python interop and sensitive marks."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orchdsl.eval import (BOOL, DYNAMIC, NUMBER, STRING, UNKNOWN, ConversionError, EvalContext, ListType,
                          MapType, ObjectType, SetType, TupleType, apply_defaults, convert, evaluate,
                          format_value, from_python, number_val, parse_type_constraint, standard_functions,
                          string_val, to_python, unify, unknown)
from orchdsl.lang import parse_expression


def _type(src: str):
    expr, diags = parse_expression(src)
    assert not diags
    return parse_type_constraint(expr)


@pytest.mark.parametrize("types,want", [
    ([NUMBER, STRING], STRING),
    ([BOOL, STRING], STRING),
    ([NUMBER, BOOL], None),
    ([NUMBER, DYNAMIC], DYNAMIC),
    ([ListType(NUMBER), ListType(STRING)], ListType(STRING)),
    ([ObjectType({"a": NUMBER}), ObjectType({"a": STRING})], ObjectType({"a": STRING})),
    ([ObjectType({"a": NUMBER}), ObjectType({"b": NUMBER})], MapType(NUMBER)),
    ([TupleType([NUMBER]), TupleType([NUMBER, NUMBER])], ListType(NUMBER)),
    ([TupleType([NUMBER]), ObjectType({})], None),
    ([MapType(STRING), ObjectType({"a": NUMBER})], MapType(STRING)),
])
def test_unify(types, want):
    assert unify(types) == want


def test_convert_rules():
    assert convert(string_val("12"), NUMBER) == number_val(12)
    assert convert(number_val(Decimal("1.50")), STRING) == string_val("1.5")
    assert to_python(convert(from_python(["a", 1, True]), ListType(STRING))) == ["a", "1", "true"]
    assert convert(from_python(None), ListType(STRING)).type == ListType(STRING)
    assert convert(unknown(), NUMBER).type == NUMBER
    assert convert(from_python({"a": 1, "b": 2}), ObjectType({"a": STRING})).raw["a"] == string_val("1")
    with pytest.raises(ConversionError, match="a number is required"):
        convert(string_val("x"), NUMBER)
    with pytest.raises(ConversionError, match='attribute "b" is required'):
        convert(from_python({"a": 1}), ObjectType({"a": NUMBER, "b": NUMBER}))
    with pytest.raises(ConversionError, match=r'\["x"\]: a number is required'):
        convert(from_python({"x": "no"}), MapType(NUMBER))
    with pytest.raises(ConversionError, match="map has no element"):
        convert(convert(from_python({"a": 1}), MapType(NUMBER)), ObjectType({"b": NUMBER}))
    s = convert(from_python([3, 1, 3]), SetType(NUMBER))
    assert to_python(s) == [1, 3]


def test_type_constraints_and_defaults():
    t, d, diags = _type("list(object({ name = string, port = optional(number, 80), tags = optional(map(string)) }))")
    assert not diags
    assert t == ListType(ObjectType({"name": STRING, "port": NUMBER, "tags": MapType(STRING)},
                                    optional={"port", "tags"}))
    value = from_python([{"name": "a"}, {"name": "b", "port": 8080}])
    out = convert(apply_defaults(value, d), t)
    assert to_python(out) == [{"name": "a", "port": 80, "tags": None}, {"name": "b", "port": 8080, "tags": None}]
    assert _type("tuple([string, number])")[0] == TupleType([STRING, NUMBER])
    assert _type("any")[0] == DYNAMIC
    for bad in ("strin", "list", "list(string, number)", "optional(string)", "object([])", '"string"'):
        _, _, diags = _type(bad)
        assert diags and diags[0].summary == "Invalid type specification", bad


def test_interop_roundtrip():
    data = {"a": [1, Decimal("2.5"), "x", None, True], "b": {"c": {}}}
    assert to_python(from_python(data)) == data
    assert to_python(from_python(0.1)) == Decimal("0.1")
    assert to_python(from_python({1, 2})) == [1, 2]
    assert to_python(from_python([UNKNOWN])) == [UNKNOWN]


def test_sensitive_marks_propagate():
    ctx = EvalContext({"secret": from_python("hunter2").mark()}, standard_functions("."))
    for src, shown in [("secret", "(sensitive value)"), ('"pw: ${secret}"', "(sensitive value)"),
                       ("upper(secret)", "(sensitive value)"), ("length(secret)", "(sensitive value)"),
                       ("[secret]", "[\n  (sensitive value),\n]"), ("nonsensitive(secret)", '"hunter2"'),
                       ("issensitive(secret)", "true"), ('secret == "x" ? 1 : 2', "(sensitive value)")]:
        expr, _ = parse_expression(src)
        value, diags = evaluate(expr, ctx)
        assert not diags, (src, diags)
        assert format_value(value) == shown, src


# ---- properties ------------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# Console output quotes strings as Go does (as Terraform), which HCL reads back only for text
# without control characters or template sequences; multi-line strings print as heredocs.
_text = st.text(st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="$%"), max_size=12)
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**30, max_value=10**30),
    st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=-10**6, max_value=10**6),
    _text,
)
_data = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_text, inner, max_size=4)), max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(_data)
def test_console_output_evaluates_back_to_the_value(data):
    value = from_python(data)
    text = format_value(value)
    expr, diags = parse_expression(text)
    assert not diags, text
    back, diags = evaluate(expr, EvalContext({}, standard_functions(".")))
    assert not diags, text
    assert back == value, text


@settings(max_examples=150, deadline=None)
@given(_data)
def test_jsonencode_jsondecode_roundtrip(data):
    ctx = EvalContext({"v": from_python(data)}, standard_functions("."))
    expr, _ = parse_expression("jsondecode(jsonencode(v))")
    back, diags = evaluate(expr, ctx)
    assert not diags
    assert to_python(back) == to_python(from_python(data))
