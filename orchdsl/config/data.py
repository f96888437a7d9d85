"""Values <-> the plain data the engine works with.

The engine and plans use JSON-like Python data (dict, list, str, int,
float, bool, None) with ``orchdsl.plan.UNKNOWN`` for values known only after
apply. Evaluated values become such data here, with the paths of their
sensitive parts collected on the way; and instance data handed back by the
engine becomes values again for expressions that refer to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from ..eval import Value
from ..eval import values as V
from ..eval.convert import unify_values
from ..eval.types import DYNAMIC
from ..eval.plain import UNKNOWN

Path = tuple[str | int, ...]


def to_data(v: Value, path: Path = (), sensitive: set[Path] | None = None) -> Any:
    """A value as plain data; sensitive parts' paths are added to ``sensitive``."""
    if sensitive is not None and v.sensitive:
        sensitive.add(path)
    raw = v.raw
    if raw is V.UNKNOWN:
        return UNKNOWN
    if raw is None or isinstance(raw, (str, bool)):
        return raw
    if isinstance(raw, int):
        return raw
    if isinstance(raw, Decimal):
        return int(raw) if raw == raw.to_integral_value() else float(raw)
    if isinstance(raw, tuple):
        return [to_data(e, path + (i,), sensitive) for i, e in enumerate(raw)]
    if isinstance(raw, dict):
        return {k: to_data(e, path + (k,), sensitive) for k, e in raw.items()}
    return raw


def from_data(obj: Any, sensitive: Iterable[Path] = (), path: Path = ()) -> Value:
    """Plain data (``UNKNOWN`` allowed anywhere) as a value; ``sensitive`` paths are marked."""
    sens = set(sensitive) if not isinstance(sensitive, set) else sensitive
    v = _from_data(obj, sens, path)
    return v


def _from_data(obj: Any, sens: set[Path], path: Path) -> Value:
    if obj is UNKNOWN or obj is V.UNKNOWN:
        v = V.unknown(DYNAMIC)
    elif isinstance(obj, Value):
        v = obj
    elif obj is None:
        v = V.NULL
    elif isinstance(obj, bool):
        v = V.bool_val(obj)
    elif isinstance(obj, (int, float, Decimal)):
        v = V.number_val(obj)
    elif isinstance(obj, str):
        v = V.string_val(obj)
    elif isinstance(obj, dict):
        v = V.object_val({str(k): _from_data(x, sens, path + (str(k),)) for k, x in obj.items()})
    elif isinstance(obj, (list, tuple)):
        v = V.tuple_val(_from_data(x, sens, path + (i,)) for i, x in enumerate(obj))
    elif isinstance(obj, (set, frozenset)):
        elems = [_from_data(x, sens, path) for x in obj]
        unified = unify_values(elems)
        v = V.set_val(unified[1], unified[0]) if unified else V.tuple_val(elems)
    else:
        raise TypeError(f"cannot use a {type(obj).__name__} as a value")
    return v.mark(path in sens)


