"""Compare what the user configured with what exists — and nothing else.

Platforms fill in defaults the user never wrote (log options, users, env
added by an image...). Comparing whole objects makes perpetual diffs
(terraform-provider-docker #340, #473, #873); orch compares only the
attributes present (and non-null) in the configuration, recursively for
objects and element by element for lists of the same length (a list that
grew or shrank changed as a whole).
"""

from __future__ import annotations

from typing import Any

from ..plan.model import UNKNOWN, Path


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
            value = value.get(step)  # type: ignore[arg-type]
        elif isinstance(value, list) and isinstance(step, int) and 0 <= step < len(value):
            value = value[step]
        else:
            return None
    return value


def set_path(value: dict, path: Path, new: Any) -> dict:
    """A copy of ``value`` with ``path`` set to ``new`` (creating objects on the way)."""
    if not path:
        return new
    out = dict(value) if isinstance(value, dict) else {}
    head, rest = path[0], path[1:]
    out[head] = set_path(out.get(head, {}), rest, new) if rest else new  # type: ignore[index]
    return out


def merge_configured(prior: dict | None, config: dict) -> dict:
    """Planned values: the prior object with every configured attribute taking its configured value."""
    out = dict(prior or {})
    for k, v in config.items():
        if v is None and k in out and prior is not None:
            continue
        out[k] = v
    return out


def contains_unknown(v: Any) -> bool:
    if v is UNKNOWN:
        return True
    if isinstance(v, dict):
        return any(contains_unknown(x) for x in v.values())
    if isinstance(v, list):
        return any(contains_unknown(x) for x in v)
    return False
