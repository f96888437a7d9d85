"""Plain data: evaluated values as JSON-like Python data, with one extra, ``UNKNOWN``.

Evaluation works on typed ``Value`` objects (``orchdsl.eval.values``); what leaves it for the resource
model, the planner and providers is plain data (dict, list, str, int, float, bool, None). ``UNKNOWN``
marks a value known only after apply (a container's IP before the container exists). A path is a tuple
of keys and indexes, e.g. ``("container", 0, "env", "GREETING")``.
"""

from __future__ import annotations

from typing import Any

Path = tuple[str | int, ...]


class _Unknown:
    __slots__ = ()
    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __copy__(self) -> _Unknown:  # copies stay the one singleton
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _Unknown:
        return self


UNKNOWN: Any = _Unknown()


def is_unknown(v: Any) -> bool:
    return v is UNKNOWN


def contains_unknown(v: Any) -> bool:
    if v is UNKNOWN:
        return True
    if isinstance(v, dict):
        return any(contains_unknown(x) for x in v.values())
    if isinstance(v, list):
        return any(contains_unknown(x) for x in v)
    return False


def strip_unknown(v: Any) -> Any:
    """The known part of a value: unknown entries of objects and lists left out."""
    if isinstance(v, dict):
        return {k: strip_unknown(x) for k, x in v.items() if x is not UNKNOWN}
    if isinstance(v, list):
        return [strip_unknown(x) for x in v if x is not UNKNOWN]
    return v


def prune_nulls(v: Any) -> Any:
    """Unset optional attributes are absent, not null: nothing to show, store or compare."""
    if isinstance(v, dict):
        return {k: prune_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [prune_nulls(x) for x in v]
    return v


__all__ = ["UNKNOWN", "Path", "contains_unknown", "is_unknown", "prune_nulls", "strip_unknown"]
