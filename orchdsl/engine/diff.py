"""Compare what the user configured with what exists — and nothing else (the helpers live in the SDK,
which providers share with the engine)."""

from __future__ import annotations

from ..sdk.values import configured_changes, contains_unknown, get_path, merge_configured, set_path

__all__ = ["configured_changes", "contains_unknown", "get_path", "merge_configured", "set_path"]
