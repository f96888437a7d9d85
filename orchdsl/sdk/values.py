"""Value helpers for providers: unknowns, paths, and "compare only what the user configured".

Platforms fill in defaults the user never wrote (log options, users, env added by an image...). Comparing
whole objects makes perpetual diffs (terraform-provider-docker #340, #473, #873); orch compares only the
attributes present (and non-null) in the configuration, recursively for objects and element by element for
lists of the same length (a list that grew or shrank changed as a whole).
"""

from __future__ import annotations

from typing import Any

from ..eval.plain import UNKNOWN, Path, contains_unknown, is_unknown, prune_nulls, strip_unknown


def configured_changes(prior: Any, config: Any, path: Path = ()) -> list[Path]:
    """Paths where the configured value differs from the prior one."""
    if config is UNKNOWN:
        return [path]
    if isinstance(config, dict):
        if not isinstance(prior, dict):
            return [path]
        out: list[Path] = []
        for k, v in config.items():
            if v is None:
                continue
            out.extend(configured_changes(prior.get(k), v, path + (k,)))
        return out
    if isinstance(config, list):
        if not isinstance(prior, list) or len(prior) != len(config):
            return [path]
        out = []
        for i, (p, c) in enumerate(zip(prior, config)):
            out.extend(configured_changes(p, c, path + (i,)))
        return out
    if _number(prior) and _number(config):
        return [] if float(prior) == float(config) else [path]
    if type(prior) is not type(config):  # True == 1 in Python, not in orch
        return [path]
    return [] if prior == config else [path]


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def get_path(value: Any, path: Path) -> Any:
    for step in path:
        if isinstance(value, dict):
            value = value.get(step)
        elif isinstance(value, list) and isinstance(step, int) and 0 <= step < len(value):
            value = value[step]
        else:
            return None
    return value


def set_path(value: Any, path: Path, new: Any) -> Any:
    """A copy of ``value`` with ``path`` set to ``new`` (creating objects on the way)."""
    if not path:
        return new
    out = dict(value) if isinstance(value, dict) else {}
    head, rest = path[0], path[1:]
    out[head] = set_path(out.get(head, {}), rest, new) if rest else new
    return out


def merge_configured(prior: dict[str, Any] | None, config: dict[str, Any]) -> dict[str, Any]:
    """Planned values: the prior object with every configured attribute taking its configured value."""
    out = dict(prior or {})
    for k, v in config.items():
        if v is None and k in out and prior is not None:
            continue
        out[k] = v
    return out


__all__ = ["UNKNOWN", "Path", "configured_changes", "contains_unknown", "get_path", "is_unknown",
           "merge_configured", "prune_nulls", "set_path", "strip_unknown"]
