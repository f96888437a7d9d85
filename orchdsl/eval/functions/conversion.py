"""Type conversion functions, sensitivity functions, and the lazy try()/can()."""

from __future__ import annotations

from ..convert import ConversionError, convert
from ..types import BOOL, DYNAMIC, NUMBER, STRING, ListType, MapType, SetType, Type
from ..values import UNKNOWN, Value, bool_val
from .base import ArgError, FunctionError, register

CAT = "type conversion"


def _to(v: Value, want: Type, constraint: str) -> Value:
    if v.type == want:
        return v
    try:
        return convert(v, want)
    except ConversionError as e:
        if v.type.is_primitive and want.is_primitive and v.raw is not None:
            shown = v.raw if v.type == STRING else v
            if want == NUMBER and "out of range" in e.message:
                raise ArgError(0, e.message) from None
            if want == NUMBER:
                raise ArgError(0, f'cannot convert "{shown}" to number; given string must be a decimal '
                                  "representation of a number") from None
            if want == BOOL:
                raise ArgError(0, f'cannot convert "{shown}" to bool; only the strings "true" or "false" '
                                  "are allowed") from None
        if e.path:
            raise ArgError(0, f"cannot convert {v.type.friendly_name()} to {constraint}: {e}") from None
        raise ArgError(0, f"cannot convert {v.type.friendly_name()} to {constraint}") from None


@register(CAT, "tostring(v: any [null] [unknown]) -> string",
          "Converts a number, bool or string to a string.")
def tostring(v: Value) -> Value:
    return _to(v, STRING, "string")


@register(CAT, "tonumber(v: any [null] [unknown]) -> number", "Converts a string or number to a number.")
def tonumber(v: Value) -> Value:
    return _to(v, NUMBER, "number")


@register(CAT, "tobool(v: any [null] [unknown]) -> bool", 'Converts "true"/"false" or a bool to a bool.')
def tobool(v: Value) -> Value:
    return _to(v, BOOL, "bool")


@register(CAT, "tolist(v: any [null] [unknown]) -> list(any)",
          "Converts a tuple or set to a list (elements converted to one type).")
def tolist(v: Value) -> Value:
    return _to(v, ListType(DYNAMIC), "list of any single type")


@register(CAT, "toset(v: any [null] [unknown]) -> set(any)",
          "Converts a list or tuple to a set: duplicates removed, order lost.")
def toset(v: Value) -> Value:
    return _to(v, SetType(DYNAMIC), "set of any single type")


@register(CAT, "tomap(v: any [null] [unknown]) -> map(any)",
          "Converts an object to a map (values converted to one type).")
def tomap(v: Value) -> Value:
    return _to(v, MapType(DYNAMIC), "map of any single type")


@register("sensitivity", "sensitive(value: any [null] [unknown] [marked]) -> any",
          "Marks a value as sensitive: it is hidden in plans and output.")
def sensitive(v: Value) -> Value:
    return v.mark()


@register("sensitivity", "nonsensitive(value: any [null] [unknown] [marked]) -> any",
          "Removes the sensitive mark from a value.")
def nonsensitive(v: Value) -> Value:
    if not v.is_deeply_sensitive and v.raw is not UNKNOWN:
        raise ArgError(0, "the given value is not sensitive, so this call is redundant")
    return v.unmark_deep()


@register("sensitivity", "issensitive(value: any [null] [unknown] [marked]) -> bool",
          "Whether a value is marked sensitive.")
def issensitive(v: Value) -> Value:
    return bool_val(v.sensitive)


@register(CAT, "try(...expressions: any) -> any",
          "The value of the first argument expression that evaluates without error.", lazy=True)
def try_(*args: Value) -> Value:  # evaluated specially by the evaluator
    raise FunctionError("try() must be evaluated by the expression evaluator")


@register(CAT, "can(expression: any) -> bool",
          "Whether the argument expression evaluates without error.", lazy=True)
def can(arg: Value) -> Value:  # evaluated specially by the evaluator
    raise FunctionError("can() must be evaluated by the expression evaluator")
