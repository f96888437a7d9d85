"""Operators, indexing and attribute access on Values (HCL/cty semantics).

These functions know nothing of syntax: they raise ``OpError`` and the
evaluator turns it into a diagnostic at the right source range.
"""

from __future__ import annotations

import difflib
from decimal import DivisionByZero, InvalidOperation, localcontext

from .convert import ConversionError, convert
from .types import BOOL, DYNAMIC, NUMBER, STRING, Type
from .values import (FALSE, NUMBER_CONTEXT, TRUE, UNKNOWN, NumberRangeError, Value, bool_val, in_range,
                     normalize_number, to_decimal, unknown)


class OpError(Exception):
    """``operand`` is "lhs", "rhs", "key" or None: which part the error points at."""

    def __init__(self, summary: str, detail: str, operand: str | None = None, hint: str = "") -> None:
        super().__init__(summary)
        self.summary = summary
        self.detail = detail
        self.operand = operand
        self.hint = hint


# ---- arithmetic and logic ------------------------------------------------------------

ARITHMETIC = {"+", "-", "*", "/", "%"}
COMPARISON = {"<", ">", "<=", ">="}
LOGICAL = {"&&", "||"}


def _operand(v: Value, want: Type, side: str) -> Value:
    try:
        return convert(v, want)
    except ConversionError as e:
        what = {"lhs": "left", "rhs": "right"}.get(side, "unary")
        raise OpError("Invalid operand", f"Unsuitable value for {what} operand: {e.message}.", side) from None


def binary(op: str, lhs: Value, rhs: Value) -> Value:
    sensitive = lhs.sensitive or rhs.sensitive
    if op == "==" or op == "!=":
        r = equals(lhs.unmark_deep(), rhs.unmark_deep())
        if op == "!=" and r.raw is not UNKNOWN:
            r = bool_val(not r.raw)
        return r.mark(sensitive or lhs.is_deeply_sensitive or rhs.is_deeply_sensitive)
    want = BOOL if op in LOGICAL else NUMBER
    result_type = NUMBER if op in ARITHMETIC else BOOL
    a = _operand(lhs, want, "lhs")
    b = _operand(rhs, want, "rhs")
    if a.raw is None:
        raise OpError("Invalid operand", "Unsuitable value for left operand: a non-null value is required.",
                      "lhs")
    if b.raw is None:
        raise OpError("Invalid operand", "Unsuitable value for right operand: a non-null value is required.",
                      "rhs")
    if op in LOGICAL:
        # A known deciding left operand settles the result even if the right is unknown.
        if a.raw is not UNKNOWN and a.raw == (op == "||"):
            return a.mark(sensitive)
        if a.raw is UNKNOWN or b.raw is UNKNOWN:
            if b.raw is not UNKNOWN and b.raw == (op == "||"):
                return b.mark(sensitive)
            return Value(BOOL, UNKNOWN, sensitive)
        return b.mark(sensitive)
    if a.raw is UNKNOWN or b.raw is UNKNOWN:
        return Value(result_type, UNKNOWN, sensitive)
    x, y = a.raw, b.raw
    if op in COMPARISON:
        r = {"<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}[op]
        return bool_val(r).mark(sensitive)
    return Value(NUMBER, arithmetic(op, x, y), sensitive)


def arithmetic(op: str, x, y):
    try:
        return _arithmetic(op, x, y)
    except NumberRangeError:
        raise OpError("Number out of range", str(NumberRangeError("the result of this operation")) + ".",
                      hint="numbers this large (or small) are not supported") from None


def _arithmetic(op: str, x, y):
    if isinstance(x, int) and isinstance(y, int) and op in "+-*":
        r = x + y if op == "+" else x - y if op == "-" else x * y
        if not in_range(r):
            raise NumberRangeError()
        return r
    dx, dy = to_decimal(x), to_decimal(y)
    with localcontext(NUMBER_CONTEXT) as ctx:
        ctx.traps[DivisionByZero] = True
        ctx.traps[InvalidOperation] = True
        try:
            if op == "+":
                r = dx + dy
            elif op == "-":
                r = dx - dy
            elif op == "*":
                r = dx * dy
            elif op == "/":
                if dy == 0:
                    raise OpError("Division by zero", "Cannot divide by zero.", "rhs",
                                  hint="check the divisor with a conditional first")
                r = dx / dy
            else:
                if dy == 0:
                    raise OpError("Division by zero", "Cannot take the remainder of a division by zero.", "rhs")
                # Remainder takes the sign of the dividend (truncated division), like Go and cty.
                r = dx % dy
        except (InvalidOperation, DivisionByZero, OverflowError):
            raise OpError("Invalid arithmetic", "The result of this operation is not a finite number.") from None
    return normalize_number(r)


def unary(op: str, v: Value) -> Value:
    if op == "-":
        a = _operand(v, NUMBER, "unary")
        if a.raw is None:
            raise OpError("Invalid operand", "Unsuitable value for unary operand: a non-null value is required.",
                          "unary")
        if a.raw is UNKNOWN:
            return a
        n = a.raw
        # Decimal operators use the thread's context (28 digits); ours keeps full precision.
        return Value(NUMBER, -n if isinstance(n, int) else NUMBER_CONTEXT.minus(n), v.sensitive)
    a = _operand(v, BOOL, "unary")
    if a.raw is None:
        raise OpError("Invalid operand", "Unsuitable value for unary operand: a non-null value is required.",
                      "unary")
    if a.raw is UNKNOWN:
        return a
    return bool_val(not a.raw).mark(v.sensitive)


def equals(a: Value, b: Value) -> Value:
    """HCL ``==``: no conversion; values of different types are unequal (cty Value.Equals)."""
    ak, bk = a.raw is not UNKNOWN, b.raw is not UNKNOWN
    if not ak and not bk:
        return unknown(BOOL)
    if ak != bk:
        known, unk = (a, b) if ak else (b, a)
        if known.raw is None or unk.type.has_dynamic() or known.type.has_dynamic():
            return unknown(BOOL)  # nulls of any type are equal; must wait
        if known.type != unk.type:
            return FALSE
        return unknown(BOOL)
    if a.raw is None or b.raw is None:
        return bool_val(a.raw is None and b.raw is None)
    if a.type != b.type:
        return FALSE
    return _deep_equals(a, b)


def _deep_equals(a: Value, b: Value) -> Value:
    ra, rb = a.raw, b.raw
    if ra is UNKNOWN or rb is UNKNOWN:
        return unknown(BOOL)
    if ra is None or rb is None:
        return bool_val(ra is None and rb is None)
    if isinstance(ra, tuple):
        if a.type.is_set:
            if not (a.is_wholly_known and b.is_wholly_known):
                return unknown(BOOL)
            return bool_val(ra == rb)
        if len(ra) != len(rb):
            return FALSE
        pairs = zip(ra, rb)
    elif isinstance(ra, dict):
        if ra.keys() != rb.keys():
            return FALSE
        pairs = ((ra[k], rb[k]) for k in ra)
    else:
        return bool_val(ra == rb)
    result = TRUE
    for x, y in pairs:
        if x.type != y.type and not (x.raw is None and y.raw is None):
            return FALSE
        r = _deep_equals(x, y)
        if r.raw is False:
            return FALSE
        if r.raw is UNKNOWN:
            result = r
    return result


# ---- indexing ------------------------------------------------------------------------

def index(coll: Value, key: Value) -> Value:
    """``coll[key]`` (hcl.Index)."""
    t = coll.type
    sensitive = coll.sensitive or key.sensitive
    if coll.raw is None:
        raise OpError("Attempt to index null value", "This value is null, so it does not have any indices.")
    if key.raw is None:
        raise OpError("Invalid index", "Can't use a null value as an indexing key.", "key")
    if t == DYNAMIC:
        return unknown(DYNAMIC)
    if t.is_list or t.is_tuple:
        try:
            k = convert(key, NUMBER)
        except ConversionError:
            raise OpError("Invalid index", "The given key does not identify an element in this collection "
                          "value: a number is required.", "key") from None
        if k.raw is UNKNOWN or coll.raw is UNKNOWN:
            if t.is_list:
                return Value(t.element, UNKNOWN, sensitive)
            if k.raw is not UNKNOWN and isinstance(k.raw, int) and 0 <= k.raw < len(t.elements):
                return Value(t.elements[k.raw], UNKNOWN, sensitive)
            return Value(DYNAMIC, UNKNOWN, sensitive)
        n = k.raw
        if not isinstance(n, int):
            raise OpError("Invalid index", "The given key does not identify an element in this collection "
                          "value: the given index is not a whole number.", "key")
        if n < 0:
            raise OpError("Invalid index", "The given key does not identify an element in this collection value: "
                          "a negative number is not a valid index for a sequence.", "key")
        if n >= len(coll.raw):
            count = len(coll.raw)
            raise OpError("Invalid index", "The given key does not identify an element in this collection value: "
                          f"the collection has {count} element{'s' if count != 1 else ''}.", "key",
                          hint=f"valid indices are 0 to {count - 1}" if count else "the collection is empty")
        return coll.raw[n].mark(sensitive)
    if t.is_map or t.is_object:
        try:
            k = convert(key, STRING)
        except ConversionError:
            raise OpError("Invalid index", "The given key does not identify an element in this collection value: "
                          "a string is required.", "key") from None
        if k.raw is UNKNOWN or coll.raw is UNKNOWN:
            if t.is_map:
                return Value(t.element, UNKNOWN, sensitive)
            attrs = t.attr_types
            if k.raw is not UNKNOWN and k.raw in attrs:
                return Value(attrs[k.raw], UNKNOWN, sensitive)
            return Value(DYNAMIC, UNKNOWN, sensitive)
        name = k.raw
        if name not in coll.raw:
            raise OpError("Invalid index", "The given key does not identify an element in this collection value.",
                          "key", hint=suggest(name, coll.raw.keys(), "did you mean {}?"))
        return coll.raw[name].mark(sensitive)
    if t.is_set:
        raise OpError("Invalid index", "Elements of a set are identified only by their value and don't have any "
                      "separate index or key to select with, so it's only possible to perform operations across "
                      "all elements of the set.", hint="convert it with tolist() first, or use a for expression")
    raise OpError("Invalid index", "This value does not have any indices.")


def get_attr(obj: Value, name: str) -> Value:
    """``obj.name`` (hcl.GetAttr)."""
    t = obj.type
    if obj.raw is None:
        raise OpError("Attempt to get attribute from null value",
                      "This value is null, so it does not have any attributes.")
    if t == DYNAMIC:
        return unknown(DYNAMIC)
    if t.is_object:
        attrs = t.attr_types
        if name not in attrs:
            raise OpError("Unsupported attribute", f'This object does not have an attribute named "{name}".',
                          hint=suggest(name, attrs.keys(), "did you mean {}?"))
        if obj.raw is UNKNOWN:
            return Value(attrs[name], UNKNOWN, obj.sensitive)
        return obj.raw[name].mark(obj.sensitive)
    if t.is_map:
        if obj.raw is UNKNOWN:
            return Value(t.element, UNKNOWN, obj.sensitive)
        if name not in obj.raw:
            raise OpError("Missing map element", f'This map does not have an element with the key "{name}".',
                          hint=suggest(name, obj.raw.keys(), "did you mean {}?"))
        return obj.raw[name].mark(obj.sensitive)
    if t.is_primitive:
        raise OpError("Unsupported attribute",
                      f"Can't access attributes on a primitive-typed value ({t.friendly_name()}).")
    if t.is_list or t.is_tuple or t.is_set:
        what = {True: "list"}.get(t.is_list, "tuple" if t.is_tuple else "set")
        raise OpError("Unsupported attribute",
                      f"Can't access attributes on a {what} of objects. Did you mean to access an attribute for a "
                      f"specific element of the {what}, or across all elements of the {what}?",
                      hint=f'use [0].{name} for one element or [*].{name} for all of them')
    raise OpError("Unsupported attribute", "This value does not have any attributes.")


def suggest(name: str, candidates, template: str = "did you mean {}?") -> str:
    """A "did you mean" hint for a misspelled name, or ''."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return template.format(f'"{close[0]}"') if close else ""
