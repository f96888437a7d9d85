"""Converting between Values and plain Python data.

``from_python`` infers HCL types the way literal syntax would: lists become
tuples, dicts objects (as ``[...]`` and ``{...}`` do), ``None`` a null of
unknown type. ``to_python`` gives numbers as ``int`` or ``Decimal``,
sequences and sets as lists, maps and objects as dicts, and unknowns as the
``UNKNOWN`` sentinel.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .convert import unify_values
from .types import DYNAMIC
from .values import (NULL, UNKNOWN, Value, bool_val, number_val, object_val, set_val, string_val, tuple_val)


def from_python(obj: Any) -> Value:
    if isinstance(obj, Value):
        return obj
    if obj is None:
        return NULL
    if obj is UNKNOWN:
        return Value(DYNAMIC, UNKNOWN)
    if isinstance(obj, bool):
        return bool_val(obj)
    if isinstance(obj, (int, float, Decimal)):
        return number_val(obj)
    if isinstance(obj, str):
        return string_val(obj)
    if isinstance(obj, dict):
        return object_val({str(k): from_python(v) for k, v in obj.items()})
    if isinstance(obj, (set, frozenset)):
        elems = [from_python(x) for x in obj]
        unified = unify_values(elems)
        if unified is None:
            raise TypeError("set elements must have one type")
        return set_val(unified[1], unified[0])
    if isinstance(obj, (list, tuple)):
        return tuple_val(from_python(x) for x in obj)
    raise TypeError(f"cannot convert {type(obj).__name__} to a value")


def to_python(v: Value) -> Any:
    raw = v.raw
    if raw is UNKNOWN:
        return UNKNOWN
    if isinstance(raw, tuple):
        return [to_python(x) for x in raw]
    if isinstance(raw, dict):
        return {k: to_python(x) for k, x in raw.items()}
    return raw
